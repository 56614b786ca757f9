"""The policy contract: what every policy (the scripted expert, the built-in VLA,
LeRobot/OpenVLA backends) takes and returns, in the simulator and on the ROS graph.

A policy sees an `Observation` and the instruction text and returns a chunk of K
ABSOLUTE joint position targets (7 arm joints in rad, then the gripper opening in
m, arm.COMMANDED_JOINTS order), one per control period CONTROL_DT. The caller
executes some or all of the chunk, then asks again. No ROS imports here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from vla_ros import arm

# Control period of policies and the expert: 10 Hz. The simulator tracks each
# target over one period (linear interpolation over its physics substeps).
CONTROL_DT = 0.1
ACTION_DIM = len(arm.COMMANDED_JOINTS)


@dataclass
class Observation:
    image: np.ndarray  # (H, W, 3) uint8 RGB, scene camera
    state: np.ndarray  # (8,) joint positions, arm.COMMANDED_JOINTS order
    wrist_image: np.ndarray | None = None  # (H, W, 3) uint8 RGB, hand camera, when rendered

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8, got {self.image.shape} {self.image.dtype}")
        if np.shape(self.state) != (ACTION_DIM,):
            raise ValueError(f"state must hold {ACTION_DIM} joint positions, got shape {np.shape(self.state)}")


@runtime_checkable
class Policy(Protocol):
    def reset(self) -> None:
        """Forget everything about the previous episode (called before each one)."""

    def select_action(self, observation: Observation, instruction: str) -> np.ndarray:
        """A (K, 8) chunk of absolute joint position targets, one per CONTROL_DT, K >= 1.

        A policy that needs the hand camera's image has a true attribute `uses_wrist_camera`
        (uses_wrist_camera below); the others get wrist_image None or ignore it. A policy may
        also say how its chunks execute: `n_action_steps`, `aggregation` and `ensemble_decay`
        (vla_ros.policies.chunking.policy_blending)."""


def uses_wrist_camera(policy) -> bool:
    """Whether `policy` needs Observation.wrist_image (a policy says so with a true `uses_wrist_camera`)."""
    return bool(getattr(policy, "uses_wrist_camera", False))


def check_chunk(chunk) -> np.ndarray:
    """A policy's output as a (K, 8) float array; raises ValueError for any other shape."""
    array = np.asarray(chunk, dtype=float)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != ACTION_DIM or array.shape[0] == 0:
        raise ValueError(f"a policy must return a (K, {ACTION_DIM}) chunk of joint targets, got shape {array.shape}")
    return array
