"""safety_filter_node over real DDS: a real node process, talked to from this test's rclpy node."""
import json
import math
import subprocess
import threading
import time

import numpy as np
import pytest
from conftest import VENV_BIN, spin_until
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from std_srvs.srv import Trigger
from vla_ros.msg import ActionChunk, SafetyStatus

from vla_ros import arm, qos

NAMES = list(arm.COMMANDED_JOINTS)
HOME = arm.home_vector()
COMMAND_TIMEOUT = 0.1
STARTUP = 20.0  # s for a node process to come up on a busy machine




def _seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class Harness:
    """The rest of the graph for one safety_filter_node: an arm, a command source, an operator."""

    def __init__(self, node):
        self.node = node
        self.commands: list[JointState] = []
        self.statuses: list[SafetyStatus] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.publishing_states = False
        self.targets = node.create_publisher(JointState, "/vla/joint_targets", qos.RELIABLE)
        self.chunks = node.create_publisher(ActionChunk, "/vla/action_chunk", qos.RELIABLE)
        self.joint_states = node.create_publisher(JointState, "/joint_states", qos.RELIABLE)
        self.estop = node.create_publisher(Bool, "/safety/estop", qos.LATCHED)
        node.create_subscription(JointState, "/joint_commands", self.commands.append, qos.RELIABLE)
        node.create_subscription(SafetyStatus, "/safety/status", self.statuses.append, qos.RELIABLE)
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, qos.RELIABLE)
        self.trigger = node.create_client(Trigger, "/safety/trigger_estop")
        self.reset = node.create_client(Trigger, "/safety/reset_estop")
        # The arm publishes from its own thread, as a real driver would: spin_once in the
        # test's thread serves 200+ messages/s and would starve a timer here.
        self._running = True
        self._arm = threading.Thread(target=self._publish_states, daemon=True)
        self._arm.start()

    def _publish_states(self):
        while self._running:
            if self.publishing_states:  # an arm resting at home, with the mimic finger too
                self.joint_states.publish(self.joint_state([*NAMES, arm.GRIPPER_MIMIC_JOINT], [*HOME, HOME[-1]]))
            time.sleep(0.01)

    def close(self):
        self._running = False
        self._arm.join()

    def joint_state(self, names, positions) -> JointState:
        msg = JointState(name=list(names), position=[float(p) for p in positions])
        msg.header.stamp = self.node.get_clock().now().to_msg()
        return msg

    def send_target(self, positions, names=NAMES) -> float:
        msg = self.joint_state(names, positions)
        self.targets.publish(msg)
        return _seconds(msg.header.stamp)

    def spin(self, seconds: float) -> None:
        spin_until(self.node, lambda: False, seconds)

    def wait_status(self, predicate, timeout: float = 5.0, since: int | None = None) -> SafetyStatus:
        """The first status matching `predicate` received from index `since` on (default: from now)."""
        start = len(self.statuses) if since is None else since
        assert spin_until(self.node, lambda: any(predicate(s) for s in self.statuses[start:]), timeout), \
            f"no such status; last: {self.statuses[-1] if self.statuses else None}"
        return next(s for s in self.statuses[start:] if predicate(s))

    def vla_ros(self, *args: str) -> str:
        """Run `vla-ros ARGS` while this graph keeps running (the arm keeps publishing); its stdout."""
        process = subprocess.Popen([str(VENV_BIN / "vla-ros"), *args], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        finished = spin_until(self.node, lambda: process.poll() is not None, 60.0)
        if not finished:
            process.kill()
        out, err = process.communicate()
        assert finished and process.returncode == 0, err
        return out

    def call(self, client) -> Trigger.Response:
        assert client.wait_for_service(timeout_sec=STARTUP)
        future = client.call_async(Trigger.Request())
        assert spin_until(self.node, future.done, 10.0)
        return future.result()


@pytest.fixture
def harness(ros_node):
    graph = Harness(ros_node)
    yield graph
    graph.close()


def test_no_commands_before_joint_states_then_follow_and_hold_on_timeout(ros_node, harness, start_process):
    node = start_process("safety_filter_node", "--ros-args", "-p", f"command_timeout:={COMMAND_TIMEOUT}")
    status = harness.wait_status(lambda s: True, STARTUP)
    assert status.state == SafetyStatus.FAULT and "waiting for /joint_states" in status.reason
    harness.spin(0.5)
    assert harness.commands == []  # nothing reaches the arm before the filter knows where it is

    harness.publishing_states = True
    harness.wait_status(lambda s: s.state == SafetyStatus.HOLD)
    assert spin_until(ros_node, lambda: harness.commands, 5.0)
    np.testing.assert_allclose(harness.commands[-1].position, HOME)
    assert list(harness.commands[-1].name) == NAMES

    # A slow move streamed at 50 Hz, then silence.
    target = HOME.copy()
    since = len(harness.statuses)
    for _ in range(40):
        target[0] += 0.004
        last_sent = harness.send_target(target)
        harness.spin(0.02)
    assert any(s.state == SafetyStatus.OK for s in harness.statuses[since:])
    hold = harness.wait_status(lambda s: "command timeout" in s.reason, 2.0, since=since)
    assert hold.state == SafetyStatus.HOLD
    assert _seconds(hold.header.stamp) - last_sent <= 2 * COMMAND_TIMEOUT
    assert harness.commands[-1].position[0] > 0.1  # it did follow
    harness.spin(0.3)
    held = [c.position[0] for c in harness.commands[-10:]]
    assert max(held) == min(held)  # holding still

    # Malformed commands: rejected with a reason in the log, the node carries on.
    before = harness.statuses[-1].commands_rejected
    harness.send_target([*HOME[:3], math.nan, *HOME[4:]])
    harness.send_target(HOME, names=[*NAMES[:-1], "elbow"])
    harness.send_target([], names=[])
    harness.wait_status(lambda s: s.commands_rejected >= before + 3)
    harness.spin(0.3)
    assert max(c.position[0] for c in harness.commands[-10:]) == held[-1]

    assert spin_until(ros_node, lambda: any(
        status.name == "safety_filter_node: e-stop" for array in harness.diagnostics for status in array.status), 3.0)
    log = node.output()
    assert node.stop() == 0
    assert "non-finite positions for panda_joint4" in log and "command timeout" in log


def test_estop_latches_from_topic_and_service_and_only_reset_releases(ros_node, harness, start_process):
    harness.publishing_states = True
    harness.estop.publish(Bool(data=True))  # latched: the node gets it although it starts later
    start_process("safety_filter_node")
    status = harness.wait_status(lambda s: s.state == SafetyStatus.ESTOP, STARTUP)
    assert "/safety/estop" in status.reason

    harness.estop.publish(Bool(data=False))  # not a reset
    harness.send_target(HOME + 0.05)
    status = harness.wait_status(lambda s: s.commands_rejected >= 1)
    assert status.state == SafetyStatus.ESTOP
    harness.spin(0.2)
    assert harness.statuses[-1].state == SafetyStatus.ESTOP
    np.testing.assert_allclose(harness.commands[-1].position, HOME)

    response = harness.call(harness.reset)
    assert response.success and "reset" in response.message
    harness.wait_status(lambda s: s.state == SafetyStatus.HOLD)

    response = harness.call(harness.trigger)
    assert response.success
    status = harness.wait_status(lambda s: s.state == SafetyStatus.ESTOP)
    assert "/safety/trigger_estop" in status.reason
    assert harness.call(harness.reset).success
    harness.wait_status(lambda s: s.state == SafetyStatus.HOLD)
    assert harness.call(harness.reset).message == "e-stop was not latched"

    # The operator's command line does the same.
    assert harness.vla_ros("safety", "trigger").strip() == "e-stop latched"
    harness.wait_status(lambda s: s.state == SafetyStatus.ESTOP)
    # The CLI reads one status. A filter starved past its state timeout by the CLI's own start-up
    # on 2 cores reports one FAULT period (the latched e-stop in its reason): read again then.
    for _ in range(3):
        status = json.loads(harness.vla_ros("safety", "status"))
        if status["state_name"] == "ESTOP":
            break
        assert status["state_name"] == "FAULT" and "e-stop latched" in status["reason"], status
    assert status["state_name"] == "ESTOP" and "/safety/trigger_estop" in status["reason"]
    assert "reset" in harness.vla_ros("safety", "reset")
    harness.wait_status(lambda s: s.state == SafetyStatus.HOLD)

    # A low-confidence chunk holds; a confident one lets commands through again.
    harness.chunks.publish(ActionChunk(confidence=0.05))
    harness.send_target(HOME)
    status = harness.wait_status(lambda s: "low confidence" in s.reason)
    assert status.state == SafetyStatus.HOLD
    harness.chunks.publish(ActionChunk(confidence=0.95))
    harness.spin(0.1)
    since = len(harness.statuses)
    for _ in range(10):
        harness.send_target(HOME)
        harness.spin(0.02)
    harness.wait_status(lambda s: s.state == SafetyStatus.OK, since=since)


def test_bad_parameters_exit_with_code_2():
    for override, message in [("rate:=-1.0", "rate: must be > 0"),
                              ("joint_limits.panda_joint1.max_velocity:=9.0", "exceeds the datasheet limit"),
                              ("rtae:=1.0", "rtae: unknown parameter")]:
        result = subprocess.run([str(VENV_BIN / "safety_filter_node"), "--ros-args", "-p", override],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and message in result.stderr, result.stderr
