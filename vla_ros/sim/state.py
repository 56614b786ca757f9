"""A snapshot of the simulated world as the task success checks see it: plain numbers.

Kept apart from the MuJoCo code so that success checks run (and are tested) on
hand-built states.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Body:
    """An object or a plate on the table."""

    position: np.ndarray  # centre, world frame (m)
    half_height: float  # centre to top face (m)
    radius: float  # horizontal extent from the centre (m), a cube's half side


@dataclass(frozen=True)
class WorldState:
    time: float  # simulated seconds since the episode started
    joints: np.ndarray  # (8,) arm.COMMANDED_JOINTS positions
    tcp: np.ndarray  # (3,) tool centre point
    bodies: dict[str, Body]  # objects and plates on the table, by vocabulary name
    in_hand: frozenset[str] = field(default_factory=frozenset)  # objects touching both fingers

    def top(self, name: str) -> float:
        body = self.bodies[name]
        return float(body.position[2] + body.half_height)

    def bottom(self, name: str) -> float:
        body = self.bodies[name]
        return float(body.position[2] - body.half_height)
