"""The safety filter's configuration as flat ROS parameters (dotted names) and as YAML.

One mapping serves the node (declared parameters) and in-process users such as
the evaluator (`load_config()` reads config/safety_filter_node.yaml), so both
run the filter with the same limits.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from vla_ros import arm, paths
from vla_ros.safety.filter import SafetyConfig
from vla_ros.safety.limits import (
    DEFAULT_GRIPPER_MARGIN,
    DEFAULT_POSITION_MARGIN,
    LIMIT_FIELDS,
    Workspace,
    build_joint_limits,
    datasheet_value,
)

NODE_NAME = "safety_filter_node"
CONFIG_FILE = f"{NODE_NAME}.yaml"
_SCALARS = tuple(f.name for f in fields(SafetyConfig) if f.name not in ("joint_limits", "workspace"))
_WORKSPACE = {  # parameter -> Workspace field
    "workspace.min": "box_min",
    "workspace.max": "box_max",
    "workspace.table_z": "table_z",
    "workspace.tcp_clearance": "tcp_clearance",
    "workspace.link_clearance": "link_clearance",
}


def parameter_defaults() -> dict[str, Any]:
    """Every parameter of the safety filter with its default, by dotted name."""
    defaults = SafetyConfig.__dataclass_fields__
    values: dict[str, Any] = {name: defaults[name].default for name in _SCALARS}
    values["position_margin"] = DEFAULT_POSITION_MARGIN
    values["gripper_margin"] = DEFAULT_GRIPPER_MARGIN
    for joint in arm.COMMANDED_JOINTS:
        for limit_field in LIMIT_FIELDS:
            values[f"joint_limits.{joint}.{limit_field}"] = datasheet_value(joint, limit_field)
    workspace = Workspace()
    for name, attribute in _WORKSPACE.items():
        value = getattr(workspace, attribute)
        values[name] = list(value) if isinstance(value, tuple) else value
    return values


def config_from_parameters(params: Mapping[str, Any]) -> SafetyConfig:
    """A SafetyConfig from dotted parameters; missing ones take their defaults.

    Raises ValueError naming unknown parameters or invalid values.
    """
    values = parameter_defaults()
    unknown = sorted(set(params) - set(values))
    if unknown:
        raise ValueError(f"unknown safety filter parameters: {', '.join(unknown)}")
    values.update(params)
    overrides: dict[str, dict[str, float]] = {}
    for joint in arm.COMMANDED_JOINTS:
        overrides[joint] = {f: float(values[f"joint_limits.{joint}.{f}"]) for f in LIMIT_FIELDS}
    joint_limits = build_joint_limits(float(values["position_margin"]), float(values["gripper_margin"]), overrides)
    workspace = Workspace(**{
        attribute: tuple(float(v) for v in values[name]) if isinstance(values[name], (list, tuple))
        else float(values[name])
        for name, attribute in _WORKSPACE.items()
    })
    return SafetyConfig(**{name: float(values[name]) for name in _SCALARS},
                        joint_limits=joint_limits, workspace=workspace)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}, as ROS reads nested parameters."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def load_config(path: str | Path | None = None) -> SafetyConfig:
    """The configuration in a ROS params file (default: config/safety_filter_node.yaml)."""
    path = Path(path) if path is not None else paths.config_file(CONFIG_FILE)
    document = yaml.safe_load(path.read_text()) or {}
    section = document.get(NODE_NAME, document.get("/**", {}))
    if not isinstance(section, Mapping) or "ros__parameters" not in section:
        raise ValueError(f"{path}: expected '{NODE_NAME}: ros__parameters: ...'")
    return config_from_parameters(flatten(section["ros__parameters"]))
