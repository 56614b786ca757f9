"""joint_command_relay_node: /joint_commands -> forward_command_controller or joint_trajectory_controller input."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import CONFIG_DIR, spin_until
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from vla_ros import arm, qos
from vla_ros.control_relay import controller_positions, joints_problem
from vla_ros.safety import InputError

COMMAND = dict(zip(arm.COMMANDED_JOINTS, [0.1, -0.7, 0.2, -2.3, 0.3, 1.6, 0.8, 0.03]))


def test_positions_follow_the_controller_order_and_mirror_the_finger():
    names = list(reversed(arm.COMMANDED_JOINTS))
    positions = [COMMAND[n] for n in names]
    joints = ["panda_finger_joint2", "panda_joint3", "panda_finger_joint1"]
    np.testing.assert_array_equal(controller_positions(names, positions, joints), [0.03, 0.2, 0.03])
    np.testing.assert_array_equal(controller_positions(names, positions, arm.COMMANDED_JOINTS),
                                  [COMMAND[n] for n in arm.COMMANDED_JOINTS])


@pytest.mark.parametrize("names, positions, message", [
    (list(arm.COMMANDED_JOINTS[:-1]), [0.0] * 7, "missing joints: panda_finger_joint1"),
    (list(arm.COMMANDED_JOINTS), [0.0] * 7 + [float("nan")], "non-finite"),
    (list(arm.COMMANDED_JOINTS) + ["elbow"], [0.0] * 9, "unknown joints: elbow"),
])
def test_malformed_commands_are_refused(names, positions, message):
    with pytest.raises(InputError, match=message):
        controller_positions(names, positions, arm.COMMANDED_JOINTS)


def test_joint_list_checks():
    assert joints_problem(list(arm.COMMANDED_JOINTS)) is None
    assert joints_problem(["panda_joint1", "panda_finger_joint2"]) is None
    assert "unknown joints elbow" in joints_problem(["elbow"])
    assert "repeated" in joints_problem(["panda_joint1", "panda_joint1"])
    assert joints_problem([]) == "needs at least one joint"


def _command(node):
    publisher = node.create_publisher(JointState, "/joint_commands", qos.RELIABLE)
    return lambda: publisher.publish(JointState(name=list(COMMAND), position=list(COMMAND.values())))


def test_forward_controller_gets_float_arrays(ros_node, start_process):
    process = start_process("joint_command_relay_node", "--ros-args", "--params-file",
                            str(CONFIG_DIR / "joint_command_relay_node.yaml"))
    received = []
    ros_node.create_subscription(Float64MultiArray, "/forward_position_controller/commands", received.append,
                                 qos.RELIABLE)
    send = _command(ros_node)
    assert spin_until(ros_node, lambda: send() or bool(received), 15.0), process.output()
    assert list(received[-1].data) == [COMMAND[n] for n in arm.COMMANDED_JOINTS]
    assert process.stop() == 0


def test_trajectory_controller_gets_one_point_trajectories(ros_node, start_process):
    process = start_process("joint_command_relay_node", "--ros-args", "-p", "controller:=trajectory",
                            "-p", "output_topic:=/jtc/joint_trajectory", "-p", "point_time:=0.02",
                            "-p", "joints:=[panda_joint2, panda_joint1]")
    received = []
    ros_node.create_subscription(JointTrajectory, "/jtc/joint_trajectory", received.append, qos.RELIABLE)
    send = _command(ros_node)
    assert spin_until(ros_node, lambda: send() or bool(received), 15.0), process.output()
    trajectory = received[-1]
    assert list(trajectory.joint_names) == ["panda_joint2", "panda_joint1"]
    assert len(trajectory.points) == 1
    assert list(trajectory.points[0].positions) == [COMMAND["panda_joint2"], COMMAND["panda_joint1"]]
    assert (trajectory.points[0].time_from_start.sec, trajectory.points[0].time_from_start.nanosec) == (0, 20_000_000)
    assert process.stop() == 0


def test_bad_joint_list_exits_with_a_clear_message(start_process):
    process = start_process("joint_command_relay_node", "--ros-args", "-p", "joints:=[panda_joint1, elbow]")
    assert process.proc.wait(20) == 2
    assert "joints: unknown joints elbow" in process.output()
