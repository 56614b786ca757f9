"""joint_command_relay_node: /joint_commands -> a ros2_control controller (Gazebo or a real arm).

The safety filter's output is a sensor_msgs/JointState matched by name; ros2_control
controllers take their own message in their own joint order. This node converts each
command (vla_ros/control_relay.py) and nothing else: no limits, no timing (the safety
filter upstream owns both).

Subscribes
  /joint_commands  sensor_msgs/JointState  RELIABLE
Publishes
  output_topic     std_msgs/Float64MultiArray (controller: forward, e.g. forward_command_controller)
                   or trajectory_msgs/JointTrajectory (controller: trajectory, joint_trajectory_controller)
  /diagnostics     relayed and rejected counts, 1 Hz
"""
from __future__ import annotations

from builtin_interfaces.msg import Duration
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_ros import arm, qos
from vla_ros.control_relay import CONTROLLER_TYPES, controller_positions, joints_problem
from vla_ros.node_common import (
    DIAG_OK,
    DIAG_WARN,
    Diagnostics,
    Param,
    declare_parameters,
    one_of,
    positive,
    run_node,
)
from vla_ros.safety import InputError

COMMANDS_TOPIC = "/joint_commands"

PARAMS = [
    Param("controller", "forward", "forward (std_msgs/Float64MultiArray) or trajectory (trajectory_msgs/JointTrajectory)",
          one_of(*CONTROLLER_TYPES)),
    Param("output_topic", "forward_position_controller/commands",
          "the controller's command topic (relative: under the node's namespace)"),
    Param("joints", list(arm.COMMANDED_JOINTS), "the controller's joints, in its order (panda_finger_joint2 gets "
          "panda_finger_joint1's opening)", joints_problem),
    Param("point_time", 0.01, "trajectory: s from now of the single point (the safety filter's period at 100 Hz)",
          positive),
    Param("log_throttle", 2.0, "s between repeated rejection log lines", positive),
]


class JointCommandRelayNode(Node):
    def __init__(self):
        super().__init__("joint_command_relay_node")
        p = self.params = declare_parameters(self, PARAMS)
        self.counts = {"relayed": 0, "rejected": 0}
        self.last_rejection = ""
        message_type = Float64MultiArray if p.controller == "forward" else JointTrajectory
        self._output = self.create_publisher(message_type, p.output_topic, qos.RELIABLE)
        self.create_subscription(JointState, COMMANDS_TOPIC, self._on_command, qos.RELIABLE)
        self._diagnostics = Diagnostics(self, self._collect)
        self.get_logger().info(f"relaying {COMMANDS_TOPIC} to {self._output.topic_name} ({p.controller} controller, "
                               f"joints {', '.join(p.joints)})")

    def _on_command(self, msg: JointState) -> None:
        try:
            positions = [float(v) for v in controller_positions(msg.name, msg.position, self.params.joints)]
        except InputError as err:
            self.counts["rejected"] += 1
            self.last_rejection = str(err)
            self.get_logger().warning(f"command not relayed: {err}", throttle_duration_sec=self.params.log_throttle)
            return
        if self.params.controller == "forward":
            self._output.publish(Float64MultiArray(data=positions))
        else:
            seconds = self.params.point_time
            point = JointTrajectoryPoint(positions=positions, time_from_start=Duration(
                sec=int(seconds), nanosec=int(round((seconds % 1) * 1e9))))
            # An empty stamp means "start now" to joint_trajectory_controller.
            self._output.publish(JointTrajectory(joint_names=list(self.params.joints), points=[point]))
        self.counts["relayed"] += 1

    def _collect(self):
        level = DIAG_WARN if self.counts["rejected"] else DIAG_OK
        message = f"last rejection: {self.last_rejection}" if self.last_rejection else "ok"
        return [("relay", level, message, {**self.counts, "output_topic": self._output.topic_name})]


def main(args=None):
    return run_node(JointCommandRelayNode, args)
