"""A bringup plan (vla_ros/bringup.py) as a ROS 2 launch description.

launch/bringup.launch.py, gazebo.launch.py and hardware.launch.py are thin wrappers around
`generate()`: every decision (nodes, parameters, remaps) is the plan's. Needs `launch` and
`launch_ros`, which come with a ROS 2 install (not with the pip-only setup: there `vla-ros up`
runs the same plan).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from vla_ros import bringup
from vla_ros.launcher import write_parameters


def generate(fixed: dict[str, str] | None = None):
    """The launch description: one DeclareLaunchArgument per bringup argument not in `fixed`."""
    import launch.actions

    fixed = dict(fixed or {})
    declared = [launch.actions.DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
                for a in bringup.LAUNCH_ARGUMENTS if a.name not in fixed]
    return launch.LaunchDescription([*declared, launch.actions.OpaqueFunction(function=_actions,
                                                                               kwargs={"fixed": fixed})])


def plan_from_context(context, fixed: dict[str, str]) -> bringup.Plan:
    values = {a.name: context.launch_configurations.get(a.name, a.default) for a in bringup.LAUNCH_ARGUMENTS}
    values.update(fixed)
    return bringup.plan(bringup.BringupArgs.from_strings(values))


def _actions(context, fixed: dict[str, str]):
    try:
        plan = plan_from_context(context, fixed)
    except bringup.BringupError as err:
        raise RuntimeError(f"vla_ros bringup: {err}") from err
    params_dir = Path(tempfile.mkdtemp(prefix="vla_ros_launch_"))
    return [node_action(spec, params_dir) for spec in plan.nodes]


def node_action(spec: bringup.NodeSpec, params_dir: Path):
    """A launch_ros Node for one planned node. A long-running node that exits ends the launch,
    as with `vla-ros up` (closing rviz does not)."""
    import launch.actions
    import launch_ros.actions

    params_file = write_parameters(spec, params_dir)
    on_exit = None if spec.oneshot or spec.name == "rviz2" else \
        launch.actions.Shutdown(reason=f"{spec.full_name} exited")
    return launch_ros.actions.Node(
        package=spec.package, executable=spec.executable, name=spec.name, namespace=spec.namespace or None,
        parameters=[*spec.parameter_files, *([str(params_file)] if params_file else [])],
        remappings=list(spec.remappings), arguments=list(spec.arguments), output="screen", on_exit=on_exit)
