"""Simulator speed: physics steps/s, render fps per image size, and the cost of an expert episode.

1. Physics: raw mj_step rate in a typical episode scene (arm + 5 objects + plates,
   arm moving), and the simulated-to-wall time ratio of SimWorld.step under the expert.
2. Rendering: scene-camera frames per second at policy sizes (96, 128, 224) and the
   ROS node's default 640x480, shadows and multisampling off.
3. Episodes: expert episodes with observations rendered at 10 Hz (as when collecting
   demonstrations), episodes per second and the estimate for 1000 demonstrations.

Usage: bench_sim.py [--episodes N] [--image-size PX]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from benchlib import save

from vla_ros.evaluation import Evaluator, plan_episodes
from vla_ros.sim.expert import ExpertPolicy
from vla_ros.sim.world import CameraRenderer, SimWorld

RENDER_SIZES = {"96x96": (96, 96), "128x128": (128, 128), "224x224": (224, 224), "640x480": (480, 640)}


def physics(world: SimWorld) -> dict:
    import mujoco  # after vla_ros.sim chose the headless GL backend

    world.reset(1, {"task": "pick", "object": "red cube"}, num_objects=5)
    expert = ExpertPolicy(world)
    # Move the arm for a while so that the measured steps include a moving arm and contacts.
    for _ in range(15):
        world.step(expert.select_action(None, "")[0])
    steps = 3000
    started = time.perf_counter()
    for _ in range(steps):
        mujoco.mj_step(world.model, world.data)
    raw = steps / (time.perf_counter() - started)
    episodes = plan_episodes(21, seed=0, split="seen")
    simulated, wall = 0.0, 0.0
    for planned in episodes:
        world.reset(planned.seed, planned.task)
        expert.reset()
        started = time.perf_counter()
        for _ in range(40):
            world.step(expert.select_action(None, "")[0])
        wall += time.perf_counter() - started
        simulated += 40 * 0.1
    return {"mj_step_per_second": round(raw), "contacts": int(world.data.ncon),
            "expert_control_realtime_factor": round(simulated / wall, 1)}


def rendering(world: SimWorld, frames: int = 60) -> dict:
    results = {}
    for label, (height, width) in RENDER_SIZES.items():
        renderer = CameraRenderer(world.model, width, height)
        renderer.update(world.data, "scene")
        renderer.pixels()  # warm-up
        started = time.perf_counter()
        for _ in range(frames):
            renderer.update(world.data, "scene")
            renderer.pixels()
        results[label] = round(frames / (time.perf_counter() - started), 1)
        renderer.close()
    return {"render_fps": results}


def episodes(count: int, image_size: int) -> dict:
    world = SimWorld(image_size=image_size)
    evaluator = Evaluator(world, ExpertPolicy(world))
    started = time.perf_counter()
    results = [evaluator.run_episode(planned) for planned in plan_episodes(count, seed=1, split="all")]
    wall = time.perf_counter() - started
    world.close()
    per_episode = wall / count
    return {
        "episodes": count,
        "image_size": image_size,
        "success_rate": sum(r.success for r in results) / count,
        "mean_simulated_seconds": round(float(np.mean([r.sim_time for r in results])), 2),
        "wall_seconds_per_episode": round(per_episode, 3),
        "estimated_minutes_per_1000_demonstrations": round(per_episode * 1000 / 60, 1),
        "time_split_seconds": {k: round(v, 2) for k, v in evaluator.timing.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=28)
    parser.add_argument("--image-size", type=int, default=128)
    args = parser.parse_args()
    world = SimWorld(image_size=args.image_size)
    results = {**physics(world), **rendering(world), "expert_episodes": episodes(args.episodes, args.image_size)}
    world.close()
    save("sim", results)


if __name__ == "__main__":
    main()
