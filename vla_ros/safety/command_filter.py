"""The safety filter in the evaluator's loop (vla_ros.evaluation.CommandFilter), without ROS.

The evaluator hands over one policy target per control period and the joint
positions at that moment; this runs the filter at its own rate through the
period, exactly as the node would between two targets, and returns the command
reached at the end of the period (None when the filter publishes nothing).

    from vla_ros.evaluation import evaluate
    from vla_ros.safety.command_filter import SafetyCommandFilter
    report = evaluate("expert", 20, command_filter=SafetyCommandFilter())
"""
from __future__ import annotations

import dataclasses

import numpy as np

from vla_ros import arm
from vla_ros.safety.config import load_config
from vla_ros.safety.filter import SafetyConfig, SafetyFilter, SafetyState

# A target counts as changed when the command at the end of its period is further than this from it.
CHANGED_TOLERANCE = 1e-6
_START_TIME = 1.0  # s; stamps must be positive


class SafetyCommandFilter:
    """SafetyFilter behind the evaluator's CommandFilter protocol (reset / __call__ / counts)."""

    name = "safety"

    def __init__(self, config: SafetyConfig | None = None, control_period: float = 0.1):
        config = config or load_config()
        self.steps_per_target = max(1, round(control_period / config.dt))
        # One target and one joint-position reading per control period must not trip the
        # command or state watchdogs; as positions are seen only once per period, the command
        # may lead them by one period of motion more than in the node.
        self.config = dataclasses.replace(
            config,
            command_timeout=max(config.command_timeout, 1.5 * control_period),
            state_timeout=max(config.state_timeout, 1.5 * control_period),
            max_step_from_measured=config.max_step_from_measured
            + float(np.max(config.joint_limits.velocity[: len(arm.ARM_JOINTS)])) * control_period,
        )
        self.filter: SafetyFilter | None = None
        self._now = _START_TIME
        self._counts = {"targets": 0, "limited": 0, "rejected": 0, "held": 0, "estops": 0, "limit_steps": 0}
        self.max_deviation = 0.0

    def reset(self, joint_positions: np.ndarray) -> None:
        """A new episode: a fresh filter starting at the arm's position."""
        self._flush_filter_counts()
        self.filter = SafetyFilter(self.config)
        self._now = _START_TIME
        self.filter.set_measured(arm.COMMANDED_JOINTS, joint_positions, self._now, self._now)
        self.filter.step(self._now)

    def __call__(self, target: np.ndarray, joint_positions: np.ndarray) -> np.ndarray | None:
        """The command at the end of this control period, or None to publish nothing."""
        flt = self.filter
        self._counts["targets"] += 1
        flt.set_measured(arm.COMMANDED_JOINTS, joint_positions, self._now, self._now)
        flt.set_target(arm.COMMANDED_JOINTS, target, self._now, self._now)
        out = None
        # The positions are one reading: given once, stamped now, as a driver would publish them
        # (repeating them as fresh at every step would make the next period's motion look like a
        # jump in no time).
        for _ in range(self.steps_per_target):
            self._now += self.config.dt
            out = flt.step(self._now)
        if out.state in (SafetyState.HOLD, SafetyState.ESTOP, SafetyState.FAULT):
            self._counts["held"] += 1
        if out.positions is not None and np.all(np.isfinite(target)):
            deviation = float(np.max(np.abs(out.positions - target)))
            self.max_deviation = max(self.max_deviation, deviation)
            if deviation > CHANGED_TOLERANCE and out.state != SafetyState.HOLD:
                self._counts["limited"] += 1
        return out.positions

    def _flush_filter_counts(self) -> None:
        if self.filter is not None:
            counters = self.filter.counters
            self._counts["rejected"] += counters.commands_rejected
            self._counts["estops"] += counters.estops_triggered
            self._counts["limit_steps"] += counters.outputs_limited
            self.filter = None

    def counts(self) -> dict[str, int]:
        """Totals over all episodes so far: targets; limited (the command at the end of the period
        differs from the target); rejected; held (the period ended holding); estops; limit_steps
        (output periods in which a limit acted)."""
        totals = dict(self._counts)
        if self.filter is not None:
            counters = self.filter.counters
            totals["rejected"] += counters.commands_rejected
            totals["estops"] += counters.estops_triggered
            totals["limit_steps"] += counters.outputs_limited
        return totals
