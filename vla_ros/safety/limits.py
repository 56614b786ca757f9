"""What the safety filter enforces: per-joint limits and the Cartesian workspace.

Plain Python (no ROS). Joint limits start from the Panda datasheet in
vla_ros/arm.py; configuration may tighten them (a position margin, per-joint
overrides) but never widen them. The workspace is a box for the tool centre
point and the flange (the wrist) plus the table plane, checked with
arm.forward_kinematics, the same kinematics the simulator and URDF match.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from vla_ros import arm

# Per-joint limit names, as in ros2_control's joint_limits parameters.
LIMIT_FIELDS: tuple[str, ...] = ("min_position", "max_position", "max_velocity", "max_acceleration", "max_jerk")
_DATASHEET_FIELD = {
    "min_position": "lower",
    "max_position": "upper",
    "max_velocity": "velocity",
    "max_acceleration": "acceleration",
    "max_jerk": "jerk",
}
GRIPPER_INDEX = arm.COMMANDED_JOINTS.index(arm.GRIPPER_JOINT)
# Default margins inside the datasheet position range: rad for the arm joints, m for the gripper.
DEFAULT_POSITION_MARGIN = 0.02
DEFAULT_GRIPPER_MARGIN = 0.0


@dataclass(frozen=True, eq=False)
class JointLimitSet:
    """Limits of the commanded joints as arrays in COMMANDED_JOINTS order."""

    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray
    jerk: np.ndarray
    names: tuple[str, ...] = arm.COMMANDED_JOINTS

    def __eq__(self, other) -> bool:
        if not isinstance(other, JointLimitSet):
            return NotImplemented
        arrays = ("lower", "upper", "velocity", "acceleration", "jerk")
        return self.names == other.names and all(np.array_equal(getattr(self, f), getattr(other, f)) for f in arrays)

    __hash__ = object.__hash__


def datasheet_value(joint: str, limit_field: str) -> float:
    """The Panda datasheet value of one limit (`limit_field` from LIMIT_FIELDS)."""
    return float(getattr(arm.PANDA_LIMITS[joint], _DATASHEET_FIELD[limit_field]))


def build_joint_limits(
    position_margin: float = DEFAULT_POSITION_MARGIN,
    gripper_margin: float = DEFAULT_GRIPPER_MARGIN,
    overrides: Mapping[str, Mapping[str, float]] | None = None,
) -> JointLimitSet:
    """Datasheet limits, tightened by `overrides` and shrunk by the position margins.

    `overrides` maps a joint name to {limit field: value}; values may only be
    tighter than the datasheet. `position_margin` (rad) narrows every arm joint's
    range on both sides, `gripper_margin` (m) the gripper's. Raises ValueError
    with every problem listed.
    """
    overrides = overrides or {}
    errors = []
    if not (math.isfinite(position_margin) and position_margin >= 0):
        errors.append(f"position_margin must be a finite value >= 0, got {position_margin}")
    if not (math.isfinite(gripper_margin) and gripper_margin >= 0):
        errors.append(f"gripper_margin must be a finite value >= 0, got {gripper_margin}")
    for joint in overrides:
        if joint not in arm.COMMANDED_JOINTS:
            errors.append(f"joint_limits: unknown joint {joint!r} (known: {', '.join(arm.COMMANDED_JOINTS)})")

    values: dict[str, list[float]] = {f: [] for f in LIMIT_FIELDS}
    for joint in arm.COMMANDED_JOINTS:
        given = dict(overrides.get(joint, {}))
        for limit_field in LIMIT_FIELDS:
            sheet = datasheet_value(joint, limit_field)
            value = float(given.pop(limit_field, sheet))
            name = f"joint_limits.{joint}.{limit_field}"
            if not math.isfinite(value):
                errors.append(f"{name} must be finite, got {value}")
            elif limit_field == "min_position" and value < sheet:
                errors.append(f"{name} = {value} is below the datasheet limit {sheet}")
            elif limit_field != "min_position" and value > sheet:
                errors.append(f"{name} = {value} exceeds the datasheet limit {sheet}")
            elif limit_field.startswith("max_") and limit_field != "max_position" and value <= 0:
                errors.append(f"{name} must be > 0, got {value}")
            values[limit_field].append(value)
        for unknown in given:
            errors.append(f"joint_limits.{joint}.{unknown}: unknown limit (known: {', '.join(LIMIT_FIELDS)})")
    if errors:
        raise ValueError("invalid joint limits:\n  " + "\n  ".join(errors))

    margins = np.full(len(arm.COMMANDED_JOINTS), position_margin)
    margins[GRIPPER_INDEX] = gripper_margin
    lower = np.array(values["min_position"]) + margins
    upper = np.array(values["max_position"]) - margins
    narrow = [f"{j}: [{lo:.4f}, {hi:.4f}]" for j, lo, hi in zip(arm.COMMANDED_JOINTS, lower, upper) if lo >= hi]
    if narrow:
        raise ValueError("position range empty after margins and overrides: " + "; ".join(narrow))
    return JointLimitSet(
        lower=lower,
        upper=upper,
        velocity=np.array(values["max_velocity"]),
        acceleration=np.array(values["max_acceleration"]),
        jerk=np.array(values["max_jerk"]),
    )


# Frames of arm.forward_kinematics that are checked, by index into its result.
# Links 1 and 2 sit on the base (always 0.333 m up) and are not checked.
_CHECKED_FRAMES: tuple[tuple[int, str], ...] = (
    (2, "panda_link3"),
    (3, "panda_link4"),
    (4, "panda_link5"),
    (5, "panda_link6"),
    (6, "panda_link7"),
    (7, "flange"),
    (8, "tcp"),
)
_CHECKED_FRAME_INDICES = [index for index, _ in _CHECKED_FRAMES]
_CHECKED_FRAME_NAMES = [name for _, name in _CHECKED_FRAMES]
_BOX_FRAMES = ("flange", "tcp")
_BOX_ROWS = [_CHECKED_FRAME_NAMES.index(name) for name in _BOX_FRAMES]


def _lever_arms() -> np.ndarray:
    """Per arm joint, an upper bound on the distance from its axis to any checked frame.

    A joint turning by dq moves a point at most lever * |dq|, so a motion moves
    every checked frame by at most sum(lever * |dq|) (used to skip exact checks
    far from the boundary).
    """
    lengths = [abs(a) + abs(d) for a, d, _ in arm.PANDA_DH]
    tail = arm.FLANGE_D + arm.TCP_OFFSET
    return np.array([sum(lengths[i:]) + tail for i in range(len(lengths))])


@dataclass(frozen=True)
class WorkspaceCheck:
    """Where a configuration stands relative to the workspace.

    margin: signed distance (m) to the nearest boundary over all checked frames,
    negative when outside. violation: total distance outside (0 when inside).
    violated: names of the frames outside, e.g. ("workspace:tcp", "table:panda_link5").
    """

    margin: float
    violation: float
    violated: tuple[str, ...]


@dataclass(frozen=True)
class Workspace:
    """A box (world frame, metres) for the TCP and the flange, and the table plane for every checked link.

    Every checked link origin (links 3..7, flange) must stay `link_clearance`
    above the table plane, the TCP `tcp_clearance` above it (it has to get close
    to grasp). Frames are link origins, so the clearances stand in for the
    links' thickness.
    """

    box_min: tuple[float, float, float] = (-0.2, -0.7, 0.0)
    box_max: tuple[float, float, float] = (0.9, 0.7, 1.2)
    table_z: float = 0.0
    tcp_clearance: float = 0.005
    link_clearance: float = 0.05
    lever_arms: np.ndarray = field(default_factory=_lever_arms, repr=False, compare=False)

    def __post_init__(self):
        errors = []
        numbers = [*self.box_min, *self.box_max, self.table_z, self.tcp_clearance, self.link_clearance]
        if len(self.box_min) != 3 or len(self.box_max) != 3:
            errors.append(f"workspace.min and workspace.max need 3 values (x, y, z), got {self.box_min}, {self.box_max}")
        elif not all(math.isfinite(v) for v in numbers):
            errors.append("workspace values must be finite")
        elif any(lo >= hi for lo, hi in zip(self.box_min, self.box_max)):
            errors.append(f"workspace.min {list(self.box_min)} must be below workspace.max {list(self.box_max)}")
        if self.tcp_clearance < 0 or self.link_clearance < 0:
            errors.append("workspace clearances must be >= 0")
        if errors:
            raise ValueError("invalid workspace: " + "; ".join(errors))
        object.__setattr__(self, "_low", np.asarray(self.box_min, dtype=float))
        clearances = [self.tcp_clearance if name == "tcp" else self.link_clearance for name in _CHECKED_FRAME_NAMES]
        object.__setattr__(self, "_clearances", np.array(clearances))
        object.__setattr__(self, "_high", np.asarray(self.box_max, dtype=float))

    def check(self, arm_positions) -> WorkspaceCheck:
        """Check the 7 arm joint angles (ARM_JOINTS order) against the box and the table."""
        frames = arm.forward_kinematics(arm_positions)
        points = np.array([frames[index][:3, 3] for index in _CHECKED_FRAME_INDICES])
        table_margins = points[:, 2] - (self.table_z + self._clearances)
        box_points = points[_BOX_ROWS]
        box_margins = np.minimum(box_points - self._low, self._high - box_points)
        margin = min(float(table_margins.min()), float(box_margins.min()))
        if margin >= 0:
            return WorkspaceCheck(margin=margin, violation=0.0, violated=())
        table_outside = np.maximum(-table_margins, 0.0)
        box_outside = np.maximum(-box_margins, 0.0).sum(axis=1)
        violated = [f"table:{_CHECKED_FRAME_NAMES[i]}" for i in np.flatnonzero(table_outside)]
        violated += [f"workspace:{_BOX_FRAMES[i]}" for i in np.flatnonzero(box_outside)]
        return WorkspaceCheck(margin=margin, violation=float(table_outside.sum() + box_outside.sum()),
                              violated=tuple(violated))

    def motion_bound(self, arm_travel) -> float:
        """Upper bound (m) on how far any checked frame moves when each arm joint travels `arm_travel` rad."""
        return float(np.dot(self.lever_arms, np.abs(arm_travel)))
