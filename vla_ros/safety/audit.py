"""Check a stream of joint commands against limits after the fact, independently of the filter.

Velocity, acceleration and jerk are finite differences of consecutive commands
at the output period, which is what the arm's controller sees. Used by the
property tests, the benchmark and anyone who wants to audit a recorded run.
"""
from __future__ import annotations

import numpy as np

from vla_ros import arm
from vla_ros.safety.limits import JointLimitSet, Workspace

# Relative slack on every limit, for floating-point rounding in the differences.
RELATIVE_TOLERANCE = 1e-6


def stream_violations(
    positions,
    dt: float,
    limits: JointLimitSet,
    workspace: Workspace | None = None,
    start=None,
    max_reports: int = 20,
) -> list[str]:
    """Every limit a command stream breaks, as readable lines (empty when it is clean).

    `positions` has one row per output period, COMMANDED_JOINTS columns.
    `start`, when given, is the position the arm rested at before the stream
    (it is prepended twice, so the first commands' acceleration and jerk count).
    """
    stream = np.atleast_2d(np.asarray(positions, dtype=float))
    rows_before = 0
    if start is not None:
        stream = np.vstack([np.asarray(start, dtype=float)] * 2 + [stream])
        rows_before = 2
    problems: list[str] = []

    def report(kind: str, values: np.ndarray, bound_low, bound_high, first_row: int) -> None:
        slack_low = np.abs(bound_low) * RELATIVE_TOLERANCE + 1e-12
        slack_high = np.abs(bound_high) * RELATIVE_TOLERANCE + 1e-12
        bad_rows, bad_joints = np.nonzero((values < bound_low - slack_low) | (values > bound_high + slack_high))
        for row, joint in zip(bad_rows, bad_joints):
            if len(problems) < max_reports:
                problems.append(
                    f"command {row + first_row - rows_before}: {kind} of {arm.COMMANDED_JOINTS[joint]} "
                    f"{values[row, joint]:.6g} outside [{np.broadcast_to(bound_low, values.shape)[row, joint]:.6g}, "
                    f"{np.broadcast_to(bound_high, values.shape)[row, joint]:.6g}]"
                )

    report("position", stream, limits.lower, limits.upper, 0)
    velocity = np.diff(stream, axis=0) / dt
    report("velocity", velocity, -limits.velocity, limits.velocity, 1)
    acceleration = np.diff(velocity, axis=0) / dt
    report("acceleration", acceleration, -limits.acceleration, limits.acceleration, 2)
    jerk = np.diff(acceleration, axis=0) / dt
    report("jerk", jerk, -limits.jerk, limits.jerk, 3)
    if workspace is not None:
        for row, q in enumerate(stream):
            check = workspace.check(q[: len(arm.ARM_JOINTS)])
            if check.violation > 1e-9 and len(problems) < max_reports:
                problems.append(f"command {row - rows_before}: outside the workspace ({', '.join(check.violated)})")
    return problems


def received_violations(
    commands,
    fault_stamps,
    dt: float,
    limits: JointLimitSet,
    workspace: Workspace | None = None,
    max_reports: int = 20,
) -> list[str]:
    """Every limit broken by /joint_commands as a subscriber received them (empty when clean).

    `commands` holds (publisher, publication sequence number, stamp, names, positions) in
    arrival order. Each message must name COMMANDED_JOINTS in that order with finite
    positions. Velocity, acceleration and jerk are checked over runs of consecutive
    publications of one publisher: a run ends at a lost message (a gap in the sequence
    numbers) and where the filter restarts at the measured position by design: after a FAULT
    period (`fault_stamps`: the stamps of /safety/status FAULT) and after its clock went back.
    """
    problems: list[str] = []
    faults = np.sort(np.asarray(list(fault_stamps), dtype=float))
    runs: dict[object, list[list[tuple[int, float, np.ndarray]]]] = {}
    for publisher, seq, stamp, names, positions in commands:
        values = np.asarray(positions, dtype=float)
        if tuple(names) != arm.COMMANDED_JOINTS or values.shape != (len(arm.COMMANDED_JOINTS),) \
                or not np.all(np.isfinite(values)):
            if len(problems) < max_reports:
                problems.append(f"command {seq}: malformed ({list(names)}, {values.tolist()})"[:300])
            runs.setdefault(publisher, []).append([])  # nothing continues across it
            continue
        publisher_runs = runs.setdefault(publisher, [[]])
        previous = publisher_runs[-1][-1] if publisher_runs[-1] else None
        if previous is not None:
            fault_between = np.searchsorted(faults, stamp) > np.searchsorted(faults, previous[1], side="right")
            if seq != previous[0] + 1 or fault_between or stamp < previous[1]:
                publisher_runs.append([])
        publisher_runs[-1].append((seq, stamp, values))
    for publisher_runs in runs.values():
        for run in publisher_runs:
            if run:
                for line in stream_violations([values for _, _, values in run], dt, limits, workspace,
                                              max_reports=max_reports):
                    if len(problems) < max_reports:
                        problems.append(f"run from command {run[0][0]}: {line}")
    return problems
