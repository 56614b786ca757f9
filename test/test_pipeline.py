"""The whole graph over real DDS, each node its own process, as bringup plans it: simulated arm,
cameras, instruction intake, the shipped built-in policy, the safety filter. A typed instruction on /voice_command
must end in the simulator's task success; a "stop" must hold the arm."""
from __future__ import annotations

import signal
import time

import numpy as np
import pytest
from conftest import spin_until
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from test_intake_nodes import _clip
from vla_ros.msg import AudioData, PolicyStatus, SafetyStatus, TaskStatus

from vla_ros import arm, qos
from vla_ros.graph_probe import start_sim_graph
from vla_ros.intake import synth
from vla_ros.launcher import log_tail
from vla_ros.node_common import stamp_seconds
from vla_ros.policies.builtin.policy import SHIPPED_CHECKPOINT

STARTUP_TIMEOUT = 60.0
# Scenes the policy never trained on. The shipped policy solves the gripper tasks every
# time (100% in `vla-ros eval`), picks nine times in ten (docs/POLICY.md): success is
# tested on the former, the e-stop on a pick, where the arm moves.
SEED = 90_001
SUCCESS_TASK, SUCCESS_INSTRUCTION = {"task": "close_gripper"}, "close the gripper"
MOVING_TASK, MOVING_INSTRUCTION = {"task": "pick", "object": "red cube"}, "pick up the red cube"


@pytest.fixture
def start_graph(ros_node, tmp_path):
    """start_graph(task, speech=False) starts bringup's simulated graph (as `vla-ros up` plans it,
    the debug view left out to spare the 2 cores) with the simulator on `task`; returns a probe
    once the policy node is up. Every graph is stopped at the end of the test, failed or not."""
    started = []

    def start(task: dict, speech: bool = False) -> dict:
        assert SHIPPED_CHECKPOINT.is_file(), f"the shipped checkpoint is missing: {SHIPPED_CHECKPOINT}"
        graph = start_sim_graph(tmp_path / f"graph-{len(started)}", seed=SEED, task=task, speech=speech,
                                leave_out=("debug_view_node",))
        started.append(graph)
        probe = {"task": [], "status": [], "safety": [], "commands": [], "states": [], "graph": graph}
        ros_node.create_subscription(TaskStatus, "/sim/task", probe["task"].append, qos.RELIABLE)
        ros_node.create_subscription(PolicyStatus, "/vla/status", probe["status"].append, qos.RELIABLE)
        ros_node.create_subscription(SafetyStatus, "/safety/status", probe["safety"].append, qos.RELIABLE)
        ros_node.create_subscription(JointState, "/joint_commands", probe["commands"].append, qos.RELIABLE)
        ros_node.create_subscription(JointState, "/joint_states", probe["states"].append, qos.SENSOR)
        probe["voice"] = ros_node.create_publisher(String, "/voice_command", qos.RELIABLE)
        probe["audio"] = ros_node.create_publisher(AudioData, "/speech/audio", qos.AUDIO)
        probe["logs"] = lambda: "\n".join(f"--- {node.log_path.name}\n{log_tail(node.log_path)}"
                                          for node in graph.nodes)
        ready = lambda: (probe["status"] and probe["task"] and probe["states"]  # noqa: E731
                         and probe["voice"].get_subscription_count() > 0
                         and (not speech or probe["audio"].get_subscription_count() > 0))
        assert spin_until(ros_node, ready, STARTUP_TIMEOUT), probe["logs"]()
        return probe

    yield start
    for graph in started:
        graph.stop()  # a no-op for a graph the test stopped itself


def stop_graph(probe):
    codes = probe["graph"].stop()
    assert set(codes.values()) == {0}, (codes, probe["logs"]())


def _positions(state: JointState) -> np.ndarray:
    named = dict(zip(state.name, state.position))
    return np.array([named[name] for name in arm.COMMANDED_JOINTS])


def test_a_typed_instruction_ends_in_task_success(ros_node, start_graph):
    graph = start_graph(SUCCESS_TASK)
    graph["voice"].publish(String(data=SUCCESS_INSTRUCTION))
    sent = time.monotonic()
    assert spin_until(ros_node, lambda: graph["task"] and graph["task"][-1].success, 40.0), graph["logs"]()
    print(f"success {time.monotonic() - sent:.1f} s after the instruction")
    assert spin_until(ros_node, lambda: graph["status"][-1].state == PolicyStatus.DONE, 5.0)
    assert graph["status"][-1].reason == "task succeeded" and graph["status"][-1].instruction == SUCCESS_INSTRUCTION
    assert graph["commands"], "the safety filter published no command"
    assert ros_node.count_publishers("/joint_commands") == 1  # the safety filter, nobody else
    stop_graph(graph)


@pytest.mark.skipif(not synth.espeak_available(), reason="espeak-ng is not installed (scripts/setup_env.sh installs it)")
def test_a_spoken_instruction_ends_in_task_success(ros_node, start_graph):
    graph = start_graph(SUCCESS_TASK, speech=True)
    samples, rate = _clip(SUCCESS_INSTRUCTION)
    data, block = samples.tobytes(), int(rate * 0.1) * 2  # 100 ms blocks of 16-bit mono
    for offset in range(0, len(data), block):
        graph["audio"].publish(AudioData(encoding="S16LE", sample_rate=rate, channels=1,
                                         data=data[offset:offset + block]))
        spin_until(ros_node, lambda: False, 0.005)
    assert spin_until(ros_node, lambda: graph["task"] and graph["task"][-1].success, 40.0), graph["logs"]()
    assert spin_until(ros_node, lambda: graph["status"][-1].state == PolicyStatus.DONE, 5.0)
    assert graph["status"][-1].instruction == SUCCESS_INSTRUCTION
    stop_graph(graph)


def test_a_typed_stop_mid_task_holds_the_arm(ros_node, start_graph):
    graph = start_graph(MOVING_TASK)
    graph["voice"].publish(String(data=MOVING_INSTRUCTION))
    start = _positions(graph["states"][-1]) if graph["states"] else None
    assert spin_until(ros_node, lambda: graph["status"][-1].state == PolicyStatus.RUNNING, 20.0), graph["logs"]()
    # Stop as soon as the arm moves: long before the pick can end.
    moving = lambda: np.abs(_positions(graph["states"][-1]) - start).max() > 0.02  # noqa: E731
    assert spin_until(ros_node, moving, 10.0), "the arm did not move before the stop"
    graph["voice"].publish(String(data="stop"))
    assert spin_until(ros_node, lambda: graph["safety"][-1].state == SafetyStatus.ESTOP, 5.0), graph["logs"]()
    spin_until(ros_node, lambda: False, 0.5)  # braking
    held = _positions(graph["states"][-1])
    spin_until(ros_node, lambda: False, 1.0)
    assert np.abs(_positions(graph["states"][-1]) - held).max() < 0.01
    assert graph["status"][-1].state == PolicyStatus.HOLDING and "e-stop" in graph["status"][-1].reason
    assert not graph["task"][-1].success
    stop_graph(graph)


def test_killing_the_policy_node_mid_motion_holds_the_arm(ros_node, start_graph):
    graph = start_graph(MOVING_TASK)
    graph["voice"].publish(String(data=MOVING_INSTRUCTION))
    assert spin_until(ros_node, lambda: graph["status"][-1].state == PolicyStatus.RUNNING, 20.0), graph["logs"]()
    # Kill while the commands move (0.01 rad in their last 0.1 s): the policy slows near its
    # waypoints, and a kill there would leave nothing to stop.
    commands = graph["commands"]
    moving = lambda: len(commands) > 10 and np.abs(_positions(commands[-1]) - _positions(commands[-11])).max() > 0.01  # noqa: E731
    assert spin_until(ros_node, moving, 10.0), "the commands never moved"
    policy = graph["graph"].node("vla_node").process
    policy.kill()  # no goodbye: SIGKILL
    killed = time.time()  # the nodes stamp with the system clock
    policy.wait()
    count, counts = len(graph["commands"]), {key: len(graph[key]) for key in ("states", "safety")}
    # A second of commands (100 at the filter's rate). Up to 5 s to receive them: once in a
    # whole-suite run (not reproduced alone or by file) this probe got none in the first
    # second; the checks below read the commands' stamps, not when they arrive here.
    spin_until(ros_node, lambda: len(graph["commands"]) - count >= 100, 5.0)
    after = graph["commands"][count:]
    received = {key: len(graph[key]) - n for key, n in counts.items()}
    assert len(after) > 50, (f"the safety filter stopped publishing; in the 5 s after the kill this probe "
                             f"received {received['states']} joint states and {received['safety']} safety "
                             f"statuses, the last: {graph['safety'][-1].state} {graph['safety'][-1].reason!r}\n"
                             + graph["logs"]())
    # If the simulator's joint states stall past the filter's state timeout (a loaded CI
    # machine), the filter publishes nothing (FAULT), then restarts at the measured arm: a new
    # hold. Settling is read on the stream up to such a gap; a brake cut short by it counts as
    # stopped where publishing stopped.
    stamps = np.array([stamp_seconds(c.header.stamp) for c in after])
    gaps = np.flatnonzero(np.diff(stamps) > 0.1)
    stream = after[:gaps[0] + 1] if gaps.size else after
    positions = np.array([_positions(c) for c in stream])
    moving = np.flatnonzero(np.abs(positions - positions[-1]).max(axis=1) > 1e-6)
    settled = stamps[min(moving[-1] + 1, len(stream) - 1) if moving.size else 0] - killed
    # The filter's command timeout (0.1 s), then braking at the acceleration limits: ~0.15 s
    # on a quiet machine. The bound leaves room for a loaded CI machine; the timing itself
    # is bench_faults.py's figure (p50 182 ms, max 264 ms while other jobs ran).
    assert settled < 0.5, f"the commands were still moving {settled:.3f} s after the kill"
    print(f"commands still {settled * 1000:.0f} ms after the policy node was killed")
    # HOLD; or FAULT (nothing published, the arm as still) when the simulator's joint states
    # stalled after the kill, as they did until session 8 made the simulator single-threaded
    # (docs/INFERENCE.md); a loaded CI machine may still stall a process that long.
    last = graph["safety"][-1]
    assert last.state == SafetyStatus.HOLD or (
        last.state == SafetyStatus.FAULT and last.reason.startswith("/joint_states stale")), last.reason
    codes = graph["graph"].stop()
    assert codes.pop("/vla_node") == -signal.SIGKILL and set(codes.values()) == {0}, (codes, graph["logs"]())
