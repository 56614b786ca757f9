"""Record topics over DDS into MCAP files, and read them back.

A recording is what `ros2 bag record -s mcap` writes: profile `ros2`, each message
as the CDR bytes it was published as (raw subscriptions: nothing is deserialised
on the way to disk), and one `ros2msg` schema per type: the type's .msg text,
then every type it uses, each after a line of 80 '=' and a `MSG: pkg/msg/Type`
line (rosbag2's message definition encoding). Foxglove, `ros2 bag` and the mcap
tools decode it without vla_ros. The .msg files are read from the installed
packages (share/<pkg>/msg under AMENT_PREFIX_PATH or this interpreter's prefix).

Topics are discovered in the ROS graph while recording (a topic may appear late,
when its publisher starts). Each is subscribed with the QoS its publishers offer,
as rosbag2 does: reliable only when every publisher is, transient local only when
every publisher is (so a latched instruction published before the recording
started is in it). Log and publish times are the receive time (ns since the epoch).
"""
from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

DEFAULT_TOPICS: tuple[str, ...] = (
    "/camera/image_raw",
    "/vla/image",
    "/vla/wrist_image",  # only when a policy uses the hand camera (topics are taken when they appear)
    "/joint_states",
    "/joint_commands",
    "/vla/joint_targets",
    "/vla/action_chunk",
    "/vla/instruction",
    "/vla/status",
    "/safety/status",
    "/sim/task",
)
DEFINITION_SEPARATOR = "=" * 80
# Messages a subscription queues between two spins; images at 30 Hz fill 10 in a third of a second.
QUEUE_DEPTH = 100
DISCOVERY_PERIOD = 0.5  # s between looks for newly published topics


class RecordingError(RuntimeError):
    """A recording cannot be written or read; the message says why."""


def _share_roots() -> list[Path]:
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    return [Path(prefix) / "share" for prefix in prefixes]


def message_definition_file(type_name: str) -> Path:
    """The installed .msg file of 'pkg/msg/Type'."""
    package, _, name = type_name.split("/")
    for share in _share_roots():
        path = share / package / "msg" / f"{name}.msg"
        if path.is_file():
            return path
    raise RecordingError(f"no message definition for {type_name}: {package}/msg/{name}.msg is not under "
                         f"{', '.join(str(s) for s in _share_roots())}")


def schema_text(type_name: str) -> str:
    """The complete ros2msg definition of 'pkg/msg/Type': its .msg text, then each dependency's once."""
    from rosidl_adapter.parser import parse_message_string

    parts: list[str] = []
    seen: set[str] = set()

    def add(name: str) -> None:
        seen.add(name)
        text = message_definition_file(name).read_text()
        package, _, msg = name.split("/")
        parts.append(text if not parts else f"{DEFINITION_SEPARATOR}\nMSG: {name}\n{text}")
        for field in parse_message_string(package, msg, text).fields:
            if not field.type.is_primitive_type():
                dependency = f"{field.type.pkg_name}/msg/{field.type.type}"
                if dependency not in seen:
                    add(dependency)

    add(type_name)
    return "\n".join(part.rstrip("\n") for part in parts) + "\n"


def subscription_qos(offered):
    """The QoS that receives from every publisher in `offered` (their rclpy QoSProfiles), as rosbag2 picks it."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    offered = list(offered)
    reliable = bool(offered) and all(q.reliability == ReliabilityPolicy.RELIABLE for q in offered)
    latched = bool(offered) and all(q.durability == DurabilityPolicy.TRANSIENT_LOCAL for q in offered)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=QUEUE_DEPTH,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


class Recorder:
    """Subscribes to `topics` on `node` as they appear and writes every message to the MCAP file `path`."""

    def __init__(self, node, path: str | Path, topics: Iterable[str]):
        from mcap.writer import CompressionType, Writer

        self._node = node
        self.path = Path(path)
        self.topics = tuple(dict.fromkeys(topic if topic.startswith("/") else f"/{topic}" for topic in topics))
        self.counts: dict[str, int] = {topic: 0 for topic in self.topics}
        self.types: dict[str, str] = {}
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self._subscriptions = []
        self._lock = threading.Lock()  # callbacks may run on several executor threads
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")
        self._writer = Writer(self._file, compression=CompressionType.ZSTD)
        self._writer.start(profile="ros2", library="vla_ros")
        self._closed = False

    def discover(self) -> list[str]:
        """Subscribe to the wanted topics that now have publishers; returns the topics newly subscribed."""
        from vla_ros.msg_json import message_class

        added = []
        for topic, type_names in self._node.get_topic_names_and_types():
            if topic not in self.counts or topic in self.types or not type_names:
                continue
            offered = [info.qos_profile for info in self._node.get_publishers_info_by_topic(topic)]
            if not offered:
                continue  # only subscribers so far: nothing to record yet, and no QoS to match
            type_name = type_names[0]
            if len(type_names) > 1:
                self._node.get_logger().warning(f"{topic} has several types {type_names}; recording {type_name}")
            if type_name not in self._schemas:
                self._schemas[type_name] = self._writer.register_schema(type_name, "ros2msg",
                                                                        schema_text(type_name).encode())
            self._channels[topic] = self._writer.register_channel(topic, "cdr", self._schemas[type_name])
            self.types[topic] = type_name
            self._subscriptions.append(self._node.create_subscription(
                message_class(type_name), topic, self._writer_for(topic), subscription_qos(offered), raw=True))
            added.append(topic)
        return added

    def _writer_for(self, topic: str):
        def write(data: bytes) -> None:
            now = time.time_ns()
            with self._lock:
                if self._closed:
                    return
                self.counts[topic] += 1
                self._writer.add_message(self._channels[topic], log_time=now, data=data, publish_time=now,
                                         sequence=self.counts[topic])

        return write

    def close(self) -> None:
        """Stop recording and finish the file (its index and summary); safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for subscription in self._subscriptions:
                self._node.destroy_subscription(subscription)
            self._writer.finish()
            self._file.close()


def record(path: str | Path, topics: Iterable[str] = DEFAULT_TOPICS, duration: float = 0.0,
           stop: threading.Event | None = None, on_subscribed=None) -> Recorder:
    """Record `topics` into `path` until `duration` seconds pass (0: no limit) or `stop` is set.

    Initialises and shuts down rclpy itself; returns the closed Recorder (counts, types).
    `on_subscribed(topic, type_name)` is called as each topic is found.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from vla_ros.node_common import configure_middleware

    configure_middleware()
    stop = stop or threading.Event()
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = rclpy.create_node("vla_ros_recorder")
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        recorder = Recorder(node, path, topics)
        try:
            deadline = time.monotonic() + duration if duration > 0 else None
            next_discovery = 0.0
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                if time.monotonic() >= next_discovery:
                    for topic in recorder.discover():
                        if on_subscribed is not None:
                            on_subscribed(topic, recorder.types[topic])
                    next_discovery = time.monotonic() + DISCOVERY_PERIOD
                executor.spin_once(timeout_sec=0.05)
        finally:
            recorder.close()
            executor.shutdown()
            node.destroy_node()
        return recorder
    finally:
        rclpy.try_shutdown()


def read_messages(path: str | Path, topics: Iterable[str] | None = None) -> Iterator[tuple[str, int, object]]:
    """(topic, log time in ns, message) of a recording in log-time order, deserialised by rclpy."""
    from mcap.exceptions import McapError
    from mcap.reader import make_reader
    from rclpy.serialization import deserialize_message

    from vla_ros.msg_json import message_class

    classes: dict[str, type] = {}
    try:
        with open(path, "rb") as handle:
            reader = make_reader(handle)
            for schema, channel, message in reader.iter_messages(topics=list(topics) if topics else None):
                if schema is None or channel.message_encoding != "cdr":
                    continue
                if schema.name not in classes:
                    classes[schema.name] = message_class(schema.name)
                yield channel.topic, message.log_time, deserialize_message(message.data, classes[schema.name])
    except (McapError, OSError, ValueError) as err:
        raise RecordingError(f"cannot read {path}: {err}") from err


def topic_summary(path: str | Path) -> dict[str, dict]:
    """topic -> {"type", "messages"} from a recording's summary section."""
    from mcap.exceptions import McapError
    from mcap.reader import make_reader

    try:
        with open(path, "rb") as handle:
            summary = make_reader(handle).get_summary()
    except (McapError, OSError) as err:
        raise RecordingError(f"cannot read {path}: {err}") from err
    if summary is None:
        raise RecordingError(f"{path} has no summary section (was the recording stopped cleanly?)")
    counts = summary.statistics.channel_message_counts if summary.statistics else {}
    return {channel.topic: {"type": summary.schemas[channel.schema_id].name, "messages": counts.get(channel_id, 0)}
            for channel_id, channel in summary.channels.items()}
