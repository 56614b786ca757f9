"""Expert demonstrations for behaviour cloning: seeded simulator episodes written as a vla_ros dataset.

Each episode samples a task of the training ("seen") split and one of its training
phrasings, runs the scripted expert with injected noise (so the data shows
recoveries) and records, at the control rate, the scene image (and, when asked,
the hand camera's), the joint state and the expert's noiseless target as the
action label. Episodes are deterministic
for (seed, episode index); shards of whole episodes make collection resumable.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vla_ros import arm, dataset
from vla_ros.policies.base import CONTROL_DT, Policy, check_chunk, uses_wrist_camera
from vla_ros.policies.chunking import ChunkAggregator
from vla_ros.sim import tasks
from vla_ros.sim.expert import ExpertNoise, ExpertPolicy
from vla_ros.sim.world import SimWorld

# Task kinds in proportion to how much they need to be learned (object tasks need more).
KIND_WEIGHTS = {"pick": 3, "place": 3, "push": 3, "stack": 3, "home": 1, "open_gripper": 1, "close_gripper": 1}
# Steps recorded after success, so the policy learns to stay put once done.
STEPS_AFTER_SUCCESS = 5
# Noise the expert still solves every task with (docs/SIMULATION.md).
DEFAULT_NOISE = ExpertNoise(action_std=0.005, detour_probability=0.05)
_LIMITS = arm.limits_arrays()


def plan(seed: int, index: int, kinds: tuple[str, ...] = tuple(KIND_WEIGHTS)) -> tuple[int, tasks.Episode]:
    """(world seed, task episode) of demonstration `index`, a task of one of `kinds`: a pure
    function of (seed, index, kinds)."""
    rng = np.random.default_rng([seed, index])
    weights = np.array([KIND_WEIGHTS[k] for k in kinds], dtype=float)
    kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    return int(rng.integers(2**31)), tasks.sample_episode(rng, "seen", kind)


@dataclass
class Learner:
    """A policy in the loop (DAgger): it drives on a random share of the control steps."""

    policy: Policy
    expert_share: float  # probability that the expert's target is executed at a step

    def __post_init__(self) -> None:
        if not 0.0 <= self.expert_share <= 1.0:
            raise ValueError(f"expert share must be in [0, 1], got {self.expert_share}")
        self.aggregator = ChunkAggregator(getattr(self.policy, "aggregation", "latest"))
        self.rng = np.random.default_rng(0)

    def reset(self, episode_seed: int) -> None:
        """Start an episode; who drives at each step is a function of the episode's seed."""
        self.policy.reset()
        self.aggregator.reset()
        self.rng = np.random.default_rng(episode_seed)

    def target(self, observation, instruction: str, step: int) -> np.ndarray:
        # Every step, as the evaluator runs it with n_action_steps = 1, so the learner's
        # chunks blend the way they do at evaluation.
        self.aggregator.add(check_chunk(self.policy.select_action(observation, instruction)), step)
        # The simulator refuses targets past the joint limits; clip them as the evaluator does.
        return np.clip(self.aggregator.target(step), _LIMITS["lower"], _LIMITS["upper"])


def record_episode(world: SimWorld, expert: ExpertPolicy, world_seed: int, episode: tasks.Episode,
                   learner: Learner | None = None) -> dataset.Episode:
    world.reset(world_seed, episode.spec)
    expert.reset()
    if learner is not None:
        learner.reset(world_seed)
    images, wrist_images, states, actions = [], [], [], []
    # With a deliberate first miss (ExpertNoise.miss_distance), only the recovery is a
    # demonstration: the frames of the missed attempt are dropped.
    first_kept = None if expert.noise.miss_distance > 0 and episode.spec["task"] in tasks.GRASP_KINDS else 0
    limit = tasks.TIME_LIMITS[episode.spec["task"]]
    after_success = None
    step = 0
    while world.task_elapsed() < limit - 1e-9 and (after_success is None or after_success > 0):
        observation = world.observation()
        executed = expert.select_action(observation, episode.instruction)[0]
        if learner is not None:
            learner_target = learner.target(observation, episode.instruction, step)
            if learner.rng.random() >= learner.expert_share:
                executed = learner_target
        if first_kept is None and expert.missed_grasps:
            first_kept = step
        images.append(observation.image)
        wrist_images.append(observation.wrist_image)
        states.append(observation.state)
        actions.append(expert.clean_action.copy())
        world.step(executed)
        step += 1
        if after_success is None and world.success():
            after_success = STEPS_AFTER_SUCCESS
        elif after_success is not None:
            after_success -= 1
    kept = slice(first_kept or 0, None)  # the whole episode if the grasp never missed
    return dataset.Episode(np.stack(images[kept]), np.stack(states[kept]).astype(np.float32),
                           np.stack(actions[kept]).astype(np.float32), episode.instruction, episode.spec,
                           after_success is not None, world_seed,
                           wrist_images=np.stack(wrist_images[kept]) if world.wrist_camera else None)


def collect(out: str | Path, episodes: int, seed: int = 0, image_size: int = 128, shard_size: int = 50,
            noise: ExpertNoise = DEFAULT_NOISE, progress: bool = True, learner: Learner | None = None,
            learner_name: str = "", kinds: tuple[str, ...] = tuple(KIND_WEIGHTS), wrist_camera: bool = False) -> dict:
    """Write `episodes` demonstrations to `out`, resuming after the last complete shard.

    With `wrist_camera`, frames of the hand camera are recorded too (and a learner
    that uses them sees them). With `learner`, the episodes are DAgger rollouts (see the module docstring);
    `learner_name` (e.g. its checkpoint) is recorded in the dataset's info. `kinds`
    restricts the task kinds (e.g. DAgger on the kinds the learner fails).
    """
    unknown = sorted(set(kinds) - set(KIND_WEIGHTS))
    if unknown or not kinds:
        raise ValueError(f"task kinds must be among {', '.join(KIND_WEIGHTS)}; got {', '.join(kinds) or 'none'}")
    wrist_camera = wrist_camera or (learner is not None and uses_wrist_camera(learner.policy))
    root = Path(out)
    extra = {"seed": seed, "shard_size": shard_size, "noise": vars(noise), "kinds": list(kinds)}
    if learner is not None:
        extra["dagger"] = {"learner": learner_name, "expert_share": learner.expert_share}
    dataset.write_info(root, fps=1.0 / CONTROL_DT, image_size=(image_size, image_size), extra=extra,
                       wrist_image=wrist_camera)
    done = dataset.complete_shards(root)
    dataset.truncate_to_shards(root, done)
    world = SimWorld(image_size=image_size, wrist_camera=wrist_camera)
    expert = ExpertPolicy(world, noise=noise, seed=seed)
    shards = range(0, (episodes + shard_size - 1) // shard_size)
    bar = tqdm(total=episodes, initial=min(episodes, len(done) * shard_size), desc="collect", unit="ep",
               disable=not progress)
    successes = 0
    for shard in shards:
        if shard in done:
            continue
        first = shard * shard_size
        recorded = []
        for index in range(first, min(episodes, first + shard_size)):
            recorded.append(record_episode(world, expert, *plan(seed, index, kinds), learner=learner))
            successes += recorded[-1].success
            bar.update(1)
        dataset.write_shard(root, shard, recorded, first)
    bar.close()
    world.close()
    summary = dataset.read_episodes(root)
    return {"episodes": len(summary), "frames": sum(e["length"] for e in summary),
            "success_rate": sum(e["success"] for e in summary) / max(1, len(summary))}
