"""Audio intake: PCM decoding, resampling, voice activity detection (vla_ros/intake/audio.py)."""
import numpy as np
import pytest

from vla_ros.intake.audio import (
    AudioFormatError,
    UtteranceSegmenter,
    VadConfig,
    clipped_fraction,
    decode_block,
    estimated_snr_db,
    level_db,
    resample,
    wiener_denoise,
)

RATE = 16000


def _pcm(samples: np.ndarray) -> bytes:
    return np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2").tobytes()


def _tone(seconds: float, rate: int = RATE, freq: float = 300.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def test_decode_mono_and_stereo():
    left, right = np.full(4, 0.5), np.full(4, -0.25)
    stereo = np.stack([left, right], axis=1).reshape(-1)
    mono = decode_block(_pcm(stereo), "S16LE", 44100, 2)
    assert mono.shape == (4,) and np.allclose(mono, 0.125, atol=1e-4)
    assert np.allclose(decode_block(_pcm(left), "s16le", 8000, 1), 0.5, atol=1e-4)


@pytest.mark.parametrize(
    "data, encoding, rate, channels, message",
    [
        (b"\x00\x00", "F32LE", 16000, 1, "unsupported audio encoding"),
        (b"\x00\x00", "", 16000, 1, "unsupported audio encoding"),
        (b"\x00\x00", "S16LE", 0, 1, "unsupported sample rate 0"),
        (b"\x00\x00", "S16LE", 1_000_000, 1, "unsupported sample rate"),
        (b"\x00\x00", "S16LE", 16000, 0, "unsupported channel count 0"),
        (b"\x00\x00", "S16LE", 16000, 9, "unsupported channel count"),
        (b"\x00\x00\x00", "S16LE", 16000, 1, "not a whole number"),
        (b"\x00\x00", "S16LE", 16000, 2, "not a whole number"),
        (b"", "S16LE", 16000, 1, "not a whole number"),
    ],
)
def test_bad_formats_are_refused_with_a_reason(data, encoding, rate, channels, message):
    with pytest.raises(AudioFormatError, match=message):
        decode_block(data, encoding, rate, channels)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampling_keeps_pitch_and_duration(rate):
    out = resample(_tone(1.0, rate, freq=440.0).astype(np.float32), rate)
    assert abs(out.size - RATE) <= 1
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * RATE / out.size - 440.0) < 2.0


def test_levels_and_clipping():
    assert level_db(np.zeros(100)) == -100.0
    assert abs(level_db(np.full(100, 0.1)) + 20.0) < 1e-6
    assert clipped_fraction(np.array([1.0, -1.0, 0.5, 0.0])) == 0.5


def _feed(segmenter, signal, block=1600):
    utterances = []
    for start in range(0, signal.size, block):
        utterances += segmenter.feed(signal[start:start + block].astype(np.float32))
    return utterances


def test_segments_two_utterances_with_preroll():
    silence = np.zeros(int(1.0 * RATE))
    signal = np.concatenate([silence, _tone(1.0), silence, _tone(0.6), silence])
    utterances = _feed(UtteranceSegmenter(RATE), signal)
    assert len(utterances) == 2
    first, second = utterances
    assert first.start == pytest.approx(1.0 - 0.3, abs=0.05)  # 300 ms preroll
    assert first.duration == pytest.approx(0.3 + 1.0 + 0.5, abs=0.1)  # preroll + speech + hangover
    assert second.start == pytest.approx(2.7, abs=0.05)
    assert not first.truncated and first.clipped == 0.0
    assert first.at_16k().size == first.samples.size


def test_short_pauses_do_not_split_an_utterance():
    gap = np.zeros(int(0.2 * RATE))
    signal = np.concatenate([np.zeros(RATE), _tone(0.4), gap, _tone(0.4), gap, _tone(0.4), np.zeros(RATE)])
    assert len(_feed(UtteranceSegmenter(RATE), signal)) == 1


def test_clicks_and_steady_noise_are_not_speech():
    rng = np.random.default_rng(0)
    click = _tone(0.1, amplitude=0.8)
    signal = np.concatenate([np.zeros(RATE), click, np.zeros(RATE)])
    assert _feed(UtteranceSegmenter(RATE), signal) == []
    # A steady fan from the first sample: it is the background, never an utterance.
    noise = rng.normal(0, 0.05, 5 * RATE)
    segmenter = UtteranceSegmenter(RATE)
    assert _feed(segmenter, noise) == [] and segmenter.flush() is None
    # Speech over that fan is still found.
    noisy_speech = noise.copy()
    noisy_speech[2 * RATE:3 * RATE] += _tone(1.0, amplitude=0.5)
    assert len(_feed(UtteranceSegmenter(RATE), noisy_speech)) == 1


def test_long_speech_is_cut_and_flagged():
    segmenter = UtteranceSegmenter(RATE, VadConfig(max_utterance=2.0))
    utterances = _feed(segmenter, np.concatenate([np.zeros(RATE), _tone(3.0, freq=200.0)]))
    assert len(utterances) == 1 and utterances[0].truncated
    assert utterances[0].duration == pytest.approx(2.0, abs=0.05)


def test_flush_returns_speech_in_progress():
    segmenter = UtteranceSegmenter(22050)
    assert _feed(segmenter, np.concatenate([np.zeros(22050), _tone(0.8, 22050)]), block=2205) == []
    utterance = segmenter.flush()
    assert utterance is not None and utterance.rate == 22050
    assert utterance.at_16k().size == pytest.approx(utterance.duration * RATE, abs=2)
    assert segmenter.flush() is None


def test_clipping_is_measured_per_utterance():
    signal = np.concatenate([np.zeros(RATE), np.clip(_tone(1.0, amplitude=3.0), -1, 1), np.zeros(RATE)])
    (utterance,) = _feed(UtteranceSegmenter(RATE), signal)
    assert utterance.clipped > 0.3


@pytest.mark.parametrize(
    "kwargs",
    [{"start_db": 0.0}, {"hangover": -1.0}, {"stop_db": 20.0}, {"min_speech": 9.0}, {"start_frames": 0},
     {"preroll": -0.1}, {"background_window": 0.0}],
)
def test_vad_config_is_validated(kwargs):
    with pytest.raises(ValueError):
        VadConfig(**kwargs)


def test_snr_estimate_and_denoising():
    rng = np.random.default_rng(0)
    speech = np.concatenate([np.zeros(RATE // 2), _tone(1.0, freq=500.0), np.zeros(RATE // 2)])
    assert estimated_snr_db(speech) == float("inf")
    noise = rng.normal(0, 0.03, speech.size)
    noisy = speech + noise
    snr = estimated_snr_db(noisy)
    assert 5.0 < snr < 25.0
    cleaned = wiener_denoise(noisy.astype(np.float32))
    assert cleaned.shape == noisy.shape
    # Noise in the pauses drops by the gain floor or more; the tone keeps most of its energy.
    pause = slice(0, RATE // 4)
    assert np.std(cleaned[pause]) < 0.4 * np.std(noisy[pause])
    tone = slice(RATE, RATE + RATE // 2)
    assert np.std(cleaned[tone]) > 0.8 * np.std(speech[tone])
