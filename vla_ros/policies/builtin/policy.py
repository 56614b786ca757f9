"""BuiltinPolicy: the trained network wrapped with its normalisation, chunk execution and checkpoint I/O.

`select_action(observation, instruction)` returns a (K - lead_steps, 8) chunk of
absolute joint targets at the control period: the model's K future targets (joint
offsets, or tool-pose offsets solved by IK: action_space.py) from entry `lead_steps` on (executed early on purpose, see VLAConfig.lead_steps). The
caller executes `n_action_steps` of it and calls again, blending overlapping chunks
with vla_ros.policies.chunking (the config's `aggregation` mode is the one it was
evaluated with).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vla_ros import kinematics
from vla_ros.camera.preprocess import policy_frame
from vla_ros.policies.builtin.action_space import joint_targets
from vla_ros.policies.builtin.config import VLAConfig
from vla_ros.policies.builtin.language import InstructionMatcher, LanguageEncoder
from vla_ros.policies.builtin.model import VLAModel

CHECKPOINT_FORMAT = "vla_ros.builtin/1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupted or does not match this code."""


@dataclass
class Normalization:
    """Statistics of the training data: state (8,) and action offsets from the state (K, action_dim)."""

    state_mean: np.ndarray
    state_std: np.ndarray
    offset_mean: np.ndarray
    offset_std: np.ndarray

    @classmethod
    def from_data(cls, states: np.ndarray, offsets: np.ndarray, floor: float = 1e-3) -> Normalization:
        return cls(
            states.mean(0).astype(np.float32),
            np.maximum(states.std(0), floor).astype(np.float32),
            offsets.mean(0).astype(np.float32),
            np.maximum(offsets.std(0), floor).astype(np.float32),
        )

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in vars(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> Normalization:
        return cls(**{k: np.asarray(data[k], dtype=np.float32) for k in ("state_mean", "state_std", "offset_mean",
                                                                          "offset_std")})


def image_tensor(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


class BuiltinPolicy:
    """The shipped VLA policy. Build it from a checkpoint with `BuiltinPolicy.load(path)`."""

    def __init__(self, config: VLAConfig, model: VLAModel, normalization: Normalization,
                 metadata: dict | None = None, language: LanguageEncoder | None = None):
        self.config = config
        self.model = model.eval()
        self.normalization = normalization
        self.metadata = metadata or {}
        self.language = language or LanguageEncoder(config.max_tokens)
        trained = self.metadata.get("trained_instructions")
        self.matcher = InstructionMatcher(trained, self.language) if config.match_instructions and trained else None
        self.n_action_steps = config.n_action_steps
        self.aggregation = config.aggregation
        self.ensemble_decay = config.temporal_ensemble_decay
        self._generator = torch.Generator()
        self.reset()

    # -- the policy interface ------------------------------------------------------------
    def reset(self) -> None:
        """Restart the sampling noise of the flow head, so episodes are reproducible."""
        self._generator.manual_seed(self.config.seed)

    @property
    def uses_wrist_camera(self) -> bool:
        """Whether select_action needs Observation.wrist_image (policies.base.uses_wrist_camera)."""
        return self.config.wrist_camera

    @torch.inference_mode()
    def predict_chunk(self, image: np.ndarray, state: np.ndarray, instruction: str, start: int = 0,
                      wrist_image: np.ndarray | None = None) -> np.ndarray:
        """One forward pass: (K - start, 8) absolute joint targets from chunk entry `start`, without ensembling."""
        inputs = self.preprocess(image, state, instruction, wrist_image)
        offsets = self.model.predict(**inputs, generator=self._generator)[0].numpy()
        return self.postprocess(state, offsets, start)

    def preprocess(self, image: np.ndarray, state: np.ndarray, instruction: str,
                   wrist_image: np.ndarray | None = None) -> dict[str, torch.Tensor | None]:
        """The model's batch-of-one inputs by keyword: image, normalised state, instruction
        tokens and mask, the wrist image and the tool centre point's (x, y) (each None unless
        the config uses it)."""
        n = self.normalization
        state = np.asarray(state, dtype=np.float32)
        if state.shape != (self.config.state_dim,) or not np.all(np.isfinite(state)):
            raise ValueError(f"state must be {self.config.state_dim} finite joint positions, got {state}")
        if self.config.wrist_camera and wrist_image is None:
            raise ValueError("this policy uses the wrist camera: give it the hand camera's image")
        tokens, mask = self.language.encode(self.understood(instruction), self.config.language_phrases)
        wrist = image_tensor(policy_frame(wrist_image, self.config.image_size)[None]) if self.config.wrist_camera else None
        tcp = (torch.tensor(kinematics.tcp_pose(state[:7].astype(np.float64))[0][None, :2], dtype=torch.float32)
               if self.config.needs_tcp else None)
        return {"image": image_tensor(policy_frame(image, self.config.image_size)[None]),
                "state": torch.from_numpy((state - n.state_mean) / n.state_std)[None],
                "tokens": torch.from_numpy(tokens)[None],
                "mask": torch.from_numpy(mask)[None],
                "wrist": wrist,
                "tcp": tcp}

    def understood(self, instruction: str) -> str:
        """The instruction the network is given: a new phrasing read as the trained instruction it
        means (language.InstructionMatcher), when the checkpoint lists its training instructions."""
        return self.matcher.match(instruction) if self.matcher is not None else instruction

    def postprocess(self, state: np.ndarray, offsets: np.ndarray, start: int = 0) -> np.ndarray:
        """Normalised (K, action_dim) offsets from `state` -> absolute (K - start, 8) joint targets."""
        n = self.normalization
        offsets = (offsets * n.offset_std + n.offset_mean)[start:]
        return joint_targets(np.asarray(state, dtype=np.float32), offsets, self.config.action_space)

    def select_action(self, observation, instruction: str) -> np.ndarray:
        return self.predict_chunk(observation.image, observation.state, instruction, start=self.config.lead_steps,
                                  wrist_image=observation.wrist_image)

    def int8(self) -> BuiltinPolicy:
        """A copy with INT8 dynamic quantisation of the linear layers (weights int8, activations per call).

        The convolutions stay float: dynamic quantisation covers only linear layers.
        torch marks these kernels deprecated (kept in 2.13); bench/bench_policy_latency.py
        measures the speed and `vla-ros eval --policy builtin-int8` the success change.
        """
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.ao moves to torchao; 2.13 still has it
            model = torch.ao.quantization.quantize_dynamic(copy.deepcopy(self.model), {torch.nn.Linear},
                                                           dtype=torch.qint8)
        return BuiltinPolicy(self.config, model, self.normalization, {**self.metadata, "int8": True}, self.language)

    # -- checkpoints --------------------------------------------------------------------
    def save(self, path: str | Path, extra_metadata: dict | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        metadata = {**self.metadata, **(extra_metadata or {})}
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(
            {
                "format": CHECKPOINT_FORMAT,
                "config": self.config.to_dict(),
                "model": self.model.state_dict(),
                "normalization": self.normalization.to_dict(),
                "metadata": metadata,
            },
            tmp,
        )
        tmp.replace(path)
        self.metadata = metadata

    @classmethod
    def load(cls, path: str | Path, language: LanguageEncoder | None = None) -> BuiltinPolicy:
        path = Path(path)
        data = _read_checkpoint(path)
        try:
            config = VLAConfig.from_dict(data["config"])
            model = VLAModel(config)
            model.load_state_dict(data["model"])
            normalization = Normalization.from_dict(data["normalization"])
        except (ValueError, TypeError, KeyError, RuntimeError) as err:
            raise CheckpointError(f"{path} does not match this version of the built-in policy: {err}") from err
        return cls(config, model, normalization, data.get("metadata", {}), language)


def _read_checkpoint(path: Path, mmap: bool = False) -> dict:
    """The checkpoint's contents, checked for format and parts; `mmap` leaves the weights on disk."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # torch raises many types for a damaged file
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{path} is not a vla_ros built-in policy checkpoint "
                              f"(format {found!r}, expected {CHECKPOINT_FORMAT!r})")
    missing = [k for k in ("config", "model", "normalization") if k not in data]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}")
    return data


def checkpoint_config(path: str | Path) -> VLAConfig:
    """A checkpoint's config without building its model (e.g. which cameras it needs)."""
    path = Path(path)
    data = _read_checkpoint(path, mmap=True)
    try:
        return VLAConfig.from_dict(data["config"])
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path} does not match this version of the built-in policy: {err}") from err


def load_checkpoint(path: str | Path) -> BuiltinPolicy:
    """Registry entry for vla_ros.policies.load_policy: a built-in policy checkpoint file."""
    return BuiltinPolicy.load(path)


# Trained by `vla-ros train --config default` on expert demonstrations (docs/POLICY.md).
SHIPPED_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "default.pt"


def load_shipped() -> BuiltinPolicy:
    """Registry entry "builtin": the checkpoint that ships with vla_ros."""
    return BuiltinPolicy.load(SHIPPED_CHECKPOINT)


def load_shipped_int8() -> BuiltinPolicy:
    """Registry entry "builtin-int8": the shipped checkpoint with INT8 dynamic quantisation."""
    return load_shipped().int8()
