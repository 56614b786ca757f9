"""Runs a LeRobot policy (ACT, Diffusion, SmolVLA, pi0, ...) from a local directory, and serves it.

This file runs in two places, so it imports nothing from vla_ros and imports
torch and lerobot only when a policy is loaded:
- in-process, from vla_ros.policies.lerobot_backend, when `lerobot` is importable;
- as a script in LeRobot's own Python environment (LeRobot pins an older torch than
  vla_ros): `<lerobot python> lerobot_runner.py --serve` answers requests on stdin
  and stdout (the protocol below), so vla_ros talks to it without importing lerobot.

Protocol: each message is a 4-byte little-endian length, a UTF-8 JSON header of
that length, then the raw bytes of the arrays the header's "arrays" list names
(name, dtype string, shape) in that order. No pickle: arrays are plain numbers.
Requests: {"op": "load", "path", "device"} -> {"info": {...}};
{"op": "reset"} -> {}; {"op": "predict", "instruction"} with arrays "state" and
one uint8 (H, W, 3) RGB array per image feature of the policy, named as in
info["image_features"] -> array "chunk" (K, action_dim) float32, un-normalised.
A failed request answers {"error": "..."}; the server exits at the end of its stdin.

LeRobot's own async policy server (gRPC) was not used: its messages are pickled
lerobot classes (RemotePolicyConfig, TimedObservation), so the client would need
lerobot (and its torch) importable, which is what the separate process avoids.
"""
from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path
from typing import BinaryIO

import numpy as np

_LENGTH = struct.Struct("<I")
# Policies whose predict_action_chunk reads an observation history that only their select_action
# fills (the others, ACT, SmolVLA, pi0, take the batch as it is).
HISTORY_POLICIES = frozenset({"diffusion"})
MAX_HEADER_BYTES = 1 << 20


class ProtocolError(RuntimeError):
    """The other side closed the stream or sent something that is not a message."""


def write_message(stream: BinaryIO, header: dict, arrays: dict[str, np.ndarray] | None = None) -> None:
    arrays = {name: np.ascontiguousarray(a) for name, a in (arrays or {}).items()}
    specs = []
    for name, array in arrays.items():
        if array.dtype.hasobject:
            raise ValueError(f"array {name!r} has dtype {array.dtype}: only plain numeric arrays can be sent")
        specs.append({"name": name, "dtype": array.dtype.str, "shape": list(array.shape)})
    encoded = json.dumps({**header, "arrays": specs}).encode()
    stream.write(_LENGTH.pack(len(encoded)) + encoded)
    for array in arrays.values():
        stream.write(array.tobytes())
    stream.flush()


def read_message(stream: BinaryIO) -> tuple[dict, dict[str, np.ndarray]]:
    (length,) = _LENGTH.unpack(_read_exactly(stream, _LENGTH.size))
    if length > MAX_HEADER_BYTES:
        raise ProtocolError(f"message header of {length} bytes (limit {MAX_HEADER_BYTES}): not a runner message")
    header = json.loads(_read_exactly(stream, length))
    arrays = {}
    for spec in header.pop("arrays", []):
        dtype = np.dtype(spec["dtype"])
        if dtype.hasobject:
            raise ProtocolError(f"array {spec['name']!r} has dtype {dtype}")
        count = int(np.prod(spec["shape"], dtype=np.int64))
        arrays[spec["name"]] = np.frombuffer(_read_exactly(stream, count * dtype.itemsize), dtype).reshape(spec["shape"])
    return header, arrays


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            raise ProtocolError("the stream ended in the middle of a message" if data else "the stream ended")
        data += chunk
    return data


class LeRobotRunner:
    """A LeRobot policy with its saved pre- and post-processors (normalisation) from `path`."""

    def __init__(self, path: str | Path, device: str = "cpu"):
        import torch
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors

        self._torch = torch
        config = PreTrainedConfig.from_pretrained(str(path), local_files_only=True)
        config.device = device
        if getattr(config, "pretrained_backbone_weights", None):
            # The checkpoint holds the trained backbone: do not fetch ImageNet weights first.
            config.pretrained_backbone_weights = None
        self.policy = get_policy_class(config.type).from_pretrained(str(path), config=config, local_files_only=True)
        self.policy.eval()
        overrides = {"device_processor": {"device": device}}
        self.preprocessor, self.postprocessor = make_pre_post_processors(
            config, pretrained_path=str(path), preprocessor_overrides=overrides, postprocessor_overrides=overrides)
        self.config = config
        self.image_features = list(config.image_features)
        ensembled = getattr(config, "temporal_ensemble_coeff", None) is not None
        self.info = {
            "type": config.type,
            "image_features": {name: list(config.input_features[name].shape) for name in self.image_features},
            "state_dim": int(config.robot_state_feature.shape[0]) if config.robot_state_feature else 0,
            "action_dim": int(config.action_feature.shape[0]),
            # ACT's temporal ensembling queries every step and blends; otherwise execute n_action_steps.
            "n_action_steps": 1 if ensembled else int(getattr(config, "n_action_steps", 1)),
            "aggregation": "ensemble" if ensembled else "latest",
            "ensemble_decay": float(config.temporal_ensemble_coeff) if ensembled else None,
            "torch": torch.__version__,
        }

    def reset(self) -> None:
        self.policy.reset()

    def predict(self, images: dict[str, np.ndarray], state: np.ndarray, instruction: str) -> np.ndarray:
        """(K, action_dim) float32 un-normalised actions from uint8 (H, W, 3) images, the state and the task."""
        torch = self._torch
        missing = [name for name in self.image_features if name not in images]
        if missing:
            raise ValueError(f"the policy needs images {', '.join(missing)}")
        batch = {name: torch.from_numpy(np.ascontiguousarray(images[name])).permute(2, 0, 1).float().div_(255.0)
                 for name in self.image_features}
        batch["observation.state"] = torch.from_numpy(np.asarray(state, dtype=np.float32))
        batch["task"] = instruction
        with torch.inference_mode():
            batch = self.preprocessor(batch)
            if self.config.type in HISTORY_POLICIES:
                chunk = self._predict_with_history(batch)
            else:
                chunk = self.policy.predict_action_chunk(batch)
            chunk = self.postprocessor(chunk)
        return chunk.reshape(-1, chunk.shape[-1]).cpu().numpy().astype(np.float32)

    def _predict_with_history(self, batch: dict):
        from lerobot.policies.utils import populate_queues
        from lerobot.utils.constants import OBS_IMAGES

        batch = {key: value for key, value in batch.items() if key != "action"}  # as its select_action does
        if self.image_features:
            batch[OBS_IMAGES] = self._torch.stack([batch[key] for key in self.image_features], dim=-4)
        self.policy._queues = populate_queues(self.policy._queues, batch)
        return self.policy.predict_action_chunk(batch)


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Answer requests until the end of stdin."""
    runner: LeRobotRunner | None = None
    while True:
        try:
            header, arrays = read_message(stdin)
        except ProtocolError:
            return
        op = header.get("op")
        try:
            if op == "load":
                runner = LeRobotRunner(header["path"], header.get("device", "cpu"))
                write_message(stdout, {"info": runner.info})
            elif runner is None:
                raise RuntimeError("no policy loaded: send a load request first")
            elif op == "reset":
                runner.reset()
                write_message(stdout, {})
            elif op == "predict":
                images = {name: arrays[name] for name in runner.image_features if name in arrays}
                chunk = runner.predict(images, arrays["state"], header.get("instruction", ""))
                write_message(stdout, {}, {"chunk": chunk})
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as err:  # reported to the client, which raises it; the server keeps serving
            write_message(stdout, {"error": f"{type(err).__name__}: {err}"})


def main() -> None:
    if sys.argv[1:] != ["--serve"]:
        sys.exit(f"usage: {sys.argv[0]} --serve  (requests on stdin, replies on stdout; see the module docstring)")
    # Keep the protocol stream private: anything a library prints goes to stderr instead.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    main()
