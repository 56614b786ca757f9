"""The `lerobot` backend: a LeRobot policy (ACT, Diffusion, SmolVLA, pi0) saved in a local directory.

The directory is what LeRobot's `save_pretrained` (and `lerobot-train`'s
checkpoints/<step>/pretrained_model) writes: config.json, model.safetensors and
the pre/post-processor files holding its normalisation statistics. The policy must
take the 8 joint positions (arm.COMMANDED_JOINTS order) as `observation.state` and
return 8 absolute joint targets as `action`; our scene image goes to each of its
image features (the hand camera's to one whose name contains "wrist"); the
instruction is its `task`.

Where it runs: in this process when `lerobot` is importable here; otherwise in a
server process started with the Python named by VLA_ROS_LEROBOT_PYTHON (an
environment with lerobot and the torch it pins; docs/BACKENDS.md), talking the
numpy protocol of vla_ros.policies.lerobot_runner over its stdin and stdout.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import tempfile
import threading
import weakref
from pathlib import Path

import cv2
import numpy as np

from vla_ros import arm
from vla_ros.camera.preprocess import policy_frame
from vla_ros.policies import lerobot_runner
from vla_ros.policies.base import Observation, check_chunk
from vla_ros.policies.chunking import DEFAULT_DECAY

PYTHON_ENV = "VLA_ROS_LEROBOT_PYTHON"
SAVED_POLICY_FILES = ("config.json", "model.safetensors", "policy_preprocessor.json", "policy_postprocessor.json")
STATE_DIM = len(arm.COMMANDED_JOINTS)


class LeRobotLoadError(ValueError):
    """LeRobot could not load the policy directory (the message says why)."""


class RemoteRunner:
    """LeRobotRunner's interface (info, reset, predict) served by a process of another Python."""

    def __init__(self, python: str, path: Path, device: str):
        if not Path(python).is_file():
            raise FileNotFoundError(f"{PYTHON_ENV}={python}: no such Python interpreter")
        self._stderr = tempfile.TemporaryFile()  # kept for the error message if the server dies
        self._process = subprocess.Popen([python, lerobot_runner.__file__, "--serve"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self._stderr)
        self._finalizer = weakref.finalize(self, _stop, self._process)
        self._lock = threading.Lock()
        try:
            reply, _ = self._request({"op": "load", "path": str(path), "device": device})
        except RuntimeError as err:
            self.close()
            raise LeRobotLoadError(f"LeRobot ({python}) could not load {path}: {err}") from err
        self.info = reply["info"]
        self.image_features = list(self.info["image_features"])

    def reset(self) -> None:
        self._request({"op": "reset"})

    def predict(self, images: dict[str, np.ndarray], state: np.ndarray, instruction: str) -> np.ndarray:
        arrays = {**images, "state": np.asarray(state, dtype=np.float32)}
        _, replies = self._request({"op": "predict", "instruction": instruction}, arrays)
        return replies["chunk"]

    def close(self) -> None:
        self._finalizer()

    def _request(self, header: dict, arrays: dict | None = None) -> tuple[dict, dict]:
        with self._lock:
            try:
                lerobot_runner.write_message(self._process.stdin, header, arrays)
                reply, replies = lerobot_runner.read_message(self._process.stdout)
            except (OSError, ValueError, lerobot_runner.ProtocolError) as err:  # ValueError: closed pipe, bad JSON
                raise RuntimeError(f"the LeRobot server stopped ({err}); its stderr ends: {self._stderr_tail()}") from err
        if "error" in reply:
            raise RuntimeError(f"the LeRobot server failed: {reply['error']}")
        return reply, replies

    def _stderr_tail(self, size: int = 2000) -> str:
        self._stderr.seek(0, os.SEEK_END)
        self._stderr.seek(max(0, self._stderr.tell() - size))
        return self._stderr.read().decode(errors="replace").strip() or "(nothing)"


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.stdin.close()  # the server exits at the end of its input
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class LeRobotPolicy:
    """A LeRobot policy behind vla_ros's Policy interface (a (K, 8) chunk of absolute joint targets)."""

    def __init__(self, runner, path: Path):
        self.runner = runner
        self.path = path
        info = runner.info
        self.info = info
        if info["state_dim"] != STATE_DIM or info["action_dim"] != STATE_DIM:
            raise LeRobotLoadError(f"{path}: the policy takes a state of {info['state_dim']} and returns actions of "
                                   f"{info['action_dim']} values; vla_ros needs {STATE_DIM} and {STATE_DIM} "
                                   f"(joint positions and targets, {', '.join(arm.COMMANDED_JOINTS)})")
        self.n_action_steps = info["n_action_steps"]
        self.aggregation = info["aggregation"]
        decay = info.get("ensemble_decay")  # ACT's temporal_ensemble_coeff
        self.ensemble_decay = DEFAULT_DECAY if decay is None else decay
        self.uses_wrist_camera = any(_is_wrist(name) for name in info["image_features"])

    def reset(self) -> None:
        self.runner.reset()

    def select_action(self, observation: Observation, instruction: str) -> np.ndarray:
        images = {}
        for name, (_, height, width) in self.info["image_features"].items():
            source = observation.wrist_image if _is_wrist(name) else observation.image
            if source is None:
                raise ValueError(f"the policy's image feature {name} needs the hand camera image")
            images[name] = policy_frame(source, height) if height == width else cv2.resize(source, (width, height))
        return check_chunk(self.runner.predict(images, observation.state, instruction))

    def close(self) -> None:
        """Stop the server process, if there is one."""
        if isinstance(self.runner, RemoteRunner):
            self.runner.close()


def _is_wrist(image_feature: str) -> bool:
    """The hand camera's image feature, by LeRobot's naming habit (observation.images.wrist, ...)."""
    return "wrist" in image_feature


def directory_uses_wrist_camera(path: str | Path) -> bool:
    """Whether the saved policy in `path` has a hand camera image feature, read from its
    config.json without loading LeRobot; False when the file is missing or unreadable."""
    try:
        config = json.loads((Path(path).expanduser() / "config.json").read_text())
    except (OSError, ValueError):
        return False
    features = config.get("input_features") if isinstance(config, dict) else None
    if not isinstance(features, dict):
        return False
    return any(_is_wrist(name) and isinstance(f, dict) and f.get("type") == "VISUAL" for name, f in features.items())


def load(path: str = "", device: str = "cpu", python: str | None = None) -> LeRobotPolicy:
    """Registry entry "lerobot": the saved LeRobot policy in directory `path`.

    `python` (default: $VLA_ROS_LEROBOT_PYTHON) runs the policy out of process when
    lerobot is not importable here. Raises FileNotFoundError for a missing directory,
    file or interpreter, ImportError when lerobot is nowhere to be found, and
    LeRobotLoadError (a ValueError) when LeRobot cannot load the directory or its
    features do not fit the arm.
    """
    if not path:
        raise ValueError("the lerobot backend needs the directory of a saved LeRobot policy as its checkpoint")
    directory = Path(path).expanduser().resolve()
    if not directory.is_dir():
        raise FileNotFoundError(f"LeRobot policy directory not found: {directory}")
    for name in SAVED_POLICY_FILES:
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory} is not a saved LeRobot policy: {name} is missing")
    if importlib.util.find_spec("lerobot") is not None:
        try:
            runner = lerobot_runner.LeRobotRunner(directory, device)
        except Exception as err:  # lerobot raises many types for a directory it cannot load
            raise LeRobotLoadError(f"LeRobot could not load {directory}: {type(err).__name__}: {err}") from err
    else:
        python = python or os.environ.get(PYTHON_ENV)
        if not python:
            raise ImportError("the lerobot backend needs the `lerobot` package, which is not importable here; install "
                              f"it in its own environment and set {PYTHON_ENV} to that environment's python "
                              "(docs/BACKENDS.md)", name="lerobot")
        runner = RemoteRunner(python, directory, device)
    try:
        return LeRobotPolicy(runner, directory)
    except LeRobotLoadError:
        if isinstance(runner, RemoteRunner):
            runner.close()
        raise
