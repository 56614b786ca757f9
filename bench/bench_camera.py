"""Camera ingestion cost: per-frame conversion + resize, and ingest-to-publish latency over DDS.

1. In process: decode a sensor_msgs/Image (several encodings, 224x224 and
   640x480), frame it to the policy input (128x128 crop) and build the rgb8
   output message; p50/p99 of each step and of the whole.
2. Over DDS: camera_node as its own process, fed by this script at a fixed rate;
   the node's own ingest-to-publish percentiles (from /diagnostics) and the
   publish-to-receive latency seen here (two DDS hops), with drop counts. The
   overload case feeds faster than the node can decode to show that the newest
   frame wins: latency stays flat, frames are dropped, nothing queues.

Usage: bench_camera.py [--repeats N] [--seconds S]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from benchlib import percentiles, save  # noqa: E402
from builtin_interfaces.msg import Time  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402

from vla_ros.camera import convert, ros_image  # noqa: E402
from vla_ros.camera.preprocess import policy_frame  # noqa: E402

OUTPUT_SIZE = 128
SIZES = {"224x224": (224, 224), "640x480": (480, 640)}
ENCODINGS = ("rgb8", "bgr8", "bgra8", "mono8", "bayer_rggb8", "yuv422", "jpeg")


def _test_image(height: int, width: int) -> np.ndarray:
    """A smooth, textured RGB image (JPEG-friendly, not constant)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack([127 + 100 * np.sin(x / 17), 127 + 100 * np.cos(y / 23), 127 + 100 * np.sin((x + y) / 31)], -1)
    return rgb.astype(np.uint8)


def _message(rgb: np.ndarray, encoding: str):
    stamp = Time(sec=1)
    if encoding == "jpeg":
        data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
        return CompressedImage(format="jpeg", data=data), ros_image.compressed_to_rgb
    if encoding == "yuv422":
        yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV)  # full 4:4:4, then packed as U Y0 V Y1
        packed = np.empty(rgb.shape[:2] + (2,), np.uint8)
        packed[..., 1] = yuv[..., 0]
        packed[:, 0::2, 0] = yuv[:, 0::2, 1]
        packed[:, 1::2, 0] = yuv[:, 0::2, 2]
        raw = convert.encode_pixels(packed, "yuv422")
    else:
        raw = convert.from_rgb8(rgb, encoding)
    return ros_image.raw_to_image_msg(raw, stamp, "camera"), ros_image.image_to_rgb


def bench_conversion(repeats: int) -> dict:
    results = {}
    for size_name, (height, width) in SIZES.items():
        rgb = _test_image(height, width)
        for encoding in ENCODINGS:
            msg, decode = _message(rgb, encoding)
            decode_s, resize_s, encode_s, total_s = [], [], [], []
            for i in range(repeats + 10):
                t0 = time.perf_counter()
                frame = decode(msg)
                t1 = time.perf_counter()
                policy = policy_frame(frame, OUTPUT_SIZE)
                t2 = time.perf_counter()
                ros_image.rgb_to_image_msg(policy, msg.header.stamp, "camera")
                t3 = time.perf_counter()
                if i >= 10:  # warm-up excluded
                    decode_s.append(t1 - t0)
                    resize_s.append(t2 - t1)
                    encode_s.append(t3 - t2)
                    total_s.append(t3 - t0)
            entry = {"decode_ms": percentiles(decode_s), "resize_ms": percentiles(resize_s),
                     "encode_ms": percentiles(encode_s), "total_ms": percentiles(total_s)}
            results[f"{size_name} {encoding}"] = entry
            print(f"{size_name:8s} {encoding:12s} decode p50 {entry['decode_ms']['p50']:6.3f}  "
                  f"resize p50 {entry['resize_ms']['p50']:6.3f}  total p50 {entry['total_ms']['p50']:6.3f} "
                  f"p99 {entry['total_ms']['p99']:6.3f} ms")
    return results


def bench_dds(scenarios, seconds: float) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    from vla_ros import qos
    from vla_ros.node_common import configure_middleware

    configure_middleware()
    rclpy.init()
    node = rclpy.create_node("bench_camera")
    results = {}
    try:
        for name, (height, width), rate_hz in scenarios:
            results[name] = _run_scenario(node, Image, DiagnosticArray, qos, height, width, rate_hz, seconds)
            r = results[name]
            print(f"DDS {name:28s} sent {r['sent']:4d} received {r['received']:4d}  node ingest->publish p50 "
                  f"{r['node_ingest_to_publish_p50_ms']} p99 {r['node_ingest_to_publish_p99_ms']} ms  "
                  f"publish->receive p50 {r['publish_to_receive_ms']['p50']:.2f} "
                  f"p99 {r['publish_to_receive_ms']['p99']:.2f} ms  dropped {r['node_counts']['dropped']}")
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return results


def _run_scenario(node, Image, DiagnosticArray, qos, height, width, rate_hz, seconds) -> dict:
    import rclpy

    executable = Path(sys.executable).parent / "camera_node"
    process = subprocess.Popen([str(executable), "--ros-args", "-p", "max_rate:=0.0", "-p", "diagnostics_period:=0.5",
                                "-p", f"output_size:={OUTPUT_SIZE}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sent_at: dict[tuple[int, int], float] = {}
    latencies: list[float] = []
    diagnostics: list = []

    def on_image(msg):
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        if key in sent_at:
            latencies.append(time.perf_counter() - sent_at[key])

    node.create_subscription(Image, "/vla/image", on_image, qos.SENSOR)
    node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, qos.RELIABLE)
    publisher = node.create_publisher(Image, "/camera/image_raw", qos.SENSOR)
    raw = convert.from_rgb8(_test_image(height, width), "bgr8")
    try:
        deadline = time.monotonic() + 30.0
        while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        time.sleep(1.0)  # let the node settle after discovery
        sent = 0
        period = 1.0 / rate_hz
        start = time.monotonic()
        next_send = start
        while time.monotonic() - start < seconds:
            now = time.monotonic()
            if now >= next_send:
                stamp = node.get_clock().now().to_msg()
                msg = ros_image.raw_to_image_msg(raw, stamp, "camera")
                sent_at[(stamp.sec, stamp.nanosec)] = time.perf_counter()
                publisher.publish(msg)
                sent += 1
                next_send += period
            rclpy.spin_once(node, timeout_sec=max(0.0, min(next_send - time.monotonic(), 0.01)))
        end = time.monotonic() + 1.5  # the last diagnostics and frames
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        process.terminate()
        process.wait(10)
    statuses = [s for a in diagnostics for s in a.status if s.name == "camera_node: image"]
    values = {kv.key: kv.value for kv in statuses[-1].values} if statuses else {}
    counts = {k: int(values.get(k, -1)) for k in ("received", "throttled", "dropped", "rejected", "published")}
    return {
        "input": f"{width}x{height} bgr8", "rate_hz": rate_hz, "seconds": seconds, "sent": sent,
        "received": len(latencies), "publish_to_receive_ms": percentiles(latencies) if latencies else {},
        "node_ingest_to_publish_p50_ms": float(values.get("ingest_to_publish_p50_ms", "nan")),
        "node_ingest_to_publish_p99_ms": float(values.get("ingest_to_publish_p99_ms", "nan")),
        "node_counts": counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=300, help="frames per conversion case (default 300)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per DDS scenario (default 10)")
    args = parser.parse_args()
    scenarios = [
        ("224x224 at 30 Hz", SIZES["224x224"], 30.0),
        ("640x480 at 30 Hz", SIZES["640x480"], 30.0),
        ("640x480 at 200 Hz (overload)", SIZES["640x480"], 200.0),
    ]
    results = {
        "output": f"{OUTPUT_SIZE}x{OUTPUT_SIZE} rgb8, crop",
        "decoder": ros_image.DECODER,
        "opencv_threads": cv2.getNumThreads(),
        "conversion_per_frame": bench_conversion(args.repeats),
        "dds": bench_dds(scenarios, args.seconds),
    }
    save("camera", results)


if __name__ == "__main__":
    main()
