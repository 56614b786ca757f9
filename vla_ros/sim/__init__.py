"""The simulated arm world (MuJoCo): world.py steps the MJCF model in assets/, tasks.py
defines the task suite and its success checks, expert.py solves tasks from the true state.

No ROS imports in this package; vla_ros/nodes/mujoco_sim_node.py puts it on the graph.
"""
