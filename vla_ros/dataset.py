"""The on-disk episode format for demonstrations and recordings (close to LeRobot's field names).

A dataset is a directory:

    meta/info.json          format version, fps, image size, joint names, feature shapes
    meta/episodes.jsonl     one line per episode: episode_index, language_instruction,
                            task (spec), success, seed, length, shard
    data/shard-00000/       one directory per shard of whole episodes, one .npy per feature:
        observation.image.npy   (N, H, W, 3) uint8 RGB, scene camera
        observation.wrist_image.npy  (N, H, W, 3) uint8 RGB, hand camera (only in datasets
                                collected with it: listed in info.json's features)
        observation.state.npy   (N, 8) float32 joint positions (arm.COMMANDED_JOINTS order)
        action.npy              (N, 8) float32 absolute joint position targets sent at that step
        episode_index.npy       (N,) int64
        frame_index.npy         (N,) int64
        timestamp.npy           (N,) float32 seconds since the episode start

Shards are written whole and atomically (a temporary directory renamed into
place), so an interrupted collection resumes at the first missing shard. Reading
memory-maps the arrays, so a 1,000-episode set does not need to fit in memory.
Recorded ROS bags convert into the same schema (`vla-ros dataset from-mcap`).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vla_ros import arm

FORMAT_VERSION = 1
FEATURES = ("observation.image", "observation.state", "action", "episode_index", "frame_index", "timestamp")
WRIST_IMAGE = "observation.wrist_image"  # optional: a dataset has it for every frame or for none
_DTYPES = {
    "observation.image": np.uint8,
    WRIST_IMAGE: np.uint8,
    "observation.state": np.float32,
    "action": np.float32,
    "episode_index": np.int64,
    "frame_index": np.int64,
    "timestamp": np.float32,
}


class DatasetError(ValueError):
    """A dataset directory is missing, incomplete or of another format."""


@dataclass
class Episode:
    """One demonstration: per-step arrays plus its language and task."""

    images: np.ndarray  # (T, H, W, 3) uint8
    states: np.ndarray  # (T, 8)
    actions: np.ndarray  # (T, 8)
    instruction: str
    task: dict
    success: bool
    seed: int
    metadata: dict = field(default_factory=dict)
    wrist_images: np.ndarray | None = None  # (T, H, W, 3) uint8, hand camera, when recorded

    def __post_init__(self) -> None:
        length = len(self.images)
        if length == 0:
            raise DatasetError("an episode needs at least one step")
        for name, images in (("images", self.images), ("wrist_images", self.wrist_images)):
            if images is not None and (images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8
                                       or len(images) != length):
                raise DatasetError(f"{name} must be ({length}, H, W, 3) uint8, got {images.shape} {images.dtype}")
        for name, array in (("states", self.states), ("actions", self.actions)):
            if array.shape != (length, len(arm.COMMANDED_JOINTS)):
                raise DatasetError(f"{name} must be ({length}, {len(arm.COMMANDED_JOINTS)}), got {array.shape}")


def write_info(root: Path, fps: float, image_size: tuple[int, int], extra: dict | None = None,
               wrist_image: bool = False) -> None:
    """Create the dataset's meta/info.json (or check that an existing one matches)."""
    info = {
        "format_version": FORMAT_VERSION,
        "fps": fps,
        "image_size": list(image_size),
        "joint_names": list(arm.COMMANDED_JOINTS),
        "features": list(FEATURES) + ([WRIST_IMAGE] if wrist_image else []),
        **(extra or {}),
    }
    path = root / "meta" / "info.json"
    if path.exists():
        existing = json.loads(path.read_text())
        for key in ("format_version", "fps", "image_size", "joint_names", "features"):
            if existing.get(key) != info[key]:
                raise DatasetError(f"{root} holds a dataset with {key}={existing.get(key)}, not {info[key]}")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=2))


def write_shard(root: Path, shard_index: int, episodes: list[Episode], first_episode_index: int) -> None:
    """Write whole episodes as one shard, atomically, and append them to meta/episodes.jsonl."""
    final = root / "data" / f"shard-{shard_index:05d}"
    staging = root / "data" / f".shard-{shard_index:05d}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    info = read_info(root)
    fps = float(info["fps"])
    columns: dict[str, list[np.ndarray]] = {name: [] for name in info["features"]}
    lines = []
    for offset, episode in enumerate(episodes):
        index = first_episode_index + offset
        length = len(episode.images)
        columns["observation.image"].append(episode.images)
        if WRIST_IMAGE in columns:
            if episode.wrist_images is None:
                raise DatasetError(f"{root} holds hand camera images; episode {index} has none")
            columns[WRIST_IMAGE].append(episode.wrist_images)
        columns["observation.state"].append(episode.states)
        columns["action"].append(episode.actions)
        columns["episode_index"].append(np.full(length, index))
        columns["frame_index"].append(np.arange(length))
        columns["timestamp"].append(np.arange(length) / fps)
        lines.append(
            json.dumps(
                {
                    "episode_index": index,
                    "language_instruction": episode.instruction,
                    "task": episode.task,
                    "success": bool(episode.success),
                    "seed": int(episode.seed),
                    "length": length,
                    "shard": shard_index,
                    **episode.metadata,
                }
            )
        )
    for name, parts in columns.items():
        np.save(staging / f"{name}.npy", np.concatenate(parts).astype(_DTYPES[name]))
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    with open(root / "meta" / "episodes.jsonl", "a") as handle:
        handle.write("\n".join(lines) + "\n")


def complete_shards(root: Path) -> list[int]:
    """Indices of the shards present on disk and listed in meta/episodes.jsonl."""
    listed = {episode["shard"] for episode in read_episodes(root)} if (root / "meta" / "episodes.jsonl").exists() else set()
    present = {int(p.name.split("-")[1]) for p in (root / "data").glob("shard-*")} if (root / "data").exists() else set()
    return sorted(listed & present)


def truncate_to_shards(root: Path, keep: list[int]) -> None:
    """Drop episode lines and shard directories not in `keep` (after an interrupted write)."""
    path = root / "meta" / "episodes.jsonl"
    if path.exists():
        kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["shard"] in keep]
        path.write_text("".join(line + "\n" for line in kept))
    for shard_dir in (root / "data").glob("*shard-*") if (root / "data").exists() else []:
        name = shard_dir.name
        if name.startswith(".") or int(name.split("-")[1]) not in keep:
            shutil.rmtree(shard_dir)


def read_info(root: Path) -> dict:
    path = Path(root) / "meta" / "info.json"
    if not path.is_file():
        raise DatasetError(f"{root} is not a vla_ros dataset: {path} is missing")
    info = json.loads(path.read_text())
    if info.get("format_version") != FORMAT_VERSION:
        raise DatasetError(f"{root} has format version {info.get('format_version')}, expected {FORMAT_VERSION}")
    return info


def read_episodes(root: Path) -> list[dict]:
    path = Path(root) / "meta" / "episodes.jsonl"
    if not path.is_file():
        raise DatasetError(f"{root} has no {path.name}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class EpisodeDataset:
    """Memory-mapped frames of a dataset, with episode boundaries for building action chunks."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.info = read_info(self.root)
        self.episodes = read_episodes(self.root)
        shards = sorted({episode["shard"] for episode in self.episodes})
        self.features = tuple(self.info.get("features", FEATURES))
        unknown = sorted(set(self.features) - set(_DTYPES))
        if unknown or not set(FEATURES) <= set(self.features):
            raise DatasetError(f"{self.root}: info.json lists features {list(self.features)}; "
                               f"expected {list(FEATURES)}, optionally with {WRIST_IMAGE}")
        self.columns: dict[str, list[np.ndarray]] = {name: [] for name in self.features}
        for shard in shards:
            shard_dir = self.root / "data" / f"shard-{shard:05d}"
            for name in self.features:
                path = shard_dir / f"{name}.npy"
                if not path.is_file():
                    raise DatasetError(f"shard {shard_dir} is missing {path.name}")
                self.columns[name].append(np.load(path, mmap_mode="r"))
        lengths = [len(c) for c in self.columns["action"]]
        self._shard_offsets = np.cumsum([0] + lengths)
        self.num_frames = int(self._shard_offsets[-1])
        if self.num_frames != sum(e["length"] for e in self.episodes):
            raise DatasetError(f"{self.root}: episodes.jsonl lists {sum(e['length'] for e in self.episodes)} frames, "
                               f"shards hold {self.num_frames}")

    def __len__(self) -> int:
        return self.num_frames

    def episode_ranges(self) -> list[tuple[int, int]]:
        """(start, end) global frame indices of each episode, in file order."""
        ranges, start = [], 0
        for episode in self.episodes:
            ranges.append((start, start + episode["length"]))
            start += episode["length"]
        return ranges

    def read(self, name: str, start: int, end: int) -> np.ndarray:
        """Frames [start, end) of one feature, possibly spanning shards."""
        if name not in self.columns:
            raise DatasetError(f"{self.root} has no {name} (its features: {', '.join(self.features)})")
        parts = []
        for shard, column in enumerate(self.columns[name]):
            lo, hi = self._shard_offsets[shard], self._shard_offsets[shard + 1]
            a, b = max(start, lo), min(end, hi)
            if a < b:
                parts.append(np.asarray(column[a - lo : b - lo]))
        return np.concatenate(parts) if parts else np.empty((0,), dtype=_DTYPES[name])
