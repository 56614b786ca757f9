"""Frame timing for camera ingestion: throttle, newest-frame-wins worker, stale detection, statistics.

No ROS imports; times are plain float seconds from a monotonic clock supplied by
the caller, so every piece tests deterministically.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

import numpy as np

Item = TypeVar("Item")


class RateLimiter:
    """Admits at most `max_rate` frames per second (max_rate <= 0: every frame).

    Admission times follow a grid of 1/max_rate so that input jitter does not
    lower the output rate: with 30 Hz in and 10 Hz allowed, every third frame
    passes, not every fourth. Two admitted frames are never closer than half a
    period (a late frame does not let the next one through at once), and a small
    slack absorbs clock jitter.
    """

    _SLACK = 0.05  # of a period

    def __init__(self, max_rate: float):
        self.period = 1.0 / max_rate if max_rate > 0 else 0.0
        self._next_due: float | None = None

    def admit(self, now: float) -> bool:
        if self.period == 0.0:
            return True
        if self._next_due is not None and now < self._next_due - self._SLACK * self.period:
            return False
        on_schedule = self._next_due is not None and now - self._next_due < self.period
        grid_due = (self._next_due if on_schedule else now) + self.period
        self._next_due = max(grid_due, now + self.period / 2)
        return True


class NewestFrameWorker(Generic[Item]):
    """Runs `handler(item)` on its own thread, always on the newest submitted item.

    A single slot, not a queue: an item submitted while the previous one still
    waits replaces it (submit says so, for drop counts), so a slow handler never builds a
    backlog. `on_error(item, exc)` hears about any exception the handler raises;
    the thread keeps running.
    """

    def __init__(self, handler: Callable[[Item], None], on_error: Callable[[Item, Exception], None], name: str):
        self._handler = handler
        self._on_error = on_error
        self._condition = threading.Condition()
        self._pending: Item | None = None
        self._has_pending = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: Item) -> bool:
        """Hand over `item`; returns True when it replaced an item that was never handled."""
        with self._condition:
            replaced = self._has_pending
            self._pending, self._has_pending = item, True
            self._condition.notify()
        return replaced

    def stop(self, timeout: float = 2.0) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._has_pending and not self._stopping:
                    self._condition.wait()
                if self._stopping:
                    return
                item, self._pending, self._has_pending = self._pending, None, False
            try:
                self._handler(item)
            except Exception as exc:  # noqa: BLE001 - a bad frame must not end the stream
                self._on_error(item, exc)


class StaleMonitor:
    """Tracks whether frames keep coming: stale after `timeout` seconds without one. Thread-safe.

    The clock starts at construction, so a source that never delivers goes stale too.
    """

    def __init__(self, timeout: float, now: float):
        self.timeout = timeout
        self._lock = threading.Lock()
        self._last_frame = now
        self.stale = False

    def frame(self, now: float) -> bool:
        """Record a frame; returns True when this frame ends a stale period."""
        with self._lock:
            self._last_frame = now
            recovered, self.stale = self.stale, False
        return recovered

    def check(self, now: float) -> bool:
        """Returns True when the view has just become stale."""
        with self._lock:
            if self.stale or now - self._last_frame <= self.timeout:
                return False
            self.stale = True
            return True

    def silence(self, now: float) -> float:
        """Seconds since the last frame (or since construction)."""
        with self._lock:
            return now - self._last_frame


class StreamStats:
    """Counters and latency windows of one image stream, shared by the ROS callbacks and the worker."""

    def __init__(self, window: int = 300):
        self._lock = threading.Lock()
        self.counts = dict.fromkeys(("received", "throttled", "dropped", "rejected", "published"), 0)
        self.last_error = ""
        # Ingest (message arrival / grab) to publish, and capture stamp to publish, in seconds.
        self._ingest_latency: deque[float] = deque(maxlen=window)
        self._capture_latency: deque[float] = deque(maxlen=window)
        self._previous_snapshot: dict[str, float] = {}

    def count(self, event: str) -> None:
        with self._lock:
            self.counts[event] += 1

    def reject(self, reason: str) -> None:
        with self._lock:
            self.counts["rejected"] += 1
            self.last_error = reason

    def published(self, ingest_to_publish: float, capture_to_publish: float) -> None:
        with self._lock:
            self.counts["published"] += 1
            self._ingest_latency.append(ingest_to_publish)
            self._capture_latency.append(capture_to_publish)

    def snapshot(self, now: float) -> dict[str, float | int | str]:
        """Totals, rates and rejections since the previous snapshot, latency percentiles in milliseconds."""
        with self._lock:
            counts = dict(self.counts)
            ingest = np.array(self._ingest_latency)
            capture = np.array(self._capture_latency)
            last_error = self.last_error
            previous = self._previous_snapshot
            self._previous_snapshot = {"time": now, **counts}
        values: dict[str, float | int | str] = dict(counts)
        values["rejected_since_last"] = counts["rejected"] - previous.get("rejected", 0)
        if previous and now > previous["time"]:
            elapsed = now - previous["time"]
            values["ingest_rate_hz"] = round((counts["received"] - previous["received"]) / elapsed, 2)
            values["publish_rate_hz"] = round((counts["published"] - previous["published"]) / elapsed, 2)
        for name, samples in (("ingest_to_publish", ingest), ("capture_to_publish", capture)):
            if samples.size:
                p50, p99 = np.percentile(samples, [50, 99]) * 1000.0
                values[f"{name}_p50_ms"] = round(float(p50), 2)
                values[f"{name}_p99_ms"] = round(float(p99), 2)
        if last_error:
            values["last_error"] = last_error
        return values
