"""Frame sources the camera node captures from itself: a V4L2 device, a video file, a folder of images.

No ROS imports. Every source follows OpenCV's grab/retrieve split: `grab()`
takes the next frame (the caller stamps the capture time right after it),
`retrieve()` decodes it to RGB. Opening a source that cannot deliver raises
SourceError at once, so a wrong path fails at start-up with a clear message.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# Used when a video file does not say its frame rate.
FALLBACK_VIDEO_FPS = 30.0
DEFAULT_IMAGES_RATE = 10.0


class SourceError(RuntimeError):
    """A source cannot be opened or one of its frames cannot be read; the message says which and why."""


class FrameSource(ABC):
    """A camera-like source of RGB frames."""

    #: Seconds between frames the caller should pace; 0 when grab() itself waits for the hardware.
    period: float = 0.0
    #: True once a non-looping file source has delivered its last frame.
    finished: bool = False

    def __init__(self, description: str):
        self.description = description

    @abstractmethod
    def grab(self) -> bool:
        """Take the next frame; False when none is available now (see `finished`)."""

    @abstractmethod
    def retrieve(self) -> np.ndarray:
        """The grabbed frame as (H, W, 3) uint8 RGB; raises SourceError if it cannot be decoded."""

    @abstractmethod
    def close(self) -> None:
        """Release the device or file."""


def _bgr_to_rgb(bgr: np.ndarray) -> np.ndarray:
    if bgr.ndim == 2:
        return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB if bgr.shape[2] == 4 else cv2.COLOR_BGR2RGB)


class _CaptureSource(FrameSource):
    """A source read through cv2.VideoCapture (devices and video files)."""

    def __init__(self, description: str):
        super().__init__(description)
        self._capture: cv2.VideoCapture | None = None

    @abstractmethod
    def _open_capture(self) -> cv2.VideoCapture:
        """A new cv2.VideoCapture on the device or file."""

    def _open_checked(self) -> None:
        """Open and read one frame, so that a source that opens but delivers nothing fails now."""
        self._capture = self._open_capture()
        if not self._capture.isOpened() or not self._capture.grab():
            self.close()
            raise SourceError(f"cannot read frames from {self.description}")

    def retrieve(self) -> np.ndarray:
        ok, bgr = self._capture.retrieve() if self._capture is not None else (False, None)
        if not ok or bgr is None or bgr.size == 0:
            raise SourceError(f"cannot decode a frame from {self.description}")
        return _bgr_to_rgb(bgr)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class DeviceSource(_CaptureSource):
    """A V4L2 camera (`/dev/videoN` or its index N), paced by the device itself.

    A device that stops delivering (unplugged) is reopened at most once a second.
    """

    REOPEN_INTERVAL = 1.0

    def __init__(self, device: str, width: int = 0, height: int = 0, fps: float = 0.0):
        super().__init__(f"camera device {device!r}")
        self._device = device
        self._size = (width, height)
        self._fps = fps
        if not device.isdigit() and not Path(device).exists():
            raise SourceError(f"camera device {device!r} does not exist (is the camera plugged in?)")
        self._open_checked()
        self._first_frame_pending = True
        self._next_reopen = 0.0

    def _open_capture(self) -> cv2.VideoCapture:
        target = int(self._device) if self._device.isdigit() else self._device
        capture = cv2.VideoCapture(target, cv2.CAP_V4L2)
        width, height = self._size
        if width > 0 and height > 0:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        if self._fps > 0:
            capture.set(cv2.CAP_PROP_FPS, self._fps)
        return capture

    def grab(self) -> bool:
        if self._first_frame_pending:  # grabbed while opening
            self._first_frame_pending = False
            return True
        if self._capture is not None and self._capture.grab():
            return True
        now = time.monotonic()
        if now >= self._next_reopen:
            self._next_reopen = now + self.REOPEN_INTERVAL
            self.close()
            self._capture = self._open_capture()
        return False


class VideoFileSource(_CaptureSource):
    """A video file played at `rate` frames per second (0: its own rate), optionally looping."""

    def __init__(self, path: str, loop: bool = True, rate: float = 0.0):
        super().__init__(f"video file {path!r}")
        self._path = Path(path)
        self._loop = loop
        if not self._path.is_file():
            raise SourceError(f"video file not found: {path!r}")
        self._open_checked()
        self._first_frame_pending = True
        fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.native_fps = fps if np.isfinite(fps) and fps > 0 else FALLBACK_VIDEO_FPS
        self.period = 1.0 / (rate if rate > 0 else self.native_fps)

    def _open_capture(self) -> cv2.VideoCapture:
        return cv2.VideoCapture(str(self._path))

    def grab(self) -> bool:
        if self.finished:
            return False
        if self._first_frame_pending:
            self._first_frame_pending = False
            return True
        if self._capture is not None and self._capture.grab():
            return True
        if not self._loop:
            self.finished = True
            return False
        # Reopening rewinds reliably for every container; seeking does not.
        self.close()
        self._capture = self._open_capture()
        return self._capture.grab()


class ImageFolderSource(FrameSource):
    """The images of a folder in name order, at `rate` frames per second, optionally looping."""

    def __init__(self, folder: str, loop: bool = True, rate: float = DEFAULT_IMAGES_RATE):
        super().__init__(f"image folder {folder!r}")
        root = Path(folder)
        if not root.is_dir():
            raise SourceError(f"image folder not found: {folder!r}")
        self.paths = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.paths:
            raise SourceError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {folder!r}")
        self._loop = loop
        self.period = 1.0 / (rate if rate > 0 else DEFAULT_IMAGES_RATE)
        self._index = -1
        if not any(cv2.haveImageReader(str(p)) for p in self.paths):
            raise SourceError(f"none of the {len(self.paths)} image files in {folder!r} is a readable image")

    def grab(self) -> bool:
        if self.finished:
            return False
        if self._index + 1 >= len(self.paths) and not self._loop:
            self.finished = True
            return False
        self._index = (self._index + 1) % len(self.paths)
        return True

    def retrieve(self) -> np.ndarray:
        path = self.paths[self._index]
        rgb = cv2.imread(str(path), cv2.IMREAD_COLOR_RGB)
        if rgb is None:
            raise SourceError(f"cannot read image file {str(path)!r}")
        return rgb

    def close(self) -> None:
        pass
