"""The safety filter: nothing unsafe reaches the arm (plain Python, no ROS; see docs/SAFETY.md).

    from vla_ros.safety import SafetyFilter, load_config
    flt = SafetyFilter(load_config())      # the node's limits, from config/safety_filter_node.yaml
"""
from vla_ros.safety.config import config_from_parameters, load_config, parameter_defaults
from vla_ros.safety.filter import (
    InputError,
    SafetyConfig,
    SafetyCounters,
    SafetyFilter,
    SafetyOutput,
    SafetyState,
    Verdict,
    positions_by_name,
)
from vla_ros.safety.limits import JointLimitSet, Workspace, WorkspaceCheck, build_joint_limits

__all__ = [
    "InputError",
    "JointLimitSet",
    "SafetyConfig",
    "SafetyCounters",
    "SafetyFilter",
    "SafetyOutput",
    "SafetyState",
    "Verdict",
    "Workspace",
    "WorkspaceCheck",
    "build_joint_limits",
    "config_from_parameters",
    "load_config",
    "parameter_defaults",
    "positions_by_name",
]
