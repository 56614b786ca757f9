"""Adversarial inputs for the safety filter: what the property tests and the benchmark throw at it.

Each event is one kind of abuse a command source, the arm or an operator can
produce; `drive` plays a schedule of events against a filter the way the node
would (joint states from an arm lagging one period), and returns the command
runs for `audit.stream_violations` to check.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from vla_ros import arm
from vla_ros.safety.filter import SafetyFilter

NAMES = list(arm.COMMANDED_JOINTS)
# Kinds of events, repeated by weight; `drive` holds each for a few periods.
# Releases (reset, confidence) are drawn more often than latches, so that streams keep moving.
EVENTS: tuple[str, ...] = (
    "track", "track", "track", "jump", "jump", "jump", "oscillate", "oscillate", "nan", "shuffle",
    "bad_names", "stale", "future", "silence", "estop", "reset", "reset", "reset", "low_confidence",
    "confidence", "confidence", "state_gap",
)
# Events that send a target, and which target they send: a fresh one each period or the event's held one.
_FRESH_TARGET = ("track", "oscillate", "shuffle")
_HELD_TARGET = ("jump", "nan", "bad_names", "stale", "future")


def _next_target(rng, limits, kind: str, previous: np.ndarray, period: int) -> np.ndarray:
    span = limits.upper - limits.lower
    if kind == "track":  # small random steps, sometimes past the limits
        return np.clip(previous + rng.normal(0.0, 0.02, len(NAMES)) * span, limits.lower - 0.1, limits.upper + 0.1)
    if kind == "oscillate":  # full swings every period, beyond both limits
        return np.where(period % 2, limits.upper + 0.3 * span, limits.lower - 0.3 * span)
    return rng.uniform(limits.lower - 0.5 * span, limits.upper + 0.5 * span)  # a huge jump


def _send(flt: SafetyFilter, rng, kind: str, target: np.ndarray, now: float) -> None:
    names, target, stamp = list(NAMES), target.copy(), now
    if kind == "nan":
        target[rng.integers(len(NAMES))] = rng.choice([math.nan, math.inf, -math.inf])
    elif kind == "shuffle":
        order = rng.permutation(len(NAMES))
        names, target = [names[i] for i in order], target[order]
    elif kind == "bad_names":
        duplicate, unknown, missing, empty = [*NAMES[:-1], NAMES[0]], [*NAMES[:-1], "elbow"], NAMES[:-1], []
        names = [duplicate, unknown, missing, empty][rng.integers(4)]
    elif kind == "stale":
        stamp = now - 10.0
    elif kind == "future":
        stamp = now + 10.0
    operator = {"estop": lambda: flt.trigger_estop("fuzz"), "reset": flt.reset_estop,
                "low_confidence": lambda: flt.set_confidence(0.0), "confidence": lambda: flt.set_confidence(1.0)}
    if kind in operator:
        operator[kind]()
    elif kind not in ("silence", "state_gap"):
        flt.set_target(names, target[: len(names)], stamp=stamp, now=now)


def drive(flt: SafetyFilter, schedule: Iterable[tuple[str, int]], start: np.ndarray, seed: int,
          now: float = 100.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Play (event kind, periods) pairs against `flt`, one filter step per period.

    Returns the runs of consecutive commands as (rest position before the run, commands);
    a run ends where the filter published nothing (stale joint states).
    """
    rng = np.random.default_rng(seed)
    limits, dt = flt.config.joint_limits, flt.config.dt
    measured, history = start.copy(), [start.copy()] * 2
    target = start.copy()
    runs: list[tuple[np.ndarray, list]] = []
    rest, current = None, []
    period = 0
    for kind, periods in schedule:
        held = _next_target(rng, limits, "jump", target, period)
        for _ in range(periods):
            now += dt
            period += 1
            if kind != "state_gap":
                measured = history[-2]  # the arm lags the commands by a period
                flt.set_measured(NAMES + [arm.GRIPPER_MIMIC_JOINT], [*measured, measured[-1]], stamp=now, now=now)
            if kind in _FRESH_TARGET:
                target = _next_target(rng, limits, kind, target, period)
            _send(flt, rng, kind, held if kind in _HELD_TARGET else target, now)
            before = flt.command if flt.command is not None else measured
            out = flt.step(now)
            if out.positions is None:
                if current:
                    runs.append((rest, current))
                rest, current = None, []
                continue
            if rest is None:
                rest = before
            current.append(out.positions)
            history.append(out.positions)
    if current:
        runs.append((rest, current))
    return [(rest, np.array(commands)) for rest, commands in runs]
