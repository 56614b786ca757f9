"""Policies: everything that turns (camera image, joint state, instruction) into joint targets.

`load_policy("expert", world=world)` or `load_policy("path/to/checkpoint.pt")` returns
an object satisfying `vla_ros.policies.base.Policy`. Adding a policy is one registry
line: a name (or a checkpoint file suffix) and the "module:factory" that builds it.
Factories are imported only when asked for, so torch loads only for learned policies.
"""
from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from vla_ros.policies.base import ACTION_DIM, CONTROL_DT, Observation, Policy

__all__ = ["ACTION_DIM", "CONTROL_DT", "Observation", "Policy", "available_policies", "backend_uses_wrist_camera",
           "load_backend", "load_policy"]

# name -> "module:factory"
POLICIES: dict[str, str] = {
    "expert": "vla_ros.sim.expert:ExpertPolicy",  # privileged: needs world=SimWorld
    "builtin": "vla_ros.policies.builtin.policy:load_shipped",  # the checkpoint shipped in the package
    "lerobot": "vla_ros.policies.lerobot_backend:load",  # path= a saved LeRobot policy directory
    "openvla": "vla_ros.policies.openvla:load",  # path= an OpenVLA-style model directory (transformers)
    "builtin-int8": "vla_ros.policies.builtin.policy:load_shipped_int8",  # the same, INT8 dynamic quantisation
}
# checkpoint file suffix -> "module:factory" taking the path first
CHECKPOINT_LOADERS: dict[str, str] = {
    ".pt": "vla_ros.policies.builtin.policy:load_checkpoint",  # the built-in VLA policy
}


def available_policies() -> list[str]:
    return sorted(POLICIES) + [f"<checkpoint{suffix}>" for suffix in sorted(CHECKPOINT_LOADERS)]


def load_policy(name_or_path: str, **options) -> Policy:
    """Build a registered policy, or load a checkpoint by its file suffix.

    Options a factory does not take are dropped, so callers may offer context that
    only some policies use (the evaluator passes `world=` for the privileged expert).
    Raises ValueError for an unknown name and FileNotFoundError for a missing checkpoint.
    """
    if name_or_path in POLICIES:
        return _call(POLICIES[name_or_path], (), options)
    path = Path(name_or_path)
    if path.suffix in CHECKPOINT_LOADERS:
        if not path.is_file():
            raise FileNotFoundError(f"policy checkpoint not found: {path}")
        return _call(CHECKPOINT_LOADERS[path.suffix], (path,), options)
    raise ValueError(f"unknown policy {name_or_path!r}; available: {', '.join(available_policies())}")


def load_backend(backend: str, checkpoint: str = "", device: str = "cpu") -> Policy:
    """The policy an inference node runs: a backend name plus an optional checkpoint.

    `builtin` takes a checkpoint file ("" = the shipped one); other backends get the
    checkpoint as their model path. Errors name what is missing (ValueError,
    ImportError or FileNotFoundError).
    """
    if backend == "builtin":
        return load_policy(checkpoint or "builtin", device=device)
    if backend not in POLICIES or backend in ("expert", "builtin-int8"):
        raise ValueError(f"unknown backend {backend!r}; available: builtin, "
                         + ", ".join(sorted(set(POLICIES) - {"builtin", "builtin-int8", "expert"})))
    return load_policy(backend, path=checkpoint, device=device)


def backend_uses_wrist_camera(backend: str, checkpoint: str = "") -> bool:
    """Whether the policy `load_backend(backend, checkpoint)` would build needs the hand
    camera, read from its files without loading it (for bringup). False when they cannot
    be read: loading the policy then reports the problem."""
    if backend == "builtin":
        from vla_ros.policies.builtin.policy import SHIPPED_CHECKPOINT, CheckpointError, checkpoint_config

        try:
            return checkpoint_config(checkpoint or SHIPPED_CHECKPOINT).wrist_camera
        except CheckpointError:
            return False
    if backend == "lerobot":
        from vla_ros.policies.lerobot_backend import directory_uses_wrist_camera

        return bool(checkpoint) and directory_uses_wrist_camera(checkpoint)
    return False


def _call(target: str, args: tuple, options: dict) -> Policy:
    module_name, factory_name = target.split(":")
    factory = getattr(importlib.import_module(module_name), factory_name)
    parameters = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    accepted = {k: v for k, v in options.items() if takes_any or k in parameters}
    return factory(*args, **accepted)
