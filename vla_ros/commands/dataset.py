"""`vla-ros dataset from-mcap FILE.mcap ... --out DIR` and `vla-ros dataset info DIR`."""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vla_ros.recording_dataset import ACTION_TOPICS, IMAGE_TOPICS, WRIST_IMAGE_TOPICS, ConversionOptions

    defaults = ConversionOptions()
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    convert = verbs.add_parser("from-mcap", help="convert recordings (vla-ros record) into training episodes",
                               description="Append the episodes of MCAP recordings to a dataset "
                                           "(the format of vla-ros collect; created when missing).")
    convert.add_argument("recordings", nargs="+", metavar="FILE.mcap")
    convert.add_argument("--out", required=True, help="dataset directory")
    convert.add_argument("--image-size", type=int, default=defaults.image_size,
                         help=f"square policy frame size in pixels (default {defaults.image_size})")
    convert.add_argument("--resize-mode", default=defaults.resize_mode,
                         help=f"how images become square: crop, stretch or pad, as camera_node's resize_mode "
                              f"(default {defaults.resize_mode})")
    convert.add_argument("--image-topic", default="",
                         help=f"image topic (default: the first recorded of {', '.join(IMAGE_TOPICS)})")
    convert.add_argument("--wrist-camera", action="store_true",
                         help="also take the hand camera's frames (observation.wrist_image), for policies that use it")
    convert.add_argument("--wrist-image-topic", default="",
                         help=f"with --wrist-camera: its topic (default: the first recorded of "
                              f"{', '.join(WRIST_IMAGE_TOPICS)})")
    convert.add_argument("--action-topic", default="",
                         help=f"command topic the actions come from (default: the first recorded of "
                              f"{', '.join(ACTION_TOPICS)})")
    convert.add_argument("--action-delay", type=float, default=None,
                         help="seconds after a tick at which the command is read (default: 0 for "
                              "/vla/joint_targets, one control period for /joint_commands)")
    convert.add_argument("--max-gap", type=float, default=defaults.max_gap,
                         help=f"seconds of missing image, joint state or command that end an episode "
                              f"(default {defaults.max_gap})")
    convert.add_argument("--min-frames", type=int, default=defaults.min_frames,
                         help=f"drop episodes shorter than this (default {defaults.min_frames})")
    info = verbs.add_parser("info", help="summarise a dataset")
    info.add_argument("dir", help="dataset directory")


def run(args: argparse.Namespace) -> int:
    from vla_ros.dataset import DatasetError

    try:
        return _from_mcap(args) if args.verb == "from-mcap" else _info(args)
    except DatasetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _from_mcap(args: argparse.Namespace) -> int:
    from vla_ros.camera.preprocess import RESIZE_MODES
    from vla_ros.recording import RecordingError
    from vla_ros.recording_dataset import ConversionOptions, convert

    if args.image_size < 16 or args.max_gap <= 0 or args.min_frames < 1 or args.resize_mode not in RESIZE_MODES:
        print(f"error: --image-size must be >= 16, --max-gap > 0, --min-frames >= 1 and --resize-mode one of "
              f"{', '.join(RESIZE_MODES)}", file=sys.stderr)
        return 2
    options = ConversionOptions(image_size=args.image_size, resize_mode=args.resize_mode, max_gap=args.max_gap,
                                min_frames=args.min_frames, image_topic=args.image_topic,
                                wrist_camera=args.wrist_camera, wrist_image_topic=args.wrist_image_topic,
                                action_topic=args.action_topic, action_delay=args.action_delay)
    try:
        summary = convert(args.recordings, args.out, options)
    except RecordingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


def _info(args: argparse.Namespace) -> int:
    from vla_ros.dataset import EpisodeDataset

    data = EpisodeDataset(args.dir)  # checks that the shards hold what the episode list says
    episodes, info = data.episodes, data.info
    fps = float(info["fps"])
    kinds = Counter(e["task"].get("task", "unknown") for e in episodes)
    successes = sum(e["success"] for e in episodes)
    print(f"{data.root}: format {info['format_version']}, {fps:g} fps, images {'x'.join(map(str, info['image_size']))}")
    print(f"  episodes      {len(episodes)} ({successes} successful, "
          f"{successes / max(1, len(episodes)):.0%}), in {len({e['shard'] for e in episodes})} shard(s)")
    print(f"  frames        {data.num_frames} ({data.num_frames / fps / 60:.1f} min)")
    if episodes:
        lengths = [e["length"] for e in episodes]
        print(f"  length        {min(lengths)}-{max(lengths)} frames, mean {sum(lengths) / len(lengths):.1f}")
    print(f"  instructions  {len({e['language_instruction'] for e in episodes})} distinct")
    print(f"  tasks         {', '.join(f'{kind} {count}' for kind, count in kinds.most_common())}")
    return 0
