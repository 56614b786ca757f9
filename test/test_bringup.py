"""The bringup plan (vla_ros/bringup.py) for every combination of launch arguments:
the right nodes, parameters, namespaces and remaps, and clear errors for bad values."""
from __future__ import annotations

import functools
import importlib
import itertools
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest
import yaml

from vla_ros import arm, description
from vla_ros.bringup import (
    CONTROLLER_NAMES,
    GLOBAL_NAMES,
    LAUNCH_ARGUMENTS,
    NAMESPACED_NAMES,
    PACKAGE,
    BringupArgs,
    BringupError,
    plan,
)
from vla_ros.paths import config_file, share_dir
from vla_ros.policies.builtin.policy import SHIPPED_CHECKPOINT, checkpoint_config

OUR_NODES = {"camera_node", "instruction_node", "safety_filter_node", "vla_node", "debug_view_node"}
CLOCK_SOURCES = {"mujoco_sim_node", "gz_server"}

# sim, hardware_plugin, controller: what each arm backend accepts.
BACKENDS = [("mujoco", None, None)] + [
    ("gazebo", None, controller) for controller in (None, "forward", "trajectory")
] + [("none", plugin, controller) for plugin in (None, "mock_components/GenericSystem", "franka_hardware/FrankaHardwareInterface", "external")
     for controller in (None, "forward", "trajectory")]
COMBINATIONS = list(itertools.product(
    BACKENDS, ("builtin", "lerobot", "openvla"), (False, True), (False, True), ("", "robot1", "/lab/arm_2"),
    (None, False, True)))


@functools.cache
def _config(node: str) -> dict:
    return yaml.safe_load(config_file(f"{node}.yaml").read_text())[node]["ros__parameters"]


def _id(combo) -> str:
    (sim, plugin, controller), policy, speech, rviz, namespace, sim_time = combo
    return (f"{sim}-{(plugin or 'default').split('/')[0]}-{controller or 'default'}-{policy}-speech{int(speech)}"
            f"-rviz{int(rviz)}-ns{namespace.replace('/', '_') or 'none'}-simtime{sim_time}")


def _expected_nodes(sim: str, plugin: str | None, speech: bool, rviz: bool, wrist: bool) -> set[str]:
    nodes = OUR_NODES | {"robot_state_publisher"}
    nodes |= {"wrist_camera_node"} if wrist else set()
    nodes |= {"speech_node"} if speech else set()
    nodes |= {"rviz2"} if rviz else set()
    if sim == "mujoco":
        nodes |= {"mujoco_sim_node"}
    elif sim == "gazebo":
        nodes |= {"gz_server", "gz_bridge", "gz_spawn_arm", "controller_spawner", "joint_command_relay_node"}
    else:
        nodes |= {"joint_command_relay_node"}
        if plugin != "external":
            nodes |= {"controller_manager", "controller_spawner"}
    return nodes


@pytest.mark.parametrize("combo", COMBINATIONS, ids=[_id(c) for c in COMBINATIONS])
def test_every_argument_combination(combo):
    (sim, plugin, controller), policy, speech, rviz, namespace, sim_time = combo
    args = BringupArgs(sim=sim, policy=policy, checkpoint="/models/p.pt" if policy != "builtin" else "",
                       speech=speech, rviz=rviz, namespace=namespace, use_sim_time=sim_time, controller=controller,
                       hardware_plugin=plugin)
    result = plan(args)
    names = result.names
    assert len(names) == len(set(names))
    # The shipped checkpoint decides whether the built-in policy gets the hand camera.
    wrist = policy == "builtin" and checkpoint_config(SHIPPED_CHECKPOINT).wrist_camera
    assert set(names) == _expected_nodes(sim, plugin, speech, rviz, wrist)
    # The arm side starts first, the policy after the safety filter, rviz last.
    assert names.index("safety_filter_node") < names.index("vla_node")
    assert names[0] in ("mujoco_sim_node", "gz_server", "robot_state_publisher")
    if rviz:
        assert names[-1] == "rviz2"

    expected_ns = "/" + namespace.strip("/") if namespace else ""
    expected_sim_time = sim == "gazebo" if sim_time is None else sim_time
    for spec in result.nodes:
        assert spec.namespace == expected_ns
        assert spec.full_name == f"{expected_ns}/{spec.name}"
        assert spec.external == (spec.package != PACKAGE)
        if spec.name in CLOCK_SOURCES:
            assert "use_sim_time" not in spec.parameters
        else:
            assert spec.parameters["use_sim_time"] is expected_sim_time
        remaps = dict(spec.remappings)
        for topic in NAMESPACED_NAMES:
            assert remaps.get(topic) == (f"{expected_ns}{topic}" if namespace else None)
        for topic in GLOBAL_NAMES:
            assert topic not in remaps
        if spec.package == PACKAGE:
            config = _config(spec.executable)
            assert set(spec.parameters) >= {k for k in config if not isinstance(config[k], dict)}
            assert spec.sources[0] == f"config/{spec.executable}.yaml"

    vla = result.node("vla_node").parameters
    assert (vla["backend"], vla["checkpoint"]) == (policy, args.checkpoint)
    assert result.node("camera_node").parameters["source"] == "topic"
    assert result.node("camera_node").parameters["image_topic"] == "/camera/image_raw"

    urdf = ET.fromstring(result.node("robot_state_publisher").parameters["robot_description"])
    hardware = urdf.find("ros2_control/hardware/plugin")
    controller_name = CONTROLLER_NAMES[controller or "forward"]
    if sim == "mujoco":
        assert hardware is None
        assert result.node("mujoco_sim_node").parameters["publish_clock"] is expected_sim_time
        assert result.node("mujoco_sim_node").parameters["wrist_camera"] is wrist
    elif sim == "gazebo":
        assert hardware.text == description.GAZEBO_PLUGIN
        assert urdf.find("gazebo/plugin/parameters").text == str(config_file("ros2_controllers.yaml"))
        assert "world_sdf_string" in result.node("gz_server").parameters
        bridge = result.node("gz_bridge").arguments
        assert any(b.startswith("/clock@rosgraph_msgs/msg/Clock[") for b in bridge)
        assert any(b.startswith("/camera/image_raw@sensor_msgs/msg/Image[") for b in bridge)
        assert result.node("gz_spawn_arm").oneshot
        assert result.node("gz_spawn_arm").arguments[:2] == ("-topic", "robot_description")
    elif plugin == "external":
        assert hardware is None
    else:
        assert hardware.text == (plugin or description.MOCK_PLUGIN)
        manager = result.node("controller_manager")
        assert manager.parameter_files == (str(config_file("ros2_controllers.yaml")),)
        assert ("~/robot_description", "robot_description") in manager.remappings
    if "controller_spawner" in names:
        spawner = result.node("controller_spawner")
        assert spawner.oneshot
        assert spawner.arguments == ("joint_state_broadcaster", controller_name, "--controller-manager",
                                     f"{expected_ns}/controller_manager")
    if sim != "mujoco":
        relay = result.node("joint_command_relay_node").parameters
        assert relay["controller"] == (controller or "forward")
        assert relay["output_topic"].startswith(f"{controller_name}/")
        assert relay["joints"] == list(arm.COMMANDED_JOINTS)
    if rviz:
        rviz_args = result.node("rviz2").arguments
        assert rviz_args[0] == "-d" and rviz_args[1] == str(config_file("vla.rviz"))


@pytest.mark.parametrize("node", sorted(OUR_NODES | {"mujoco_sim_node", "speech_node", "joint_command_relay_node"}))
def test_planned_parameters_are_declared_by_the_node(node):
    """A parameter the plan sets that the node does not declare would stop it with 'unknown parameter'."""
    declared = {p.name for p in importlib.import_module(f"vla_ros.nodes.{node}").PARAMS} | {"use_sim_time"}
    for args in (BringupArgs(speech=True), BringupArgs(sim="gazebo", speech=True),
                 BringupArgs(sim="none", speech=True, camera_source="device:/dev/video2")):
        for spec in plan(args).nodes:
            if spec.name == node:
                assert set(spec.parameters) <= declared, set(spec.parameters) - declared


def test_namespaced_names_cover_the_architecture_contract():
    text = (share_dir() / "docs" / "ARCHITECTURE.md").read_text()
    documented = set(re.findall(r"^\| `(/[a-z_/]+)`", text, flags=re.M))
    assert documented
    assert documented <= set(NAMESPACED_NAMES) | set(GLOBAL_NAMES), documented - set(NAMESPACED_NAMES)


@pytest.mark.parametrize("sim", ["gazebo", "none"])
@pytest.mark.parametrize("source, expected", [
    ("", {"source": "topic", "image_topic": "/camera/image_raw", "image_format": "raw"}),
    ("topic:/realsense/color/image_raw", {"source": "topic", "image_topic": "/realsense/color/image_raw",
                                          "camera_info_topic": "/realsense/color/camera_info", "image_format": "raw"}),
    ("/cam/image_raw/compressed", {"source": "topic", "image_topic": "/cam/image_raw/compressed",
                                   "camera_info_topic": "/cam/camera_info", "image_format": "compressed"}),
    ("topic:image", {"source": "topic", "image_topic": "image", "camera_info_topic": "camera_info"}),
    ("device:/dev/video2", {"source": "device", "device": "/dev/video2"}),
    ("/dev/video0", {"source": "device", "device": "/dev/video0"}),
    ("1", {"source": "device", "device": "1"}),
])
def test_camera_source(sim, source, expected):
    result = plan(BringupArgs(sim=sim, camera_source=source))
    camera = result.node("camera_node").parameters
    assert {key: camera[key] for key in expected} == expected
    view = result.node("debug_view_node").parameters
    if camera["source"] == "topic":  # the debug view draws on the same camera, raw
        assert view["image_topic"] == camera["image_topic"].removesuffix("/compressed")
        assert view["camera_info_topic"] == camera["camera_info_topic"]
    else:  # camera_node republishes what it captures on /camera/image_raw
        assert (view["image_topic"], camera["image_topic"]) == ("/camera/image_raw", "/camera/image_raw")


@pytest.mark.parametrize("sim", ["gazebo", "none"])
def test_camera_source_files(sim, tmp_path):
    video = tmp_path / "demo.mp4"
    video.write_bytes(b"")
    frames = tmp_path / "frames"
    frames.mkdir()
    for source, key, value in ((f"video:{video}", "video_path", video), (str(video), "video_path", video),
                               (f"images:{frames}", "images_path", frames)):
        camera = plan(BringupArgs(sim=sim, camera_source=source)).node("camera_node").parameters
        assert camera[key] == str(value)
        assert camera["source"] == key.split("_")[0]


@pytest.mark.parametrize("args, message", [
    ({"sim": "isaac"}, "sim:='isaac': expected one of mujoco, gazebo, none"),
    ({"policy": "pi0"}, "policy:='pi0': expected one of builtin, lerobot, openvla"),
    ({"namespace": "robot 1"}, "is not a ROS namespace"),
    ({"namespace": "1robot"}, "is not a ROS namespace"),
    ({"camera_source": "/dev/video0"}, "does not apply with sim:=mujoco"),
    ({"sim": "none", "camera_source": "webcam"}, "is not understood"),
    ({"sim": "none", "camera_source": "topic:"}, "nothing after 'topic:'"),
    ({"sim": "none", "camera_source": "topic:/bad topic"}, "is not a valid topic name"),
    ({"sim": "none", "camera_source": "video:/nonexistent.mp4"}, "no video file"),
    ({"sim": "none", "camera_source": "images:/nonexistent"}, "no image folder"),
    ({"controller": "trajectory"}, "controller:= applies to sim:=gazebo|none"),
    ({"sim": "gazebo", "controller": "velocity"}, "controller:='velocity': expected one of forward, trajectory"),
    ({"sim": "gazebo", "hardware_plugin": "mock_components/GenericSystem"}, "hardware_plugin:= applies to sim:=none"),
    ({"sim": "none", "hardware_plugin": "not a plugin"}, "expected a pluginlib name"),
    ({"params_file": "/nonexistent.yaml"}, "no such file"),
])
def test_bad_arguments_are_refused_with_a_clear_message(args, message):
    with pytest.raises(BringupError, match=re.escape(message)):
        plan(BringupArgs(**args))


def test_launch_strings():
    args = BringupArgs.from_strings({"sim": "gazebo", "speech": "True", "rviz": "0", "use_sim_time": "",
                                     "namespace": "r1", "controller": "", "hardware_plugin": ""})
    assert args == BringupArgs(sim="gazebo", speech=True, rviz=False, namespace="r1", use_sim_time=None)
    assert BringupArgs.from_strings({}) == BringupArgs()
    with pytest.raises(BringupError, match=r"speech:='maybe': expected true or false"):
        BringupArgs.from_strings({"speech": "maybe"})
    with pytest.raises(BringupError, match="unknown argument"):
        BringupArgs.from_strings({"simulator": "mujoco"})
    assert {a.name for a in LAUNCH_ARGUMENTS} == set(BringupArgs.__dataclass_fields__)


def _params_file(tmp_path, content) -> str:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(content))
    return str(path)


def test_params_file_overrides_package_config(tmp_path):
    path = _params_file(tmp_path, {
        "/**": {"ros__parameters": {"log_throttle": 5.0}},
        "safety_filter_node": {"ros__parameters": {"rate": 50.0, "workspace": {"table_z": 0.01}}},
        "/robot1/mujoco_sim_node": {"ros__parameters": {"seed": 7}},
        "/**/camera_node": {"ros__parameters": {"output_size": 96}},
    })
    result = plan(BringupArgs(params_file=path, namespace="robot1"))
    safety = result.node("safety_filter_node")
    assert safety.parameters["rate"] == 50.0
    assert safety.parameters["workspace.table_z"] == 0.01
    assert safety.parameters["workspace.tcp_clearance"] == 0.005  # the rest of the package config stays
    assert safety.sources == ("config/safety_filter_node.yaml", path)
    assert result.node("mujoco_sim_node").parameters["seed"] == 7
    assert result.node("camera_node").parameters["output_size"] == 96
    assert result.node("instruction_node").parameters["log_throttle"] == 5.0
    assert result.node("instruction_node").parameters["max_length"] == 256


def test_params_file_points_the_relay_at_a_robots_own_controller(tmp_path):
    path = _params_file(tmp_path, {"joint_command_relay_node": {"ros__parameters": {
        "output_topic": "/fr3_arm_controller/commands", "joints": [f"panda_joint{i}" for i in range(1, 8)]}}})
    relay = plan(BringupArgs(sim="none", hardware_plugin="external", params_file=path)).node("joint_command_relay_node")
    assert relay.parameters["output_topic"] == "/fr3_arm_controller/commands"
    assert relay.parameters["joints"] == list(arm.ARM_JOINTS)
    assert relay.parameters["controller"] == "forward"
    bad = _params_file(tmp_path, {"joint_command_relay_node": {"ros__parameters": {"controller": "trajectory"}}})
    with pytest.raises(BringupError, match="set by the launch argument controller:="):
        plan(BringupArgs(sim="none", params_file=bad))


@pytest.mark.parametrize("content, message", [
    ({"safety_filtre_node": {"ros__parameters": {"rate": 50.0}}}, "matches no planned node"),
    ({"speech_node": {"ros__parameters": {"stream_gap": 1.0}}}, "matches no planned node"),  # speech is off
    ({"safety_filter_node": {"rate": 50.0}}, "needs a 'ros__parameters:' mapping"),
    ({"vla_node": {"ros__parameters": {"backend": "lerobot"}}}, "set by the launch argument policy:="),
    ({"camera_node": {"ros__parameters": {"source": "device"}}}, "set by the launch argument camera_source:="),
    ({"/**": {"ros__parameters": {"use_sim_time": True}}}, "set by the launch argument use_sim_time:="),
    (["not", "a", "mapping"], "expected sections"),
])
def test_bad_params_files_are_refused(tmp_path, content, message):
    with pytest.raises(BringupError, match=re.escape(message)):
        plan(BringupArgs(params_file=_params_file(tmp_path, content)))


def test_ros_arguments_and_without():
    result = plan(BringupArgs(sim="none", namespace="r1"))
    manager = result.node("controller_manager")
    args = manager.ros_arguments("/tmp/p.yaml")
    assert args[:5] == ["--ros-args", "-r", "__node:=controller_manager", "-r", "__ns:=/r1"]
    assert args[5:9] == ["--params-file", str(config_file("ros2_controllers.yaml")), "--params-file", "/tmp/p.yaml"]
    assert "~/robot_description:=robot_description" in args
    assert "/joint_states:=/r1/joint_states" in args
    assert "vla_node" not in result.without("vla_node").names
    with pytest.raises(BringupError, match="cannot leave out mujoco_sim_node"):
        result.without("mujoco_sim_node")
    assert "/r1/controller_manager" in result.describe()


def test_rviz_config_shows_the_graph():
    config = yaml.safe_load(config_file("vla.rviz").read_text())
    manager = config["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == description.ROOT_LINK
    displays = {}
    for display in manager["Displays"]:
        assert display["Class"].startswith("rviz_default_plugins/")
        topic = display.get("Topic", display.get("Description Topic", {})).get("Value")
        displays.setdefault(display["Class"].split("/")[1], set()).add(topic)
    assert displays["RobotModel"] == {"/robot_description"}
    assert displays["TF"] == {None}
    assert displays["Image"] == {"/camera/image_raw", "/vla/debug_image"}
    assert displays["MarkerArray"] == {"/vla/markers", "/sim/objects"}
    # Every topic rviz shows moves with namespace:= (rviz2 gets the same remaps as the nodes).
    assert set().union(*displays.values()) - {None} <= set(NAMESPACED_NAMES)
    frames = manager["Displays"][[d["Class"] for d in manager["Displays"]].index("rviz_default_plugins/TF")]["Frames"]
    links = {link.get("name") for link in ET.fromstring(description.urdf()).findall("link")}
    assert set(frames) - {"All Enabled"} <= links


def _wrist_checkpoint(tmp_path) -> str:
    """A (untrained) built-in policy checkpoint whose config uses the hand camera."""
    import numpy as np

    from vla_ros.policies.builtin.config import CONFIGS
    from vla_ros.policies.builtin.model import VLAModel
    from vla_ros.policies.builtin.policy import BuiltinPolicy, Normalization

    config = replace(CONFIGS["tiny"], wrist_camera=True)
    k, d = config.chunk_size, config.action_dim
    normalization = Normalization(np.zeros(8, np.float32), np.ones(8, np.float32), np.zeros((k, d), np.float32),
                                  np.ones((k, d), np.float32))
    path = tmp_path / "wrist.pt"
    BuiltinPolicy(config, VLAModel(config), normalization).save(path)
    return str(path)


@pytest.mark.parametrize("sim", ["mujoco", "none"])
def test_a_policy_that_uses_the_hand_camera_gets_a_wrist_camera_node(tmp_path, sim):
    lerobot = tmp_path / "act"
    lerobot.mkdir()
    (lerobot / "config.json").write_text(json.dumps({"input_features": {
        "observation.images.wrist": {"type": "VISUAL", "shape": [3, 96, 96]},
        "observation.images.front": {"type": "VISUAL", "shape": [3, 96, 96]}}}))
    asked = {"shipped policy": BringupArgs(sim=sim),
             "built-in checkpoint with a wrist camera": BringupArgs(sim=sim, checkpoint=_wrist_checkpoint(tmp_path)),
             "LeRobot policy with a wrist image": BringupArgs(sim=sim, policy="lerobot", checkpoint=str(lerobot)),
             "wrist_camera:=true": BringupArgs(sim=sim, wrist_camera=True, namespace="r1"),
             "wrist_camera:=false": BringupArgs(sim=sim, policy="lerobot", checkpoint=str(lerobot), wrist_camera=False)}
    expected = {"shipped policy": checkpoint_config(SHIPPED_CHECKPOINT).wrist_camera,
                "wrist_camera:=false": False}
    for why, args in asked.items():
        result = plan(args)
        wanted = expected.get(why, True)
        assert ("wrist_camera_node" in result.names) == wanted, why
        if sim == "mujoco":
            assert result.node("mujoco_sim_node").parameters["wrist_camera"] is wanted, why
        if not wanted:
            continue
        wrist = result.node("wrist_camera_node")
        assert (wrist.package, wrist.executable) == (PACKAGE, "camera_node")
        assert wrist.sources[0] == "config/camera_node.yaml"
        assert wrist.parameters["output_size"] == _config("camera_node")["output_size"]
        assert (wrist.parameters["source"], wrist.parameters["image_topic"], wrist.parameters["camera_info_topic"],
                wrist.parameters["output_topic"]) == ("topic", "/wrist_camera/image_raw", "/wrist_camera/camera_info",
                                                      "/vla/wrist_image")
        assert names_before(result, "wrist_camera_node", "vla_node")
        if args.namespace:
            assert ("/vla/wrist_image", "/r1/vla/wrist_image") in wrist.remappings

    # Its input moves in params_file (a robot's own hand camera); its output and the simulator's switch do not.
    moved = _params_file(tmp_path, {"wrist_camera_node": {"ros__parameters": {"image_topic": "/hand/image_raw"}}})
    assert plan(BringupArgs(wrist_camera=True, params_file=moved)).node("wrist_camera_node").parameters[
        "image_topic"] == "/hand/image_raw"
    for node, parameter in (("wrist_camera_node", "output_topic"), ("mujoco_sim_node", "wrist_camera")):
        bad = _params_file(tmp_path, {node: {"ros__parameters": {parameter: "x"}}})
        with pytest.raises(BringupError, match="set by the launch argument wrist_camera:="):
            plan(BringupArgs(wrist_camera=True, params_file=bad))
    with pytest.raises(BringupError, match=r"wrist_camera:='sometimes': expected true or false"):
        BringupArgs.from_strings({"wrist_camera": "sometimes"})


def names_before(result, first: str, second: str) -> bool:
    return result.names.index(first) < result.names.index(second)
