"""The scripted expert: solves every task of the suite from the simulator's true state.

It reads the current task and the true object poses from the SimWorld it was
built with (the instruction is not needed), moves the tool centre point along
straight lines at bounded speed with a top-down hand, and turns each Cartesian
waypoint into joint targets by damped least-squares IK on the arm model
(vla_ros.kinematics), with a null-space pull towards the home posture. Joint steps are
kept under the velocity limits, so its targets pass a safety filter unchanged.

It is closed-loop (re-plans every control step from the true state), so with
`ExpertNoise` (Gaussian target noise, random detours) demonstrations show
recoveries. `clean_action` is the noiseless target of the last step: the label
to record when collecting noisy demonstrations.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vla_ros import arm, kinematics
from vla_ros.policies.base import CONTROL_DT, Observation
from vla_ros.sim import tasks
from vla_ros.sim.state import WorldState
from vla_ros.sim.world import SimWorld

# Motion (m/s, m). Free moves are fast, moves near objects slow.
TRAVEL_SPEED = 0.35
APPROACH_SPEED = 0.15
PUSH_SPEED = 0.08
MAX_TURN = 0.25  # rad of hand rotation per control step
JOINT_SPEED_FRACTION = 0.8  # of each joint's velocity and acceleration limits
# Consecutive targets continue from the previous target (so that their differences, what
# a safety filter checks, respect the limits) unless the arm is this far from it (rad).
TRACKING_SLACK = 0.05
GRIPPER_STEP = 0.009  # m of finger opening per control step (0.09 m/s, under the 0.1 m/s limit)
CLEARANCE = 0.10  # m above the top of what the hand moves over
RETREAT_HEIGHT = 0.2  # m, where the hand goes after letting go
GRASP_FRACTION = 0.4  # grasp this far up an object's height
PUSH_HEIGHT = 0.02  # m, fingertips above the table while pushing
PUSH_BEHIND = 0.025  # m between the object's footprint and the fingers' centre before a push
REACHED = 0.008  # m, a waypoint counts as reached
# m: before any missed grasp, a hand already below the approach height (but 2 cm over the
# grasp) up to this far beside the object descends straight to the grasp, correcting x-y
# on the way, instead of rising to the approach height first. Only a learner driving
# (DAgger) leaves the hand there, and the demonstrations always descend from there: a
# rise label would contradict them (docs/POLICY.md, "Where stacks stall").
DESCENT_CAPTURE = 0.02
GRASP_WAIT_STEPS = 3  # control steps to wait with the gripper closed before judging the grasp
PUSH_LOST = 0.015  # m, the object's centre this far beside the pushing finger: it slid off, push again
MAX_MISS_DISTANCE = 0.1  # m: a deliberate miss further off is nowhere near the object
# Detours (noise) only where a wrong move cannot knock anything over: away from contact.
FREE_SPACE_PHASES = frozenset({"approach", "lift", "carry", "retreat"})


@dataclass(frozen=True)
class ExpertNoise:
    """Perturbations for demonstrations that show recoveries."""

    action_std: float = 0.0  # rad, Gaussian noise on executed arm targets
    detour_probability: float = 0.0  # per control step, chance of starting a detour
    detour_size: float = 0.05  # m, largest offset of a detour's waypoint
    detour_steps: int = 5  # control steps a detour lasts
    # > 0: the first grasp of an episode aims this far (m) beside the object, so that it
    # misses and the expert shows how to try again.
    miss_distance: float = 0.0

    def __post_init__(self) -> None:
        problems = [f"{name} must be in [{low}, {high}], got {value}" for name, value, low, high in (
            ("action_std", self.action_std, 0.0, 0.1),
            ("detour_probability", self.detour_probability, 0.0, 1.0),
            ("detour_size", self.detour_size, 0.0, 0.2),
            ("detour_steps", self.detour_steps, 1, 100),
            ("miss_distance", self.miss_distance, 0.0, MAX_MISS_DISTANCE)) if not low <= value <= high]
        if problems:
            raise ValueError("expert noise: " + "; ".join(problems))


# The hand pointing down as at home (TCP x forward, fingers closing along y).
HAND_DOWN = arm.forward_kinematics(arm.home_vector()[:7])[-1][:3, :3]


def hand_down(yaw: float) -> np.ndarray:
    """Rotation of the hand pointing down, turned by `yaw` (rad) about the vertical from home."""
    return kinematics.euler_matrix(0.0, 0.0, yaw) @ HAND_DOWN


_LIMITS = arm.limits_arrays()
_MAX_JOINT_STEP = _LIMITS["velocity"][:7] * JOINT_SPEED_FRACTION * CONTROL_DT
_MAX_STEP_CHANGE = _LIMITS["acceleration"][:7] * JOINT_SPEED_FRACTION * CONTROL_DT**2


class ExpertPolicy:
    """Scripted expert with privileged access to `world` (satisfies policies.base.Policy)."""

    def __init__(self, world: SimWorld, noise: ExpertNoise | None = None, seed: int = 0):
        self.world = world
        self.noise = noise or ExpertNoise()
        self.seed = seed
        self.clean_action = np.zeros(len(arm.COMMANDED_JOINTS))
        self.reset()

    def reset(self) -> None:
        self.phase = "start"
        self._gripper: float | None = None
        self._wait = 0
        self._detour_left = 0
        self._detour = np.zeros(3)
        self._push_start: np.ndarray | None = None
        self._previous: np.ndarray | None = None  # last clean arm targets
        self._previous_step = np.zeros(7)
        self.missed_grasps = 0  # grasps that closed on nothing this episode
        # Noise differs per episode yet repeats for the same world seed.
        self._rng = np.random.default_rng([self.seed, self.world.seed or 0])
        # Which way the first grasp misses: along the hand's x, where no finger lands on the object.
        self._miss_side = float(self._rng.choice([-1.0, 1.0])) if self.noise.miss_distance > 0 else 0.0

    def select_action(self, observation: Observation, instruction: str) -> np.ndarray:
        state = self.world.snapshot()
        q = state.joints[:7]
        if self._gripper is None:
            self._gripper = float(state.joints[7])
        goal = self._plan(state)  # ("tcp", position, yaw, speed) or ("joints", arm targets)
        if self.phase in FREE_SPACE_PHASES:
            self._advance_detour()
        else:
            self._detour_left, self._detour = 0, np.zeros(3)
        tracking = self._previous is not None and np.max(np.abs(self._previous - q)) < TRACKING_SLACK
        base, previous_step = (self._previous, self._previous_step) if tracking else (q, np.zeros(7))
        clean = self._limited(self._joint_goal(q, state, goal, np.zeros(3)), base, previous_step)
        executed = (self._limited(self._joint_goal(q, state, goal, self._detour), base, previous_step)
                    if self._detour_left else clean.copy())
        if self.noise.action_std > 0:
            executed += self._rng.normal(0.0, self.noise.action_std, 7)
        self._previous, self._previous_step = clean, clean - base
        self.clean_action = np.clip(np.append(clean, self._gripper), _LIMITS["lower"], _LIMITS["upper"])
        return np.clip(np.append(executed, self._gripper), _LIMITS["lower"], _LIMITS["upper"])[None, :]

    # ------------------------------------------------------------------ motion

    def _joint_goal(self, q: np.ndarray, state: WorldState, goal, detour: np.ndarray) -> np.ndarray:
        """Arm joint positions for this step's waypoint of `goal` (IK seeded at the measured `q`)."""
        if goal[0] == "joints":
            return goal[1]
        _, position, yaw, speed = goal
        waypoint = _step_towards(state.tcp, position + detour, speed * CONTROL_DT)
        _, current_rotation = kinematics.tcp_pose(q)
        turn = kinematics.rotation_error(hand_down(yaw), current_rotation)
        angle = np.linalg.norm(turn)
        if angle > MAX_TURN:
            turn *= MAX_TURN / angle
        return kinematics.solve_ik(q, waypoint, kinematics.axis_angle_matrix(turn) @ current_rotation)

    @staticmethod
    def _limited(joint_goal: np.ndarray, base: np.ndarray, previous_step: np.ndarray) -> np.ndarray:
        """A step from `base` towards `joint_goal` within the velocity and acceleration limits."""
        step = np.clip(joint_goal - base, -_MAX_JOINT_STEP, _MAX_JOINT_STEP)
        step = np.clip(step, previous_step - _MAX_STEP_CHANGE, previous_step + _MAX_STEP_CHANGE)
        return base + step

    def _advance_detour(self) -> None:
        if self._detour_left:
            self._detour_left -= 1
            if not self._detour_left:
                self._detour = np.zeros(3)
        elif self.noise.detour_probability > 0 and self._rng.random() < self.noise.detour_probability:
            self._detour_left = self.noise.detour_steps
            self._detour = self._rng.uniform(-self.noise.detour_size, self.noise.detour_size, 3)
            self._detour[2] = abs(self._detour[2])  # detours go up, never into the table

    def _move_gripper(self, opening: float) -> bool:
        """Ramp the commanded opening towards `opening`; True once commanded there."""
        self._gripper = float(self._gripper + np.clip(opening - self._gripper, -GRIPPER_STEP, GRIPPER_STEP))
        return self._gripper == opening

    # ---------------------------------------------------------------- planning

    def _plan(self, state: WorldState):
        task = self.world.task
        hold = ("joints", state.joints[:7])
        if task is None:
            return hold
        kind = task["task"]
        if kind == "home":
            self._move_gripper(arm.HOME_POSITIONS[arm.GRIPPER_JOINT])
            return ("joints", arm.home_vector()[:7])
        if kind == "open_gripper":
            self._move_gripper(arm.HOME_POSITIONS[arm.GRIPPER_JOINT])
            return hold
        if kind == "close_gripper":
            self._move_gripper(0.0)
            return hold
        if kind == "push":
            return self._plan_push(task, state)
        return self._plan_grasp(task, state)

    def _plan_grasp(self, task: dict, state: WorldState):
        """pick, place and stack: grasp from above, lift, then (place, stack) carry and release."""
        name = task["object"]
        body = state.bodies[name]
        held = name in state.in_hand
        yaw = self._grasp_yaw(name)
        grasp_height = state.bottom(name) + GRASP_FRACTION * 2 * body.half_height
        aim = body.position[:2]
        if self.missed_grasps == 0 and self._miss_side:
            beside = hand_down(yaw)[:2, 0]
            aim = aim + self._miss_side * self.noise.miss_distance * beside / np.linalg.norm(beside)
        above_object = np.array([*aim, state.top(name) + CLEARANCE])
        if self.phase in ("start", "approach"):
            self._move_gripper(arm.HOME_POSITIONS[arm.GRIPPER_JOINT])
            self.phase = "approach"
            high = state.tcp[2] >= above_object[2] - 0.05
            beside_low = (not high and self.missed_grasps == 0 and state.tcp[2] > grasp_height + 0.02
                          and _close(state.tcp[:2], above_object[:2], DESCENT_CAPTURE))
            if beside_low:
                self.phase = "descend"  # from this very step: the hand is already past the approach
            else:
                # The normal hand-over: this step still aims above the object, the descent starts next step.
                if _close(state.tcp[:2], above_object[:2], REACHED) and high:
                    self.phase = "descend"
                return ("tcp", above_object, yaw, TRAVEL_SPEED)
        if self.phase == "descend":
            self._move_gripper(arm.HOME_POSITIONS[arm.GRIPPER_JOINT])
            goal = np.array([*aim, grasp_height])
            if _close(state.tcp, goal, REACHED * 0.75):
                self.phase, self._wait = "close", 0
            return ("tcp", goal, yaw, APPROACH_SPEED)
        if self.phase == "close":
            if self._move_gripper(0.0):
                self._wait += 1
                if held and self._wait >= GRASP_WAIT_STEPS:
                    self.phase = "lift"
                elif self._wait >= 2 * GRASP_WAIT_STEPS:
                    self.phase = "approach"  # missed: open and try again
                    self.missed_grasps += 1
            return ("tcp", np.array([*aim, grasp_height]), yaw, APPROACH_SPEED)
        if not held and self.phase in ("lift", "carry", "lower"):
            self.phase = "approach"  # dropped it
            return self._plan_grasp(task, state)
        hand_yaw = self._current_yaw()
        if self.phase == "lift":
            lifted = np.array([*state.tcp[:2], grasp_height + CLEARANCE + 0.05])
            if task["task"] != "pick" and state.bottom(name) >= state.top(task["target"]) + CLEARANCE * 0.6:
                self.phase = "carry"
            return ("tcp", lifted, hand_yaw, APPROACH_SPEED)
        target = state.bodies[task["target"]]
        # Where the TCP goes so that the object's bottom is `gap` above the target's top.
        tcp_over_bottom = state.tcp[2] - state.bottom(name)
        if self.phase == "carry":
            carry = np.array([*target.position[:2], state.top(task["target"]) + CLEARANCE * 0.6 + tcp_over_bottom])
            if _close(state.tcp[:2], carry[:2], REACHED * 0.75):
                self.phase = "lower"
            return ("tcp", carry, hand_yaw, TRAVEL_SPEED)
        if self.phase == "lower":
            release_at = np.array([*target.position[:2], state.top(task["target"]) + 0.005 + tcp_over_bottom])
            if state.bottom(name) - state.top(task["target"]) <= 0.01:
                self.phase = "release"
            return ("tcp", release_at, hand_yaw, APPROACH_SPEED)
        # release, then retreat upwards
        if self._move_gripper(arm.HOME_POSITIONS[arm.GRIPPER_JOINT]) and not held:
            self.phase = "retreat"
        if self.phase == "retreat":
            return self._retreat(state, hand_yaw)
        return ("joints", state.joints[:7])

    def _retreat(self, state: WorldState, yaw: float):
        """Lift the hand clear; up there, if the task is still not done (the object fell or
        stopped short), start over from where things are now."""
        if state.tcp[2] >= RETREAT_HEIGHT - 0.02 and not self.world.success():
            self.phase = "approach"
        return ("tcp", np.array([*state.tcp[:2], RETREAT_HEIGHT]), yaw, APPROACH_SPEED)

    def _plan_push(self, task: dict, state: WorldState):
        """Close the hand, come down behind the object, push it along the direction, lift away."""
        name = task["object"]
        body = state.bodies[name]
        direction = np.append(tasks.DIRECTION_VECTORS[task["direction"]], 0.0)
        # Fingers closing along the push direction, so that one finger's flat outer face pushes
        # (pushing on the seam between the two fingers can wedge a cylinder between them).
        yaw = float(np.arctan2(direction[1], direction[0])) - np.pi / 2
        yaw = yaw + np.pi if yaw < -np.pi / 2 else yaw  # symmetric hand: turn the short way
        if self._push_start is None:
            self._push_start = body.position.copy()
        behind = body.position - direction * (self.world.footprint(name) + PUSH_BEHIND)
        self._move_gripper(0.0)
        if self.phase in ("start", "approach"):
            self.phase = "approach"
            above = np.array([behind[0], behind[1], state.top(name) + CLEARANCE * 0.6])
            if _close(state.tcp[:2], above[:2], REACHED) and state.tcp[2] >= above[2] - 0.05:
                self.phase = "descend"
            return ("tcp", above, yaw, TRAVEL_SPEED)
        if self.phase == "descend":
            goal = np.array([behind[0], behind[1], PUSH_HEIGHT])
            if _close(state.tcp, goal, REACHED):
                self.phase = "push"
            return ("tcp", goal, yaw, APPROACH_SPEED)
        distance = task.get("distance", tasks.PUSH_DEFAULT_DISTANCE)
        moved = float((body.position - self._push_start)[:2] @ direction[:2])
        if self.phase == "push":
            # In contact, the object moves as far as the fingers do: advance them by what is
            # left to go, on the line through the object's centre.
            across = np.array([-direction[1], direction[0], 0.0])
            lateral = float((body.position - state.tcp) @ across)
            goal = state.tcp + direction * (distance - moved) + across * lateral
            goal[2] = PUSH_HEIGHT
            if moved >= distance - 0.003 or abs(lateral) > PUSH_LOST:
                self.phase = "retreat"
            return ("tcp", goal, yaw, PUSH_SPEED)
        return self._retreat(state, yaw)

    def _grasp_yaw(self, name: str) -> float:
        """Hand yaw for grasping: cubes across two faces (the option nearest the home yaw),
        cylinders at the home yaw."""
        if self.world.object_shape(name)[0] != "box":
            return 0.0
        yaw = self.world.object_yaw(name)
        return float((yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4)

    def _current_yaw(self) -> float:
        _, rotation = kinematics.tcp_pose(self.world.joint_positions()[:7])
        relative = rotation @ HAND_DOWN.T
        return float(np.arctan2(relative[1, 0], relative[0, 0]))


def _step_towards(start: np.ndarray, goal: np.ndarray, max_step: float) -> np.ndarray:
    delta = goal - start
    distance = np.linalg.norm(delta)
    return goal if distance <= max_step else start + delta * (max_step / distance)


def _close(a, b, tolerance: float) -> bool:
    return bool(np.linalg.norm(np.asarray(a) - np.asarray(b)) <= tolerance)
