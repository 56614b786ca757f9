"""Shape camera frames into the policy's square input. No ROS imports.

The node and anything that builds training data from frames (recordings, the
simulator's datasets) call the same functions, so the policy sees identical
framing at training and at run time.

Modes:
- `crop` (default): the largest centred square, then resized: no distortion, the
  edges of a wide image are lost.
- `stretch`: the whole image resized to a square: nothing lost, aspect distorted.
- `pad`: the whole image scaled to fit, centred on a black (depth: NaN) border.
"""
from __future__ import annotations

import cv2
import numpy as np

RESIZE_MODES: tuple[str, ...] = ("crop", "stretch", "pad")


def policy_frame(rgb: np.ndarray, size: int, mode: str = "crop") -> np.ndarray:
    """An (H, W, 3) uint8 RGB frame as a C-contiguous (size, size, 3) uint8 RGB frame."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB frame, got shape {rgb.shape}")
    # Area averaging when shrinking avoids aliasing; bilinear when enlarging.
    shrinking = min(rgb.shape[:2]) >= size
    return _fit(rgb, size, mode, cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR, fill=0)


def policy_depth(depth_m: np.ndarray, size: int, mode: str = "crop") -> np.ndarray:
    """An (H, W) float32 depth map in metres framed exactly like policy_frame, as (size, size) float32.

    Nearest-neighbour sampling: averaging would invent depths between an object
    and the background (and spread NaN holes).
    """
    if depth_m.ndim != 2:
        raise ValueError(f"expected an (H, W) depth map, got shape {depth_m.shape}")
    return _fit(depth_m.astype(np.float32, copy=False), size, mode, cv2.INTER_NEAREST, fill=np.nan)


def _fit(image: np.ndarray, size: int, mode: str, interpolation: int, fill: float) -> np.ndarray:
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode must be one of {', '.join(RESIZE_MODES)}; got {mode!r}")
    if size < 1:
        raise ValueError(f"output size must be >= 1, got {size}")
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"cannot resize an empty image ({width}x{height})")
    if mode == "stretch":
        return _resize(image, size, size, interpolation)
    if mode == "crop":
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        return _resize(image[top : top + side, left : left + side], size, size, interpolation)
    scale = size / max(height, width)
    fit_height, fit_width = max(1, round(height * scale)), max(1, round(width * scale))
    canvas = np.full((size, size) + image.shape[2:], fill, dtype=image.dtype)
    top, left = (size - fit_height) // 2, (size - fit_width) // 2
    canvas[top : top + fit_height, left : left + fit_width] = _resize(image, fit_width, fit_height, interpolation)
    return canvas


def _resize(image: np.ndarray, width: int, height: int, interpolation: int) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return np.ascontiguousarray(image)
    return cv2.resize(image, (width, height), interpolation=interpolation)
