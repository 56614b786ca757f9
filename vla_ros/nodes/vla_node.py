"""vla_node: latest frame + joint state + current instruction -> policy -> joint targets.

Thin ROS plumbing around vla_ros/inference.py (ClosedLoop): the model runs on a
worker thread, the control timer publishes the blended chunk targets; nothing here
waits on inference. The safety filter is the only consumer of the targets: this
node never publishes /joint_commands.

Subscribes
  /vla/image          sensor_msgs/Image (rgb8, stamp = capture time)   SENSOR
  /vla/wrist_image    sensor_msgs/Image (rgb8; only for a policy that uses the hand camera)  SENSOR
  /joint_states       sensor_msgs/JointState                           SENSOR
  /vla/instruction    vla_ros/Instruction                              LATCHED
  /sim/task           vla_ros/TaskStatus (optional: its success ends the instruction)  RELIABLE
  /safety/status      vla_ros/SafetyStatus (an e-stop abandons the instruction)       RELIABLE
Publishes
  /vla/joint_targets  sensor_msgs/JointState (stamp = capture time of the observation behind it)  RELIABLE
  /vla/action_chunk   vla_ros/ActionChunk (each chunk the model computed)  RELIABLE
  /vla/status         vla_ros/PolicyStatus (on change and at 2 Hz)      RELIABLE
  /diagnostics        inference latency, discards, holds, input ages, 1 Hz
"""
from __future__ import annotations

import sys
import time
from collections import deque

import numpy as np
from rclpy.duration import Duration
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectoryPoint

from vla_ros import arm, qos
from vla_ros.camera import ros_image
from vla_ros.inference import ChunkResult, ClosedLoop, TimedObservation
from vla_ros.msg import ActionChunk, Instruction, PolicyStatus, SafetyStatus, TaskStatus
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
    stamp_from_seconds,
    stamp_seconds,
)
from vla_ros.policies import CONTROL_DT, Observation, load_backend
from vla_ros.policies.base import uses_wrist_camera
from vla_ros.policies.chunking import AGGREGATION_MODES, policy_blending
from vla_ros.safety.filter import InputError, positions_by_name
from vla_ros.sim.tasks import SuccessWatch

IMAGE_TOPIC = "/vla/image"
WRIST_IMAGE_TOPIC = "/vla/wrist_image"
JOINT_STATES_TOPIC = "/joint_states"
INSTRUCTION_TOPIC = "/vla/instruction"
TASK_TOPIC = "/sim/task"
SAFETY_STATUS_TOPIC = "/safety/status"
TARGETS_TOPIC = "/vla/joint_targets"
CHUNK_TOPIC = "/vla/action_chunk"
STATUS_TOPIC = "/vla/status"

PARAMS = [
    Param("backend", "builtin", "policy backend: builtin | lerobot | openvla", one_of("builtin", "lerobot", "openvla")),
    Param("checkpoint", "", "policy checkpoint file or model directory; '' = the checkpoint shipped with vla_ros"),
    Param("device", "cpu", "torch device for backends that use one (cpu, cuda)"),
    Param("threads", 1, "CPU threads of an in-process torch backend; 1 avoids OpenMP stalls when the graph's other "
          "processes share the cores", positive),
    Param("control_rate", 50.0, "Hz at which joint targets are published (the safety filter holds after its "
          "command_timeout, 0.06 s, without one)", positive),
    Param("n_action_steps", 0, "policy steps executed per chunk before asking again; 0 = the policy's own",
          non_negative),
    Param("aggregation", "", "how overlapping chunks combine: ensemble | latest | average; '' = the policy's own",
          one_of("", *AGGREGATION_MODES)),
    Param("max_age", 0.2, "s: an image or joint state older than this stops new actions (hold)", positive),
    Param("latency_budget", 0.1, "s: an inference slower than this is discarded and counted", positive),
    Param("task_timeout", 60.0, "s after which an instruction ends as timed out", positive),
    Param("joint_names", list(arm.COMMANDED_JOINTS), "the arm's names for the policy's 7 arm joints + gripper, "
          "in that order (read from /joint_states, written to /vla/joint_targets)"),
]

# Measured positions may overshoot the limits a little; beyond this a joint state is not believed.
STATE_TOLERANCE = 0.05

STATE_NAMES = {PolicyStatus.IDLE: "idle", PolicyStatus.RUNNING: "running", PolicyStatus.DONE: "done",
               PolicyStatus.HOLDING: "holding"}


def _limit_torch_threads(threads: int) -> None:
    # With more threads than free cores, every OpenMP barrier waits for a descheduled
    # thread: measured here, an evaluation with 2 threads beside one busy process took ~300 ms
    # per control step instead of ~10 ms.
    try:
        import torch
    except ImportError:
        return  # backends without torch in this process
    torch.set_num_threads(threads)


def _warm_up(policy) -> float:
    """One inference before the node goes live: lazy loads (the language model, kernels)
    happen here, not in the first real step, where they would blow the latency budget."""
    started = time.perf_counter()
    blank = np.zeros((96, 96, 3), np.uint8)
    try:
        policy.select_action(Observation(blank, arm.home_vector(), blank if uses_wrist_camera(policy) else None),
                             "go home")
    except Exception as err:  # a backend that cannot run at all must not start half-working
        raise ConfigError(f"the policy failed its first inference: {type(err).__name__}: {err}") from err
    return time.perf_counter() - started


class VlaNode(Node):
    def __init__(self):
        super().__init__("vla_node")
        p = self.params = declare_parameters(self, PARAMS)
        if len(p.joint_names) != len(arm.COMMANDED_JOINTS) or len(set(p.joint_names)) != len(p.joint_names):
            raise ConfigError(f"joint_names: need {len(arm.COMMANDED_JOINTS)} distinct names "
                              f"(7 arm joints + gripper), got {p.joint_names}")
        _limit_torch_threads(p.threads)
        try:
            policy = load_backend(p.backend, p.checkpoint, p.device)
        except (ValueError, ImportError, OSError) as err:  # the error names the missing package, file or key
            raise ConfigError(f"cannot load the {p.backend} policy: {err}") from err
        warm_up_seconds = _warm_up(policy)
        n_action_steps = p.n_action_steps or getattr(policy, "n_action_steps", None)
        aggregation, ensemble_decay = policy_blending(policy)
        self.loop = ClosedLoop(policy, n_action_steps=n_action_steps or 1, aggregation=p.aggregation or aggregation,
                               ensemble_decay=ensemble_decay, max_age=p.max_age, latency_budget=p.latency_budget,
                               step_period=CONTROL_DT, control_period=1.0 / p.control_rate)
        self._chunks: deque[ChunkResult] = deque(maxlen=8)  # computed chunks, published from the executor thread
        limits = arm.limits_arrays()
        self._lower, self._upper = limits["lower"] - STATE_TOLERANCE, limits["upper"] + STATE_TOLERANCE
        self._image: tuple[np.ndarray, float] | None = None
        self._wrist_image: tuple[np.ndarray, float] | None = None
        self._uses_wrist_camera = uses_wrist_camera(policy)
        self._state: tuple[np.ndarray, float] | None = None
        self._status = PolicyStatus(state=PolicyStatus.IDLE, reason="no instruction yet")
        self._instruction_start = 0.0
        self._task_success = SuccessWatch()  # the simulator's success of this instruction's task
        self._targets_published = 0
        self._last_rejection = ""

        self._targets = self.create_publisher(JointState, TARGETS_TOPIC, qos.RELIABLE)
        self._chunk_pub = self.create_publisher(ActionChunk, CHUNK_TOPIC, qos.RELIABLE)
        self._status_pub = self.create_publisher(PolicyStatus, STATUS_TOPIC, qos.RELIABLE)
        self.create_subscription(Image, IMAGE_TOPIC, self._on_image, qos.SENSOR)
        if self._uses_wrist_camera:
            self.create_subscription(Image, WRIST_IMAGE_TOPIC, self._on_wrist_image, qos.SENSOR)
        self.create_subscription(JointState, JOINT_STATES_TOPIC, self._on_joint_states, qos.SENSOR)
        self.create_subscription(Instruction, INSTRUCTION_TOPIC, self._on_instruction, qos.LATCHED)
        self.create_subscription(TaskStatus, TASK_TOPIC, self._on_task, qos.RELIABLE)
        self.create_subscription(SafetyStatus, SAFETY_STATUS_TOPIC, self._on_safety, qos.RELIABLE)
        self.create_timer(1.0 / p.control_rate, self._on_control)
        self.loop.on_chunk = self._on_chunk
        self.create_timer(0.5, self._publish_status)
        self._diagnostics = Diagnostics(self, self._diagnostic_checks)
        blending = self.loop.aggregation + (f" (decay {ensemble_decay:g})" if self.loop.aggregation == "ensemble" else "")
        self.get_logger().info(f"{p.backend} policy loaded ({p.checkpoint or 'shipped checkpoint'}), "
                               f"first inference {warm_up_seconds:.2f} s; "
                               f"{n_action_steps or 1} step(s) per chunk, {blending} aggregation, "
                               f"targets at {p.control_rate} Hz"
                               + (f"; it uses the hand camera ({WRIST_IMAGE_TOPIC})" if self._uses_wrist_camera else ""))

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # -- inputs ---------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        image = self._read_image(msg, "image")
        if image is not None:
            self._image = image
            self._observe()

    def _on_wrist_image(self, msg: Image) -> None:
        image = self._read_image(msg, "wrist image")
        if image is not None:
            self._wrist_image = image
            self._observe()

    def _read_image(self, msg: Image, which: str) -> tuple[np.ndarray, float] | None:
        try:
            return ros_image.image_to_rgb(msg), stamp_seconds(msg.header.stamp)
        except ValueError as err:
            self._reject(f"{which} rejected: {err}")
            return None

    def _on_joint_states(self, msg: JointState) -> None:
        names = self.params.joint_names
        try:
            state = positions_by_name(msg.name, msg.position, ignore_extra=True, joints=names)
        except InputError as err:
            self._reject(f"joint state rejected: {err}")
            return
        outside = [name for name, q, lo, hi in zip(names, state, self._lower, self._upper) if not lo <= q <= hi]
        if outside:
            self._reject(f"joint state rejected: {', '.join(outside)} outside the joint limits")
            return
        self._state = (state, stamp_seconds(msg.header.stamp))
        self._observe()

    def _observe(self) -> None:
        if self._image is None or self._state is None or (self._uses_wrist_camera and self._wrist_image is None):
            return
        (image, image_stamp), (state, state_stamp) = self._image, self._state
        wrist, wrist_stamp = self._wrist_image or (None, None)
        self.loop.observe(TimedObservation(image, image_stamp, state, state_stamp, wrist, wrist_stamp))

    def _on_instruction(self, msg: Instruction) -> None:
        current = self.loop.instruction
        if current is not None and current[0] == msg.id:
            return  # the latched copy of the instruction already running
        text = msg.text.strip()
        if not text:
            self._reject(f"instruction {msg.id!r} rejected: empty text")
            return
        self._instruction_start = self._now()
        self._task_success.reset()
        self.loop.start(msg.id, text, self._instruction_start)
        # How the policy reads a new phrasing (the built-in one maps it to a trained instruction);
        # cached, so the inference thread asking the same costs nothing more.
        read_as = getattr(self.loop.policy, "understood", lambda same: same)(text)
        self.get_logger().info(f"instruction {msg.id}: {text!r}"
                               + (f", read by the policy as {read_as!r}" if read_as != text else ""))
        self._set_status(PolicyStatus.RUNNING, msg.id, text, "")

    def _on_task(self, msg: TaskStatus) -> None:
        if self.loop.instruction is not None and self._task_success.update(msg.task_json, msg.success):
            self._finish("task succeeded")

    def _on_safety(self, msg: SafetyStatus) -> None:
        if msg.state == SafetyStatus.ESTOP and self.loop.instruction is not None:
            self._finish(f"e-stop: instruction abandoned ({msg.reason})", state=PolicyStatus.HOLDING)

    # -- control ----------------------------------------------------------------------
    def _on_control(self) -> None:
        while self._chunks:
            self._publish_chunk(self._chunks.popleft())
        instruction = self.loop.instruction
        if instruction is None:
            return
        now = self._now()
        if now - self._instruction_start > self.params.task_timeout:
            self._finish(f"time limit of {self.params.task_timeout} s reached")
            return
        target, reason = self.loop.tick(now)
        if target is None:
            self._set_status(PolicyStatus.HOLDING, *instruction, reason)
            return
        msg = JointState(name=list(self.params.joint_names), position=target.positions.tolist())
        msg.header.stamp = stamp_from_seconds(target.stamp)
        self._targets.publish(msg)
        self._targets_published += 1
        self._set_status(PolicyStatus.RUNNING, *instruction, "")

    def _on_chunk(self, result: ChunkResult) -> None:  # the inference thread
        self._chunks.append(result)
        # Published, and its target sent, at once rather than at the next tick: up to a
        # control period less between a frame and the motion it causes.
        self.executor.create_task(self._on_control)

    def _publish_chunk(self, result: ChunkResult) -> None:
        msg = ActionChunk(instruction_id=result.instruction_id, confidence=1.0, inference_time=result.seconds)
        msg.header.stamp = stamp_from_seconds(result.observation_stamp)
        msg.trajectory.joint_names = list(self.params.joint_names)
        for i, row in enumerate(result.chunk):
            msg.trajectory.points.append(JointTrajectoryPoint(
                positions=row.tolist(), time_from_start=Duration(seconds=(i + 1) * CONTROL_DT).to_msg()))
        self._chunk_pub.publish(msg)

    def _finish(self, reason: str, state: int = PolicyStatus.DONE) -> None:
        instruction = self.loop.instruction
        self.loop.stop()
        self.get_logger().info(f"instruction {instruction[0] if instruction else ''} ended: {reason}")
        self._set_status(state, *(instruction or ("", "")), reason)

    # -- status -------------------------------------------------------------------------
    def _set_status(self, state: int, instruction_id: str, text: str, reason: str) -> None:
        status = self._status
        changed = (status.state, status.instruction_id, status.reason) != (state, instruction_id, reason)
        status.state, status.instruction_id, status.instruction, status.reason = state, instruction_id, text, reason
        if changed:
            self._publish_status()

    def _publish_status(self) -> None:
        status = self._status
        status.header.stamp = self.get_clock().now().to_msg()
        status.chunks_computed = self.loop.stats.chunks_computed
        status.inferences_discarded = self.loop.stats.inferences_discarded
        self._status_pub.publish(status)

    def _reject(self, reason: str) -> None:
        self._last_rejection = reason
        self.get_logger().warning(reason, throttle_duration_sec=2.0)

    def _diagnostic_checks(self) -> list[tuple[str, bytes, str, dict]]:
        stats = self.loop.stats
        latencies = np.array(stats.inference_seconds) * 1000.0
        timing = {"inference_ms_p50": round(float(np.median(latencies)), 2) if len(latencies) else "",
                  "inference_ms_max": round(float(latencies.max()), 2) if len(latencies) else "",
                  "chunks_computed": stats.chunks_computed, "inferences_discarded": stats.inferences_discarded,
                  "policy_errors": stats.policy_errors, "holds": stats.holds,
                  "targets_published": self._targets_published}
        now = self._now()
        inputs = {"image": self._image, "joint_state": self._state}
        if self._uses_wrist_camera:
            inputs["wrist_image"] = self._wrist_image
        ages = {f"{name}_age_s": round(now - value[1], 3) if value else "none" for name, value in inputs.items()}
        ages["last_rejection"] = self._last_rejection
        receiving = all(inputs.values())
        status = self._status
        level = DIAG_ERROR if "policy error" in status.reason else (
            DIAG_WARN if status.state == PolicyStatus.HOLDING else DIAG_OK)
        message = f"{STATE_NAMES[status.state]}" + (f": {status.reason}" if status.reason else "")
        return [("policy", level, message, {"instruction": status.instruction, **timing}),
                ("inputs", DIAG_OK if receiving else DIAG_WARN,
                 "receiving" if receiving else f"waiting for {', '.join(n for n, v in inputs.items() if not v)}", ages)]

    def destroy_node(self):
        self.loop.close()
        return super().destroy_node()


def main(args=None):
    return run_node(VlaNode, args)


if __name__ == "__main__":
    sys.exit(main())
