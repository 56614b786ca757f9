"""`vla-ros train --data DIR --config NAME --out CKPT`: behaviour cloning of the built-in policy on the CPU."""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="dataset directory written by `vla-ros collect`")
    parser.add_argument("--config", default="default", help="named policy config (default, tokens, flow, "
                        "cross_attention, concat, tiny)")
    parser.add_argument("--out", required=True, help="checkpoint file to write, e.g. runs/default/policy.pt")
    parser.add_argument("--steps", type=int, help="training steps (default: the config's)")
    parser.add_argument("--seed", type=int, help="training seed (default: the config's)")
    parser.add_argument("--resume", action="store_true", help="continue from the training state beside --out")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default 2)")


def run(args: argparse.Namespace) -> int:
    import torch

    from vla_ros.dataset import DatasetError
    from vla_ros.policies.builtin.config import named_config
    from vla_ros.policies.builtin.language import LanguageEncoderError
    from vla_ros.policies.builtin.train import train

    try:
        config = named_config(args.config)
        overrides = {k: v for k, v in (("steps", args.steps), ("seed", args.seed)) if v is not None}
        config = replace(config, **overrides)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    try:
        policy = train(args.data, config, args.out, resume=args.resume)
    except (DatasetError, LanguageEncoderError, MemoryError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"saved {args.out} after {policy.metadata['train_seconds']} s")
    return 0
