"""sensor_msgs images <-> numpy arrays: the thin ROS adapter over vla_ros.camera.convert.

Decoding uses ROS 2's cv_bridge when it is importable (a sourced ROS 2 distro)
and our converter otherwise; both raise ImageDecodeError. Encoding is always
ours: for rgb8/32FC1 it is a plain copy, and it keeps publishers independent of
cv_bridge. The simulator and any other image publisher call `rgb_to_image_msg`.
"""
from __future__ import annotations

import array

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from vla_ros.camera import convert
from vla_ros.camera.convert import ImageDecodeError, RawImage

try:
    from cv_bridge import CvBridge, CvBridgeError

    _BRIDGE: CvBridge | None = CvBridge()
except ImportError:  # the pip path: no cv_bridge wheel exists
    _BRIDGE = None
    CvBridgeError = ImageDecodeError  # keeps the except clause below well-defined

DECODER = "cv_bridge" if _BRIDGE is not None else "vla_ros.camera.convert"


def raw_image(msg: Image) -> RawImage:
    return RawImage(msg.encoding, msg.height, msg.width, msg.step, bool(msg.is_bigendian), msg.data)


def validate_image(msg: Image, depth: bool = False) -> None:
    """Raise ImageDecodeError now, without decoding, for what image_to_rgb (image_to_depth_m) would refuse
    for encoding or size, so that a malformed message never takes a good frame's place in a queue."""
    convert.validate(raw_image(msg), depth)


def image_to_rgb(msg: Image) -> np.ndarray:
    """An Image of any colour, mono, Bayer or YUV encoding as (H, W, 3) uint8 RGB.

    Raises ImageDecodeError for unknown encodings, depth images, empty images and
    data shorter than step x height. The result may share memory with `msg.data`.
    """
    raw = raw_image(msg)
    if _BRIDGE is None:
        return convert.to_rgb8(raw)
    convert.validate(raw)  # the same clear errors whichever decoder runs
    try:
        return _BRIDGE.imgmsg_to_cv2(msg, "rgb8")
    except (CvBridgeError, ValueError, TypeError) as err:
        raise ImageDecodeError(f"cv_bridge cannot convert {msg.encoding} to rgb8: {err}") from err


def image_to_depth_m(msg: Image) -> np.ndarray:
    """A depth Image (16UC1 millimetres or 32FC1 metres) as (H, W) float32 metres, NaN where unknown."""
    return convert.to_depth_m(raw_image(msg))


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """A CompressedImage (JPEG, PNG, ...) as (H, W, 3) uint8 RGB; raises ImageDecodeError."""
    return convert.decode_compressed_rgb8(msg.format, msg.data)


def raw_to_image_msg(raw: RawImage, stamp: Time, frame_id: str) -> Image:
    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width, msg.step = raw.height, raw.width, raw.step
    msg.encoding = raw.encoding
    msg.is_bigendian = int(raw.is_bigendian)
    # array.array('B') is the type rclpy stores; handing one over skips a per-byte check.
    data = array.array("B")
    data.frombytes(raw.data)
    msg.data = data
    return msg


def rgb_to_image_msg(rgb: np.ndarray, stamp: Time, frame_id: str) -> Image:
    """An (H, W, 3) uint8 RGB array as an rgb8 Image stamped `stamp` (the capture time)."""
    return raw_to_image_msg(convert.from_rgb8(rgb), stamp, frame_id)


def depth_to_image_msg(depth_m: np.ndarray, stamp: Time, frame_id: str) -> Image:
    """An (H, W) depth map in metres as a 32FC1 Image (NaN where unknown)."""
    return raw_to_image_msg(convert.encode_pixels(depth_m.astype(np.float32, copy=False), "32FC1"), stamp, frame_id)


def camera_info_msg(width: int, height: int, stamp: Time, frame_id: str) -> CameraInfo:
    """CameraInfo for an uncalibrated camera: image size only, all-zero K (ROS's 'not calibrated')."""
    msg = CameraInfo()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.width, msg.height = width, height
    return msg
