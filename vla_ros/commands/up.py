"""`vla-ros up`: bring the whole graph up as separate processes, the pip-only `ros2 launch`.

The nodes, parameters and remappings come from vla_ros/bringup.py, exactly as for
`ros2 launch vla_ros bringup.launch.py`; vla_ros/launcher.py runs them. Prints each
node's pid and log file, waits until every node is visible over DDS, then runs until
Ctrl-C or SIGTERM (a second one kills at once) or until a node dies. Exit codes: 0 after
a clean stop, 1 when a node failed, 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from vla_ros.bringup import CONTROLLERS, POLICIES, SIMS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sim", choices=SIMS, default="mujoco",
                        help="arm backend: mujoco (default), gazebo or none (a real arm under ros2_control)")
    parser.add_argument("--policy", choices=POLICIES, default="builtin", help="VLA policy backend (default builtin)")
    parser.add_argument("--checkpoint", default="", help="policy checkpoint; default: the one shipped with vla_ros")
    parser.add_argument("--speech", action="store_true", help="also start speech_node (spoken instructions)")
    parser.add_argument("--camera-source", default="",
                        help="with --sim gazebo|none: topic:NAME, device:/dev/videoN, video:FILE or images:DIR")
    parser.add_argument("--wrist-camera", choices=("true", "false"), default="",
                        help="also give the policy the hand camera via wrist_camera_node (default: when the policy "
                        "uses one)")
    parser.add_argument("--rviz", action="store_true", help="start rviz2 with config/vla.rviz (needs a ROS 2 install)")
    parser.add_argument("--namespace", default="", help="namespace for every node and topic of the graph")
    parser.add_argument("--use-sim-time", choices=("true", "false"), default="",
                        help="default: true with --sim gazebo, else false (mujoco then publishes /clock)")
    parser.add_argument("--params-file", default="", help="YAML of parameter overrides, sections keyed by node name")
    parser.add_argument("--controller", choices=CONTROLLERS, default="",
                        help="--sim gazebo|none: ros2_control controller receiving /joint_commands (default forward)")
    parser.add_argument("--hardware-plugin", default="",
                        help="--sim none: ros2_control hardware plugin, or 'external' (default: the mock plugin)")
    parser.add_argument("--without", action="append", default=[], metavar="NODE",
                        help="leave a planned node out (repeatable), e.g. --without vla_node")
    parser.add_argument("--log-dir", type=Path, help="where node logs go (default runs/up/<date-time>)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (nodes, parameters, remaps) and exit")
    parser.add_argument("--startup-timeout", type=float, default=60.0,
                        help="seconds for every node to appear over DDS (default 60)")
    parser.add_argument("--stop-timeout", type=float, default=10.0,
                        help="seconds nodes get to exit after Ctrl-C before they are killed (default 10)")


def run(args: argparse.Namespace) -> int:
    from vla_ros import bringup, launcher

    try:
        plan = bringup.plan(bringup.BringupArgs.from_strings({
            "sim": args.sim, "policy": args.policy, "checkpoint": args.checkpoint,
            "speech": str(args.speech).lower(), "camera_source": args.camera_source,
            "wrist_camera": args.wrist_camera, "rviz": str(args.rviz).lower(),
            "namespace": args.namespace, "use_sim_time": args.use_sim_time, "params_file": args.params_file,
            "controller": args.controller, "hardware_plugin": args.hardware_plugin,
        })).without(*args.without)
    except (bringup.BringupError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(plan.describe())
        return 0

    requests: list[int] = []
    graph: launcher.Graph | None = None

    def on_signal(signum, _frame):
        requests.append(signum)
        if len(requests) > 1 and graph is not None:
            graph.kill()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    log_dir = args.log_dir or Path("runs") / "up" / time.strftime("%Y%m%d-%H%M%S")
    try:
        graph = launcher.start_graph(plan, log_dir)
        for spec, why in graph.skipped:
            print(f"skipped {spec.full_name}: {why}", flush=True)
        for node in graph.nodes:
            print(f"started {node.spec.full_name:<34} pid {node.pid:<7} log {node.log_path}", flush=True)
        return _supervise(graph, args, requests)
    finally:
        if graph is not None:
            graph.stop(args.stop_timeout)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _supervise(graph, args: argparse.Namespace, requests: list[int]) -> int:
    from vla_ros.launcher import StartupError

    try:
        seconds = graph.wait_ready(args.startup_timeout, cancelled=lambda: bool(requests))
    except StartupError as err:
        print(f"error: the graph did not come up: {err}", file=sys.stderr, flush=True)
        print("stopping the other nodes", file=sys.stderr, flush=True)
        return 1
    if seconds is not None:
        print(f"up: {len(graph.nodes)} processes in {seconds:.1f} s; Ctrl-C stops them", flush=True)
    while not requests:
        failed = graph.failed()
        if failed:
            for node in failed:
                print(f"error: {node.describe_exit()}", file=sys.stderr, flush=True)
            print("stopping the other nodes", file=sys.stderr, flush=True)
            return 1
        time.sleep(0.2)
    print(f"{signal.Signals(requests[0]).name}: stopping {len(graph.running())} processes", flush=True)
    codes = graph.stop(args.stop_timeout)
    unclean = {name: code for name, code in codes.items() if code not in (0, -signal.SIGINT)}
    for name, code in codes.items():
        print(f"stopped {name} (exit code {code})", flush=True)
    if unclean:
        print(f"error: not a clean exit: {', '.join(f'{n} ({c})' for n, c in unclean.items())}", file=sys.stderr)
        for node in graph.nodes:
            if node.spec.full_name in unclean:
                print(node.describe_exit(), file=sys.stderr, flush=True)
        return 1
    return 0
