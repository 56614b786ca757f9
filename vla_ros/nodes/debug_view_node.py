"""debug_view_node: what the pipeline is doing, drawn for rqt_image_view and rviz.

Subscribes  /camera/image_raw (SENSOR), /camera/camera_info (SENSOR), /joint_states (SENSOR),
            /vla/status, /safety/status, /vla/action_chunk (RELIABLE)
Publishes   /vla/debug_image  sensor_msgs/Image rgb8: the camera image with the instruction, the
                              policy's and the safety filter's state and the predicted end-effector
                              path (projected, or arrows: vla_ros/debug_view.py), at most `rate` Hz
            /vla/markers      visualization_msgs/MarkerArray in `frame_id`: the safety filter's
                              workspace box, the predicted end-effector path, a status text;
                              on every chunk and every `marker_period`
            /diagnostics
Drawing and geometry live in vla_ros/debug_view.py (no ROS there).
"""
from __future__ import annotations

import sys
import time

import numpy as np
from geometry_msgs.msg import Point
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from vla_ros import arm, debug_view, qos
from vla_ros.camera.pipeline import RateLimiter
from vla_ros.camera.ros_image import image_to_rgb, rgb_to_image_msg
from vla_ros.msg import ActionChunk, PolicyStatus, SafetyStatus
from vla_ros.node_common import (
    DIAG_OK,
    DIAG_WARN,
    ConfigError,
    Diagnostics,
    Param,
    declare_parameters,
    non_negative,
    positive,
    run_node,
)
from vla_ros.safety.config import load_config
from vla_ros.safety.filter import InputError, positions_by_name

PARAMS = [
    Param("image_topic", "/camera/image_raw", "camera images to annotate"),
    Param("camera_info_topic", "/camera/camera_info", "intrinsics and frame_id of those images"),
    Param("rate", 10.0, "most annotated images per second (0: every image)", non_negative),
    Param("path_timeout", 1.0, "s after its chunk arrived that a predicted path is no longer drawn", positive),
    Param("safety_config", "", "safety filter parameters file whose workspace box is drawn; "
          "'' = config/safety_filter_node.yaml"),
    Param("frame_id", "world", "frame of the markers (the arm base, as in vla_ros/arm.py)"),
    Param("marker_period", 1.0, "s between marker republications (they also go out with every chunk)", positive),
]
STATUS_TEXT_HEIGHT = 1.1  # m above the arm base where rviz shows the status text


def _constant_names(message_class) -> dict[int, str]:
    """Value -> name of a message's integer constants (PolicyStatus.RUNNING -> "RUNNING")."""
    return {getattr(message_class, name): name for name in dir(message_class)
            if name.isupper() and isinstance(getattr(message_class, name), int)}


POLICY_STATES = _constant_names(PolicyStatus)
SAFETY_STATES = _constant_names(SafetyStatus)


def _rgba(rgb, alpha: float = 1.0) -> ColorRGBA:
    return ColorRGBA(r=rgb[0] / 255, g=rgb[1] / 255, b=rgb[2] / 255, a=alpha)


class DebugViewNode(Node):
    def __init__(self):
        super().__init__("debug_view_node")
        p = self.params = declare_parameters(self, PARAMS)
        try:
            self._workspace = load_config(p.safety_config or None).workspace
        except (OSError, ValueError) as err:
            raise ConfigError(f"safety_config: cannot read the workspace from {p.safety_config or 'the default'}: "
                              f"{err}") from err
        self._camera_poses = debug_view.known_camera_poses()
        self._limiter = RateLimiter(p.rate)
        self._info: CameraInfo | None = None
        self._policy: PolicyStatus | None = None
        self._safety: SafetyStatus | None = None
        self._tcp: np.ndarray | None = None
        self._path: tuple[np.ndarray, float] | None = None  # (K, 3) world, monotonic arrival time
        self._counts = {"annotated": 0, "images_rejected": 0, "chunks_rejected": 0}
        self._last_error = ""
        self._rejections_reported = 0
        self._projection = "no image yet"

        self._image_pub = self.create_publisher(Image, "/vla/debug_image", qos.SENSOR)
        self._marker_pub = self.create_publisher(MarkerArray, "/vla/markers", qos.RELIABLE)
        self.create_subscription(Image, p.image_topic, self._on_image, qos.SENSOR)
        self.create_subscription(CameraInfo, p.camera_info_topic, self._on_camera_info, qos.SENSOR)
        self.create_subscription(JointState, "/joint_states", self._on_joint_states, qos.SENSOR)
        self.create_subscription(PolicyStatus, "/vla/status", self._on_policy, qos.RELIABLE)
        self.create_subscription(SafetyStatus, "/safety/status", self._on_safety, qos.RELIABLE)
        self.create_subscription(ActionChunk, "/vla/action_chunk", self._on_chunk, qos.RELIABLE)
        self.create_timer(p.marker_period, self._publish_markers)
        self._diagnostics = Diagnostics(self, self._diagnose)
        self.get_logger().info(f"annotating {p.image_topic} -> /vla/debug_image (at most {p.rate:g} Hz), "
                               f"markers in '{p.frame_id}' -> /vla/markers")

    # ------------------------------------------------------------------ inputs

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._info = msg

    def _on_joint_states(self, msg: JointState) -> None:
        try:
            self._tcp = arm.tcp_position(positions_by_name(msg.name, msg.position, ignore_extra=True)[:7])
        except InputError:
            pass  # the safety filter reports bad joint states; this view just keeps the last good one

    def _on_policy(self, msg: PolicyStatus) -> None:
        self._policy = msg

    def _on_safety(self, msg: SafetyStatus) -> None:
        self._safety = msg

    def _on_chunk(self, msg: ActionChunk) -> None:
        try:
            path = debug_view.tcp_path(msg.trajectory.joint_names, [point.positions for point in msg.trajectory.points])
        except ValueError as err:
            self._reject("chunks_rejected", f"action chunk not drawn: {err}")
            return
        self._path = (path, time.monotonic())
        self._publish_markers()

    def _reject(self, counter: str, message: str) -> None:
        self._counts[counter] += 1
        self._last_error = message
        self.get_logger().warning(message, throttle_duration_sec=5.0)

    # ----------------------------------------------------------------- outputs

    def _fresh_path(self) -> np.ndarray | None:
        if self._path is None or time.monotonic() - self._path[1] > self.params.path_timeout:
            return None
        return self._path[0]

    def _overlay(self) -> debug_view.Overlay:
        policy, safety = self._policy, self._safety
        return debug_view.Overlay(
            instruction=policy.instruction if policy else "",
            policy_state=POLICY_STATES.get(policy.state, str(policy.state)) if policy else "",
            policy_reason=policy.reason if policy else "",
            safety_state=SAFETY_STATES.get(safety.state, str(safety.state)) if safety else "",
            safety_reason=safety.reason if safety else "",
            tcp=self._tcp, path=self._fresh_path())

    def _on_image(self, msg: Image) -> None:
        if not self._limiter.admit(time.monotonic()):
            return
        try:
            rgb = image_to_rgb(msg)
        except ValueError as err:
            self._reject("images_rejected", f"image not annotated: {err}")
            return
        camera = None
        info = self._info
        if info is not None:
            camera = debug_view.camera_for(info.header.frame_id, info.k, (info.width, info.height),
                                           (rgb.shape[1], rgb.shape[0]), self._camera_poses)
        frame = info.header.frame_id if info is not None else "?"
        self._projection = (f"path projected into {frame}" if camera is not None else
                            f"arrows: no calibrated pose for camera frame '{frame}'")
        annotated = debug_view.annotate(rgb, self._overlay(), camera)
        self._image_pub.publish(rgb_to_image_msg(annotated, msg.header.stamp, msg.header.frame_id))
        self._counts["annotated"] += 1

    def _publish_markers(self) -> None:
        stamp = self.get_clock().now().to_msg()
        overlay = self._overlay()

        def marker(namespace: str, kind: int, colour, width: float = 0.0) -> Marker:
            m = Marker(ns=namespace, id=0, type=kind, action=Marker.ADD, color=colour)
            m.header.frame_id, m.header.stamp = self.params.frame_id, stamp
            m.pose.orientation.w = 1.0
            m.scale.x = m.scale.y = m.scale.z = width
            return m

        box = marker("workspace", Marker.LINE_LIST, _rgba((120, 160, 255), 0.8), 0.005)
        box.points = [Point(x=x, y=y, z=z) for x, y, z in
                      debug_view.box_edges(self._workspace.box_min, self._workspace.box_max)]
        markers = [box]
        path = marker("predicted_path", Marker.LINE_STRIP, _rgba(debug_view.PATH_COLOUR), 0.006)
        points = marker("predicted_path_points", Marker.SPHERE_LIST, _rgba(debug_view.PATH_COLOUR), 0.015)
        if overlay.path is not None:
            line = overlay.path if overlay.tcp is None else np.vstack([overlay.tcp, overlay.path])
            path.points = [Point(x=x, y=y, z=z) for x, y, z in line]
            points.points = [Point(x=x, y=y, z=z) for x, y, z in overlay.path]
        else:
            path.action = points.action = Marker.DELETE
        markers += [path, points]
        text = marker("status", Marker.TEXT_VIEW_FACING,
                      _rgba(debug_view.STATE_COLOURS.get(overlay.safety_state, debug_view.UNKNOWN_COLOUR)), 0.04)
        text.pose.position.z = STATUS_TEXT_HEIGHT
        text.text = "\n".join([overlay.instruction or "no instruction",
                               f"policy {overlay.policy_state or '?'}  safety {overlay.safety_state or '?'}"])
        markers.append(text)
        self._marker_pub.publish(MarkerArray(markers=markers))

    def _diagnose(self):
        rejected = self._counts["images_rejected"] + self._counts["chunks_rejected"]
        new_rejections, self._rejections_reported = rejected - self._rejections_reported, rejected
        if not self._counts["annotated"]:
            level, message = DIAG_WARN, f"no image annotated yet ({self.params.image_topic})"
        elif new_rejections:
            level, message = DIAG_WARN, self._last_error
        else:
            level, message = DIAG_OK, self._projection
        return [("view", level, message, dict(self._counts))]


def main(args=None):
    return run_node(DebugViewNode, args)


if __name__ == "__main__":
    sys.exit(main())
