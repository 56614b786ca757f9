"""The built-in policy's action heads side by side: continuous chunk, 256-bin tokens, flow matching.

Each head is trained the same way on one perception: the shipped checkpoint's vision
encoder and keypoints (pretrained to locate objects, frozen), everything else fresh, the
`localised` config, the same demonstrations, steps and seed:

    vla-ros train --data DATA --config localised --vision-from builtin --head HEAD \\
        --steps STEPS --balance-tasks --out WORK_DIR/HEAD.pt

Checkpoints already in --work-dir are reused (--retrain trains again). Then every head
runs the same seeded episodes per split. The forward-pass time of each head is
bench_policy_latency's; the shipped checkpoint's success is bench_policy_success's (it
had more training than these, so compare the heads with one another).
Usage: bench_policy_heads.py [--episodes N] [--steps N] [--data DIR] [--work-dir DIR]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch
from bench_policy_success import success_per_split
from benchlib import save

from vla_ros.policies.builtin.config import HEADS
from vla_ros.policies.builtin.policy import BuiltinPolicy


def train_head(head: str, data: Path, steps: int, out: Path) -> None:
    command = [sys.executable, "-m", "vla_ros.cli", "train", "--data", str(data), "--config", "localised",
               "--vision-from", "builtin", "--head", head, "--steps", str(steps), "--balance-tasks",
               "--out", str(out)]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("runs/data800"), help="demonstration dataset")
    parser.add_argument("--work-dir", type=Path, default=Path("runs/heads"),
                        help="where the head checkpoints go (reused when present)")
    parser.add_argument("--steps", type=int, default=4000, help="training steps per head")
    parser.add_argument("--episodes", type=int, default=50,
                        help="evaluation episodes per split (50: the three heads fit in a make bench run)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the episode plan (bench_policy_success's)")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--retrain", action="store_true", help="train the heads again even if checkpoints exist")
    args = parser.parse_args()

    torch.set_num_threads(1)  # as bench_policy_success: evaluations, not latency measurements
    heads = {}
    for head in HEADS:
        checkpoint = args.work_dir / f"{head}.pt"
        if args.retrain or not checkpoint.is_file():
            if not args.data.is_dir():
                parser.error(f"no dataset at {args.data}: vla-ros collect --episodes 800 --seed 0 "
                             f"--image-size 96 --out {args.data}")
            train_head(head, args.data, args.steps, checkpoint)
        policy = BuiltinPolicy.load(checkpoint)
        heads[head] = {
            "checkpoint": str(checkpoint.resolve()),
            "steps": policy.config.steps,
            "train_seconds": policy.metadata.get("train_seconds"),
            "parameters": sum(p.numel() for p in policy.model.parameters()),
            "splits": success_per_split(head, str(checkpoint), args.episodes, args.seed, args.image_size),
        }
    save("policy_heads", {"episodes_per_split": args.episodes, "seed": args.seed, "image_size": args.image_size,
                          "recipe": "localised config, vision from the shipped checkpoint (frozen), rest fresh, "
                          "balanced task kinds", "heads": heads})
    return 0


if __name__ == "__main__":
    sys.exit(main())
