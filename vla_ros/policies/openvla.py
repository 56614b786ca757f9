"""The `openvla` backend: an OpenVLA-style model (end-effector deltas) from a local directory, via IK.

OpenVLA (Kim et al., 2024) answers the prompt "In: What action should the robot
take to {instruction}?\\nOut:" plus a camera image with 7 action tokens. Each token
is one of `n_action_bins` bins over [-1, 1]; the 7 values are, in order, the
end-effector translation (dx, dy, dz in m), rotation (droll, dpitch, dyaw in rad)
and the gripper. Dimensions whose statistics `mask` is true are un-normalised from
[-1, 1] to [q01, q99] of the training dataset chosen by `unnorm_key`
(config.json "norm_stats" or dataset_statistics.json); the gripper is not (mask
false) and stays in [0, 1], where OpenVLA's data pipeline makes 1 = open and
0 = closed, an absolute command.

Conventions here (OpenVLA does not fix them; they hold for a model fine-tuned on
vla_ros data, and are a guess for others):
- the deltas are in the arm's base frame (vla_ros's `world`), applied to the
  current tool centre point: position + (dx, dy, dz), and rotation
  Rz(dyaw) @ Ry(dpitch) @ Rx(droll) @ current (fixed base axes);
- one action per call, one control period (CONTROL_DT) long;
- gripper g -> finger opening clip(g, 0, 1) * 0.04 m (arm.py's gripper range).

Joint targets come from damped least-squares IK on the arm model
(vla_ros.kinematics), seeded at the measured joints, inside the joint limits.
The decoding and conversion are pure functions; `load` adds the transformers
model (trust_remote_code, as OpenVLA is published), whose weights are not on
this machine: docs/BACKENDS.md says what was run.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vla_ros import arm, kinematics
from vla_ros.policies.base import Observation

PROMPT = "In: What action should the robot take to {instruction}?\nOut:"
ACTION_DIM = 7
GRIPPER_OPEN = arm.PANDA_LIMITS[arm.GRIPPER_JOINT].upper
# OpenVLA's predict_action appends this Llama-2 token (an empty piece after "Out:") before generating,
# to match its training prompts.
EMPTY_TOKEN = 29871
# IK: a delta is one control period of motion, solved to well under a millimetre. No posture
# pull: with damping, its null-space projection is inexact and would bend the commanded motion.
IK_ITERATIONS = 20


@dataclass(frozen=True)
class ActionStatistics:
    """Per-dimension normalisation bounds of the actions of one training dataset."""

    key: str
    q01: np.ndarray
    q99: np.ndarray
    mask: np.ndarray  # True: un-normalise this dimension


def read_norm_stats(directory: Path) -> dict:
    """The model's dataset statistics: config.json "norm_stats", else dataset_statistics.json."""
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{directory} is not a model directory: config.json is missing")
    norm_stats = json.loads(config_path.read_text()).get("norm_stats")
    statistics_path = directory / "dataset_statistics.json"
    if not norm_stats and statistics_path.is_file():
        norm_stats = json.loads(statistics_path.read_text())
    if not norm_stats:
        raise ValueError(f"{directory} has no action statistics: neither config.json \"norm_stats\" "
                         "nor dataset_statistics.json")
    return norm_stats


def action_statistics(norm_stats: dict, unnorm_key: str | None = None) -> ActionStatistics:
    """The statistics to un-normalise with: `unnorm_key`'s, or the only dataset's. ValueError names what is missing."""
    keys = sorted(norm_stats)
    if unnorm_key is None:
        if len(keys) != 1:
            raise ValueError(f"the model was trained on {len(keys)} datasets; choose the statistics with "
                             f"unnorm_key, one of: {', '.join(keys)}")
        unnorm_key = keys[0]
    if unnorm_key not in norm_stats:
        raise ValueError(f"unnorm_key {unnorm_key!r} is not in the model's statistics; available: {', '.join(keys)}")
    action = norm_stats[unnorm_key].get("action", {})
    missing = [name for name in ("q01", "q99") if name not in action]
    if missing:
        raise ValueError(f"the statistics of {unnorm_key!r} lack action {' and '.join(missing)}")
    q01, q99 = np.asarray(action["q01"], dtype=float), np.asarray(action["q99"], dtype=float)
    mask = np.asarray(action.get("mask", [True] * len(q01)), dtype=bool)
    if not q01.shape == q99.shape == mask.shape == (ACTION_DIM,):
        raise ValueError(f"the statistics of {unnorm_key!r} describe {q01.shape} actions; this backend needs "
                         f"{ACTION_DIM} (dx, dy, dz, droll, dpitch, dyaw, gripper)")
    return ActionStatistics(unnorm_key, q01, q99, mask)


def tokens_to_normalized(token_ids, vocab_size: int, n_bins: int = 256) -> np.ndarray:
    """Action tokens -> values in [-1, 1]: the last n_bins - 1 token ids of the vocabulary count down
    through the bins, each decoded to its bin centre (ids outside clip to the end bins)."""
    edges = np.linspace(-1.0, 1.0, n_bins)
    centres = (edges[:-1] + edges[1:]) / 2.0
    index = np.clip(vocab_size - np.asarray(token_ids, dtype=np.int64) - 1, 0, len(centres) - 1)
    return centres[index]


def unnormalize(normalized, statistics: ActionStatistics) -> np.ndarray:
    """[-1, 1] -> [q01, q99] on masked dimensions; the others pass through."""
    normalized = np.asarray(normalized, dtype=float)
    scaled = 0.5 * (normalized + 1.0) * (statistics.q99 - statistics.q01) + statistics.q01
    return np.where(statistics.mask, scaled, normalized)


def gripper_opening(command: float) -> float:
    """OpenVLA's gripper command (1 = open, 0 = closed) -> finger opening in metres."""
    return float(np.clip(command, 0.0, 1.0) * GRIPPER_OPEN)


def end_effector_goal(arm_positions, action) -> tuple[np.ndarray, np.ndarray]:
    """The TCP pose an end-effector delta asks for, from the pose at `arm_positions` (base frame)."""
    position, rotation = kinematics.tcp_pose(arm_positions)
    dx, dy, dz, droll, dpitch, dyaw = np.asarray(action, dtype=float)[:6]
    return position + np.array([dx, dy, dz]), kinematics.euler_matrix(droll, dpitch, dyaw) @ rotation


def action_to_joint_targets(state, action) -> np.ndarray:
    """A 7-D end-effector action -> (8,) absolute joint targets (arm.COMMANDED_JOINTS order)."""
    state = np.asarray(state, dtype=float)
    position, rotation = end_effector_goal(state[:7], action)
    joints = kinematics.solve_ik(state[:7], position, rotation, iterations=IK_ITERATIONS, posture_gain=0.0)
    return np.append(joints, gripper_opening(action[6]))


class OpenVLAPolicy:
    """Prompt + image -> action tokens -> un-normalised end-effector delta -> a (1, 8) joint target chunk.

    `generate_tokens(image, prompt, count)` returns the model's `count` action token ids.
    """

    n_action_steps = 1
    aggregation = "latest"

    def __init__(self, generate_tokens: Callable[[np.ndarray, str, int], np.ndarray], statistics: ActionStatistics,
                 vocab_size: int, n_bins: int = 256):
        self.generate_tokens = generate_tokens
        self.statistics = statistics
        self.vocab_size = vocab_size
        self.n_bins = n_bins
        self.last_action: np.ndarray | None = None  # the un-normalised 7-D action of the last call

    def reset(self) -> None:
        self.last_action = None

    def select_action(self, observation: Observation, instruction: str) -> np.ndarray:
        tokens = self.generate_tokens(observation.image, PROMPT.format(instruction=instruction.strip().lower()),
                                      ACTION_DIM)
        action = unnormalize(tokens_to_normalized(tokens, self.vocab_size, self.n_bins), self.statistics)
        self.last_action = action
        return action_to_joint_targets(observation.state, action)[None, :]


class TransformersModel:
    """An OpenVLA-style checkpoint loaded with transformers from a local directory (no download)."""

    def __init__(self, directory: Path, device: str = "cpu"):
        import torch
        import transformers
        from transformers.dynamic_module_utils import get_class_from_dynamic_module

        self._torch = torch
        options = {"trust_remote_code": True, "local_files_only": True}
        config = transformers.AutoConfig.from_pretrained(directory, **options)
        auto_map = getattr(config, "auto_map", None) or {}
        # OpenVLA registers its class as AutoModelForVision2Seq, which transformers 5 no longer has:
        # resolve the class from the checkpoint's own code instead.
        reference = auto_map.get("AutoModelForVision2Seq") or auto_map.get("AutoModelForImageTextToText")
        if reference is None:
            raise ValueError(f"{directory}/config.json has no auto_map entry AutoModelForVision2Seq: "
                             "not an OpenVLA-style checkpoint")
        model_class = get_class_from_dynamic_module(reference, str(directory), local_files_only=True)
        self.dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        self.device = device
        self.model = model_class.from_pretrained(directory, config=config, dtype=self.dtype, **options).to(device)
        self.model.eval()
        self.processor = transformers.AutoProcessor.from_pretrained(directory, **options)
        self.vocab_size = config.text_config.vocab_size - config.pad_to_multiple_of
        self.n_bins = config.n_action_bins

    def __call__(self, image: np.ndarray, prompt: str, count: int) -> np.ndarray:
        from PIL import Image

        torch = self._torch
        inputs = self.processor(prompt, Image.fromarray(image)).to(self.device, dtype=self.dtype)
        extra = torch.full((1, 1), EMPTY_TOKEN, dtype=inputs["input_ids"].dtype, device=self.device)
        with torch.inference_mode():
            generated = self.model.generate(
                torch.cat([inputs["input_ids"], extra], dim=1),
                attention_mask=torch.cat([inputs["attention_mask"], torch.ones_like(extra)], dim=1),
                pixel_values=inputs["pixel_values"], max_new_tokens=count, do_sample=False)
        return generated[0, -count:].cpu().numpy()


def load(path: str = "", device: str = "cpu", unnorm_key: str | None = None) -> OpenVLAPolicy:
    """Registry entry "openvla": the model in directory `path`.

    The statistics are checked before the (large) weights load. Raises
    FileNotFoundError for a missing directory or config.json, ValueError for
    missing statistics or an unknown unnorm_key, ImportError for a package the
    model's code needs.
    """
    if not path:
        raise ValueError("the openvla backend needs the model directory as its checkpoint")
    directory = Path(path).expanduser().resolve()
    if not directory.is_dir():
        raise FileNotFoundError(f"OpenVLA model directory not found: {directory}")
    statistics = action_statistics(read_norm_stats(directory), unnorm_key)
    model = TransformersModel(directory, device)
    return OpenVLAPolicy(model, statistics, model.vocab_size, model.n_bins)
