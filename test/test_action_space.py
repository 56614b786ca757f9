"""The policy's action spaces: joint offsets, and tool-pose offsets that IK turns back into joint targets."""
import numpy as np
import pytest

from vla_ros import arm, kinematics
from vla_ros.policies.builtin.action_space import ACTION_DIMS, chunk_offsets, joint_targets


def _reach(length: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """States and targets of a short reach from home: each target is the next state, the gripper closing."""
    home = arm.home_vector()
    path = home + np.linspace(0.0, 1.0, length + 1)[:, None] * np.array([0.3, 0.2, -0.1, 0.25, 0.1, -0.2, 0.3, -0.03])
    return path[:-1].astype(np.float32), path[1:].astype(np.float32)


def test_joint_offsets_repeat_the_last_action_and_return_exactly():
    states = np.zeros((3, 8), dtype=np.float32)
    actions = np.arange(3, dtype=np.float32)[:, None].repeat(8, axis=1)
    offsets = chunk_offsets(states, actions, chunk_size=4, space="joints")
    assert offsets.shape == (3, 4, ACTION_DIMS["joints"])
    assert offsets[1, :, 0].tolist() == [1, 2, 2, 2]
    np.testing.assert_array_equal(joint_targets(states[1], offsets[1], "joints"), actions[[1, 2, 2, 2]])


def test_tool_offsets_are_moves_of_the_tool_and_ik_recovers_the_targets():
    states, actions = _reach()
    offsets = chunk_offsets(states, actions, chunk_size=3, space="tcp")
    assert offsets.shape == (6, 3, ACTION_DIMS["tcp"])
    start, _ = kinematics.tcp_pose(states[2, :7])
    target, _ = kinematics.tcp_pose(actions[3, :7])
    np.testing.assert_allclose(offsets[2, 1, :3], target - start, atol=1e-6)
    np.testing.assert_allclose(offsets[2, :, 6], actions[2:5, 7] - states[2, 7], atol=1e-6)
    targets = joint_targets(states[2], offsets[2], "tcp")
    assert targets.shape == (3, 8) and targets.dtype == np.float32
    # The redundant joint may settle elsewhere; the tool must reach the same pose.
    for solved, wanted in zip(targets, actions[2:5]):
        position, rotation = kinematics.tcp_pose(solved[:7])
        wanted_position, wanted_rotation = kinematics.tcp_pose(wanted[:7])
        assert np.linalg.norm(position - wanted_position) < 2e-3
        assert np.linalg.norm(kinematics.rotation_error(wanted_rotation, rotation)) < 1e-2
    np.testing.assert_allclose(targets[:, 7], actions[2:5, 7], atol=1e-6)


def test_no_tool_move_holds_the_arm_where_it_is():
    state = arm.home_vector().astype(np.float32)
    targets = joint_targets(state, np.zeros((2, ACTION_DIMS["tcp"]), dtype=np.float32), "tcp")
    np.testing.assert_allclose(targets, np.tile(state, (2, 1)), atol=1e-5)


def test_unknown_action_space_is_rejected():
    states, actions = _reach()
    with pytest.raises(ValueError, match="action space must be one of"):
        chunk_offsets(states, actions, chunk_size=2, space="cartesian")
