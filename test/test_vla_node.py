"""vla_node as its own process over real DDS, with a randomly initialised tiny built-in policy.

Task success with the shipped checkpoint is tested with the whole graph in test_pipeline.py;
here: topics, chunks, holds and their reasons, instruction changes, bad input and bad start-up.
"""
from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import CONFIG_DIR, spin_until
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header
from vla_ros.msg import ActionChunk, Instruction, PolicyStatus

from vla_ros import arm, qos
from vla_ros.camera.ros_image import rgb_to_image_msg
from vla_ros.policies.builtin.config import CONFIGS
from vla_ros.policies.builtin.model import VLAModel
from vla_ros.policies.builtin.policy import BuiltinPolicy, Normalization

STARTUP_TIMEOUT = 30.0


def _tiny_checkpoint(directory, metadata=None, **changes):
    torch.manual_seed(0)
    config = replace(CONFIGS["tiny"], **changes)
    normalization = Normalization(np.zeros(8, np.float32), np.ones(8, np.float32),
                                  np.zeros((config.chunk_size, 8), np.float32),
                                  np.full((config.chunk_size, 8), 0.01, np.float32))
    path = directory / "tiny.pt"
    BuiltinPolicy(config, VLAModel(config), normalization, metadata).save(path)
    return path


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return _tiny_checkpoint(tmp_path_factory.mktemp("policy"))


class FakeArm:
    """Publishes camera frames and joint states from its own thread, stamped with the current time."""

    def __init__(self, node, state=None):
        self.node = node
        self.state = arm.home_vector() if state is None else state
        self.images = node.create_publisher(Image, "/vla/image", qos.SENSOR)
        self.wrist_images = node.create_publisher(Image, "/vla/wrist_image", qos.SENSOR)
        self.joints = node.create_publisher(JointState, "/joint_states", qos.RELIABLE)
        self.send_images = True
        self.send_wrist_images = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._frame = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)

    def _run(self):
        while not self._stop.is_set():
            stamp = self.node.get_clock().now().to_msg()
            if self.send_images:
                self.images.publish(rgb_to_image_msg(self._frame, stamp, "scene"))
            if self.send_wrist_images:
                self.wrist_images.publish(rgb_to_image_msg(self._frame[::-1], stamp, "wrist"))
            self.joints.publish(JointState(header=Header(stamp=stamp),
                                           name=list(arm.COMMANDED_JOINTS), position=list(map(float, self.state))))
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _instruction(publisher, instruction_id, text):
    msg = Instruction(id=instruction_id, text=text, source=Instruction.SOURCE_TEXT, confidence=1.0)
    publisher.publish(msg)


def _listen(node):
    received = {"targets": [], "chunks": [], "status": []}
    node.create_subscription(JointState, "/vla/joint_targets", received["targets"].append, qos.RELIABLE)
    node.create_subscription(ActionChunk, "/vla/action_chunk", received["chunks"].append, qos.RELIABLE)
    node.create_subscription(PolicyStatus, "/vla/status", received["status"].append, qos.RELIABLE)
    return received


def _start(start_process, checkpoint, *params):
    args = ["--ros-args", "--params-file", str(CONFIG_DIR / "vla_node.yaml"), "-p", f"checkpoint:={checkpoint}"]
    for param in params:
        args += ["-p", param]
    return start_process("vla_node", *args)


def test_an_instruction_streams_targets_and_chunks_and_a_stale_image_holds(ros_node, start_process, tiny_checkpoint):
    process = _start(start_process, tiny_checkpoint, "max_age:=0.2")
    received = _listen(ros_node)
    instructions = ros_node.create_publisher(Instruction, "/vla/instruction", qos.LATCHED)
    with FakeArm(ros_node) as fake:
        _instruction(instructions, "one", "pick up the red cube")
        assert spin_until(ros_node, lambda: len(received["targets"]) >= 10, STARTUP_TIMEOUT), process.output()
        target = received["targets"][-1]
        assert list(target.name) == list(arm.COMMANDED_JOINTS)
        assert np.all(np.isfinite(target.position))
        # Chunks start from the arm's state: the random tiny policy's offsets are small.
        assert np.abs(np.array(target.position) - arm.home_vector()).max() < 0.5
        chunk = received["chunks"][-1]
        tiny = CONFIGS["tiny"]  # the policy publishes its chunk from entry lead_steps on
        assert chunk.instruction_id == "one" and len(chunk.trajectory.points) == tiny.chunk_size - tiny.lead_steps
        assert any(s.state == PolicyStatus.RUNNING and s.instruction == "pick up the red cube"
                   for s in received["status"])

        # The camera stops: within 2 x max_age the node holds, says why, and publishes no target.
        fake.send_images = False
        stopped = time.monotonic()
        received["status"].clear()
        assert spin_until(ros_node, lambda: any(s.state == PolicyStatus.HOLDING and "image is stale" in s.reason
                                                for s in received["status"]), 5.0)
        assert time.monotonic() - stopped < 2 * 0.2 + 0.2  # margin for DDS delivery of the status
        spin_until(ros_node, lambda: False, 0.2)  # targets already in flight arrive
        count = len(received["targets"])
        spin_until(ros_node, lambda: False, 0.3)
        assert len(received["targets"]) == count

        # Frames come back: it runs again; a new instruction takes over.
        fake.send_images = True
        _instruction(instructions, "two", "push the blue cube left")
        assert spin_until(ros_node, lambda: any(c.instruction_id == "two" for c in received["chunks"]), 10.0)
        assert spin_until(ros_node, lambda: received["status"][-1].instruction_id == "two"
                          and received["status"][-1].state == PolicyStatus.RUNNING, 5.0)
    assert process.stop() == 0, process.output()


def test_a_hand_camera_policy_waits_for_its_images_and_the_log_says_how_it_reads_a_phrasing(ros_node, start_process, tmp_path):
    checkpoint = _tiny_checkpoint(tmp_path, {"trained_instructions": ["pick up the red cube", "go home"]},
                                  wrist_camera=True)
    process = _start(start_process, checkpoint, "max_age:=0.2")
    received = _listen(ros_node)
    instructions = ros_node.create_publisher(Instruction, "/vla/instruction", qos.LATCHED)
    with FakeArm(ros_node) as fake:
        _instruction(instructions, "one", "pick up the red cube")
        assert spin_until(ros_node, lambda: any(s.state == PolicyStatus.HOLDING and s.reason == "no observation yet"
                                                for s in received["status"]), STARTUP_TIMEOUT), process.output()
        spin_until(ros_node, lambda: False, 0.3)
        assert received["targets"] == []  # scene images and joint states alone are not enough

        fake.send_wrist_images = True
        assert spin_until(ros_node, lambda: len(received["targets"]) >= 5, 10.0), process.output()
        assert "uses the hand camera (/vla/wrist_image)" in process.output()
        assert "read by the policy as" not in process.output()  # a trained instruction is itself

        # A new phrasing: the log says which trained instruction the policy reads it as.
        _instruction(instructions, "two", "grab the red cube")
        assert spin_until(ros_node, lambda: "read by the policy as 'pick up the red cube'" in process.output(), 10.0)

        fake.send_wrist_images = False
        received["status"].clear()
        assert spin_until(ros_node, lambda: any(s.state == PolicyStatus.HOLDING and "wrist image is stale" in s.reason
                                                for s in received["status"]), 5.0)
    assert process.stop() == 0, process.output()


def test_joint_states_outside_the_limits_are_not_believed(ros_node, start_process, tiny_checkpoint):
    process = _start(start_process, tiny_checkpoint)
    received = _listen(ros_node)
    instructions = ros_node.create_publisher(Instruction, "/vla/instruction", qos.LATCHED)
    with FakeArm(ros_node, state=np.full(8, 1e38)):
        _instruction(instructions, "one", "open the gripper")
        assert spin_until(ros_node, lambda: any(s.state == PolicyStatus.HOLDING and s.reason == "no observation yet"
                                                for s in received["status"]), STARTUP_TIMEOUT), process.output()
        spin_until(ros_node, lambda: False, 0.3)
    assert received["targets"] == [] and received["chunks"] == []
    assert process.proc.poll() is None
    assert process.stop() == 0
    assert "outside the joint limits" in process.output()


@pytest.mark.parametrize("params, message", [
    (["checkpoint:=/nonexistent/policy.pt"], "checkpoint not found: /nonexistent/policy.pt"),
    (["backend:=openvla2"], "backend: must be one of"),
    (["joint_names:=[a, b]"], "joint_names: need 8 distinct names"),
    (["aggregation:=median"], "aggregation: must be one of"),
    (["control_rat:=20.0"], "control_rat: unknown parameter"),
])
def test_bad_configuration_exits_with_a_clear_message(start_process, tiny_checkpoint, params, message):
    args = ["--ros-args", "-p", f"checkpoint:={tiny_checkpoint}"]
    for param in params:
        args += ["-p", param]
    process = start_process("vla_node", *args)
    assert process.proc.wait(STARTUP_TIMEOUT) == 2
    assert message in process.output()
