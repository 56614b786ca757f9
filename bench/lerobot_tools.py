"""LeRobot-side steps of the ACT peer benchmark, run with LeRobot's own Python (not vla_ros's venv).

    <lerobot python> bench/lerobot_tools.py convert DATA OUT      our demonstrations -> a LeRobot dataset
    <lerobot python> bench/lerobot_tools.py train DATASET OUT --budget-seconds S   ACT on it, for S seconds
    <lerobot python> bench/lerobot_tools.py random-policy OUT     a random ACT or Diffusion policy (for tests)

bench/bench_peer_act.py runs these; test/test_lerobot_backend.py uses random-policy.
Only numpy-level vla_ros modules (vla_ros.dataset, vla_ros.arm) are imported here,
from this checkout, so the lerobot environment needs no vla_ros install.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vla_ros import arm  # noqa: E402
from vla_ros.dataset import EpisodeDataset  # noqa: E402

IMAGE_KEY = "observation.images.scene"
STATE_KEY = "observation.state"


def lerobot_features(image_size: int) -> dict:
    names = list(arm.COMMANDED_JOINTS)
    return {
        IMAGE_KEY: {"dtype": "image", "shape": (image_size, image_size, 3), "names": ["height", "width", "channels"]},
        STATE_KEY: {"dtype": "float32", "shape": (len(names),), "names": names},
        "action": {"dtype": "float32", "shape": (len(names),), "names": names},
    }


def convert(data: Path, out: Path, episodes: int | None) -> dict:
    """Every episode of our dataset as a LeRobot dataset (PNG frames, no video) at `out`."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    source = EpisodeDataset(data)
    size = source.info["image_size"][0]
    target = LeRobotDataset.create(repo_id=f"vla_ros/{data.name}", fps=int(source.info["fps"]),
                                   features=lerobot_features(size), root=out, robot_type="panda",
                                   use_videos=False, image_writer_threads=2)
    started = time.monotonic()
    ranges = source.episode_ranges()[:episodes]
    for meta, (start, end) in zip(source.episodes, ranges):
        images = source.read("observation.image", start, end)
        states = source.read("observation.state", start, end)
        actions = source.read("action", start, end)
        for image, state, action in zip(images, states, actions):
            target.add_frame({IMAGE_KEY: image, STATE_KEY: state, "action": action,
                              "task": meta["language_instruction"]})
        target.save_episode()
    target.finalize()
    return {"episodes": len(ranges), "frames": int(sum(e - s for s, e in ranges)),
            "seconds": round(time.monotonic() - started, 1)}


def act_config(features: dict, chunk_size: int, n_action_steps: int, **overrides):
    from lerobot.policies.act.configuration_act import ACTConfig

    # ImageNet backbone weights cannot be fetched offline: the ResNet-18 starts from scratch.
    return ACTConfig(input_features={k: v for k, v in features.items() if k != "action"},
                     output_features={"action": features["action"]}, device="cpu",
                     pretrained_backbone_weights=None, chunk_size=chunk_size, n_action_steps=n_action_steps,
                     push_to_hub=False, **overrides)


def train(dataset_root: Path, out: Path, budget_seconds: float, chunk_size: int, n_action_steps: int,
          batch_size: int, seed: int) -> dict:
    """ACT with LeRobot's own model, optimiser preset, normalisation and chunk loading, for a wall-time budget."""
    from lerobot.datasets.factory import resolve_delta_timestamps
    from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata
    from lerobot.datasets.utils import dataset_to_policy_features
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    torch.manual_seed(seed)
    meta = LeRobotDatasetMetadata(f"vla_ros/{dataset_root.name}", root=dataset_root)
    config = act_config(dataset_to_policy_features(meta.features), chunk_size, n_action_steps)
    dataset = LeRobotDataset(meta.repo_id, root=dataset_root, delta_timestamps=resolve_delta_timestamps(config, meta))
    policy = ACTPolicy(config)
    policy.train()
    preprocessor, postprocessor = make_pre_post_processors(config, dataset_stats=dataset.meta.stats)
    optimizer_config = config.get_optimizer_preset()
    optimizer = optimizer_config.build(policy.get_optim_params())
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(seed))
    started, cpu_started = time.monotonic(), time.process_time()
    step, losses, history = 0, [], []
    while time.monotonic() - started < budget_seconds:
        for batch in loader:
            loss, _ = policy.forward(preprocessor(batch))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), optimizer_config.grad_clip_norm)
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            losses.append(loss.item())
            if step % 50 == 0:
                history.append([step, round(time.monotonic() - started, 1), float(np.mean(losses))])
                print(f"step {step} {history[-1][1]} s loss {history[-1][2]:.4f}", flush=True)
                losses = []
            if time.monotonic() - started >= budget_seconds:
                break
    seconds, cpu_seconds = time.monotonic() - started, time.process_time() - cpu_started
    policy.eval()
    for part in (policy, preprocessor, postprocessor):
        part.save_pretrained(out)
    summary = {"steps": step, "train_seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1),
               "budget_seconds": budget_seconds, "batch_size": batch_size, "chunk_size": chunk_size,
               "n_action_steps": n_action_steps, "frames": dataset.num_frames, "episodes": dataset.num_episodes,
               "parameters": sum(p.numel() for p in policy.parameters()), "torch_threads": torch.get_num_threads(),
               "optimizer": {"lr": optimizer_config.lr, "weight_decay": optimizer_config.weight_decay,
                             "backbone_lr": config.optimizer_lr_backbone},
               "loss_history": history}
    (out / "train_info.json").write_text(json.dumps(summary, indent=2))
    return summary


def random_policy(out: Path, kind: str, image_size: int, chunk_size: int, n_action_steps: int, seed: int) -> dict:
    """A small randomly initialised ACT or Diffusion policy with made-up normalisation statistics,
    saved like a trained one."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors

    torch.manual_seed(seed)
    dim = len(arm.COMMANDED_JOINTS)
    features = {IMAGE_KEY: PolicyFeature(FeatureType.VISUAL, (3, image_size, image_size)),
                STATE_KEY: PolicyFeature(FeatureType.STATE, (dim,)),
                "action": PolicyFeature(FeatureType.ACTION, (dim,))}
    if kind == "act":
        config = act_config(features, chunk_size, n_action_steps, dim_model=64, n_heads=4, dim_feedforward=128,
                            n_encoder_layers=1, n_vae_encoder_layers=1)
    else:
        from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig

        config = DiffusionConfig(input_features={k: v for k, v in features.items() if k != "action"},
                                 output_features={"action": features["action"]}, device="cpu", push_to_hub=False,
                                 horizon=chunk_size, n_action_steps=n_action_steps,
                                 drop_n_last_frames=chunk_size - n_action_steps - 1, down_dims=(32, 64),
                                 diffusion_step_embed_dim=32, spatial_softmax_num_keypoints=8, num_inference_steps=4)
    home = torch.tensor(arm.home_vector(), dtype=torch.float32)
    spread = {STATE_KEY: 0.5, "action": 0.1}
    stats = {key: {"mean": home, "std": torch.full((dim,), s), "min": home - 2 * s, "max": home + 2 * s}
             for key, s in spread.items()}
    stats[IMAGE_KEY] = {"mean": torch.full((3, 1, 1), 0.5), "std": torch.full((3, 1, 1), 0.25)}
    policy = get_policy_class(kind)(config)
    preprocessor, postprocessor = make_pre_post_processors(config, dataset_stats=stats)
    for part in (policy, preprocessor, postprocessor):
        part.save_pretrained(out)
    return {"path": str(out), "parameters": sum(p.numel() for p in policy.parameters())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("convert")
    p.add_argument("data", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--episodes", type=int, help="only the first N episodes")
    p = commands.add_parser("train")
    p.add_argument("dataset", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--budget-seconds", type=float, required=True)
    p.add_argument("--chunk-size", type=int, default=20)
    p.add_argument("--n-action-steps", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p = commands.add_parser("random-policy")
    p.add_argument("out", type=Path)
    p.add_argument("--type", choices=("act", "diffusion"), default="act")
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--chunk-size", type=int, default=10)
    p.add_argument("--n-action-steps", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.command == "convert":
        result = convert(args.data, args.out, args.episodes)
    elif args.command == "train":
        result = train(args.dataset, args.out, args.budget_seconds, args.chunk_size, args.n_action_steps,
                       args.batch_size, args.seed)
    else:
        result = random_policy(args.out, args.type, args.image_size, args.chunk_size, args.n_action_steps, args.seed)
    print(json.dumps({k: v for k, v in result.items() if k != "loss_history"}))


if __name__ == "__main__":
    main()
