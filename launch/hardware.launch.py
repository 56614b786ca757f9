"""ros2 launch vla_ros hardware.launch.py hardware_plugin:=<your ros2_control plugin>|external
[controller:=forward|trajectory] camera_source:=... ...

The graph against a real arm under ros2_control: /joint_states from joint_state_broadcaster,
/joint_commands relayed to a forward position controller or a joint_trajectory_controller.
Same arguments as bringup.launch.py, sim fixed to none (docs/BRINGUP.md).
"""
from vla_ros.ros_launch import generate


def generate_launch_description():
    return generate({"sim": "none"})
