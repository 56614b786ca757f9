"""recording_dataset.EpisodeBuilder on scripted message streams (no DDS): ticks, actions, episodes, gaps, success.

Streams encode time in their values (joint1 = the time a state was measured, an
image's pixels = its frame number), so each frame shows which messages it was built from.
"""
import json

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import JointState
from vla_ros.msg import Instruction, TaskStatus

from vla_ros import arm
from vla_ros.camera.ros_image import rgb_to_image_msg
from vla_ros.recording_dataset import ConversionOptions, EpisodeBuilder

IMAGE_RATE, STATE_RATE, COMMAND_RATE = 30.0, 100.0, 20.0
# Offsets keep message times off the 10 Hz tick grid, so no comparison is a tie.
IMAGE_OFFSET, STATE_OFFSET, COMMAND_OFFSET = 0.004, 0.002, 0.013
PICK, PUSH = {"task": "pick", "object": "red cube"}, {"task": "push", "object": "blue cube", "direction": "left"}


def _joints(joint1: float, names=arm.STATE_JOINTS) -> JointState:
    positions = {**arm.HOME_POSITIONS, arm.GRIPPER_MIMIC_JOINT: 0.04, "panda_joint1": joint1}
    return JointState(name=list(names), position=[positions[n] for n in names])


def _times(rate, offset, end, start=0.0, gaps=()):
    times = start + offset + np.arange(int((end - start) * rate)) / rate
    return [t for t in times if t < end and not any(a <= t < b for a, b in gaps)]


def _streams(end, command_topic="/vla/joint_targets", command_lead=0.1, command_rate=COMMAND_RATE,
             command_gaps=(), image_gaps=()):
    """Images, joint states (joint1 = t) and commands (joint1 = t + command_lead) until `end`."""
    events = []
    for t in _times(IMAGE_RATE, IMAGE_OFFSET, end, gaps=image_gaps):
        number = int(round((t - IMAGE_OFFSET) * IMAGE_RATE))
        events.append(("/camera/image_raw", t, rgb_to_image_msg(np.full((24, 32, 3), number % 256, np.uint8),
                                                                 Time(), "cam")))
    events += [("/joint_states", t, _joints(t)) for t in _times(STATE_RATE, STATE_OFFSET, end)]
    events += [(command_topic, t, _joints(t + command_lead, arm.COMMANDED_JOINTS))
               for t in _times(command_rate, COMMAND_OFFSET, end, gaps=command_gaps)]
    return events


def _instruction(t, id_, text):
    return ("/vla/instruction", t, Instruction(id=id_, text=text))


def _task(t, spec, success, elapsed, seed=7):
    return ("/sim/task", t, TaskStatus(task_json=json.dumps(spec), seed=seed, success=success, elapsed=elapsed))


def _build(events, **options):
    options = {"image_topic": "/camera/image_raw", "action_topic": "/vla/joint_targets", "image_size": 16,
               "min_frames": 3, **options}
    builder = EpisodeBuilder(ConversionOptions(**options), source="test.mcap")
    for topic, t, msg in sorted(events, key=lambda e: e[1]):
        builder.feed(topic, t, msg)
    return builder, builder.finish()


def _ticks(episode):
    return episode.metadata["start_time"] + 0.1 * np.arange(len(episode.images))


def test_frames_take_the_newest_image_and_state_and_the_next_target():
    events = _streams(5.0) + [_instruction(0.0501, "a", "pick up the red cube"),
                              _instruction(3.0, "b", "push the blue cube to the left")]
    builder, episodes = _build(events)
    assert [len(e.images) for e in episodes] == [30, 20]
    assert [e.instruction for e in episodes] == ["pick up the red cube", "push the blue cube to the left"]
    # No simulator in the recording: the task is read from the instruction, success and seed unknown.
    assert [e.task for e in episodes] == [PICK, PUSH]
    assert [(e.success, e.seed) for e in episodes] == [(False, -1), (False, -1)]
    assert episodes[0].metadata == {"source": "test.mcap", "start_time": 0.05, "instruction_id": "a"}
    for episode in episodes:
        ticks = _ticks(episode)
        state_time, target = episode.states[:, 0], episode.actions[:, 0]
        assert np.all((state_time <= ticks + 1e-6) & (state_time >= ticks - 1 / STATE_RATE - 1e-6))
        command_time = target - 0.1  # the first command after the tick
        assert np.all((command_time > ticks - 1e-6) & (command_time <= ticks + 1 / COMMAND_RATE + 1e-6))
        newest_image = np.floor((ticks - IMAGE_OFFSET) * IMAGE_RATE + 1e-6) % 256
        assert np.array_equal(episode.images[:, 8, 8, 0], newest_image.astype(np.uint8))
        assert episode.images.shape[1:] == (16, 16, 3)
        assert np.allclose(episode.states[:, 1:], arm.home_vector()[1:])
    assert builder.counts["frames"] == 50 and builder.counts["episodes"] == 2


def test_joint_commands_are_read_one_control_period_after_the_tick():
    # The safety filter's output tracks where the arm should be now (lead 0), at 100 Hz.
    events = _streams(2.0, "/joint_commands", command_lead=0.0, command_rate=100.0)
    _, [episode] = _build(events + [_instruction(0.0501, "a", "go home")], action_topic="/joint_commands")
    ticks = _ticks(episode)
    assert len(episode.images) == 19  # the tick at 1.95 would need a command after 2.05
    assert np.all((episode.actions[:, 0] > ticks + 0.1 - 1e-6) & (episode.actions[:, 0] <= ticks + 0.11 + 1e-6))


def test_a_silent_command_stream_or_camera_splits_the_episode():
    events = _streams(6.0, command_gaps=[(1.0, 2.0)], image_gaps=[(3.5, 4.2)])
    builder, episodes = _build(events + [_instruction(0.0001, "a", "open the gripper")])
    starts = [e.metadata["start_time"] for e in episodes]
    # Dropped: the tick at 0 (no image yet); 1.0-1.7, whose next command (2.013) is > max_gap (0.3 s) late;
    # 3.8-4.2, whose newest image (3.47) is > max_gap old.
    assert [len(e.images) for e in episodes] == [9, 20, 17]
    assert starts == pytest.approx([0.1, 1.8, 4.3], abs=0.001)
    assert all(e.instruction == "open the gripper" for e in episodes)
    assert builder.counts["dropped_ticks"] == 1 + 8 + 5


def test_simulator_tasks_split_episodes_and_only_fresh_successes_count():
    spec_a, spec_b = {"task": "pick", "object": "green cube"}, {"task": "home"}
    events = _streams(6.0)
    events += [_instruction(0.0001, "a", "pick up the green cube"), _instruction(2.4001, "b", "go home")]
    for t in np.arange(0.005, 6.0, 0.1):  # the first status starts the first episode
        if t < 2.7:  # task A: succeeds at 1.5; still latched when instruction b arrives
            events.append(_task(t, spec_a, success=t > 1.5, elapsed=t))
        elif t < 4.0:  # task B set at 2.7: succeeds at 3.5
            events.append(_task(t, spec_b, success=t > 3.5, elapsed=t - 2.7))
        else:  # a reset of task B at 4.0 (elapsed restarts), never successful
            events.append(_task(t, spec_b, success=False, elapsed=t - 4.0, seed=8))
    _, episodes = _build(events)
    summary = [(e.instruction, e.task, e.success, e.seed, len(e.images)) for e in episodes]
    assert summary == [
        ("pick up the green cube", spec_a, True, 7, 24),
        ("go home", spec_a, False, 7, 3),  # instruction b before the simulator changed task: stale success
        ("go home", spec_b, True, 7, 13),
        ("go home", spec_b, False, 8, 20),
    ]


def test_malformed_messages_are_skipped_and_counted():
    events = _streams(1.5) + [_instruction(0.0001, "a", "go home"),
                              ("/joint_states", 0.5, JointState(name=["elbow"], position=[0.0])),
                              ("/sim/task", 0.7, TaskStatus(task_json="{not json"))]
    builder, [episode] = _build(events)
    assert builder.counts["bad_messages"] == 2
    assert len(episode.images) == 14 and episode.task == {"task": "home"}


def test_the_hand_camera_frames_come_from_its_own_newest_image_and_its_silence_splits():
    # The hand camera at 15 Hz, its pixels 255 - frame number; silent from 2.0 to 2.6 s.
    wrist_times = _times(15.0, 0.007, 4.0, gaps=[(2.0, 2.6)])
    events = _streams(4.0) + [_instruction(0.0501, "a", "pick up the red cube")] + [
        ("/vla/wrist_image", t, rgb_to_image_msg(np.full((24, 32, 3), 255 - int(round((t - 0.007) * 15.0)), np.uint8),
                                                 Time(), "wrist")) for t in wrist_times]
    _, episodes = _build(events, wrist_camera=True, wrist_image_topic="/vla/wrist_image")
    # Ticks 2.25 to 2.55 have no wrist image newer than max_gap (0.3 s): the last before the gap is at 1.94,
    # the next at 2.607.
    assert [len(e.images) for e in episodes] == [22, 14]
    for episode in episodes:
        ticks = _ticks(episode)
        newest = [max(t for t in wrist_times if t <= tick) for tick in ticks]
        newest_wrist = [255 - int(round((t - 0.007) * 15.0)) for t in newest]
        assert episode.wrist_images[:, 8, 8, 0].tolist() == newest_wrist
        assert episode.wrist_images.shape == episode.images.shape
    _, [scene_only] = _build(events)  # without wrist_camera the hand camera is not read
    assert scene_only.wrist_images is None and len(scene_only.images) == 40  # no gap in its ticks


def test_the_builder_needs_its_topics():
    with pytest.raises(ValueError, match="image_topic"):
        EpisodeBuilder(ConversionOptions())
    with pytest.raises(ValueError, match="wrist_image_topic"):
        EpisodeBuilder(ConversionOptions(image_topic="/vla/image", action_topic="/vla/joint_targets", wrist_camera=True))
