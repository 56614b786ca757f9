"""Closed-loop policy execution, without ROS: what vla_node runs between its topics.

A `ClosedLoop` turns a policy into a stream of joint targets:

- Time is divided into policy steps of CONTROL_DT (10 Hz), counted from the start of
  the instruction. Every `n_action_steps` steps a new chunk is due. It is asked for
  the moment the first camera frame (for a policy with a hand camera: the first pair
  of frames) captured in such a step arrives (so the frame is
  as new as it can be when the model sees it: frame -> target latency is the camera
  path plus one inference, never a wait for a clock), and it starts at the step its
  frame was captured in, so a frame that arrives late yields a chunk whose first rows
  are already past. A camera slower than the steps gets a chunk for every frame. An
  `AsyncInference` worker thread computes chunks, so the caller's control loop never
  waits on the model.
- Overlapping chunks combine through a ChunkAggregator (ensemble | latest | average).
- Within step k the published target ramps from the target of step k-1 to that of
  step k, reaching it at the end of the step: the motion the simulator makes for one
  target per step, the one the policy was trained on. `tick(now)` returns the point
  one control period ahead, because the safety filter takes a period to reach each
  target it accepts.

It holds (returns no target, with a reason) when there is no instruction, when the
newest image, joint state or (for a policy that uses one) wrist image is older than `max_age`, when no chunk covers the
current step yet, and after a policy error. Inferences that take longer than the
latency budget are discarded and counted.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from vla_ros.camera.pipeline import NewestFrameWorker
from vla_ros.policies.base import CONTROL_DT, Observation, Policy, check_chunk
from vla_ros.policies.chunking import DEFAULT_DECAY, ChunkAggregator


@dataclass
class TimedObservation:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    image_stamp: float  # capture time, seconds
    state: np.ndarray  # (8,) arm.COMMANDED_JOINTS positions
    state_stamp: float
    wrist_image: np.ndarray | None = None  # hand camera, for a policy that uses it
    wrist_stamp: float | None = None

    def stamps(self) -> dict[str, float]:
        """Each input's capture time by name (the wrist image only when there is one)."""
        stamps = {"image": self.image_stamp, "joint state": self.state_stamp}
        if self.wrist_stamp is not None:
            stamps["wrist image"] = self.wrist_stamp
        return stamps

    @property
    def oldest_stamp(self) -> float:
        return min(self.stamps().values())

    @property
    def frames_stamp(self) -> float:
        """Capture time of the older camera frame: a step's frames are all in once it is in that step."""
        return self.image_stamp if self.wrist_stamp is None else min(self.image_stamp, self.wrist_stamp)


@dataclass
class ChunkResult:
    """A finished inference: the chunk (or the error) for the step it was requested in."""

    instruction_id: str
    step: int
    observation_stamp: float
    chunk: np.ndarray | None
    seconds: float
    error: str = ""


@dataclass
class Target:
    positions: np.ndarray  # (8,) joint targets, arm.COMMANDED_JOINTS order
    stamp: float  # capture time of the newest observation behind it


@dataclass
class LoopStats:
    chunks_computed: int = 0
    inferences_discarded: int = 0
    policy_errors: int = 0
    holds: int = 0
    inference_seconds: deque = field(default_factory=lambda: deque(maxlen=200))


class AsyncInference:
    """`policy.select_action` on the camera pipeline's newest-item worker thread.

    A request made while the model is busy replaces any request still waiting (the
    newest observation wins); results go to `on_result` from the worker thread.
    """

    def __init__(self, policy: Policy, on_result: Callable[[ChunkResult], None]):
        self._policy = policy
        self._on_result = on_result
        self._worker = NewestFrameWorker(self._infer, self._on_error, name="inference")

    def request(self, instruction_id: str, instruction: str, step: int, observation: TimedObservation) -> None:
        self._worker.submit((instruction_id, instruction, step, observation))

    def stop(self, timeout: float = 5.0) -> None:
        self._worker.stop(timeout)

    def _infer(self, request: tuple) -> None:
        instruction_id, instruction, step, timed = request
        started = time.perf_counter()
        observation = Observation(timed.image, timed.state, wrist_image=timed.wrist_image)
        chunk = check_chunk(self._policy.select_action(observation, instruction))
        seconds = time.perf_counter() - started
        error = "" if np.all(np.isfinite(chunk)) else "the policy returned non-finite targets"
        self._on_result(ChunkResult(instruction_id, step, timed.oldest_stamp, None if error else chunk, seconds, error))

    def _on_error(self, request: tuple, error: Exception) -> None:
        # A backend's failure must not take the node down: report it, the loop holds.
        instruction_id, _, step, timed = request
        self._on_result(ChunkResult(instruction_id, step, timed.oldest_stamp, None, 0.0,
                                    f"{type(error).__name__}: {error}"))


class ClosedLoop:
    """The state of one instruction's execution; thread-safe (results arrive from the worker)."""

    def __init__(self, policy: Policy, *, n_action_steps: int, aggregation: str, max_age: float,
                 latency_budget: float, step_period: float = CONTROL_DT, control_period: float = 0.05,
                 ensemble_decay: float = DEFAULT_DECAY):
        if n_action_steps < 1:
            raise ValueError(f"n_action_steps must be >= 1, got {n_action_steps}")
        self.policy = policy
        self.n_action_steps = n_action_steps
        self.max_age = max_age
        self.latency_budget = latency_budget
        self.step_period = step_period
        self.control_period = control_period
        self.aggregation = aggregation
        self.stats = LoopStats()
        # Called from the worker thread with each accepted chunk (vla_node publishes them).
        self.on_chunk: Callable[[ChunkResult], None] | None = None
        self._aggregator = ChunkAggregator(aggregation, ensemble_decay)
        self._lock = threading.Lock()
        self._observation: TimedObservation | None = None
        self._instruction: tuple[str, str] | None = None  # (id, text)
        self._origin = 0.0
        self._requested_step = -1  # start step of the newest chunk asked for
        self._start_positions: np.ndarray | None = None
        self._stamps: dict[int, float] = {}  # chunk start step -> observation stamp
        self._error = ""
        self._worker = AsyncInference(policy, self._on_result)

    # -- inputs ---------------------------------------------------------------------
    def observe(self, observation: TimedObservation) -> None:
        with self._lock:
            self._observation = observation
            # Inputs further apart than max_age: a chunk from them would act on a stale input
            # (issue 8's gating), so only a consistent set asks for one.
            stamps = observation.stamps().values()
            if self._instruction is not None and not self._error and max(stamps) - min(stamps) <= self.max_age:
                self._request_if_due(observation)

    def start(self, instruction_id: str, text: str, now: float) -> None:
        """Begin a new instruction: the current chunk is dropped and the policy reset."""
        with self._lock:
            self.policy.reset()
            self._aggregator.reset()
            self._stamps.clear()
            self._instruction = (instruction_id, text)
            self._origin = now
            self._requested_step = -1
            self._error = ""
            # The newest observation starts it at once, if fresh; else the next fresh one does (a
            # first chunk from a frame older than max_age, e.g. from before a simulator reset,
            # was executed and stamped that old).
            newest = self._observation
            fresh = newest is not None and self._staleness(newest, now) is None
            self._start_positions = newest.state.copy() if fresh else None
            if fresh:
                self._request_if_due(newest)

    def stop(self) -> None:
        """No instruction any more (done, timed out, e-stopped): hold."""
        with self._lock:
            self._instruction = None
            self._aggregator.reset()

    def close(self) -> None:
        self._worker.stop()

    @property
    def instruction(self) -> tuple[str, str] | None:
        return self._instruction

    # -- the control tick -------------------------------------------------------------
    def tick(self, now: float) -> tuple[Target | None, str]:
        """The target to publish now, or None and the reason for holding.

        `now` is on the clock of the observation stamps (the node's ROS clock).
        """
        with self._lock:
            target, reason = self._tick(now)
        if target is None:
            self.stats.holds += 1
        return target, reason

    def _tick(self, now: float) -> tuple[Target | None, str]:
        if self._instruction is None:
            return None, "no instruction"
        if self._error:
            return None, f"policy error: {self._error}"
        observation = self._observation
        if observation is None:
            return None, "no observation yet"
        stale = self._staleness(observation, now)
        if stale:
            return None, stale
        if self._start_positions is None:
            self._start_positions = observation.state.copy()
        elapsed = max(0.0, now - self._origin)
        step = int(elapsed // self.step_period)
        current = self._aggregator.target(step)
        if current is None:
            return None, "waiting for the first chunk" if not self._stamps else "no chunk covers this step"
        previous = self._aggregator.target(step - 1) if step > 0 else None
        if previous is None:
            previous = self._start_positions if step == 0 else current
        fraction = min(1.0, (elapsed - step * self.step_period + self.control_period) / self.step_period)
        stamp = max((s for start, s in self._stamps.items() if start <= step), default=observation.image_stamp)
        return Target(previous + (current - previous) * fraction, stamp), ""

    def _staleness(self, observation: TimedObservation, now: float) -> str | None:
        """Why `observation` is too old to act on at `now` (an input older than max_age), or None."""
        for which, stamp in observation.stamps().items():
            if now - stamp > self.max_age:
                return f"{which} is stale ({now - stamp:.2f} s old > max_age {self.max_age} s)"
        return None

    def _request_if_due(self, observation: TimedObservation) -> None:
        """Ask for a chunk when this observation's frames were captured in a step that is due. With
        two cameras that waits for the second frame of the step: a chunk from the new scene frame
        and the previous hand frame would act on a frame a camera period old."""
        step = int(max(0.0, observation.frames_stamp - self._origin) // self.step_period)
        step -= step % self.n_action_steps
        if step > self._requested_step:
            self._requested_step = step
            self._worker.request(*self._instruction, step, observation)

    # -- results from the worker --------------------------------------------------------
    def _on_result(self, result: ChunkResult) -> None:
        with self._lock:
            if self._instruction is None or result.instruction_id != self._instruction[0]:
                return  # a chunk for an instruction that has ended
            self.stats.inference_seconds.append(result.seconds)
            if result.error:
                self.stats.policy_errors += 1
                self._error = result.error
                return
            if result.seconds > self.latency_budget:
                self.stats.inferences_discarded += 1
                self._requested_step = -1  # ask again with the next observation
                return
            self.stats.chunks_computed += 1
            self._aggregator.add(result.chunk, result.step)
            self._stamps[result.step] = result.observation_stamp
            for start in [s for s in self._stamps if s + len(result.chunk) <= result.step]:
                del self._stamps[start]
        if self.on_chunk is not None:
            self.on_chunk(result)
