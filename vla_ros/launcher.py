"""Run a bringup plan (vla_ros/bringup.py) as separate processes, without ROS launch tooling.

    from vla_ros import bringup, launcher
    plan = bringup.plan(bringup.BringupArgs(sim="mujoco"))
    with launcher.start_graph(plan, log_dir) as graph:
        graph.wait_ready(timeout=60)    # every node visible over DDS, or StartupError
        ...                             # graph.alive(), graph.failed()
        graph.node("vla_node").process.kill(); graph.restart("vla_node")   # fault tests
    # leaving the block stops every process: SIGINT, then SIGKILL after a timeout

Each node runs in its own process group (a Ctrl-C in the terminal reaches only the
supervisor, which stops the nodes in order) and is told by the kernel to exit if the
supervisor dies (PR_SET_PDEATHSIG), so no node outlives it. Output goes to one log
file per node. External executables (robot_state_publisher, rviz2, ros2_control) are
looked up in a sourced ROS 2 install and skipped with a note when missing.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from vla_ros.bringup import PACKAGE, NodeSpec, Plan

_PR_SET_PDEATHSIG = 1
LOG_TAIL_LINES = 15


class StartupError(RuntimeError):
    """A node did not come up; the message names it and quotes its log."""


def find_executable(spec: NodeSpec) -> Path | None:
    """The executable for a planned node: the venv's console scripts for vla_ros, else a ROS 2 install."""
    candidates = []
    if spec.package == PACKAGE:
        candidates.append(Path(sys.executable).parent / spec.executable)
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        candidates.append(Path(prefix) / "lib" / spec.package / spec.executable)
    return next((path for path in candidates if path.is_file() and os.access(path, os.X_OK)), None)


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: the kernel sends SIGTERM when the supervisor dies.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class RunningNode:
    spec: NodeSpec
    process: subprocess.Popen
    log_path: Path
    command: list[str]
    _log: object = field(repr=False, default=None)

    @property
    def pid(self) -> int:
        return self.process.pid

    def returncode(self) -> int | None:
        return self.process.poll()

    def failed(self) -> bool:
        """Exited when it should not have: a node at all, a one-shot tool with an error."""
        code = self.process.poll()
        return code is not None and (code != 0 or not self.spec.oneshot)

    def describe_exit(self) -> str:
        code = self.process.poll()
        tail = log_tail(self.log_path)
        return (f"{self.spec.full_name} exited with code {code} (log: {self.log_path})"
                + (":\n    " + tail.replace("\n", "\n    ") if tail else ""))


class Graph:
    """The running processes of a plan."""

    def __init__(self, nodes: list[RunningNode], skipped: list[tuple[NodeSpec, str]], log_dir: Path,
                 environment: dict[str, str]):
        self.nodes = nodes
        self.skipped = skipped  # (spec, why)
        self.log_dir = log_dir
        self.environment = environment

    def node(self, name: str) -> RunningNode:
        """The process of the planned node `name` (running or not)."""
        for node in self.nodes:
            if node.spec.name == name:
                return node
        raise KeyError(f"no process for {name!r}; started: {', '.join(n.spec.name for n in self.nodes)}")

    def restart(self, name: str, timeout: float = 10.0) -> RunningNode:
        """Start node `name` again with the same command, after stopping it if it still runs
        (a fault test brings a killed node back). Its log continues in the same file."""
        old = self.node(name)
        if old.returncode() is None:
            _signal_group(old.process, signal.SIGINT)
            try:
                old.process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(old.process, signal.SIGKILL)
                old.process.wait()
        old._log.close()
        new = _spawn(old.spec, old.command, old.log_path, self.environment, append=True)
        self.nodes[self.nodes.index(old)] = new
        return new

    def __enter__(self) -> Graph:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def alive(self) -> bool:
        """True while no process has failed (one-shot tools that finished fine do not count)."""
        return not self.failed()

    def failed(self) -> list[RunningNode]:
        return [node for node in self.nodes if node.failed()]

    def running(self) -> list[RunningNode]:
        return [node for node in self.nodes if node.returncode() is None]

    def wait_ready(self, timeout: float = 60.0, cancelled: Callable[[], bool] = lambda: False) -> float | None:
        """Wait until every long-running node is visible in the ROS graph; returns the seconds it took.

        Raises StartupError, naming the node and quoting its log, if a process exits
        (a bad parameter, a missing model) or the timeout passes. Returns None early when
        `cancelled()` turns true (a Ctrl-C). The caller stops the graph.
        """
        import rclpy

        from vla_ros.node_common import configure_middleware

        configure_middleware()
        expected = {(node.spec.name, node.spec.namespace or "/") for node in self.nodes if not node.spec.oneshot}
        context = rclpy.Context()
        rclpy.init(context=context)
        start = time.monotonic()
        try:
            probe = rclpy.create_node(f"vla_ros_launcher_probe_{os.getpid()}", context=context)
            try:
                while not cancelled():
                    failed = self.failed()
                    if failed:
                        raise StartupError("\n".join(node.describe_exit() for node in failed))
                    missing = expected - set(probe.get_node_names_and_namespaces())
                    if not missing:
                        return time.monotonic() - start
                    if time.monotonic() - start > timeout:
                        names = ", ".join(sorted(f"{ns.rstrip('/')}/{name}" for name, ns in missing))
                        raise StartupError(f"not up after {timeout:g} s: {names} (logs in {self.log_dir})")
                    time.sleep(0.2)
                return None
            finally:
                probe.destroy_node()
        finally:
            rclpy.try_shutdown(context=context)

    def stop(self, timeout: float = 10.0) -> dict[str, int]:
        """Ctrl-C every running process (its whole group), SIGKILL what is left after `timeout`.

        Returns each node's exit code by full name. Safe to call more than once.
        """
        for node in self.running():
            _signal_group(node.process, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.kill()
        codes = {}
        for node in self.nodes:
            codes[node.spec.full_name] = node.process.wait()
            if node._log is not None and not node._log.closed:
                node._log.close()
        return codes

    def kill(self) -> None:
        """SIGKILL every process still running (a second Ctrl-C, or a stop that timed out)."""
        for node in self.running():
            _signal_group(node.process, signal.SIGKILL)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    # Only while the process is unreaped is its pid (= its group id) surely still ours.
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass


def _file_name(spec: NodeSpec) -> str:
    return spec.full_name.strip("/").replace("/", "__")


def write_parameters(spec: NodeSpec, directory: Path) -> Path | None:
    """Write the node's parameters as a ROS parameters file in `directory`; None when it has none.

    Keyed /** so the values apply whatever the node's namespace; written as YAML by us (not
    by launch_ros) so strings such as the URDF reach the node unchanged on both paths.
    """
    if not spec.parameters:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{_file_name(spec)}.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": spec.parameters}}, sort_keys=True))
    return path


def start_graph(plan: Plan, log_dir: Path | str, env: dict[str, str] | None = None) -> Graph:
    """Start every node of `plan` in plan order; nodes whose executable is missing are skipped.

    Logs go to `log_dir`/<node>.log, each node's parameters to `log_dir`/params/<node>.yaml.
    If starting a process fails, the ones already started are stopped.
    """
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    environment = dict(os.environ if env is None else env)
    environment.setdefault("PYTHONUNBUFFERED", "1")
    environment.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "0")
    running: list[RunningNode] = []
    skipped: list[tuple[NodeSpec, str]] = []
    graph = Graph(running, skipped, log_dir, environment)
    try:
        for spec in plan.nodes:
            executable = find_executable(spec)
            if executable is None:
                where = "the virtualenv (run scripts/setup_env.sh)" if spec.package == PACKAGE else \
                    f"a sourced ROS 2 install (package {spec.package})"
                skipped.append((spec, f"{spec.executable} not found in {where}"))
                continue
            params_file = write_parameters(spec, log_dir / "params")
            command = [str(executable), *spec.arguments, *spec.ros_arguments(params_file and str(params_file))]
            running.append(_spawn(spec, command, log_dir / f"{_file_name(spec)}.log", environment))
    except BaseException:
        graph.stop()
        raise
    return graph


def _spawn(spec: NodeSpec, command: list[str], log_path: Path, environment: dict[str, str],
           append: bool = False) -> RunningNode:
    log = open(log_path, "a" if append else "w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               env=environment, start_new_session=True, preexec_fn=_die_with_parent)
    return RunningNode(spec, process, log_path, command, log)
