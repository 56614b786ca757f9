"""`vla-ros train --data DIR [DIR ...] --config NAME --out CKPT`: behaviour cloning of the built-in policy on the CPU."""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from vla_ros.policies.builtin.config import FRAMES, HEADS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, nargs="+", metavar="DIR",
                        help="dataset directories written by `vla-ros collect` (e.g. demonstrations and "
                        "DAgger rollouts), trained on together")
    parser.add_argument("--config", default="default", help="named policy config (default, tokens, flow, "
                        "cross_attention, concat, grounded, localised, tcp, tcp_relative, tcp_wrist, tcp_phrases (shipped), "
                        "tcp_named, tcp_named_hand, tiny; docs/POLICY.md)")
    parser.add_argument("--out", required=True, help="checkpoint file to write, e.g. runs/default/policy.pt")
    parser.add_argument("--steps", type=int, help="training steps (default: the config's)")
    parser.add_argument("--seed", type=int, help="training seed (default: the config's)")
    parser.add_argument("--resume", action="store_true", help="continue from the training state beside --out")
    parser.add_argument("--init", metavar="CHECKPOINT",
                        help="fine-tune: start from this checkpoint's weights and normalisation ('builtin' = the "
                        "shipped one); its config is used, with --steps/--seed/--head/--learning-rate/--grounding-weight/"
                        "--balance-tasks/--drop-retreats/--named-positions/--named-frame applied (another --head "
                        "starts fresh on its trunk)")
    parser.add_argument("--vision-from", metavar="CHECKPOINT",
                        help="take only the vision encoder and keypoints from this checkpoint ('builtin' = the "
                        "shipped one), skip vision pretraining, train the rest of --config afresh (compares heads "
                        "or fusions on one perception)")
    parser.add_argument("--head", choices=HEADS, help="action head (default: the config's or --init's; "
                        "docs/POLICY.md)")
    parser.add_argument("--learning-rate", type=float, help="peak learning rate (default: the config's)")
    parser.add_argument("--grounding-weight", type=float, metavar="W",
                        help="weight of the auxiliary loss on where the named objects are (0: off; default: "
                        "the config's; docs/POLICY.md)")
    parser.add_argument("--named-positions", action="store_true",
                        help="give the policy where the instruction's object and target are on the table (needs a "
                        "phrases config; default: the config's; docs/POLICY.md); their locator is trained on rendered "
                        "scenes first, and an --init checkpoint without them starts them at zero weight in its trunk")
    parser.add_argument("--named-frame", choices=FRAMES,
                        help="where the policy gets the named positions from: the table, or the tool centre point "
                        "(offsets from the hand; default: the config's; docs/POLICY.md)")
    parser.add_argument("--balance-tasks", action="store_true",
                        help="draw every task kind equally often (default: the config's; docs/POLICY.md)")
    parser.add_argument("--drop-retreats", action="store_true",
                        help="leave out the frames a successful place or stack recorded after its success, where "
                        "the expert lifts its open hand away (default: the config's; docs/POLICY.md)")
    parser.add_argument("--train-vision", action="store_true",
                        help="also train the vision convolutions when the config freezes them (e.g. fine-tuning "
                        "a frozen-vision checkpoint end to end; docs/POLICY.md)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default 2)")
    parser.add_argument("--eval-every", type=int, default=0, metavar="STEPS",
                        help="measure in-simulator success every STEPS steps (default 0: only at the end, "
                        "and only with --eval-episodes)")
    parser.add_argument("--eval-episodes", type=int, default=0, metavar="N",
                        help="seeded simulator episodes per success measurement (default 0: none)")


def run(args: argparse.Namespace) -> int:
    import torch

    from vla_ros.dataset import DatasetError
    from vla_ros.policies.builtin.config import named_config
    from vla_ros.policies.builtin.language import LanguageEncoderError
    from vla_ros.policies.builtin.train import train

    try:
        if args.init and args.vision_from:
            raise ValueError("--init fine-tunes a whole checkpoint: --vision-from does not apply")
        init = _load_policy(args.init) if args.init else None
        vision_from = _load_policy(args.vision_from) if args.vision_from else None
        config = init.config if init is not None else named_config(args.config)
        overrides = {k: v for k, v in (("steps", args.steps), ("seed", args.seed), ("head", args.head),
                                       ("learning_rate", args.learning_rate),
                                       ("grounding_weight", args.grounding_weight),
                                       ("balance_tasks", args.balance_tasks or None),
                                       ("drop_retreats", args.drop_retreats or None),
                                       ("named_positions", args.named_positions or None),
                                       ("named_frame", args.named_frame),
                                       ("freeze_vision", False if args.train_vision else None)) if v is not None}
        config = replace(config, **overrides)
    except (ValueError, LanguageEncoderError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.eval_every < 0 or args.eval_episodes < 0:
        print("error: --eval-every and --eval-episodes must be >= 0", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    evaluate = sim_success(args.eval_episodes, config.image_size) if args.eval_episodes else None
    try:
        policy = train(args.data, config, args.out, resume=args.resume, init=init, vision_from=vision_from,
                       evaluate=evaluate, eval_every=args.eval_every)
    except (DatasetError, LanguageEncoderError, MemoryError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"saved {args.out} after {policy.metadata['train_seconds']} s")
    return 0


def _load_policy(checkpoint: str):
    from vla_ros.policies.builtin.policy import SHIPPED_CHECKPOINT, BuiltinPolicy

    return BuiltinPolicy.load(SHIPPED_CHECKPOINT if checkpoint == "builtin" else checkpoint)


def sim_success(episodes: int, image_size: int, seed: int = 10_000):
    """A callable giving a policy's success rate on `episodes` fixed simulator episodes.

    The seed is far from the collection seeds so the episodes are not training scenes;
    the split is "all" so the curve follows seen and unseen compositions alike.
    """
    from vla_ros.evaluation import Evaluator, plan_episodes
    from vla_ros.sim.world import SimWorld

    planned = plan_episodes(episodes, seed, "all")
    world = SimWorld(image_size=image_size)

    def success_rate(policy) -> float:
        evaluator = Evaluator(world, policy)
        return sum(evaluator.run_episode(episode).success for episode in planned) / len(planned)

    return success_rate
