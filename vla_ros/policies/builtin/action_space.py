"""What the built-in policy's network predicts, and how that becomes joint targets.

`joints` (the original space): offsets of the K future joint targets from the
current joint positions. The network then has to learn the arm's inverse
kinematics from the demonstrations, scene by scene.

`tcp` (end-effector space, as OpenVLA and Octo predict): for each future target,
the tool centre point's move from where it is now, in the world frame (position
offset in metres and rotation vector in radians), plus the gripper's offset. A
grasp above the named object is then nearly the same motion in every scene, and
vla_ros.kinematics turns the predicted poses back into joint targets at
execution (damped least squares seeded at the measured joints, null space pulled
to home). Labels come from the recorded joint targets by forward kinematics, so
every dataset trains either space.
"""
from __future__ import annotations

import numpy as np

from vla_ros import kinematics

ACTION_SPACES = ("joints", "tcp")
ACTION_DIMS = {"joints": 8, "tcp": 7}  # tcp: position (3), rotation vector (3), gripper (1)
# Execution IK: iterations for the first entry (seeded at the measured joints, up to a
# second of motion away), then for each next one (seeded at the previous solution, one
# control period away). 8 then 3 keep the tool within 6 mm (p99) of a 40-iteration
# solution on the demonstrations' chunks, at ~0.4 ms per entry.
IK_ITERATIONS_FIRST, IK_ITERATIONS_NEXT = 8, 3


def chunk_index(length: int, chunk_size: int) -> np.ndarray:
    """(length, K) frame indices t .. t+K-1 of each step's chunk, the last frame repeated past the end."""
    return np.minimum(np.arange(length)[:, None] + np.arange(chunk_size)[None, :], length - 1)


def _checked(space: str) -> str:
    if space not in ACTION_SPACES:
        raise ValueError(f"action space must be one of {ACTION_SPACES}, got {space!r}")
    return space


def tcp_poses(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tool positions (N, 3) and rotations (N, 3, 3) of (N, >= 7) joint vectors."""
    poses = [kinematics.tcp_pose(q[:7]) for q in np.asarray(joints, dtype=float)]
    return np.array([p for p, _ in poses]).reshape(-1, 3), np.array([r for _, r in poses]).reshape(-1, 3, 3)


def chunk_offsets(states: np.ndarray, actions: np.ndarray, chunk_size: int, space: str) -> np.ndarray:
    """Training labels of one episode: (N, K, ACTION_DIMS[space]) offsets of actions[t : t+K] from states[t]."""
    index = chunk_index(len(actions), chunk_size)
    if _checked(space) == "joints":
        return actions[index] - states[:, None, :]
    state_positions, state_rotations = tcp_poses(states)
    action_positions, action_rotations = tcp_poses(actions)
    moves = action_positions[index] - state_positions[:, None, :]
    turns = np.array([[kinematics.rotation_error(action_rotations[j], state_rotations[t]) for j in row]
                      for t, row in enumerate(index)]).reshape(len(actions), chunk_size, 3)
    gripper = actions[index, 7:] - states[:, None, 7:]
    return np.concatenate([moves, turns, gripper], axis=2).astype(np.float32)


def joint_targets(state: np.ndarray, offsets: np.ndarray, space: str) -> np.ndarray:
    """Absolute (K, 8) joint targets of (K, ACTION_DIMS[space]) offsets from the measured `state` (8,)."""
    if _checked(space) == "joints":
        return np.asarray(state, dtype=np.float32)[None, :] + offsets
    state = np.asarray(state, dtype=np.float64)
    position, rotation = kinematics.tcp_pose(state[:7])
    q = state[:7]
    targets = np.empty((len(offsets), 8))
    for i, (move, turn, gripper) in enumerate(zip(offsets[:, :3], offsets[:, 3:6], offsets[:, 6])):
        q = kinematics.solve_ik(q, position + move, kinematics.axis_angle_matrix(turn) @ rotation,
                                iterations=IK_ITERATIONS_NEXT if i else IK_ITERATIONS_FIRST)
        targets[i, :7], targets[i, 7] = q, state[7] + gripper
    return targets.astype(np.float32)
