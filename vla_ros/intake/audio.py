"""Raw audio blocks -> 16 kHz mono utterances, ready for a recogniser.

`decode_block` checks and converts one block (16-bit PCM, any channel count,
any sensible rate) to mono; `UtteranceSegmenter` finds spoken utterances in a
continuous stream with an energy voice-activity detector measured against the
background level (the quietest frame of the last few seconds), so steady noise
(a fan, a hum) is not taken for speech.
Segmentation runs at the stream's own rate and each finished utterance is
resampled whole to 16 kHz (resampling block by block would click at every
block edge). Plain numpy/scipy, no ROS.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from math import gcd

import numpy as np
from scipy.signal import resample_poly

TARGET_RATE = 16000
ENCODING_S16LE = "S16LE"  # the only encoding accepted (vla_ros/AudioData.ENCODING_S16LE)
MIN_RATE, MAX_RATE = 8000, 192000
MAX_CHANNELS = 8
FRAME_SECONDS = 0.02  # VAD frame: 20 ms
_SILENCE_DB = -100.0


class AudioFormatError(ValueError):
    """An audio block whose declared format cannot be right; the message says why."""


def decode_block(data: bytes, encoding: str, sample_rate: int, channels: int) -> np.ndarray:
    """One interleaved PCM block -> mono float32 in [-1, 1] at the block's own rate.

    Raises AudioFormatError for an unsupported encoding, an absurd rate or
    channel count, or data that is not a whole number of frames.
    """
    if encoding.upper() != ENCODING_S16LE:
        raise AudioFormatError(f"unsupported audio encoding {encoding!r}: only {ENCODING_S16LE} is accepted")
    if not MIN_RATE <= sample_rate <= MAX_RATE:
        raise AudioFormatError(f"unsupported sample rate {sample_rate} Hz (accepted: {MIN_RATE}..{MAX_RATE})")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioFormatError(f"unsupported channel count {channels} (accepted: 1..{MAX_CHANNELS})")
    frame_bytes = 2 * channels
    if len(data) == 0 or len(data) % frame_bytes:
        raise AudioFormatError(f"{len(data)} bytes is not a whole number of {channels}-channel 16-bit frames")
    samples = np.frombuffer(bytes(data), dtype="<i2").astype(np.float32) / 32768.0
    return samples.reshape(-1, channels).mean(axis=1)


def resample(samples: np.ndarray, rate: int, target: int = TARGET_RATE) -> np.ndarray:
    """Band-limited polyphase resampling from `rate` to `target` Hz."""
    if rate == target:
        return samples.astype(np.float32, copy=False)
    common = gcd(rate, target)
    return resample_poly(samples, target // common, rate // common).astype(np.float32)


def level_db(samples: np.ndarray) -> float:
    """RMS level in dB relative to full scale (-100 for digital silence)."""
    if samples.size == 0:
        return _SILENCE_DB
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return max(_SILENCE_DB, 20.0 * np.log10(rms)) if rms > 0 else _SILENCE_DB


def clipped_fraction(samples: np.ndarray, level: float = 0.98) -> float:
    """Fraction of samples at or beyond `level` of full scale."""
    return float(np.mean(np.abs(samples) >= level)) if samples.size else 0.0


@dataclass(frozen=True)
class VadConfig:
    start_db: float = 12.0  # speech starts this far above the background level...
    stop_db: float = 6.0  # ...and ends when the level falls back below background + stop_db
    min_level_db: float = -50.0  # nothing quieter than this is speech, whatever the background
    start_frames: int = 3  # consecutive loud frames that start an utterance (60 ms)
    hangover: float = 0.5  # seconds of quiet that end an utterance (pauses between words are shorter)
    preroll: float = 0.3  # seconds kept before the detected start (soft onsets, and context for the recogniser)
    min_speech: float = 0.15  # utterances with less speech than this are clicks, not words ("stop" has ~0.2 s)
    max_utterance: float = 8.0  # longer ones are cut off and rejected
    background_window: float = 3.0  # s; the background level is the quietest frame level within this window

    def __post_init__(self):
        for name in ("start_db", "stop_db", "hangover", "min_speech", "max_utterance", "background_window"):
            if getattr(self, name) <= 0:
                raise ValueError(f"VAD {name} must be > 0, got {getattr(self, name)}")
        if self.preroll < 0 or self.start_frames < 1:
            raise ValueError("VAD preroll must be >= 0 and start_frames >= 1")
        if self.stop_db > self.start_db:
            raise ValueError(f"VAD stop_db ({self.stop_db}) must not exceed start_db ({self.start_db})")
        if self.min_speech >= self.max_utterance:
            raise ValueError("VAD min_speech must be shorter than max_utterance")


@dataclass
class Utterance:
    """A stretch of mono audio that the VAD took for speech."""

    samples: np.ndarray  # at `rate`
    rate: int
    start: float  # seconds since the start of the stream
    truncated: bool = False  # cut at max_utterance: the speaker did not stop
    clipped: float = 0.0  # clipped_fraction() of the utterance

    @property
    def duration(self) -> float:
        return self.samples.size / self.rate

    def at_16k(self) -> np.ndarray:
        return resample(self.samples, self.rate, TARGET_RATE)


@dataclass
class _State:
    loud_run: int = 0
    quiet_run: int = 0
    speech_frames: int = 0
    frames: list = field(default_factory=list)  # frames of the current utterance
    in_speech: bool = False
    utterance_start: float = 0.0


class UtteranceSegmenter:
    """Streaming VAD: feed mono blocks at `rate`, get finished utterances back."""

    def __init__(self, rate: int, config: VadConfig | None = None):
        self.rate = rate
        self.config = config or VadConfig()
        self._frame = round(rate * FRAME_SECONDS)
        self._pending = np.zeros(0, dtype=np.float32)
        self._preroll: list[np.ndarray] = []
        self._time = 0.0
        self._state = _State()
        self._levels: deque[float] = deque(maxlen=self._frames_for(self.config.background_window))

    def _frames_for(self, seconds: float) -> int:
        return max(1, round(seconds / FRAME_SECONDS))

    def feed(self, samples: np.ndarray) -> list[Utterance]:
        """Add mono samples (at `rate`); returns the utterances that ended within them."""
        self._pending = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        done = []
        while self._pending.size >= self._frame:
            frame, self._pending = self._pending[: self._frame], self._pending[self._frame:]
            utterance = self._step(frame)
            if utterance is not None:
                done.append(utterance)
            self._time += FRAME_SECONDS
        return done

    def flush(self) -> Utterance | None:
        """End of stream: the utterance in progress (if it has enough speech), and a fresh state."""
        state = self._state
        utterance = None
        if state.in_speech and state.speech_frames >= self._frames_for(self.config.min_speech):
            utterance = self._finish(truncated=False)
        self.reset()
        return utterance

    def reset(self) -> None:
        self._pending = np.zeros(0, dtype=np.float32)
        self._preroll = []
        self._levels.clear()
        self._state = _State()

    def _step(self, frame: np.ndarray) -> Utterance | None:
        cfg, state = self.config, self._state
        level = level_db(frame)
        self._levels.append(level)
        background = min(self._levels)
        loud = level > max(cfg.min_level_db, background + cfg.start_db)
        quiet = level < background + cfg.stop_db or level < cfg.min_level_db

        if not state.in_speech:
            self._preroll.append(frame)
            del self._preroll[: -self._frames_for(cfg.preroll) - cfg.start_frames]
            state.loud_run = state.loud_run + 1 if loud else 0
            if state.loud_run >= cfg.start_frames:
                state.in_speech = True
                state.frames = list(self._preroll)
                state.speech_frames = state.loud_run
                state.quiet_run = 0
                state.utterance_start = self._time - (len(self._preroll) - 1) * FRAME_SECONDS
                self._preroll = []
            return None

        state.frames.append(frame)
        state.quiet_run = state.quiet_run + 1 if quiet else 0
        if not quiet:
            state.speech_frames += 1
        if len(state.frames) >= self._frames_for(cfg.max_utterance):
            return self._finish(truncated=True)
        if state.quiet_run >= self._frames_for(cfg.hangover):
            if state.speech_frames >= self._frames_for(cfg.min_speech):
                return self._finish(truncated=False)
            self._restart()  # a click or a knock: not speech
        return None

    def _finish(self, truncated: bool) -> Utterance:
        state = self._state
        samples = np.concatenate(state.frames)
        utterance = Utterance(samples, self.rate, state.utterance_start, truncated, clipped_fraction(samples))
        self._restart()
        return utterance

    def _restart(self) -> None:
        self._state = _State()


def estimated_snr_db(samples: np.ndarray, rate: int = TARGET_RATE) -> float:
    """Rough SNR of an utterance: louder half of its 20 ms frames against its quietest tenth."""
    frame = round(rate * FRAME_SECONDS)
    frames = samples[: samples.size // frame * frame].reshape(-1, frame)
    if frames.shape[0] < 10:
        return float("inf")
    power = np.sort(np.mean(np.square(frames, dtype=np.float64), axis=1))
    noise = power[: max(1, power.size // 10)].mean()
    speech = power[power.size // 2:].mean()
    return float("inf") if noise <= 0 else float(10 * np.log10(max(speech, 1e-20) / noise))


def wiener_denoise(samples: np.ndarray, gain_floor: float = 0.3, smoothing: float = 0.98) -> np.ndarray:
    """Suppress stationary noise in a 16 kHz utterance (Wiener gains, decision-directed a priori SNR).

    The noise spectrum is the mean of the quietest tenth of the frames (an
    utterance from the VAD starts and ends with background). `gain_floor` limits
    the suppression, which keeps speech natural enough for the recogniser.
    """
    size, hop = 400, 160  # 25 ms frames, 10 ms hop
    window = np.sqrt(np.hanning(size + 1)[:-1])  # sqrt-Hann analysis and synthesis: unity overlap-add at 10 ms hop
    padded = np.concatenate([np.zeros(size), samples.astype(np.float64), np.zeros(size)])
    spectra = np.fft.rfft(np.lib.stride_tricks.sliding_window_view(padded, size)[::hop] * window, axis=1)
    power = np.abs(spectra) ** 2
    energy = power.sum(axis=1)
    inside = energy > 0
    if inside.sum() < 10:
        return samples
    quiet = inside & (energy <= np.quantile(energy[inside], 0.1))
    noise = power[quiet].mean(axis=0) + 1e-12
    gains = np.empty_like(power)
    previous_clean = np.zeros(power.shape[1])  # |gain * X|^2 of the previous frame, over the noise
    for i, frame_power in enumerate(power):
        posterior = frame_power / noise
        prior = smoothing * previous_clean + (1 - smoothing) * np.maximum(posterior - 1.0, 0.0)
        gains[i] = np.maximum(prior / (1.0 + prior), gain_floor)
        previous_clean = gains[i] ** 2 * posterior
    frames = np.fft.irfft(spectra * gains, size, axis=1) * window
    out = np.zeros(padded.size)
    for i, frame in enumerate(frames):
        out[i * hop:i * hop + size] += frame
    # sqrt-Hann squared sums to 1 at this hop up to a constant: normalise it away.
    scale = np.sum(np.hanning(size + 1)[:-1]) / hop
    return (out[size:size + samples.size] / scale).astype(np.float32)
