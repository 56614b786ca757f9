"""A peer side by side: LeRobot's ACT trained on our demonstrations with the builtin policy's budget.

1. converts our demonstration set (vla_ros.dataset format) to a LeRobot dataset,
2. trains LeRobot's ACT on it in LeRobot's own environment for the same wall-clock
   training time as the builtin policy's checkpoint records (metadata train_seconds, plus
   those of the run it was fine-tuned from),
3. evaluates the builtin policy and ACT (through vla_ros's lerobot backend) in the
   same seeded simulator episodes with vla_ros.evaluation.evaluate, and times one
   policy call of each on the same observations,

and writes bench/results/peer_act.json: success per split, inference time per call
and per control step, and the ACT/builtin ratios. The LeRobot steps run with the
Python of an environment that has lerobot (--lerobot-python, default
$VLA_ROS_LEROBOT_PYTHON; setup in docs/BACKENDS.md). Intermediate data (LeRobot
dataset, trained ACT) go to --work-dir, reused when present.

    .venv/bin/python bench/bench_peer_act.py --builtin runs/default/policy.pt
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402

TOOLS = Path(__file__).resolve().parent / "lerobot_tools.py"


def lerobot_step(python: str, *args: str) -> dict:
    """Run one bench/lerobot_tools.py command in the LeRobot environment; its last stdout line is JSON."""
    command = [python, str(TOOLS), *args]
    print("$", " ".join(command), flush=True)
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def lerobot_versions(python: str) -> dict:
    code = "import json, lerobot, torch; print(json.dumps({'lerobot': lerobot.__version__, 'torch': torch.__version__}))"
    return json.loads(subprocess.run([python, "-c", code], stdout=subprocess.PIPE, text=True, check=True).stdout)


def call_latency(policy, calls: int, image_size: int, seed: int) -> dict:
    """Milliseconds per select_action on `calls` observations of seeded scenes (after one warm-up call)."""
    from vla_ros.evaluation import plan_episodes
    from vla_ros.sim.world import SimWorld

    world = SimWorld(image_size=image_size)
    observations = []
    for episode in plan_episodes(calls + 1, seed, "all"):
        world.reset(episode.seed, episode.task)
        observations.append((world.observation(), episode.instruction))
    world.close()
    policy.reset()
    policy.select_action(*observations[0])
    samples = []
    for observation, instruction in observations[1:]:
        started = time.perf_counter()
        policy.select_action(observation, instruction)
        samples.append(time.perf_counter() - started)
    return benchlib.percentiles(samples)


def evaluation_row(report: dict, latency: dict, n_action_steps: int) -> dict:
    steps = sum(e["steps"] for e in report["episodes_detail"])
    return {
        "success_rate": report["success_rate"],
        "successes": report["successes"],
        "episodes": report["episodes"],
        "per_split": {name: {"success_rate": r["success_rate"], "successes": r["successes"], "episodes": r["episodes"]}
                      for name, r in report["per_split"].items()},
        "per_task": {name: r["success_rate"] for name, r in report["per_task"].items()},
        "n_action_steps": n_action_steps,
        "call_ms": latency,
        # Policy time in the evaluation divided by the control steps it drove (chunks amortise calls).
        "policy_ms_per_control_step": round(1e3 * report["timing"]["policy_seconds"] / steps, 3),
        "eval_wall_seconds": report["timing"]["wall_seconds"],
    }


def training_seconds(metadata: dict) -> float | None:
    """A checkpoint's whole training time: its own run plus the run it was fine-tuned from, if any."""
    own = metadata.get("train_seconds")
    parent = (metadata.get("initialised_from") or {}).get("train_seconds") or 0.0
    return own + parent if own else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None


def main() -> int:
    from vla_ros.policies.builtin.policy import SHIPPED_CHECKPOINT

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("runs/data800"), help="our demonstration dataset")
    parser.add_argument("--builtin", type=Path, default=SHIPPED_CHECKPOINT, help="builtin policy checkpoint")
    parser.add_argument("--work-dir", type=Path, default=Path("runs/peer_act"),
                        help="where the LeRobot dataset and the trained ACT go (reused when present)")
    parser.add_argument("--lerobot-python", default=os.environ.get("VLA_ROS_LEROBOT_PYTHON"),
                        help="python of the LeRobot environment (default $VLA_ROS_LEROBOT_PYTHON)")
    parser.add_argument("--budget-minutes", type=float,
                        help="ACT's training time (default: the builtin checkpoint's whole training time)")
    parser.add_argument("--chunk-size", type=int, default=20, help="ACT chunk (20 = 2 s at 10 Hz)")
    parser.add_argument("--n-action-steps", type=int, default=10, help="ACT steps executed per chunk")
    parser.add_argument("--batch-size", type=int, default=8, help="ACT batch size (LeRobot's default 8)")
    parser.add_argument("--episodes", type=int, default=300, help="evaluation episodes (default 300, 100 per split)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=96, help="camera image size (the dataset's: 96)")
    parser.add_argument("--latency-calls", type=int, default=30)
    parser.add_argument("--retrain", action="store_true", help="train ACT again even if --work-dir has one")
    args = parser.parse_args()
    if not args.lerobot_python:
        parser.error("--lerobot-python or VLA_ROS_LEROBOT_PYTHON is needed (docs/BACKENDS.md)")

    from vla_ros.evaluation import evaluate
    from vla_ros.policies import load_policy
    from vla_ros.policies.builtin.policy import BuiltinPolicy

    builtin = BuiltinPolicy.load(args.builtin)
    builtin_seconds = training_seconds(builtin.metadata)
    budget = args.budget_minutes * 60 if args.budget_minutes else builtin_seconds
    if not budget:
        parser.error(f"{args.builtin} records no train_seconds: give --budget-minutes")
    dataset_dir, act_dir = args.work_dir / "lerobot_dataset", args.work_dir / "act"
    converted = args.work_dir / "conversion.json"  # written once the conversion is complete
    if not converted.is_file():
        shutil.rmtree(dataset_dir, ignore_errors=True)  # a partial conversion
        conversion = lerobot_step(args.lerobot_python, "convert", str(args.data), str(dataset_dir))
        converted.write_text(json.dumps(conversion))
    if args.retrain or not (act_dir / "train_info.json").is_file():
        lerobot_step(args.lerobot_python, "train", str(dataset_dir), str(act_dir), "--budget-seconds", str(budget),
                     "--chunk-size", str(args.chunk_size), "--n-action-steps", str(args.n_action_steps),
                     "--batch-size", str(args.batch_size), "--seed", str(args.seed))
    training = json.loads((act_dir / "train_info.json").read_text())

    act_options = {"path": str(act_dir), "python": args.lerobot_python}
    rows = {}
    for name, policy_name, options in (("builtin", str(args.builtin), None), ("act", "lerobot", act_options)):
        print(f"evaluating {name} on {args.episodes} episodes", flush=True)
        report = evaluate(policy_name, args.episodes, seed=args.seed, split="all", image_size=args.image_size,
                          policy_options=options)
        policy = load_policy(policy_name, **(options or {}))
        latency = call_latency(policy, args.latency_calls, args.image_size, args.seed + 1)
        rows[name] = evaluation_row(report, latency, getattr(policy, "n_action_steps", 1))
        if hasattr(policy, "close"):
            policy.close()
    builtin_row, act_row = rows["builtin"], rows["act"]
    results = {
        "data": str(args.data.resolve()),
        "builtin_checkpoint": str(args.builtin.resolve()),
        "budget": {"seconds": round(budget, 1), "source": "--budget-minutes" if args.budget_minutes
                   else "builtin checkpoint metadata: train_seconds of its run and of the run it was fine-tuned "
                   "from (wall clock, includes vision pretraining and periodic evaluations)",
                   "builtin_train_seconds": builtin_seconds, "act_train_seconds": training["train_seconds"],
                   "act_cpu_seconds": training["cpu_seconds"]},
        "act_training": {k: v for k, v in training.items() if k != "loss_history"}
        | {"final_loss": training["loss_history"][-1][2] if training["loss_history"] else None,
           "backbone": "ResNet-18 from scratch (ImageNet weights cannot be fetched here)"},
        "conversion": json.loads(converted.read_text()),
        "lerobot": lerobot_versions(args.lerobot_python),
        "evaluation": {"episodes": args.episodes, "seed": args.seed, "split": "all", "image_size": args.image_size},
        "builtin": builtin_row,
        "act": act_row,
        "ratio_act_to_builtin": {
            "success_rate": ratio(act_row["success_rate"], builtin_row["success_rate"]),
            "per_split": {s: ratio(act_row["per_split"][s]["success_rate"], builtin_row["per_split"][s]["success_rate"])
                          for s in builtin_row["per_split"]},
            "call_ms_p50": ratio(act_row["call_ms"]["p50"], builtin_row["call_ms"]["p50"]),
            "policy_ms_per_control_step": ratio(act_row["policy_ms_per_control_step"],
                                                builtin_row["policy_ms_per_control_step"]),
        },
    }
    benchlib.save("peer_act", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
