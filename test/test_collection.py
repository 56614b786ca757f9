"""Expert demonstrations: deterministic for a seed, resumable after an interruption, in the dataset format."""
import shutil

import numpy as np

from vla_ros.collection import collect
from vla_ros.dataset import EpisodeDataset


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
