"""Safety filter: cost per command, a fuzz run for violations, and false interventions.

1. Cost: one command's work (joint states in, target in, one output step) on a
   smooth stream and on the adversarial stream; median, p99, throughput.
2. Fuzz: >= 100k periods of adversarial input (huge jumps, oscillation, NaN
   bursts, shuffled/bad names, stale and future stamps, silences, e-stops,
   confidence drops, joint-state gaps) under the Panda limits with the default
   and tight workspaces, and under random limits; every output run is audited
   (vla_ros.safety.audit) for position/velocity/acceleration/jerk/workspace breaches.
3. False interventions on feasible input: minimum-jerk moves inside the limits
   and workspace, given every output period (100 Hz) and at a policy's 10 Hz;
   and expert episodes in the simulator with the filter in the loop
   (SafetyCommandFilter), where each expert target is classed feasible or not
   by its own 10 Hz finite differences.

Usage: bench_safety.py [--fuzz-periods N] [--episodes N] [--seed S]
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import time

import numpy as np
from benchlib import percentiles, save

from vla_ros import arm
from vla_ros.safety import SafetyConfig, SafetyFilter, SafetyState, Workspace, fuzz, load_config
from vla_ros.safety.audit import stream_violations
from vla_ros.safety.command_filter import SafetyCommandFilter
from vla_ros.safety.limits import JointLimitSet

NAMES = list(arm.COMMANDED_JOINTS)
HOME = arm.home_vector()
STATE_NAMES = [*NAMES, arm.GRIPPER_MIMIC_JOINT]


def cost(config: SafetyConfig, seed: int, periods: int = 4000) -> dict:
    """Seconds per command (set_measured + set_target + step) on a smooth and on an adversarial stream."""
    smooth = SafetyFilter(config)
    now = 100.0
    smooth.set_measured(NAMES, HOME, now, now)
    samples = []
    for k in range(periods):
        now += config.dt
        target = HOME + 0.3 * math.sin(0.5 * k * config.dt) * np.r_[np.ones(7), 0.05]
        measured = smooth.command if smooth.command is not None else HOME
        started = time.perf_counter()
        smooth.set_measured(STATE_NAMES, [*measured, measured[-1]], now, now)
        smooth.set_target(NAMES, target, now, now)
        smooth.step(now)
        samples.append(time.perf_counter() - started)
    adversarial = SafetyFilter(config)
    rng = np.random.default_rng(seed)
    schedule = [(fuzz.EVENTS[rng.integers(len(fuzz.EVENTS))], int(rng.integers(1, 12))) for _ in range(periods // 6)]
    started = time.perf_counter()
    driven = sum(repeats for _, repeats in schedule)
    fuzz.drive(adversarial, schedule, HOME, seed)
    adversarial_seconds = (time.perf_counter() - started) / driven
    smooth_stats = percentiles(samples, scale=1e6)
    return {
        "smooth_us": {k: round(v, 1) if isinstance(v, float) else v for k, v in smooth_stats.items()},
        "smooth_commands_per_second": round(1.0 / np.mean(samples)),
        "adversarial_mean_us": round(adversarial_seconds * 1e6, 1),
        "adversarial_commands_per_second": round(1.0 / adversarial_seconds),
    }


def _random_limits(rng) -> JointLimitSet:
    least, most = np.array([0.05] * 7 + [0.002]), np.array([1.2] * 7 + [0.02])
    return JointLimitSet(
        lower=HOME - (least + rng.uniform(0, 1, 8) * most), upper=HOME + (least + rng.uniform(0, 1, 8) * most),
        velocity=rng.uniform(0.05, 3.0, 8), acceleration=rng.uniform(0.5, 30.0, 8), jerk=rng.uniform(5.0, 8000.0, 8))


def _tight_workspace(rng) -> Workspace:
    frames = arm.forward_kinematics(HOME[:7])
    flange, tcp = frames[-2][:3, 3], frames[-1][:3, 3]
    return Workspace(box_min=tuple(np.minimum(tcp, flange) - rng.uniform(0.05, 0.4, 3)),
                     box_max=tuple(np.maximum(tcp, flange) + rng.uniform(0.05, 0.4, 3)),
                     table_z=float(rng.uniform(-0.2, 0.3)))


def fuzz_run(base: SafetyConfig, total_periods: int, seed: int) -> dict:
    """Adversarial streams; every output run audited. Violations must be 0."""
    rng = np.random.default_rng(seed)
    periods = outputs = violations = runs = 0
    states = dict.fromkeys((s.name for s in SafetyState), 0)
    examples: list[str] = []
    variants = {"panda_default_workspace": 0, "panda_tight_workspace": 0, "random_limits": 0}
    started = time.perf_counter()
    while periods < total_periods:
        variant = list(variants)[runs % len(variants)]
        variants[variant] += 1
        if variant == "panda_default_workspace":
            config = base
        elif variant == "panda_tight_workspace":
            config = SafetyConfig(joint_limits=base.joint_limits, workspace=_tight_workspace(rng))
        else:
            config = SafetyConfig(rate=float(rng.choice([50.0, 100.0, 250.0])), joint_limits=_random_limits(rng),
                                  workspace=_tight_workspace(rng) if rng.random() < 0.5 else Workspace())
        flt = SafetyFilter(config)
        schedule = [(fuzz.EVENTS[rng.integers(len(fuzz.EVENTS))], int(rng.integers(1, 15))) for _ in range(300)]
        for rest, commands in fuzz.drive(flt, schedule, HOME, int(rng.integers(2**31))):
            problems = stream_violations(commands, config.dt, config.joint_limits, config.workspace, start=rest,
                                         max_reports=10**9)
            violations += len(problems)
            examples.extend(problems[: 3 - len(examples)] if len(examples) < 3 else [])
            outputs += len(commands)
        counters = flt.counters
        states["HOLD"] += counters.hold_outputs
        states["ESTOP"] += counters.estop_outputs
        states["FAULT"] += counters.fault_steps
        states["LIMITED"] += counters.outputs_limited
        states["OK"] += counters.outputs - counters.hold_outputs - counters.estop_outputs - counters.outputs_limited
        periods += sum(repeats for _, repeats in schedule)
        runs += 1
    return {"adversarial_periods": periods, "outputs_audited": outputs, "violations": violations,
            "violation_examples": examples, "runs": runs, "runs_per_variant": variants, "states": states,
            "seconds": round(time.perf_counter() - started, 1)}


def _minimum_jerk_blend(s: np.ndarray) -> np.ndarray:
    return 10 * s**3 - 15 * s**4 + 6 * s**5


def _minimum_jerk_moves(config: SafetyConfig, rng, moves: int, sample_period: float) -> list[np.ndarray]:
    """Targets every `sample_period` along rest-to-rest minimum-jerk moves between random poses, within
    60 % of each limit (acceleration as usable at the output rate) and inside the workspace with margin."""
    limits, dt = config.joint_limits, config.dt
    usable = np.minimum(limits.acceleration, limits.jerk * dt / 2)
    inner_low = limits.lower + 0.15 * (limits.upper - limits.lower)
    inner_high = limits.upper - 0.15 * (limits.upper - limits.lower)
    trajectories = []
    while len(trajectories) < moves:
        start = HOME if not trajectories else trajectories[-1][-1]
        goal = np.clip(start + rng.normal(0.0, 0.4, 8) * np.r_[np.ones(7), 0.05], inner_low, inner_high)
        distance = np.abs(goal - start)
        duration = max(np.max(1.875 * distance / (0.6 * limits.velocity)),
                       np.max(np.sqrt(5.7735 * distance / (0.6 * usable))),
                       np.max(np.cbrt(60.0 * distance / (0.6 * limits.jerk))), 0.2)
        duration = math.ceil(duration / sample_period) * sample_period
        samples = np.arange(1, round(duration / sample_period) + 1)[:, None] * sample_period / duration
        path = start + _minimum_jerk_blend(samples) * (goal - start)
        dense = start + _minimum_jerk_blend(np.linspace(0, 1, 50)[:, None]) * (goal - start)
        if all(config.workspace.check(q[:7]).margin > 0.05 for q in dense):
            trajectories.append(path)
    return trajectories


def synthetic(config: SafetyConfig, seed: int, moves: int) -> dict:
    """Feasible minimum-jerk moves, targets at the output rate and at 10 Hz: how often does the filter act?"""
    results = {}
    for label, period in (("targets_every_output_period", config.dt), ("targets_at_10_hz", 0.1)):
        rng = np.random.default_rng(seed)
        flt = SafetyFilter(dataclasses.replace(config, command_timeout=max(config.command_timeout, 1.5 * period)))
        steps_per_target = round(period / config.dt)
        now, measured = 100.0, HOME.copy()
        flt.set_measured(NAMES, measured, now, now)
        targets = limited_steps = steps = changed = 0
        worst = 0.0
        for move in _minimum_jerk_moves(config, rng, moves, period):
            for target in move:
                flt.set_target(NAMES, target, now, now)
                targets += 1
                for _ in range(steps_per_target):
                    now += config.dt
                    flt.set_measured(NAMES, measured, now, now)
                    out = flt.step(now)
                    measured = out.positions
                    steps += 1
                    limited_steps += out.state == SafetyState.LIMITED
                deviation = float(np.max(np.abs(measured - target)))
                worst = max(worst, deviation)
                changed += deviation > 1e-6
            for _ in range(3):  # rest between moves, the source still sending at its rate
                flt.set_target(NAMES, move[-1], now, now)
                for _ in range(steps_per_target):
                    now += config.dt
                    flt.set_measured(NAMES, measured, now, now)
                    measured = flt.step(now).positions
        results[label] = {"targets": targets, "targets_changed": changed, "false_intervention_rate":
                          round(changed / targets, 5), "output_periods": steps, "limited_periods": limited_steps,
                          "limited_period_rate": round(limited_steps / steps, 5), "max_deviation": worst}
    return results


class _Recording(SafetyCommandFilter):
    """SafetyCommandFilter that keeps each target, the command sent and the joint state before it."""

    def __init__(self):
        super().__init__()
        self.episodes: list[list[tuple[np.ndarray, np.ndarray | None]]] = []

    def reset(self, joint_positions):
        super().reset(joint_positions)
        self.episodes.append([(joint_positions.copy(), joint_positions.copy())])

    def __call__(self, target, joint_positions):
        command = super().__call__(target, joint_positions)
        self.episodes[-1].append((target.copy(), None if command is None else command.copy()))
        return command


def expert(episodes: int, seed: int) -> dict:
    """Expert episodes with the filter in the loop; interventions on the expert's own feasible targets."""
    from vla_ros.evaluation import evaluate

    recorder = _Recording()
    report = evaluate("expert", episodes, seed=seed, split="all", image_size=64, command_filter=recorder,
                      progress=False)
    limits, period = recorder.config.joint_limits, 0.1
    usable = np.minimum(limits.acceleration, limits.jerk * recorder.config.dt / 2)
    feasible = infeasible = feasible_changed = infeasible_changed = feasible_changed_1mrad = 0
    false_deviations: list[float] = []
    worst_feasible = 0.0
    for steps in recorder.episodes:
        start = steps[0][0]
        previous, velocity, on_track = start, np.zeros(8), True
        for index, (target, command) in enumerate(steps[1:]):
            # Necessary conditions on the mean velocities of consecutive periods; from rest, the
            # first period can reach only half the mean velocity change.
            new_velocity = (target - previous) / period
            reachable = usable * period * (0.5 if index == 0 else 1.0)
            ok = (np.all(np.abs(new_velocity) <= limits.velocity) and
                  np.all(np.abs(new_velocity - velocity) <= reachable) and
                  np.all((target >= limits.lower) & (target <= limits.upper)))
            deviation = math.inf if command is None else float(np.max(np.abs(command - target)))
            if ok:
                feasible += 1
                feasible_changed += deviation > 1e-6
                feasible_changed_1mrad += deviation > 1e-3
                # Only a change that the expert's own motion did not force earlier counts as false.
                if on_track and deviation > 1e-6:
                    false_deviations.append(deviation)
                worst_feasible = max(worst_feasible, deviation)
            else:
                infeasible += 1
                infeasible_changed += deviation > 1e-6
            previous, velocity, on_track = target, new_velocity, deviation <= 1e-6
    return {
        "episodes": episodes, "success_rate_with_filter": report["success_rate"],
        "expert_targets": feasible + infeasible,
        "feasible_targets": feasible, "feasible_targets_changed": feasible_changed,
        "false_interventions": len(false_deviations),
        "false_intervention_rate": round(len(false_deviations) / max(feasible, 1), 5),
        "false_intervention_deviation_rad": {"median": float(np.median(false_deviations)) if false_deviations
                                             else 0.0, "max": max(false_deviations, default=0.0)},
        "feasible_targets_changed_over_1mrad": feasible_changed_1mrad,
        "max_deviation_on_feasible": worst_feasible,
        "infeasible_targets": infeasible, "infeasible_targets_changed": infeasible_changed,
        "filter_counts": report["safety"],
        "note": "feasible: the target's own 10 Hz finite differences within the velocity and (jerk-usable) "
                "acceleration limits (half the acceleration for the first target, from rest) and the position "
                "limits: necessary, not sufficient, for a 100 Hz stream within limits to meet it; changed: the command at the end of the control "
                "period differs from the target by more than 1e-6; false intervention: a feasible target "
                "changed although the previous one was met",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fuzz-periods", type=int, default=100_000)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--moves", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    config = load_config()
    results = {"config": {"rate": config.rate, "command_timeout": config.command_timeout,
                          "position_margin_rad": round(float(config.joint_limits.lower[0] - arm.PANDA_LIMITS[
                              "panda_joint1"].lower), 4)}}
    results["cost"] = cost(config, args.seed)
    results["fuzz"] = fuzz_run(config, args.fuzz_periods, args.seed)
    results["synthetic_feasible"] = synthetic(config, args.seed, args.moves)
    results["expert"] = expert(args.episodes, args.seed)
    save("safety", results)


if __name__ == "__main__":
    main()
