"""End-to-end latency of the whole graph over DDS in the simulator (issues 8 and 10).

Brings up the bringup plan (simulated arm, camera, intake, vla_node with the shipped
policy, safety filter) as separate processes, gives an instruction, and listens:

- frame -> target: a /vla/joint_targets message is stamped with the capture time of
  the frame behind it; latency = its arrival on this machine - that stamp (the first
  target of each new stamp: the moment the frame's chunk took effect);
- frame -> command: the first /joint_commands published after that target arrived (the
  safety filter publishes every 10 ms, interpolating towards the newest target);
  arrival and publish times are DDS's reception and source timestamps, so a busy
  executor in this process does not add to them;
- the command stream at the arm: rate and the jitter of its inter-arrival times;
- vla_node's own inference times, from its /diagnostics;
- command timeouts: /safety/status periods in HOLD because no target came for the
  filter's command_timeout while the policy ran (a late policy, not a dead one);
- an instruction that ends (task succeeded) is given again, so the policy runs the
  whole window; `instructions_given` says how often;
- with --hops, where a frame's time goes before the policy: capture -> the raw image
  here (/camera/image_raw, the simulator's render and one DDS hop) and capture -> the
  policy frame here (/vla/image, after camera_node). Off by default: a third subscriber
  of 640x480 images is load the pipeline does not have.

Each of --repeats runs starts the graph afresh: the phase between camera frames, the policy's
chunks and the filter's 100 Hz tick is set at start-up and moves a run's p50 by up to ~8 ms.
The top-level figures are the run with the median frame -> command p99; `runs` has every run,
and the histogram's samples pool them all.

Targets (issue 8): p99 frame -> /joint_commands <= 30 ms, commands >= 50 Hz.
Usage: bench_pipeline.py [--repeats 3] [--seconds 20] [--instruction "pick up the red cube"]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
from benchlib import percentiles, save


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window per run")
    parser.add_argument("--instruction", default="pick up the red cube")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--hops", action="store_true", help="also time the camera hops (adds a raw-image subscriber)")
    parser.add_argument("--repeats", type=int, default=3, help="runs, each on a freshly started graph")
    args = parser.parse_args()
    runs = [measure(args) for _ in range(args.repeats)]
    median = sorted(runs, key=lambda run: run["frame_to_command_ms"].get("p99", float("inf")))[(len(runs) - 1) // 2]
    samples = [v for run in runs for v in run.pop("frame_to_command_samples_ms")]
    save("pipeline", {**median, "repeats": args.repeats, "frame_to_command_samples_ms": samples,
                      "runs": [{key: run[key] for key in ("startup_seconds", "frame_to_command_ms", "command_rate_hz",
                                                          "command_interval_ms", "command_timeouts")} for run in runs]})


def measure(args: argparse.Namespace) -> dict:
    """One run: the graph started, an instruction given, `args.seconds` measured."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import String
    from vla_ros.msg import PolicyStatus, SafetyStatus
    from vla_ros.srv import ResetSim, SetTask

    from vla_ros import bringup, launcher, qos
    from vla_ros.node_common import configure_middleware, stamp_seconds
    from vla_ros.vocabulary import parse_instruction

    plan = bringup.plan(bringup.BringupArgs(sim="mujoco")).without("debug_view_node")
    with tempfile.TemporaryDirectory() as logs, launcher.start_graph(plan, logs) as graph:
        startup = graph.wait_ready(120.0)
        configure_middleware()
        rclpy.init()
        node = rclpy.create_node("bench_pipeline")
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        targets, commands, statuses, diagnostics = [], [], [], []

        # DDS's own timestamps (system clock, as the stamps): a busy executor here delays its
        # callbacks, not these. A target counts from when it reached this machine's subscribers,
        # a command from when the filter published it; the rate and jitter are at arrival.
        def received(msg, info):
            targets.append((info["received_timestamp"] * 1e-9, msg))

        def published(msg, info):
            commands.append((info["source_timestamp"] * 1e-9, info["received_timestamp"] * 1e-9))

        node.create_subscription(JointState, "/vla/joint_targets", received, qos.RELIABLE)
        node.create_subscription(JointState, "/joint_commands", published, qos.RELIABLE)
        measuring = [False]
        instructions_given = [0]

        def on_status(msg):
            statuses.append(msg)
            if measuring[0] and msg.state == PolicyStatus.DONE:
                give_instruction()

        node.create_subscription(PolicyStatus, "/vla/status", on_status, qos.RELIABLE)
        node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
        safety = []  # (status, the policy's state when it arrived)
        node.create_subscription(SafetyStatus, "/safety/status", lambda msg: safety.append(
            (msg, statuses[-1].state if statuses else None)), qos.RELIABLE)
        hops = {"capture_to_raw_image_ms": [], "capture_to_policy_frame_ms": []}
        if args.hops:
            for topic, store in (("/camera/image_raw", hops["capture_to_raw_image_ms"]),
                                 ("/vla/image", hops["capture_to_policy_frame_ms"])):
                node.create_subscription(
                    Image, topic, lambda msg, info, store=store: store.append(
                        info["received_timestamp"] * 1e-9 - stamp_seconds(msg.header.stamp)), qos.SENSOR)
        voice = node.create_publisher(String, "/voice_command", qos.RELIABLE)

        def give_instruction():
            voice.publish(String(data=args.instruction))
            instructions_given[0] += 1

        def spin_for(seconds, until=lambda: False):
            end = time.monotonic() + seconds
            while time.monotonic() < end and not until():
                executor.spin_once(timeout_sec=0.01)

        spin_for(180.0, until=lambda: bool(statuses))  # the policy node has loaded its model
        for service, kind, request in (("/sim/set_task", SetTask, SetTask.Request(
                task_json=json.dumps(parse_instruction(args.instruction)))),
                ("/sim/reset", ResetSim, ResetSim.Request(seed=args.seed))):
            client = node.create_client(kind, service)
            client.wait_for_service(timeout_sec=10.0)
            future = client.call_async(request)
            spin_for(10.0, until=future.done)
        targets.clear()
        commands.clear()
        safety.clear()
        for store in hops.values():
            store.clear()
        # A volatile publisher's message is lost until discovery has matched the subscriber.
        spin_for(10.0, until=lambda: voice.get_subscription_count() > 0)
        measuring[0] = True
        give_instruction()
        spin_for(args.seconds)
        measuring[0] = False

        frame_to_target, frame_to_command = [], []
        command_times = np.array([t for t, _ in commands])
        command_arrivals = np.array([t for _, t in commands])
        seen = set()
        for arrived, msg in targets:
            stamp = stamp_seconds(msg.header.stamp)
            if stamp in seen:
                continue
            seen.add(stamp)
            frame_to_target.append(arrived - stamp)
            later = command_times[command_times >= arrived]
            if later.size:
                frame_to_command.append(later[0] - stamp)
        intervals = np.diff(command_arrivals)
        inference = [float(v.value) for array in diagnostics for status in array.status
                     if status.name == "vla_node: policy" for v in status.values
                     if v.key == "inference_ms_p50" and v.value]
        timeouts = [s.state == SafetyStatus.HOLD and s.reason.startswith("command timeout")
                    for s, policy in safety if policy == PolicyStatus.RUNNING]
        node.destroy_node()
        rclpy.shutdown()

    if not targets:
        raise SystemExit(f"vla_node sent no targets in {args.seconds} s; its last status: "
                         f"{statuses[-1].reason if statuses else 'none'}")
    command_rate = (float((len(command_arrivals) - 1) / (command_arrivals[-1] - command_arrivals[0]))
                    if len(command_arrivals) > 1 else 0.0)
    e2e = percentiles(frame_to_command) if frame_to_command else {}
    return {
        "instruction": args.instruction, "seconds": args.seconds, "startup_seconds": startup,
        "frame_to_target_ms": percentiles(frame_to_target) if frame_to_target else {},
        "frame_to_command_ms": e2e,
        # every sample (0.1 ms), for the histogram in docs/BENCHMARKS.md
        "frame_to_command_samples_ms": [round(v * 1e3, 1) for v in frame_to_command],
        "command_rate_hz": round(command_rate, 2),
        **{name: percentiles(samples) for name, samples in hops.items() if samples},
        "command_interval_ms": percentiles(intervals) if intervals.size else {},
        "vla_node_inference_p50_ms": inference[-1] if inference else None,
        "command_timeouts": {"periods": int(sum(timeouts)), "of_periods": len(timeouts),
                             "episodes": int(sum(b and not a for a, b in zip([False, *timeouts], timeouts)))},
        "instructions_given": instructions_given[0],
        "final_status": {"state": statuses[-1].state, "reason": statuses[-1].reason} if statuses else None,
        "targets": {"frame_to_command_p99_ms": 30.0, "command_rate_hz": 50.0},
        "met": {"frame_to_command_p99": bool(e2e) and e2e["p99"] <= 30.0, "command_rate": command_rate >= 50.0},
        "method": "system clock of one machine: frame capture stamps, DDS reception times of targets, DDS source times of commands",
    }


if __name__ == "__main__":
    main()
