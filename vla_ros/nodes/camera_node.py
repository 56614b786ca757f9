"""camera_node: any camera in, policy-ready frames out.

Sources (parameter `source`):
- `topic`: subscribe a sensor_msgs/Image (or CompressedImage) stream on
  `image_topic` plus `camera_info_topic`, e.g. the simulator or a ROS driver;
- `device`, `video`, `images`: capture here and publish the raw frames on
  `image_topic` and `camera_info_topic` as a camera driver would.

Output: `output_topic` (default /vla/image), rgb8, output_size x output_size,
header.stamp = the source frame's capture time. Optional depth passthrough
(`depth_topic` -> `depth_output_topic`, 32FC1 metres, framed like the colour
frame). At most `max_rate` frames per second; the newest frame always wins, so
no backlog builds up. /diagnostics reports rates, drops, rejections, latency and
goes ERROR when no frame was published for `stale_timeout` seconds.

The work lives in vla_ros/camera/ (plain Python); this file wires it to ROS.
"""
from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.node import Node
from rclpy.time import Time as RosTime
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from vla_ros import qos
from vla_ros.camera import ros_image
from vla_ros.camera.convert import ImageDecodeError
from vla_ros.camera.pipeline import NewestFrameWorker, RateLimiter, StaleMonitor, StreamStats
from vla_ros.camera.preprocess import RESIZE_MODES, policy_depth, policy_frame
from vla_ros.camera.sources import DeviceSource, FrameSource, ImageFolderSource, SourceError, VideoFileSource
from vla_ros.node_common import (
    DIAG_ERROR,
    DIAG_OK,
    DIAG_WARN,
    ConfigError,
    Diagnostics,
    Param,
    declare_parameters,
    non_negative,
    one_of,
    positive,
    run_node,
)

MAX_OUTPUT_SIZE = 4096


def _output_size(value) -> str | None:
    return None if 1 <= value <= MAX_OUTPUT_SIZE else f"must be in 1..{MAX_OUTPUT_SIZE}, got {value}"


PARAMS = [
    Param("source", "topic", "where frames come from: topic, device, video or images",
          one_of("topic", "device", "video", "images")),
    Param("image_topic", "/camera/image_raw",
          "the raw camera stream: subscribed when source is topic, published by this node otherwise"),
    Param("image_format", "raw", "topic source: raw (sensor_msgs/Image) or compressed (sensor_msgs/CompressedImage "
          "on image_topic, e.g. /camera/image_raw/compressed)", one_of("raw", "compressed")),
    Param("camera_info_topic", "/camera/camera_info", "camera_info: subscribed with a topic source, else published"),
    Param("device", "/dev/video0", "device source: V4L2 device path or index"),
    Param("device_width", 0, "device source: requested frame width in pixels (0: the driver's default)", non_negative),
    Param("device_height", 0, "device source: requested frame height in pixels (0: the driver's default)",
          non_negative),
    Param("device_fps", 0.0, "device source: requested frame rate (0: the driver's default)", non_negative),
    Param("video_path", "", "video source: the video file"),
    Param("images_path", "", "images source: the folder (its images play in name order)"),
    Param("playback_rate", 0.0, "video/images sources: frames per second (0: the video's own rate; 10 for images)",
          non_negative),
    Param("loop", True, "video/images sources: start again after the last frame"),
    Param("frame_id", "camera", "header.frame_id of frames this node captures (a topic source keeps its own)"),
    Param("output_topic", "/vla/image", "policy-ready frames (rgb8, output_size x output_size)"),
    Param("output_size", 128, "side of the square policy input in pixels", _output_size),
    Param("resize_mode", "crop", "crop: centred square; stretch: whole image, distorted; pad: whole image, black border",
          one_of(*RESIZE_MODES)),
    Param("max_rate", 30.0, "most policy frames per second (0: every frame)", non_negative),
    Param("stale_timeout", 1.0, "seconds without a published frame before the view is reported stale", positive),
    Param("depth_topic", "", "depth image to pass through (16UC1 mm or 32FC1 m); empty: no depth"),
    Param("depth_output_topic", "/vla/depth", "policy-ready depth (32FC1 metres, framed like output_topic)"),
    Param("diagnostics_period", 1.0, "seconds between /diagnostics reports", positive),
]


@dataclass(frozen=True)
class _Frame:
    """A frame accepted for processing; decoding happens on the worker thread."""

    decode: Callable[[], np.ndarray]
    stamp: Time  # capture time
    frame_id: str
    ingested: float  # time.monotonic() at arrival or grab


class _Stream:
    """One image input: throttle, newest-frame worker, statistics and rate-limited complaints."""

    def __init__(self, node: Node, label: str, max_rate: float, process: Callable[[_Frame], None]):
        self.label = label
        self.stats = StreamStats()
        self._node = node
        self._limiter = RateLimiter(max_rate)
        self._worker = NewestFrameWorker(process, self._on_error, name=f"camera_{label}")

    def ingest(self, frame: _Frame) -> None:
        self.stats.count("received")
        if not self._limiter.admit(frame.ingested):
            self.stats.count("throttled")
        elif self._worker.submit(frame):
            self.stats.count("dropped")

    def refuse(self, error: Exception) -> None:
        """A frame arrived but cannot be used (malformed message, unreadable file)."""
        self.stats.count("received")
        self._reject(error)

    def _reject(self, error: Exception) -> None:
        self.stats.reject(str(error))
        self._node.get_logger().warning(f"{self.label} frame rejected: {error}", throttle_duration_sec=5.0)

    def _on_error(self, _frame: _Frame, error: Exception) -> None:
        if not self._node.context.ok():
            return  # Ctrl-C shut the context down under a publish; destroy_node stops this worker next
        if not isinstance(error, ValueError):  # ImageDecodeError and bad shapes are ValueErrors; anything else is a bug
            error = RuntimeError(f"{type(error).__name__}: {error}")
        self._reject(error)

    def stop(self) -> None:
        self._worker.stop()


def _stream_status(values: dict) -> tuple[bytes, str]:
    """Diagnostic level and message of a stream from its statistics snapshot."""
    if values["rejected_since_last"]:
        return DIAG_WARN, f"rejected {values['rejected_since_last']} frame(s): {values['last_error']}"
    return DIAG_OK, f"publishing at {values.get('publish_rate_hz', 0.0)} Hz"


class CameraNode(Node):
    def __init__(self):
        super().__init__("camera_node")
        # rclpy destroys a node whose constructor raised: destroy_node needs these first.
        self._stopping = threading.Event()
        self._source: FrameSource | None = None
        self._capture_thread: threading.Thread | None = None
        self._colour: _Stream | None = None
        self._depth: _Stream | None = None
        p = declare_parameters(self, PARAMS)
        if p.max_rate > 0 and p.stale_timeout <= 1.0 / p.max_rate:
            raise ConfigError(
                f"stale_timeout ({p.stale_timeout} s) must exceed the frame period at max_rate ({1.0 / p.max_rate} s)"
            )
        self._params = p
        # Open a capture source first: a missing device or file must stop start-up before threads exist.
        self._source = self._open_source(p) if p.source != "topic" else None
        self._stale = StaleMonitor(p.stale_timeout, time.monotonic())
        self._input_size: tuple[int, int] | None = None  # (width, height) of the last decoded frame
        self._camera_info_size: tuple[int, int] | None = None
        self._warned_zero_stamp = False

        self._output = self.create_publisher(Image, p.output_topic, qos.SENSOR)
        self._colour = _Stream(self, "image", p.max_rate, self._publish_policy_frame)
        if p.depth_topic:
            self._depth_output = self.create_publisher(Image, p.depth_output_topic, qos.SENSOR)
            self._depth = _Stream(self, "depth", p.max_rate, self._publish_policy_depth)
            self.create_subscription(Image, p.depth_topic, self._on_depth, qos.SENSOR)

        if self._source is None:
            if p.image_format == "compressed":
                self.create_subscription(CompressedImage, p.image_topic, self._on_compressed, qos.SENSOR)
            else:
                self.create_subscription(Image, p.image_topic, self._on_image, qos.SENSOR)
            self.create_subscription(CameraInfo, p.camera_info_topic, self._on_camera_info, qos.SENSOR)
            input_name = f"{p.image_topic} ({p.image_format})"
        else:
            self._raw_output = self.create_publisher(Image, p.image_topic, qos.SENSOR)
            self._info_output = self.create_publisher(CameraInfo, p.camera_info_topic, qos.SENSOR)
            self._capture_thread = threading.Thread(target=self._capture_loop, name="camera_capture", daemon=True)
            self._capture_thread.start()
            input_name = self._source.description

        self.create_timer(min(p.stale_timeout / 4.0, 0.25), self._check_stale)
        self._diagnostics = Diagnostics(self, self._collect_diagnostics, p.diagnostics_period)
        self.get_logger().info(
            f"camera_node: {input_name} -> {p.output_topic} ({p.output_size}x{p.output_size} rgb8, {p.resize_mode}, "
            f"max {p.max_rate:g} Hz, decoder {ros_image.DECODER})"
        )

    @staticmethod
    def _open_source(p) -> FrameSource:
        try:
            if p.source == "device":
                return DeviceSource(p.device, p.device_width, p.device_height, p.device_fps)
            path = p.video_path if p.source == "video" else p.images_path
            if not path:
                raise ConfigError(f"source {p.source} needs {p.source}_path")
            if p.source == "video":
                return VideoFileSource(path, p.loop, p.playback_rate)
            return ImageFolderSource(path, p.loop, p.playback_rate)
        except SourceError as err:
            raise ConfigError(str(err)) from err

    # --- input ---------------------------------------------------------------------------------------

    def _capture_stamp(self, header) -> Time:
        """The frame's capture time; a driver that leaves it zero gets the arrival time instead."""
        if header.stamp.sec or header.stamp.nanosec:
            return header.stamp
        if not self._warned_zero_stamp:
            self._warned_zero_stamp = True
            self.get_logger().warning("frames arrive with a zero header.stamp; stamping them with the arrival time")
        return self.get_clock().now().to_msg()

    def _on_image(self, msg: Image) -> None:
        if self._well_formed(self._colour, msg, depth=False):
            frame = _Frame(partial(ros_image.image_to_rgb, msg), self._capture_stamp(msg.header),
                           msg.header.frame_id, time.monotonic())
            self._colour.ingest(frame)

    def _on_compressed(self, msg: CompressedImage) -> None:
        frame = _Frame(partial(ros_image.compressed_to_rgb, msg), self._capture_stamp(msg.header),
                       msg.header.frame_id, time.monotonic())
        self._colour.ingest(frame)

    def _on_depth(self, msg: Image) -> None:
        if self._well_formed(self._depth, msg, depth=True):
            frame = _Frame(partial(ros_image.image_to_depth_m, msg), self._capture_stamp(msg.header),
                           msg.header.frame_id, time.monotonic())
            self._depth.ingest(frame)

    @staticmethod
    def _well_formed(stream: _Stream, msg: Image, depth: bool) -> bool:
        """Cheap checks before queueing, so that a malformed message never displaces a good frame."""
        try:
            ros_image.validate_image(msg, depth)
        except ImageDecodeError as err:
            stream.refuse(err)
            return False
        return True

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info_size = (msg.width, msg.height)

    def _capture_loop(self) -> None:
        """Grab frames from the device/file source at its pace until shutdown or its end."""
        source = self._source
        next_grab = time.monotonic()
        while not self._stopping.is_set():
            if source.period:
                if self._stopping.wait(max(0.0, next_grab - time.monotonic())):
                    return
                # Keep the file's timing; after a stall, restart the schedule rather than burst.
                now = time.monotonic()
                next_grab = next_grab + source.period if now - next_grab < source.period else now + source.period
            if source.grab():
                try:
                    self._capture_one(source)
                except Exception:
                    if not self.context.ok():
                        return  # Ctrl-C shut the context down under a publish
                    raise
            elif source.finished:
                self.get_logger().info(f"{source.description}: last frame played (loop is off)")
                return
            else:
                self.get_logger().warning(f"{source.description}: no frame", throttle_duration_sec=5.0)
                self._stopping.wait(0.05)  # a device hiccup: do not spin

    def _capture_one(self, source: FrameSource) -> None:
        ingested = time.monotonic()
        stamp = self.get_clock().now().to_msg()
        try:
            rgb = source.retrieve()
        except SourceError as err:
            self._colour.refuse(err)
            return
        frame_id = self._params.frame_id
        self._raw_output.publish(ros_image.rgb_to_image_msg(rgb, stamp, frame_id))
        self._info_output.publish(ros_image.camera_info_msg(rgb.shape[1], rgb.shape[0], stamp, frame_id))
        self._colour.ingest(_Frame(lambda: rgb, stamp, frame_id, ingested))

    # --- output (worker threads) -----------------------------------------------------------------------

    def _publish_policy_frame(self, frame: _Frame) -> None:
        rgb = frame.decode()
        self._input_size = (rgb.shape[1], rgb.shape[0])
        policy = policy_frame(rgb, self._params.output_size, self._params.resize_mode)
        self._output.publish(ros_image.rgb_to_image_msg(policy, frame.stamp, frame.frame_id))
        self._published(self._colour, frame)
        if self._stale.frame(time.monotonic()):
            self.get_logger().info("camera frames are back: the view is live again")

    def _publish_policy_depth(self, frame: _Frame) -> None:
        depth = policy_depth(frame.decode(), self._params.output_size, self._params.resize_mode)
        self._depth_output.publish(ros_image.depth_to_image_msg(depth, frame.stamp, frame.frame_id))
        self._published(self._depth, frame)

    def _published(self, stream: _Stream, frame: _Frame) -> None:
        capture_age = (self.get_clock().now() - RosTime.from_msg(frame.stamp)).nanoseconds * 1e-9
        stream.stats.published(time.monotonic() - frame.ingested, capture_age)

    # --- health ----------------------------------------------------------------------------------------

    def _check_stale(self) -> None:
        if self._stale.check(time.monotonic()):
            self.get_logger().error(
                f"no camera frame for {self._params.stale_timeout:g} s: the view is stale "
                f"(last error: {self._colour.stats.last_error or 'none'})"
            )

    def _collect_diagnostics(self) -> list[tuple[str, bytes, str, dict]]:
        now = time.monotonic()
        values = self._colour.stats.snapshot(now)
        silence = self._stale.silence(now)
        values["seconds_since_frame"] = round(silence, 3)
        values["stale"] = self._stale.stale
        values["decoder"] = ros_image.DECODER
        if self._input_size is not None:
            values["input_size"] = "{}x{}".format(*self._input_size)
        if self._source is not None:
            values["source"] = self._source.description
            values["source_finished"] = self._source.finished
        else:
            values["camera_info"] = "{}x{}".format(*self._camera_info_size) if self._camera_info_size else "none"

        level, message = _stream_status(values)
        if self._stale.stale:
            level, message = DIAG_ERROR, f"stale: no frame for {silence:.1f} s"
        elif level == DIAG_OK and self._input_size and self._camera_info_size not in (None, self._input_size):
            level = DIAG_WARN
            message = "camera_info is {}x{} but images are {}x{}".format(*self._camera_info_size, *self._input_size)
        statuses = [("image", level, message, values)]
        if self._depth is not None:
            depth_values = self._depth.stats.snapshot(now)
            statuses.append(("depth", *_stream_status(depth_values), depth_values))
        return statuses

    def destroy_node(self):
        self._stopping.set()
        if self._capture_thread is not None:
            self._capture_thread.join(timeout=2.0)
        for stream in (self._colour, self._depth):
            if stream is not None:
                stream.stop()
        if self._source is not None:
            self._source.close()
        return super().destroy_node()


def main(args=None):
    return run_node(CameraNode, args)


if __name__ == "__main__":
    sys.exit(main())
