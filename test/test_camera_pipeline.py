"""Frame timing: throttle, newest-frame worker, stale detection, statistics (no ROS, simulated clocks)."""
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_ros.camera.pipeline import NewestFrameWorker, RateLimiter, StaleMonitor, StreamStats


def _admitted(limiter: RateLimiter, times) -> list[float]:
    return [t for t in times if limiter.admit(t)]


@pytest.mark.parametrize("input_hz, max_hz, expected_hz", [(30, 10, 10), (25, 10, 10), (60, 30, 30), (5, 10, 5)])
def test_throttle_reaches_the_allowed_rate_despite_jitter(input_hz, max_hz, expected_hz):
    rng = np.random.default_rng(0)
    arrivals = np.arange(0, 10, 1 / input_hz) + rng.normal(0, 0.001, int(round(10 * input_hz)))
    admitted = _admitted(RateLimiter(max_hz), np.sort(arrivals))
    assert abs(len(admitted) - 10 * expected_hz) <= 1


def test_zero_max_rate_admits_everything():
    assert len(_admitted(RateLimiter(0.0), np.linspace(0, 1, 500))) == 500


def test_throttle_restarts_its_schedule_after_a_pause():
    limiter = RateLimiter(10.0)
    assert _admitted(limiter, [0.0, 0.1, 0.2]) == [0.0, 0.1, 0.2]
    # After 5 s of silence, no burst to catch up: the next frames are spaced by a period again.
    assert _admitted(limiter, [5.0, 5.01, 5.02, 5.1]) == [5.0, 5.1]


def test_a_late_frame_does_not_let_the_next_one_through_at_once():
    limiter = RateLimiter(10.0)
    # 0.199 is late for the 0.1 slot; 0.2 would be on the grid but is 1 ms later: half a period must pass.
    assert _admitted(limiter, [0.0, 0.199, 0.2, 0.25, 0.3, 0.35]) == [0.0, 0.199, 0.25, 0.35]


@settings(max_examples=200, deadline=None)
@given(
    max_rate=st.floats(1.0, 100.0),
    gaps=st.lists(st.floats(0.0, 0.2), min_size=1, max_size=200),
)
def test_admitted_frames_respect_the_rate(max_rate, gaps):
    limiter = RateLimiter(max_rate)
    arrivals = np.cumsum(gaps)
    admitted = np.array(_admitted(limiter, arrivals))
    assert admitted.size and admitted[0] == arrivals[0], "the first frame always passes"
    slack = RateLimiter._SLACK * limiter.period
    assert np.all(np.diff(admitted) >= limiter.period / 2 - slack - 1e-9)
    # Never more than max_rate on average, over any stretch of admitted frames.
    for i in range(admitted.size):
        for j in range(i + 1, admitted.size):
            assert admitted[j] - admitted[i] >= (j - i) * (limiter.period - slack) - limiter.period / 2 - 1e-9


class _BlockingHandler:
    """Records items; blocks on the first one until released, to hold the worker busy."""

    def __init__(self):
        self.items = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.done = threading.Event()

    def __call__(self, item):
        self.started.set()
        self.release.wait(5.0)
        self.items.append(item)
        if item == "last":
            self.done.set()


def test_worker_keeps_only_the_newest_frame_while_busy():
    handler = _BlockingHandler()
    worker = NewestFrameWorker(handler, lambda item, err: None, name="test_worker")
    try:
        assert worker.submit("first") is False
        assert handler.started.wait(5.0)
        # The worker is busy with "first": each new frame replaces the waiting one.
        assert worker.submit("second") is False
        assert worker.submit("third") is True
        assert worker.submit("last") is True
        handler.release.set()
        assert handler.done.wait(5.0)
        assert handler.items == ["first", "last"]
    finally:
        worker.stop()


def test_worker_reports_handler_errors_and_keeps_going():
    errors, handled, done = [], [], threading.Event()

    def handler(item):
        if item == "bad":
            raise ValueError("cannot decode")
        handled.append(item)
        done.set()

    worker = NewestFrameWorker(handler, lambda item, err: errors.append((item, str(err))), name="test_worker")
    try:
        worker.submit("bad")
        for _ in range(500):  # let "bad" be taken before "good" arrives
            if errors:
                break
            threading.Event().wait(0.01)
        worker.submit("good")
        assert done.wait(5.0)
        assert errors == [("bad", "cannot decode")] and handled == ["good"]
    finally:
        worker.stop()


def test_worker_stops_promptly():
    worker = NewestFrameWorker(lambda item: None, lambda item, err: None, name="test_worker")
    worker.stop(timeout=2.0)
    assert not worker._thread.is_alive()


def test_stale_monitor_reports_each_transition_once():
    monitor = StaleMonitor(timeout=1.0, now=0.0)
    assert not monitor.check(0.9) and not monitor.stale
    assert monitor.check(1.1) and monitor.stale  # never got a frame: stale after the timeout
    assert not monitor.check(1.5)  # reported once
    assert monitor.frame(2.0) and not monitor.stale  # recovery reported
    assert not monitor.frame(2.1)
    assert monitor.silence(2.6) == pytest.approx(0.5)
    assert not monitor.check(3.0) and monitor.check(3.2)


def test_stream_stats_rates_and_latency_percentiles():
    stats = StreamStats(window=100)
    assert "ingest_rate_hz" not in stats.snapshot(0.0)  # no interval yet
    for i in range(100):
        stats.count("received")
        stats.published(ingest_to_publish=(i + 1) / 1000.0, capture_to_publish=0.010)
    stats.count("dropped")
    stats.reject("unsupported image encoding 'rgb9'")
    values = stats.snapshot(2.0)
    assert values["ingest_rate_hz"] == 50.0 and values["publish_rate_hz"] == 50.0
    assert values["ingest_to_publish_p50_ms"] == pytest.approx(50.5)
    assert values["ingest_to_publish_p99_ms"] == pytest.approx(99.01)
    assert values["capture_to_publish_p50_ms"] == pytest.approx(10.0)
    assert values["dropped"] == 1 and values["rejected"] == 1 and values["rejected_since_last"] == 1
    assert values["last_error"] == "unsupported image encoding 'rgb9'"
    later = stats.snapshot(3.0)
    assert later["rejected_since_last"] == 0 and later["publish_rate_hz"] == 0.0 and later["rejected"] == 1
