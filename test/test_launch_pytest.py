"""launch_pytest: `ros2 launch vla_ros bringup.launch.py` brings up a graph that publishes the
pipeline's topics. Runs on a ROS 2 install with launch_pytest and vla_ros built by colcon;
skips otherwise (the pip-only path runs the same plan with `vla-ros up`, test_up.py)."""
from __future__ import annotations

import pytest

launch_pytest = pytest.importorskip("launch_pytest", reason="launch_pytest is not installed (pip-only setup, no "
                                    "ROS 2 launch tooling); test_up.py runs the same plan with vla-ros up")

import launch  # noqa: E402  (after the skip: a repository's launch/ folder is not the launch package)
import yaml  # noqa: E402
from conftest import spin_until  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from test_vla_node import tiny_checkpoint  # noqa: E402, F401  (fixture)
from vla_ros.msg import PolicyStatus, SafetyStatus  # noqa: E402

from vla_ros import qos  # noqa: E402
from vla_ros.paths import share_dir  # noqa: E402


def _installed() -> bool:
    try:
        from ament_index_python.packages import get_package_share_directory

        return bool(get_package_share_directory("vla_ros"))
    except (ImportError, LookupError):
        return False


needs_install = pytest.mark.skipif(not _installed(), reason="vla_ros is not installed in a sourced colcon workspace")


@pytest.fixture(scope="module")
def light_params(tmp_path_factory):
    path = tmp_path_factory.mktemp("launch") / "params.yaml"
    path.write_text(yaml.safe_dump({"mujoco_sim_node": {"ros__parameters": {
        "camera_rate": 10.0, "image_width": 160, "image_height": 120}}}))
    return str(path)


@launch_pytest.fixture
def bringup_launch(light_params, tiny_checkpoint):  # noqa: F811
    return launch.LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(str(share_dir() / "launch" / "bringup.launch.py")),
                                 launch_arguments={"params_file": light_params,
                                                   "checkpoint": str(tiny_checkpoint)}.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


@needs_install
@pytest.mark.launch(fixture=bringup_launch)
def test_bringup_launch_publishes_the_pipeline_topics(ros_node):
    received = {"joints": [], "images": [], "safety": [], "policy": []}
    ros_node.create_subscription(JointState, "/joint_states", received["joints"].append, qos.SENSOR)
    ros_node.create_subscription(Image, "/vla/image", received["images"].append, qos.SENSOR)
    ros_node.create_subscription(SafetyStatus, "/safety/status", received["safety"].append, qos.RELIABLE)
    ros_node.create_subscription(PolicyStatus, "/vla/status", received["policy"].append, qos.RELIABLE)
    assert spin_until(ros_node, lambda: all(received.values()), 60.0), {k: len(v) for k, v in received.items()}
