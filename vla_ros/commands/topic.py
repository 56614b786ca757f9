"""`vla-ros topic pub|echo`: a small `ros2 topic` for machines without the ros2 CLI."""
from __future__ import annotations

import argparse
import json
import sys
import time

QOS_CHOICES = ("reliable", "sensor", "latched")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    pub = verbs.add_parser("pub", help="publish a message given as JSON")
    pub.add_argument("topic")
    pub.add_argument("type", help="message type, e.g. std_msgs/msg/String")
    pub.add_argument("data", help='message fields as JSON, e.g. \'{"data": "hello"}\'')
    pub.add_argument("--count", type=int, default=1, help="messages to publish (default 1)")
    pub.add_argument("--rate", type=float, default=10.0, help="Hz between messages (default 10)")
    pub.add_argument("--wait-subscribers", type=float, default=5.0,
                     help="seconds to wait for a subscriber before publishing (default 5)")
    pub.add_argument("--qos", choices=QOS_CHOICES, default="reliable")
    echo = verbs.add_parser("echo", help="print messages as JSON lines")
    echo.add_argument("topic")
    echo.add_argument("type", help="message type, e.g. std_msgs/msg/String")
    echo.add_argument("--count", type=int, default=0, help="exit after this many messages (0: never)")
    echo.add_argument("--timeout", type=float, default=0.0, help="exit with code 1 after this many seconds (0: never)")
    echo.add_argument("--qos", choices=QOS_CHOICES, default="reliable")


def run(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException

    from vla_ros import msg_json, qos
    from vla_ros.node_common import configure_middleware

    try:
        msg_class = msg_json.message_class(args.type)
        message = msg_json.from_dict(msg_class, json.loads(args.data)) if args.verb == "pub" else None
    except (ValueError, TypeError, AssertionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    profile = {"reliable": qos.RELIABLE, "sensor": qos.SENSOR, "latched": qos.LATCHED}[args.qos]
    configure_middleware()
    rclpy.init()
    node = rclpy.create_node(f"vla_ros_topic_{args.verb}")
    try:
        if args.verb == "pub":
            return _publish(node, msg_class, message, profile, args)
        return _echo(node, msg_class, profile, args)
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def _publish(node, msg_class, message, profile, args) -> int:
    import rclpy

    publisher = node.create_publisher(msg_class, args.topic, profile)
    deadline = time.monotonic() + args.wait_subscribers
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    for i in range(args.count):
        publisher.publish(message)
        if i + 1 < args.count:
            time.sleep(1.0 / args.rate)
    # Give reliable delivery a moment before the participant goes away.
    rclpy.spin_once(node, timeout_sec=0.3)
    return 0


def _echo(node, msg_class, profile, args) -> int:
    import rclpy

    from vla_ros import msg_json

    received = 0

    def on_message(msg) -> None:
        nonlocal received
        received += 1
        print(json.dumps(msg_json.to_dict(msg)), flush=True)

    node.create_subscription(msg_class, args.topic, on_message, profile)
    deadline = time.monotonic() + args.timeout if args.timeout > 0 else None
    while args.count == 0 or received < args.count:
        if deadline is not None and time.monotonic() > deadline:
            print(f"timeout: {received} message(s) on {args.topic}", file=sys.stderr)
            return 1
        rclpy.spin_once(node, timeout_sec=0.05)
    return 0
