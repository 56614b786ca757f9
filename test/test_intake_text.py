"""Text intake: normal form, stop words, validation and flooding (vla_ros/intake/text.py)."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vla_ros import vocabulary
from vla_ros.intake.text import (
    InstructionFilter,
    RateLimiter,
    find_stop,
    invalid_characters,
    normalise,
    number_to_words,
)


@pytest.mark.parametrize(
    "raw, normal",
    [
        ("  Pick UP the Red   Cube!!! ", "pick up the red cube"),
        ("Put the red cube on the \"white\" plate.", "put the red cube on the white plate"),
        ("push the cube 2 times", "push the cube two times"),
        ("go to the 3rd plate", "go to the third plate"),
        ("move 1.5 cm", "move one point five cm"),
        ("stack 21 cubes", "stack twenty one cubes"),
        ("12th 20th 101st", "twelfth twentieth one hundred first"),
        ("emergency-stop", "emergency stop"),
        ("don't drop it", "don't drop it"),
        ("'quoted'", "quoted"),
        ("ＰＩＣＫ up", "pick up"),
        ("tab\tand\nnewline", "tab and newline"),
        ("", ""),
    ],
)
def test_normal_form(raw, normal):
    assert normalise(raw) == normal


def test_number_words():
    assert number_to_words(0) == "zero"
    assert number_to_words(45) == "forty five"
    assert number_to_words(1_002_300) == "one million two thousand three hundred"
    with pytest.raises(ValueError):
        number_to_words(-1)


@given(st.text(max_size=300))
def test_normalise_never_raises_and_is_idempotent(text):
    once = normalise(text)
    assert normalise(once) == once
    assert once == once.strip() and "  " not in once


@pytest.mark.parametrize(
    "text, stop",
    [
        ("stop", "stop"),
        ("please stop now", "stop"),
        ("halt the arm", "halt"),
        ("freeze", "freeze"),
        ("emergency stop", "emergency stop"),
        ("e stop", "stop"),
        ("abort the task", "abort"),
        ("pick up the red cube and then stop", "stop"),
        ("don't stop", "stop"),  # a false stop is safe; a missed one is not
        ("stopper on the table", None),
        ("pick up the red cube", None),
        ("unstoppable", None),
    ],
)
def test_stop_phrases_within_a_sentence(text, stop):
    assert find_stop(text) == stop


def test_every_vocabulary_stop_phrase_is_a_stop():
    for phrase in vocabulary.STOP_PHRASES:
        assert find_stop(normalise(phrase.upper() + "!")) is not None


def test_invalid_characters():
    assert invalid_characters("pick up the red cube") is None
    assert "non-printable" in invalid_characters("pick\x00up")
    assert "non-printable" in invalid_characters("pick\x1b[31m")
    assert "UTF-8" in invalid_characters("pick \ufffd up")
    assert "UTF-8" in invalid_characters("pick \udcff up")  # surrogateescape of a bad byte


def _filter():
    return InstructionFilter(max_length=256, rate=2.0, burst=3)


def test_accepts_and_normalises():
    decision = _filter().process("Pick up the RED cube.", now=0.0)
    assert decision.accepted and not decision.is_stop
    assert decision.text == "pick up the red cube" and decision.raw_text == "Pick up the RED cube."
    assert decision.reason == ""


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("", "empty"),
        ("   ?!  ", "empty"),
        ("x" * 257, "too long (257 > 256"),
        ("pick up\x07 the cube", "non-printable"),
        ("pick up the \ufffd cube", "UTF-8"),
        ("resume", "does not reset the emergency stop"),
        ("Continue.", "reset_estop"),
    ],
)
def test_rejections_say_why(raw, reason):
    decision = _filter().process(raw, now=0.0)
    assert not decision.accepted and not decision.is_stop
    assert reason in decision.reason


def test_stop_wins_over_every_rejection():
    flt = _filter()
    for text in ("stop", "x" * 300 + " stop", "halt\x00", "FREEZE!!!"):
        decision = flt.process(text, now=0.0)
        assert decision.is_stop and decision.accepted, text
    # Flooding does not delay a stop either.
    for _ in range(10):
        flt.process("pick up the red cube", now=1.0)
    assert flt.process("stop", now=1.0).is_stop


def test_exactly_256_characters_pass():
    assert _filter().process("a" * 256, now=0.0).accepted


def test_flooding_is_rejected_and_recovers():
    flt = _filter()
    verdicts = [flt.process(f"pick up the red cube {i}", now=0.0).accepted for i in range(5)]
    assert verdicts == [True, True, True, False, False]
    assert "too many instructions" in flt.process("go home", now=0.1).reason
    assert flt.process("go home", now=0.7).accepted  # 2 per second refill


def test_rate_limiter_sustained_rate():
    limiter = RateLimiter(rate=2.0, burst=1)
    accepted = sum(limiter.allow(t * 0.1) for t in range(100))  # 10 s at 10 Hz
    assert 20 <= accepted <= 21
    with pytest.raises(ValueError):
        RateLimiter(rate=0.0, burst=1)
