"""ClosedLoop (vla_ros/inference.py): async inference, chunk timing, ramps and holds, without ROS."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from vla_ros.inference import ClosedLoop, TimedObservation

STEP = 0.1
START = np.zeros(8)


class CountingPolicy:
    """Chunk row i = (number of calls so far) + i on every joint, so tests can see which call produced a target."""

    def __init__(self, chunk_size=4, delay=0.0, error=None):
        self.calls = 0
        self.instructions = []
        self.chunk_size, self.delay, self.error = chunk_size, delay, error
        self.done = threading.Event()

    def reset(self):
        pass

    def select_action(self, observation, instruction):
        time.sleep(self.delay)
        self.calls += 1
        self.instructions.append(instruction)
        self.wrist_image = observation.wrist_image
        try:
            if self.error:
                raise self.error
            return np.array([[self.calls + i] * 8 for i in range(self.chunk_size)], dtype=float)
        finally:
            self.done.set()


def make_loop(policy, **options):
    settings = {"n_action_steps": 1, "aggregation": "latest", "max_age": 0.2, "latency_budget": 0.5,
                "step_period": STEP, "control_period": 0.05, **options}
    loop = ClosedLoop(policy, **settings)
    return loop


def observe(loop, t, image_stamp=None):
    loop.observe(TimedObservation(np.zeros((8, 8, 3), np.uint8), t if image_stamp is None else image_stamp,
                                  START.copy(), t))


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return predicate()


@pytest.fixture
def closing():
    loops = []
    yield loops.append
    for loop in loops:
        loop.close()


def test_holds_without_instruction_then_ramps_from_the_start_state_to_the_chunk(closing):
    policy = CountingPolicy()
    loop = make_loop(policy)
    closing(loop)
    observe(loop, 100.0)
    assert loop.tick(100.0) == (None, "no instruction")
    loop.start("a", "pick up the red cube", 100.0)
    target, reason = loop.tick(100.0)  # asks for the first chunk
    assert target is None and reason == "waiting for the first chunk"
    assert wait_for(lambda: loop.stats.chunks_computed == 1)
    # Step 0 ramps from the start state (0) to chunk row 0 (= 1), one control period ahead.
    target, _ = loop.tick(100.0)
    np.testing.assert_allclose(target.positions, 0.5)
    assert target.stamp == 100.0
    target, _ = loop.tick(100.05)
    np.testing.assert_allclose(target.positions, 1.0)
    assert policy.instructions == ["pick up the red cube"]


def started_on_go_home(closing, policy, **options):
    """A loop on `policy` (closed at the test's end), told "go home" at t = 0, its first chunk computed."""
    loop = make_loop(policy, **options)
    closing(loop)
    observe(loop, 0.0)
    loop.start("a", "go home", 0.0)
    loop.tick(0.0)
    assert wait_for(lambda: loop.stats.chunks_computed == 1)
    return loop


def test_asks_again_every_n_action_steps_and_blends_from_the_previous_step(closing):
    policy = CountingPolicy(chunk_size=4)
    loop = started_on_go_home(closing, policy, n_action_steps=2)
    observe(loop, 0.1)
    target, _ = loop.tick(0.1)  # step 1: row 1 of chunk 1 (= 2), no new request
    np.testing.assert_allclose(target.positions, 1.5)  # halfway from row 0 (1) to row 1 (2)
    time.sleep(0.05)
    assert policy.calls == 1
    observe(loop, 0.2)
    loop.tick(0.2)  # step 2: a new chunk is due
    assert wait_for(lambda: loop.stats.chunks_computed == 2)
    target, _ = loop.tick(0.25)
    # Chunk 2 (rows 2, 3, ...) starts at step 2, latest mode: step 2 -> 2, step 1 was chunk 1's row 1 = 2.
    np.testing.assert_allclose(target.positions, 2.0)
    target, _ = loop.tick(0.35)  # step 3, fraction 1: chunk 2's row 1 = 3
    np.testing.assert_allclose(target.positions, 3.0)


def test_ensemble_mode_blends_overlapping_chunks_with_the_given_decay(closing):
    loop = started_on_go_home(closing, CountingPolicy(chunk_size=4), n_action_steps=2, aggregation="ensemble",
                              ensemble_decay=1.0)
    observe(loop, 0.2)
    loop.tick(0.2)  # step 2: chunk 2 is due
    assert wait_for(lambda: loop.stats.chunks_computed == 2)
    target, _ = loop.tick(0.35)  # step 3: chunk 1's row 3 (= 4), weight 1, and chunk 2's row 1 (= 3), weight e^-1
    np.testing.assert_allclose(target.positions, (4 + 3 * np.exp(-1)) / (1 + np.exp(-1)))


def test_a_stale_image_or_joint_state_holds_and_says_which(closing):
    loop = make_loop(CountingPolicy())
    closing(loop)
    observe(loop, 10.0, image_stamp=9.5)
    loop.start("a", "open the gripper", 10.0)
    target, reason = loop.tick(10.0)
    assert target is None and reason.startswith("image is stale (0.50 s old")
    observe(loop, 10.0)
    target, reason = loop.tick(10.3)
    assert target is None and reason.startswith("image is stale")
    loop.observe(TimedObservation(np.zeros((8, 8, 3), np.uint8), 10.3, START.copy(), 10.0))
    target, reason = loop.tick(10.3)
    assert target is None and reason.startswith("joint state is stale")


def test_the_wrist_image_reaches_the_policy_and_holds_the_loop_when_stale(closing):
    policy = CountingPolicy()
    loop = make_loop(policy)
    closing(loop)
    wrist = np.full((8, 8, 3), 7, np.uint8)
    loop.start("a", "pick up the red cube", 10.0)
    loop.observe(TimedObservation(np.zeros((8, 8, 3), np.uint8), 10.0, START.copy(), 10.0, wrist, 9.7))
    time.sleep(0.05)
    assert policy.calls == 0  # a wrist image older than max_age against the others: no chunk from it
    loop.observe(TimedObservation(np.zeros((8, 8, 3), np.uint8), 10.01, START.copy(), 10.01, wrist, 10.0))
    assert wait_for(lambda: loop.stats.chunks_computed == 1)
    assert policy.wrist_image is wrist
    # Step 1's scene frame with step 0's hand frame asks for nothing; step 1's hand frame does.
    loop.observe(TimedObservation(np.zeros((8, 8, 3), np.uint8), 10.11, START.copy(), 10.11, wrist, 10.0))
    time.sleep(0.05)
    assert policy.calls == 1
    newer = wrist.copy()
    loop.observe(TimedObservation(np.zeros((8, 8, 3), np.uint8), 10.11, START.copy(), 10.11, newer, 10.11))
    assert wait_for(lambda: loop.stats.chunks_computed == 2)
    assert policy.wrist_image is newer
    assert loop.tick(10.12)[0] is not None
    target, reason = loop.tick(10.35)
    assert target is None and reason.startswith("image is stale")
    loop.observe(TimedObservation(np.zeros((8, 8, 3), np.uint8), 10.36, START.copy(), 10.36, wrist, 10.11))
    target, reason = loop.tick(10.36)
    assert target is None and reason.startswith("wrist image is stale (0.25 s old")


def test_an_instruction_starts_on_a_fresh_observation_not_a_stale_one(closing):
    policy = CountingPolicy()
    loop = make_loop(policy)
    closing(loop)
    observe(loop, 9.0)  # the newest frame is 1 s old when the instruction comes (a paused camera)
    loop.start("a", "go home", 10.0)
    time.sleep(0.05)
    assert policy.calls == 0
    # An image with a joint state older than max_age asks for nothing either.
    loop.observe(TimedObservation(np.zeros((8, 8, 3), np.uint8), 10.05, START.copy(), 9.8))
    time.sleep(0.05)
    assert policy.calls == 0
    observe(loop, 10.1)
    assert wait_for(lambda: loop.stats.chunks_computed == 1)
    target, _ = loop.tick(10.12)
    assert target is not None and target.stamp == 10.1


def test_a_failing_policy_holds_with_its_error_until_the_next_instruction(closing):
    policy = CountingPolicy(error=RuntimeError("CUDA out of memory"))
    loop = make_loop(policy)
    closing(loop)
    observe(loop, 0.0)
    loop.start("a", "close the gripper", 0.0)
    loop.tick(0.0)
    assert wait_for(lambda: loop.stats.policy_errors == 1)
    target, reason = loop.tick(0.05)
    assert target is None and reason == "policy error: RuntimeError: CUDA out of memory"
    policy.error = None
    loop.start("b", "close the gripper", 1.0)
    observe(loop, 1.0)
    loop.tick(1.0)
    assert wait_for(lambda: loop.stats.chunks_computed == 1)
    assert loop.tick(1.0)[0] is not None


def test_non_finite_chunks_are_policy_errors(closing):
    class NanPolicy(CountingPolicy):
        def select_action(self, observation, instruction):
            return np.full((2, 8), np.nan)

    loop = make_loop(NanPolicy())
    closing(loop)
    observe(loop, 0.0)
    loop.start("a", "x", 0.0)
    loop.tick(0.0)
    assert wait_for(lambda: loop.stats.policy_errors == 1)
    assert loop.tick(0.0) == (None, "policy error: the policy returned non-finite targets")


def test_inferences_over_the_latency_budget_are_discarded_and_retried(closing):
    policy = CountingPolicy(delay=0.05)
    loop = make_loop(policy, latency_budget=0.01)
    closing(loop)
    observe(loop, 0.0)
    loop.start("a", "x", 0.0)
    loop.tick(0.0)
    assert wait_for(lambda: loop.stats.inferences_discarded == 1)
    assert loop.tick(0.01) == (None, "waiting for the first chunk")
    observe(loop, 0.01)  # and asks again with the next observation
    assert wait_for(lambda: loop.stats.inferences_discarded == 2)
    assert loop.stats.chunks_computed == 0


def test_a_new_instruction_drops_the_running_chunk_and_late_results_of_the_old_one(closing):
    policy = CountingPolicy(delay=0.05)
    loop = make_loop(policy)
    closing(loop)
    observe(loop, 0.0)
    loop.start("a", "pick up the red cube", 0.0)
    loop.tick(0.0)
    loop.start("b", "push the blue cube left", 0.01)  # while "a" is (or is about to be) computed
    assert wait_for(lambda: loop.stats.chunks_computed == 1)
    time.sleep(0.15)  # whatever of "a" was running has finished
    # "b" was asked for at its start, with the newest frame; a result for "a" was dropped.
    assert loop.stats.chunks_computed == 1 and policy.instructions[-1] == "push the blue cube left"
    loop.stop()
    assert loop.tick(0.02) == (None, "no instruction")


def test_a_chunk_is_asked_for_when_the_first_frame_of_its_step_arrives_and_starts_at_that_step(closing):
    policy = CountingPolicy(chunk_size=4)
    loop = make_loop(policy, n_action_steps=1)
    closing(loop)
    observe(loop, 0.0)
    loop.start("a", "x", 0.0)  # asked at once with the newest frame
    assert wait_for(lambda: policy.calls == 1)
    observe(loop, 0.05)  # step 0 has its chunk
    loop.tick(0.11)  # step 1 is due, but ticks never ask: only a frame captured in it does
    time.sleep(0.02)
    assert policy.calls == 1
    observe(loop, 0.13, image_stamp=0.12)  # the first frame of step 1: asked at once
    assert wait_for(lambda: policy.calls == 2)
    # A frame captured in step 2 that arrives in step 3: its chunk starts at step 2, so
    # step 3 runs its second row (call 3 -> rows 3, 4, ...).
    observe(loop, 0.33, image_stamp=0.21)
    assert wait_for(lambda: loop.stats.chunks_computed == 3)
    target, _ = loop.tick(0.35)
    np.testing.assert_allclose(target.positions, 4.0)
    assert target.stamp == 0.21
    # A camera slower than the steps: a chunk for every frame, at its own step.
    observe(loop, 0.56, image_stamp=0.55)
    assert wait_for(lambda: loop.stats.chunks_computed == 4)
    target, _ = loop.tick(0.58)
    assert target.stamp == 0.55


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match="n_action_steps"):
        make_loop(CountingPolicy(), n_action_steps=0)
    with pytest.raises(ValueError, match="aggregation mode"):
        make_loop(CountingPolicy(), aggregation="median")
