"""`colcon build` of this repository (the ROS-native path) works and its result imports.

Builds against the venv's ROS 2 wheels here, against /opt/ros/<distro> where one
is sourced. Takes about 30 s on 2 cores.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, VENV_BIN

PREFIX = Path(sys.prefix)
SOURCE_ITEMS = ["CMakeLists.txt", "package.xml", "setup.py", "msg", "srv", "vla_ros", "config", "launch", "urdf",
                "resource"]


@pytest.mark.slow
def test_colcon_build_installs_an_importable_package(tmp_path):
    colcon = shutil.which("colcon") or str(VENV_BIN / "colcon")
    package_dir = tmp_path / "src" / "vla_ros"
    package_dir.mkdir(parents=True)
    for item in SOURCE_ITEMS:
        source = REPO_ROOT / item
        if source.is_dir():
            shutil.copytree(source, package_dir / item, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.is_file():
            shutil.copy2(source, package_dir / item)

    env = dict(os.environ)
    if not env.get("ROS_DISTRO"):  # pip path: the ROS 2 wheels live in the venv prefix
        env["AMENT_PREFIX_PATH"] = str(PREFIX)
        env["CMAKE_PREFIX_PATH"] = str(PREFIX)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"
    build = subprocess.run(
        [colcon, "build", "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    logs = "\n".join(p.read_text() for p in (tmp_path / "log" / "latest_build").glob("vla_ros/stderr.log"))
    assert build.returncode == 0, build.stdout[-3000:] + logs[-3000:]

    install = tmp_path / "install" / "vla_ros"
    site_packages = next(install.glob("lib/python3*/site-packages"))
    share = install / "share" / "vla_ros"
    assert (share / "config" / "fastdds.xml").is_file()
    for item in ("launch/bringup.launch.py", "launch/gazebo.launch.py", "launch/hardware.launch.py",
                 "urdf/vla_arm.urdf", "config/vla.rviz", "config/ros2_controllers.yaml"):
        assert (share / item).is_file(), f"{item} not installed"
    assert (install / "bin" / "vla-ros").is_file()
    for node_module in (REPO_ROOT / "vla_ros" / "nodes").glob("*_node.py"):
        assert (install / "lib" / "vla_ros" / node_module.stem).is_file(), f"no ros2 run executable for {node_module.stem}"

    # Import the installed package (not this checkout) and publish one of its messages.
    env["PYTHONPATH"] = str(site_packages)
    env["LD_LIBRARY_PATH"] = f"{install / 'lib'}{os.pathsep}{env.get('LD_LIBRARY_PATH', '')}"
    env["AMENT_PREFIX_PATH"] = f"{install}{os.pathsep}{env.get('AMENT_PREFIX_PATH', '')}"
    probe = (
        "import rclpy, vla_ros.msg, vla_ros.arm\n"
        "from vla_ros.msg import Instruction\n"
        f"assert vla_ros.msg.__file__.startswith({str(site_packages)!r}), vla_ros.msg.__file__\n"
        f"assert vla_ros.arm.__file__.startswith({str(site_packages)!r}), vla_ros.arm.__file__\n"
        "rclpy.init(); node = rclpy.create_node('colcon_probe')\n"
        "node.create_publisher(Instruction, '/colcon_probe', 1).publish(Instruction(text='ok'))\n"
        "rclpy.shutdown()\n"
        # The installed bringup plan finds its config, rviz and controllers files in share/vla_ros.
        "from vla_ros import bringup\n"
        "plan = bringup.plan(bringup.BringupArgs(sim='none', rviz=True))\n"
        f"assert plan.node('rviz2').arguments[1].startswith({str(share)!r}), plan.node('rviz2').arguments\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
