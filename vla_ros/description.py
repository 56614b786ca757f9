"""The arm's URDF (and the Gazebo world around it), generated from vla_ros/arm.py.

arm.py is the one source of the kinematics and limits; this module writes them
out as URDF for robot_state_publisher, rviz, Gazebo and ros2_control. The camera
frames come from the MuJoCo model (vla_ros/sim/assets/tabletop.xml, read as plain
XML: no MuJoCo needed on a ROS install), so the images' frame_ids exist in TF.
`vla-ros urdf` prints it; urdf/vla_arm.urdf is the checked-in copy (a test keeps
it identical). Visual shapes and inertias are rough: kinematics and limits are exact.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

from vla_ros import arm, paths

MJCF_PATH = paths.PACKAGE_DIR / "sim" / "assets" / "tabletop.xml"
ROBOT_NAME = "vla_arm"
ROOT_LINK = "world"

# Joint torque / gripper force limits of the MuJoCo servos (forcerange); URDF calls them effort.
EFFORT_LIMITS: dict[str, float] = {
    "panda_joint1": 87.0, "panda_joint2": 87.0, "panda_joint3": 87.0, "panda_joint4": 87.0,
    "panda_joint5": 12.0, "panda_joint6": 12.0, "panda_joint7": 12.0,
    arm.GRIPPER_JOINT: 35.0,  # per finger (the MuJoCo tendon drives both with 70 N)
}
# Masses (kg) of the Panda's links (Gaz et al. 2019, rounded); inertias are solid-cylinder estimates.
LINK_MASSES = (2.9, 4.97, 0.65, 3.23, 3.59, 1.23, 1.67, 0.74)
HAND_MASS = 0.73
FINGER_MASS = 0.015
FINGER_ORIGIN_Z = 0.0584  # finger joints' origin in the hand frame (as in the MJCF)
HAND_JOINT = "panda_hand_joint"
FLANGE_LINK = "panda_link8"
TCP_LINK = "panda_hand_tcp"
# MuJoCo cameras look along -z with y up; ROS optical frames look along +z with y down.
_CAMERA_TO_OPTICAL = np.diag([1.0, -1.0, -1.0])

# ros2_control hardware plugins for `ros2_control=`.
GAZEBO_PLUGIN = "gz_ros2_control/GazeboSimSystem"
MOCK_PLUGIN = "mock_components/GenericSystem"


@dataclass(frozen=True)
class CameraFrame:
    """A camera's optical frame (ROS convention) fixed to a parent link."""

    name: str  # <camera>_camera_optical_frame, the frame_id of mujoco_sim_node's images
    parent: str
    position: np.ndarray
    rotation: np.ndarray  # 3x3, parent <- optical


def camera_frames() -> list[CameraFrame]:
    """The MJCF's scene camera (fixed to the world, nominal pose) and wrist camera (on the hand)."""
    root = ET.parse(MJCF_PATH).getroot()
    parents = {"scene": ROOT_LINK, "wrist": "panda_hand"}
    frames = []
    for element in root.iter("camera"):
        name = element.get("name")
        if name not in parents:
            continue
        xyaxes = np.array([float(v) for v in element.get("xyaxes").split()])
        x = xyaxes[:3] / np.linalg.norm(xyaxes[:3])
        y = xyaxes[3:] - x * (x @ xyaxes[3:])
        y /= np.linalg.norm(y)
        rotation = np.column_stack([x, y, np.cross(x, y)]) @ _CAMERA_TO_OPTICAL
        position = np.array([float(v) for v in element.get("pos").split()])
        frames.append(CameraFrame(f"{name}_camera_optical_frame", parents[name], position, rotation))
    return frames


def rpy_from_matrix(rotation: np.ndarray) -> tuple[float, float, float]:
    """URDF roll, pitch, yaw (fixed axes x, y, z) of a rotation matrix."""
    pitch = float(np.arcsin(-np.clip(rotation[2, 0], -1.0, 1.0)))
    if abs(np.cos(pitch)) > 1e-9:
        roll = float(np.arctan2(rotation[2, 1], rotation[2, 2]))
        yaw = float(np.arctan2(rotation[1, 0], rotation[0, 0]))
    else:  # gimbal lock: put the whole rotation about z into yaw
        roll = 0.0
        yaw = float(np.arctan2(-rotation[0, 1], rotation[1, 1]))
    return roll, pitch, yaw


def _fmt(values) -> str:
    return " ".join(f"{float(v):.10g}" if abs(v) > 1e-15 else "0" for v in values)


def _origin(parent: ET.Element, xyz=(0.0, 0.0, 0.0), rpy=(0.0, 0.0, 0.0)) -> None:
    ET.SubElement(parent, "origin", xyz=_fmt(xyz), rpy=_fmt(rpy))


def _cylinder_inertial(link: ET.Element, mass: float, radius: float, length: float, z: float = 0.0) -> None:
    inertial = ET.SubElement(link, "inertial")
    _origin(inertial, (0.0, 0.0, z))
    ET.SubElement(inertial, "mass", value=_fmt([mass]))
    side = mass * (3 * radius**2 + length**2) / 12
    ET.SubElement(inertial, "inertia", ixx=_fmt([side]), ixy="0", ixz="0", iyy=_fmt([side]), iyz="0",
                  izz=_fmt([mass * radius**2 / 2]))


def _shape(link: ET.Element, kind: str, geometry: dict, xyz=(0, 0, 0), rpy=(0, 0, 0), material: str = "white",
           collide: bool = False) -> None:
    for tag in ("visual", "collision") if collide else ("visual",):
        element = ET.SubElement(link, tag)
        _origin(element, xyz, rpy)
        ET.SubElement(ET.SubElement(element, "geometry"), kind, **{k: _fmt(np.ravel(v)) for k, v in geometry.items()})
        if tag == "visual":
            ET.SubElement(element, "material", name=material)


def _limit(joint: ET.Element, name: str) -> None:
    limits = arm.PANDA_LIMITS[name]
    ET.SubElement(joint, "limit", lower=_fmt([limits.lower]), upper=_fmt([limits.upper]),
                  velocity=_fmt([limits.velocity]), effort=_fmt([EFFORT_LIMITS[name]]))


def _fixed(robot: ET.Element, name: str, parent: str, child: str, xyz=(0, 0, 0), rpy=(0, 0, 0)) -> None:
    joint = ET.SubElement(robot, "joint", name=name, type="fixed")
    _origin(joint, xyz, rpy)
    ET.SubElement(joint, "parent", link=parent)
    ET.SubElement(joint, "child", link=child)


def urdf(ros2_control: str = "", controllers_file: str = "", namespace: str = "") -> str:
    """The arm's URDF as a string.

    `ros2_control`: "" (none), "gazebo" (gz_ros2_control, with the Gazebo plugin
    reading `controllers_file`) or a hardware plugin name such as
    mock_components/GenericSystem. `namespace` is where gz_ros2_control puts its
    controller manager.
    """
    robot = ET.Element("robot", name=ROBOT_NAME)
    robot.append(ET.Comment(" Generated by vla_ros.description from vla_ros/arm.py (`vla-ros urdf`); do not edit. "))
    for name, rgba in (("white", (0.93, 0.93, 0.93, 1)), ("dark", (0.25, 0.25, 0.27, 1)), ("black", (0.2, 0.2, 0.2, 1))):
        ET.SubElement(ET.SubElement(robot, "material", name=name), "color", rgba=_fmt(rgba))

    ET.SubElement(robot, "link", name=ROOT_LINK)
    base = ET.SubElement(robot, "link", name="panda_link0")
    _shape(base, "cylinder", {"radius": 0.07, "length": 0.14}, xyz=(0, 0, 0.07))
    _cylinder_inertial(base, LINK_MASSES[0], 0.07, 0.14, 0.07)
    _fixed(robot, "world_joint", ROOT_LINK, "panda_link0")

    # Modified DH: link i sits at (a, -d sin(alpha), d cos(alpha)) in link i-1, rotated by alpha about x.
    for i, ((a, d, alpha), name) in enumerate(zip(arm.PANDA_DH, arm.ARM_JOINTS), start=1):
        link = ET.SubElement(robot, "link", name=f"panda_link{i}")
        _shape(link, "cylinder", {"radius": 0.055, "length": 0.11}, material="dark" if i in (2, 4, 6) else "white")
        _cylinder_inertial(link, LINK_MASSES[i], 0.055, 0.11)
        joint = ET.SubElement(robot, "joint", name=name, type="revolute")
        _origin(joint, (a, -d * np.sin(alpha), d * np.cos(alpha)), (alpha, 0.0, 0.0))
        ET.SubElement(joint, "parent", link=f"panda_link{i - 1}")
        ET.SubElement(joint, "child", link=f"panda_link{i}")
        ET.SubElement(joint, "axis", xyz="0 0 1")
        _limit(joint, name)

    ET.SubElement(robot, "link", name=FLANGE_LINK)
    _fixed(robot, "panda_joint8", "panda_link7", FLANGE_LINK, (0, 0, arm.FLANGE_D))
    hand = ET.SubElement(robot, "link", name="panda_hand")
    _shape(hand, "box", {"size": (0.05, 0.19, 0.055)}, xyz=(0, 0, 0.0305), collide=True)
    _cylinder_inertial(hand, HAND_MASS, 0.05, 0.06, 0.03)
    _fixed(robot, HAND_JOINT, FLANGE_LINK, "panda_hand", rpy=(0, 0, arm.HAND_YAW))
    ET.SubElement(robot, "link", name=TCP_LINK)
    _fixed(robot, "panda_hand_tcp_joint", "panda_hand", TCP_LINK, (0, 0, arm.TCP_OFFSET))
    for side, sign, joint_name in (("left", 1, arm.GRIPPER_JOINT), ("right", -1, arm.GRIPPER_MIMIC_JOINT)):
        finger = ET.SubElement(robot, "link", name=f"panda_{side}finger")
        _shape(finger, "box", {"size": (0.02, 0.015, 0.045)}, xyz=(0, sign * 0.0075, 0.0225), material="black",
               collide=True)
        _cylinder_inertial(finger, FINGER_MASS, 0.01, 0.045, 0.0225)
        joint = ET.SubElement(robot, "joint", name=joint_name, type="prismatic")
        _origin(joint, (0, 0, FINGER_ORIGIN_Z))
        ET.SubElement(joint, "parent", link="panda_hand")
        ET.SubElement(joint, "child", link=f"panda_{side}finger")
        ET.SubElement(joint, "axis", xyz=f"0 {sign} 0")
        _limit(joint, arm.GRIPPER_JOINT)
        if joint_name == arm.GRIPPER_MIMIC_JOINT:
            ET.SubElement(joint, "mimic", joint=arm.GRIPPER_JOINT, multiplier="1", offset="0")

    for camera in camera_frames():
        ET.SubElement(robot, "link", name=camera.name)
        _fixed(robot, f"{camera.name}_joint", camera.parent, camera.name, camera.position,
               rpy_from_matrix(camera.rotation))

    if ros2_control:
        _ros2_control(robot, ros2_control, controllers_file, namespace)
    ET.indent(robot)
    return '<?xml version="1.0"?>\n' + ET.tostring(robot, encoding="unicode") + "\n"


def _ros2_control(robot: ET.Element, kind: str, controllers_file: str, namespace: str) -> None:
    """Position command and position/velocity state interfaces for every commanded joint."""
    control = ET.SubElement(robot, "ros2_control", name=ROBOT_NAME, type="system")
    ET.SubElement(ET.SubElement(control, "hardware"), "plugin").text = GAZEBO_PLUGIN if kind == "gazebo" else kind
    for name in arm.COMMANDED_JOINTS:
        joint = ET.SubElement(control, "joint", name=name)
        ET.SubElement(joint, "command_interface", name="position")
        initial = ET.SubElement(joint, "state_interface", name="position")
        ET.SubElement(initial, "param", name="initial_value").text = _fmt([arm.HOME_POSITIONS[name]])
        ET.SubElement(joint, "state_interface", name="velocity")
    if kind != "gazebo":
        return
    if not controllers_file:
        raise ValueError("ros2_control='gazebo' needs the controllers file for the gz_ros2_control plugin")
    plugin = ET.SubElement(ET.SubElement(robot, "gazebo"), "plugin", filename="gz_ros2_control-system",
                           name="gz_ros2_control::GazeboSimROS2ControlPlugin")
    ET.SubElement(plugin, "parameters").text = controllers_file
    if namespace:
        ET.SubElement(ET.SubElement(plugin, "ros"), "namespace").text = namespace


def gazebo_world_sdf() -> str:
    """A Gazebo (gz sim) world like the MuJoCo one: ground, table top at z = 0, light, the scene camera.

    The scene camera publishes camera/image_raw and camera/camera_info on Gazebo's
    transport (bridged to ROS by ros_gz_bridge), at the MJCF camera's nominal pose.
    """
    root = ET.parse(MJCF_PATH).getroot()
    scene = next(c for c in camera_frames() if c.name.startswith("scene"))
    # SDF cameras look along +x with z up: optical frame (z forward, y down) -> x = z_opt, y = -x_opt, z = -y_opt.
    camera_rotation = scene.rotation @ np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    table = root.find(".//geom[@name='table']")
    table_size = 2 * np.array([float(v) for v in table.get("size").split()])
    table_pos = [float(v) for v in table.get("pos").split()]
    fovy = np.radians(float(root.find(".//camera[@name='scene']").get("fovy")))
    width, height = 640, 480
    hfov = 2 * np.arctan(np.tan(fovy / 2) * width / height)
    pose = f"{_fmt(scene.position)} {_fmt(rpy_from_matrix(camera_rotation))}"
    return f"""<?xml version="1.0"?>
<sdf version="1.9">
  <world name="vla_ros">
    <physics name="1ms" type="ignored"><max_step_size>0.001</max_step_size><real_time_factor>1.0</real_time_factor></physics>
    <plugin filename="gz-sim-physics-system" name="gz::sim::systems::Physics"/>
    <plugin filename="gz-sim-user-commands-system" name="gz::sim::systems::UserCommands"/>
    <plugin filename="gz-sim-scene-broadcaster-system" name="gz::sim::systems::SceneBroadcaster"/>
    <plugin filename="gz-sim-sensors-system" name="gz::sim::systems::Sensors"><render_engine>ogre2</render_engine></plugin>
    <light type="directional" name="key"><cast_shadows>false</cast_shadows><direction>-0.3 -0.4 -1</direction>
      <diffuse>0.8 0.8 0.8 1</diffuse></light>
    <model name="table">
      <static>true</static>
      <pose>{_fmt(table_pos)} 0 0 0</pose>
      <link name="top">
        <collision name="top"><geometry><box><size>{_fmt(table_size)}</size></box></geometry></collision>
        <visual name="top"><geometry><box><size>{_fmt(table_size)}</size></box></geometry>
          <material><diffuse>0.62 0.50 0.38 1</diffuse></material></visual>
      </link>
    </model>
    <model name="scene_camera">
      <static>true</static>
      <pose>{pose}</pose>
      <link name="link">
        <sensor name="scene" type="camera">
          <camera><horizontal_fov>{hfov:.6f}</horizontal_fov><image><width>{width}</width><height>{height}</height></image>
            <clip><near>0.02</near><far>20</far></clip><camera_info_topic>camera/camera_info</camera_info_topic></camera>
          <always_on>true</always_on><update_rate>30</update_rate><topic>camera/image_raw</topic>
          <gz_frame_id>{scene.name}</gz_frame_id>
        </sensor>
      </link>
    </model>
  </world>
</sdf>
"""
