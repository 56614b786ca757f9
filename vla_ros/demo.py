"""`vla-ros demo`: the whole graph over DDS against the simulated arm, driven like a user would.

For each instruction: the simulator gets the matching task (vocabulary.parse_instruction)
and a seeded scene, the text goes to /voice_command, and the run waits for the
simulator's success check or a timeout. The camera view becomes an MP4 per instruction
and every pipeline topic goes into one MCAP recording (vla_ros/recording.py).
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vla_ros import qos
from vla_ros.camera.preprocess import policy_frame
from vla_ros.intake.text import normalise
from vla_ros.sim.tasks import SuccessWatch
from vla_ros.vocabulary import parse_instruction

VIDEO_FPS = 10.0  # camera frames kept for the video, per second
VIDEO_SIZE = 240  # px, square (the policy's framing)


class DemoError(RuntimeError):
    """The demo could not run (bad instruction, simulator refused the task)."""


@dataclass
class Outcome:
    instruction: str
    task: dict
    seed: int
    success: bool
    seconds: float  # from publishing the instruction to success (or to giving up)
    policy_status: str  # the last /vla/status reason
    video: str


def plan_tasks(instructions: list[str]) -> list[dict]:
    """The simulator task of each instruction; DemoError names any the simulator cannot score."""
    specs = []
    for text in instructions:
        spec = parse_instruction(text)
        if spec is None:
            raise DemoError(f"cannot score {text!r}: it is not a phrasing of a simulator task "
                            "(e.g. 'pick up the red cube', 'put the blue cylinder on the white plate', "
                            "'push the green cube left', 'stack the red cube on the blue cylinder', 'go home')")
        specs.append(spec)
    return specs


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:48]


class DemoClient:
    """The demo's own ROS node: simulator services, the instruction publisher, the probes."""

    def __init__(self, record_path: Path | None):
        import rclpy
        import rclpy.executors
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        from vla_ros.msg import PolicyStatus, TaskStatus
        from vla_ros.node_common import configure_middleware
        from vla_ros.recording import DEFAULT_TOPICS, Recorder
        from vla_ros.srv import ResetSim, SetTask

        configure_middleware()
        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("vla_ros_demo", context=self.context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.voice = self.node.create_publisher(String, "/voice_command", qos.RELIABLE)
        self.reset_client = self.node.create_client(ResetSim, "/sim/reset")
        self.task_client = self.node.create_client(SetTask, "/sim/set_task")
        self.task: TaskStatus | None = None
        self.status: PolicyStatus | None = None
        self.frames: list[np.ndarray] | None = None
        self._last_frame = 0.0
        self.node.create_subscription(TaskStatus, "/sim/task", self._on_task, qos.RELIABLE)
        self.node.create_subscription(PolicyStatus, "/vla/status", self._on_status, qos.RELIABLE)
        self.node.create_subscription(Image, "/camera/image_raw", self._on_image, qos.SENSOR)
        self.recorder = Recorder(self.node, record_path, DEFAULT_TOPICS) if record_path else None
        self._String, self._ResetSim, self._SetTask = String, ResetSim, SetTask
        self._DONE = PolicyStatus.DONE
        self.task_success = SuccessWatch()

    # -- probes --------------------------------------------------------------------------
    def _on_task(self, msg) -> None:
        self.task = msg
        self.task_success.update(msg.task_json, msg.success)

    def _on_status(self, msg) -> None:
        self.status = msg

    def _on_image(self, msg) -> None:
        from vla_ros.camera.ros_image import image_to_rgb

        now = time.monotonic()
        if self.frames is None or now - self._last_frame < 1.0 / VIDEO_FPS:
            return
        self._last_frame = now
        try:
            self.frames.append(policy_frame(image_to_rgb(msg), VIDEO_SIZE))
        except ValueError:
            pass  # the camera node reports bad frames; the video just skips them

    # -- driving -------------------------------------------------------------------------
    def spin_until(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        next_discovery = 0.0
        while time.monotonic() < deadline:
            if predicate():
                return True
            if self.recorder is not None and time.monotonic() >= next_discovery:
                self.recorder.discover()
                next_discovery = time.monotonic() + 0.5
            self.executor.spin_once(timeout_sec=0.02)
        return bool(predicate())

    def call(self, client, request, timeout: float = 10.0):
        if not client.wait_for_service(timeout_sec=timeout):
            raise DemoError(f"service {client.srv_name} is not available")
        future = client.call_async(request)
        if not self.spin_until(future.done, timeout):
            raise DemoError(f"service {client.srv_name} did not answer within {timeout} s")
        return future.result()

    def run(self, text: str, spec: dict, seed: int, reset: bool, timeout: float, video: Path | None) -> Outcome:
        answer = self.call(self.task_client, self._SetTask.Request(task_json=json.dumps(spec)))
        if not answer.success:
            raise DemoError(f"the simulator refused {spec}: {answer.message}")
        if reset:
            answer = self.call(self.reset_client, self._ResetSim.Request(seed=seed))
            if not answer.success:
                raise DemoError(f"the simulator could not reset with seed {seed}: {answer.message}")
        expected = normalise(text)
        self.task_success.reset()
        self.spin_until(lambda: self.task_success.seen_unsolved, 5.0)  # the new task's first status
        self.frames = [] if video is not None else None
        self.voice.publish(self._String(data=text))
        sent = time.monotonic()

        def running() -> bool:
            return self.status is not None and self.status.instruction == expected

        def ended() -> bool:
            gave_up = running() and self.status.state == self._DONE and "succeeded" not in self.status.reason
            return self.task_success.solved or gave_up

        self.spin_until(ended, timeout)
        seconds = time.monotonic() - sent
        success = self.task_success.solved
        self.spin_until(lambda: running() and self.status.reason == "task succeeded", 2.0 if success else 0.0)
        frames, self.frames = self.frames, None
        if video is not None and frames:
            from vla_ros.evaluation import write_video

            write_video(video, frames)
        reason = self.status.reason if running() else "the policy never reported this instruction"
        return Outcome(text, spec, seed, success, round(seconds, 2), reason, str(video) if video else "")

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
        self.executor.shutdown()
        self.node.destroy_node()
        self._rclpy.try_shutdown(context=self.context)


def write_report(path: Path, outcomes: list[Outcome], extra: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**extra, "outcomes": [asdict(o) for o in outcomes]}, indent=2) + "\n")
