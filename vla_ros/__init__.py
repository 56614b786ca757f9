"""vla_ros: tell a 7-DoF arm what to do by text or voice, safely."""

# The generated interfaces (vla_ros.msg, vla_ros.srv) are installed by CMake into
# the ROS prefix (the venv's site-packages on the pip path), which can be a
# different directory from this source package in an editable install.
# extend_path lets both halves form one package.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
__version__ = "0.1.0"
