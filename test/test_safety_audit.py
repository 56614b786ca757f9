"""The after-the-fact audit of /joint_commands as a subscriber received them (vla_ros/safety/audit.py).

Runs of commands are split only where the filter may have restarted its stream, known from
its statuses' command counts: never from stamps, which jump both ways on simulated time.
"""
import numpy as np

from vla_ros import arm
from vla_ros.safety import load_config
from vla_ros.safety.audit import received_violations, restart_intervals

CONFIG = load_config()
NAMES = arm.COMMANDED_JOINTS
FILTER = b"filter"


def _command(seq: int, joint1: float):
    positions = arm.home_vector().copy()
    positions[0] = joint1
    return FILTER, seq, NAMES, positions


def _audit(commands, statuses):
    return received_violations(commands, {FILTER: statuses}, CONFIG.dt, CONFIG.joint_limits, CONFIG.workspace)


def _held_then_restarted():
    """The filter holds joint1 at 0.50 for commands 1..10; the arm is then measured at 0.05 (a
    restarted simulator) and commands 11.. start there."""
    return [_command(seq, 0.50) for seq in range(1, 11)] + [_command(seq, 0.05) for seq in range(11, 21)]


def _statuses(outputs, fault_after=None, lost=()):
    """(seq, outputs_published, FAULT) of one status per period; a FAULT period after command
    `fault_after`; the statuses numbered in `lost` never arrived."""
    rows, seq = [], 0
    for count in outputs:
        if count == fault_after:
            seq += 1
            rows.append((seq, count, True))
        seq += 1
        rows.append((seq, count, False))
    return [row for row in rows if row[0] not in lost]


def test_a_restart_announced_by_a_fault_status_is_not_a_jump():
    # The CI case: the new clock was past the old one, so no stamp went back; only the FAULT
    # status's command count places the restart between commands 10 and 11.
    assert _audit(_held_then_restarted(), _statuses(range(1, 21), fault_after=10)) == []


def test_the_same_jump_without_a_fault_is_reported():
    problems = _audit(_held_then_restarted(), _statuses(range(1, 21)))
    assert problems and problems[0].startswith("run from command 1: command 10: velocity of panda_joint1 -45")


def test_a_fault_elsewhere_does_not_excuse_the_jump():
    assert _audit(_held_then_restarted(), _statuses(range(1, 21), fault_after=5))


def test_lost_statuses_around_the_jump_leave_it_unjudged():
    statuses = _statuses(range(1, 21))
    lost = {seq for seq, count, _ in statuses if 9 <= count <= 12}
    assert _audit(_held_then_restarted(), [s for s in statuses if s[0] not in lost]) == []


def test_lost_statuses_elsewhere_do_not_hide_the_jump():
    statuses = _statuses(range(1, 21))
    lost = {seq for seq, count, _ in statuses if 15 <= count <= 17}
    assert _audit(_held_then_restarted(), [s for s in statuses if s[0] not in lost])


def test_a_lost_command_splits_the_run():
    commands = [c for c in _held_then_restarted() if c[1] != 11]
    assert _audit(commands, _statuses(range(1, 21))) == []


def test_malformed_commands_are_reported():
    commands = [_command(1, 0.5), (FILTER, 2, NAMES[:-1], arm.home_vector()[:-1]), _command(3, np.nan)]
    problems = _audit(commands, _statuses(range(1, 4)))
    assert [p.split(":")[0] for p in problems] == ["command 2", "command 3"]


def test_restart_intervals():
    # A FAULT after command 3; statuses 6 and 7 lost between counts 4 and 7; nothing is known
    # after the last status, nor before the first when it is not the filter's first.
    statuses = [(1, 2, False), (2, 3, False), (3, 3, True), (4, 3, False), (5, 4, False), (8, 7, False)]
    assert restart_intervals(statuses).tolist() == [[3, 3], [4, 7], [7, np.inf]]
    assert restart_intervals(statuses[1:]).tolist() == [[-np.inf, 3], [3, 3], [4, 7], [7, np.inf]]
    assert restart_intervals([]).tolist() == [[-np.inf, np.inf]]
