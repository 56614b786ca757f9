"""Where the objects an instruction names were: the auxiliary target that teaches the policy to find them.

Behaviour cloning alone let the policy copy the expert's motion without locating the
named object (docs/POLICY.md: right motion, 17 cm beside the cube). During training,
a small head reads the language-conditioned keypoints and predicts the table (x, y) of
the task's object and of its target (plate or object), from the episode's seed: the
simulator lays out the same scene again. Only training uses it; inference ignores it.
"""
from __future__ import annotations

import numpy as np

# Per frame: object x, y, target x, y (m, world frame); the mask says which exist.
GROUNDING_DIM = 4
# Fingers (m) below this have started to close: a lifted object is no longer where it started.
FINGERS_CLOSING = 0.035


def episode_grounding(world, seed: int, task: dict) -> tuple[np.ndarray, np.ndarray]:
    """(positions, mask), each (4,): the start positions of `task`'s object and target."""
    positions, mask = np.zeros(GROUNDING_DIM, np.float32), np.zeros(GROUNDING_DIM, np.float32)
    names = [task.get(key) for key in ("object", "target")]
    if not any(names):
        return positions, mask
    world.reset(seed, task)
    poses = world.object_poses()
    for slot, name in enumerate(names):
        if name in poses:
            positions[2 * slot : 2 * slot + 2] = poses[name][0][:2]
            mask[2 * slot : 2 * slot + 2] = 1.0
    return positions, mask


def dataset_grounding(episodes: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(positions, mask) of shape (len(episodes), 4) for episodes with `seed` and `task`."""
    from vla_ros.sim.world import SimWorld

    world = SimWorld(image_size=32)
    try:
        rows = [episode_grounding(world, int(e["seed"]), e["task"]) for e in episodes]
    finally:
        world.close()
    if not rows:
        return np.zeros((0, GROUNDING_DIM), np.float32), np.zeros((0, GROUNDING_DIM), np.float32)
    positions, masks = zip(*rows)
    return np.stack(positions), np.stack(masks)


def object_at_start(fingers: np.ndarray, task: dict) -> np.ndarray:
    """Per frame of one episode (its finger positions, m): whether the named object is still where
    it started, as far as the frames tell. Until the fingers first close; for a push throughout
    (it closes them at once and moves the object only the push's few centimetres)."""
    if (task or {}).get("task") == "push":
        return np.ones(len(fingers), bool)
    return np.cumsum(np.asarray(fingers) < FINGERS_CLOSING) == 0
