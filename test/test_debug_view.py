"""vla_ros/debug_view.py without ROS: projection against MuJoCo's camera, path FK, box edges, drawing."""
import math

import mujoco
import numpy as np
import pytest

from vla_ros import arm, debug_view, description

SCENE_FRAME = "scene_camera_optical_frame"
WIDTH, HEIGHT = 640, 480


def _scene_k(width=WIDTH, height=HEIGHT) -> list[float]:
    """The intrinsics mujoco_sim_node publishes for the scene camera (square pixels, vertical fovy)."""
    model = mujoco.MjModel.from_xml_path(str(description.MJCF_PATH))
    focal = (height / 2) / math.tan(math.radians(model.cam_fovy[model.camera("scene").id]) / 2)
    return [focal, 0.0, (width - 1) / 2, 0.0, focal, (height - 1) / 2, 0.0, 0.0, 1.0]


def _scene_camera() -> debug_view.PinholeCamera:
    camera = debug_view.camera_for(SCENE_FRAME, _scene_k(), (WIDTH, HEIGHT), (WIDTH, HEIGHT),
                                   debug_view.known_camera_poses())
    assert camera is not None
    return camera


def test_projection_matches_mujocos_camera():
    model = mujoco.MjModel.from_xml_path(str(description.MJCF_PATH))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    position, xmat = data.cam("scene").xpos, data.cam("scene").xmat.reshape(3, 3)
    focal = _scene_k()[0]
    points = np.random.default_rng(0).uniform([0.2, -0.4, 0.0], [0.8, 0.4, 0.5], (50, 3))
    # MuJoCo's camera frame: x right, y up, looking along -z.
    local = (points - position) @ xmat
    expected = np.column_stack([(WIDTH - 1) / 2 + focal * local[:, 0] / -local[:, 2],
                                (HEIGHT - 1) / 2 - focal * local[:, 1] / -local[:, 2]])
    pixels, visible = _scene_camera().project(points)
    assert visible.all()
    np.testing.assert_allclose(pixels, expected, atol=1e-6)
    # The MJCF aims the camera at (0.48, 0, 0.04): the image centre.
    centre, _ = _scene_camera().project([[0.48, 0.0, 0.04]])
    np.testing.assert_allclose(centre[0], [(WIDTH - 1) / 2, (HEIGHT - 1) / 2], atol=3.0)


def test_points_behind_the_camera_are_not_visible():
    camera = _scene_camera()
    behind = camera.position - camera.rotation[:, 2]  # one metre behind, on the optical axis
    _, visible = camera.project([behind, camera.position + 0.01 * camera.rotation[:, 2]])
    assert not visible.any()


def test_cameras_without_pose_or_calibration_get_none_and_resized_images_scale():
    poses = debug_view.known_camera_poses()
    assert set(poses) == {SCENE_FRAME}  # the wrist camera moves with the hand: no fixed pose
    assert debug_view.camera_for("usb_camera", _scene_k(), (WIDTH, HEIGHT), (WIDTH, HEIGHT), poses) is None
    assert debug_view.camera_for(SCENE_FRAME, [0.0] * 9, (WIDTH, HEIGHT), (WIDTH, HEIGHT), poses) is None
    half = debug_view.camera_for(SCENE_FRAME, _scene_k(), (WIDTH, HEIGHT), (WIDTH // 2, HEIGHT // 2), poses)
    point = [[0.5, 0.1, 0.1]]
    np.testing.assert_allclose(half.project(point)[0], _scene_camera().project(point)[0] / 2, atol=0.5)


def test_tcp_path_is_forward_kinematics_of_each_row_by_name():
    rows = np.tile(arm.home_vector(), (3, 1))
    rows[:, 1] += [0.0, 0.1, 0.2]
    expected = [arm.tcp_position(row[:7]) for row in rows]
    np.testing.assert_allclose(debug_view.tcp_path(arm.COMMANDED_JOINTS, rows), expected)
    order = [7, 3, 0, 1, 2, 4, 6, 5]
    names = [arm.COMMANDED_JOINTS[i] for i in order]
    np.testing.assert_allclose(debug_view.tcp_path(names, rows[:, order]), expected)
    with pytest.raises(ValueError, match="panda_joint7"):
        debug_view.tcp_path(arm.COMMANDED_JOINTS[:6], rows[:, :6])


def test_tcp_path_refuses_short_and_non_finite_rows():
    # Found by bench/bench_fuzz.py: a chunk with fewer positions than names raised IndexError
    # and killed debug_view_node; a NaN path crashed its drawing.
    rows = np.tile(arm.home_vector(), (2, 1))
    with pytest.raises(ValueError, match="3 positions for 8 joint names"):
        debug_view.tcp_path(arm.COMMANDED_JOINTS, [rows[0], rows[1][:3]])
    rows[1, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        debug_view.tcp_path(arm.COMMANDED_JOINTS, rows)


@pytest.mark.parametrize("k", [[math.nan] * 9, [1e300, 0, 0, 0, 1e300, 0, 0, 0, 1]])
def test_garbage_intrinsics_draw_nothing_instead_of_crashing(k):
    # A CameraInfo with NaN or huge K (as bench/bench_fuzz.py sends) made OpenCV refuse the
    # pixel coordinates, and debug_view_node died.
    camera = debug_view.camera_for(SCENE_FRAME, k, (WIDTH, HEIGHT), (WIDTH, HEIGHT), debug_view.known_camera_poses())
    tcp, path = _visible_path()
    frame = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    out = debug_view.annotate(frame, debug_view.Overlay(tcp=tcp, path=path), camera)
    assert (out[100:] == 128).all()
    assert not camera.project(path)[1].any()


def test_box_edges_are_the_twelve_edges():
    low, high = np.array([-0.2, -0.7, 0.0]), np.array([0.9, 0.7, 1.2])
    ends = debug_view.box_edges(low, high).reshape(12, 2, 3)
    lengths = sorted(np.linalg.norm(ends[:, 0] - ends[:, 1], axis=1))
    np.testing.assert_allclose(lengths, sorted(np.repeat(high - low, 4)))
    corners = {tuple(p) for p in ends.reshape(-1, 3)}
    assert len(corners) == 8 and len({tuple(sorted(map(tuple, e))) for e in ends}) == 12


def _visible_path() -> tuple[np.ndarray, np.ndarray]:
    """Current TCP and a path that the scene camera sees: reaching forward and down from home."""
    rows = np.tile(arm.home_vector(), (5, 1))
    rows[:, 1] += np.linspace(0.5, 1.1, 5)
    rows[:, 3] += 0.5
    return arm.tcp_position(rows[0, :7]), debug_view.tcp_path(arm.COMMANDED_JOINTS, rows[1:])


def test_annotation_draws_states_and_the_projected_path_on_a_copy():
    frame = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    tcp, path = _visible_path()
    overlay = debug_view.Overlay("pick up the red cube", "RUNNING", "", "ESTOP", "operator", tcp, path)
    out = debug_view.annotate(frame, overlay, _scene_camera())
    assert (frame == 128).all() and out.shape == frame.shape and out.dtype == np.uint8
    pixels, visible = _scene_camera().project(path)
    end = np.round(pixels[-1]).astype(int)
    assert visible.all() and 0 <= end[0] < WIDTH and 100 <= end[1] < HEIGHT, end  # below the text band
    assert tuple(out[end[1], end[0]]) == debug_view.PATH_COLOUR
    band = out[:60]
    for state in ("RUNNING", "ESTOP"):
        assert (band == debug_view.STATE_COLOURS[state]).all(axis=2).any(), state
    assert (out[100:, :] == 128).all(axis=2).mean() > 0.95  # the scene stays visible


def test_without_a_camera_pose_the_motion_is_shown_as_arrows():
    frame = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    tcp, path = _visible_path()
    overlay = debug_view.Overlay(tcp=tcp, path=path)
    out = debug_view.annotate(frame, overlay, None)
    panel = out[HEIGHT - 150 :, WIDTH - 150 :]
    assert (panel == debug_view.PATH_COLOUR).all(axis=2).sum() > 20
    # Forward (+x) motion points up the panel: the arrow's pixels lie above its centre.
    ys, _ = np.nonzero((panel == debug_view.PATH_COLOUR).all(axis=2)[:, :110])
    assert path[-1][0] > tcp[0] and ys.mean() < 75
    plain = debug_view.annotate(frame, debug_view.Overlay(), None)
    assert (plain[100:] == 128).all()  # no path: nothing but the text band
