"""Test isolation for real DDS: every pytest run gets its own ROS_DOMAIN_ID and
localhost-only discovery, set before anything imports rclpy, and inherited by the
node processes tests start."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# A run's domain: honour an explicit one, else derive one from the pid so that
# concurrent runs on one machine do not cross-talk. 1..100 keeps the DDS ports valid.
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("MUJOCO_GL", "egl")

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "config"
VENV_BIN = Path(sys.executable).parent


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: longer end-to-end tests (still run in CI)")


@pytest.fixture(scope="session")
def ros_context():
    """rclpy initialised once for the test process (shared by tests that create nodes)."""
    import rclpy

    from vla_ros.node_common import configure_middleware

    configure_middleware()
    rclpy.init()
    yield
    rclpy.try_shutdown()


@pytest.fixture
def ros_node(ros_context):
    """A fresh rclpy node for one test, with a single-threaded executor spun by `spin_until`."""
    import rclpy

    node = rclpy.create_node(f"test_node_{os.getpid()}_{time.monotonic_ns()}")
    yield node
    node.destroy_node()


def spin_until(node, predicate, timeout: float) -> bool:
    """Spin `node` until `predicate()` is true or `timeout` seconds pass; returns predicate()."""
    import rclpy

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        rclpy.spin_once(node, timeout_sec=0.02)
    return bool(predicate())


class NodeProcess:
    """A node (or any vla_ros executable) running as its own process."""

    def __init__(self, argv: list[str], log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def stop(self, timeout: float = 10.0) -> int:
        """Ctrl-C the process (SIGINT) and wait for it; kill it if it does not exit."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture
def start_process(tmp_path):
    """start_process('safety_filter_node', '--ros-args', '-p', 'rate:=50.0') -> NodeProcess.

    The executable is looked up next to this interpreter (the venv's console
    scripts). Every process is stopped at the end of the test.
    """
    started: list[NodeProcess] = []

    def start(executable: str, *args: str) -> NodeProcess:
        log = tmp_path / f"{executable}-{len(started)}.log"
        process = NodeProcess([str(VENV_BIN / executable), *args], log)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
