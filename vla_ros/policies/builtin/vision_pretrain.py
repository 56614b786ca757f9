"""Pretraining the vision encoder to find every object on the table, before behaviour cloning.

Behaviour cloning alone did not make the from-scratch CNN locate objects (docs/POLICY.md:
the right motion 17 cm beside the cube; a grounding loss on ~1,300 episode scenes did not
generalise). Rendering a scene costs milliseconds, so here the encoder learns on thousands
of fresh simulator layouts to regress the (x, y) of every object present, through the
same spatial-softmax keypoints the policy reads: on the table, or from the tool centre
point with the arm posed over the objects (config `vision_pretrain_frame`). Behaviour
cloning then starts from these weights (and with `freeze_vision` keeps the convolutions
as they are).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from vla_ros import arm, kinematics
from vla_ros.policies.builtin.config import VLAConfig
from vla_ros.policies.builtin.model import NamedPositions, VLAModel
from vla_ros.policies.builtin.policy import image_tensor
from vla_ros.vocabulary import OBJECTS, PLATES

SCENE_OBJECTS: tuple[str, ...] = OBJECTS + PLATES
HELD_OUT_FRACTION = 0.1
# Scene seeds far from the episode seeds of `vla-ros collect` and `vla-ros eval`.
SCENE_SEED_OFFSET = 10_000_000


# With frame "tcp": the share of scenes with the arm posed over the objects (the rest keep
# the episode start pose), and where the hand goes: near a random object, at grasp to travel height.
POSED_FRACTION = 0.8
POSE_SPREAD = 0.06  # m, standard deviation of the hand's (x, y) around the object
POSE_HEIGHT = (0.03, 0.30)  # m above the table
POSE_YAW = 0.8  # rad, largest hand turn from home
POSE_IK_ITERATIONS = 40


@dataclass
class Scenes:
    images: np.ndarray  # (N, H, W, 3) uint8
    positions: np.ndarray  # (N, len(SCENE_OBJECTS), 2) x, y (m) in the table frame or from the TCP
    present: np.ndarray  # (N, len(SCENE_OBJECTS)) 1 where the object is on the table


def render_scenes(count: int, seed: int, image_size: int, progress: bool = False, frame: str = "table",
                  posed: bool | None = None) -> Scenes:
    """`count` random layouts (objects, lighting, camera jitter, arm start pose) from seed.
    With frame "tcp" positions are measured from the tool centre point. With `posed` (default:
    frame "tcp") most scenes have the arm posed over the objects, as in episodes."""
    posed = frame == "tcp" if posed is None else posed
    from vla_ros.sim.expert import hand_down
    from vla_ros.sim.world import SimWorld

    images = np.zeros((count, image_size, image_size, 3), np.uint8)
    positions = np.zeros((count, len(SCENE_OBJECTS), 2), np.float32)
    present = np.zeros((count, len(SCENE_OBJECTS)), np.float32)
    rng = np.random.default_rng(seed)
    world = SimWorld(image_size=image_size)
    try:
        for i in tqdm(range(count), desc="render scenes", disable=not progress, unit="scene"):
            world.reset(SCENE_SEED_OFFSET + seed * count + i)
            poses = world.object_poses()
            if posed and rng.random() < POSED_FRACTION:
                anchor = poses[world.present[rng.integers(len(world.present))]][0]
                goal = np.array([*(anchor[:2] + rng.normal(0.0, POSE_SPREAD, 2)), rng.uniform(*POSE_HEIGHT)])
                rotation = hand_down(rng.uniform(-POSE_YAW, POSE_YAW))
                joints = world.joint_positions()
                joints[:7] = kinematics.solve_ik(joints[:7], goal, rotation, iterations=POSE_IK_ITERATIONS)
                joints[7] = rng.uniform(0.0, arm.HOME_POSITIONS[arm.GRIPPER_JOINT])
                world.pose_arm(joints)
            origin = world.tcp_position()[:2] if frame == "tcp" else np.zeros(2)
            images[i] = world.render()
            for name, (position, _) in poses.items():
                slot = SCENE_OBJECTS.index(name)
                positions[i, slot], present[i, slot] = position[:2] - origin, 1.0
    finally:
        world.close()
    return Scenes(images, positions, present)


class ObjectLocator(nn.Module):
    """The policy's vision encoder and keypoints, plus a training-only head: keypoints -> every object's (x, y)."""

    def __init__(self, model: VLAModel, mean: np.ndarray, hidden: int = 256):
        super().__init__()
        self.model = model
        self.head = nn.Sequential(nn.Linear(2 * model.config.keypoints, hidden), nn.GELU(),
                                  nn.Linear(hidden, 2 * len(SCENE_OBJECTS)))
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        # No instruction modulates the features here (FiLM, when configured, starts as the identity).
        return self.head(self.model.plain_keypoints(image)).view(-1, len(SCENE_OBJECTS), 2) * 0.2 + self.mean  # 0.2 m: the table's scale


def localisation_error(locator: ObjectLocator, scenes: Scenes, batch: int = 256) -> float:
    """Mean distance (m) between predicted and true positions of the objects present."""
    locator.eval()
    distances = []
    with torch.no_grad():
        for start in range(0, len(scenes.images), batch):
            predicted = locator(image_tensor(scenes.images[start : start + batch])).numpy()
            distance = np.linalg.norm(predicted - scenes.positions[start : start + batch], axis=-1)
            distances.append(distance[scenes.present[start : start + batch] > 0])
    return float(np.concatenate(distances).mean())


def pretrain_vision(model: VLAModel, config: VLAConfig, progress: bool = True) -> dict:
    """Train `model.vision` and `model.keypoints` in place to locate objects; returns what was
    measured: held-out localisation error (m) before and after, and against always answering
    the mean position."""
    started = time.monotonic()
    scenes = render_scenes(config.vision_pretrain_scenes, config.seed, config.image_size, progress,
                           config.vision_pretrain_frame)
    held_out = max(1, int(len(scenes.images) * HELD_OUT_FRACTION))
    train = Scenes(scenes.images[held_out:], scenes.positions[held_out:], scenes.present[held_out:])
    test = Scenes(scenes.images[:held_out], scenes.positions[:held_out], scenes.present[:held_out])
    mean = (train.positions * train.present[..., None]).sum(axis=(0, 1)) / train.present.sum()
    chance = float(np.linalg.norm(test.positions - mean, axis=-1)[test.present > 0].mean())

    torch.manual_seed(config.seed)
    generator = np.random.default_rng(config.seed)
    locator = ObjectLocator(model, mean)
    trained = [*model.vision.parameters(), *model.keypoints.parameters(), *locator.head.parameters()]
    optimizer = torch.optim.AdamW(trained, lr=1e-3, weight_decay=config.weight_decay)
    before = localisation_error(locator, test)
    locator.train()
    bar = tqdm(range(config.vision_pretrain_steps), desc="pretrain vision", disable=not progress, unit="step")
    with _trainable(trained):
        for step in bar:
            picks = generator.integers(0, len(train.images), config.batch_size)
            present = torch.from_numpy(train.present[picks])
            error = (locator(image_tensor(train.images[picks])) - torch.from_numpy(train.positions[picks])).abs().sum(-1)
            loss = (error * present).sum() / present.sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step % 100 == 0:
                bar.set_postfix(l1_cm=f"{100 * loss.item():.1f}")
    after = localisation_error(locator, test)
    return {"scenes": len(scenes.images), "held_out_scenes": held_out, "steps": config.vision_pretrain_steps,
            "error_before_m": before, "error_m": after, "mean_position_error_m": chance,
            "seconds": round(time.monotonic() - started, 1)}


def pretrain_named_positions(model: VLAModel, config: VLAConfig, language, progress: bool = True) -> dict:
    """Train `model.named_positions` in place: on freshly rendered scenes, the arm posed over the
    objects as in episodes, every object present, by its name, -> its table (x, y), read from
    the vision as it is (frozen). Returns what was measured: held-out error (m) before and
    after, against always answering the mean position, and seconds."""
    started = time.monotonic()
    scenes = render_scenes(config.named_pretrain_scenes, config.seed + 1, config.image_size, progress, posed=True)
    model.eval()
    with torch.no_grad():
        keypoints = torch.cat([model.plain_keypoints(image_tensor(scenes.images[start : start + 256]))
                               for start in range(0, len(scenes.images), 256)])
    # Each object's name embedded as NamedPositions reads an instruction's phrase.
    names = torch.stack([NamedPositions.phrase_embedding(*map(torch.from_numpy, language.encode(name)))
                         for name in SCENE_OBJECTS])
    scene, slot = np.nonzero(scenes.present)
    positions = torch.from_numpy(scenes.positions[scene, slot])
    scene, slot = torch.from_numpy(scene), torch.from_numpy(slot)
    held_out_scenes = max(1, int(len(scenes.images) * HELD_OUT_FRACTION))
    held_out = scene < held_out_scenes
    train_pairs = torch.nonzero(~held_out).flatten()
    located = model.named_positions
    located.mean.copy_(positions[train_pairs].mean(dim=0))

    def error(pairs: torch.Tensor) -> float:
        with torch.no_grad():
            predicted = located.locate(keypoints[scene[pairs]], names[slot[pairs]]) * located.SCALE + located.mean
        return float((predicted - positions[pairs]).norm(dim=1).mean())

    test_pairs = torch.nonzero(held_out).flatten()
    chance = float((positions[test_pairs] - located.mean).norm(dim=1).mean())
    before = error(test_pairs)
    torch.manual_seed(config.seed)
    optimizer = torch.optim.AdamW(located.parameters(), lr=1e-3, weight_decay=config.weight_decay)
    steps = tqdm(range(config.named_pretrain_steps), desc="pretrain named positions", disable=not progress, unit="step")
    with _trainable(list(located.parameters())):
        for _ in steps:
            pairs = train_pairs[torch.randint(0, len(train_pairs), (256,))]
            predicted = located.locate(keypoints[scene[pairs]], names[slot[pairs]])
            loss = (predicted - (positions[pairs] - located.mean) / located.SCALE).abs().sum(dim=1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return {"scenes": len(scenes.images), "held_out_scenes": held_out_scenes,
            "steps": config.named_pretrain_steps, "error_before_m": before, "error_m": error(test_pairs),
            "mean_position_error_m": chance, "seconds": round(time.monotonic() - started, 1)}


@contextmanager
def _trainable(parameters: list[torch.nn.Parameter]):
    """Train `parameters` inside the block even when the config freezes them; restore after."""
    flags = [parameter.requires_grad for parameter in parameters]
    for parameter in parameters:
        parameter.requires_grad_(True)
    try:
        yield
    finally:
        for parameter, flag in zip(parameters, flags):
            parameter.requires_grad_(flag)
