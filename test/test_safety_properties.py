"""Property-based tests of the safety filter core: random limits, adversarial command streams.

Whatever comes in, every command that comes out respects the position,
velocity, acceleration and jerk limits (finite differences at the output
period) and the workspace; a feasible smooth trajectory passes unchanged.
"""
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_ros import arm
from vla_ros.safety import JointLimitSet, SafetyConfig, SafetyFilter, SafetyState, Workspace, build_joint_limits, fuzz
from vla_ros.safety.audit import stream_violations

NAMES = list(arm.COMMANDED_JOINTS)
HOME = arm.home_vector()
# No wall around the arm: lets trajectories range freely when only joint limits are under test.
OPEN_SPACE = Workspace(box_min=(-5.0, -5.0, -5.0), box_max=(5.0, 5.0, 5.0), table_z=-5.0)


@st.composite
def joint_limits(draw):
    """Limits around the home pose; jerk sometimes low enough to be the binding constraint."""
    unit = st.floats(0.0, 1.0)
    below = np.array([draw(unit) for _ in NAMES])
    above = np.array([draw(unit) for _ in NAMES])
    # rad for the arm joints, m for the gripper
    least, most = np.array([0.05] * 7 + [0.002]), np.array([1.2] * 7 + [0.02])
    lower = HOME - (least + below * most)
    upper = HOME + (least + above * most)
    velocity = np.array([draw(st.floats(0.05, 3.0)) for _ in NAMES])
    acceleration = np.array([draw(st.floats(0.5, 30.0)) for _ in NAMES])
    jerk = np.array([draw(st.floats(5.0, 8000.0)) for _ in NAMES])
    return JointLimitSet(lower=lower, upper=upper, velocity=velocity, acceleration=acceleration, jerk=jerk)


@st.composite
def workspaces(draw):
    """A box around the home TCP and flange and a table plane, close enough for random targets to reach."""
    frames = arm.forward_kinematics(HOME[:7])
    flange, tcp = frames[-2][:3, 3], frames[-1][:3, 3]
    below = np.array([draw(st.floats(0.05, 0.4)) for _ in range(3)])
    above = np.array([draw(st.floats(0.05, 0.4)) for _ in range(3)])
    return Workspace(box_min=tuple(np.minimum(tcp, flange) - below), box_max=tuple(np.maximum(tcp, flange) + above),
                     table_z=draw(st.floats(-0.2, 0.3)))


@settings(max_examples=120, deadline=None, derandomize=True)
@given(
    limits=st.one_of(st.just(build_joint_limits()), joint_limits()),
    schedule=st.lists(st.tuples(st.sampled_from(fuzz.EVENTS), st.integers(1, 12)), min_size=10, max_size=60),
    seed=st.integers(0, 2**31 - 1),
    rate=st.sampled_from([50.0, 100.0, 250.0]),
    workspace=st.one_of(st.just(OPEN_SPACE), st.just(Workspace()), workspaces()),
)
def test_adversarial_streams_never_break_a_limit(limits, schedule, seed, rate, workspace):
    flt = SafetyFilter(SafetyConfig(rate=rate, joint_limits=limits, workspace=workspace, state_timeout=0.05))
    for rest, commands in fuzz.drive(flt, schedule, HOME, seed):
        problems = stream_violations(commands, flt.config.dt, limits, workspace, start=rest)
        assert not problems, problems


def _minimum_jerk(start, goal, duration, dt):
    s = np.clip(np.arange(1, int(math.ceil(duration / dt)) + 1) * dt / duration, 0.0, 1.0)[:, None]
    blend = 10 * s**3 - 15 * s**4 + 6 * s**5
    return start + blend * (goal - start)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(limits=joint_limits(), seed=st.integers(0, 2**31 - 1), rate=st.sampled_from([50.0, 100.0, 250.0]),
       lag=st.integers(1, 3))
def test_feasible_smooth_trajectory_passes_unchanged(limits, seed, rate, lag):
    rng = np.random.default_rng(seed)
    flt = SafetyFilter(SafetyConfig(rate=rate, joint_limits=limits, workspace=OPEN_SPACE))
    dt = flt.config.dt
    # Minimum-jerk moves at most 80 % of each limit (acceleration as usable with the jerk bound at dt).
    usable_acceleration = np.minimum(limits.acceleration, limits.jerk * dt / 2)
    inner_low = limits.lower + 0.02 * (limits.upper - limits.lower)
    inner_high = limits.upper - 0.02 * (limits.upper - limits.lower)
    trajectory, position = [], np.clip(HOME, inner_low, inner_high)
    start = position
    for _ in range(3):
        # About what a 1 s move may cover within the limits (so that slow random limits stay quick to
        # test), often ending right at a position limit (braking into it).
        reach = np.minimum.reduce([0.8 * limits.velocity / 1.875, 0.8 * usable_acceleration / 5.7735,
                                   0.8 * limits.jerk / 60.0])
        goal = np.clip(position + rng.uniform(-2.0, 2.0, len(NAMES)) * reach, inner_low, inner_high)
        distance = np.abs(goal - position)
        duration = max(
            np.max(1.875 * distance / (0.8 * limits.velocity)),
            np.max(np.sqrt(5.7735 * distance / (0.8 * usable_acceleration))),
            np.max(np.cbrt(60.0 * distance / (0.8 * limits.jerk))),
            dt,
        )
        trajectory.extend(_minimum_jerk(position, goal, duration, dt))
        position = goal
    trajectory = np.array(trajectory)
    assert not stream_violations(trajectory, dt, limits, start=start)

    now, history, limited = 10.0, [start] * (lag + 1), 0
    outputs = []
    for target in trajectory:
        now += dt
        flt.set_measured(NAMES, history[-1 - lag], stamp=now, now=now)
        assert flt.set_target(NAMES, target, stamp=now, now=now)
        out = flt.step(now)
        limited += out.state == SafetyState.LIMITED
        assert out.state in (SafetyState.OK, SafetyState.LIMITED), out.reason
        outputs.append(out.positions)
        history.append(out.positions)
    assert limited == 0, f"{limited} of {len(trajectory)} steps falsely limited"
    np.testing.assert_allclose(np.array(outputs), trajectory, atol=1e-9)
