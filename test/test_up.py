"""`vla-ros up` and vla_ros/launcher.py over real DDS: the graph comes up, Ctrl-C stops every
process with exit code 0, a node that fails at start-up stops the others, and a killed
supervisor leaves no orphans."""
from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from conftest import spin_until
from sensor_msgs.msg import Image, JointState
from test_vla_node import tiny_checkpoint  # noqa: F401  (a fixture: a small builtin policy, built once)

from vla_ros import bringup, qos
from vla_ros.cli import main as cli_main
from vla_ros.launcher import StartupError, find_executable, start_graph

STARTUP_TIMEOUT = 60.0
# A small, slow camera keeps the simulator light on a shared 2-core machine.
LIGHT_SIM = {"mujoco_sim_node": {"ros__parameters": {"camera_rate": 10.0, "image_width": 160, "image_height": 120}}}


def _params(tmp_path: Path, extra: dict | None = None) -> str:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({**LIGHT_SIM, **(extra or {})}))
    return str(path)


def _wait_for_line(process, pattern: str, timeout: float) -> re.Match | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, process.output(), flags=re.M)
        if match or process.proc.poll() is not None:
            return match
        time.sleep(0.2)
    return None


def _pids(output: str) -> dict[str, int]:
    return {name: int(pid) for name, pid in re.findall(r"^started (\S+)\s+pid (\d+)", output, flags=re.M)}


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie waiting for a reaper that is not ours."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def _all_gone(pids, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_gone(pid) for pid in pids):
            return True
        time.sleep(0.1)
    return all(_gone(pid) for pid in pids)


def test_up_brings_the_graph_up_and_ctrl_c_stops_every_process(ros_node, start_process, tmp_path, tiny_checkpoint):  # noqa: F811
    up = start_process("vla-ros", "up", "--checkpoint", str(tiny_checkpoint), "--log-dir", str(tmp_path / "logs"),
                       "--params-file", _params(tmp_path))
    assert _wait_for_line(up, r"^up: \d+ processes", STARTUP_TIMEOUT), up.output()
    pids = _pids(up.output())
    assert set(pids) == {"/mujoco_sim_node", "/camera_node", "/instruction_node", "/safety_filter_node",
                         "/vla_node", "/debug_view_node"}
    if find_executable(bringup.plan(bringup.BringupArgs()).node("robot_state_publisher")) is None:
        assert "skipped /robot_state_publisher: robot_state_publisher not found" in up.output()
    for name in pids:
        assert (tmp_path / "logs" / f"{name.strip('/')}.log").is_file()

    received = {"joints": [], "images": []}
    ros_node.create_subscription(JointState, "/joint_states", received["joints"].append, qos.SENSOR)
    ros_node.create_subscription(Image, "/vla/image", received["images"].append, qos.SENSOR)
    assert spin_until(ros_node, lambda: received["joints"] and received["images"], 30.0), up.output()
    assert received["images"][-1].width == 128  # camera_node's policy frames from the simulator's camera
    expected = {"/joint_commands", "/safety/status", "/vla/status", "/vla/instruction", "/vla/debug_image"}
    # Discovery of each node's endpoints completes on its own time: wait for all of them.
    assert spin_until(ros_node, lambda: expected <= set(dict(ros_node.get_topic_names_and_types())), 30.0), (
        sorted(dict(ros_node.get_topic_names_and_types())))

    assert up.stop(timeout=30.0) == 0, up.output()  # past up's --stop-timeout: up names a node that hangs
    assert _all_gone(pids.values()), up.output()
    for name in pids:
        assert re.search(rf"^stopped {re.escape(name)} \(exit code 0\)", up.output(), flags=re.M), up.output()


def test_a_node_failing_at_startup_is_named_and_the_others_stopped(start_process, tmp_path):
    bad = {"safety_filter_node": {"ros__parameters": {"rate": -1.0}}}
    up = start_process("vla-ros", "up", "--without", "vla_node", "--wrist-camera", "false", "--log-dir", str(tmp_path / "logs"),
                       "--params-file", _params(tmp_path, bad))
    assert up.proc.wait(STARTUP_TIMEOUT) == 1, up.output()
    output = up.output()
    assert "error: the graph did not come up: /safety_filter_node exited with code 2" in output
    assert "rate: must be > 0, got -1.0" in output  # the node's own message, quoted from its log
    pids = _pids(output)
    assert "/vla_node" not in pids and len(pids) == 5
    assert _all_gone(pids.values()), output


def test_a_killed_supervisor_leaves_no_orphans(start_process, tmp_path):
    up = start_process("vla-ros", "up", "--without", "vla_node", "--wrist-camera", "false", "--log-dir", str(tmp_path / "logs"),
                       "--params-file", _params(tmp_path))
    assert _wait_for_line(up, r"^up: \d+ processes", STARTUP_TIMEOUT), up.output()
    pids = _pids(up.output())
    os.kill(up.proc.pid, signal.SIGKILL)  # no chance to stop anything: the kernel tells the nodes
    up.proc.wait()
    assert _all_gone(pids.values(), timeout=15.0), [pid for pid in pids.values() if not _gone(pid)]


def test_start_graph_as_a_context_manager(tmp_path):
    plan = bringup.plan(bringup.BringupArgs(params_file=_params(tmp_path), wrist_camera=False)).without(
        "vla_node", "mujoco_sim_node", "camera_node", "debug_view_node")
    with start_graph(plan, tmp_path / "logs") as graph:
        assert graph.wait_ready(STARTUP_TIMEOUT) < STARTUP_TIMEOUT
        assert graph.alive() and not graph.failed()
        names = [node.spec.name for node in graph.nodes]
        assert names == ["instruction_node", "safety_filter_node"]
        processes = [node.process for node in graph.nodes]
        params = yaml.safe_load((tmp_path / "logs" / "params" / "safety_filter_node.yaml").read_text())
        assert params["/**"]["ros__parameters"]["workspace.table_z"] == 0.0
    assert [p.returncode for p in processes] == [0, 0]
    assert graph.stop() == {"/instruction_node": 0, "/safety_filter_node": 0}  # stopping twice is harmless


def test_wait_ready_times_out_naming_the_missing_nodes(tmp_path):
    full = bringup.plan(bringup.BringupArgs())
    plan = full.without(*[name for name in full.names if name != "instruction_node"])
    with start_graph(plan, tmp_path / "logs") as graph:
        # The supervisor expects a node name that the process does not use.
        graph.nodes[0].spec = replace(graph.nodes[0].spec, name="not_started")
        with pytest.raises(StartupError, match=r"not up after 3 s: /not_started"):
            graph.wait_ready(3.0)


def test_dry_run_and_bad_arguments(capsys):
    assert cli_main(["up", "--dry-run", "--sim", "gazebo", "--namespace", "r1"]) == 0
    out = capsys.readouterr().out
    assert "/r1/gz_server  (ros_gz_sim gzserver)" in out and "remap /joint_commands -> /r1/joint_commands" in out
    assert cli_main(["up", "--camera-source", "/dev/video0"]) == 2
    assert "does not apply with sim:=mujoco" in capsys.readouterr().err
    assert cli_main(["up", "--without", "rviz2"]) == 2
    assert "cannot leave out rviz2" in capsys.readouterr().err
