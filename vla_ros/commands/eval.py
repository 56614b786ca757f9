"""`vla-ros eval`: score a policy on seeded simulator episodes, in-process (no DDS)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SPLITS = ("seen", "unseen", "paraphrase", "all")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", default="expert",
                        help="expert, builtin, or a checkpoint path (default expert)")
    parser.add_argument("--checkpoint", metavar="PATH",
                        help="the model directory of a --policy lerobot or openvla backend (docs/BACKENDS.md)")
    parser.add_argument("--episodes", type=int, default=20, help="number of episodes (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the episode plan and scenes (default 0)")
    parser.add_argument("--split", choices=SPLITS, default="all",
                        help="seen: training tasks and phrasings; unseen: held-out compositions; "
                             "paraphrase: held-out phrasings; all: the three in turn (default all)")
    parser.add_argument("--tasks", metavar="FILE.jsonl",
                        help='instead of sampled tasks, lines of {"instruction": "...", "task": {...}}')
    parser.add_argument("--json", metavar="OUT", help="write the full report (per task, per split, safety) here")
    parser.add_argument("--video", metavar="DIR", help="write one MP4 of the scene camera per episode here")
    parser.add_argument("--image-size", type=int, default=224, metavar="PX",
                        help="square camera image size given to the policy (default 224)")


def run(args: argparse.Namespace) -> int:
    from vla_ros.evaluation import evaluate

    if args.episodes < 1 or args.image_size < 16:
        print("error: --episodes must be >= 1 and --image-size >= 16", file=sys.stderr)
        return 2
    try:
        report = evaluate(args.policy, args.episodes, args.seed, args.split, args.tasks, args.image_size, args.video,
                          policy_options={"path": args.checkpoint} if args.checkpoint else None)
    except (ValueError, ImportError, OSError) as err:  # bad tasks file, unknown policy, impossible task
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    print(format_summary(report))
    return 0


def format_summary(report: dict) -> str:
    lines = [f"policy {report['policy']}: {report['successes']}/{report['episodes']} episodes succeeded "
             f"({report['success_rate']:.1%}), {report['timing']['wall_seconds']} s wall"]
    for section in ("per_task", "per_split"):
        for name, rates in report[section].items():
            mean, held, stalled = rates["mean_time_to_success"], rates["held_object"], rates["ended_over_object"]
            lines.append(f"  {name:<14} {rates['successes']:>4}/{rates['episodes']:<4} {rates['success_rate']:>7.1%}"
                         + (f"   mean time to success {mean:.1f} s" if mean is not None else "")
                         + (f"   held the object in {held}" if held is not None else "")
                         + (f"   failed stalled over it in {stalled}" if stalled is not None else ""))
    safety = report["safety"]
    lines.append(f"  safety filter: {safety['filter']}; raw targets: "
                 + ", ".join(f"{k} {v}" for k, v in safety["raw_targets"].items()))
    return "\n".join(lines)
