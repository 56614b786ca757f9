"""Run the simulated graph from outside: start it, watch it over DDS, poke it. For fault
tests and benchmarks (test/test_faults.py, bench/bench_faults.py, bench_fuzz.py, bench_soak.py).

    with running_sim_graph(log_dir, seed=3, task={"task": "pick", "object": "red cube"}) as (graph, probe):
        probe.say("pick up the red cube")    # the probe: its own rclpy context, spun on a background thread
        probe.wait_for(lambda: probe.policy_state()[0] == PolicyStatus.RUNNING, 30.0)
        probe.command_violations(since)      # what reached the arm, audited against the filter's limits

Everything received is kept with its arrival time (`time.time()`, the system clock the
nodes stamp with unless they run on simulated time), and /joint_commands also with the
publisher and its publication sequence number, so that lost messages and foreign
publishers (a fuzzer) are told apart from the safety filter's stream.
"""
from __future__ import annotations

import bisect
import json
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import Trigger

from vla_ros import arm, bringup, launcher, msg_fuzz, qos
from vla_ros.msg import PolicyStatus, SafetyStatus, TaskStatus
from vla_ros.msg_json import message_class
from vla_ros.node_common import DIAGNOSTICS_TOPIC, configure_middleware, stamp_seconds
from vla_ros.safety import SafetyState, load_config
from vla_ros.safety.audit import received_violations
from vla_ros.safety.filter import InputError, positions_by_name

# Recent joint states kept (100 Hz from the simulator: 20 seconds).
JOINT_STATE_HISTORY = 2000
# A DDS GUID is the participant's 12-byte prefix and a 4-byte entity id (DDS-RTPS 9.3.1.5).
GUID_PREFIX_BYTES = 12


def start_sim_graph(log_dir: Path | str, seed: int, task: dict | None = None, camera_rate: float = 15.0,
                    image_size: tuple[int, int] = (320, 240), policy_image_size: int = 96, use_sim_time: bool = False,
                    speech: bool = False, wrist_camera: bool | None = None,
                    leave_out: tuple[str, ...] = ()) -> launcher.Graph:
    """The bringup plan with the simulated arm and the built-in policy, started as processes.

    The camera defaults (15 Hz, 320x240, the policy's 96x96 input) spare a loaded 2-core
    machine; `task` is the simulator's task, so that vla_node can see it succeed.
    `wrist_camera` is bringup's argument (None: when the policy uses one). `leave_out`
    names planned nodes not to start.
    """
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    overrides = {
        "mujoco_sim_node": {"seed": seed, "task": json.dumps(task) if task else "", "camera_rate": camera_rate,
                            "image_width": image_size[0], "image_height": image_size[1]},
        "camera_node": {"output_size": policy_image_size},
    }
    args = bringup.BringupArgs(sim="mujoco", speech=speech, use_sim_time=use_sim_time, wrist_camera=wrist_camera)
    if "wrist_camera_node" in bringup.plan(args).names:  # the policy uses the hand camera
        overrides["wrist_camera_node"] = {"output_size": policy_image_size}
    params_file = log_dir / "overrides.yaml"
    params_file.write_text(yaml.safe_dump({node: {"ros__parameters": values} for node, values in overrides.items()}))
    plan = bringup.plan(replace(args, params_file=str(params_file)))
    return launcher.start_graph(plan.without(*leave_out), log_dir)


@contextmanager
def running_sim_graph(log_dir: Path | str | None = None, startup_timeout: float = 180.0, use_sim_time: bool = False,
                      record_commands: bool = True, **graph_options) -> Iterator[tuple[launcher.Graph, GraphProbe]]:
    """start_sim_graph and a GraphProbe, once every node talks; both stopped on leaving.

    Node logs go to `log_dir`, or to a temporary directory removed afterwards.
    """
    with nullcontext(log_dir) if log_dir else tempfile.TemporaryDirectory() as logs:
        graph = start_sim_graph(logs, use_sim_time=use_sim_time, **graph_options)
        probe = None
        try:
            probe = GraphProbe(record_commands=record_commands, use_sim_time=use_sim_time)
            probe.wait_ready(graph, startup_timeout)
            yield graph, probe
        finally:
            if probe is not None:
                probe.close()
            graph.stop()


@dataclass(frozen=True)
class Command:
    """One /joint_commands message as received."""

    arrival: float  # time.time()
    stamp: float  # header stamp, s
    seq: int  # the publisher's publication sequence number
    publisher: bytes  # the publisher's gid
    names: tuple[str, ...]
    positions: np.ndarray


@dataclass(frozen=True)
class SafetyRecord:
    """One /safety/status as received."""

    arrival: float  # time.time()
    stamp: float  # header stamp, s
    state: int
    reason: str
    outputs: int  # commands the filter had published by then (outputs_published)
    seq: int  # the status publisher's publication sequence number
    publisher: bytes  # the status publisher's gid


@dataclass(frozen=True)
class Received:
    """A message with its arrival time and its publisher's send time (both system clock, s)."""

    arrival: float
    sent: float
    msg: object


class GraphProbe:
    """A node outside the graph that records what the graph says and acts like a user or a fuzzer."""

    def __init__(self, name: str = "graph_probe", record_commands: bool = True, use_sim_time: bool = False):
        configure_middleware()
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        # On simulated time the probe's clock (its target stamps) follows /clock like the graph's.
        self.node = rclpy.create_node(name, context=self.context, parameter_overrides=[
            Parameter("use_sim_time", Parameter.Type.BOOL, use_sim_time)])
        self.safety_config = load_config()
        self.commands: list[Command] = []
        self.command_count = 0
        self.safety: list[SafetyRecord] = []
        self.policy: list[Received] = []  # PolicyStatus
        self.targets: list[Received] = []  # /vla/joint_targets
        self.joint_states: deque[tuple[float, float, np.ndarray]] = deque(maxlen=JOINT_STATE_HISTORY)
        self.start_positions: np.ndarray | None = None  # the arm's first measured positions
        self.task: TaskStatus | None = None
        self.diagnostics: dict[str, tuple[float, object]] = {}  # status name -> (arrival, DiagnosticStatus)
        self._record_commands = record_commands
        self._own_publishers: set[bytes] = set()  # gids of the fuzzer's publishers, also after they are gone

        node = self.node
        node.create_subscription(JointState, "/joint_commands", self._on_command, qos.RELIABLE)
        node.create_subscription(SafetyStatus, "/safety/status", self._on_safety, qos.RELIABLE)
        node.create_subscription(PolicyStatus, "/vla/status", self._received(self.policy), qos.RELIABLE)
        node.create_subscription(JointState, "/vla/joint_targets", self._received(self.targets), qos.RELIABLE)
        node.create_subscription(JointState, "/joint_states", self._on_joint_states, qos.SENSOR)
        node.create_subscription(TaskStatus, "/sim/task", self._on_task, qos.RELIABLE)
        node.create_subscription(DiagnosticArray, DIAGNOSTICS_TOPIC, self._on_diagnostics, qos.RELIABLE)
        self._voice = node.create_publisher(String, "/voice_command", qos.RELIABLE)
        self._targets = node.create_publisher(JointState, "/vla/joint_targets", qos.RELIABLE)
        self._trigger = node.create_client(Trigger, "/safety/trigger_estop")
        self._reset = node.create_client(Trigger, "/safety/reset_estop")

        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(node)
        self._spinning = True
        self._thread = threading.Thread(target=self._spin, name="graph_probe", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self._spinning and self.context.ok():
            self._executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self._spinning = False
        self._thread.join(timeout=5.0)
        self._executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    # -- recording (executor thread) ----------------------------------------------------------
    def _received(self, store: list) -> Callable:
        def record(msg, info) -> None:
            store.append(Received(time.time(), info["source_timestamp"] * 1e-9, msg))

        return record

    def _on_command(self, msg: JointState, info) -> None:
        self.command_count += 1
        if self._record_commands:
            self.commands.append(Command(time.time(), stamp_seconds(msg.header.stamp),
                                         info["publication_sequence_number"], bytes(info["publisher_gid"]["data"]),
                                         tuple(msg.name), np.array(msg.position, dtype=float)))

    def _on_safety(self, msg: SafetyStatus, info) -> None:
        publisher = bytes(info["publisher_gid"]["data"])
        if publisher not in self._own_publishers:  # a fuzzer's status is not the filter's
            self.safety.append(SafetyRecord(time.time(), stamp_seconds(msg.header.stamp), msg.state, msg.reason,
                                            msg.outputs_published, info["publication_sequence_number"], publisher))

    def _on_joint_states(self, msg: JointState) -> None:
        try:
            positions = positions_by_name(msg.name, msg.position, ignore_extra=True)
        except InputError:
            return  # a fuzzer's, not the arm's
        self.joint_states.append((time.time(), stamp_seconds(msg.header.stamp), positions))
        if self.start_positions is None:
            self.start_positions = positions

    def _on_task(self, msg: TaskStatus) -> None:
        self.task = msg

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        now = time.time()
        for status in msg.status:
            self.diagnostics[status.name] = (now, status)

    # -- reading --------------------------------------------------------------------------------
    def wait_ready(self, graph: launcher.Graph, timeout: float) -> None:
        """Wait until every node is up and talking (raises launcher.StartupError naming what is not)."""
        started = time.monotonic()
        graph.wait_ready(timeout)
        names = {node.spec.name for node in graph.nodes}
        signs = {"vla_node": lambda: bool(self.policy), "safety_filter_node": lambda: bool(self.safety),
                 "mujoco_sim_node": lambda: bool(self.joint_states) and self.task is not None,
                 "instruction_node": lambda: self._voice.get_subscription_count() > 0}
        silent = lambda: [name for name, sign in signs.items() if name in names and not sign()]  # noqa: E731
        if not self.wait_for(lambda: not silent(), max(1.0, timeout - (time.monotonic() - started))):
            raise launcher.StartupError(f"up but silent: {', '.join(silent())} (logs in {graph.log_dir})")

    def wait_for(self, predicate: Callable[[], bool], timeout: float, period: float = 0.02) -> bool:
        """Wait until `predicate()` is true or `timeout` s pass; returns predicate()."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(period)
        return bool(predicate())

    def settle(self, seconds: float) -> None:
        """Let the graph run for `seconds` while recording."""
        time.sleep(seconds)

    def policy_state(self) -> tuple[int | None, str]:
        """vla_node's latest (state, reason); (None, "") before any status."""
        return (self.policy[-1].msg.state, self.policy[-1].msg.reason) if self.policy else (None, "")

    def safety_state(self) -> tuple[int | None, str]:
        """The safety filter's latest (state, reason); (None, "") before any status."""
        return (self.safety[-1].state, self.safety[-1].reason) if self.safety else (None, "")

    def measured(self) -> np.ndarray | None:
        """The arm's latest joint positions (COMMANDED_JOINTS order)."""
        return self.joint_states[-1][2] if self.joint_states else None

    def filter_commands(self, since: float = 0.0) -> list[Command]:
        """The safety filter's commands (nobody else's) that arrived after `since` (time.time())."""
        commands = self.commands[bisect.bisect_right(self.commands, since, key=lambda c: c.arrival):]
        return [c for c in commands if c.publisher not in self._own_publishers]

    def _note_own_publishers(self, topic: str) -> None:
        self._own_publishers |= {bytes(info.endpoint_gid) for info in self.node.get_publishers_info_by_topic(topic)
                                 if info.node_name == self.node.get_name()}

    def command_violations(self, since: float = 0.0) -> list[str]:
        """Every limit of the safety filter's configuration broken by its commands since `since`."""
        commands = [(c.publisher, c.seq, c.names, c.positions) for c in self.filter_commands(since)]
        # A DDS endpoint's gid starts with its participant's: the filter's statuses are the ones
        # from the participant that published the commands (a restarted filter is a new one).
        statuses = {publisher: [(s.seq, s.outputs, s.state == SafetyState.FAULT) for s in self.safety
                                if s.publisher[:GUID_PREFIX_BYTES] == publisher[:GUID_PREFIX_BYTES]]
                    for publisher in {c[0] for c in commands}}
        config = self.safety_config
        return received_violations(commands, statuses, config.dt, config.joint_limits, config.workspace)

    def silent_nodes(self, names: Iterable[str], since: float, timeout: float) -> list[str]:
        """The named nodes that publish no /diagnostics (every vla_ros node does at 1 Hz) after
        `since`, waiting up to `timeout` s for them."""
        def reporting() -> set[str]:
            return {name.split(":", 1)[0] for name, (arrival, _) in list(self.diagnostics.items()) if arrival > since}

        self.wait_for(lambda: set(names) <= reporting(), timeout)
        return sorted(set(names) - reporting())

    def subscribed_topics(self, nodes: Iterable[str], namespace: str = "/") -> dict[str, str]:
        """topic -> message type of every topic the named nodes subscribe to."""
        topics: dict[str, str] = {}
        for name in nodes:
            for topic, types in self.node.get_subscriber_names_and_types_by_node(name, namespace):
                topics[topic] = types[0]
        return dict(sorted(topics.items()))

    # -- acting ---------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        """Type an instruction (or "stop") on /voice_command."""
        if not self.wait_for(lambda: self._voice.get_subscription_count() > 0, 10.0):
            raise TimeoutError("nobody subscribes /voice_command (instruction_node down?)")
        self._voice.publish(String(data=text))

    def send_target(self, positions) -> None:
        """A joint target (COMMANDED_JOINTS order) on /vla/joint_targets, stamped with the probe's clock."""
        msg = JointState(name=list(arm.COMMANDED_JOINTS), position=[float(q) for q in positions])
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self._targets.publish(msg)

    def trigger_estop(self, timeout: float = 10.0) -> str:
        return self._call(self._trigger, timeout)

    def reset_estop(self, timeout: float = 10.0) -> str:
        return self._call(self._reset, timeout)

    def in_spin_thread(self, function: Callable, *args):
        """`function(*args)` run on the probe's executor thread; its result. Create and destroy
        the probe's publishers and subscriptions this way: an entity destroyed from another
        thread while the executor builds its wait set kills the executor (rclpy InvalidHandle)."""
        task = self._executor.create_task(function, *args)
        if not self.wait_for(task.done, 10.0, period=0.005):
            raise TimeoutError(f"the probe's executor did not run {function.__name__}")
        return task.result()

    def _call(self, client, timeout: float) -> str:
        if not client.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"{client.srv_name} is not offered")
        future = client.call_async(Trigger.Request())
        if not self.wait_for(future.done, timeout, period=0.005):
            raise TimeoutError(f"{client.srv_name} did not answer within {timeout:g} s")
        return future.result().message

    def sample(self, topic: str, type_name: str, timeout: float):
        """One message from `topic` (a template for fuzzing), or None when nothing arrives in `timeout` s."""
        cls = message_class(type_name)
        got: list = []
        # Best effort, volatile: matches every publisher.
        profile = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)
        subscription = self.in_spin_thread(self.node.create_subscription, cls, topic, got.append, profile)
        try:
            self.wait_for(lambda: bool(got), timeout)
        finally:
            self.in_spin_thread(self.node.destroy_subscription, subscription)
        return got[0] if got else None

    def fuzz(self, topic: str, type_name: str, seconds: float, rng: np.random.Generator, rate: float = 50.0,
             template=None, max_elements: int = msg_fuzz.MAX_ELEMENTS) -> int:
        """Publish fuzzed messages (vla_ros/msg_fuzz.py) on `topic` for `seconds`; returns how many.

        Reliable and transient local: that matches every subscriber, whatever its QoS. The
        publisher is destroyed afterwards, so no fuzzed message stays latched.
        """
        cls = message_class(type_name)
        profile = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        publisher = self.in_spin_thread(self.node.create_publisher, cls, topic, profile)
        self._note_own_publishers(topic)
        sent = 0
        try:
            end = time.monotonic() + seconds
            while time.monotonic() < end:  # at most `rate` a second: generating big messages takes time too
                publisher.publish(msg_fuzz.fuzzed(cls, rng, template, now=time.time(), max_elements=max_elements))
                sent += 1
                time.sleep(1.0 / rate)
        finally:
            self.in_spin_thread(self.node.destroy_publisher, publisher)
        return sent

