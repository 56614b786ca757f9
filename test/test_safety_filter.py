"""The safety filter core, behaviour by behaviour (no ROS): validation, watchdogs, e-stop, gate, limits."""
import math

import numpy as np
import pytest

from vla_ros import arm
from vla_ros.safety import SafetyConfig, SafetyFilter, SafetyState
from vla_ros.safety.audit import stream_violations

NAMES = list(arm.COMMANDED_JOINTS)
HOME = arm.home_vector()
T0 = 100.0


class Rig:
    """Drives a filter as the node does: joint states every period from an arm that lags one period."""

    def __init__(self, config: SafetyConfig | None = None, start=HOME):
        self.filter = SafetyFilter(config or SafetyConfig())
        self.dt = self.filter.config.dt
        self.now = T0
        self.arm = np.array(start, dtype=float)
        self.outputs: list[np.ndarray] = []
        self.start = self.arm.copy()
        self.filter.set_measured(NAMES, self.arm, self.now, self.now)

    def step(self, target=None, stamp=None, names=NAMES, measured=True, **kwargs):
        """One output period; returns (SafetyOutput, Verdict of the target or None)."""
        self.now += self.dt
        if measured:
            self.filter.set_measured(NAMES, self.arm, self.now, self.now)
        verdict = None
        if target is not None:
            stamp = self.now if stamp is None else stamp
            verdict = self.filter.set_target(names, target, stamp, self.now, **kwargs)
        out = self.filter.step(self.now)
        if out.positions is not None:
            self.arm = out.positions  # tracked by the next period
            self.outputs.append(out.positions)
        return out, verdict

    def run(self, target, steps: int, **kwargs):
        return [self.step(target, **kwargs)[0] for _ in range(steps)]

    def violations(self):
        limits = self.filter.config.joint_limits
        return stream_violations(np.array(self.outputs), self.dt, limits, self.filter.config.workspace, self.start)


def moved(delta) -> np.ndarray:
    target = HOME.copy()
    for index, value in delta.items():
        target[index] += value
    return target


def test_nothing_is_output_before_joint_states():
    flt = SafetyFilter()
    out = flt.step(T0)
    assert out.positions is None and out.state == SafetyState.FAULT and "waiting for /joint_states" in out.reason
    verdict = flt.set_target(NAMES, HOME, T0, T0)
    assert not verdict and "waiting for /joint_states" in verdict.reason


def test_a_fault_still_reports_a_latched_estop():
    flt = SafetyFilter()
    flt.trigger_estop("operator")
    out = flt.step(T0)
    assert out.state == SafetyState.FAULT and "e-stop latched (operator)" in out.reason


def test_first_output_holds_the_measured_position():
    rig = Rig()
    out, _ = rig.step()
    assert out.state == SafetyState.HOLD and out.reason == "waiting for a command"
    np.testing.assert_array_equal(out.positions, HOME)


def test_a_measurement_just_past_a_limit_starts_at_the_limit_and_one_far_past_publishes_nothing():
    upper = SafetyFilter().config.joint_limits.upper
    start = HOME.copy()
    start[7] = upper[7] + 4e-4  # a finger resting against its stop
    out, _ = Rig(start=start).step()
    assert out.positions[7] == upper[7]
    start[7] = upper[7] + 0.01  # beyond measurement noise: a hold there would be outside the limits
    out, _ = Rig(start=start).step()
    assert (out.positions, out.state) == (None, SafetyState.FAULT)
    assert out.reason.startswith("measured position past the joint limits (panda_finger_joint1)"), out.reason


def test_a_measured_pose_below_the_table_publishes_nothing_until_the_arm_is_measured_inside():
    # What a fuzzed /joint_states did before this was refused: the filter restarted at the
    # measured pose, under the table, and held it (20 commands outside the workspace).
    below = HOME.copy()
    below[1] += 1.5  # shoulder tilted forward: the flange dips below the table
    rig = Rig(start=below)
    assert rig.filter.config.workspace.check(below[:7]).violation > 0
    out, verdict = rig.step(HOME)
    assert not verdict and "measured pose outside the workspace (table:" in verdict.reason, verdict
    assert (out.positions, out.state) == (None, SafetyState.FAULT)
    assert out.reason.startswith("measured pose outside the workspace (table:"), out.reason
    rig.arm = HOME.copy()  # measured inside again: the stream starts there
    out, _ = rig.step()
    assert out.state != SafetyState.FAULT and np.array_equal(out.positions, HOME)


@pytest.mark.parametrize(
    "names, positions, fragment",
    [
        ([], [], "empty message"),
        (NAMES, HOME[:-1], "8 joint names but 7 positions"),
        (NAMES[:-1] + [NAMES[0]], HOME, "duplicate joint names: panda_joint1"),
        (NAMES[:-1] + ["elbow"], HOME, "unknown joints: elbow"),
        (NAMES[:-1], HOME[:-1], "missing joints: panda_finger_joint1"),
        (NAMES, [*HOME[:3], math.nan, *HOME[4:]], "non-finite positions for panda_joint4"),
        (NAMES, [*HOME[:7], math.inf], "non-finite positions for panda_finger_joint1"),
        (NAMES, ["a"] * 8, "positions are not numbers"),
    ],
)
def test_malformed_targets_are_rejected_with_a_reason(names, positions, fragment):
    rig = Rig()
    rig.step()
    out, verdict = rig.step(positions, names=names)
    assert not verdict and fragment in verdict.reason
    assert rig.filter.counters.commands_rejected == 1 and rig.filter.counters.rejections == {"malformed": 1}
    np.testing.assert_array_equal(out.positions, HOME)


@pytest.mark.parametrize(
    "offset, fragment",
    [(None, "unstamped"), (-1.0, "stale: stamp 1.000 s old"), (0.5, "in the future"), (math.nan, "bad stamp")],
)
def test_bad_stamps_are_rejected(offset, fragment):
    rig = Rig()
    rig.step()
    stamp = 0.0 if offset is None else rig.now + rig.dt + offset
    _, verdict = rig.step(moved({0: 0.1}), stamp=stamp)
    assert not verdict and fragment in verdict.reason


def test_out_of_order_targets_are_rejected():
    rig = Rig()
    rig.step(HOME)
    _, verdict = rig.step(HOME, stamp=rig.now + rig.dt - 0.02)
    assert not verdict and "out of order" in verdict.reason


def test_joint_states_extra_joints_are_ignored_missing_ones_rejected():
    flt = SafetyFilter()
    assert flt.set_measured([*NAMES, arm.GRIPPER_MIMIC_JOINT], [*HOME, math.nan], T0, T0)
    verdict = flt.set_measured(NAMES[1:], HOME[1:], T0, T0)
    assert not verdict and "missing joints: panda_joint1" in verdict.reason
    assert flt.counters.states_rejected == 1


def test_joints_are_matched_by_name_not_order():
    target = moved({0: 0.2, 3: -0.1, 7: -0.01})
    ordered, shuffled = Rig(), Rig()
    order = np.random.default_rng(3).permutation(len(NAMES))
    for _ in range(40):
        a, _ = ordered.step(target)
        b, verdict = shuffled.step(target[order], names=[NAMES[i] for i in order])
        assert verdict
        np.testing.assert_array_equal(a.positions, b.positions)


def test_a_jump_is_approached_on_a_straight_line_within_limits_without_overshoot():
    rig = Rig()
    goal = moved({0: 0.8, 1: 0.3, 3: 0.4, 5: -0.3, 7: -0.03})
    states = [out.state for out in rig.run(goal, 150)]
    assert SafetyState.LIMITED in states and states[-1] == SafetyState.OK
    assert not rig.violations()
    path = np.array(rig.outputs)
    np.testing.assert_allclose(path[-1], goal, atol=1e-12)
    moving = [0, 1, 3, 5, 7]
    progress = (path[:, moving] - HOME[moving]) / (goal[moving] - HOME[moving])  # fraction of the way, 0..1
    # Direction kept: every arm joint is the same fraction of the way at every step.
    np.testing.assert_allclose(progress[:, :4], progress[:, :1].repeat(4, axis=1), atol=1e-9)
    np.testing.assert_array_equal(path[:, [2, 4, 6]], np.broadcast_to(HOME[[2, 4, 6]], (len(path), 3)))
    assert np.all(np.diff(progress, axis=0) >= -1e-12) and np.all(progress <= 1 + 1e-12)


def test_targets_from_a_slow_policy_are_interpolated():
    rig = Rig()
    period = 5  # a 20 Hz command source
    for k in range(1, 12):
        target = moved({0: 0.01 * k})
        for i in range(period):
            out, _ = rig.step(target if i == 0 else None)
            assert out.state in (SafetyState.OK, SafetyState.LIMITED), out.reason
    steps = np.diff(np.array(rig.outputs)[:, 0])
    later = steps[2 * period:]
    # A smooth stream: the arm moves every period (no staircase), at the commanded speed.
    np.testing.assert_allclose(later, 0.01 / period, rtol=1e-6)


def test_command_watchdog_holds_within_two_timeouts():
    rig = Rig()
    target = HOME.copy()
    for _ in range(30):  # a slow move, 0.2 rad/s on joint 1
        target = target + np.eye(8)[0] * 0.2 * rig.dt
        out, _ = rig.step(target)
    assert out.state == SafetyState.OK
    timeout = rig.filter.config.command_timeout
    states = [rig.step()[0] for _ in range(int(2 * timeout / rig.dt))]
    assert states[-1].state == SafetyState.HOLD and "command timeout" in states[-1].reason
    held = rig.run(None, 3)
    assert all(np.array_equal(out.positions, held[0].positions) for out in held)
    assert not rig.violations()


def test_stale_joint_states_fault_and_restart_at_the_measured_position():
    rig = Rig()
    rig.run(moved({0: 0.3}), 20)
    timeout = rig.filter.config.state_timeout
    faults = [rig.step(measured=False)[0] for _ in range(int(timeout / rig.dt) + 2)]
    assert faults[-1].state == SafetyState.FAULT and faults[-1].positions is None
    assert "/joint_states stale" in faults[-1].reason
    rig.arm = moved({0: 0.1})  # the arm settled somewhere else meanwhile
    out, _ = rig.step()
    np.testing.assert_array_equal(out.positions, rig.arm)


def test_a_clock_jumping_back_faults_and_restarts_at_the_measured_position():
    # A restarted simulator's /clock starts again at 0 (found by test/test_faults.py): the
    # joint states accepted on the old clock looked fresh, and the old command was held far
    # from the restarted arm.
    rig = Rig()
    rig.run(moved({0: 0.3}), 30)
    rig.now, rig.arm = 1.0, HOME.copy()  # the simulation starts over, the arm at its start pose
    out = rig.filter.step(rig.now)
    assert out.state == SafetyState.FAULT and out.positions is None
    assert "clock jumped back" in out.reason
    rig.outputs, rig.start = [], HOME.copy()
    out, _ = rig.step()  # joint states on the new clock
    np.testing.assert_array_equal(out.positions, HOME)  # restarts where the arm is, at rest
    rig.run(moved({0: 0.3}), 50)  # targets on the new clock are followed again
    assert rig.outputs[-1][0] > HOME[0] + 0.1 and not rig.violations()


def test_states_on_a_new_clock_before_the_next_period_still_restart_at_the_arm():
    # The order a busy node can see after a simulator restart: the new clock and its first
    # joint states arrive before the output timer runs again (failed test/test_faults.py).
    rig = Rig()
    rig.run(moved({0: 0.3}), 30)
    rig.now, rig.arm = 1.0, HOME.copy()
    assert rig.filter.set_measured(NAMES, rig.arm, rig.now, rig.now)
    out = rig.filter.step(rig.now)
    assert out.state == SafetyState.FAULT and out.positions is None and "clock jumped back" in out.reason
    out, _ = rig.step()
    np.testing.assert_array_equal(out.positions, HOME)


def test_joint_states_after_a_wall_clock_silence_restart_at_the_arm_whatever_the_simulated_clock_says():
    # A fresh-clone CI run: the restarted simulator's clock had passed the old one by ~0.1 s when
    # this node first heard it, so neither a jump back nor a stale state showed in simulated time,
    # and 0.1 s let the arm "move" the 0.455 rad back to its start pose; the old command was held
    # 0.455 rad from the arm. Only the wall clock saw the seconds the simulator was gone.
    rig = Rig()
    wall = 5000.0  # a monotonic clock: another origin than simulated time
    for _ in range(60):
        rig.step(moved({0: 0.5}), measured=False)
        wall += rig.dt
        assert rig.filter.set_measured(NAMES, rig.arm, rig.now, rig.now, arrival=wall)
    assert rig.arm[0] > HOME[0] + 0.3
    rig.now += 0.12
    rig.arm = HOME.copy()
    assert rig.filter.set_measured(NAMES, rig.arm, rig.now, rig.now, arrival=wall + 4.0)
    out = rig.filter.step(rig.now)
    assert out.state == SafetyState.FAULT and out.positions is None
    assert "resumed after 4.000 s on the wall clock: restarting at the arm" in out.reason
    rig.outputs, rig.start = [], HOME.copy()
    rig.now += rig.dt
    assert rig.filter.set_measured(NAMES, rig.arm, rig.now, rig.now, arrival=wall + 4.01)
    out = rig.filter.step(rig.now)
    np.testing.assert_array_equal(out.positions, HOME)


def test_an_output_period_after_a_wall_clock_silence_publishes_nothing_until_the_arm_is_measured():
    # test_faults under load: the restarted simulator's clock was heard (0.1 s past the old one)
    # before any of its joint states, so the output timer ran again with a state 0.1 s old in
    # simulated time and held the old command 0.456 rad from the restarted arm.
    rig = Rig()
    wall = 5000.0  # a monotonic clock: another origin than simulated time
    arm = HOME.copy()
    for _ in range(60):
        rig.now += rig.dt
        wall += rig.dt
        assert rig.filter.set_measured(NAMES, arm, rig.now, rig.now, arrival=wall)
        rig.filter.set_target(NAMES, moved({0: 0.5}), rig.now, rig.now)
        arm = rig.filter.step(rig.now, arrival=wall).positions
    assert arm[0] > HOME[0] + 0.3
    rig.now += 0.1
    out = rig.filter.step(rig.now, arrival=wall + 4.0)
    assert out.state == SafetyState.FAULT and out.positions is None
    assert "none accepted for 4.000 s on the wall clock" in out.reason
    rig.now += rig.dt
    assert rig.filter.set_measured(NAMES, HOME, rig.now, rig.now, arrival=wall + 4.01)
    out = rig.filter.step(rig.now, arrival=wall + 4.01)
    np.testing.assert_array_equal(out.positions, HOME)


def test_a_target_while_joint_states_are_stale_does_not_restart_at_the_stale_position():
    # A target arriving after a state timeout, just before the first fresh state: the stream
    # must restart where the arm is now, not where it was last measured (0.94 rad away in a
    # test/test_faults.py run).
    rig = Rig()
    goal = moved({0: 0.3})
    rig.run(goal, 30)
    timeout = rig.filter.config.state_timeout
    for _ in range(int(timeout / rig.dt) + 2):
        rig.step(measured=False)
    rig.now += rig.dt
    verdict = rig.filter.set_target(NAMES, goal, rig.now, rig.now)
    assert not verdict and "stale" in verdict.reason
    rig.arm = HOME.copy()  # a restarted simulator
    assert rig.filter.set_measured(NAMES, rig.arm, rig.now, rig.now)
    out = rig.filter.step(rig.now)
    np.testing.assert_array_equal(out.positions, HOME)


def test_joint_states_that_jump_further_than_the_arm_can_move_restart_the_stream_at_the_arm():
    # A simulator restarted on a clock already past the old one looks continuous in time, but
    # its arm is back at the start pose: the old command must not be held 0.3 rad from it.
    rig = Rig()
    rig.run(moved({0: 0.3}), 60)
    assert rig.arm[0] > HOME[0] + 0.2
    rig.arm = HOME.copy()
    out, _ = rig.step()
    assert out.state == SafetyState.FAULT and out.positions is None
    assert "/joint_states jumped" in out.reason and "panda_joint1" in out.reason
    rig.outputs, rig.start = [], HOME.copy()
    out, _ = rig.step()
    np.testing.assert_array_equal(out.positions, HOME)
    rig.run(moved({0: 0.3}), 50)
    assert rig.outputs[-1][0] > HOME[0] + 0.1 and not rig.violations()


def test_an_arm_moving_at_its_velocity_limit_is_not_taken_for_a_jump():
    start = HOME.copy()
    start[7] = 0.0  # fingers closed, so the first measurement of the opening ones is inside the limits
    rig = Rig(start=start)
    limit = rig.filter.config.joint_limits.velocity
    for _ in range(50):
        rig.now += rig.dt
        rig.arm = rig.arm + limit * rig.dt  # every joint at its limit
        assert rig.filter.set_measured(NAMES, rig.arm, rig.now, rig.now)
        out = rig.filter.step(rig.now)
        assert out.state != SafetyState.FAULT, out.reason


def test_estop_latches_brakes_to_rest_and_resets_only_on_request():
    rig = Rig()
    goal = moved({0: 1.5})
    rig.run(goal, 40)  # moving fast
    rig.filter.trigger_estop("test")
    outs = rig.run(goal, 60)
    assert all(out.state == SafetyState.ESTOP for out in outs)
    assert not rig.violations()
    assert np.array_equal(outs[-1].positions, outs[-2].positions)  # at rest
    _, verdict = rig.step(goal)
    assert not verdict and "e-stop latched" in verdict.reason
    assert rig.filter.set_confidence(1.0)  # nothing but a reset releases it
    assert rig.step(goal)[0].state == SafetyState.ESTOP
    assert rig.filter.reset_estop() and not rig.filter.reset_estop()
    assert rig.step()[0].state == SafetyState.HOLD  # no motion until a new command
    rig.run(goal, 200)
    np.testing.assert_allclose(rig.outputs[-1], goal, atol=1e-12)
    assert rig.filter.counters.estops_triggered == 1


def test_low_confidence_holds_until_a_confident_chunk():
    rig = Rig()
    goal = moved({2: 0.5})
    assert rig.step(goal)[0].state in (SafetyState.OK, SafetyState.LIMITED)  # no chunks yet: gate open
    assert not rig.filter.set_confidence(0.1)
    out, verdict = rig.step(goal)
    assert out.state == SafetyState.HOLD and "low confidence 0.100" in out.reason
    assert not verdict and "low confidence" in verdict.reason
    assert not rig.filter.set_confidence(math.nan)
    assert rig.filter.set_confidence(0.9)
    rig.run(goal, 150)
    np.testing.assert_allclose(rig.outputs[-1], goal, atol=1e-12)


def test_target_confidence_drives_the_gate_too():
    rig = Rig()
    out, verdict = rig.step(moved({0: 0.1}), confidence=0.05)
    assert not verdict and out.state == SafetyState.HOLD


def test_targets_beyond_position_limits_are_clipped():
    rig = Rig()
    _, verdict = rig.step(moved({6: 10.0}))
    assert verdict and "position limits: panda_joint7" in verdict.reason
    rig.run(moved({6: 10.0}), 300)
    upper = rig.filter.config.joint_limits.upper[6]
    assert rig.outputs[-1][6] == pytest.approx(upper, abs=1e-12)
    assert not rig.violations()
    assert rig.filter.counters.commands_limited >= 1


def test_a_target_below_the_table_is_clipped_back_into_the_workspace():
    rig = Rig()
    below = moved({1: 1.6, 3: 0.3})  # reaching forward and down, through the table
    assert rig.filter.config.workspace.check(below[:7]).violation > 0
    _, verdict = rig.step(below)
    assert verdict and "workspace" in verdict.reason
    rig.run(below, 200)
    assert not rig.violations()
    final = rig.filter.config.workspace.check(rig.outputs[-1][:7])
    assert 0 <= final.margin < 1e-3  # it went as far as it may


def test_the_command_never_runs_away_from_a_stuck_arm():
    rig = Rig()
    stuck = HOME.copy()
    for _ in range(100):
        rig.step(moved({0: 1.0}))
        rig.arm = stuck  # joint states keep reporting the start pose
    # It leads by the allowed step plus at most the distance it needs to brake, then holds there.
    lead = rig.filter.config.max_step_from_measured
    out, _ = rig.step(moved({0: 1.0}))
    assert lead < out.positions[0] < lead + 0.2 and out.state == SafetyState.HOLD
    assert "tracking error: panda_joint1" in out.reason
    np.testing.assert_array_equal(rig.outputs[-1], rig.outputs[-10])


def test_a_tracking_error_beyond_the_lead_holds():
    rig = Rig()
    rig.run(moved({0: 0.05}), 10)
    pushed = rig.arm.copy()
    for _ in range(50):  # the arm is pushed away at 1 rad/s while the filter holds its command
        rig.now += rig.dt
        pushed[0] -= 0.01
        rig.filter.set_measured(NAMES, pushed, rig.now, rig.now)
        rig.filter.set_target(NAMES, moved({0: 0.05}), rig.now, rig.now)
        out = rig.filter.step(rig.now)
    assert out.state == SafetyState.HOLD and "tracking error: panda_joint1" in out.reason


def test_counters_add_up():
    rig = Rig()
    rig.step(moved({0: 0.5}))
    rig.step([math.nan] * 8)
    rig.run(moved({0: 0.5}), 5)
    c = rig.filter.counters
    assert (c.commands_received, c.commands_rejected) == (7, 1)
    assert c.outputs == 7 and c.outputs_limited >= 1 and c.commands_limited >= 1


@pytest.mark.parametrize("field, value", [("rate", 0.0), ("command_timeout", -1.0), ("confidence_threshold", 2.0),
                                          ("max_future_stamp", math.nan)])
def test_invalid_configuration_is_refused(field, value):
    with pytest.raises(ValueError, match=field):
        SafetyConfig(**{field: value})
