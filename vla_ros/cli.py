"""`vla-ros`: the user's door to the package.

Each subcommand lives in vla_ros/commands/<name>.py with `add_arguments(parser)`
and `run(args) -> int`. Command modules import heavy dependencies (rclpy, torch,
MuJoCo) inside run(), so building the parser stays cheap. Flags, once released,
stay stable.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). Keep sorted by the order a user meets them.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("vla_ros.commands.demo", "bring the graph up against the simulated arm, give instructions, show the outcome"),
    "up": ("vla_ros.commands.up", "bring the whole graph up (simulator, camera, intake, policy, safety filter)"),
    "topic": ("vla_ros.commands.topic", "publish or echo a topic as JSON (a small `ros2 topic` for the pip path)"),
    "say": ("vla_ros.commands.say", "give an instruction by text, WAV file or microphone; print what was understood"),
    "eval": ("vla_ros.commands.eval", "score a policy on seeded simulator episodes, in-process"),
    "collect": ("vla_ros.commands.collect", "record expert demonstrations in the simulator as a dataset"),
    "train": ("vla_ros.commands.train", "train the built-in VLA policy on a demonstration dataset (CPU)"),
    "safety": ("vla_ros.commands.safety", "trigger or reset the e-stop, or print the safety filter's status"),
    "urdf": ("vla_ros.commands.urdf", "print the arm's URDF, generated from vla_ros/arm.py"),
    "record": ("vla_ros.commands.record", "record the pipeline's topics to an MCAP file (Foxglove, ros2 bag)"),
    "dataset": ("vla_ros.commands.dataset", "convert MCAP recordings into a training dataset; summarise a dataset"),
    "bench": ("vla_ros.commands.bench", "run the benchmarks one after another and render docs/BENCHMARKS.md"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vla-ros", description="Tell a 7-DoF arm what to do, safely.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(_module=module_name)
        importlib.import_module(module_name).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 with usage on unknown commands or bad arguments
    return importlib.import_module(args._module).run(args)


if __name__ == "__main__":
    sys.exit(main())
