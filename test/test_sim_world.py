"""The MuJoCo world: it loads offline, matches vla_ros/arm.py, lays out seeded episodes,
tracks joint targets within the limits, and renders."""
import mujoco
import numpy as np
import pytest

from vla_ros import arm, vocabulary
from vla_ros.policies.base import CONTROL_DT
from vla_ros.sim import tasks
from vla_ros.sim.world import ASSET_PATH, OBJECT_AREA, PUSH_AREA, SimWorld, joint_targets_by_name


@pytest.fixture(scope="module")
def world():
    sim = SimWorld(image_size=64)
    yield sim
    sim.close()


def test_model_loads_from_the_package_and_names_the_arm_joints():
    model = mujoco.MjModel.from_xml_path(str(ASSET_PATH))
    for name in arm.STATE_JOINTS:
        assert model.joint(name) is not None
    for name in arm.COMMANDED_JOINTS:
        assert model.actuator(name) is not None


def test_joint_and_actuator_ranges_match_the_arm_limits(world):
    for name in arm.COMMANDED_JOINTS:
        limit = arm.PANDA_LIMITS[name]
        np.testing.assert_allclose(world.model.joint(name).range, [limit.lower, limit.upper])
        np.testing.assert_allclose(world.model.actuator(name).ctrlrange, [limit.lower, limit.upper])


def test_tcp_site_matches_the_dh_kinematics_of_arm_py(world):
    data = mujoco.MjData(world.model)
    limits = arm.limits_arrays(arm.ARM_JOINTS)
    rng = np.random.default_rng(0)
    qpos = [world.model.joint(n).qposadr[0] for n in arm.ARM_JOINTS]
    site = world.model.site("tcp").id
    for _ in range(200):
        q = rng.uniform(limits["lower"], limits["upper"])
        data.qpos[qpos] = q
        mujoco.mj_kinematics(world.model, data)
        expected = arm.forward_kinematics(q)[-1]
        np.testing.assert_allclose(data.site_xpos[site], expected[:3, 3], atol=1e-6)
        np.testing.assert_allclose(data.site_xmat[site].reshape(3, 3), expected[:3, :3], atol=1e-6)


def test_pose_arm_puts_the_arm_there_at_once_within_its_limits(world):
    world.reset(3)
    posed = arm.home_vector() + np.array([0.3, -0.2, 0.1, 0.2, -0.1, 0.3, 0.2, -0.02])
    world.pose_arm(posed)
    np.testing.assert_allclose(world.joint_positions(), posed, atol=1e-9)
    np.testing.assert_allclose(world.tcp_position(), arm.tcp_position(posed[:7]), atol=1e-6)
    world.pose_arm(np.full(8, 10.0))  # clipped to the upper limits, not past them
    np.testing.assert_allclose(world.joint_positions(), arm.limits_arrays()["upper"])


def _layout(world):
    return {name: pose[0].round(6).tolist() for name, pose in world.object_poses().items()}


def test_reset_is_deterministic_for_a_seed_and_varies_across_seeds(world):
    world.reset(7)
    first = (world.present, _layout(world), world.model.light_dir.copy(), world.model.cam_pos.copy(),
             world.joint_positions())
    world.reset(8)
    other = _layout(world)
    world.reset(7)
    assert world.present == first[0]
    assert _layout(world) == first[1]
    np.testing.assert_array_equal(world.model.light_dir, first[2])
    np.testing.assert_array_equal(world.model.cam_pos, first[3])
    np.testing.assert_allclose(world.joint_positions(), first[4])
    assert other != first[1]


def test_episodes_place_objects_apart_in_the_workspace(world):
    for seed in range(20):
        world.reset(seed)
        assert 3 <= len(world.present) <= 5
        state = world.snapshot()
        positions = [state.bodies[name].position for name in world.present]
        for position in positions:
            (x0, x1), (y0, y1) = OBJECT_AREA
            assert x0 <= position[0] <= x1 and y0 <= position[1] <= y1
            assert position[2] == pytest.approx(state.bodies[world.present[0]].half_height, abs=0.004)
        gaps = [np.linalg.norm(a[:2] - b[:2]) for i, a in enumerate(positions) for b in positions[i + 1:]]
        assert min(gaps) > 0.08
        assert not world.in_hand() and world.time == 0.0


def test_reset_with_a_task_puts_its_objects_on_the_table_and_leaves_room_to_push(world):
    spec = {"task": "push", "object": "yellow cylinder", "direction": "right"}
    for seed in range(10):
        world.reset(seed, spec)
        assert "yellow cylinder" in world.present
        assert world.task["distance"] == tasks.PUSH_DEFAULT_DISTANCE
        start = world.snapshot().bodies["yellow cylinder"].position
        destination = start[:2] + np.array([0.0, -0.1])
        (x0, x1), (y0, y1) = PUSH_AREA
        assert x0 <= destination[0] <= x1 and y0 <= destination[1] <= y1
        for other in world.present:
            if other != "yellow cylinder":
                assert np.linalg.norm(world.snapshot().bodies[other].position[:2] - destination) > 0.06
        assert not world.success()


def test_home_and_gripper_tasks_start_unsolved(world):
    for spec in ({"task": "home"}, {"task": "open_gripper"}, {"task": "close_gripper"}):
        for seed in range(5):
            world.reset(seed, spec)
            assert not world.success(), (spec, seed)


def test_set_task_refuses_objects_that_are_not_on_the_table(world):
    world.reset(3)
    absent = next(name for name in vocabulary.OBJECTS if name not in world.present)
    with pytest.raises(tasks.TaskError, match=f"{absent} not on the table"):
        world.set_task({"task": "pick", "object": absent})
    with pytest.raises(tasks.TaskError, match="unknown object"):
        world.set_task({"task": "pick", "object": "purple cube"})


def test_set_task_refuses_a_push_that_leaves_the_workspace(world):
    far = PUSH_AREA[0][1] - 0.2 + 0.01  # an object beyond this cannot go 0.2 m further forward
    for seed in range(50):
        world.reset(seed)
        state = world.snapshot()
        beyond = [name for name in world.present if state.bodies[name].position[0] > far]
        if beyond:
            break
    with pytest.raises(tasks.TaskError, match="would leave the reachable area"):
        world.set_task({"task": "push", "object": beyond[0], "direction": "forward", "distance": 0.2})
    world.set_task({"task": "push", "object": beyond[0], "direction": "forward", "distance": 0.03})


def test_step_tracks_targets(world):
    world.reset(1)
    start = world.joint_positions()
    target = start + np.r_[[0.1, -0.1, 0.1, 0.1, -0.1, 0.1, 0.1], -0.02]
    for _ in range(5):
        world.step(target)
    np.testing.assert_allclose(world.joint_positions(), target, atol=2e-3)
    np.testing.assert_allclose(world.joint_goal(), target)
    assert world.time == pytest.approx(5 * CONTROL_DT + 0.0, abs=1e-9)


def test_a_far_target_is_reached_no_faster_than_the_velocity_limits(world):
    world.reset(1)
    start = world.joint_positions()
    target = start.copy()
    target[0] += 1.0
    world.command(target)  # no ramp duration asked: the velocity limit sets the pace
    world.advance(0.2)
    moved = world.joint_positions()[0] - start[0]
    assert 0.3 < moved <= arm.PANDA_LIMITS["panda_joint1"].velocity * 0.2 + 1e-3


def test_fingers_mirror_each_other(world):
    world.reset(2)
    for opening in (0.0, 0.03, 0.01):
        target = world.joint_positions()
        target[7] = opening
        world.command(target)
        world.advance(0.6)
        positions, _, _ = world.joint_state()
        assert positions[7] == pytest.approx(opening, abs=1e-3)
        assert positions[8] == pytest.approx(positions[7], abs=1e-4)


@pytest.mark.parametrize(
    "targets, message",
    [
        (np.zeros(7), "expected 8 joint targets"),
        (np.r_[arm.home_vector()[:7], np.nan], "finite"),
        (np.r_[arm.home_vector()[:3], 0.5, arm.home_vector()[4:]], "outside the limits: panda_joint4"),
    ],
)
def test_command_rejects_bad_targets_and_keeps_the_old_goal(world, targets, message):
    world.reset(1)
    goal = world.joint_goal()
    with pytest.raises(ValueError, match=message):
        world.command(targets)
    np.testing.assert_array_equal(world.joint_goal(), goal)


def test_joint_targets_are_matched_by_name():
    hold = arm.home_vector()
    targets = joint_targets_by_name(["panda_finger_joint1", "panda_joint2"], [0.01, -0.5], hold)
    expected = hold.copy()
    expected[7], expected[1] = 0.01, -0.5
    np.testing.assert_array_equal(targets, expected)


@pytest.mark.parametrize(
    "names, positions, message",
    [
        ([], [], "no joint names"),
        (["panda_joint1"], [0.1, 0.2], "1 names but 2 positions"),
        (["panda_joint9"], [0.1], "unknown joint"),
        (["panda_finger_joint2"], [0.01], "unknown joint"),  # the mirrored finger is not commandable
        (["panda_joint1", "panda_joint1"], [0.1, 0.1], "repeated"),
        (["panda_joint1"], [float("nan")], "non-finite"),
        (["panda_joint1"], [float("inf")], "non-finite"),
        (["panda_joint6"], [-1.0], "outside"),
    ],
)
def test_bad_commands_by_name_are_refused(names, positions, message):
    with pytest.raises(ValueError, match=message):
        joint_targets_by_name(names, positions, arm.home_vector())


def test_render_gives_distinct_rgb_images_per_seed(world):
    world.reset(4)
    first = world.render()
    assert first.shape == (64, 64, 3) and first.dtype == np.uint8
    assert first.std() > 10  # a scene, not a blank frame
    np.testing.assert_array_equal(world.render(), first)
    world.reset(5)
    assert np.abs(world.render().astype(int) - first).mean() > 1.0
    observation = world.observation()
    assert observation.image.shape == (64, 64, 3) and observation.state.shape == (8,)
    assert observation.wrist_image is None
    assert world.render("wrist").shape == (64, 64, 3)
    with pytest.raises(ValueError, match="unknown camera"):
        world.render("ceiling")
