"""Parameter declaration and validation on real rclpy nodes, and run_node's forced exit."""
import re
import signal
import subprocess
import sys

import pytest
from rclpy.node import Node
from rclpy.parameter import Parameter

from vla_ros.node_common import (
    SHUTDOWN_GRACE,
    ConfigError,
    Param,
    declare_parameters,
    one_of,
    positive,
    stamp_from_seconds,
    stamp_seconds,
)

PARAMS = [
    Param("rate", 100.0, "output rate in Hz", positive),
    Param("mode", "hold", "what to do", one_of("hold", "stop")),
    Param("joints", ["a", "b"], "joint names"),
    Param("limits.margin", 0.05, "margin in rad"),
]


def _node(ros_context, overrides):
    return Node("param_test", parameter_overrides=overrides)


def test_defaults_are_declared_with_descriptions(ros_context):
    node = _node(ros_context, [])
    values = declare_parameters(node, PARAMS)
    assert values.rate == 100.0 and values.mode == "hold" and values.joints == ["a", "b"]
    assert values.limits_margin == 0.05
    assert node.describe_parameter("rate").description == "output rate in Hz"
    node.destroy_node()


def test_overrides_are_validated(ros_context):
    node = _node(ros_context, [Parameter("rate", value=50.0)])
    assert declare_parameters(node, PARAMS).rate == 50.0
    node.destroy_node()


@pytest.mark.parametrize(
    "override, message",
    [
        (Parameter("rate", value=-1.0), "rate: must be > 0"),
        (Parameter("mode", value="dance"), "mode: must be one of hold, stop"),
        (Parameter("rate", value="fast"), "rate: wrong type"),
        (Parameter("rtae", value=5.0), "rtae: unknown parameter"),
    ],
)
def test_bad_or_unknown_parameters_raise_clear_errors(ros_context, override, message):
    node = _node(ros_context, [override])
    with pytest.raises(ConfigError, match=message):
        declare_parameters(node, PARAMS)
    node.destroy_node()


def test_stamps_round_trip_and_carry_into_seconds():
    stamp = stamp_from_seconds(1795440531.5488511)
    assert stamp.sec == 1795440531 and abs(stamp_seconds(stamp) - 1795440531.5488511) < 1e-6
    carried = stamp_from_seconds(41.9999999999)  # rounds up to the next second, not to 41 s + 0 ns
    assert (carried.sec, carried.nanosec) == (42, 0)
    assert stamp_seconds(stamp_from_seconds(12.25)) == 12.25


def _ctrl_c_once_it_prints(script: str, line: str, timeout: float) -> tuple[int, str]:
    """Run a node script, SIGINT it once it prints `line`; its exit code and stderr."""
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == line
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=timeout)
    finally:
        process.kill()
    return process.returncode, stderr


# A node whose teardown never returns: run_node's watchdog must end it and say where it hung.
HANGING_NODE = """
import threading, sys
from rclpy.node import Node
from vla_ros.node_common import run_node

class HangsOnShutdown(Node):
    def __init__(self):
        super().__init__("hangs_on_shutdown")
        self.create_timer(0.01, lambda: print("spinning", flush=True))  # past start-up: spinning

    def destroy_node(self):
        threading.Event().wait()

sys.exit(run_node(HangsOnShutdown))
"""


def test_a_node_that_hangs_at_shutdown_exits_after_the_grace_naming_where():
    code, stderr = _ctrl_c_once_it_prints(HANGING_NODE, "spinning", SHUTDOWN_GRACE + 10.0)
    assert code == 1, stderr
    assert f"clean shutdown took longer than {SHUTDOWN_GRACE:g} s" in stderr
    assert re.search(r"MainThread: .* <string>:\d+ destroy_node <- node_common\.py:\d+ run_node", stderr), stderr


# A node still being built (vla_node warms its model up for seconds on a loaded machine)
# is already in the graph: Ctrl-C must stop it now, cleanly, not after the start-up.
SLOW_STARTING_NODE = """
import sys, time
from rclpy.node import Node
from vla_ros.node_common import run_node

class StartsSlowly(Node):
    def __init__(self):
        super().__init__("starts_slowly")
        print("building", flush=True)
        for _ in range(600):
            time.sleep(0.1)

sys.exit(run_node(StartsSlowly))
"""


def test_ctrl_c_during_a_slow_start_up_exits_cleanly_at_once():
    code, stderr = _ctrl_c_once_it_prints(SLOW_STARTING_NODE, "building", SHUTDOWN_GRACE)  # not the start-up's 60 s
    assert code == 0, stderr
    assert "Traceback" not in stderr, stderr
