"""Tool pose, Jacobian and damped least-squares IK on the arm model of vla_ros.arm.

Pure numpy on arm.forward_kinematics (the model the MuJoCo scene and the URDF are
tested against), so the scripted expert and the end-effector backends (OpenVLA)
share one IK and need no simulator. Frame: `world` (the arm base), as in vla_ros.arm.
"""
from __future__ import annotations

import numpy as np

from vla_ros import arm

# Damped least squares: a few iterations per control step suffice because targets
# are close to the seed (one control period of motion away).
IK_ITERATIONS = 3
IK_DAMPING = 0.05
POSTURE_GAIN = 0.1  # null-space pull towards the posture, per iteration
LIMIT_MARGIN = 0.02  # rad kept clear of each joint's position limits

_LIMITS = arm.limits_arrays(arm.ARM_JOINTS)
_HOME = arm.home_vector()[:7]


def tcp_pose(q) -> tuple[np.ndarray, np.ndarray]:
    """Position (3,) and rotation matrix (3, 3) of the tool centre point in the world frame."""
    tcp = arm.forward_kinematics(q)[-1]
    return tcp[:3, 3].copy(), tcp[:3, :3].copy()


def jacobian(q) -> np.ndarray:
    """(6, 7) geometric Jacobian of the TCP: rows linear velocity, then angular velocity (world frame)."""
    return _jacobian(arm.forward_kinematics(q))


def _jacobian(frames: np.ndarray) -> np.ndarray:
    # Modified DH: joint i turns about the z axis of frame i, through its origin.
    axes = frames[:7, :3, 2].T  # (3, 7)
    arms = frames[-1, :3, 3, None] - frames[:7, :3, 3].T  # joint origin -> TCP, (3, 7)
    jac = np.empty((6, 7))
    jac[0] = axes[1] * arms[2] - axes[2] * arms[1]  # axis x arm (np.cross costs 3x more here)
    jac[1] = axes[2] * arms[0] - axes[0] * arms[2]
    jac[2] = axes[0] * arms[1] - axes[1] * arms[0]
    jac[3:] = axes
    return jac


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Rotation vector (axis * angle, world frame, angle <= pi) turning `current` into `target`."""
    return rotation_vector(target @ current.T)


def rotation_vector(rotation: np.ndarray) -> np.ndarray:
    """Axis * angle of a rotation matrix (the short way round, angle in [0, pi])."""
    w, x, y, z = _quaternion(rotation)
    if w < 0:
        w, x, y, z = -w, -x, -y, -z
    vector = np.array([x, y, z])
    sine = np.linalg.norm(vector)
    if sine < 1e-12:
        return np.zeros(3)
    return vector * (2.0 * np.arctan2(sine, w) / sine)


def axis_angle_matrix(rotation_vector_: np.ndarray) -> np.ndarray:
    """Rotation matrix of a rotation vector (Rodrigues)."""
    angle = float(np.linalg.norm(rotation_vector_))
    if angle < 1e-12:
        return np.eye(3)
    kx, ky, kz = np.asarray(rotation_vector_, dtype=float) / angle
    skew = np.array([[0.0, -kz, ky], [kz, 0.0, -kx], [-ky, kx, 0.0]])
    return np.eye(3) + np.sin(angle) * skew + (1.0 - np.cos(angle)) * skew @ skew


def euler_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Rotation of fixed-axis roll about x, then pitch about y, then yaw about z: Rz @ Ry @ Rx."""
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def solve_ik(q, position, rotation, iterations: int = IK_ITERATIONS, damping: float = IK_DAMPING,
             posture_gain: float = POSTURE_GAIN, posture: np.ndarray | None = None) -> np.ndarray:
    """Arm joint angles (7,) that bring the TCP towards (`position`, `rotation`), seeded at `q`.

    Damped least squares on the full pose error, with a null-space pull towards
    `posture` (default: home) and every iterate clipped LIMIT_MARGIN inside the
    joint position limits.
    """
    q = np.array(q, dtype=float)
    posture = _HOME if posture is None else np.asarray(posture, dtype=float)
    lower, upper = _LIMITS["lower"] + LIMIT_MARGIN, _LIMITS["upper"] - LIMIT_MARGIN
    for _ in range(iterations):
        frames = arm.forward_kinematics(q)
        jac = _jacobian(frames)
        error = np.concatenate([position - frames[-1][:3, 3], rotation_error(rotation, frames[-1][:3, :3])])
        inverse = jac.T @ np.linalg.inv(jac @ jac.T + damping**2 * np.eye(6))
        null_space = np.eye(7) - inverse @ jac
        q = np.clip(q + inverse @ error + null_space @ (posture_gain * (posture - q)), lower, upper)
    return q


def _quaternion(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """(w, x, y, z) of a rotation matrix (Shepperd: divide by the largest component)."""
    m = np.asarray(rotation, dtype=float)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        return 0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s
    i = int(np.argmax(np.diag(m)))
    j, k = (i + 1) % 3, (i + 2) % 3
    s = 2.0 * np.sqrt(max(1.0 + m[i, i] - m[j, j] - m[k, k], 0.0))
    quat = np.zeros(4)
    quat[0] = (m[k, j] - m[j, k]) / s
    quat[1 + i] = 0.25 * s
    quat[1 + j] = (m[j, i] + m[i, j]) / s
    quat[1 + k] = (m[k, i] + m[i, k]) / s
    return tuple(quat)
