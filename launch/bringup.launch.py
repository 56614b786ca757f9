"""ros2 launch vla_ros bringup.launch.py [sim:=mujoco|gazebo|none] [policy:=builtin|lerobot|openvla] [checkpoint:=]
[speech:=false] [camera_source:=] [wrist_camera:=] [rviz:=false] [namespace:=] [use_sim_time:=] [params_file:=]
[controller:=forward|trajectory] [hardware_plugin:=]

The whole graph; the nodes, parameters and remaps come from vla_ros/bringup.py (docs/BRINGUP.md).
"""
from vla_ros.ros_launch import generate


def generate_launch_description():
    return generate()
