"""`vla-ros demo "pick up the red cube" ...`: bring the graph up against the simulated arm, give
each instruction on /voice_command, wait for the simulator's success check, print outcomes
and timings, write an MP4 per instruction and an MCAP recording of the run.

Exit codes: 0 when every instruction succeeded, 1 when one did not or the graph failed,
2 for bad arguments (including an instruction the simulator cannot score).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEFAULT_INSTRUCTIONS = ("pick up the red cube",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("instructions", nargs="*", default=list(DEFAULT_INSTRUCTIONS), metavar="INSTRUCTION",
                        help=f"what to tell the arm, in order (default: {DEFAULT_INSTRUCTIONS[0]!r})")
    parser.add_argument("--seed", type=int, default=0,
                        help="scene seed of the first instruction; the next ones use seed+1, ... (default 0)")
    parser.add_argument("--keep-scene", action="store_true",
                        help="do not lay out a new scene between instructions (continue where the last one ended)")
    parser.add_argument("--timeout", type=float, default=40.0, help="seconds per instruction (default 40)")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"),
                        help="directory for videos, the MCAP recording, the report and node logs (default runs/demo)")
    parser.add_argument("--no-record", action="store_true", help="do not write the MCAP recording")
    parser.add_argument("--no-video", action="store_true", help="do not write videos")
    parser.add_argument("--policy", default="builtin", help="policy backend (builtin, lerobot, openvla)")
    parser.add_argument("--checkpoint", default="", help="policy checkpoint; default: the one shipped with vla_ros")
    parser.add_argument("--startup-timeout", type=float, default=90.0,
                        help="seconds for every node to come up (default 90)")


def run(args: argparse.Namespace) -> int:
    from vla_ros import bringup, launcher
    from vla_ros.demo import DemoClient, DemoError, _slug, plan_tasks, write_report

    try:
        specs = plan_tasks(args.instructions)
        plan = bringup.plan(bringup.BringupArgs(sim="mujoco", policy=args.policy, checkpoint=args.checkpoint))
    except (DemoError, bringup.BringupError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.timeout <= 0:
        print("error: --timeout must be > 0", file=sys.stderr)
        return 2
    out = args.out
    started = time.monotonic()
    outcomes = []
    with launcher.start_graph(plan, out / "logs") as graph:
        try:
            seconds = graph.wait_ready(args.startup_timeout)
        except launcher.StartupError as err:
            print(f"error: the graph did not come up: {err}", file=sys.stderr)
            return 1
        print(f"graph up: {len(graph.nodes)} processes in {seconds:.1f} s (logs in {out / 'logs'})", flush=True)
        client = DemoClient(None if args.no_record else out / "run.mcap")
        try:
            # The policy node is visible before it has loaded its model: its first status says it is live.
            if not client.spin_until(lambda: client.status is not None, args.startup_timeout):
                raise DemoError(f"no /vla/status from the policy node within {args.startup_timeout} s")
            for i, (text, spec) in enumerate(zip(args.instructions, specs)):
                video = None if args.no_video else out / f"{i:02d}_{_slug(text)}.mp4"
                outcome = client.run(text, spec, args.seed + i, reset=not (args.keep_scene and i > 0),
                                     timeout=args.timeout, video=video)
                outcomes.append(outcome)
                verdict = f"success in {outcome.seconds:.1f} s" if outcome.success else \
                    f"no success after {outcome.seconds:.1f} s"
                print(f"[{i + 1}/{len(specs)}] {text!r} (seed {outcome.seed}): {verdict}; "
                      f"policy: {outcome.policy_status or 'running'}" + (f"; video {video}" if video else ""),
                      flush=True)
                if graph.failed():
                    print("error: " + "; ".join(n.describe_exit() for n in graph.failed()), file=sys.stderr)
                    break
        except DemoError as err:
            print(f"error: {err}", file=sys.stderr)
        finally:
            client.close()
    report = out / "demo.json"
    write_report(report, outcomes, {"policy": args.policy, "checkpoint": args.checkpoint or "shipped",
                                    "wall_seconds": round(time.monotonic() - started, 1)})
    successes = sum(o.success for o in outcomes)
    print(f"{successes}/{len(specs)} succeeded; report {report}" +
          ("" if args.no_record else f", recording {out / 'run.mcap'}"))
    return 0 if successes == len(specs) else 1
