"""`vla-ros collect --episodes N --seed S --out DIR`: expert demonstrations from the simulator."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--episodes", type=int, required=True, help="number of demonstrations")
    parser.add_argument("--seed", type=int, default=0, help="seed of tasks, scenes and noise (default 0)")
    parser.add_argument("--out", required=True, help="dataset directory (resumes when it exists)")
    parser.add_argument("--image-size", type=int, default=128, help="square scene-camera image size (default 128)")
    parser.add_argument("--shard-size", type=int, default=50, help="episodes per shard (default 50)")
    parser.add_argument("--dagger", metavar="CHECKPOINT", default="",
                        help="DAgger: this built-in policy checkpoint ('builtin' = the shipped one) drives on "
                        "a share of the steps, the expert labels every step")
    parser.add_argument("--expert-share", type=float, default=0.3,
                        help="with --dagger, the probability that the expert drives a step (default 0.3)")
    parser.add_argument("--kinds", default="",
                        help="comma-separated task kinds to record, e.g. 'home' (default: all, weighted "
                        "as in vla_ros/collection.py)")
    parser.add_argument("--missed-grasp", type=float, default=0.0, metavar="METRES",
                        help="retry demonstrations: the expert's first grasp aims this far beside the object "
                        "(0.035 misses every time) and only the frames from the miss on are recorded "
                        "(default 0: off)")
    parser.add_argument("--wrist-camera", action="store_true",
                        help="record the hand camera's frames too (observation.wrist_image); on by itself "
                        "when the --dagger policy uses them")


def run(args: argparse.Namespace) -> int:
    from vla_ros.collection import collect
    from vla_ros.dataset import DatasetError
    from vla_ros.policies.builtin.language import LanguageEncoderError

    if args.episodes < 1 or args.shard_size < 1 or args.image_size < 32:
        print("error: --episodes and --shard-size must be >= 1 and --image-size >= 32", file=sys.stderr)
        return 2
    if not 0.0 <= args.expert_share <= 1.0:
        print("error: --expert-share must be in [0, 1]", file=sys.stderr)
        return 2
    from vla_ros.collection import DEFAULT_NOISE, KIND_WEIGHTS

    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip()) if args.kinds else tuple(KIND_WEIGHTS)
    try:
        learner = _learner(args.dagger, args.expert_share) if args.dagger else None
        summary = collect(args.out, args.episodes, args.seed, args.image_size, args.shard_size,
                          noise=replace(DEFAULT_NOISE, miss_distance=args.missed_grasp),
                          learner=learner, learner_name=args.dagger, kinds=kinds, wrist_camera=args.wrist_camera)
    except (DatasetError, LanguageEncoderError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


def _learner(checkpoint: str, expert_share: float):
    from vla_ros.collection import Learner
    from vla_ros.policies import load_backend

    return Learner(load_backend("builtin", "" if checkpoint == "builtin" else checkpoint), expert_share)
