"""vla-ros record over real DDS -> MCAP that a generic ROS 2 decoder reads -> vla-ros dataset from-mcap -> EpisodeDataset."""
import json
import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from conftest import spin_until
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectoryPoint
from vla_ros.msg import ActionChunk, Instruction, TaskStatus

from vla_ros import arm, qos
from vla_ros.camera.ros_image import rgb_to_image_msg
from vla_ros.dataset import EpisodeDataset
from vla_ros.msg_json import message_class
from vla_ros.recording import DEFINITION_SEPARATOR, RecordingError, schema_text, topic_summary
from vla_ros.recording_dataset import convert

STARTUP_TIMEOUT = 20.0
RATE = 50.0  # Hz of the scripted publishers
STEPS = 150  # 3 s: two 1.5 s episodes
PICK = {"task": "pick", "object": "red cube"}


def test_schemas_are_the_msg_files_with_each_dependency_once():
    text = schema_text("vla_ros/msg/ActionChunk")
    blocks = text.split(DEFINITION_SEPARATOR + "\n")
    assert blocks[0].startswith("# K future joint targets")
    names = [block.splitlines()[0] for block in blocks[1:]]
    assert names == ["MSG: std_msgs/msg/Header", "MSG: builtin_interfaces/msg/Time",
                     "MSG: trajectory_msgs/msg/JointTrajectory", "MSG: trajectory_msgs/msg/JointTrajectoryPoint",
                     "MSG: builtin_interfaces/msg/Duration"]
    with pytest.raises(RecordingError, match="no message definition"):
        schema_text("vla_ros/msg/NoSuchMessage")


def test_a_generic_decoder_reads_what_rclpy_serialises():
    # mcap_ros2 builds its CDR codec from the schema text alone, as Foxglove does.
    from mcap_ros2._dynamic import generate_dynamic
    from rclpy.serialization import serialize_message

    chunk = ActionChunk(instruction_id="x", confidence=0.5)
    chunk.trajectory.joint_names = list(arm.COMMANDED_JOINTS)
    chunk.trajectory.points.append(JointTrajectoryPoint(positions=list(arm.home_vector())))
    decoded = generate_dynamic("vla_ros/msg/ActionChunk", schema_text("vla_ros/msg/ActionChunk"))[
        "vla_ros/msg/ActionChunk"](serialize_message(chunk))
    assert decoded.trajectory.joint_names == list(arm.COMMANDED_JOINTS)
    assert decoded.trajectory.points[0].positions == pytest.approx(list(arm.home_vector()))
    assert (decoded.instruction_id, decoded.confidence) == ("x", 0.5)


def _joints(joint1: float, names=arm.STATE_JOINTS) -> JointState:
    positions = {**arm.HOME_POSITIONS, arm.GRIPPER_MIMIC_JOINT: 0.04, "panda_joint1": joint1}
    return JointState(name=list(names), position=[positions[n] for n in names])


def test_recorded_pipeline_topics_convert_into_a_dataset(ros_node, start_process, tmp_path):
    path = tmp_path / "run.mcap"
    # Latched before the recorder exists: it must still get it (transient local, as published).
    instructions = ros_node.create_publisher(Instruction, "/vla/instruction", qos.LATCHED)
    instructions.publish(Instruction(id="a", text="pick up the red cube"))
    process = start_process("vla-ros", "record", "--out", str(path))
    images = ros_node.create_publisher(Image, "/camera/image_raw", qos.SENSOR)
    states = ros_node.create_publisher(JointState, "/joint_states", qos.RELIABLE)
    targets = ros_node.create_publisher(JointState, "/vla/joint_targets", qos.RELIABLE)
    task = ros_node.create_publisher(TaskStatus, "/sim/task", qos.RELIABLE)
    publishers = (instructions, images, states, targets, task)
    assert spin_until(ros_node, lambda: all(p.get_subscription_count() for p in publishers), STARTUP_TIMEOUT), \
        process.output()

    start = time.monotonic()
    for i in range(STEPS):
        second_half = i >= STEPS // 2
        if i == STEPS // 2:
            instructions.publish(Instruction(id="b", text="go home"))
        # Pixel value, joint1 / 0.001 and target - 0.5 all say which step a message came from.
        images.publish(rgb_to_image_msg(np.full((24, 32, 3), i, np.uint8), Time(), "scene_camera_optical_frame"))
        states.publish(_joints(0.001 * i))
        targets.publish(_joints(0.001 * i + 0.5, arm.COMMANDED_JOINTS))
        if i % 5 == 0:
            spec, elapsed = ({"task": "home"}, (i - STEPS // 2) / RATE) if second_half else (PICK, i / RATE)
            task.publish(TaskStatus(task_json=json.dumps(spec), seed=3, elapsed=elapsed,
                                    success=not second_half and i >= STEPS // 3))
        time.sleep(max(0.0, start + (i + 1) / RATE - time.monotonic()))
    time.sleep(0.3)
    assert process.stop() == 0, process.output()
    assert "/joint_states" in process.output() and "(never published)" in process.output()  # e.g. /vla/status

    recorded = topic_summary(path)
    counts = {topic: info["messages"] for topic, info in recorded.items()}
    assert counts["/joint_states"] == counts["/vla/joint_targets"] == STEPS  # reliable: every message
    assert counts["/vla/instruction"] == 2 and counts["/sim/task"] == STEPS // 5
    assert STEPS * 0.9 <= counts["/camera/image_raw"] <= STEPS  # best effort, like the camera
    assert recorded["/vla/instruction"]["type"] == "vla_ros/msg/Instruction"

    # Every channel decodes with the generic decoder exactly as rclpy reads it.
    with open(path, "rb") as handle:
        reader = make_reader(handle, decoder_factories=[DecoderFactory()])
        seen = set()
        for schema, channel, message, decoded in reader.iter_decoded_messages():
            if channel.topic in seen:
                continue
            seen.add(channel.topic)
            native = deserialize_message(message.data, message_class(schema.name))
            for field in ("text", "id", "task_json", "name", "position", "encoding", "width"):
                if hasattr(native, field):
                    assert np.array_equal(np.asarray(getattr(decoded, field)), np.asarray(getattr(native, field)))
            if channel.topic == "/camera/image_raw":
                assert bytes(decoded.data) == bytes(native.data)
    assert seen == set(recorded)

    summary = convert([path], tmp_path / "data", progress=False)
    assert summary["recordings"][0]["image_topic"] == "/camera/image_raw"
    data = EpisodeDataset(tmp_path / "data")
    assert [e["language_instruction"] for e in data.episodes] == ["pick up the red cube", "go home"]
    assert [e["task"] for e in data.episodes] == [PICK, {"task": "home"}]
    assert [e["success"] for e in data.episodes] == [True, False]
    assert all(12 <= e["length"] <= 15 for e in data.episodes), data.episodes  # 1.5 s at 10 Hz
    assert data.info["image_size"] == [128, 128] and data.info["fps"] == 10.0
    images, states, actions = (data.read(name, 0, len(data)) for name in ("observation.image", "observation.state",
                                                                           "action"))
    step_of_state = np.round(states[:, 0] / 0.001)
    # The image and the joint state of a frame were published together (give or take a receive order).
    assert np.all(np.abs(images[:, 64, 64, 0].astype(int) - step_of_state) <= 2)
    # The action is the target published next: at or shortly after the state's step.
    step_of_target = np.round((actions[:, 0] - 0.5) / 0.001)
    assert np.all((step_of_target >= step_of_state) & (step_of_target <= step_of_state + 8))
    assert np.allclose(states[:, 1:], arm.home_vector()[1:], atol=1e-6)
