"""Expert demonstrations: deterministic for a seed, resumable after an interruption, in the dataset format."""
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from vla_ros.collection import DEFAULT_NOISE, Learner, collect, plan
from vla_ros.dataset import WRIST_IMAGE, EpisodeDataset


def _arrays(root):
    data = EpisodeDataset(root)
    return {name: data.read(name, 0, len(data)) for name in ("observation.image", "observation.state", "action")}


def test_collection_is_deterministic_and_resumes(tmp_path):
    first = tmp_path / "a"
    summary = collect(first, episodes=4, seed=5, image_size=48, shard_size=2, progress=False)
    assert summary["episodes"] == 4 and summary["success_rate"] == 1.0
    episodes = EpisodeDataset(first).episodes
    assert all(e["language_instruction"] and e["task"]["task"] for e in episodes)

    # An interrupted run: the second shard is gone, a half-written one is left behind.
    second = tmp_path / "b"
    shutil.copytree(first, second)
    shutil.rmtree(second / "data" / "shard-00001")
    (second / "data" / ".shard-00001.tmp").mkdir()
    collect(second, episodes=4, seed=5, image_size=48, shard_size=2, progress=False)
    assert EpisodeDataset(second).episodes == episodes
    for name, array in _arrays(first).items():
        np.testing.assert_array_equal(array, _arrays(second)[name], err_msg=name)


class HoldStill:
    """A learner that never moves: its target is always the current joint state."""

    def reset(self) -> None:
        pass

    def select_action(self, observation, instruction):
        return observation.state[None, :]


def test_dagger_learner_drives_and_the_expert_labels(tmp_path):
    # Expert share 1: the learner is asked but never drives, so the episodes are the expert's own.
    expert_only = collect(tmp_path / "e", episodes=2, seed=3, image_size=48, shard_size=2, progress=False)
    shared = collect(tmp_path / "s", episodes=2, seed=3, image_size=48, shard_size=2, progress=False,
                     learner=Learner(HoldStill(), expert_share=1.0), learner_name="hold-still")
    assert shared == expert_only
    for name, array in _arrays(tmp_path / "e").items():
        np.testing.assert_array_equal(array, _arrays(tmp_path / "s")[name], err_msg=name)

    # Expert share 0: the learner holds the arm still at every step, yet every label is the
    # expert's target for that state, which moves towards the task.
    collect(tmp_path / "l", episodes=2, seed=3, image_size=48, shard_size=2, progress=False,
            learner=Learner(HoldStill(), expert_share=0.0), learner_name="hold-still")
    rollouts = EpisodeDataset(tmp_path / "l")
    for start, end in rollouts.episode_ranges():
        states = rollouts.read("observation.state", start, end)
        actions = rollouts.read("action", start, end)
        assert np.abs(states - states[0]).max() < 0.02  # the arm only settles under gravity/contact
        assert np.abs(actions - states).max() > 0.05  # the labels lead somewhere
    info = json.loads((tmp_path / "l" / "meta" / "info.json").read_text())
    assert info["dagger"] == {"learner": "hold-still", "expert_share": 0.0}


def test_dagger_rejects_a_share_outside_0_1():
    with pytest.raises(ValueError, match="expert share"):
        Learner(HoldStill(), expert_share=1.5)


def test_kinds_restrict_the_tasks_and_leave_the_default_plan_unchanged(tmp_path):
    # DAgger on the kinds the learner fails: only those are recorded.
    collect(tmp_path / "h", episodes=3, seed=4, image_size=48, shard_size=3, progress=False, kinds=("home",))
    assert [e["task"]["task"] for e in EpisodeDataset(tmp_path / "h").episodes] == ["home"] * 3
    # Datasets recorded before --kinds existed (runs/data800: seed 0) are reproduced by the default.
    assert [(plan(0, i)[0] % 1000, plan(0, i)[1].spec["task"]) for i in range(8)] == [
        (232, "stack"), (198, "open_gripper"), (500, "pick"), (942, "open_gripper"),
        (658, "open_gripper"), (609, "place"), (265, "push"), (223, "pick")]
    with pytest.raises(ValueError, match="task kinds must be among"):
        collect(tmp_path / "x", episodes=1, kinds=("dance",), progress=False)


def test_missed_grasp_demonstrations_start_at_the_miss_and_show_the_retry(tmp_path):
    normal = collect(tmp_path / "n", episodes=2, seed=3, image_size=48, shard_size=2, progress=False,
                     kinds=("pick",))
    missed = collect(tmp_path / "m", episodes=2, seed=3, image_size=48, shard_size=2, progress=False,
                     kinds=("pick",), noise=replace(DEFAULT_NOISE, miss_distance=0.035))
    assert missed["success_rate"] == 1.0 and missed["frames"] < normal["frames"]
    data = EpisodeDataset(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "meta" / "info.json").read_text())["noise"]["miss_distance"] == 0.035
    retries = 0
    for start, end in data.episode_ranges():
        states, actions = data.read("observation.state", start, end), data.read("action", start, end)
        assert states[-1, 7] > 0.01  # ends holding the object
        if states[0, 7] < 0.005:  # opens on the closed, empty hand (a grasp that did not miss is kept whole)
            assert actions[:3, 7].max() > 0.005  # and the labels open it to try again
            retries += 1
    assert retries >= 1


class HoldStillWithWrist(HoldStill):
    """A learner that uses the hand camera: it checks that it is given the wrist image."""

    uses_wrist_camera = True

    def select_action(self, observation, instruction):
        assert observation.wrist_image is not None and observation.wrist_image.shape == observation.image.shape
        return super().select_action(observation, instruction)


def test_wrist_camera_frames_are_recorded_beside_an_unchanged_episode(tmp_path):
    collect(tmp_path / "s", episodes=2, seed=3, image_size=48, shard_size=2, progress=False)
    collect(tmp_path / "w", episodes=2, seed=3, image_size=48, shard_size=2, progress=False, wrist_camera=True)
    scene_only, with_wrist = EpisodeDataset(tmp_path / "s"), EpisodeDataset(tmp_path / "w")
    assert WRIST_IMAGE not in scene_only.features and WRIST_IMAGE in with_wrist.features
    for name, array in _arrays(tmp_path / "s").items():  # rendering the hand camera changes nothing else
        np.testing.assert_array_equal(array, _arrays(tmp_path / "w")[name], err_msg=name)
    wrist = with_wrist.read(WRIST_IMAGE, 0, len(with_wrist))
    assert wrist.shape == (len(with_wrist), 48, 48, 3)
    assert np.abs(wrist.astype(int) - with_wrist.read("observation.image", 0, len(with_wrist))).mean() > 20
    assert np.abs(np.diff(wrist.astype(int), axis=0)).mean() > 1  # the view moves with the hand

    # A learner that uses the hand camera turns it on by itself.
    collect(tmp_path / "l", episodes=1, seed=3, image_size=48, shard_size=1, progress=False,
            learner=Learner(HoldStillWithWrist(), expert_share=0.0))
    assert WRIST_IMAGE in EpisodeDataset(tmp_path / "l").features
