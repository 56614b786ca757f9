"""The shared arm kinematics: Jacobian, rotations and damped least-squares IK."""
import numpy as np
import pytest

from vla_ros import arm, kinematics

LIMITS = arm.limits_arrays(arm.ARM_JOINTS)


def _random_configurations(count: int, seed: int = 0) -> np.ndarray:
    """Configurations well inside the limits (where the arm is not folded onto a limit)."""
    rng = np.random.default_rng(seed)
    span = LIMITS["upper"] - LIMITS["lower"]
    return rng.uniform(LIMITS["lower"] + 0.2 * span, LIMITS["upper"] - 0.2 * span, (count, 7))


@pytest.mark.parametrize("q", _random_configurations(5), ids=range(5))
def test_jacobian_matches_finite_differences_of_forward_kinematics(q):
    jac = kinematics.jacobian(q)
    position, rotation = kinematics.tcp_pose(q)
    eps = 1e-6
    for joint in range(7):
        moved = q.copy()
        moved[joint] += eps
        moved_position, moved_rotation = kinematics.tcp_pose(moved)
        np.testing.assert_allclose(jac[:3, joint], (moved_position - position) / eps, atol=1e-5)
        np.testing.assert_allclose(jac[3:, joint], kinematics.rotation_error(moved_rotation, rotation) / eps, atol=1e-5)


def test_rotation_vector_round_trips_through_axis_angle():
    rng = np.random.default_rng(1)
    for _ in range(200):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        angle = rng.uniform(0.0, np.pi - 1e-3)
        rotation = kinematics.axis_angle_matrix(axis * angle)
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(kinematics.rotation_vector(rotation), axis * angle, atol=1e-9)
    assert np.all(kinematics.rotation_vector(np.eye(3)) == 0.0)
    # Beyond pi the short way round is the other direction.
    np.testing.assert_allclose(kinematics.rotation_vector(kinematics.axis_angle_matrix([0, 0, 1.5 * np.pi])),
                               [0, 0, -0.5 * np.pi], atol=1e-12)


def test_euler_matrix_is_roll_then_pitch_then_yaw_about_fixed_axes():
    roll, pitch, yaw = 0.3, -0.7, 1.1
    expected = (kinematics.axis_angle_matrix([0, 0, yaw]) @ kinematics.axis_angle_matrix([0, pitch, 0])
                @ kinematics.axis_angle_matrix([roll, 0, 0]))
    np.testing.assert_allclose(kinematics.euler_matrix(roll, pitch, yaw), expected, atol=1e-12)
    np.testing.assert_allclose(kinematics.euler_matrix(0.2, 0, 0) @ [0, 1, 0], [0, np.cos(0.2), np.sin(0.2)])


@pytest.mark.parametrize("q", _random_configurations(5, seed=2), ids=range(5))
def test_ik_reaches_a_nearby_pose(q):
    position, rotation = kinematics.tcp_pose(q)
    rng = np.random.default_rng(3)
    goal_position = position + rng.uniform(-0.02, 0.02, 3)
    goal_rotation = kinematics.axis_angle_matrix(rng.uniform(-0.05, 0.05, 3)) @ rotation
    solution = kinematics.solve_ik(q, goal_position, goal_rotation, iterations=20, posture_gain=0.0)
    reached_position, reached_rotation = kinematics.tcp_pose(solution)
    assert np.linalg.norm(reached_position - goal_position) < 1e-4
    assert np.linalg.norm(kinematics.rotation_error(goal_rotation, reached_rotation)) < 1e-3


def test_ik_stays_inside_the_joint_limits_for_an_unreachable_goal():
    q = arm.home_vector()[:7]
    _, rotation = kinematics.tcp_pose(q)
    solution = kinematics.solve_ik(q, np.array([3.0, 0.0, 0.5]), rotation, iterations=50)
    assert np.all(solution >= LIMITS["lower"] + kinematics.LIMIT_MARGIN - 1e-12)
    assert np.all(solution <= LIMITS["upper"] - kinematics.LIMIT_MARGIN + 1e-12)
