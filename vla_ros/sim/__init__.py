"""The simulated arm world (MuJoCo): world.py steps the MJCF model in assets/, tasks.py
defines the task suite and its success checks, expert.py solves tasks from the true state.

No ROS imports in this package; vla_ros/nodes/mujoco_sim_node.py puts it on the graph.
"""
import ctypes.util
import os

# MuJoCo picks its GL backend when it is first imported, so this runs before any
# module of the package imports mujoco. Headless: EGL when the library is there,
# OSMesa (software) otherwise. An explicit MUJOCO_GL wins; a process that imported
# mujoco before vla_ros.sim must set MUJOCO_GL itself.
if "MUJOCO_GL" not in os.environ:
    os.environ["MUJOCO_GL"] = "egl" if ctypes.util.find_library("EGL") else "osmesa"
