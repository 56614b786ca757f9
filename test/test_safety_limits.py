"""Safety limits and configuration: datasheet defaults, tightening only, the workspace, the YAML file."""
import numpy as np
import pytest
import yaml

from vla_ros import arm
from vla_ros.paths import config_file
from vla_ros.safety import Workspace, build_joint_limits, config_from_parameters, load_config, parameter_defaults
from vla_ros.safety.config import CONFIG_FILE, flatten
from vla_ros.safety.limits import GRIPPER_INDEX

HOME = arm.home_vector()


def test_defaults_are_the_datasheet_shrunk_by_the_margins():
    limits = build_joint_limits(position_margin=0.05, gripper_margin=0.001)
    sheet = arm.limits_arrays()
    margins = np.array([0.05] * 7 + [0.001])
    np.testing.assert_allclose(limits.lower, sheet["lower"] + margins)
    np.testing.assert_allclose(limits.upper, sheet["upper"] - margins)
    for field in ("velocity", "acceleration", "jerk"):
        np.testing.assert_array_equal(getattr(limits, field), sheet[field])
    assert limits.names == arm.COMMANDED_JOINTS


def test_overrides_tighten():
    limits = build_joint_limits(overrides={"panda_joint2": {"max_velocity": 1.0, "min_position": -1.0}})
    assert limits.velocity[1] == 1.0 and limits.lower[1] == pytest.approx(-1.0 + 0.02)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"overrides": {"panda_joint1": {"max_velocity": 3.0}}}, "exceeds the datasheet limit 2.175"),
        ({"overrides": {"panda_joint4": {"min_position": -4.0}}}, "below the datasheet limit"),
        ({"overrides": {"panda_joint1": {"max_jerk": 0.0}}}, "max_jerk must be > 0"),
        ({"overrides": {"panda_joint1": {"max_velocity": float("nan")}}}, "must be finite"),
        ({"overrides": {"panda_joint9": {"max_velocity": 1.0}}}, "unknown joint 'panda_joint9'"),
        ({"overrides": {"panda_joint1": {"speed": 1.0}}}, "speed: unknown limit"),
        ({"position_margin": -0.1}, "position_margin must be"),
        ({"position_margin": 2.0}, "position range empty"),
    ],
)
def test_bad_limits_are_refused_with_the_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_joint_limits(**kwargs)


def test_home_is_inside_the_default_workspace():
    check = Workspace().check(HOME[:7])
    assert check.violation == 0 and check.margin > 0.1 and check.violated == ()


def test_the_table_and_the_box_are_enforced_and_named():
    reaching_down = HOME.copy()
    reaching_down[[1, 3]] += (1.6, 0.3)
    check = Workspace().check(reaching_down[:7])
    assert check.violation > 0 and check.margin < 0 and "table:tcp" in check.violated
    narrow = Workspace(box_min=(-0.2, -0.7, 0.0), box_max=(0.2, 0.7, 1.2))
    assert "workspace:tcp" in narrow.check(HOME[:7]).violated  # home TCP is at x = 0.31


@pytest.mark.parametrize("kwargs", [{"box_min": (0.0, 0.0, 1.0), "box_max": (1.0, 1.0, 0.5)},
                                    {"box_min": (0.0, 0.0), "box_max": (1.0, 1.0)},
                                    {"tcp_clearance": -0.1}])
def test_bad_workspaces_are_refused(kwargs):
    with pytest.raises(ValueError, match="invalid workspace"):
        Workspace(**kwargs)


def test_motion_bound_is_conservative():
    """The filter skips exact checks using this bound, so it must never underestimate."""
    rng = np.random.default_rng(11)
    workspace = Workspace()
    limits = build_joint_limits()
    for _ in range(300):
        a = rng.uniform(limits.lower[:7], limits.upper[:7])
        b = a + rng.normal(0.0, 0.2, 7)
        frames_a, frames_b = arm.forward_kinematics(a), arm.forward_kinematics(b)
        moved = max(np.linalg.norm(fa[:3, 3] - fb[:3, 3]) for fa, fb in zip(frames_a[2:], frames_b[2:]))
        assert moved <= workspace.motion_bound(b - a)


def test_the_config_file_holds_exactly_the_defaults():
    document = yaml.safe_load(config_file(CONFIG_FILE).read_text())
    assert flatten(document["safety_filter_node"]["ros__parameters"]) == parameter_defaults()
    assert load_config() == config_from_parameters({})


def test_config_from_parameters_reports_unknown_and_bad_values(tmp_path):
    with pytest.raises(ValueError, match="unknown safety filter parameters: rtae"):
        config_from_parameters({"rtae": 1.0})
    with pytest.raises(ValueError, match="exceeds the datasheet"):
        config_from_parameters({"joint_limits.panda_finger_joint1.max_position": 0.05})
    path = tmp_path / "bad.yaml"
    path.write_text("other_node:\n  ros__parameters: {rate: 10.0}\n")
    with pytest.raises(ValueError, match="expected 'safety_filter_node: ros__parameters"):
        load_config(path)
    path.write_text("safety_filter_node:\n  ros__parameters:\n    rate: 50.0\n    gripper_margin: 0.005\n")
    config = load_config(path)
    assert config.rate == 50.0 and config.joint_limits.upper[GRIPPER_INDEX] == pytest.approx(0.035)
