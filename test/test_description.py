"""The generated URDF agrees with the MuJoCo model and vla_ros/arm.py: joint axes, limits,
forward kinematics at random configurations, camera frames. The URDF is parsed with
xml.etree and its kinematics computed here, independently of the generator."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import mujoco
import numpy as np
import pytest

from vla_ros import arm, description
from vla_ros.cli import main as cli_main
from vla_ros.paths import share_dir

CHECKED_IN = share_dir() / "urdf" / "vla_arm.urdf"


def _rot(rpy) -> np.ndarray:
    r, p, y = rpy
    rx = np.array([[1, 0, 0], [0, np.cos(r), -np.sin(r)], [0, np.sin(r), np.cos(r)]])
    ry = np.array([[np.cos(p), 0, np.sin(p)], [0, 1, 0], [-np.sin(p), 0, np.cos(p)]])
    rz = np.array([[np.cos(y), -np.sin(y), 0], [np.sin(y), np.cos(y), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _axis_angle(axis, angle) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _vec(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.split()])


class Urdf:
    def __init__(self, text: str):
        self.root = ET.fromstring(text)
        self.joints = {j.get("name"): j for j in self.root.findall("joint")}
        self.parent_joint = {j.find("child").get("link"): j for j in self.joints.values()}

    def link_pose(self, link: str, q: dict[str, float]) -> np.ndarray:
        """world <- link at joint positions q (mimic joints follow their leader)."""
        if link not in self.parent_joint:
            return np.eye(4)
        joint = self.parent_joint[link]
        origin = joint.find("origin")
        local = np.eye(4)
        local[:3, :3] = _rot(_vec(origin.get("rpy")))
        local[:3, 3] = _vec(origin.get("xyz"))
        kind = joint.get("type")
        if kind != "fixed":
            mimic = joint.find("mimic")
            value = q[mimic.get("joint")] * float(mimic.get("multiplier")) if mimic is not None else q[joint.get("name")]
            axis = _vec(joint.find("axis").get("xyz"))
            motion = np.eye(4)
            if kind == "revolute":
                motion[:3, :3] = _axis_angle(axis, value)
            else:
                motion[:3, 3] = axis * value
            local = local @ motion
        return self.link_pose(joint.find("parent").get("link"), q) @ local


@pytest.fixture(scope="module")
def model():
    return mujoco.MjModel.from_xml_path(str(description.MJCF_PATH))


@pytest.fixture(scope="module")
def robot():
    return Urdf(description.urdf())


def _random_configurations(n: int, seed: int = 0) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    limits = arm.limits_arrays()
    return [dict(zip(arm.COMMANDED_JOINTS, rng.uniform(limits["lower"], limits["upper"]))) for _ in range(n)]


def _mujoco_pose(model, data, q: dict[str, float]) -> None:
    for name, value in q.items():
        data.qpos[model.joint(name).qposadr[0]] = value
    data.qpos[model.joint(arm.GRIPPER_MIMIC_JOINT).qposadr[0]] = q[arm.GRIPPER_JOINT]
    mujoco.mj_kinematics(model, data)
    mujoco.mj_camlight(model, data)


def test_joint_limits_and_types_match_arm_and_mujoco(robot, model):
    movable = {name: j for name, j in robot.joints.items() if j.get("type") != "fixed"}
    assert set(movable) == set(arm.STATE_JOINTS)
    for name, joint in movable.items():
        limit = joint.find("limit")
        expected = arm.PANDA_LIMITS[arm.GRIPPER_JOINT if name == arm.GRIPPER_MIMIC_JOINT else name]
        assert float(limit.get("lower")) == expected.lower
        assert float(limit.get("upper")) == expected.upper
        assert float(limit.get("velocity")) == expected.velocity
        np.testing.assert_allclose(model.joint(name).range, [expected.lower, expected.upper])
        assert joint.get("type") == ("revolute" if name in arm.ARM_JOINTS else "prismatic")
    for name in arm.COMMANDED_JOINTS:
        force = model.actuator(name).forcerange[1]
        urdf_effort = float(robot.joints[name].find("limit").get("effort"))
        # The MuJoCo gripper servo drives both fingers through one tendon.
        assert urdf_effort == (force / 2 if name == arm.GRIPPER_JOINT else force)
    assert robot.joints[arm.GRIPPER_MIMIC_JOINT].find("mimic").get("joint") == arm.GRIPPER_JOINT


def test_forward_kinematics_matches_mujoco_and_arm(robot, model):
    data = mujoco.MjData(model)
    bodies = [f"panda_link{i}" for i in range(8)] + ["panda_hand", "panda_leftfinger", "panda_rightfinger"]
    for q in _random_configurations(50):
        _mujoco_pose(model, data, q)
        for body in bodies:
            pose = robot.link_pose(body, q)
            np.testing.assert_allclose(pose[:3, 3], data.body(body).xpos, atol=1e-9, err_msg=body)
            np.testing.assert_allclose(pose[:3, :3], data.body(body).xmat.reshape(3, 3), atol=1e-9, err_msg=body)
        tcp = robot.link_pose(description.TCP_LINK, q)
        np.testing.assert_allclose(tcp[:3, 3], data.site("tcp").xpos, atol=1e-9)
        frames = arm.forward_kinematics([q[name] for name in arm.ARM_JOINTS])
        links = [f"panda_link{i}" for i in range(1, 8)] + [description.FLANGE_LINK, description.TCP_LINK]
        for link, expected in zip(links, frames):
            np.testing.assert_allclose(robot.link_pose(link, q), expected, atol=1e-9, err_msg=link)


def test_joint_axes_match_mujoco(robot, model):
    data = mujoco.MjData(model)
    for q in _random_configurations(10, seed=1):
        _mujoco_pose(model, data, q)
        for name in arm.STATE_JOINTS:
            joint = robot.joints[name]
            child = robot.link_pose(joint.find("child").get("link"), q)
            axis_world = child[:3, :3] @ _vec(joint.find("axis").get("xyz"))
            np.testing.assert_allclose(axis_world, data.joint(name).xaxis, atol=1e-9, err_msg=name)


def test_camera_frames_match_mujoco_cameras(robot, model):
    data = mujoco.MjData(model)
    q = _random_configurations(1, seed=2)[0]
    _mujoco_pose(model, data, q)
    for camera in ("scene", "wrist"):
        pose = robot.link_pose(f"{camera}_camera_optical_frame", q)
        np.testing.assert_allclose(pose[:3, 3], data.cam(camera).xpos, atol=1e-9)
        # Optical frame: z along the view direction (MuJoCo's -z), y down (MuJoCo's -y).
        mj = data.cam(camera).xmat.reshape(3, 3)
        np.testing.assert_allclose(pose[:3, :3], mj @ np.diag([1, -1, -1]), atol=1e-9)


def test_rpy_from_matrix_round_trips():
    rng = np.random.default_rng(3)
    rotations = [_rot(rng.uniform(-np.pi, np.pi, 3)) for _ in range(100)]
    rotations += [_rot((0.3, np.pi / 2, -0.4)), _rot((0.3, -np.pi / 2, 1.0))]  # gimbal lock
    for rotation in rotations:
        np.testing.assert_allclose(_rot(description.rpy_from_matrix(rotation)), rotation, atol=1e-9)


def test_ros2_control_block_declares_every_commanded_joint():
    root = ET.fromstring(description.urdf("gazebo", "/tmp/controllers.yaml", "/robot1"))
    control = root.find("ros2_control")
    assert control.find("hardware/plugin").text == description.GAZEBO_PLUGIN
    assert [j.get("name") for j in control.findall("joint")] == list(arm.COMMANDED_JOINTS)
    plugin = root.find("gazebo/plugin")
    assert plugin.find("parameters").text == "/tmp/controllers.yaml"
    assert plugin.find("ros/namespace").text == "/robot1"
    mock = ET.fromstring(description.urdf(description.MOCK_PLUGIN))
    assert mock.find("ros2_control/hardware/plugin").text == description.MOCK_PLUGIN
    assert mock.find("gazebo") is None
    with pytest.raises(ValueError, match="controllers file"):
        description.urdf("gazebo")


def test_gazebo_world_camera_matches_mujoco_scene_camera(model):
    world = ET.fromstring(description.gazebo_world_sdf())
    pose = _vec(world.find(".//model[@name='scene_camera']/pose").text)
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    mujoco.mj_camlight(model, data)
    np.testing.assert_allclose(pose[:3], data.cam("scene").xpos, atol=1e-9)
    # SDF cameras look along +x with z up; MuJoCo's along -z with y up.
    sdf_view, sdf_up = _rot(pose[3:])[:, 0], _rot(pose[3:])[:, 2]
    mj = data.cam("scene").xmat.reshape(3, 3)
    np.testing.assert_allclose(sdf_view, -mj[:, 2], atol=1e-9)
    np.testing.assert_allclose(sdf_up, mj[:, 1], atol=1e-9)
    assert world.find(".//sensor/topic").text == "camera/image_raw"


def test_checked_in_urdf_is_generated(capsys):
    assert CHECKED_IN.read_text() == description.urdf(), "regenerate with: vla-ros urdf --out urdf/vla_arm.urdf"
    assert cli_main(["urdf"]) == 0
    assert capsys.readouterr().out == description.urdf()
