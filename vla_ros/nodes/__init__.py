"""One ROS 2 node per module, each named *_node.py with a main(); setup.py and CMakeLists.txt
turn every such module into an executable of the same name (for `ros2 run vla_ros <name>`)."""
