"""safety_filter_node: the only publisher of /joint_commands; nothing unsafe reaches the arm.

A thin wrapper over vla_ros/safety (plain Python): it feeds messages in, steps
the filter at a fixed rate and publishes what comes out. docs/SAFETY.md
describes what is enforced.

Subscribes
  /vla/joint_targets  sensor_msgs/JointState  RELIABLE  commands (positions, matched by name)
  /vla/action_chunk   vla_ros/ActionChunk     RELIABLE  confidence gate
  /joint_states       sensor_msgs/JointState  SENSOR    measured positions (extra joints ignored)
  /safety/estop       std_msgs/Bool           LATCHED   true latches the e-stop; false does not reset it
Publishes
  /joint_commands     sensor_msgs/JointState  RELIABLE  every period while joint states are fresh
  /safety/status      vla_ros/SafetyStatus    RELIABLE  every period
  /diagnostics        one status per check, 1 Hz
Services
  /safety/trigger_estop, /safety/reset_estop  std_srvs/srv/Trigger
"""
from __future__ import annotations

import sys
import time

from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool
from std_srvs.srv import Trigger

from vla_ros import arm, qos
from vla_ros.msg import ActionChunk, SafetyStatus
from vla_ros.node_common import (
    DIAG_ERROR,
    DIAG_OK,
    DIAG_WARN,
    ConfigError,
    Diagnostics,
    Param,
    declare_parameters,
    non_negative,
    positive,
    run_node,
    stamp_seconds,
)
from vla_ros.safety import SafetyFilter, SafetyState, config_from_parameters, parameter_defaults
from vla_ros.safety.limits import LIMIT_FIELDS

TARGETS_TOPIC = "/vla/joint_targets"
CHUNK_TOPIC = "/vla/action_chunk"
JOINT_STATES_TOPIC = "/joint_states"
ESTOP_TOPIC = "/safety/estop"
COMMANDS_TOPIC = "/joint_commands"
STATUS_TOPIC = "/safety/status"
TRIGGER_SERVICE = "/safety/trigger_estop"
RESET_SERVICE = "/safety/reset_estop"

_DEFAULTS = parameter_defaults()
PARAMS = [
    Param("rate", _DEFAULTS["rate"], "output rate of /joint_commands and /safety/status (Hz)", positive),
    Param("command_timeout", _DEFAULTS["command_timeout"], "s without an accepted target before holding", positive),
    Param("state_timeout", _DEFAULTS["state_timeout"],
          "s without accepted /joint_states before the fault state (nothing published)", positive),
    Param("max_command_age", _DEFAULTS["max_command_age"], "s; targets with older stamps are rejected", positive),
    Param("max_future_stamp", _DEFAULTS["max_future_stamp"],
          "s; stamps further ahead of this node's clock are rejected", non_negative),
    Param("confidence_threshold", _DEFAULTS["confidence_threshold"],
          "action chunks below this confidence make the filter hold until a confident one"),
    Param("max_step_from_measured", _DEFAULTS["max_step_from_measured"],
          "rad an arm joint's command may lead /joint_states; a larger tracking error holds", positive),
    Param("position_margin", _DEFAULTS["position_margin"], "rad kept inside each arm joint's range", non_negative),
    Param("gripper_margin", _DEFAULTS["gripper_margin"], "m kept inside the gripper's range", non_negative),
    *[
        Param(f"joint_limits.{joint}.{limit}", _DEFAULTS[f"joint_limits.{joint}.{limit}"],
              f"{limit} of {joint}; may tighten, never widen, the Panda datasheet")
        for joint in arm.COMMANDED_JOINTS
        for limit in LIMIT_FIELDS
    ],
    Param("workspace.min", _DEFAULTS["workspace.min"], "x, y, z (m, world) lower corner of the TCP/flange box"),
    Param("workspace.max", _DEFAULTS["workspace.max"], "x, y, z (m, world) upper corner of the TCP/flange box"),
    Param("workspace.table_z", _DEFAULTS["workspace.table_z"], "height of the table plane (m)"),
    Param("workspace.tcp_clearance", _DEFAULTS["workspace.tcp_clearance"],
          "m the TCP stays above the table", non_negative),
    Param("workspace.link_clearance", _DEFAULTS["workspace.link_clearance"],
          "m links 3-7 and the flange stay above the table", non_negative),
]

# Rejections of one kind are logged at most this often (s); counters count them all.
_LOG_THROTTLE = 1.0


class SafetyFilterNode(Node):
    def __init__(self):
        super().__init__("safety_filter_node")
        values = declare_parameters(self, PARAMS)
        try:
            config = config_from_parameters({p.name: getattr(values, p.name.replace(".", "_")) for p in PARAMS})
        except ValueError as err:
            raise ConfigError(f"node '{self.get_name()}' has invalid parameters: {err}") from err
        self.filter = SafetyFilter(config)
        self._last_logged: dict[str, float] = {}
        self._state: SafetyState | None = None
        self._reason = ""
        self._active_limits: tuple[str, ...] = ()

        # All callbacks share the node's default (mutually exclusive) callback
        # group, so the filter is never entered from two threads at once.
        self._commands = self.create_publisher(JointState, COMMANDS_TOPIC, qos.RELIABLE)
        self._status = self.create_publisher(SafetyStatus, STATUS_TOPIC, qos.RELIABLE)
        self.create_subscription(JointState, TARGETS_TOPIC, self._on_target, qos.RELIABLE)
        self.create_subscription(ActionChunk, CHUNK_TOPIC, self._on_chunk, qos.RELIABLE)
        self.create_subscription(JointState, JOINT_STATES_TOPIC, self._on_joint_states, qos.SENSOR)
        self.create_subscription(Bool, ESTOP_TOPIC, self._on_estop, qos.LATCHED)
        self.create_service(Trigger, TRIGGER_SERVICE, self._on_trigger)
        self.create_service(Trigger, RESET_SERVICE, self._on_reset)
        self.create_timer(config.dt, self._on_timer)
        self._diagnostics = Diagnostics(self, self._collect_diagnostics)
        self.get_logger().info(
            f"safety filter up: {config.rate:g} Hz, command timeout {config.command_timeout:g} s, "
            f"state timeout {config.state_timeout:g} s; waiting for {JOINT_STATES_TOPIC}"
        )

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _log_rejection(self, kind: str, reason: str) -> None:
        now = self._now()
        if now - self._last_logged.get(kind, -_LOG_THROTTLE) >= _LOG_THROTTLE:
            self._last_logged[kind] = now
            self.get_logger().warning(reason)

    def _on_target(self, msg: JointState) -> None:
        verdict = self.filter.set_target(msg.name, msg.position, stamp_seconds(msg.header.stamp), self._now())
        if not verdict:
            self._log_rejection("target", verdict.reason)

    def _on_chunk(self, msg: ActionChunk) -> None:
        verdict = self.filter.set_confidence(msg.confidence)
        if not verdict:
            self._log_rejection("chunk", f"holding: action chunk {verdict.reason}")

    def _on_joint_states(self, msg: JointState) -> None:
        verdict = self.filter.set_measured(msg.name, msg.position, stamp_seconds(msg.header.stamp), self._now(),
                                           arrival=time.monotonic())
        if not verdict:
            self._log_rejection("joint_states", verdict.reason)

    def _on_estop(self, msg: Bool) -> None:
        if msg.data:
            self._latch(f"{ESTOP_TOPIC} true")
        else:
            self.get_logger().info(f"{ESTOP_TOPIC} false ignored: only {RESET_SERVICE} resets the e-stop")

    def _latch(self, source: str) -> None:
        if not self.filter.estop_latched:
            self.get_logger().error(f"E-STOP latched by {source}; reset with {RESET_SERVICE}")
        self.filter.trigger_estop(source)

    def _on_trigger(self, request, response):
        self._latch(TRIGGER_SERVICE)
        response.success, response.message = True, "e-stop latched"
        return response

    def _on_reset(self, request, response):
        was_latched = self.filter.reset_estop()
        response.success = True
        if was_latched:
            response.message = "e-stop reset; motion resumes with the next command"
            self.get_logger().warning(f"e-stop reset by {RESET_SERVICE}")
        else:
            response.message = "e-stop was not latched"
        return response

    def _on_timer(self) -> None:
        now = self.get_clock().now()
        out = self.filter.step(now.nanoseconds * 1e-9, arrival=time.monotonic())
        if out.positions is not None:
            command = JointState()
            command.header.stamp = now.to_msg()
            command.name = list(arm.COMMANDED_JOINTS)
            command.position = out.positions.tolist()
            self._commands.publish(command)
        if out.state != self._state:
            # (rclpy fixes a log call's severity at its first use: one call per severity.)
            if out.state in (SafetyState.OK, SafetyState.LIMITED):
                self.get_logger().info(f"state {out.state.name}: {out.reason}")
            else:
                self.get_logger().warning(f"state {out.state.name}: {out.reason}")
        self._state, self._reason, self._active_limits = out.state, out.reason, out.active_limits
        counters = self.filter.counters
        status = SafetyStatus(
            state=int(out.state),
            reason=out.reason,
            active_limits=list(out.active_limits),
            commands_received=counters.commands_received,
            commands_rejected=counters.commands_rejected,
            commands_limited=counters.commands_limited,
            outputs_published=counters.outputs,
        )
        status.header.stamp = now.to_msg()
        self._status.publish(status)

    def _collect_diagnostics(self):
        flt, counters, now = self.filter, self.filter.counters, self._now()
        state_level = {
            SafetyState.OK: DIAG_OK, SafetyState.LIMITED: DIAG_OK, SafetyState.HOLD: DIAG_OK,
            SafetyState.ESTOP: DIAG_ERROR, SafetyState.FAULT: DIAG_ERROR,
        }.get(self._state, DIAG_WARN)
        state_name = self._state.name if self._state is not None else "STARTING"
        states_fresh = flt.measured_time is not None and now - flt.measured_time <= flt.config.state_timeout
        confidence_problem = flt.confidence_problem()
        return [
            ("output", state_level, f"{state_name}: {self._reason}",
             {"outputs": counters.outputs, "limited outputs": counters.outputs_limited,
              "hold outputs": counters.hold_outputs, "fault steps": counters.fault_steps}),
            ("joint states", DIAG_OK if states_fresh else DIAG_ERROR,
             "fresh" if states_fresh else "missing or stale: no motion is published",
             {"rejected": counters.states_rejected}),
            ("commands", DIAG_WARN if counters.commands_rejected else DIAG_OK,
             flt.last_rejection or "no rejections",
             {"received": counters.commands_received, "rejected": counters.commands_rejected,
              "limited": counters.commands_limited, **counters.rejections}),
            ("e-stop", DIAG_ERROR if flt.estop_latched else DIAG_OK,
             "latched" if flt.estop_latched else "released", {"triggered": counters.estops_triggered}),
            ("confidence", DIAG_WARN if confidence_problem else DIAG_OK,
             confidence_problem or ("no action chunks yet" if flt.confidence is None
                                    else f"latest chunk {flt.confidence:.3f}"),
             {"threshold": flt.config.confidence_threshold}),
            ("limits", DIAG_OK, ", ".join(self._active_limits) or "none acting",
             {"limited commands": counters.commands_limited}),
        ]


def main(args=None):
    return run_node(SafetyFilterNode, args)


if __name__ == "__main__":
    sys.exit(main())
