"""Executing action chunks: which target to send at each control step when chunks overlap.

A policy returns K future targets per call; callers (the evaluator, the inference
node) ask again every `n_action_steps` steps, so up to K / n_action_steps chunks
cover a step. How they combine is the aggregation mode:

- "ensemble": ACT's temporal ensembling, weights exp(-decay * i) with i = 0 for the
  oldest chunk: smooth, and it blends away the jerks at chunk boundaries;
- "latest": the newest chunk alone (lowest latency to new observations);
- "average": the plain mean of all chunks covering the step.
"""
from __future__ import annotations

import numpy as np

AGGREGATION_MODES = ("ensemble", "latest", "average")
DEFAULT_DECAY = 0.1


def policy_blending(policy) -> tuple[str, float]:
    """How `policy` asks its chunks to be blended: its `aggregation` ("latest" without one)
    and its `ensemble_decay` (DEFAULT_DECAY without one)."""
    return getattr(policy, "aggregation", "latest"), getattr(policy, "ensemble_decay", DEFAULT_DECAY)


class ChunkAggregator:
    """Chunks keyed by the control step of their first target; `target(step)` combines them."""

    def __init__(self, mode: str = "ensemble", decay: float = DEFAULT_DECAY):
        if mode not in AGGREGATION_MODES:
            raise ValueError(f"aggregation mode must be one of {', '.join(AGGREGATION_MODES)}; got {mode!r}")
        if decay < 0:
            raise ValueError(f"ensemble decay must be >= 0, got {decay}")
        self.mode = mode
        self.decay = decay
        self._chunks: list[tuple[int, np.ndarray]] = []

    def reset(self) -> None:
        self._chunks = []

    def add(self, chunk: np.ndarray, start_step: int) -> None:
        """Add a (K, D) chunk whose first row is the target for control step `start_step`."""
        chunk = np.asarray(chunk, dtype=float)
        if chunk.ndim != 2 or len(chunk) == 0:
            raise ValueError(f"a chunk must be (K, D) with K >= 1, got shape {chunk.shape}")
        self._chunks.append((int(start_step), chunk))
        self._chunks.sort(key=lambda item: item[0])

    def target(self, step: int) -> np.ndarray | None:
        """The target for control step `step`, or None when no chunk covers it. Drops expired chunks."""
        self._chunks = [(start, c) for start, c in self._chunks if start + len(c) > step]
        covering = [c[step - start] for start, c in self._chunks if start <= step]
        if not covering:
            return None
        if self.mode == "latest":
            return covering[-1].copy()
        weights = np.ones(len(covering)) if self.mode == "average" else np.exp(-self.decay * np.arange(len(covering)))
        return np.average(np.stack(covering), axis=0, weights=weights)
