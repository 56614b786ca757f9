"""`vla-ros urdf`: print (or write) the arm's URDF, generated from vla_ros/arm.py.

Regenerate the checked-in copy with `vla-ros urdf --out urdf/vla_arm.urdf`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, help="write to this file instead of standard output")
    parser.add_argument("--ros2-control", default="", metavar="PLUGIN",
                        help="add a <ros2_control> block: 'gazebo' (gz_ros2_control) or a hardware plugin, "
                             "e.g. mock_components/GenericSystem")
    parser.add_argument("--controllers", default="",
                        help="with --ros2-control gazebo: the controllers YAML the Gazebo plugin loads")


def run(args: argparse.Namespace) -> int:
    from vla_ros import description

    try:
        text = description.urdf(args.ros2_control, args.controllers)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0
