"""Synthetic speech for tests and benchmarks: espeak-ng clips and noise at a given SNR.

Real audio, made on the spot: espeak-ng (Debian package, installed by
scripts/setup_env.sh) speaks a sentence at its native 22.05 kHz, which the
intake pipeline must resample like any other input.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave

import numpy as np

ESPEAK = "espeak-ng"


def espeak_available() -> bool:
    return shutil.which(ESPEAK) is not None


def speak(text: str, voice: str = "en-us", words_per_minute: int = 160) -> tuple[np.ndarray, int]:
    """espeak-ng's rendering of `text`: (int16 mono samples, sample rate)."""
    if not espeak_available():
        raise FileNotFoundError(f"{ESPEAK} is not installed (apt-get install {ESPEAK})")
    # A file, not --stdout: a streamed WAV header cannot hold the length.
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/speech.wav"
        subprocess.run([ESPEAK, "-v", voice, "-s", str(words_per_minute), "-w", path, text],
                       check=True, capture_output=True)
        with wave.open(path) as wav:
            return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").copy(), wav.getframerate()


def speech_level(samples: np.ndarray, rate: int) -> float:
    """Mean power of the active speech (20 ms frames within 30 dB of the loudest), for SNR."""
    frame = max(1, int(rate * 0.02))
    x = samples.astype(np.float64)
    frames = x[: x.size // frame * frame].reshape(-1, frame)
    power = np.mean(frames ** 2, axis=1)
    active = power[power >= power.max() * 1e-3]
    return float(np.mean(active)) if active.size else 0.0


def add_noise(samples: np.ndarray, rate: int, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White Gaussian noise at `snr_db` below the active speech level, as int16 (clipped)."""
    noise_power = speech_level(samples, rate) / 10 ** (snr_db / 10)
    noisy = samples.astype(np.float64) + rng.normal(0.0, np.sqrt(noise_power), samples.shape)
    return np.clip(np.round(noisy), -32768, 32767).astype(np.int16)


def write_wav(path, samples: np.ndarray, rate: int, channels: int = 1) -> None:
    """Interleaved int16 samples to a WAV file."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())
