"""mujoco_sim_node: the simulated arm, looking to the graph exactly like a real one.

Publishes   /joint_states (sensor_msgs/JointState, RELIABLE, every STATE_JOINT, >= 100 Hz)
            /camera/image_raw, /camera/camera_info (SENSOR, rgb8)
            /wrist_camera/image_raw, /wrist_camera/camera_info (SENSOR, rgb8; when wrist_camera
            is true: the hand camera, rendered from the same instant as each /camera frame)
            /sim/task (vla_ros/TaskStatus, RELIABLE), /sim/objects (visualization_msgs/MarkerArray, RELIABLE)
            /clock (rosgraph_msgs/Clock, when publish_clock is true), /diagnostics
Subscribes  /joint_commands (sensor_msgs/JointState positions, matched by name; a bad
            command is rejected with a throttled warning and the arm holds its last good target)
Services    /sim/reset (vla_ros/srv/ResetSim), /sim/set_task (vla_ros/srv/SetTask)

Physics runs in its own thread at `realtime_factor`; images are rendered in a
second thread that owns the GL context, from a copy of the poses taken under the
lock, so a 30 ms render never stalls the joint states. The world logic lives in
vla_ros/sim (no ROS there).
"""
from __future__ import annotations

import json
import math
import sys
import threading
import time
from typing import NamedTuple

from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from visualization_msgs.msg import Marker, MarkerArray

from vla_ros import arm, qos
from vla_ros.camera.ros_image import rgb_to_image_msg
from vla_ros.msg import TaskStatus
from vla_ros.node_common import (
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
    stamp_from_seconds,
)
from vla_ros.policies.base import CONTROL_DT
from vla_ros.sim import tasks
from vla_ros.sim.world import CAMERAS, CameraRenderer, SimWorld, joint_targets_by_name
from vla_ros.srv import ResetSim, SetTask

MAX_IMAGE_WIDTH, MAX_IMAGE_HEIGHT = 1280, 960  # the model's offscreen buffer


def _between(low, high):
    def check(value) -> str | None:
        return None if low <= value <= high else f"must be in [{low}, {high}], got {value}"

    return check


PARAMS = [
    Param("seed", 0, "seed of the first episode: objects, poses, lighting, camera jitter", non_negative),
    Param("task", "", 'task spec as JSON to start with, e.g. {"task": "pick", "object": "red cube"}; empty: none'),
    Param("num_objects", 0, "objects on the table per episode (1-8); 0: 3 to 5, chosen by the seed", _between(0, 8)),
    Param("realtime_factor", 1.0, "simulated seconds per wall-clock second (faster than real time: > 1)",
          _between(0.01, 100.0)),
    Param("publish_clock", False, "publish /clock and stamp messages with simulated time (for use_sim_time)"),
    Param("joint_state_rate", 100.0, "/joint_states rate in Hz of simulated time", _between(100.0, 500.0)),
    Param("camera", "scene", "camera to publish: scene (fixed, in front) or wrist (on the hand)", one_of(*CAMERAS)),
    Param("camera_rate", 30.0, "camera images per simulated second; 0 turns the camera off", non_negative),
    Param("wrist_camera", False, "also publish the hand camera on /wrist_camera/*, one frame with each camera "
          "frame (for a policy that uses the wrist camera)"),
    Param("wrist_image_size", 128, "side of the square hand camera images in pixels (policies see ~96)",
          _between(16, MAX_IMAGE_HEIGHT)),
    Param("image_width", 320, "camera image width in pixels", _between(16, MAX_IMAGE_WIDTH)),
    Param("image_height", 240, "camera image height in pixels", _between(16, MAX_IMAGE_HEIGHT)),
    Param("status_rate", 10.0, "/sim/task and /sim/objects rate in Hz", positive),
    Param("frame_id", "world", "frame of the object markers (the arm base on the table top)"),
]


class _CameraStream(NamedTuple):
    """One simulated camera and where its frames go."""

    camera: str  # a camera of the MJCF (sim.world.CAMERAS)
    width: int
    height: int
    image_pub: object  # rclpy Publisher of sensor_msgs/Image
    info_pub: object  # rclpy Publisher of sensor_msgs/CameraInfo


class MujocoSimNode(Node):
    def __init__(self):
        super().__init__("mujoco_sim_node")
        # Set first: rclpy's shutdown destroys the node even when construction failed.
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.world: SimWorld | None = None
        self.params = p = declare_parameters(self, PARAMS)
        try:
            initial_task = json.loads(p.task) if p.task.strip() else None
            self.world = SimWorld(image_size=(p.image_height, p.image_width))
            self.world.reset(p.seed, initial_task, p.num_objects or None)
        except ValueError as err:  # bad JSON, impossible task, too many objects
            raise ConfigError(f"node 'mujoco_sim_node' cannot start its first episode: {err}") from err
        if p.wrist_camera and p.camera == "wrist":
            raise ConfigError("wrist_camera: the hand camera is already `camera`; set camera to scene")
        if self.get_parameter("use_sim_time").value and not p.publish_clock:
            self.get_logger().warning("use_sim_time is true but publish_clock is false: this node's timers wait "
                                      "for another /clock publisher")
        self._lock = threading.Lock()  # guards self.world
        self._substeps_per_tick = max(1, round(1.0 / (p.joint_state_rate * self.world.model.opt.timestep)))
        self._tick = self._substeps_per_tick * self.world.model.opt.timestep
        self._sim_clock = 0.0  # monotonic simulated seconds since start (episode time restarts on reset)
        self._success_at: float | None = None  # task time of the first success since the task was set
        self._counts = {"commands_accepted": 0, "commands_rejected": 0, "images": 0}
        self._last_rejection = ""
        self._achieved_factor = 0.0

        self._joint_pub = self.create_publisher(JointState, "/joint_states", qos.RELIABLE)
        # Rendered together at each frame, from one copy of the poses.
        self._cameras = [self._camera_stream(p.camera, p.image_width, p.image_height, "/camera")]
        if p.wrist_camera:
            self._cameras.append(self._camera_stream("wrist", p.wrist_image_size, p.wrist_image_size, "/wrist_camera"))
        self._task_pub = self.create_publisher(TaskStatus, "/sim/task", qos.RELIABLE)
        self._objects_pub = self.create_publisher(MarkerArray, "/sim/objects", qos.RELIABLE)
        self._clock_pub = self.create_publisher(Clock, "/clock", qos.RELIABLE) if p.publish_clock else None
        self.create_subscription(JointState, "/joint_commands", self._on_command, qos.RELIABLE)
        self.create_service(ResetSim, "/sim/reset", self._on_reset)
        self.create_service(SetTask, "/sim/set_task", self._on_set_task)
        self.create_timer(1.0 / p.status_rate, self._publish_status)
        self._diagnostics = Diagnostics(self, self._diagnose)

        self._threads.append(threading.Thread(target=self._physics_loop, name="physics", daemon=True))
        if p.camera_rate > 0:
            self._threads.append(threading.Thread(target=self._camera_loop, name="camera", daemon=True))
        for thread in self._threads:
            thread.start()
        self.get_logger().info(
            f"simulating seed {p.seed} ({', '.join(self.world.present)}) at {p.realtime_factor}x real time; "
            f"joint states at {1.0 / self._tick:.0f} Hz"
            + (f", {p.camera} camera {p.image_width}x{p.image_height} at {p.camera_rate} Hz" if p.camera_rate else ""))

    # ------------------------------------------------------------------ threads

    def _stamp(self, sim_seconds: float):
        if self._clock_pub is not None:
            return stamp_from_seconds(sim_seconds)
        return self.get_clock().now().to_msg()

    def _physics_loop(self) -> None:
        wall_per_tick = self._tick / self.params.realtime_factor
        ticks_per_check = max(1, round(CONTROL_DT / self._tick))
        next_wall = time.monotonic()
        window_start, window_ticks = next_wall, 0
        ticks = 0
        while not self._stop.is_set():
            with self._lock:
                self.world.advance(self._tick)
                self._sim_clock += self._tick
                positions, velocities, efforts = self.world.joint_state()
                ticks += 1
                if ticks % ticks_per_check == 0 and self._success_at is None and self.world.success():
                    self._success_at = self.world.task_elapsed()
                sim_clock = self._sim_clock
            stamp = self._stamp(sim_clock)
            message = JointState(name=list(arm.STATE_JOINTS), position=positions.tolist(),
                                 velocity=velocities.tolist(), effort=efforts.tolist())
            message.header.stamp = stamp
            if not self._publish(self._joint_pub, message):
                return
            if self._clock_pub is not None and not self._publish(self._clock_pub, Clock(clock=stamp)):
                return
            window_ticks += 1
            now = time.monotonic()
            if now - window_start >= 1.0:
                self._achieved_factor = window_ticks * self._tick / (now - window_start)
                window_start, window_ticks = now, 0
            next_wall += wall_per_tick
            if next_wall > now:
                time.sleep(next_wall - now)
            elif now - next_wall > 0.1:
                next_wall = now  # fell behind (slow machine): do not try to catch up in a burst

    def _camera_loop(self) -> None:
        import mujoco

        p = self.params
        renderers = [CameraRenderer(self.world.model, c.width, c.height) for c in self._cameras]
        scratch = mujoco.MjData(self.world.model)
        infos = [self._camera_info(c.camera, c.width, c.height) for c in self._cameras]
        period = 1.0 / (p.camera_rate * p.realtime_factor)
        next_wall = time.monotonic()
        try:
            while not self._stop.is_set():
                with self._lock:
                    self.world.copy_pose_to(scratch)
                    sim_clock = self._sim_clock
                stamp = self._stamp(sim_clock)
                for stream, renderer, info in zip(self._cameras, renderers, infos):
                    renderer.update(scratch, stream.camera)
                    info.header.stamp = stamp
                    image = rgb_to_image_msg(renderer.pixels(), stamp, info.header.frame_id)
                    if not (self._publish(stream.image_pub, image) and self._publish(stream.info_pub, info)):
                        return
                self._counts["images"] += 1
                next_wall += period
                now = time.monotonic()
                if next_wall > now:
                    self._stop.wait(next_wall - now)
                else:
                    next_wall = now  # rendering is slower than asked: publish as fast as it goes
        finally:
            for renderer in renderers:
                renderer.close()

    def _publish(self, publisher, message) -> bool:
        """Publish from a worker thread; False once the node or context has gone (shutdown)."""
        try:
            publisher.publish(message)
            return True
        except Exception:  # rclpy raises various errors on a destroyed publisher or context
            # Ctrl-C/SIGTERM shut the context down before destroy_node() stops this thread.
            if self._stop.is_set() or not self.context.ok():
                return False
            raise

    def _camera_stream(self, camera: str, width: int, height: int, namespace: str) -> _CameraStream:
        return _CameraStream(camera, width, height,
                             self.create_publisher(Image, f"{namespace}/image_raw", qos.SENSOR),
                             self.create_publisher(CameraInfo, f"{namespace}/camera_info", qos.SENSOR))

    def _camera_info(self, camera: str, width: int, height: int) -> CameraInfo:
        fovy = math.radians(float(self.world.model.cam_fovy[self.world.model.camera(camera).id]))
        focal = (height / 2.0) / math.tan(fovy / 2.0)  # square pixels
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        info = CameraInfo(height=height, width=width, distortion_model="plumb_bob",
                          d=[0.0] * 5, k=[focal, 0.0, cx, 0.0, focal, cy, 0.0, 0.0, 1.0],
                          r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                          p=[focal, 0.0, cx, 0.0, 0.0, focal, cy, 0.0, 0.0, 0.0, 1.0, 0.0])
        info.header.frame_id = f"{camera}_camera_optical_frame"
        return info

    # ---------------------------------------------------------- callbacks

    def _on_command(self, msg: JointState) -> None:
        try:
            with self._lock:
                targets = joint_targets_by_name(msg.name, msg.position, self.world.joint_goal())
                self.world.command(targets)
            self._counts["commands_accepted"] += 1
        except ValueError as err:
            self._counts["commands_rejected"] += 1
            self._last_rejection = str(err)
            self.get_logger().warning(f"rejected /joint_commands ({err}); holding the last good target",
                                      throttle_duration_sec=1.0)

    def _on_reset(self, request: ResetSim.Request, response: ResetSim.Response) -> ResetSim.Response:
        with self._lock:
            try:
                self.world.reset(request.seed, self.world.task, self.params.num_objects or None)
            except ValueError as err:
                response.success, response.message = False, f"reset failed: {err}"
                return response
            self._success_at = None
            present = ", ".join(self.world.present)
        response.success, response.message = True, f"seed {request.seed}: {present} on the table"
        self.get_logger().info(response.message)
        return response

    def _on_set_task(self, request: SetTask.Request, response: SetTask.Response) -> SetTask.Response:
        response.success, response.message = self._set_task(request.task_json)
        if response.success:
            self.get_logger().info(response.message)
        else:
            self.get_logger().warning(response.message)
        return response

    def _set_task(self, task_json: str) -> tuple[bool, str]:
        if not task_json.strip():
            with self._lock:
                self.world.clear_task()
                self._success_at = None
            return True, "task cleared"
        try:
            spec = tasks.validate(json.loads(task_json))
        except ValueError as err:  # json.JSONDecodeError and TaskError
            return False, f"bad task {task_json!r}: {err}"
        with self._lock:
            missing = [name for name in tasks.objects_of(spec) if name not in self.world.present]
            try:
                if missing:
                    # Lay the same seed's scene out again, this time with the task's objects.
                    self.world.reset(self.world.seed, spec, self.params.num_objects or None)
                else:
                    self.world.set_task(spec)
            except ValueError as err:
                return False, f"cannot set task {json.dumps(spec)}: {err}"
            self._success_at = None
        relaid = f" ({', '.join(missing)} was not on the table: scene of seed {self.world.seed} re-laid)" if missing else ""
        return True, f"task: {tasks.canonical_instruction(spec)}{relaid}"

    def _publish_status(self) -> None:
        with self._lock:
            world = self.world
            spec, seed, elapsed, success = world.task, world.seed, world.task_elapsed(), self._success_at is not None
            poses = world.object_poses()
            shapes = {name: world.object_shape(name) for name in poses}
            stamp = self._stamp(self._sim_clock)
        status = TaskStatus(task_json=json.dumps(spec) if spec else "",
                            instruction=tasks.canonical_instruction(spec) if spec else "",
                            seed=seed, success=success, elapsed=elapsed)
        status.header.stamp = stamp
        self._task_pub.publish(status)
        self._objects_pub.publish(self._markers(poses, shapes, stamp))

    def _markers(self, poses, shapes, stamp) -> MarkerArray:
        markers = [Marker(action=Marker.DELETEALL, ns="sim_objects")]  # objects come and go with resets
        for index, (name, (position, quat)) in enumerate(poses.items()):
            kind, size, rgba = shapes[name]
            marker = Marker(ns="sim_objects", id=index, action=Marker.ADD,
                            type=Marker.CUBE if kind == "box" else Marker.CYLINDER, text=name)
            marker.header.frame_id = self.params.frame_id
            marker.header.stamp = stamp
            marker.pose.position.x, marker.pose.position.y, marker.pose.position.z = map(float, position)
            marker.pose.orientation.w, marker.pose.orientation.x, marker.pose.orientation.y, marker.pose.orientation.z = (
                map(float, quat))
            marker.scale.x, marker.scale.y, marker.scale.z = map(float, size)
            marker.color.r, marker.color.g, marker.color.b, marker.color.a = map(float, rgba)
            markers.append(marker)
        return MarkerArray(markers=markers)

    def _diagnose(self):
        factor, wanted = self._achieved_factor, self.params.realtime_factor
        slow = factor < 0.8 * wanted and self._sim_clock > 2.0
        values = {"simulated_seconds": round(self._sim_clock, 2), "realtime_factor": round(factor, 2),
                  "seed": self.world.seed, "task": json.dumps(self.world.task) if self.world.task else "",
                  "last_rejection": self._last_rejection, **self._counts}
        message = f"running at {factor:.2f}x real time" + (f" (asked {wanted}x: machine too slow)" if slow else "")
        return [("physics", DIAG_WARN if slow else DIAG_OK, message, values)]

    def destroy_node(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5.0)
        if self.world is not None:
            self.world.close()
        return super().destroy_node()


def main(args=None):
    return run_node(MujocoSimNode, args)


if __name__ == "__main__":
    sys.exit(main())
