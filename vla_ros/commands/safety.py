"""`vla-ros safety trigger|reset|status`: the operator's handle on the safety filter.

trigger and reset call /safety/trigger_estop and /safety/reset_estop (there is
no `ros2 service call` on the pip path); status prints the latest
/safety/status as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

SERVICES = {"trigger": "/safety/trigger_estop", "reset": "/safety/reset_estop"}
STATUS_TOPIC = "/safety/status"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=(*SERVICES, "status"),
                        help="trigger: latch the e-stop; reset: release it; status: print the filter's state")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for the safety filter (default 10)")


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException

    from vla_ros.node_common import configure_middleware

    configure_middleware()
    rclpy.init()
    node = rclpy.create_node("vla_ros_safety_cli")
    try:
        if args.action == "status":
            return _status(node, args.timeout)
        return _call(node, SERVICES[args.action], args.timeout)
    except (KeyboardInterrupt, ExternalShutdownException):
        return 130
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def _call(node, service: str, timeout: float) -> int:
    import rclpy
    from std_srvs.srv import Trigger

    client = node.create_client(Trigger, service)
    if not client.wait_for_service(timeout_sec=timeout):
        print(f"error: {service} not available after {timeout:g} s: is safety_filter_node running?", file=sys.stderr)
        return 1
    future = client.call_async(Trigger.Request())
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
    if not future.done():
        print(f"error: no answer from {service} within {timeout:g} s", file=sys.stderr)
        return 1
    response = future.result()
    print(response.message)
    return 0 if response.success else 1


def _status(node, timeout: float) -> int:
    import rclpy

    from vla_ros import msg_json, qos
    from vla_ros.msg import SafetyStatus
    from vla_ros.safety import SafetyState

    received: list[SafetyStatus] = []
    node.create_subscription(SafetyStatus, STATUS_TOPIC, received.append, qos.RELIABLE)
    deadline = time.monotonic() + timeout
    while not received and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    if not received:
        print(f"error: no {STATUS_TOPIC} within {timeout:g} s: is safety_filter_node running?", file=sys.stderr)
        return 1
    status = msg_json.to_dict(received[0])
    status["state_name"] = SafetyState(received[0].state).name
    print(json.dumps(status))
    return 0
