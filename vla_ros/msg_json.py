"""Convert ROS messages to and from plain dicts (JSON), and resolve 'pkg/msg/Type' names.

Used by `vla-ros topic`, recordings and tests; the ros2 CLI's own converters are
not installable on the pip path.
"""
from __future__ import annotations

import array
import importlib
import math
from typing import Any


def message_class(type_name: str):
    """'sensor_msgs/msg/JointState' or 'sensor_msgs/JointState' -> the message class."""
    parts = type_name.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"bad message type {type_name!r}: expected pkg/msg/Type")
    package, kind, name = parts
    try:
        module = importlib.import_module(f"{package}.{kind}")
        return getattr(module, name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"unknown message type {type_name!r}: {err}") from err


def to_dict(msg) -> dict[str, Any]:
    """A message as nested dicts, lists and numbers (bytes become lists of ints)."""
    out: dict[str, Any] = {}
    for field in msg.get_fields_and_field_types():
        out[field] = _to_plain(getattr(msg, field))
    return out


def _to_plain(value):
    if hasattr(value, "get_fields_and_field_types"):
        return to_dict(value)
    if isinstance(value, (bytes, bytearray)):
        return list(value)
    if isinstance(value, (list, tuple, array.array)) or type(value).__module__ == "numpy":
        if hasattr(value, "tolist"):
            value = value.tolist()
        return [_to_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # JSON has no NaN/Inf; keep them readable
    return value


def from_dict(msg_class, data: dict[str, Any]):
    """Build a message of `msg_class` from a (possibly partial) dict; unknown fields raise ValueError."""
    msg = msg_class()
    fields = msg.get_fields_and_field_types()
    for key, value in data.items():
        if key not in fields:
            raise ValueError(f"{msg_class.__name__} has no field {key!r} (fields: {', '.join(fields)})")
        current = getattr(msg, key)
        if hasattr(current, "get_fields_and_field_types"):
            value = from_dict(type(current), value)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            element_class = _sequence_element_class(fields[key])
            value = [from_dict(element_class, v) for v in value]
        elif isinstance(value, str) and value in ("nan", "inf", "-inf") and isinstance(current, float):
            value = float(value)
        setattr(msg, key, value)
    return msg


def _sequence_element_class(field_type: str):
    # 'sequence<trajectory_msgs/JointTrajectoryPoint>' or 'trajectory_msgs/JointTrajectoryPoint[3]'
    inner = field_type.removeprefix("sequence<").split(">")[0].split("[")[0].split(",")[0]
    return message_class(inner)
