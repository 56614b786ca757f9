"""What every vla_ros node shares: declared-and-validated parameters, /diagnostics, and a main().

A node lists its parameters at the top of its file as `Param`s, calls
`declare_parameters(self, PARAMS)` in its constructor and gets a namespace of
validated values back; a bad value or an unknown parameter raises ConfigError,
which `run_node` turns into a clear message and exit code 2.
"""
from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions

from vla_ros import paths

DIAGNOSTICS_TOPIC = "/diagnostics"
DIAG_OK = DiagnosticStatus.OK
DIAG_WARN = DiagnosticStatus.WARN
DIAG_ERROR = DiagnosticStatus.ERROR
DIAG_STALE = DiagnosticStatus.STALE

# Parameters every node accepts without declaring them itself.
_IMPLICIT_PARAMETERS = ("use_sim_time", "start_type_description_service")


class ConfigError(ValueError):
    """A node's parameters are invalid; the message says which and why."""


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    # Returns an error message for a bad value, None for a good one.
    check: Callable[[Any], str | None] | None = None
    # Needed only when the default is an empty list (its element type cannot be inferred).
    type: Parameter.Type | None = None


def positive(value) -> str | None:
    return None if value > 0 else f"must be > 0, got {value}"


def non_negative(value) -> str | None:
    return None if value >= 0 else f"must be >= 0, got {value}"


def one_of(*choices) -> Callable[[Any], str | None]:
    def check(value) -> str | None:
        return None if value in choices else f"must be one of {', '.join(map(str, choices))}; got {value!r}"

    return check


def declare_parameters(node: Node, params: Sequence[Param]) -> SimpleNamespace:
    """Declare `params` on `node` (with descriptions), validate them and return their values.

    Attribute names are the parameter names with dots replaced by underscores.
    Raises ConfigError listing every bad or unknown parameter.
    """
    errors: list[str] = []
    values: dict[str, Any] = {}
    for param in params:
        descriptor = ParameterDescriptor(description=param.description)
        default = Parameter.Type.from_parameter_value(param.default) if param.type is None else param.type
        try:
            if param.type is not None:
                value = node.declare_parameter(param.name, param.type, descriptor).value
                value = param.default if value is None else value
            else:
                value = node.declare_parameter(param.name, param.default, descriptor).value
        except (InvalidParameterTypeException, InvalidParameterValueException) as err:
            errors.append(f"{param.name}: wrong type ({err}); expected {default.name.lower()}")
            continue
        if isinstance(value, (list, tuple)) or type(value).__name__ == "array":
            value = list(value)
        if param.check is not None:
            problem = param.check(value)
            if problem:
                errors.append(f"{param.name}: {problem}")
        values[param.name.replace(".", "_")] = value

    declared = {p.name for p in params}
    # rclpy keeps overrides from --params-file / -p without a public accessor; an
    # override that no declaration consumed is a typo the user should hear about.
    overrides = getattr(node, "_parameter_overrides", {})
    unknown = sorted(
        name
        for name in overrides
        if name not in declared and name not in _IMPLICIT_PARAMETERS and not name.startswith("qos_overrides.")
    )
    for name in unknown:
        errors.append(f"{name}: unknown parameter (known: {', '.join(sorted(declared))})")
    if errors:
        raise ConfigError(f"node '{node.get_name()}' has invalid parameters:\n  " + "\n  ".join(errors))
    return SimpleNamespace(**values)


class Diagnostics:
    """Publishes one node's checks on /diagnostics at a fixed period (for rqt_robot_monitor).

    `collect` returns a list of (check name, level, message, {key: value}).
    """

    def __init__(self, node: Node, collect: Callable[[], list[tuple[str, bytes, str, dict]]], period: float = 1.0):
        self._node = node
        self._collect = collect
        self._publisher = node.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        self._timer = node.create_timer(period, self.publish)

    def publish(self) -> None:
        array = DiagnosticArray()
        array.header.stamp = self._node.get_clock().now().to_msg()
        for check, level, message, values in self._collect():
            array.status.append(
                DiagnosticStatus(
                    level=level,
                    name=f"{self._node.get_name()}: {check}",
                    message=message,
                    hardware_id="vla_ros",
                    values=[KeyValue(key=str(k), value=str(v)) for k, v in values.items()],
                )
            )
        self._publisher.publish(array)


def stamp_seconds(stamp: Time) -> float:
    """A message stamp as seconds on its clock."""
    return stamp.sec + stamp.nanosec * 1e-9


def stamp_from_seconds(seconds: float) -> Time:
    """Seconds on a clock as a message stamp (rounded to the nanosecond, carried into sec)."""
    nanoseconds = round(seconds * 1e9)
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def configure_middleware() -> None:
    """Defaults for the pip path, where no ROS 2 distro is sourced.

    Fast DDS's default shared-memory segment is too small for 640x480 images at
    30 Hz across processes; config/fastdds.xml enlarges it. A sourced ROS 2 keeps
    the user's own middleware settings.
    """
    if os.environ.get("ROS_DISTRO"):
        return
    os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    if "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ:
        try:
            os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(paths.config_file("fastdds.xml"))
        except FileNotFoundError:
            pass


# s from Ctrl-C/SIGTERM to a forced exit. Under a supervisor's stop timeout (`vla-ros up`:
# 10 s by default), so a node that hangs says so, and where, before it is killed.
SHUTDOWN_GRACE = 7.0


def where_threads_are(frames_per_thread: int = 4) -> list[str]:
    """One line per thread of this process but the caller's: its name and innermost Python frames."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    lines = []
    for ident, frame in sys._current_frames().items():
        if ident == threading.get_ident():
            continue
        stack = traceback.extract_stack(frame)[-frames_per_thread:]
        calls = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(stack))
        lines.append(f"{names.get(ident, ident)}: {calls}")
    return lines


def _exit_hard() -> None:
    # A hang in teardown is rare and not reproducible on demand: leave where it was in the log.
    report = "\n  ".join(where_threads_are())
    print(f"error: clean shutdown took longer than {SHUTDOWN_GRACE:g} s; exiting. Threads:\n  {report}",
          file=sys.stderr, flush=True)
    os._exit(1)


def _executor():
    """One executor thread in every node, and rclpy's events executor where the distro has it.

    rclpy's multi-threaded executor polls its wait set busily (~0.5 core in the simulator) and,
    holding the GIL, stalled the simulator's physics thread for 30-80 ms at a time; work that must
    not wait for callbacks runs in the node's own threads (physics, rendering, inference). The
    events executor (C++, Jazzy and later) dispatches each message without rebuilding a wait set:
    frame -> target p99 15-17 ms against 18-23 ms with the single-threaded one (three A/B pairs of
    20 s pipeline runs). It supports no guard conditions: wake it with create_task() or wake().
    """
    try:
        from rclpy.experimental import EventsExecutor
    except ImportError:  # Humble and Iron
        return SingleThreadedExecutor()
    return EventsExecutor()


class _StopDuringStartup(BaseException):
    """Raised by run_node's signal handler in the main thread while the node is being built.

    A BaseException, so that no `except Exception` in a node's constructor swallows it."""


def run_node(make_node: Callable[[], Node], args: Sequence[str] | None = None) -> int:
    """Create a node, spin it until Ctrl-C or SIGTERM, and shut down cleanly.

    Returns the process exit code: 0 after a clean shutdown, 2 for invalid configuration.
    """
    configure_middleware()
    # Our own signal handlers set a flag and wake the executor (and interrupt a start-up
    # still running). rclpy's default ones raise KeyboardInterrupt wherever the main thread
    # happens to be, which inside a message conversion surfaces as a RuntimeError and a
    # non-zero exit.
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except RuntimeError as err:  # rclpy's RCLError: unparsable --ros-args (e.g. a -p value that is not YAML)
        print(f"error: invalid ROS arguments: {err}", file=sys.stderr)
        return 2
    stop_requested = threading.Event()
    starting = threading.Event()
    starting.set()
    executor = _executor()

    def request_stop(_signum, _frame):
        if not stop_requested.is_set():
            # A shutdown that hangs (a callback that never returns, DDS teardown) must not
            # leave the process behind its supervisor: give it SHUTDOWN_GRACE, then exit hard.
            watchdog = threading.Timer(SHUTDOWN_GRACE, _exit_hard)
            watchdog.daemon = True
            watchdog.start()
        stop_requested.set()
        executor.wake()
        if starting.is_set():
            # Start-up can take seconds on a loaded machine (vla_node's model warm-up) and
            # the node is already in the graph: a stop now must not wait for it to finish.
            starting.clear()  # once: a second Ctrl-C must not interrupt the clean-up
            raise _StopDuringStartup

    previous_handlers = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            node = make_node()
            starting.clear()
        except _StopDuringStartup:
            return 0
        except (ConfigError, FileNotFoundError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        # Everything allocated so far (modules, a loaded model) is never freed while the node
        # runs: move it out of the collector's sight. In vla_node that is ~440,000 objects, and
        # a full collection over them stalls every thread of the process for ~210 ms.
        gc.freeze()
        executor.add_node(node)
        try:
            while not stop_requested.is_set():
                executor.spin_once(timeout_sec=0.5)
        finally:
            executor.shutdown()
            node.destroy_node()
        return 0
    finally:
        rclpy.try_shutdown()
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
