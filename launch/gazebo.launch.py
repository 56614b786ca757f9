"""ros2 launch vla_ros gazebo.launch.py [controller:=forward|trajectory] [rviz:=true] ...

The graph against the arm in Gazebo (gz sim): ros_gz_sim spawns the URDF, gz_ros2_control runs
joint_state_broadcaster and the command controller, ros_gz_bridge brings /clock and the scene
camera to ROS. Same arguments as bringup.launch.py, sim fixed to gazebo (docs/BRINGUP.md).
"""
from vla_ros.ros_launch import generate


def generate_launch_description():
    return generate({"sim": "gazebo"})
