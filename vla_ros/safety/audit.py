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


def restart_intervals(statuses) -> np.ndarray:
    """Where the filter may have restarted its command stream, from its /safety/status messages.

    `statuses` holds (publication sequence number, outputs_published, is FAULT) of one filter's
    statuses in arrival order. Returns (first, last) rows: the stream may restart after the
    k-th command for some first <= k <= last. A FAULT status published nothing, and the
    stream restarts at the measured position after it: (k, k) with k its outputs_published.
    Statuses lost on the way (a gap in their sequence numbers, which start at 1) hide what
    happened between the counts around the gap, and nothing is known after the last status.
    """
    rows = [(-np.inf, np.inf)] if not statuses else []
    previous = None
    for seq, outputs, fault in statuses:
        if previous is None and seq != 1:
            rows.append((-np.inf, outputs))
        elif previous is not None and seq != previous[0] + 1:
            rows.append((previous[1], outputs))
        if fault:
            rows.append((outputs, outputs))
        previous = (seq, outputs)
    if previous is not None:
        rows.append((previous[1], np.inf))
    return np.array(rows, dtype=float).reshape(-1, 2)


def received_violations(
    commands,
    statuses,
    dt: float,
    limits: JointLimitSet,
    workspace: Workspace | None = None,
    max_reports: int = 20,
) -> list[str]:
    """Every limit broken by /joint_commands as a subscriber received them (empty when clean).

    `commands` holds (publisher, publication sequence number, names, positions) in arrival
    order; `statuses` maps a command publisher to its filter's statuses (restart_intervals).
    Each message must name COMMANDED_JOINTS in that order with finite positions. Velocity,
    acceleration and jerk are checked over runs of consecutive publications of one publisher:
    a run ends at a lost message (a gap in the sequence numbers) and where the filter may have
    restarted at the measured position by design (after a FAULT period). The filter numbers
    its commands as the middleware numbers their publications (the k-th command is sequence
    number k), and neither depends on a clock: on simulated time stamps jump both ways.
    """
    problems: list[str] = []
    commands = list(commands)
    restarts = {publisher: restart_intervals(list(statuses.get(publisher, ())))
                for publisher in {command[0] for command in commands}}
    runs: dict[object, list[list[tuple[int, np.ndarray]]]] = {}
    for publisher, seq, names, positions in commands:
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
            intervals = restarts[publisher]
            # a restart after the k-th command, previous <= k < seq, separates the two
            restarted = np.any((intervals[:, 0] <= seq - 1) & (intervals[:, 1] >= previous[0]))
            if seq != previous[0] + 1 or restarted:
                publisher_runs.append([])
        publisher_runs[-1].append((seq, values))
    for publisher_runs in runs.values():
        for run in publisher_runs:
            if run:
                for line in stream_violations([values for _, values in run], dt, limits, workspace,
                                              max_reports=max_reports):
                    if len(problems) < max_reports:
                        problems.append(f"run from command {run[0][0]}: {line}")
    return problems
