"""What debug_view_node draws, without ROS: the annotated camera image and the marker geometry.

The annotated image carries the instruction, the policy's and the safety
filter's state, and the end-effector path the last action chunk predicts
(forward kinematics of its joint targets, vla_ros/arm.py). The path is projected
into the image when the camera's pose is known: the intrinsics come from its
CameraInfo, the pose from the MuJoCo model's nominal scene camera
(description.camera_frames, the frame the simulator stamps its images with).
The simulator jitters that camera by up to 1.5 cm and 1.5 degrees per episode,
so a projected path can sit a few pixels off. For any other camera (a real one,
an uncalibrated one) the image gets arrows instead: a top view of where the
chunk moves the end effector, and its height change.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vla_ros import arm, description

# RGB colours of the states (names as in vla_ros/msg/PolicyStatus and SafetyStatus).
STATE_COLOURS: dict[str, tuple[int, int, int]] = {
    "OK": (60, 220, 60), "LIMITED": (240, 220, 40), "HOLD": (255, 150, 30), "ESTOP": (255, 50, 50),
    "FAULT": (255, 50, 50), "RUNNING": (60, 220, 60), "IDLE": (200, 200, 200), "DONE": (90, 170, 255),
    "HOLDING": (255, 150, 30),
}
UNKNOWN_COLOUR = (200, 200, 200)
PATH_COLOUR, TCP_COLOUR = (0, 255, 255), (255, 255, 255)
ARROW_RANGE = 0.2  # m of end-effector motion that fills the arrow panel's radius
MIN_DEPTH = 0.05  # m in front of the camera for a point to be drawn
# OpenCV draws at int32 pixel coordinates; a point this far off the image is not drawn.
MAX_PIXEL = 1e6


@dataclass(frozen=True)
class PinholeCamera:
    """A calibrated camera: intrinsics K (3x3, pixels) and its optical frame's pose in the world."""

    k: np.ndarray
    position: np.ndarray  # (3,) world
    rotation: np.ndarray  # (3, 3) world <- optical (z forward, x right, y down)

    def project(self, points) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (N, 2) of world points (N, 3), and which lie in front of the camera
        at drawable coordinates (finite, within MAX_PIXEL: intrinsics from a CameraInfo may be anything)."""
        camera = (np.asarray(points, dtype=float).reshape(-1, 3) - self.position) @ self.rotation
        depth = camera[:, 2]
        in_front = depth > MIN_DEPTH
        safe = np.where(in_front, depth, 1.0)
        with np.errstate(invalid="ignore", over="ignore"):
            pixels = (camera[:, :2] / safe[:, None]) @ self.k[:2, :2].T + self.k[:2, 2]
            drawable = np.all(np.abs(pixels) < MAX_PIXEL, axis=1)  # False for NaN too
        return pixels, in_front & drawable


def known_camera_poses() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """frame_id -> (position, rotation) of the cameras fixed in the world (the simulator's scene camera)."""
    return {frame.name: (frame.position, frame.rotation) for frame in description.camera_frames()
            if frame.parent == description.ROOT_LINK}


def camera_for(frame_id: str, k, info_size: tuple[int, int], image_size: tuple[int, int],
               poses: dict[str, tuple[np.ndarray, np.ndarray]]) -> PinholeCamera | None:
    """The camera behind an image of `image_size` (w, h), or None when its pose or intrinsics are unknown.

    `k` and `info_size` (w, h) come from its CameraInfo; an image resized since is scaled to match.
    """
    k = np.asarray(k, dtype=float).reshape(3, 3)
    if frame_id not in poses or k[0, 0] <= 0 or k[1, 1] <= 0 or min(info_size) <= 0:
        return None
    scale = np.diag([image_size[0] / info_size[0], image_size[1] / info_size[1], 1.0])
    position, rotation = poses[frame_id]
    return PinholeCamera(scale @ k, np.asarray(position, dtype=float), np.asarray(rotation, dtype=float))


def tcp_path(joint_names, rows) -> np.ndarray:
    """(K, 3) tool-centre-point positions of K joint-target rows (matched by name; arm joints are needed).

    Raises ValueError for missing arm joints, a row whose length differs from the names',
    and non-finite arm positions (a chunk from the wire can be any of these)."""
    index = {name: i for i, name in enumerate(joint_names)}
    missing = [name for name in arm.ARM_JOINTS if name not in index]
    if missing:
        raise ValueError(f"joint targets lack {', '.join(missing)}")
    columns = [index[name] for name in arm.ARM_JOINTS]
    path = []
    for row in rows:
        values = np.asarray(row, dtype=float).reshape(-1)
        if values.size != len(joint_names):
            raise ValueError(f"a point has {values.size} positions for {len(joint_names)} joint names")
        if not np.all(np.isfinite(values[columns])):
            raise ValueError("non-finite arm joint targets")
        path.append(arm.tcp_position(values[columns]))
    return np.array(path).reshape(-1, 3)


def box_edges(low, high) -> np.ndarray:
    """(24, 3) end points of the 12 edges of an axis-aligned box, pairwise (a LINE_LIST)."""
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    corners = np.array([[(high if (i >> axis) & 1 else low)[axis] for axis in range(3)] for i in range(8)])
    pairs = [(i, i | (1 << axis)) for i in range(8) for axis in range(3) if not (i >> axis) & 1]
    return np.array([corners[j] for pair in pairs for j in pair])


@dataclass
class Overlay:
    """Everything drawn over one frame."""

    instruction: str = ""
    policy_state: str = ""  # PolicyStatus constant name, "" before any status
    policy_reason: str = ""
    safety_state: str = ""  # SafetyStatus constant name
    safety_reason: str = ""
    tcp: np.ndarray | None = None  # (3,) current tool centre point, world
    path: np.ndarray | None = None  # (K, 3) predicted tool centre points, world


def annotate(rgb: np.ndarray, overlay: Overlay, camera: PinholeCamera | None) -> np.ndarray:
    """A copy of an (H, W, 3) uint8 RGB frame with `overlay` drawn on it."""
    out = np.ascontiguousarray(rgb, dtype=np.uint8).copy()
    scale = max(0.3, out.shape[0] / 480 * 0.55)
    line = int(round(24 * scale / 0.55))
    rows = [(f'"{overlay.instruction}"' if overlay.instruction else "no instruction", TCP_COLOUR),
            (_state_text("policy", overlay.policy_state, overlay.policy_reason),
             STATE_COLOURS.get(overlay.policy_state, UNKNOWN_COLOUR)),
            (_state_text("safety", overlay.safety_state, overlay.safety_reason),
             STATE_COLOURS.get(overlay.safety_state, UNKNOWN_COLOUR))]
    band = out[: line * len(rows) + line // 3]
    band[:] = band // 3  # darken behind the text so it reads on any scene
    if overlay.path is not None and len(overlay.path):
        if camera is not None:
            _draw_projected_path(out, overlay, camera, scale)
        elif overlay.tcp is not None:
            _draw_arrows(out, overlay.path[-1] - overlay.tcp, scale)
    for i, (text, colour) in enumerate(rows):
        cv2.putText(out, text, (line // 3, line * (i + 1) - line // 4), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1,
                    cv2.LINE_AA)
    return out


def _state_text(what: str, state: str, reason: str) -> str:
    if not state:
        return f"{what}: no status"
    return f"{what}: {state}" + (f" ({reason})" if reason else "")


def _draw_projected_path(out: np.ndarray, overlay: Overlay, camera: PinholeCamera, scale: float) -> None:
    points = overlay.path if overlay.tcp is None else np.vstack([overlay.tcp, overlay.path])
    pixels, visible = camera.project(points)
    radius = max(2, int(round(6 * scale)))
    previous = None
    for pixel, shown in zip(np.round(pixels).astype(int), visible):
        if not shown:
            previous = None
            continue
        point = tuple(int(v) for v in pixel)
        if previous is not None:
            cv2.line(out, previous, point, PATH_COLOUR, 2, cv2.LINE_AA)
        previous = point
    for i, (pixel, shown) in enumerate(zip(np.round(pixels).astype(int), visible)):
        if shown:
            is_tcp = overlay.tcp is not None and i == 0
            cv2.circle(out, tuple(int(v) for v in pixel), radius, TCP_COLOUR if is_tcp else PATH_COLOUR,
                       2 if is_tcp else -1, cv2.LINE_AA)


def _draw_arrows(out: np.ndarray, motion: np.ndarray, scale: float) -> None:
    """A top view (x forward = up, y left = left) of the predicted motion, and a bar for its height change."""
    height, width = out.shape[:2]
    size = int(min(height, width) * 0.3)
    x0, y0 = width - size - 4, height - size - 4
    panel = out[y0 : y0 + size, x0 : x0 + size]
    panel[:] = panel // 3
    centre = (x0 + size // 2, y0 + size // 2)
    reach = size * 0.4 / ARROW_RANGE
    dx, dy = np.clip([-motion[1] * reach, -motion[0] * reach], -size * 0.45, size * 0.45)
    thickness = max(1, int(round(2 * scale / 0.55)))
    cv2.circle(out, centre, max(2, thickness + 1), TCP_COLOUR, -1, cv2.LINE_AA)
    cv2.arrowedLine(out, centre, (int(centre[0] + dx), int(centre[1] + dy)), PATH_COLOUR, thickness, cv2.LINE_AA,
                    tipLength=0.25)
    dz = float(np.clip(-motion[2] * reach, -size * 0.45, size * 0.45))
    bar_x = x0 + size - max(3, size // 12)
    cv2.arrowedLine(out, (bar_x, centre[1]), (bar_x, int(centre[1] + dz)), PATH_COLOUR, thickness, cv2.LINE_AA,
                    tipLength=0.3)
    cv2.putText(out, "top view", (x0 + 3, y0 + int(12 * scale / 0.55)), cv2.FONT_HERSHEY_SIMPLEX, scale * 0.7,
                TCP_COLOUR, 1, cv2.LINE_AA)
