"""camera_node as its own process over real DDS: topic, compressed, depth, video and image-folder sources."""
import re
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from builtin_interfaces.msg import Time
from conftest import CONFIG_DIR, spin_until
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from test_camera_sources import COLOURS, write_video

from vla_ros import qos
from vla_ros.camera import convert, ros_image
from vla_ros.nodes.camera_node import PARAMS

STARTUP_TIMEOUT = 20.0
A, B, SIDE = (200, 40, 10), (10, 90, 220), (0, 255, 0)


def _collect(node, msg_type, topic, profile=qos.SENSOR) -> list:
    received = []
    node.create_subscription(msg_type, topic, received.append, profile)
    return received


def _image_statuses(arrays, check="image") -> list[DiagnosticStatus]:
    return [s for a in arrays for s in a.status if s.name == f"camera_node: {check}"]


def _values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def _test_frame(stamp: Time) -> Image:
    """160x120 bgr8 with padded rows: centred square A over B, green side strips (cropped away)."""
    rgb = np.empty((120, 160, 3), np.uint8)
    rgb[:] = SIDE
    rgb[:60, 20:140], rgb[60:, 20:140] = A, B
    raw = convert.encode_pixels(rgb[..., ::-1], "bgr8", row_padding=16)
    return ros_image.raw_to_image_msg(raw, stamp, "test_cam")


def test_topic_frames_come_out_policy_ready_with_their_capture_stamp(ros_node, start_process):
    process = start_process("camera_node", "--ros-args", "--params-file", str(CONFIG_DIR / "camera_node.yaml"),
                            "-p", "output_size:=64", "-p", "max_rate:=0.0")
    outputs = _collect(ros_node, Image, "/vla/image")
    publisher = ros_node.create_publisher(Image, "/camera/image_raw", qos.SENSOR)
    capture = Time(sec=1000, nanosec=500)

    def received():
        publisher.publish(_test_frame(capture))
        return bool(outputs)

    assert spin_until(ros_node, received, STARTUP_TIMEOUT), process.output()
    out = outputs[0]
    assert (out.encoding, out.height, out.width, out.step) == ("rgb8", 64, 64, 192)
    assert (out.header.stamp.sec, out.header.stamp.nanosec, out.header.frame_id) == (1000, 500, "test_cam")
    rgb = ros_image.image_to_rgb(out)
    # Right channel order, right way up, side strips cropped away (row 31/32 blends A and B).
    assert (rgb[:31] == A).all() and (rgb[33:] == B).all() and not (rgb == SIDE).all(axis=2).any()
    assert process.stop() == 0, process.output()


def test_bad_frames_are_rejected_and_a_silent_camera_goes_stale(ros_node, start_process):
    # max_rate 0: every frame is decoded (a throttled frame is never looked at).
    process = start_process("camera_node", "--ros-args", "-p", "stale_timeout:=0.6", "-p", "diagnostics_period:=0.2",
                            "-p", "max_rate:=0.0")
    outputs = _collect(ros_node, Image, "/vla/image")
    diagnostics = _collect(ros_node, DiagnosticArray, "/diagnostics", qos.RELIABLE)
    publisher = ros_node.create_publisher(Image, "/camera/image_raw", qos.SENSOR)
    sending = {"good": True}
    ros_node.create_timer(0.05, lambda: sending["good"] and publisher.publish(_test_frame(Time(sec=5))))
    assert spin_until(ros_node, lambda: outputs, STARTUP_TIMEOUT), process.output()

    bad = [Image(encoding="rgb9", height=2, width=2, step=6, data=bytes(12)),
           Image(encoding="rgb8", height=4, width=4, step=12, data=bytes(20)),
           Image(encoding="rgb8", height=0, width=0, step=0),
           ros_image.depth_to_image_msg(np.ones((2, 2), np.float32), Time(sec=5), "depth")]
    for msg in bad:
        msg.header.stamp = Time(sec=6)

    def warned():
        statuses = [s for s in _image_statuses(diagnostics) if int(_values(s)["rejected"]) >= len(bad)]
        if not statuses:  # (again: best effort may lose one)
            for msg in bad:
                publisher.publish(msg)
        return statuses

    assert spin_until(ros_node, warned, 10.0), process.output()
    assert warned()[0].level == DiagnosticStatus.WARN and "rejected" in warned()[0].message
    assert all(o.header.stamp.sec == 5 for o in outputs), "a bad frame was published"
    assert "frame rejected" in process.output()

    # The camera goes silent: ERROR on /diagnostics and in the log, then recovery when frames return.
    sending["good"] = False
    stale = lambda: [s for s in _image_statuses(diagnostics[-3:]) if s.level == DiagnosticStatus.ERROR]  # noqa: E731
    assert spin_until(ros_node, stale, 10.0)
    assert _values(stale()[0])["stale"] == "True" and "stale" in stale()[0].message
    assert "the view is stale" in process.output()
    sending["good"] = True
    recovered = lambda: [s.level for s in _image_statuses(diagnostics[-1:])] == [DiagnosticStatus.OK]  # noqa: E731
    assert spin_until(ros_node, recovered, 10.0)
    assert process.proc.poll() is None and process.stop() == 0
    assert "frames are back" in process.log_path.read_text()


def test_compressed_colour_and_depth_pass_through(ros_node, start_process):
    process = start_process("camera_node", "--ros-args", "-p", "image_format:=compressed",
                            "-p", "image_topic:=/cam/image/compressed", "-p", "depth_topic:=/cam/depth",
                            "-p", "output_size:=32", "-p", "resize_mode:=stretch")
    colour_out = _collect(ros_node, Image, "/vla/image")
    depth_out = _collect(ros_node, Image, "/vla/depth")
    colour_pub = ros_node.create_publisher(CompressedImage, "/cam/image/compressed", qos.SENSOR)
    depth_pub = ros_node.create_publisher(Image, "/cam/depth", qos.SENSOR)
    png = cv2.imencode(".png", np.full((48, 64, 3), A[::-1], np.uint8))[1].tobytes()
    compressed = CompressedImage(format="png", data=png)
    compressed.header.stamp = Time(sec=42)
    millimetres = np.full((48, 64), 1000, np.uint16)
    millimetres[:, 32:] = 2500
    millimetres[0, 0] = 0
    depth = ros_image.raw_to_image_msg(convert.encode_pixels(millimetres, "16UC1"), Time(sec=43), "depth_cam")

    def both():
        colour_pub.publish(compressed)
        depth_pub.publish(depth)
        return colour_out and depth_out

    assert spin_until(ros_node, both, STARTUP_TIMEOUT), process.output()
    assert colour_out[0].header.stamp.sec == 42 and (ros_image.image_to_rgb(colour_out[0]) == A).all()
    out = depth_out[0]
    assert (out.encoding, out.height, out.width, out.header.stamp.sec, out.header.frame_id) == (
        "32FC1", 32, 32, 43, "depth_cam")
    metres = ros_image.image_to_depth_m(out)
    assert np.isnan(metres[0, 0]) and set(np.unique(metres[np.isfinite(metres)])) == {1.0, 2.5}
    assert process.stop() == 0, process.output()


def test_video_source_publishes_raw_frames_info_and_policy_frames_looping(ros_node, start_process, tmp_path):
    video = write_video(tmp_path / "clip.avi", fps=20.0, size=(64, 48))
    process = start_process("camera_node", "--ros-args", "-p", "source:=video", "-p", f"video_path:={video}",
                            "-p", "playback_rate:=40.0", "-p", "output_size:=32", "-p", "frame_id:=test_camera")
    raw = _collect(ros_node, Image, "/camera/image_raw")
    info = _collect(ros_node, CameraInfo, "/camera/camera_info")
    policy = _collect(ros_node, Image, "/vla/image")
    assert spin_until(ros_node, lambda: len(policy) >= 12 and len(raw) >= 12 and info, STARTUP_TIMEOUT), \
        process.output()
    assert (raw[0].encoding, raw[0].width, raw[0].height, raw[0].header.frame_id) == ("rgb8", 64, 48, "test_camera")
    assert (info[0].width, info[0].height) == (64, 48)
    assert (policy[0].width, policy[0].height, policy[0].header.frame_id) == (32, 32, "test_camera")
    # Policy frames carry the capture stamps of raw frames. Both streams are best effort and may have
    # matched at different moments, so compare where they overlap and allow a rare lost frame.
    stamp = lambda m: m.header.stamp.sec + m.header.stamp.nanosec * 1e-9  # noqa: E731
    raw_stamps = {stamp(m) for m in raw}
    overlapping = [stamp(m) for m in policy if min(raw_stamps) <= stamp(m) <= max(raw_stamps)]
    assert len(overlapping) >= 8 and sum(s in raw_stamps for s in overlapping) >= 0.9 * len(overlapping)
    # The raw frames play the video in order (each frame follows the previous one), and past its end (loop).
    colours = [int(np.argmin([np.abs(ros_image.image_to_rgb(m).mean(axis=(0, 1)) - c).sum() for c in COLOURS]))
               for m in raw]
    in_order = sum(b == (a + 1) % len(COLOURS) for a, b in zip(colours, colours[1:]))
    assert set(colours) == set(range(len(COLOURS))) and in_order >= 0.9 * (len(colours) - 1), colours
    # SIGTERM shuts down as cleanly as Ctrl-C.
    process.proc.send_signal(signal.SIGTERM)
    assert process.proc.wait(10) == 0
    assert "Exception in thread" not in process.output(), "a capture or worker thread died at shutdown"


def test_image_folder_source_is_throttled_to_max_rate(ros_node, start_process, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for index, colour in enumerate(COLOURS):
        cv2.imwrite(str(folder / f"{index:03d}.png"), np.full((40, 60, 3), colour[::-1], np.uint8))
    process = start_process("camera_node", "--ros-args", "-p", "source:=images", "-p", f"images_path:={folder}",
                            "-p", "playback_rate:=40.0", "-p", "max_rate:=8.0", "-p", "diagnostics_period:=0.5")
    diagnostics = _collect(ros_node, DiagnosticArray, "/diagnostics", qos.RELIABLE)
    counted = lambda: [_values(s) for s in _image_statuses(diagnostics) if int(_values(s)["received"]) >= 30]  # noqa: E731
    assert spin_until(ros_node, counted, STARTUP_TIMEOUT + 10.0), process.output()
    values = counted()[0]
    received, throttled, published = (int(values[k]) for k in ("received", "throttled", "published"))
    # 40 Hz in, at most 8 Hz out: about four frames in five are throttled, never queued.
    assert 0 < published <= received / 2 and throttled >= received / 2
    assert values["source"].startswith("image folder") and values["stale"] == "False"
    assert process.stop() == 0, process.output()


@pytest.mark.parametrize(
    "args, message",
    [
        (["-p", "source:=device", "-p", "device:=/dev/video_vla_missing"], "does not exist"),
        (["-p", "source:=video", "-p", "video_path:=/nonexistent/clip.mp4"], "video file not found"),
        (["-p", "source:=video"], "source video needs video_path"),
        (["-p", "source:=images", "-p", "images_path:={tmp}"], "no images"),
        (["-p", "source:=video", "-p", "video_path:={tmp}/garbage.avi"], "cannot read frames from video file"),
        (["-p", "image_fromat:=raw"], "image_fromat: unknown parameter"),
        (["-p", "max_rate:=0.5"], "stale_timeout .* must exceed"),
        (["-p", "resize_mode:=zoom"], "resize_mode: must be one of crop, stretch, pad"),
    ],
)
def test_bad_configuration_exits_2_with_a_clear_message(start_process, tmp_path, args, message):
    (tmp_path / "garbage.avi").write_bytes(bytes(range(256)) * 16)
    process = start_process("camera_node", "--ros-args", *[a.format(tmp=tmp_path) for a in args])
    assert process.proc.wait(STARTUP_TIMEOUT) == 2
    output = process.output()
    assert "error:" in output and re.search(message, output), output
    assert "Traceback" not in output


def test_config_file_lists_every_parameter_with_its_default():
    config = yaml.safe_load(Path(CONFIG_DIR / "camera_node.yaml").read_text())["camera_node"]["ros__parameters"]
    assert config == {p.name: p.default for p in PARAMS}
