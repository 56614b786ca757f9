"""/joint_commands (sensor_msgs/JointState, matched by name) to a ros2_control controller's input.

Gazebo (gz_ros2_control) and real arms under ros2_control take commands through a
controller, not a JointState topic: a forward command controller wants a
std_msgs/Float64MultiArray in its own joint order, a joint_trajectory_controller a
trajectory_msgs/JointTrajectory. joint_command_relay_node does the conversion with
these functions (docs/BRINGUP.md). No ROS imports.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vla_ros import arm
from vla_ros.safety.filter import positions_by_name

CONTROLLER_TYPES = ("forward", "trajectory")
# A controller may list the mirrored finger: it gets the commanded finger's opening.
MIMICS = {arm.GRIPPER_MIMIC_JOINT: arm.GRIPPER_JOINT}


def joints_problem(joints: Sequence[str]) -> str | None:
    """Why a controller's joint list cannot be fed from /joint_commands, or None."""
    if not joints:
        return "needs at least one joint"
    known = set(arm.COMMANDED_JOINTS) | set(MIMICS)
    unknown = [j for j in joints if j not in known]
    if unknown:
        return f"unknown joints {', '.join(unknown)}; known: {', '.join(sorted(known))}"
    if len(set(joints)) != len(joints):
        return f"repeated joints in {list(joints)}"
    return None


def controller_positions(names: Sequence[str], positions, joints: Sequence[str]) -> np.ndarray:
    """The command's positions in the controller's joint order.

    Raises vla_ros.safety.InputError for a malformed command (missing, unknown or
    repeated names, NaN): the safety filter always sends every commanded joint.
    """
    commanded = dict(zip(arm.COMMANDED_JOINTS, positions_by_name(names, positions, ignore_extra=False)))
    return np.array([commanded[MIMICS.get(joint, joint)] for joint in joints])
