"""debug_view_node as its own process over real DDS: it annotates camera frames and publishes markers."""
import numpy as np
from builtin_interfaces.msg import Time
from conftest import CONFIG_DIR, spin_until
from sensor_msgs.msg import CameraInfo, Image, JointState
from test_debug_view import HEIGHT, SCENE_FRAME, WIDTH, _scene_camera, _scene_k, _visible_path
from trajectory_msgs.msg import JointTrajectoryPoint
from visualization_msgs.msg import Marker, MarkerArray
from vla_ros.msg import ActionChunk, PolicyStatus, SafetyStatus

from vla_ros import arm, debug_view, qos
from vla_ros.camera.ros_image import image_to_rgb, rgb_to_image_msg
from vla_ros.safety.config import load_config

STARTUP_TIMEOUT = 20.0


def _chunk(rows) -> ActionChunk:
    chunk = ActionChunk(instruction_id="a", confidence=0.9)
    chunk.trajectory.joint_names = list(arm.COMMANDED_JOINTS)
    chunk.trajectory.points = [JointTrajectoryPoint(positions=list(row)) for row in rows]
    return chunk


def test_frames_are_annotated_and_markers_published(ros_node, start_process):
    process = start_process("debug_view_node", "--ros-args", "--params-file", str(CONFIG_DIR / "debug_view_node.yaml"),
                            "-p", "rate:=0.0")
    images, markers = [], []
    ros_node.create_subscription(Image, "/vla/debug_image", images.append, qos.SENSOR)
    ros_node.create_subscription(MarkerArray, "/vla/markers", markers.append, qos.RELIABLE)
    image_pub = ros_node.create_publisher(Image, "/camera/image_raw", qos.SENSOR)
    info_pub = ros_node.create_publisher(CameraInfo, "/camera/camera_info", qos.SENSOR)
    states_pub = ros_node.create_publisher(JointState, "/joint_states", qos.RELIABLE)
    policy_pub = ros_node.create_publisher(PolicyStatus, "/vla/status", qos.RELIABLE)
    safety_pub = ros_node.create_publisher(SafetyStatus, "/safety/status", qos.RELIABLE)
    chunk_pub = ros_node.create_publisher(ActionChunk, "/vla/action_chunk", qos.RELIABLE)

    rows = np.tile(arm.home_vector(), (5, 1))
    rows[:, 1] += np.linspace(0.5, 1.1, 5)
    rows[:, 3] += 0.5
    tcp, path = _visible_path()  # the same rows: current pose first, then the chunk
    info = CameraInfo(width=WIDTH, height=HEIGHT, k=_scene_k())
    info.header.frame_id = SCENE_FRAME
    frame = rgb_to_image_msg(np.full((HEIGHT, WIDTH, 3), 128, np.uint8), Time(sec=42), SCENE_FRAME)

    def publish_all():
        info_pub.publish(info)
        states_pub.publish(JointState(name=list(arm.COMMANDED_JOINTS), position=list(rows[0])))
        policy_pub.publish(PolicyStatus(state=PolicyStatus.RUNNING, instruction="pick up the red cube"))
        safety_pub.publish(SafetyStatus(state=SafetyStatus.LIMITED, reason="velocity"))
        chunk_pub.publish(_chunk(rows[1:]))
        image_pub.publish(frame)

    ros_node.create_timer(0.1, publish_all)
    end = np.round(_scene_camera().project(path)[0][-1]).astype(int)

    def fully_annotated(message) -> bool:
        # Topics arrive in no set order (the first frames may precede the statuses): wait for a
        # frame drawn after all of them, with the path and both states in its top band.
        rgb = image_to_rgb(message)
        band = rgb[:60]
        return tuple(rgb[end[1], end[0]]) == debug_view.PATH_COLOUR and all(
            (band == debug_view.STATE_COLOURS[state]).all(axis=2).any() for state in ("RUNNING", "LIMITED"))

    assert spin_until(ros_node, lambda: any(map(fully_annotated, images)), STARTUP_TIMEOUT), process.output()
    out = next(m for m in images if fully_annotated(m))
    assert (out.encoding, out.width, out.height, out.header.frame_id, out.header.stamp.sec) == (
        "rgb8", WIDTH, HEIGHT, SCENE_FRAME, 42)

    # Markers are republished as inputs arrive: judge the first array drawn from all of them
    # (the chunk and /vla/status can reach the node after its first markers).
    def complete(array):
        by_ns = {m.ns: m for m in array.markers}
        return (len(array.markers) == 4 and array.markers[1].action == Marker.ADD
                and len(by_ns["predicted_path"].points) == len(path) + 1
                and "pick up the red cube" in by_ns["status"].text)

    assert spin_until(ros_node, lambda: any(complete(m) for m in markers), 5.0), [
        [(n.ns, len(n.points), n.text) for n in m.markers] for m in markers[-3:]]
    array = next(m for m in markers if complete(m))
    by_ns = {m.ns: m for m in array.markers}
    workspace = load_config().workspace
    box = np.array([[p.x, p.y, p.z] for p in by_ns["workspace"].points])
    np.testing.assert_allclose(box, debug_view.box_edges(workspace.box_min, workspace.box_max))
    line = np.array([[p.x, p.y, p.z] for p in by_ns["predicted_path"].points])
    np.testing.assert_allclose(line, np.vstack([tcp, path]), atol=1e-9)
    assert by_ns["predicted_path"].header.frame_id == "world"
    assert process.stop() == 0, process.output()
