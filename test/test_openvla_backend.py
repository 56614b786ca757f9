"""The openvla backend's math: token decoding, un-normalisation, end-effector deltas through IK, gripper.

No OpenVLA weights are on this machine: the model itself is stood in for by a
function returning chosen action tokens (docs/BACKENDS.md).
"""
import json

import numpy as np
import pytest

from vla_ros import arm, kinematics
from vla_ros.policies import load_backend, openvla
from vla_ros.policies.base import Observation

LIMITS = arm.limits_arrays()
GRIPPER_OPEN = arm.PANDA_LIMITS[arm.GRIPPER_JOINT].upper
STATS = {
    "bridge_orig": {"action": {
        "q01": [-0.02, -0.01, -0.03, -0.1, -0.2, -0.3, 0.0],
        "q99": [0.02, 0.03, 0.01, 0.1, 0.2, 0.1, 1.0],
        "mask": [True, True, True, True, True, True, False],
    }},
    "fractal": {"action": {"q01": [-1.0] * 7, "q99": [1.0] * 7}},
}
VOCAB = 32000


def _statistics(key="bridge_orig"):
    return openvla.action_statistics(STATS, key)


def test_unnormalize_matches_hand_computed_values():
    action = openvla.unnormalize([0.0, 1.0, -1.0, 0.5, -0.5, 0.25, 0.8], _statistics())
    # dx: midpoint of [-0.02, 0.02]; dy, dz: the ends; droll: 0.75 * 0.2 - 0.1; dpitch: 0.25 * 0.4 - 0.2;
    # dyaw: 0.625 * 0.4 - 0.3; the gripper (mask false) passes through.
    np.testing.assert_allclose(action, [0.0, 0.03, -0.03, 0.05, -0.1, -0.05, 0.8], atol=1e-12)


def test_tokens_decode_to_bin_centres_counting_down_from_the_end_of_the_vocabulary():
    centres = openvla.tokens_to_normalized([VOCAB - 1, VOCAB - 255, VOCAB - 128, VOCAB + 5, 0], VOCAB)
    np.testing.assert_allclose(centres, [-1 + 1 / 255, 1 - 1 / 255, 0.0, -1 + 1 / 255, 1 - 1 / 255])
    # Bin i (of 255) has its centre at -1 + (2i + 1) / 255. Encoding as OpenVLA's action tokenizer does (token = vocab - digitize(x, bins)) and decoding
    # returns each value to within half a bin.
    values = np.random.default_rng(0).uniform(-1, 1, 1000)
    tokens = VOCAB - np.digitize(values, np.linspace(-1, 1, 256))
    assert np.max(np.abs(openvla.tokens_to_normalized(tokens, VOCAB) - values)) <= 1 / 255 + 1e-12


def test_statistics_errors_name_the_key():
    assert openvla.action_statistics({"only": STATS["fractal"]}).key == "only"
    assert openvla.action_statistics({"only": STATS["fractal"]}).mask.all()  # no mask: every dimension
    with pytest.raises(ValueError, match="2 datasets.*bridge_orig, fractal"):
        openvla.action_statistics(STATS)
    with pytest.raises(ValueError, match="'libero' is not in .*available: bridge_orig, fractal"):
        openvla.action_statistics(STATS, "libero")
    with pytest.raises(ValueError, match="lack action q99"):
        openvla.action_statistics({"x": {"action": {"q01": [0] * 7}}})
    with pytest.raises(ValueError, match="needs 7"):
        openvla.action_statistics({"x": {"action": {"q01": [0] * 6, "q99": [1] * 6}}})


def test_statistics_come_from_config_or_dataset_statistics(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        openvla.read_norm_stats(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "openvla"}))
    with pytest.raises(ValueError, match="no action statistics"):
        openvla.read_norm_stats(tmp_path)
    (tmp_path / "dataset_statistics.json").write_text(json.dumps({"a": STATS["fractal"]}))
    assert list(openvla.read_norm_stats(tmp_path)) == ["a"]
    (tmp_path / "config.json").write_text(json.dumps({"norm_stats": STATS}))
    assert sorted(openvla.read_norm_stats(tmp_path)) == ["bridge_orig", "fractal"]


def test_load_errors_name_the_missing_directory_file_or_key(tmp_path):
    with pytest.raises(ValueError, match="needs the model directory"):
        load_backend("openvla", "")
    with pytest.raises(FileNotFoundError, match="directory not found"):
        load_backend("openvla", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        load_backend("openvla", str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"norm_stats": STATS}))
    with pytest.raises(ValueError, match="choose the statistics with unnorm_key"):
        load_backend("openvla", str(tmp_path))
    with pytest.raises(ValueError, match="'libero' is not in"):
        openvla.load(str(tmp_path), unnorm_key="libero")
    # Statistics fine, but the model's code is missing: transformers names the file.
    auto_map = {"AutoConfig": "configuration_prismatic.OpenVLAConfig",
                "AutoModelForVision2Seq": "modeling_prismatic.OpenVLAForActionPrediction"}
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "openvla", "auto_map": auto_map,
                                                      "norm_stats": STATS}))
    with pytest.raises(OSError, match="configuration_prismatic.py"):
        openvla.load(str(tmp_path), unnorm_key="bridge_orig")


def _reachable_configurations(count: int, seed: int) -> np.ndarray:
    """Joint configurations inside the limits, away from them, with the TCP above the table."""
    rng = np.random.default_rng(seed)
    lower, upper = LIMITS["lower"][:7], LIMITS["upper"][:7]
    span = upper - lower
    found = []
    while len(found) < count:
        q = rng.uniform(lower + 0.2 * span, upper - 0.2 * span)
        jac = kinematics.jacobian(q)
        if kinematics.tcp_pose(q)[0][2] > 0.05 and np.sqrt(np.linalg.det(jac @ jac.T)) > 1e-3:
            found.append(q)
    return np.array(found)


@pytest.mark.parametrize("index", range(8))
def test_an_end_effector_delta_moves_the_tool_by_that_delta(index):
    q = _reachable_configurations(8, seed=5)[index]
    rng = np.random.default_rng(index)
    action = np.concatenate([rng.uniform(-0.01, 0.01, 3), rng.uniform(-0.05, 0.05, 3), [1.0]])
    state = np.append(q, 0.02)
    targets = openvla.action_to_joint_targets(state, action)
    position, rotation = kinematics.tcp_pose(q)
    reached_position, reached_rotation = kinematics.tcp_pose(targets[:7])
    np.testing.assert_allclose(reached_position - position, action[:3], atol=5e-4)
    goal_rotation = kinematics.euler_matrix(*action[3:6]) @ rotation
    assert np.linalg.norm(kinematics.rotation_error(goal_rotation, reached_rotation)) < 5e-3


def test_a_yaw_delta_turns_the_hand_about_the_base_z_axis_in_place():
    q = arm.home_vector()[:7]
    position, rotation = kinematics.tcp_pose(q)
    targets = openvla.action_to_joint_targets(arm.home_vector(), [0, 0, 0, 0, 0, 0.1, 1.0])
    reached_position, reached_rotation = kinematics.tcp_pose(targets[:7])
    np.testing.assert_allclose(reached_position, position, atol=5e-4)
    np.testing.assert_allclose(reached_rotation @ rotation.T, kinematics.axis_angle_matrix([0, 0, 0.1]), atol=5e-3)
    # A roll turns about the base x axis, whatever the hand's orientation.
    targets = openvla.action_to_joint_targets(arm.home_vector(), [0, 0, 0, 0.05, 0, 0, 1.0])
    np.testing.assert_allclose(kinematics.tcp_pose(targets[:7])[1] @ rotation.T,
                               kinematics.axis_angle_matrix([0.05, 0, 0]), atol=5e-3)


def test_gripper_commands_map_onto_the_finger_opening():
    assert [openvla.gripper_opening(g) for g in (1.0, 0.0, 0.5, -0.3, 1.7)] == [0.04, 0.0, 0.02, 0.0, 0.04]
    assert openvla.action_to_joint_targets(arm.home_vector(), [0, 0, 0, 0, 0, 0, 0.0])[7] == 0.0
    assert openvla.action_to_joint_targets(arm.home_vector(), [0, 0, 0, 0, 0, 0, 1.0])[7] == GRIPPER_OPEN



def test_joint_targets_stay_inside_the_limits_for_impossible_deltas():
    rng = np.random.default_rng(7)
    for q in _reachable_configurations(10, seed=9):
        action = np.concatenate([rng.uniform(-1, 1, 3), rng.uniform(-np.pi, np.pi, 3), [rng.uniform(-2, 2)]])
        targets = openvla.action_to_joint_targets(np.append(q, 0.04), action)
        assert np.all(targets >= LIMITS["lower"]) and np.all(targets <= LIMITS["upper"]), targets


def test_policy_turns_generated_tokens_into_a_joint_target_chunk():
    prompts = []
    normalized = np.array([0.5, 0.0, -0.5, 0.0, 0.0, 0.0, 1.0])
    tokens = VOCAB - np.digitize(normalized, np.linspace(-1, 1, 256))

    def generate(image, prompt, count):
        prompts.append((image.shape, prompt, count))
        return tokens

    policy = openvla.OpenVLAPolicy(generate, _statistics(), VOCAB)
    state = arm.home_vector()
    chunk = policy.select_action(Observation(np.zeros((64, 64, 3), np.uint8), state), "Pick up the red cube")
    assert prompts == [((64, 64, 3), "In: What action should the robot take to pick up the red cube?\nOut:", 7)]
    assert chunk.shape == (1, 8) and (policy.n_action_steps, policy.aggregation) == (1, "latest")
    expected = openvla.unnormalize(openvla.tokens_to_normalized(tokens, VOCAB), _statistics())
    np.testing.assert_allclose(policy.last_action, expected)
    assert abs(expected[0] - 0.01) < 1e-3 and abs(expected[2] + 0.02) < 1e-3  # dx +1 cm, dz -2 cm
    moved = kinematics.tcp_pose(chunk[0, :7])[0] - kinematics.tcp_pose(state[:7])[0]
    np.testing.assert_allclose(moved, expected[:3], atol=5e-4)
    assert chunk[0, 7] == pytest.approx(GRIPPER_OPEN * (1 - 1 / 255))
