"""Task success of policies in the simulator, per split and per task (issue targets: seen >= 95%,
unseen compositions >= 80%, paraphrases >= 85%, from >= 200 seeded episodes per split).

Runs `vla_ros.evaluation.evaluate` in-process, one torch thread (evaluations are not
latency measurements, and one thread keeps them from stalling on a shared CPU). The
same seeded episodes for every policy, so the rows compare.
Usage: bench_policy_success.py [--episodes N] [--policies builtin builtin-int8 NAME=CHECKPOINT ...]
"""
from __future__ import annotations

import argparse

import torch
from benchlib import save

from vla_ros.evaluation import evaluate

SPLITS = ("seen", "unseen", "paraphrase")
TARGETS = {"seen": 0.95, "unseen": 0.80, "paraphrase": 0.85}


def parse_policy(text: str) -> tuple[str, str]:
    """'builtin' -> ('builtin', 'builtin'); 'flow=runs/flow/policy.pt' -> ('flow', 'runs/flow/policy.pt')."""
    name, _, source = text.partition("=")
    return name, source or name


def success_per_split(name: str, source: str, episodes: int, seed: int, image_size: int) -> dict:
    """Evaluate one policy on every split's seeded episodes; one row per split."""
    rows = {}
    for split in SPLITS:
        report = evaluate(source, episodes, seed, split, image_size=image_size)
        rows[split] = {key: report[key] for key in ("episodes", "successes", "success_rate",
                                                    "mean_time_to_success", "per_task")}
        rows[split]["wall_seconds"] = report["timing"]["wall_seconds"]
        print(f"{name} {split}: {report['successes']}/{report['episodes']} ({report['success_rate']:.1%})", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=200, help="episodes per split (default 200)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the episode plan (default 1)")
    parser.add_argument("--image-size", type=int, default=96, help="camera image size (the policy's: 96)")
    parser.add_argument("--policies", nargs="+", default=["builtin", "builtin-int8"],
                        help="registry names or NAME=CHECKPOINT (default: builtin builtin-int8)")
    args = parser.parse_args()
    torch.set_num_threads(1)

    policies = {}
    for name, source in map(parse_policy, args.policies):
        rows = success_per_split(name, source, args.episodes, args.seed, args.image_size)
        policies[name] = {"source": source, "splits": rows,
                          "met": {s: rows[s]["success_rate"] >= TARGETS[s] for s in SPLITS}}
    save("policy_success", {"episodes_per_split": args.episodes, "seed": args.seed, "image_size": args.image_size,
                            "torch_threads": 1, "targets": TARGETS, "policies": policies})


if __name__ == "__main__":
    main()
