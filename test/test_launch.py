"""launch/*.launch.py on a ROS 2 install: the files declare the bringup arguments and start
exactly the plan of vla_ros/bringup.py (test_launch_pytest.py launches the whole graph).

`launch` and `launch_ros` are not installable on the pip-only path (no PyPI wheels): there
these tests skip, and `vla-ros up`, which runs the same plan, is tested in test_up.py.
"""
from __future__ import annotations

import pytest

launch_ros = pytest.importorskip(
    "launch_ros", reason="launch_ros is not installed (pip-only setup, no ROS 2 launch tooling); "
    "test_up.py runs the same plan with vla-ros up")

import launch  # noqa: E402  (after the skip: a repository's launch/ folder is not the launch package)
from launch.launch_description_sources import get_launch_description_from_python_launch_file  # noqa: E402

from vla_ros import bringup  # noqa: E402
from vla_ros.paths import share_dir  # noqa: E402

LAUNCH_DIR = share_dir() / "launch"
FILES = [("bringup.launch.py", {}), ("gazebo.launch.py", {"sim": "gazebo"}), ("hardware.launch.py", {"sim": "none"})]


def _evaluate(path, arguments: dict[str, str]):
    """The launch description and the Node actions it creates for `arguments` (as on the command line)."""
    description = get_launch_description_from_python_launch_file(str(path))
    context = launch.LaunchContext()
    context.launch_configurations.update(arguments)
    actions = []
    for entity in description.entities:
        actions += entity.visit(context) or []
    return description, [a for a in actions if isinstance(a, launch_ros.actions.Node)]


@pytest.mark.parametrize("file, fixed", FILES)
@pytest.mark.parametrize("arguments", [{}, {"namespace": "robot1", "speech": "true", "rviz": "true"},
                                       {"policy": "lerobot", "checkpoint": "/models/act", "use_sim_time": "true"}])
def test_launch_file_starts_the_plan(file, fixed, arguments):
    description, nodes = _evaluate(LAUNCH_DIR / file, arguments)
    declared = {argument.name for argument in description.get_launch_arguments()}
    assert declared == {a.name for a in bringup.LAUNCH_ARGUMENTS} - set(fixed)
    plan = bringup.plan(bringup.BringupArgs.from_strings({**arguments, **fixed}))
    assert [(n.node_package, n.node_executable) for n in nodes] == [(s.package, s.executable) for s in plan.nodes]


def test_bad_arguments_fail_the_launch_with_the_plan_message():
    with pytest.raises(RuntimeError, match=r"vla_ros bringup: sim:='isaac'"):
        _evaluate(LAUNCH_DIR / "bringup.launch.py", {"sim": "isaac"})
