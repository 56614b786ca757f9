"""Typed or recognised text -> one validated decision: an instruction, an e-stop, or a rejection.

Both intake paths (the `/voice_command` topic and the speech recogniser) end
here, so a sentence is judged the same way however it arrived. Plain Python:
instruction_node wraps `InstructionFilter` and publishes what it decides.

Normal form: lower case, no punctuation (an apostrophe inside a word stays),
single spaces, digits spelled out ("2" -> "two", "3rd" -> "third"): the way the
recogniser writes words and the way the task vocabulary is written.

Stop phrases (vocabulary.STOP_PHRASES) anywhere in the text trigger the
e-stop, even when the rest of the input would be rejected (too long, flooding,
odd characters): a false stop is safe, a missed one is not. Resume phrases do
not reset the e-stop; that takes the explicit /safety/reset_estop service.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from vla_ros import vocabulary

DEFAULT_MAX_LENGTH = 256

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                  "nine": "ninth", "twelve": "twelfth"}
_NUMBER = re.compile(r"(\d+)(?:\.(\d+))?(st|nd|rd|th)?\b")
# Characters that join words ("e-stop", "left/right") become spaces before punctuation goes.
_JOINERS = re.compile(r"[-_/\\]+")
_NOT_WORD = re.compile(r"[^\w' ]+|(?<!\w)'|'(?!\w)")
_LARGEST_SPELLED = 999_999_999


def number_to_words(n: int) -> str:
    """0 <= n <= 999,999,999 in English words: 42 -> 'forty two'."""
    if not 0 <= n <= _LARGEST_SPELLED:
        raise ValueError(f"cannot spell {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    for size, name in ((1_000_000, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size:
            head, rest = divmod(n, size)
            return f"{number_to_words(head)} {name}" + ("" if rest == 0 else " " + number_to_words(rest))
    raise AssertionError("unreachable")


def _ordinal(words: str) -> str:
    *head, last = words.split()
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return " ".join(head + [last])


def _spell_number(match: re.Match) -> str:
    whole, fraction, suffix = match.groups()
    if len(whole) > len(str(_LARGEST_SPELLED)):
        return " ".join(_ONES[int(d)] for d in whole)  # an id or a code: read digit by digit
    words = number_to_words(int(whole))
    if fraction:
        words += " point " + " ".join(_ONES[int(d)] for d in fraction)
    elif suffix:
        words = _ordinal(words)
    return f" {words} "


def strip_unprintable(text: str) -> str:
    """Control and format characters become spaces (they never carry meaning in an instruction)."""
    return "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)


def normalise(text: str) -> str:
    """The normal form of an instruction (see module docstring). Never raises."""
    text = unicodedata.normalize("NFKC", strip_unprintable(text)).casefold()
    text = _JOINERS.sub(" ", text)
    text = _NUMBER.sub(_spell_number, text)
    text = _NOT_WORD.sub(" ", text)
    return " ".join(text.split())


def _phrase_pattern(phrases) -> re.Pattern:
    alternatives = sorted((re.escape(p).replace(r"\ ", " ") for p in phrases), key=len, reverse=True)
    return re.compile(r"(?<!\S)(" + "|".join(alternatives) + r")(?!\S)")


_STOP = _phrase_pattern(vocabulary.STOP_PHRASES)


def find_stop(normal_text: str) -> str | None:
    """The first stop phrase in already-normalised text, as whole words ("stopper" is not "stop")."""
    match = _STOP.search(normal_text)
    return match.group(1) if match else None


def invalid_characters(text: str) -> str | None:
    """Why `text` cannot be an instruction character-wise, or None.

    rclpy hands us str; bytes that were not UTF-8 show up as U+FFFD replacement
    characters or lone surrogates.
    """
    if "\ufffd" in text or any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        return "text is not valid UTF-8"
    unprintable = sorted({f"U+{ord(ch):04X}" for ch in text
                          if unicodedata.category(ch).startswith("C") and ch not in "\t\n\r"})
    if unprintable:
        return f"text contains non-printable characters ({', '.join(unprintable[:5])})"
    return None


class RateLimiter:
    """Token bucket: at most `burst` inputs at once, refilled at `rate` per second."""

    def __init__(self, rate: float, burst: int):
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got {rate}, {burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None

    def allow(self, now: float) -> bool:
        """Take a token at time `now` (seconds, monotonic) if one is left."""
        if self._last is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


@dataclass(frozen=True)
class Decision:
    """What intake makes of one input."""

    raw_text: str
    text: str  # normal form
    accepted: bool  # an instruction (or an e-stop) results
    is_stop: bool  # a stop phrase was heard: trigger the e-stop, bypassing the policy
    reason: str = ""  # why it was rejected; empty when accepted


class InstructionFilter:
    """Normalise, detect stops, validate and rate-limit instructions from any source."""

    def __init__(self, max_length: int = DEFAULT_MAX_LENGTH, rate: float = 2.0, burst: int = 3):
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.max_length = max_length
        self._limiter = RateLimiter(rate, burst)

    def process(self, raw_text: str, now: float) -> Decision:
        """Judge one input received at `now` (monotonic seconds)."""
        text = normalise(raw_text)
        if find_stop(text):
            return Decision(raw_text, text, accepted=True, is_stop=True)

        def reject(reason: str) -> Decision:
            return Decision(raw_text, text, accepted=False, is_stop=False, reason=reason)

        problem = invalid_characters(raw_text)
        if problem:
            return reject(problem)
        if len(raw_text) > self.max_length:
            return reject(f"instruction too long ({len(raw_text)} > {self.max_length} characters)")
        if not text:
            return reject("empty instruction")
        if text in vocabulary.RESUME_PHRASES:
            return reject(f"'{text}' does not reset the emergency stop; reset it with the "
                          "/safety/reset_estop service (std_srvs/Trigger)")
        if not self._limiter.allow(now):
            return reject(f"too many instructions: at most {self._limiter.rate:g} per second "
                          f"(bursts of {self._limiter.burst})")
        return Decision(raw_text, text, accepted=True, is_stop=False)
