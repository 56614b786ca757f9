"""In-process evaluation: run a policy on seeded episodes in the simulator and score it.

No DDS and no ROS imports: the policy, the simulator and (later) the safety filter run
in one loop. Every joint target a policy returns goes through one place,
`_execute`: the raw target is counted against the arm's limits, then passed
through the `CommandFilter` (none yet: see `PassThrough`), then tracked by the
simulator for one control period.

Episodes are deterministic for (seed, index): the task, its phrasing and the
scene seed all derive from them.
"""
from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from vla_ros import arm, vocabulary
from vla_ros.policies.base import CONTROL_DT, Policy, check_chunk, uses_wrist_camera
from vla_ros.policies.chunking import ChunkAggregator, policy_blending
from vla_ros.sim import tasks
from vla_ros.sim.expert import CLEARANCE

SPLIT_CHOICES = ("seen", "unseen", "paraphrase", "all")


class CommandFilter(Protocol):
    """Turns a policy's joint target into the command the arm gets (the safety filter's place)."""

    name: str

    def reset(self, joint_positions: np.ndarray) -> None: ...

    def __call__(self, target: np.ndarray, joint_positions: np.ndarray) -> np.ndarray | None:
        """The command to send, or None to hold the last one."""

    def counts(self) -> dict[str, int]: ...


class PassThrough:
    """No filtering: every target goes to the arm as it is."""

    name = "none"

    def reset(self, joint_positions: np.ndarray) -> None:
        pass

    def __call__(self, target: np.ndarray, joint_positions: np.ndarray) -> np.ndarray:
        return target

    def counts(self) -> dict[str, int]:
        return {"limited": 0, "rejected": 0, "held": 0, "estops": 0}


@dataclass(frozen=True)
class PlannedEpisode:
    index: int
    seed: int  # scene seed
    split: str
    instruction: str
    task: dict


@dataclass
class EpisodeResult:
    index: int
    seed: int
    split: str
    instruction: str
    task: dict
    success: bool
    time_to_success: float | None  # simulated seconds
    sim_time: float
    steps: int
    # Where a failure happened (CarryTrace): whether the named object was ever held (None for
    # tasks without one), and for place and stack how close (x-y, m) it came to its target while held.
    held_object: bool | None = None
    closest_to_target_m: float | None = None
    # For a failed pick, place or stack: whether it ended stalled over the named object (CarryTrace).
    ended_over_object: bool | None = None


class CarryTrace:
    """Follows an episode's named object: held or not, and its closest x-y approach to the
    target while held. Tells a grasp that never happened from a carry that went elsewhere."""

    # The learnt policies' most common failure (docs/POLICY.md, "Where stacks stall"): the hand
    # ends open over the object, not holding it, between its top and the expert's approach height.
    STALL_XY = 0.02  # m, hand to object in x-y

    def __init__(self, task: dict):
        self.grasps = task["task"] in tasks.GRASP_KINDS
        self.object, self.target = task.get("object"), task.get("target")
        self.held = False if self.object else None
        self.closest: float | None = None

    def update(self, world) -> None:
        if not self.object or self.object not in world.in_hand():
            return
        self.held = True
        if self.target:
            poses = world.object_poses()
            distance = float(np.linalg.norm(poses[self.object][0][:2] - poses[self.target][0][:2]))
            self.closest = distance if self.closest is None else min(self.closest, distance)

    def ended_over_object(self, world) -> bool | None:
        """At the end of a failed grasping episode: whether the hand is stalled over the object."""
        if not self.grasps:
            return None
        state = world.snapshot()
        hand_open = state.joints[7] > tasks.GRIPPER_OPEN  # as open_gripper's success reads it
        over = np.linalg.norm(state.tcp[:2] - state.bodies[self.object].position[:2]) < self.STALL_XY
        height = state.tcp[2] - state.top(self.object)
        return bool(hand_open and over and self.object not in state.in_hand and 0 < height < CLEARANCE)


class RawTargetCounts:
    """How often a policy's raw targets would break the arm's limits (before any filter)."""

    def __init__(self) -> None:
        limits = arm.limits_arrays()
        self._lower, self._upper = limits["lower"], limits["upper"]
        self._max_step = limits["velocity"] * CONTROL_DT
        self.counts = {"targets": 0, "non_finite": 0, "beyond_position_limits": 0, "beyond_velocity_limits": 0}

    def check(self, target: np.ndarray, previous: np.ndarray) -> bool:
        """Count `target`; False if it is not finite."""
        self.counts["targets"] += 1
        if not np.all(np.isfinite(target)):
            self.counts["non_finite"] += 1
            return False
        if np.any(target < self._lower) or np.any(target > self._upper):
            self.counts["beyond_position_limits"] += 1
        if np.any(np.abs(target - previous) > self._max_step * (1 + 1e-6)):
            self.counts["beyond_velocity_limits"] += 1
        return True


def plan_episodes(episodes: int, seed: int, split: str, tasks_file: str | Path | None = None) -> list[PlannedEpisode]:
    """The episodes an evaluation runs, deterministic for `seed`.

    Without a tasks file, tasks cycle through the kinds of each split (and through
    the splits for "all"). With one, its lines `{"instruction": ..., "task": {...}}`
    are used in order (cycled to `episodes`), each labelled with the split it falls in.
    """
    if split not in SPLIT_CHOICES:
        raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLIT_CHOICES)}")
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if tasks_file is not None:
        lines = read_tasks_file(tasks_file)
    splits = tasks.SPLITS if split == "all" else (split,)
    planned = []
    for index in range(episodes):
        rng = np.random.default_rng([seed, index])
        scene_seed = int(rng.integers(2**31))
        if tasks_file is not None:
            instruction, spec = lines[index % len(lines)]
            planned.append(PlannedEpisode(index, scene_seed, split_of_instruction(instruction, spec), instruction, spec))
            continue
        episode_split = splits[index % len(splits)]
        kinds = tasks.kinds_in_split(episode_split)
        kind = kinds[(index // len(splits)) % len(kinds)]
        episode = tasks.sample_episode(rng, episode_split, kind)
        planned.append(PlannedEpisode(index, scene_seed, episode.split, episode.instruction, episode.spec))
    return planned


def read_tasks_file(path: str | Path) -> list[tuple[str, dict]]:
    """(instruction, checked spec) per non-empty line; ValueError naming the bad line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tasks file not found: {path}")
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict) or not isinstance(entry.get("instruction"), str):
                raise ValueError('expected {"instruction": "...", "task": {...}}')
            entries.append((entry["instruction"], tasks.validate(entry.get("task"))))
        except ValueError as err:  # json.JSONDecodeError and tasks.TaskError are ValueErrors
            raise ValueError(f"{path}:{number}: {err}") from err
    if not entries:
        raise ValueError(f"{path} holds no tasks")
    return entries


def split_of_instruction(instruction: str, spec: dict) -> str:
    """Which split a given (instruction, task) pair falls in."""
    if tasks.split_of(spec) == "unseen":
        return "unseen"
    training = {vocabulary.fill(t, spec) for t in vocabulary.TRAIN_TEMPLATES[spec["task"]]}
    return "seen" if instruction.strip().lower() in training else "paraphrase"


class Evaluator:
    """Runs planned episodes of one policy in one simulator."""

    def __init__(self, world, policy: Policy, command_filter: CommandFilter | None = None):
        self.world = world
        self.policy = policy
        self.command_filter = command_filter or PassThrough()
        self.raw = RawTargetCounts()
        self.timing = defaultdict(float)
        limits = arm.limits_arrays()
        self._lower, self._upper = limits["lower"], limits["upper"]

    def run_episode(self, planned: PlannedEpisode, frames: list | None = None) -> EpisodeResult:
        """One episode; appends the scene images to `frames` when given (for a video)."""
        world = self.world
        world.reset(planned.seed, planned.task)
        self.policy.reset()
        self.command_filter.reset(world.joint_positions())
        limit = tasks.TIME_LIMITS[planned.task["task"]]
        # Chunks execute as the policy asks (vla_ros.policies.chunking): query every
        # n_action_steps steps and blend overlaps, or, without that attribute, run each
        # chunk to its end before asking again.
        every = getattr(self.policy, "n_action_steps", None)
        aggregator = ChunkAggregator(*policy_blending(self.policy))
        trace = CarryTrace(planned.task)
        steps = 0
        while world.task_elapsed() < limit - 1e-9:
            target = None if every and steps % every == 0 else aggregator.target(steps)
            if target is None:
                started = time.perf_counter()
                observation = world.observation()
                self.timing["render_seconds"] += time.perf_counter() - started
                if frames is not None:
                    frames.append(observation.image)
                started = time.perf_counter()
                aggregator.add(check_chunk(self.policy.select_action(observation, planned.instruction)), steps)
                self.timing["policy_seconds"] += time.perf_counter() - started
                target = aggregator.target(steps)
            self._execute(target)
            trace.update(world)
            steps += 1
            if world.success():
                return self._result(planned, True, steps, trace)
        return self._result(planned, False, steps, trace)

    def _execute(self, target: np.ndarray) -> None:
        """The one path from a policy's target to the simulated arm."""
        world = self.world
        started = time.perf_counter()
        held = world.joint_goal()
        command = None
        if self.raw.check(target, held):
            command = self.command_filter(target, world.joint_positions())
        if command is None or not np.all(np.isfinite(command)):
            command = held  # hold the last good target
        world.step(np.clip(command, self._lower, self._upper))
        self.timing["sim_seconds"] += time.perf_counter() - started

    def _result(self, planned: PlannedEpisode, success: bool, steps: int, trace: CarryTrace) -> EpisodeResult:
        elapsed = round(self.world.task_elapsed(), 3)
        closest = None if trace.closest is None else round(trace.closest, 4)
        stalled = None if success else trace.ended_over_object(self.world)
        return EpisodeResult(planned.index, planned.seed, planned.split, planned.instruction, planned.task,
                             success, elapsed if success else None, elapsed, steps, trace.held, closest, stalled)

    def safety_section(self) -> dict:
        return {
            "filter": self.command_filter.name,
            "note": "no safety filter in the loop: targets go to the simulated arm as the policy returns them"
            if self.command_filter.name == "none" else "",
            **self.command_filter.counts(),
            "raw_targets": dict(self.raw.counts),
        }


def summarize(results: list[EpisodeResult]) -> dict:
    """Success rate and mean time to success, per task kind and per split."""

    def group(key) -> dict:
        buckets = defaultdict(list)
        for result in results:
            buckets[key(result)].append(result)
        return {name: _rates(members) for name, members in sorted(buckets.items())}

    return {**_rates(results), "per_task": group(lambda r: r.task["task"]), "per_split": group(lambda r: r.split)}


def _rates(results: list[EpisodeResult]) -> dict:
    times = [r.time_to_success for r in results if r.success]
    held = [r.held_object for r in results if r.held_object is not None]
    stalled = [r.ended_over_object for r in results if r.ended_over_object is not None]
    return {
        "episodes": len(results),
        "successes": len(times),
        "success_rate": round(len(times) / len(results), 4) if results else 0.0,
        "mean_time_to_success": round(float(np.mean(times)), 3) if times else None,
        # Of the episodes whose task names an object: in how many the hand ever held it.
        "held_object": sum(held) if held else None,
        # Of the failed picks, places and stacks: how many ended stalled over the named object.
        "ended_over_object": sum(stalled) if stalled else None,
    }


def evaluate(
    policy: str,
    episodes: int,
    seed: int = 0,
    split: str = "all",
    tasks_file: str | Path | None = None,
    image_size: int = 224,
    video_dir: str | Path | None = None,
    command_filter: CommandFilter | None = None,
    progress: bool = True,
    policy_options: dict | None = None,
) -> dict:
    """Evaluate a policy (registry name or checkpoint path) and return the report as a dict.

    `policy_options` go to load_policy (e.g. {"path": ...} for the lerobot and openvla backends).
    """
    from tqdm import tqdm

    from vla_ros.policies import load_policy
    from vla_ros.sim.world import SimWorld

    planned = plan_episodes(episodes, seed, split, tasks_file)
    world = SimWorld(image_size=image_size)
    loaded = load_policy(policy, world=world, **(policy_options or {}))
    world.wrist_camera = uses_wrist_camera(loaded)  # render the hand camera only for a policy that uses it
    evaluator = Evaluator(world, loaded, command_filter)
    started = time.perf_counter()
    results: list[EpisodeResult] = []
    bar = tqdm(planned, desc=f"eval {policy}", unit="ep", disable=not progress)
    for episode in bar:
        frames: list | None = [] if video_dir is not None else None
        results.append(evaluator.run_episode(episode, frames))
        if frames:
            write_video(Path(video_dir) / f"episode_{episode.index:04d}.mp4", frames)
        bar.set_postfix(success=f"{sum(r.success for r in results) / len(results):.0%}")
    world.close()
    wall = time.perf_counter() - started
    sim_time = sum(r.sim_time for r in results)
    return {
        "policy": policy,
        "seed": seed,
        "split": split,
        "tasks_file": str(tasks_file) if tasks_file is not None else None,
        "image_size": image_size,
        **summarize(results),
        "safety": evaluator.safety_section(),
        "timing": {
            "wall_seconds": round(wall, 2),
            "simulated_seconds": round(sim_time, 2),
            "realtime_factor": round(sim_time / wall, 2) if wall > 0 else None,
            **{k: round(v, 2) for k, v in evaluator.timing.items()},
        },
        "episodes_detail": [asdict(r) for r in results],
    }


def write_video(path: Path, frames: list[np.ndarray]) -> None:
    """An MP4 of `frames` at the control rate."""
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    with imageio.get_writer(path, fps=round(1 / CONTROL_DT), codec="libx264", macro_block_size=1) as writer:
        for frame in frames:
            writer.append_data(frame)
