"""The safety filter core: every joint target passes through here before it reaches the arm.

Plain Python (no ROS): the node (vla_ros/nodes/safety_filter_node.py) and the
evaluator call the same object. Time is always passed in (seconds, any clock),
so runs are deterministic.

    flt = SafetyFilter(SafetyConfig())
    flt.set_measured(names, positions, stamp=t, now=t)      # every /joint_states
    flt.set_target(names, positions, stamp=t, now=t)        # every command
    out = flt.step(now=t)                                    # at the fixed output rate
    out.positions  # COMMANDED_JOINTS order, or None: publish nothing (FAULT)

How a step is computed (docs/SAFETY.md has the reasoning):
- The reference moves linearly from where it was to each accepted target over
  the targets' measured interval, so a slow policy still gives a smooth stream.
- The desired velocity follows the reference and closes any lag no faster than
  the joints can brake, keeping the direction of motion (one scale per group:
  the 7 arm joints, the gripper).
- Saturation keeps every output within the position, velocity, acceleration and
  jerk limits as seen by finite differences of consecutive outputs at dt, and
  only ever enters states from which every joint can still brake to rest
  inside its position range and the workspace. Braking (one step of the
  per-joint brake) is always admissible, which is what makes this invariant.
- Jerk is bounded by using at most min(A, J*dt/2) of acceleration per step:
  two consecutive accelerations then differ by at most J*dt.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from vla_ros import arm
from vla_ros.safety.limits import GRIPPER_INDEX, JointLimitSet, Workspace, build_joint_limits

N_JOINTS = len(arm.COMMANDED_JOINTS)
N_ARM = len(arm.ARM_JOINTS)
# Direction is kept within each group: the gripper must not slow the arm down.
_GROUPS = (np.arange(N_ARM), np.array([GRIPPER_INDEX]))
# Relative slack below which a scale factor counts as "did not act".
_ACT_TOLERANCE = 1e-9
# Rounding of the workspace distances (m) below which a brake path still counts as inside.
_WORKSPACE_TOLERANCE = 1e-12


class SafetyState(IntEnum):
    """Values match the constants of vla_ros/msg/SafetyStatus."""

    OK = 0
    LIMITED = 1
    HOLD = 2
    ESTOP = 3
    FAULT = 4


@dataclass(frozen=True)
class SafetyConfig:
    """Everything the filter needs; config.py builds it from the node's parameters or YAML."""

    rate: float = 100.0  # Hz of step() calls; dt = 1 / rate
    command_timeout: float = 0.06  # s without an accepted target -> HOLD: a dead source stops the arm within 0.1 s
    state_timeout: float = 0.2  # s without accepted joint states -> FAULT
    max_command_age: float = 0.5  # s; older target stamps are rejected
    max_future_stamp: float = 0.05  # s; stamps further in the future are rejected
    confidence_threshold: float = 0.3  # action chunks below this -> HOLD
    max_step_from_measured: float = 0.2  # rad an arm joint's output may lead /joint_states
    joint_limits: JointLimitSet = field(default_factory=build_joint_limits)
    workspace: Workspace = field(default_factory=Workspace)

    def __post_init__(self):
        positive = ("rate", "command_timeout", "state_timeout", "max_command_age", "max_step_from_measured")
        errors = [f"{name} must be > 0, got {getattr(self, name)}" for name in positive
                  if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0)]
        if not (math.isfinite(self.max_future_stamp) and self.max_future_stamp >= 0):
            errors.append(f"max_future_stamp must be >= 0, got {self.max_future_stamp}")
        if not (math.isfinite(self.confidence_threshold) and 0 <= self.confidence_threshold <= 1):
            errors.append(f"confidence_threshold must be in [0, 1], got {self.confidence_threshold}")
        if errors:
            raise ValueError("invalid safety configuration: " + "; ".join(errors))

    @property
    def dt(self) -> float:
        return 1.0 / self.rate


@dataclass(frozen=True)
class SafetyOutput:
    """One step's result. positions is None when nothing may be published (FAULT)."""

    positions: np.ndarray | None
    state: SafetyState
    reason: str
    active_limits: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """Answer to one input: accepted or not, and why (or what was changed)."""

    accepted: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.accepted


@dataclass
class SafetyCounters:
    commands_received: int = 0
    commands_rejected: int = 0
    commands_limited: int = 0  # accepted targets that a limit clipped or slowed
    states_rejected: int = 0
    outputs: int = 0  # steps that produced positions
    outputs_limited: int = 0  # LIMITED steps: a limit changed a followed command
    hold_outputs: int = 0
    estop_outputs: int = 0
    fault_steps: int = 0  # steps with nothing to publish
    estops_triggered: int = 0
    rejections: dict[str, int] = field(default_factory=dict)  # category -> count


@dataclass(frozen=True)
class _Segment:
    """The reference from one accepted target to the next: a straight line over `steps` output periods."""

    start: np.ndarray
    goal: np.ndarray
    steps: int

    def position(self, progress: int) -> np.ndarray:
        """The reference `progress` periods into the segment (the goal once it is over)."""
        return self.start + min(1.0, progress / self.steps) * (self.goal - self.start)


class InputError(ValueError):
    """An input message is malformed; the message says how."""


def positions_by_name(names: Sequence[str], positions, *, ignore_extra: bool,
                      joints: Sequence[str] = arm.COMMANDED_JOINTS) -> np.ndarray:
    """Positions of `joints` (by default the COMMANDED_JOINTS), matched by name, in that order.

    Raises InputError for an empty message, mismatched lengths, duplicate,
    unknown (unless `ignore_extra`) or missing names, and NaN/Inf positions.
    """
    names = [str(n) for n in names]
    try:
        values = np.asarray(positions, dtype=float).reshape(-1)
    except (TypeError, ValueError) as err:
        raise InputError(f"positions are not numbers: {err}") from err
    if not names:
        raise InputError("empty message: no joint names")
    if len(names) != len(values):
        raise InputError(f"{len(names)} joint names but {len(values)} positions")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"duplicate joint names: {', '.join(duplicates)}")
    unknown = [n for n in names if n not in joints]
    if unknown and not ignore_extra:
        raise InputError(f"unknown joints: {', '.join(unknown)}")
    missing = [n for n in joints if n not in names]
    if missing:
        raise InputError(f"missing joints: {', '.join(missing)}")
    index = {n: i for i, n in enumerate(names)}
    picked = values[[index[n] for n in joints]]
    bad = [n for n, v in zip(joints, picked) if not math.isfinite(v)]
    if bad:
        raise InputError(f"non-finite positions for {', '.join(bad)}")
    return picked


def stamp_problem(stamp: float | None, now: float, max_age: float, max_future: float) -> str | None:
    """Why a message stamp is unacceptable at `now`, or None when it is fine."""
    if stamp is None or not math.isfinite(stamp):
        return f"bad stamp {stamp!r}"
    if stamp <= 0.0:
        return "unstamped (header.stamp is zero)"
    age = now - stamp
    if age < -max_future:
        return f"stamp {-age:.3f} s in the future (max {max_future:g} s)"
    if age > max_age:
        return f"stale: stamp {age:.3f} s old (max {max_age:g} s)"
    return None


# Measured positions this close past a limit are read as at the limit (sensor and contact noise).
MEASUREMENT_SLACK = 1e-3
# Consecutive joint states further apart than JUMP_SPEED_FACTOR x the velocity limit x the
# time between them, plus JUMP_SLACK (rad, m), are not one arm moving: a restarted simulator
# or a swapped driver. Generous, so a real arm at its limits never trips it.
JUMP_SPEED_FACTOR = 2.0
JUMP_SLACK = 0.05


class SafetyFilter:
    """Turns a stream of joint targets into a stream of safe joint commands at a fixed rate."""

    def __init__(self, config: SafetyConfig | None = None):
        self.config = config or SafetyConfig()
        limits = self.config.joint_limits
        self._dt = self.config.dt
        self._lower, self._upper = limits.lower, limits.upper
        self._velocity = limits.velocity
        usable_acceleration = np.minimum(limits.acceleration, limits.jerk * self._dt / 2)
        # Largest velocity change per step; jerk-bound joints get a smaller one.
        self._delta = usable_acceleration * self._dt
        self._accel_label = ["jerk" if j * self._dt / 2 < a else "acceleration"
                             for a, j in zip(limits.acceleration, limits.jerk)]
        self.counters = SafetyCounters()
        self._measured: np.ndarray | None = None
        self._measured_time: float | None = None
        self._measured_stamp: float | None = None
        self._measured_arrival: float | None = None  # monotonic wall clock, see set_measured
        self._latest_time: float | None = None  # the latest `now` any input or step was given
        self._restart_reason: str | None = None  # the stream was dropped: the next step reports FAULT
        self._q: np.ndarray | None = None  # last output
        self._v: np.ndarray | None = None  # (last output - the one before) / dt
        self._segment: _Segment | None = None  # what is being followed; None: nothing
        self._progress = 0  # output periods into the segment
        self._goal_limited = False
        self._target_time: float | None = None
        self._target_stamp: float | None = None
        self._target_interval: float | None = None  # smoothed; None until two targets arrived
        self._confidence: float | None = None
        self._estop_reason: str | None = None
        self._waiting_reason = "waiting for /joint_states"  # the FAULT reason while no state is known
        self.last_rejection = ""

    # ----------------------------------------------------------------- inputs
    def set_measured(self, names: Sequence[str], positions, stamp: float, now: float,
                     arrival: float | None = None) -> Verdict:
        """Joint states (/joint_states). Extra joints are ignored; all COMMANDED_JOINTS must be there.

        States that do not continue the last accepted ones (after a state timeout, or further
        than the arm can move) restart the command stream at the arm. `arrival` is a monotonic
        wall-clock reading (default: `now`): on simulated time `now` stands still while the
        simulator is gone, and a restarted simulator's clock can pass the old one before this
        node hears it, so only a silence on the wall clock shows the restart."""
        self._watch_clock(now)
        try:
            measured = positions_by_name(names, positions, ignore_extra=True)
        except InputError as err:
            return self._reject_state(f"joint states rejected: {err}")
        problem = stamp_problem(stamp, now, self.config.state_timeout, self.config.max_future_stamp)
        if problem:
            return self._reject_state(f"joint states rejected: {problem}")
        arrival = now if arrival is None else arrival
        discontinuity = self._discontinuity(measured, stamp, now, arrival)
        if discontinuity:
            self._restart_stream(discontinuity)
        self._measured, self._measured_time, self._measured_stamp = measured, now, stamp
        self._measured_arrival = arrival
        return Verdict(True)

    def set_confidence(self, confidence: float) -> Verdict:
        """The latest action chunk's confidence: below the threshold the filter holds until a confident one."""
        try:
            self._confidence = float(confidence)
        except (TypeError, ValueError):
            self._confidence = math.nan  # unreadable confidence: gate closed
        problem = self.confidence_problem()
        return Verdict(problem is None, problem or "")

    def set_target(self, names: Sequence[str], positions, stamp: float, now: float,
                   confidence: float | None = None) -> Verdict:
        """A joint target (/vla/joint_targets). `confidence`, when given, also drives the confidence gate."""
        self.counters.commands_received += 1
        self._watch_clock(now)
        if confidence is not None:
            self.set_confidence(confidence)
        try:
            target = positions_by_name(names, positions, ignore_extra=False)
        except InputError as err:
            return self._reject_command("malformed", str(err))
        problem = stamp_problem(stamp, now, self.config.max_command_age, self.config.max_future_stamp)
        if problem:
            return self._reject_command("stamp", problem)
        if self._target_stamp is not None and stamp < self._target_stamp:
            return self._reject_command("stamp", f"out of order: stamp older than the last accepted target by "
                                                 f"{self._target_stamp - stamp:.3f} s")
        state_problem = self._fault_reason(now)
        if state_problem:  # never (re)start the stream from a stale measurement
            return self._reject_command("no_state", state_problem)
        if self._q is None:
            refused = self._start_at_measured()
            if refused:
                return self._reject_command("no_state", refused)
        blocked = self._blocking_reason()
        if blocked:
            category, reason = blocked
            return self._reject_command(category, reason)
        target, notes = self._clip_target(target)

        if self._target_time is not None and 0 < now - self._target_time <= self.config.command_timeout + 1e-9:
            # Smoothed interval between targets: the reference takes that long to reach each one.
            interval = now - self._target_time
            self._target_interval = interval if self._target_interval is None else \
                self._target_interval + 0.3 * (interval - self._target_interval)
        start = self._q if self._segment is None else self._segment.position(self._progress)
        self._segment = _Segment(start, target, max(1, round((self._target_interval or self._dt) / self._dt)))
        self._progress = 0
        self._target_time, self._target_stamp = now, stamp
        self._goal_limited = bool(notes)
        if notes:
            self.counters.commands_limited += 1
        return Verdict(True, notes)

    def trigger_estop(self, reason: str = "e-stop") -> None:
        """Latch the emergency stop: the arm brakes to rest and holds until reset_estop()."""
        if self._estop_reason is None:
            self.counters.estops_triggered += 1
            self._estop_reason = reason
        self._drop_reference()

    def reset_estop(self) -> bool:
        """Release a latched e-stop; motion resumes only with a new target. Returns whether it was latched."""
        was_latched = self._estop_reason is not None
        self._estop_reason = None
        self._drop_reference()
        return was_latched

    @property
    def estop_latched(self) -> bool:
        return self._estop_reason is not None

    @property
    def command(self) -> np.ndarray | None:
        """The last command output (COMMANDED_JOINTS order), None before the first or after a fault."""
        return None if self._q is None else self._q.copy()

    @property
    def measured_time(self) -> float | None:
        return self._measured_time

    @property
    def confidence(self) -> float | None:
        return self._confidence

    def confidence_problem(self) -> str | None:
        """Why the confidence gate is closed, or None when it is open."""
        if self._confidence is None:
            return None  # no action chunks seen: the gate is open (not every command source has one)
        threshold = self.config.confidence_threshold
        if not (math.isfinite(self._confidence) and self._confidence >= threshold):
            return f"low confidence {self._confidence:.3f} < {threshold:g}"
        return None

    # ------------------------------------------------------------------- step
    def step(self, now: float, arrival: float | None = None) -> SafetyOutput:
        """The command for this output period. Call at the configured rate.

        `arrival` is a reading of set_measured's monotonic wall clock (default: none, no
        wall-clock check): on simulated time a restarted simulator's clock can resume a little
        past the old one before any of its joint states arrive, so only the wall clock shows
        that the last state is old."""
        self._watch_clock(now)
        fault, self._restart_reason = self._restart_reason or self._fault_reason(now, arrival), None
        if fault:
            self._q = self._v = None
            self._drop_reference()
            self.counters.fault_steps += 1
            if self._estop_reason is not None:  # still worth knowing while nothing moves
                fault += f"; e-stop latched ({self._estop_reason})"
            return SafetyOutput(None, SafetyState.FAULT, fault)
        if self._q is None:
            refused = self._start_at_measured()
            if refused:
                self.counters.fault_steps += 1
                return SafetyOutput(None, SafetyState.FAULT, refused)

        state, reason = self._hold_state(now)
        labels: list[str] = []
        if state is None:
            v_desired = self._desired_velocity()
        else:
            self._drop_reference()
            v_desired = np.zeros(N_JOINTS)
        q_next, v_next = self._advance(self._saturate(v_desired, labels, following=state is None))
        violated = self._workspace_violation(q_next, v_next)
        if violated:
            q_next, v_next = self._advance(self._brake_velocity())
            labels.extend(violated)
        self._q, self._v = q_next, v_next

        active = tuple(dict.fromkeys(labels))
        self.counters.outputs += 1
        if state is None:
            if active:
                state, reason = SafetyState.LIMITED, "limited: " + ", ".join(active)
                self.counters.outputs_limited += 1
                if not self._goal_limited:
                    self._goal_limited = True
                    self.counters.commands_limited += 1
            else:
                state, reason = SafetyState.OK, "following commands"
        elif state == SafetyState.ESTOP:
            self.counters.estop_outputs += 1
        else:
            self.counters.hold_outputs += 1
        return SafetyOutput(q_next.copy(), state, reason, active)

    # -------------------------------------------------------------- internals
    def _start_at_measured(self) -> str | None:
        """(Re)start the command stream where the arm is, at rest; or say why it cannot.

        A measurement past a limit by no more than MEASUREMENT_SLACK (a finger resting
        against its stop reads 0.04001 m) starts at the limit. A measurement further past a
        joint limit, or outside the workspace, is refused: holding there would publish a
        command outside the limits (and such a measurement is as likely wrong as true: a
        fuzzed /joint_states did it), so nothing is published until the arm is measured inside."""
        inside = np.clip(self._measured, self._lower, self._upper)
        beyond = np.flatnonzero(np.abs(inside - self._measured) > MEASUREMENT_SLACK)
        if len(beyond):
            names = ", ".join(arm.COMMANDED_JOINTS[i] for i in beyond)
            return f"measured position past the joint limits ({names}): no command until it is inside"
        check = self.config.workspace.check(inside[:N_ARM])
        if check.violation > 0:
            return (f"measured pose outside the workspace ({', '.join(check.violated)}): "
                    "no command until it is inside")
        self._q, self._v = inside, np.zeros(N_JOINTS)
        return None

    def _advance(self, velocity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The next command at `velocity`, never past a position limit, and the velocity that takes
        the command there."""
        q_next = np.clip(self._q + self._dt * velocity, self._lower, self._upper)
        return q_next, (q_next - self._q) / self._dt

    def _reject_command(self, category: str, reason: str) -> Verdict:
        self.counters.commands_rejected += 1
        self.counters.rejections[category] = self.counters.rejections.get(category, 0) + 1
        self.last_rejection = f"command rejected ({category}): {reason}"
        return Verdict(False, self.last_rejection)

    def _reject_state(self, reason: str) -> Verdict:
        self.counters.states_rejected += 1
        self.last_rejection = reason
        return Verdict(False, reason)

    def _blocking_reason(self) -> tuple[str, str] | None:
        """A reason that stops commands from being followed at all: (category, reason) or None."""
        if self._estop_reason is not None:
            return "estop", f"e-stop latched ({self._estop_reason})"
        problem = self.confidence_problem()
        if problem:
            return "confidence", problem
        if self._q is not None and self._measured is not None:
            error = np.abs(self._q[:N_ARM] - self._measured[:N_ARM])
            worst = int(np.argmax(error))
            if error[worst] > self.config.max_step_from_measured:
                return "tracking", (f"tracking error: {arm.ARM_JOINTS[worst]} commanded {error[worst]:.3f} rad "
                                    f"from /joint_states (max {self.config.max_step_from_measured:g})")
        return None

    def _watch_clock(self, now: float) -> None:
        """Every input and step checks the clock: a jump back must be seen before a state on the
        new clock is accepted, whichever callback runs first."""
        if self._latest_time is not None and now < self._latest_time:
            self._clock_jumped_back(self._latest_time - now)
        self._latest_time = now

    def _clock_jumped_back(self, seconds: float) -> None:
        """Time went backwards (a restarted simulation's /clock): every time kept is on another clock.

        The arm's state counts as unknown until joint states stamped on the new clock arrive
        (FAULT, nothing published), and the stream then restarts at the measured position, as
        after a state timeout; targets are timed afresh. Otherwise a state from the old clock
        would look fresh for as long as the jump, and the old command would be held far from
        a restarted arm.
        """
        reason = f"clock jumped back {seconds:.3f} s"
        self._restart_stream(reason)
        self._measured = self._measured_time = self._measured_stamp = self._measured_arrival = None
        self._target_time = self._target_stamp = self._target_interval = None
        self._waiting_reason = f"{reason}: waiting for /joint_states on the new clock"

    def _discontinuity(self, measured: np.ndarray, stamp: float, now: float, arrival: float) -> str | None:
        """Why these joint states do not continue the stream's arm, or None when they do."""
        if self._q is None or self._measured is None:
            return None  # no stream to continue: the next step starts at the arm anyway
        silence = self._silence(now, arrival)
        if silence:
            return f"/joint_states resumed after {silence}"
        age = now - self._measured_time
        elapsed = max(age, stamp - self._measured_stamp, 0.0)
        excess = np.abs(measured - self._measured) - (JUMP_SPEED_FACTOR * self._velocity * elapsed + JUMP_SLACK)
        worst = int(np.argmax(excess))
        if excess[worst] <= 0:
            return None
        return (f"/joint_states jumped: {arm.COMMANDED_JOINTS[worst]} moved "
                f"{abs(measured[worst] - self._measured[worst]):.3f} in {elapsed:.3f} s")

    def _restart_stream(self, reason: str) -> None:
        """Drop the command stream: the next step reports FAULT (nothing published) and the one
        after starts again at the measured position, at rest."""
        self._q = self._v = None
        self._drop_reference()
        self._restart_reason = f"{reason}: restarting at the arm"

    def _fault_reason(self, now: float, arrival: float | None = None) -> str | None:
        if self._measured_time is None:
            return self._waiting_reason
        silence = self._silence(now, arrival)
        if silence:
            return f"/joint_states stale: none accepted for {silence} (max {self.config.state_timeout:g} s)"
        return None

    def _silence(self, now: float, arrival: float | None) -> str | None:
        """How long since the last accepted joint states, when longer than `state_timeout` on
        the node's clock or (given `arrival`) on the monotonic wall clock; else None."""
        age = now - self._measured_time
        if age > self.config.state_timeout:
            return f"{age:.3f} s"
        if arrival is not None and arrival - self._measured_arrival > self.config.state_timeout:
            return f"{arrival - self._measured_arrival:.3f} s on the wall clock"
        return None

    def _hold_state(self, now: float) -> tuple[SafetyState | None, str]:
        blocked = self._blocking_reason()
        if blocked:
            category, reason = blocked
            return (SafetyState.ESTOP if category == "estop" else SafetyState.HOLD), reason
        timeout = self.config.command_timeout
        if self._target_time is not None and now - self._target_time > timeout:
            silence = now - self._target_time
            return SafetyState.HOLD, f"command timeout: none for {silence:.3f} s (max {timeout:g} s)"
        if self._segment is None:
            return SafetyState.HOLD, "waiting for a command"
        return None, ""

    def _drop_reference(self) -> None:
        self._segment = None

    def _clip_target(self, target: np.ndarray) -> tuple[np.ndarray, str]:
        """The target inside the position limits and workspace, and a note of what was clipped.

        Positions are clipped per joint. A target whose arm pose leaves the
        workspace is pulled back along the straight joint-space line from the
        current command (inside: the stream starts inside and every step can
        brake to rest inside) to the furthest point inside.
        """
        notes = []
        clipped = np.clip(target, self._lower, self._upper)
        changed = [n for n, a, b in zip(arm.COMMANDED_JOINTS, target, clipped) if a != b]
        if changed:
            notes.append("position limits: " + ", ".join(changed))
        workspace = self.config.workspace
        check = workspace.check(clipped[:N_ARM])
        if check.violation > 0:
            inside, outside = 0.0, 1.0
            for _ in range(30):  # bisection to ~1e-9 of the segment
                middle = 0.5 * (inside + outside)
                point = self._q[:N_ARM] + middle * (clipped[:N_ARM] - self._q[:N_ARM])
                if workspace.check(point).violation > 0:
                    outside = middle
                else:
                    inside = middle
            clipped = clipped.copy()
            clipped[:N_ARM] = self._q[:N_ARM] + inside * (clipped[:N_ARM] - self._q[:N_ARM])
            notes.append("workspace: " + ", ".join(check.violated))
        return clipped, "; ".join(notes)

    def _desired_velocity(self) -> np.ndarray:
        """Follow the reference; close any lag along a straight line, no faster than the joints can stop."""
        current = self._segment.position(self._progress)
        following = self._segment.position(self._progress + 1)
        self._progress += 1
        lag = current - self._q
        # Per joint, the fraction of the lag to close per second: all at once
        # (1/dt), or less where braking or the velocity limit need it.
        rate = np.full(N_JOINTS, 1.0 / self._dt)
        distance = np.abs(lag)
        moving = distance > 0
        speed = np.minimum(self._max_speed_toward(distance), self._velocity)
        rate[moving] = np.minimum(rate[moving], speed[moving] / distance[moving])
        for group in _GROUPS:
            rate[group] = rate[group].min()
        return (following - current) / self._dt + rate * lag

    def _max_speed_toward(self, distance: np.ndarray) -> np.ndarray:
        """Per joint, the largest speed from which braking at the per-step limit stops within `distance`.

        Braking from speed w takes steps of w, w - d, w - 2d, ... (d the
        velocity change per step), covering dt * sum(max(w - m d, 0)); this
        inverts that sum exactly.
        """
        scaled = np.maximum(distance, 0.0) / (self._dt * self._delta)
        full_steps = np.floor((np.sqrt(8.0 * scaled + 1.0) - 1.0) / 2.0)
        return self._delta * (scaled / (full_steps + 1.0) + full_steps / 2.0)

    def _brake_velocity(self) -> np.ndarray:
        """One step of the per-joint brake: each joint slows by its full per-step change."""
        return self._v - np.sign(self._v) * np.minimum(np.abs(self._v), self._delta)

    def _saturate(self, v_desired: np.ndarray, labels: list[str], following: bool) -> np.ndarray:
        """The admissible next velocity closest to v_desired along its direction; names the limits that acted."""
        q, v = self._q, self._v
        room_up = self._max_speed_toward(self._upper - q)
        room_down = self._max_speed_toward(q - self._lower)

        # 1. Scale the desired velocity (one factor per group) into the velocity
        #    limits, the braking room before the position limits and the allowed
        #    lead over /joint_states. All these ranges contain 0.
        ranges = [
            ("velocity", -self._velocity, self._velocity),
            ("position", -room_down, room_up),
        ]
        if following:
            lead = self.config.max_step_from_measured
            lead_low = np.full(N_JOINTS, -np.inf)
            lead_high = np.full(N_JOINTS, np.inf)
            lead_low[:N_ARM] = np.minimum((self._measured[:N_ARM] - lead - q[:N_ARM]) / self._dt, 0.0)
            lead_high[:N_ARM] = np.maximum((self._measured[:N_ARM] + lead - q[:N_ARM]) / self._dt, 0.0)
            ranges.append(("step_from_measured", lead_low, lead_high))
        factors = {}
        for name, low, high in ranges:
            factor = np.ones(N_JOINTS)
            over, under = v_desired > high, v_desired < low
            factor[over] = high[over] / v_desired[over]
            factor[under] = low[under] / v_desired[under]
            factors[name] = factor
        joint_factor = np.minimum.reduce(list(factors.values()))
        scaled = v_desired.copy()
        for group in _GROUPS:
            group_factor = joint_factor[group].min()
            if group_factor < 1 - _ACT_TOLERANCE:
                scaled[group] *= group_factor
                for name, factor in factors.items():
                    for i in group[factor[group] <= group_factor * (1 + _ACT_TOLERANCE)]:
                        labels.append(f"{name}:{arm.COMMANDED_JOINTS[i]}")

        # 2. The admissible box for the next velocity: velocity limits, one
        #    step of acceleration (jerk-safe), and braking room. The per-joint
        #    brake is always inside it (the invariant); widen by rounding only.
        brake = self._brake_velocity()
        bounds_low = np.stack([-self._velocity, v - self._delta, -room_down])
        bounds_high = np.stack([self._velocity, v + self._delta, room_up])
        low_source, high_source = bounds_low.argmax(axis=0), bounds_high.argmin(axis=0)
        low = np.minimum(bounds_low.max(axis=0), brake)
        high = np.maximum(bounds_high.min(axis=0), brake)

        def box_label(i: int, source: int) -> str:
            return f"{('velocity', self._accel_label[i], 'position')[source]}:{arm.COMMANDED_JOINTS[i]}"

        # 3. From the admissible velocity nearest the current one, move toward
        #    the scaled desired velocity as far as the box allows (one fraction
        #    per group, so the velocity change keeps its direction). Where that
        #    reaches the desired velocity, no limit acted.
        anchor = np.clip(v, low, high)
        change = scaled - anchor
        fraction = np.ones(N_JOINTS)
        up, down = change > 0, change < 0
        fraction[up] = (high[up] - anchor[up]) / change[up]
        fraction[down] = (low[down] - anchor[down]) / change[down]
        fraction = np.clip(fraction, 0.0, 1.0)
        result = anchor.copy()
        for group in _GROUPS:
            group_fraction = fraction[group].min()
            result[group] = anchor[group] + group_fraction * change[group]
            if group_fraction < 1 - _ACT_TOLERANCE:
                for i in group[fraction[group] <= group_fraction * (1 + _ACT_TOLERANCE)]:
                    labels.append(box_label(i, high_source[i] if change[i] > 0 else low_source[i]))
                for i in group[anchor[group] != v[group]]:  # had to change velocity at once
                    labels.append(box_label(i, low_source[i] if anchor[i] > v[i] else high_source[i]))
        return np.clip(result, low, high)

    def _brake_path(self, q: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Positions the per-joint brake passes through from (q, v) until every joint rests; q first."""
        steps = int(np.max(np.ceil(np.abs(v) / self._delta))) if np.any(v) else 0
        speeds = np.maximum(np.abs(v)[None, :] - self._delta[None, :] * np.arange(1, steps + 1)[:, None], 0.0)
        travel = np.cumsum(speeds, axis=0) * self._dt * np.sign(v)[None, :]
        return np.vstack([q[None, :], q[None, :] + travel])

    def _workspace_violation(self, q_next: np.ndarray, v_next: np.ndarray) -> list[str]:
        """The workspace checks that (q_next, v_next) would violate while braking to rest; [] if none."""
        workspace = self.config.workspace
        path = self._brake_path(q_next, v_next)[:, :N_ARM]
        index = 0
        while index < len(path):
            check = workspace.check(path[index])
            if check.violation > _WORKSPACE_TOLERANCE:
                return list(check.violated)
            if check.margin <= 0:
                index += 1
                continue
            # Skip the path points that cannot have moved any frame as far as the boundary.
            reach = np.abs(path[index + 1:] - path[index]) @ workspace.lever_arms
            beyond = np.flatnonzero(reach >= check.margin)
            if len(beyond) == 0:
                break
            index += 1 + int(beyond[0])
        return []
