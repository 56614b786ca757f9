"""Fault scenarios against a running graph (vla_ros/graph_probe.py): each injects one fault into
the processes over DDS, measures what the graph did, and brings the graph back.
test/test_faults.py asserts on the measurements; bench/bench_faults.py repeats them.

Times are seconds from the moment of the fault, on the system clock the nodes stamp with
(the graph on wall time): message stamps of /joint_commands and /safety/status are the
safety filter's clock at each output period, target send times are DDS source timestamps.
"""
from __future__ import annotations

import signal
import time
from dataclasses import dataclass

import numpy as np

from vla_ros import launcher
from vla_ros.graph_probe import Command, GraphProbe, SafetyRecord
from vla_ros.msg import PolicyStatus
from vla_ros.safety import SafetyState

# Generous waits for a loaded machine: the asserted properties come from stamps, not from these.
REACTION_TIMEOUT = 10.0
RESTART_TIMEOUT = 120.0  # vla_node took 45-57 s to come back beside a training job
# Commands closer than this (rad, m) count as the same position: a hold repeats it exactly.
SAME_POSITION = 1e-9
# Commands faster than this (rad/s) count as motion.
MOVING_SPEED = 0.05


class ScenarioError(RuntimeError):
    """The graph did not do what a scenario waits for (within the generous timeouts)."""


def start_moving(probe: GraphProbe, instruction: str, timeout: float = 30.0) -> None:
    """Release any e-stop, give `instruction` and wait until the arm moves under it.

    vla_node learns of an e-stop reset from /safety/status; an instruction that reaches it
    first is abandoned as under e-stop. So the instruction is given again (up to 3 times)
    when vla_node is not running it.
    """
    for _ in range(3):
        if probe.safety_state()[0] == SafetyState.ESTOP:
            probe.reset_estop()
        probe.wait_for(lambda: probe.safety_state()[0] != SafetyState.ESTOP, 5.0)
        given = time.time()
        probe.say(instruction)
        if probe.wait_for(lambda given=given: probe.policy_state()[0] == PolicyStatus.RUNNING
                          and any(r.arrival > given + 0.5 for r in probe.targets[-3:]), timeout):
            wait_moving(probe, timeout)
            return
    raise ScenarioError(f"vla_node is not running {instruction!r}: {probe.policy_state()}")


def wait_moving(probe: GraphProbe, timeout: float = 30.0) -> float:
    """Wait until the safety filter follows commands (OK or LIMITED) that move the arm; their speed.

    Called right before a fault, so that it hits a moving arm: on a loaded machine targets
    come irregularly, and the filter holds in between (command timeout)."""
    def moving() -> bool:
        return probe.safety_state()[0] in (SafetyState.OK, SafetyState.LIMITED) and command_speed(probe) > MOVING_SPEED

    if not probe.wait_for(moving, timeout, period=0.005):
        raise ScenarioError(f"the arm is not moving: policy {probe.policy_state()}, safety {probe.safety_state()}, "
                            f"command speed {command_speed(probe):.3f}")
    return command_speed(probe)


def command_speed(probe: GraphProbe, window: float = 0.1) -> float:
    """Fastest joint speed (rad/s, m/s) of the safety filter's latest commands, over `window` s of their stamps."""
    commands = probe.filter_commands(time.time() - 1.0)
    recent = [c for c in commands if c.stamp >= commands[-1].stamp - window] if commands else []
    if len(recent) < 2:
        return 0.0
    travel = np.abs(recent[-1].positions - recent[0].positions)
    return float(travel.max() / max(recent[-1].stamp - recent[0].stamp, 1e-3))


def kill(graph: launcher.Graph, name: str) -> float:
    """SIGKILL node `name` (no goodbye); returns the time just before the signal."""
    process = graph.node(name).process
    killed = time.time()
    process.send_signal(signal.SIGKILL)
    process.wait()
    return killed


def settled_at(commands: list[Command]) -> Command | None:
    """The first command from which on every command repeats the last one (a hold); None when
    the commands still move at the end."""
    if len(commands) < 2:
        return None
    positions = np.array([c.positions for c in commands])
    moving = np.flatnonzero(np.abs(positions - positions[-1]).max(axis=1) > SAME_POSITION)
    if moving.size and moving[-1] == len(commands) - 1:
        return None
    return commands[moving[-1] + 1] if moving.size else commands[0]


def first_state(probe: GraphProbe, predicate, since: float, reason: str = "") -> SafetyRecord | None:
    """The first /safety/status that arrived after `since` whose state satisfies `predicate` and
    whose reason contains `reason`."""
    return next((s for s in probe.safety if s.arrival > since and predicate(s.state) and reason in s.reason), None)


@dataclass
class CameraOutage:
    """camera_node killed: vla_node must stop sending targets and say why."""

    last_target_s: float  # the last target vla_node sent
    stale_reported_s: float  # /vla/status said the image is stale
    reason: str
    resume_s: float | None = None  # after the restart: targets again


def camera_outage(graph: launcher.Graph, probe: GraphProbe, restart: bool = True) -> CameraOutage:
    killed = kill(graph, "camera_node")
    if not probe.wait_for(lambda: "image is stale" in probe.policy_state()[1], REACTION_TIMEOUT):
        raise ScenarioError(f"vla_node did not report a stale image: {probe.policy_state()}")
    reported, reason = probe.policy[-1].arrival, probe.policy[-1].msg.reason
    probe.settle(0.5)  # anything still in flight arrives
    outage = CameraOutage(last_target_s=max(r.sent for r in probe.targets) - killed,
                          stale_reported_s=reported - killed, reason=reason)
    if restart:
        outage.resume_s = _restart_until(graph, probe, "camera_node", lambda since: any(
            r.sent > since for r in probe.targets[-3:]) and probe.policy_state()[0] == PolicyStatus.RUNNING)
    return outage


@dataclass
class SimulatorOutage:
    """The simulator (/joint_states) killed: the safety filter must fault and publish nothing."""

    fault_s: float  # the first FAULT period (stamp)
    reason: str
    last_command_s: float  # the last command published (stamp)
    commands_after_fault: int
    resume_s: float | None = None  # after the restart: commands again
    restart_offset: float | None = None  # first command after the restart - the restarted arm (max abs)


def simulator_outage(graph: launcher.Graph, probe: GraphProbe, restart: bool = True,
                     quiet_seconds: float = 1.0) -> SimulatorOutage:
    killed = kill(graph, "mujoco_sim_node")
    if not probe.wait_for(lambda: first_state(probe, lambda s: s == SafetyState.FAULT, killed), REACTION_TIMEOUT):
        raise ScenarioError(f"the safety filter did not fault: {probe.safety_state()}")
    probe.settle(quiet_seconds)
    fault = first_state(probe, lambda s: s == SafetyState.FAULT, killed)
    commands = probe.filter_commands(killed - 1.0)
    outage = SimulatorOutage(fault_s=fault.stamp - killed, reason=fault.reason,
                             last_command_s=max(c.stamp for c in commands) - killed,
                             commands_after_fault=sum(c.stamp > fault.stamp for c in commands))
    if restart:
        restarted = time.time()
        outage.resume_s = _restart_until(graph, probe, "mujoco_sim_node",
                                          lambda since: bool(probe.filter_commands(since)))
        outage.restart_offset = restart_offset(probe, restarted)
    return outage


def restart_offset(probe: GraphProbe, since: float) -> float:
    """How far the first command after `since` was from where the restarted arm stood (max abs):
    the commands must restart at a measured pose, not where the arm was before.

    A simulator restarted with the same seed puts the arm at its start pose, and the arm may move
    by about a milliradian before the filter's first accepted joint state (1.07 mrad seen once); so the
    command is compared with the start pose and every joint state the probe received between
    `since` and the command (the probe, a best-effort subscriber, may miss some of them)."""
    first = probe.filter_commands(since)[0]
    measured = [probe.start_positions] + [positions for arrival, _, positions in list(probe.joint_states)
                                          if since <= arrival <= first.arrival]
    return float(min(np.abs(first.positions - pose).max() for pose in measured))


@dataclass
class PolicyOutage:
    """vla_node killed mid-motion: the safety filter must hold (brake, then repeat one position)."""

    speed_at_fault: float  # rad/s of the commands right before the kill
    hold_s: float  # the first HOLD period (stamp)
    settled_s: float | None  # the commands repeat one position from here on (stamp)
    resume_s: float | None = None  # after the restart: vla_node runs the latched instruction again


def policy_outage(graph: launcher.Graph, probe: GraphProbe, restart: bool = True,
                  quiet_seconds: float = 1.0) -> PolicyOutage:
    speed = wait_moving(probe)
    killed = kill(graph, "vla_node")
    probe.settle(quiet_seconds)
    hold = first_state(probe, lambda s: s == SafetyState.HOLD, killed)
    if hold is None:
        raise ScenarioError(f"the safety filter did not hold: {probe.safety_state()}")
    settled = settled_at(probe.filter_commands(killed))
    outage = PolicyOutage(speed_at_fault=speed, hold_s=hold.stamp - killed,
                          settled_s=None if settled is None else settled.stamp - killed)
    if restart:
        # The instruction is latched: the restarted node picks it up and runs it.
        outage.resume_s = _restart_until(graph, probe, "vla_node", lambda since: any(
            r.sent > since for r in probe.targets[-3:]))
    return outage


@dataclass
class EstopStop:
    """The e-stop service called mid-motion: the commands brake, then repeat one position."""

    speed_at_fault: float  # rad/s of the commands right before the call
    latched_s: float  # the first ESTOP period (stamp), from the service call
    settled_s: float | None  # from the first ESTOP period until the commands repeat one position
    settled_periods: int | None  # the same in output periods (publication sequence numbers)
    moved_away: float  # largest step of any joint away from the final hold position after the e-stop
    moved_after_target: float  # largest distance from the hold of commands after a fresh far target


def estop_mid_motion(probe: GraphProbe, quiet_seconds: float = 1.0) -> EstopStop:
    speed = wait_moving(probe)
    called = time.time()
    probe.trigger_estop()
    if not probe.wait_for(lambda: first_state(probe, lambda s: s == SafetyState.ESTOP, called), REACTION_TIMEOUT):
        raise ScenarioError(f"the e-stop did not latch: {probe.safety_state()}")
    probe.settle(quiet_seconds)
    latched = first_state(probe, lambda s: s == SafetyState.ESTOP, called).stamp
    commands = [c for c in probe.filter_commands(called) if c.stamp >= latched]
    hold = commands[-1].positions
    distance = np.abs(np.array([c.positions for c in commands]) - hold)
    settled = settled_at(commands)
    # A fresh, well-formed target away from the hold: the latched filter must refuse it.
    target_sent = time.time()
    far = hold.copy()
    far[0] += 0.3
    for _ in range(10):
        probe.send_target(far)
        time.sleep(0.02)
    probe.settle(0.5)
    after = np.array([c.positions for c in probe.filter_commands(target_sent)])
    return EstopStop(speed_at_fault=speed, latched_s=latched - called,
                     settled_s=None if settled is None else settled.stamp - latched,
                     settled_periods=None if settled is None else settled.seq - commands[0].seq,
                     moved_away=float(np.diff(distance, axis=0).max(initial=0.0)),
                     moved_after_target=float(np.abs(after - hold).max(initial=0.0)))


def _restart_until(graph: launcher.Graph, probe: GraphProbe, name: str, resumed) -> float:
    """Restart node `name`; seconds until `resumed(restart time)` holds."""
    restarted = time.time()
    graph.restart(name)
    if not probe.wait_for(lambda: resumed(restarted), RESTART_TIMEOUT):
        raise ScenarioError(f"the graph did not resume after restarting {name} "
                            f"(policy {probe.policy_state()}, safety {probe.safety_state()})")
    return time.time() - restarted
