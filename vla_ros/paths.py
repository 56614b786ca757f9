"""Where the package's data files are, whether installed by colcon or used from a source checkout."""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_SOURCE_ROOT = PACKAGE_DIR.parent


def share_dir() -> Path:
    """The package's share directory (config/, launch/, urdf/).

    A colcon install has them under share/vla_ros; the pip path (editable install
    of a checkout) uses the checkout itself.
    """
    if (_SOURCE_ROOT / "package.xml").is_file() and (_SOURCE_ROOT / "config").is_dir():
        return _SOURCE_ROOT
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("vla_ros"))
    except (ImportError, LookupError) as err:
        raise FileNotFoundError(
            "cannot find vla_ros's share directory: not a source checkout and not found in the ament index"
        ) from err


def config_file(name: str) -> Path:
    """A file under config/, e.g. config_file('safety_filter.yaml')."""
    path = share_dir() / "config" / name
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    return path
