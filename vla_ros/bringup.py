"""The bringup plan: which nodes to start, with which parameters and remappings, for a set
of launch arguments. Plain Python (no ROS imports): launch/*.launch.py and `vla-ros up`
both turn the same plan into processes, and tests check it for every argument combination.

Arguments (docs/BRINGUP.md): sim mujoco|gazebo|none (none = a real arm under
ros2_control), policy builtin|lerobot|openvla, checkpoint, speech, camera_source,
wrist_camera, rviz, namespace, use_sim_time, params_file, and for gazebo/none: controller
forward|trajectory, hardware_plugin.

Parameters of our nodes are resolved here into one flat dict per node (dotted names):
config/<node>.yaml, then the user's params_file, then what the arguments decide. Launch
and `vla-ros up` hand the dict to the node as a parameters file keyed `/**`, so the values
apply whatever the namespace (a section keyed `camera_node` would not match
`/robot1/camera_node`).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from vla_ros import description, paths
from vla_ros.policies import backend_uses_wrist_camera
from vla_ros.safety.config import flatten

SIMS = ("mujoco", "gazebo", "none")
POLICIES = ("builtin", "lerobot", "openvla")
CONTROLLERS = ("forward", "trajectory")
CONTROLLER_NAMES = {"forward": "forward_position_controller", "trajectory": "joint_trajectory_controller"}
CONTROLLER_TOPICS = {"forward": "commands", "trajectory": "joint_trajectory"}
JOINT_STATE_BROADCASTER = "joint_state_broadcaster"
CONTROLLERS_FILE = "ros2_controllers.yaml"
RVIZ_FILE = "vla.rviz"
CAMERA_SOURCES = ("topic", "device", "video", "images")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v")
PACKAGE = "vla_ros"

# Graph names of docs/ARCHITECTURE.md that move under a namespace (a test keeps this in
# step with the document). Global on purpose: /clock (one simulation clock), /diagnostics
# (rqt_robot_monitor's one input; statuses are prefixed with node names), /tf and /tf_static.
NAMESPACED_NAMES = (
    "/voice_command", "/speech/audio", "/speech/transcript", "/vla/instruction", "/vla/instruction_feedback",
    "/camera/image_raw", "/camera/camera_info", "/vla/image", "/vla/depth", "/wrist_camera/image_raw",
    "/wrist_camera/camera_info", "/vla/wrist_image", "/joint_states", "/vla/action_chunk",
    "/vla/joint_targets", "/joint_commands", "/safety/status", "/safety/estop", "/vla/status", "/sim/task",
    "/sim/objects", "/sim/reset", "/sim/set_task", "/safety/trigger_estop", "/safety/reset_estop",
    "/vla/debug_image", "/vla/markers", "/robot_description",
)
GLOBAL_NAMES = ("/clock", "/diagnostics", "/tf", "/tf_static")

# Parameters the launch arguments decide; setting them in params_file is refused as ambiguous.
ARGUMENT_PARAMETERS = {
    "vla_node": {"backend": "policy", "checkpoint": "checkpoint"},
    "camera_node": {name: "camera_source" for name in
                    ("source", "image_topic", "camera_info_topic", "image_format", "device", "video_path",
                     "images_path")},
    "wrist_camera_node": {"output_topic": "wrist_camera"},
    "debug_view_node": {"image_topic": "camera_source", "camera_info_topic": "camera_source"},
    "mujoco_sim_node": {"publish_clock": "use_sim_time", "wrist_camera": "wrist_camera"},
    "joint_command_relay_node": {"controller": "controller"},
    "*": {"use_sim_time": "use_sim_time"},
}

_NAME_TOKEN = r"[A-Za-z_][A-Za-z0-9_]*"
_NAMESPACE_RE = re.compile(rf"^/?({_NAME_TOKEN}(/{_NAME_TOKEN})*)?$")
# libyaml's loader when PyYAML has it: the plan reads every node's config file.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TOPIC_RE = re.compile(rf"^/?{_NAME_TOKEN}(/{_NAME_TOKEN})*$")


class BringupError(ValueError):
    """Bad launch arguments; the message says which and what would be accepted."""


@dataclass(frozen=True)
class LaunchArgument:
    name: str
    default: str
    description: str


# The launch files declare these; `vla-ros up` has a flag for each (--camera-source for camera_source).
LAUNCH_ARGUMENTS = (
    LaunchArgument("sim", "mujoco", "arm backend: mujoco (simulated arm), gazebo (gz sim + ros2_control) "
                   "or none (a real arm under ros2_control)"),
    LaunchArgument("policy", "builtin", "VLA policy backend: builtin, lerobot or openvla"),
    LaunchArgument("checkpoint", "", "policy checkpoint file or model directory; empty: the one shipped with vla_ros"),
    LaunchArgument("speech", "false", "true: also start speech_node (spoken instructions on /speech/audio)"),
    LaunchArgument("camera_source", "", "camera for sim:=gazebo|none: topic:NAME, device:/dev/videoN, "
                   "video:FILE, images:DIR (or a bare /topic, /dev/videoN, N, FILE.mp4); empty: /camera/image_raw"),
    LaunchArgument("wrist_camera", "", "true|false: also give the policy the hand camera (/wrist_camera/image_raw, "
                   "the simulator's with sim:=mujoco) through wrist_camera_node on /vla/wrist_image; empty: when "
                   "the policy uses one"),
    LaunchArgument("rviz", "false", "true: start rviz2 with config/vla.rviz"),
    LaunchArgument("namespace", "", "namespace for every node and every topic of the graph (e.g. robot1)"),
    LaunchArgument("use_sim_time", "", "true|false; empty: true with sim:=gazebo, else false "
                   "(with sim:=mujoco, true makes the simulator publish /clock)"),
    LaunchArgument("params_file", "", "YAML of parameter overrides, sections keyed by node name"),
    LaunchArgument("controller", "", "sim:=gazebo|none: ros2_control controller that receives /joint_commands: "
                   "forward (forward_command_controller, default) or trajectory (joint_trajectory_controller)"),
    LaunchArgument("hardware_plugin", "", f"sim:=none: ros2_control hardware plugin (default "
                   f"{description.MOCK_PLUGIN}); 'external' when your robot's own bringup runs the controller manager"),
)
EXTERNAL_CONTROLLER_MANAGER = "external"


@dataclass(frozen=True)
class BringupArgs:
    sim: str = "mujoco"
    policy: str = "builtin"
    checkpoint: str = ""
    speech: bool = False
    camera_source: str = ""
    wrist_camera: bool | None = None  # None: when the policy uses the hand camera
    rviz: bool = False
    namespace: str = ""
    use_sim_time: bool | None = None  # None: true with gazebo, else false
    params_file: str = ""
    controller: str | None = None  # None: forward (gazebo, none)
    hardware_plugin: str | None = None  # None: the mock plugin (none)

    @classmethod
    def from_strings(cls, values: Mapping[str, str]) -> BringupArgs:
        """Arguments as launch gives them (every value a string; '' = default)."""
        known = {a.name for a in LAUNCH_ARGUMENTS}
        unknown = sorted(set(values) - known)
        if unknown:
            raise BringupError(f"unknown argument(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")

        def text(name: str) -> str:
            return str(values.get(name, "")).strip()

        def flag(name: str, default: bool | None) -> bool | None:
            value = text(name).lower()
            if value == "":
                return default
            if value in ("true", "1", "yes", "on"):
                return True
            if value in ("false", "0", "no", "off"):
                return False
            raise BringupError(f"{name}:={values[name]!r}: expected true or false")

        return cls(sim=text("sim") or "mujoco", policy=text("policy") or "builtin", checkpoint=text("checkpoint"),
                   speech=bool(flag("speech", False)), camera_source=text("camera_source"),
                   wrist_camera=flag("wrist_camera", None),
                   rviz=bool(flag("rviz", False)), namespace=text("namespace"),
                   use_sim_time=flag("use_sim_time", None), params_file=text("params_file"),
                   controller=text("controller") or None, hardware_plugin=text("hardware_plugin") or None)


@dataclass(frozen=True)
class NodeSpec:
    """One process of the graph, as launch_ros.actions.Node would take it."""

    package: str
    executable: str
    name: str
    namespace: str = ""  # "" or "/robot1"
    parameters: dict[str, Any] = field(default_factory=dict)  # flat: dotted names -> values
    parameter_files: tuple[str, ...] = ()  # passed as they are (sections for several nodes, e.g. controllers)
    remappings: tuple[tuple[str, str], ...] = ()
    arguments: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()  # where `parameters` came from, for people reading the plan
    oneshot: bool = False  # exits by itself when done (spawners), exit code 0 = success

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def external(self) -> bool:
        """Not part of vla_ros: needs a ROS 2 install that has the package."""
        return self.package != PACKAGE

    def ros_arguments(self, parameters_file: str | None = None) -> list[str]:
        """The `--ros-args ...` tail of the command line; `parameters_file` holds `parameters` (keyed /**)."""
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        if self.namespace:
            args += ["-r", f"__ns:={self.namespace}"]
        for path in self.parameter_files:
            args += ["--params-file", path]
        if parameters_file:
            args += ["--params-file", parameters_file]
        for source, target in self.remappings:
            args += ["-r", f"{source}:={target}"]
        return args


@dataclass(frozen=True)
class Plan:
    args: BringupArgs
    nodes: tuple[NodeSpec, ...]

    def node(self, name: str) -> NodeSpec:
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise KeyError(f"no node {name!r} in the plan; planned: {', '.join(self.names)}")

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.nodes]

    def without(self, *names: str) -> Plan:
        """The same plan minus some nodes (e.g. a graph without the policy)."""
        unknown = sorted(set(names) - set(self.names))
        if unknown:
            raise BringupError(f"cannot leave out {', '.join(unknown)}: not in the plan ({', '.join(self.names)})")
        return replace(self, nodes=tuple(n for n in self.nodes if n.name not in names))

    def describe(self) -> str:
        """A readable listing of the plan (`vla-ros up --dry-run`)."""
        lines = []
        for spec in self.nodes:
            lines.append(f"{spec.full_name}  ({spec.package} {spec.executable}{' ' + ' '.join(spec.arguments) if spec.arguments else ''})")
            if spec.sources:
                lines.append(f"    parameters from {' + '.join(spec.sources)}")
            for name, value in sorted(spec.parameters.items()):
                shown = f"<{len(value)} characters>" if isinstance(value, str) and len(value) > 80 else repr(value)
                lines.append(f"    {name} = {shown}")
            for path in spec.parameter_files:
                lines.append(f"    --params-file {path}")
            for source, target in spec.remappings:
                lines.append(f"    remap {source} -> {target}")
        return "\n".join(lines)


def _package_config(node: str) -> tuple[dict[str, Any], str]:
    path = paths.config_file(f"{node}.yaml")
    section = (yaml.load(path.read_text(), Loader=_YAML_LOADER) or {}).get(node, {}).get("ros__parameters", {})
    return flatten(section), f"config/{path.name}"


def _normalise_namespace(namespace: str) -> str:
    namespace = namespace.strip().rstrip("/") if namespace.strip() != "/" else ""
    if not _NAMESPACE_RE.match(namespace):
        raise BringupError(f"namespace:={namespace!r} is not a ROS namespace: use names like robot1 or lab/robot1 "
                           "(letters, digits, _; each part starting with a letter or _)")
    return "" if not namespace else "/" + namespace.lstrip("/")


def _camera_parameters(source: str, sim: str) -> dict[str, Any]:
    """camera_node parameters for camera_source (see LAUNCH_ARGUMENTS)."""
    if not source:
        return {}
    if sim == "mujoco":
        raise BringupError(f"camera_source:={source!r} does not apply with sim:=mujoco: the simulator's camera "
                           "(/camera/image_raw) feeds camera_node; use sim:=gazebo or sim:=none for another camera")
    kind, _, value = source.partition(":")
    if kind not in CAMERA_SOURCES:
        kind, value = _guess_camera_kind(source), source
    if not value:
        raise BringupError(f"camera_source:={source!r}: nothing after '{kind}:'")
    if kind == "topic":
        if not _TOPIC_RE.match(value):
            raise BringupError(f"camera_source:={source!r}: {value!r} is not a valid topic name")
        compressed = value.endswith("/compressed")
        # image_transport's convention: camera_info beside the image topic (/cam/image_raw -> /cam/camera_info).
        image = value.removesuffix("/compressed")
        return {"source": "topic", "image_topic": value, "image_format": "compressed" if compressed else "raw",
                "camera_info_topic": image[:image.rfind("/") + 1] + "camera_info"}
    if kind == "device":
        return {"source": "device", "device": value}
    path = Path(value).expanduser()
    if kind == "video":
        if not path.is_file():
            raise BringupError(f"camera_source:={source!r}: no video file {path}")
        return {"source": "video", "video_path": str(path.resolve())}
    if not path.is_dir():
        raise BringupError(f"camera_source:={source!r}: no image folder {path}")
    return {"source": "images", "images_path": str(path.resolve())}


def _guess_camera_kind(source: str) -> str:
    if source.startswith("/dev/") or source.isdigit():
        return "device"
    if source.lower().endswith(VIDEO_SUFFIXES):
        return "video"
    if source.startswith("/"):
        return "topic"
    raise BringupError(f"camera_source:={source!r} is not understood: use topic:/NAME, device:/dev/videoN, "
                       "video:FILE, images:DIR (bare /NAME, /dev/videoN, N and FILE.mp4 also work)")


def _user_parameters(params_file: str, nodes: list[tuple[str, str]]) -> tuple[dict[str, dict[str, Any]], str]:
    """The params_file's values per node name, flattened; sections must name planned nodes.

    `nodes` holds (name, namespace). Accepted section keys: name, /name, /namespace/name,
    /**/name and /** (every node).
    """
    if not params_file:
        return {}, ""
    path = Path(params_file).expanduser()
    if not path.is_file():
        raise BringupError(f"params_file:={params_file!r}: no such file")
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise BringupError(f"params_file:={params_file!r} is not valid YAML: {err}") from err
    if not isinstance(content, dict):
        raise BringupError(f"params_file:={params_file!r}: expected sections '<node name>: ros__parameters: ...'")
    values: dict[str, dict[str, Any]] = {name: {} for name, _ in nodes}
    # Wildcards first, so that a section for one node overrides them.
    for key in sorted(content, key=lambda k: str(k) != "/**"):
        section = content[key]
        if not isinstance(section, dict) or not isinstance(section.get("ros__parameters"), dict):
            raise BringupError(f"params_file:={params_file!r}: section {key!r} needs a 'ros__parameters:' mapping")
        targets = [name for name, namespace in nodes
                   if str(key) in ("/**", name, f"/{name}", f"{namespace}/{name}", f"/**/{name}")]
        if not targets:
            raise BringupError(f"params_file:={params_file!r}: section {key!r} matches no planned node; "
                               f"planned: {', '.join(name for name, _ in nodes)}")
        flat = flatten(section["ros__parameters"])
        for name in targets:
            controlled = {**ARGUMENT_PARAMETERS["*"], **ARGUMENT_PARAMETERS.get(name, {})}
            for parameter in sorted(set(flat) & set(controlled)):
                raise BringupError(f"params_file:={params_file!r}: {name}.{parameter} is set by the launch argument "
                                   f"{controlled[parameter]}:=, not by the parameters file")
            values[name].update(flat)
    return values, str(path)


def _validate(args: BringupArgs) -> tuple[str, bool, str, str]:
    """Checks every argument; returns (namespace, use_sim_time, controller, hardware_plugin)."""
    if args.sim not in SIMS:
        raise BringupError(f"sim:={args.sim!r}: expected one of {', '.join(SIMS)}")
    if args.policy not in POLICIES:
        raise BringupError(f"policy:={args.policy!r}: expected one of {', '.join(POLICIES)}")
    namespace = _normalise_namespace(args.namespace)
    if args.sim == "mujoco":
        for name in ("controller", "hardware_plugin"):
            if getattr(args, name) is not None:
                raise BringupError(f"{name}:= applies to sim:=gazebo|none (ros2_control), not to sim:=mujoco")
    if args.hardware_plugin is not None and args.sim != "none":
        raise BringupError("hardware_plugin:= applies to sim:=none (a real arm); Gazebo uses gz_ros2_control")
    controller = args.controller or "forward"
    if controller not in CONTROLLERS:
        raise BringupError(f"controller:={controller!r}: expected one of {', '.join(CONTROLLERS)}")
    plugin = args.hardware_plugin or description.MOCK_PLUGIN
    if plugin != EXTERNAL_CONTROLLER_MANAGER and not re.match(rf"^{_NAME_TOKEN}(::{_NAME_TOKEN}|/{_NAME_TOKEN})+$",
                                                              plugin):
        raise BringupError(f"hardware_plugin:={plugin!r}: expected a pluginlib name such as "
                           f"{description.MOCK_PLUGIN}, or '{EXTERNAL_CONTROLLER_MANAGER}'")
    use_sim_time = args.sim == "gazebo" if args.use_sim_time is None else args.use_sim_time
    return namespace, use_sim_time, controller, plugin


def plan(args: BringupArgs) -> Plan:
    """The nodes to start for `args`, in start order (arm side first, rviz last). Raises BringupError."""
    namespace, use_sim_time, controller, plugin = _validate(args)
    camera = _camera_parameters(args.camera_source, args.sim)
    wrist_camera = (backend_uses_wrist_camera(args.policy, args.checkpoint) if args.wrist_camera is None
                    else args.wrist_camera)
    remappings = tuple((name, f"{namespace}{name}") for name in NAMESPACED_NAMES) if namespace else ()
    controllers_file = str(paths.config_file(CONTROLLERS_FILE))
    controller_name = CONTROLLER_NAMES[controller]
    ros2_control = {"mujoco": "", "gazebo": "gazebo"}.get(args.sim, "" if plugin == EXTERNAL_CONTROLLER_MANAGER
                                                                    else plugin)
    robot_description = description.urdf(ros2_control, controllers_file if args.sim == "gazebo" else "", namespace)

    # (package, executable, name, parameters from the arguments, extra fields); ours read config/<name>.yaml.
    nodes: list[tuple[str, str, str, dict[str, Any], dict[str, Any]]] = []
    if args.sim == "mujoco":
        nodes.append((PACKAGE, "mujoco_sim_node", "mujoco_sim_node",
                      {"publish_clock": use_sim_time, "wrist_camera": wrist_camera}, {}))
    if args.sim == "gazebo":
        nodes += [
            ("ros_gz_sim", "gzserver", "gz_server", {"world_sdf_string": description.gazebo_world_sdf()}, {}),
            ("ros_gz_bridge", "parameter_bridge", "gz_bridge", {}, {"arguments": (
                "/clock@rosgraph_msgs/msg/Clock[gz.msgs.Clock",
                "/camera/image_raw@sensor_msgs/msg/Image[gz.msgs.Image",
                "/camera/camera_info@sensor_msgs/msg/CameraInfo[gz.msgs.CameraInfo")}),
        ]
    nodes.append(("robot_state_publisher", "robot_state_publisher", "robot_state_publisher",
                  {"robot_description": robot_description}, {}))
    if args.sim == "gazebo":
        nodes.append(("ros_gz_sim", "create", "gz_spawn_arm", {},
                      {"arguments": ("-topic", "robot_description", "-name", description.ROBOT_NAME),
                       "oneshot": True}))
    if args.sim == "none" and plugin != EXTERNAL_CONTROLLER_MANAGER:
        nodes.append(("controller_manager", "ros2_control_node", "controller_manager", {},
                      {"parameter_files": (controllers_file,),
                       "remappings": (("~/robot_description", "robot_description"),)}))
    if args.sim == "gazebo" or (args.sim == "none" and plugin != EXTERNAL_CONTROLLER_MANAGER):
        nodes.append(("controller_manager", "spawner", "controller_spawner", {},
                      {"arguments": (JOINT_STATE_BROADCASTER, controller_name,
                                     "--controller-manager", f"{namespace}/controller_manager"),
                       "oneshot": True}))
    if args.sim in ("gazebo", "none"):
        # The output topic follows the controller unless params_file names another (a robot's own controller).
        nodes.append((PACKAGE, "joint_command_relay_node", "joint_command_relay_node", {"controller": controller},
                      {"defaults": {"output_topic": f"{controller_name}/{CONTROLLER_TOPICS[controller]}"}}))
    nodes.append((PACKAGE, "camera_node", "camera_node", camera, {}))
    if wrist_camera:
        # A second camera_node frames the hand camera for the policy; its input can be moved in params_file.
        nodes.append((PACKAGE, "camera_node", "wrist_camera_node", {"output_topic": "/vla/wrist_image"},
                      {"defaults": {"source": "topic", "image_topic": "/wrist_camera/image_raw",
                                    "camera_info_topic": "/wrist_camera/camera_info"}}))
    nodes.append((PACKAGE, "instruction_node", "instruction_node", {}, {}))
    if args.speech:
        nodes.append((PACKAGE, "speech_node", "speech_node", {}, {}))
    nodes.append((PACKAGE, "safety_filter_node", "safety_filter_node", {}, {}))
    nodes.append((PACKAGE, "vla_node", "vla_node", {"backend": args.policy, "checkpoint": args.checkpoint}, {}))
    # The annotated image for rqt_image_view and the markers for rviz, drawn on the camera's raw images
    # (image_transport publishes raw beside compressed).
    view = {"image_topic": camera["image_topic"].removesuffix("/compressed"),
            "camera_info_topic": camera["camera_info_topic"]} if camera.get("source") == "topic" else {}
    nodes.append((PACKAGE, "debug_view_node", "debug_view_node", view, {}))
    if args.rviz:
        nodes.append(("rviz2", "rviz2", "rviz2", {}, {"arguments": ("-d", str(paths.config_file(RVIZ_FILE)))}))

    user, user_source = _user_parameters(args.params_file, [(name, namespace) for _, _, name, _, _ in nodes])
    clock_sources = {"mujoco_sim_node", "gz_server"}
    specs = []
    for package, executable, name, decided, extra in nodes:
        parameters, sources = {}, []
        if package == PACKAGE:
            config, source = _package_config(executable)
            parameters.update(config)
            sources.append(source)
        parameters.update(extra.pop("defaults", {}))
        if user.get(name):
            parameters.update(user[name])
            sources.append(user_source)
        parameters.update(flatten(decided))
        if name not in clock_sources:
            parameters["use_sim_time"] = use_sim_time
        if decided:
            sources.append("launch arguments")
        specs.append(NodeSpec(package=package, executable=executable, name=name, namespace=namespace,
                              parameters=parameters, remappings=extra.pop("remappings", ()) + remappings,
                              sources=tuple(sources), **extra))
    return Plan(args=args, nodes=tuple(specs))
