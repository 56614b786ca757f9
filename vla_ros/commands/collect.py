"""`vla-ros collect --episodes N --seed S --out DIR`: expert demonstrations from the simulator."""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--episodes", type=int, required=True, help="number of demonstrations")
    parser.add_argument("--seed", type=int, default=0, help="seed of tasks, scenes and noise (default 0)")
    parser.add_argument("--out", required=True, help="dataset directory (resumes when it exists)")
    parser.add_argument("--image-size", type=int, default=128, help="square scene-camera image size (default 128)")
    parser.add_argument("--shard-size", type=int, default=50, help="episodes per shard (default 50)")


def run(args: argparse.Namespace) -> int:
    from vla_ros.collection import collect
    from vla_ros.dataset import DatasetError

    if args.episodes < 1 or args.shard_size < 1 or args.image_size < 32:
        print("error: --episodes and --shard-size must be >= 1 and --image-size >= 32", file=sys.stderr)
        return 2
    try:
        summary = collect(args.out, args.episodes, args.seed, args.image_size, args.shard_size)
    except DatasetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0
