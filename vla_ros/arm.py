"""The arm every part of vla_ros agrees on: a Franka-Panda-like 7-DoF arm with a parallel gripper.

Joint names, limits (Franka datasheet), the home pose and forward kinematics live
here, once. The MuJoCo model (vla_ros/sim/assets) and the URDF are written to
match; tests check that they do.

Units: radians, rad/s, rad/s^2, rad/s^3 for arm joints; metres for the gripper
(opening of one finger, 0 = closed, 0.04 = open). Frame: `world`, the arm base at
the origin, z up, the table top at z = 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ARM_JOINTS: tuple[str, ...] = tuple(f"panda_joint{i}" for i in range(1, 8))
GRIPPER_JOINT = "panda_finger_joint1"
# The second finger mirrors the first; it is published on /joint_states (for
# robot_state_publisher) but never commanded.
GRIPPER_MIMIC_JOINT = "panda_finger_joint2"
COMMANDED_JOINTS: tuple[str, ...] = ARM_JOINTS + (GRIPPER_JOINT,)
STATE_JOINTS: tuple[str, ...] = COMMANDED_JOINTS + (GRIPPER_MIMIC_JOINT,)


@dataclass(frozen=True)
class JointLimits:
    lower: float
    upper: float
    velocity: float
    acceleration: float
    jerk: float


# Franka Emika Panda datasheet (joint space limits).
PANDA_LIMITS: dict[str, JointLimits] = {
    "panda_joint1": JointLimits(-2.8973, 2.8973, 2.1750, 15.0, 7500.0),
    "panda_joint2": JointLimits(-1.7628, 1.7628, 2.1750, 7.5, 3750.0),
    "panda_joint3": JointLimits(-2.8973, 2.8973, 2.1750, 10.0, 5000.0),
    "panda_joint4": JointLimits(-3.0718, -0.0698, 2.1750, 12.5, 6250.0),
    "panda_joint5": JointLimits(-2.8973, 2.8973, 2.6100, 15.0, 7500.0),
    "panda_joint6": JointLimits(-0.0175, 3.7525, 2.6100, 20.0, 10000.0),
    "panda_joint7": JointLimits(-2.8973, 2.8973, 2.6100, 20.0, 10000.0),
    # Franka Hand: 0.08 m stroke split over two fingers.
    GRIPPER_JOINT: JointLimits(0.0, 0.04, 0.1, 1.0, 100.0),
}

HOME_POSITIONS: dict[str, float] = {
    "panda_joint1": 0.0,
    "panda_joint2": -0.785,
    "panda_joint3": 0.0,
    "panda_joint4": -2.356,
    "panda_joint5": 0.0,
    "panda_joint6": 1.571,
    "panda_joint7": 0.785,
    GRIPPER_JOINT: 0.04,
}

# Modified (Craig) Denavit-Hartenberg parameters of the Panda: (a, d, alpha) per joint,
# then the flange. theta is the joint angle.
PANDA_DH: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.333, 0.0),
    (0.0, 0.0, -np.pi / 2),
    (0.0, 0.316, np.pi / 2),
    (0.0825, 0.0, np.pi / 2),
    (-0.0825, 0.384, -np.pi / 2),
    (0.0, 0.0, np.pi / 2),
    (0.088, 0.0, np.pi / 2),
)
FLANGE_D = 0.107
# Tool centre point: between the fingertips, 0.1034 m beyond the flange; the hand
# is mounted rotated by -45 degrees about the flange z axis.
TCP_OFFSET = 0.1034
HAND_YAW = -np.pi / 4


def home_vector() -> np.ndarray:
    """Home positions in COMMANDED_JOINTS order."""
    return np.array([HOME_POSITIONS[name] for name in COMMANDED_JOINTS])


def limits_arrays(names: tuple[str, ...] = COMMANDED_JOINTS) -> dict[str, np.ndarray]:
    """Limits as arrays in the order of `names`: keys lower, upper, velocity, acceleration, jerk."""
    fields = ("lower", "upper", "velocity", "acceleration", "jerk")
    return {f: np.array([getattr(PANDA_LIMITS[n], f) for n in names]) for f in fields}


def _dh_transforms(a, d, alpha, theta) -> np.ndarray:
    """Modified DH transforms, (4, 4) for scalars or (n, 4, 4) for n joints' parameters."""
    ca, sa, ct, st = np.cos(alpha), np.sin(alpha), np.cos(theta), np.sin(theta)
    transforms = np.zeros(np.shape(theta) + (4, 4))
    transforms[..., 0, 0], transforms[..., 0, 1], transforms[..., 0, 3] = ct, -st, a
    transforms[..., 1, 0], transforms[..., 1, 1], transforms[..., 1, 2], transforms[..., 1, 3] = (
        st * ca, ct * ca, -sa, -d * sa)
    transforms[..., 2, 0], transforms[..., 2, 1], transforms[..., 2, 2], transforms[..., 2, 3] = (
        st * sa, ct * sa, ca, d * ca)
    transforms[..., 3, 3] = 1.0
    return transforms


_DH_A, _DH_D, _DH_ALPHA = np.array(PANDA_DH).T
# Last joint frame -> flange -> TCP: constant.
_TO_FLANGE = _dh_transforms(0.0, FLANGE_D, 0.0, 0.0)
_FLANGE_TO_TCP = _dh_transforms(0.0, TCP_OFFSET, 0.0, HAND_YAW)


def forward_kinematics(arm_positions) -> np.ndarray:
    """Homogeneous transforms (world <- frame) of links 1..7, the flange and the TCP.

    `arm_positions` holds the 7 arm joint angles in ARM_JOINTS order. Returns a
    (9, 4, 4) array: one matrix per joint frame, then the flange, then the TCP.
    """
    q = np.asarray(arm_positions, dtype=float)
    if q.shape != (7,):
        raise ValueError(f"forward_kinematics needs 7 arm joint angles, got shape {q.shape}")
    # All 7 joint transforms in one call: IK runs this every iteration.
    joint = _dh_transforms(_DH_A, _DH_D, _DH_ALPHA, q)
    frames = np.empty((9, 4, 4))
    frames[0] = joint[0]
    for i in range(1, 7):
        frames[i] = frames[i - 1] @ joint[i]
    frames[7] = frames[6] @ _TO_FLANGE
    frames[8] = frames[7] @ _FLANGE_TO_TCP
    return frames


def tcp_position(arm_positions) -> np.ndarray:
    """Position of the tool centre point in the world frame (metres)."""
    return forward_kinematics(arm_positions)[-1][:3, 3]
