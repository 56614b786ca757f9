"""Frame sources: video files and image folders written by OpenCV in the test, and missing devices."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from vla_ros.camera.sources import DEFAULT_IMAGES_RATE, DeviceSource, ImageFolderSource, SourceError, VideoFileSource

# Frame i of the test video is uniformly COLOURS[i] (RGB): easy to recognise after JPEG compression.
COLOURS = [(250, 10, 10), (10, 250, 10), (10, 10, 250), (250, 250, 10), (10, 250, 250)]


def write_video(path: Path, fps: float = 20.0, size=(64, 48)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for colour in COLOURS:
        writer.write(np.full((size[1], size[0], 3), colour[::-1], np.uint8))  # VideoWriter takes BGR
    writer.release()
    return path


def _colour_index(rgb: np.ndarray) -> int:
    mean = rgb.reshape(-1, 3).mean(axis=0)
    distances = [np.abs(mean - colour).sum() for colour in COLOURS]
    assert min(distances) < 30, f"frame colour {mean} is none of the test colours"
    return int(np.argmin(distances))


def _play(source, frames: int) -> list[int]:
    played = []
    for _ in range(frames):
        if not source.grab():
            break
        played.append(_colour_index(source.retrieve()))
    return played


def test_video_plays_in_order_at_its_own_rate_and_loops(tmp_path):
    source = VideoFileSource(str(write_video(tmp_path / "clip.avi", fps=20.0)), loop=True)
    try:
        assert source.native_fps == pytest.approx(20.0) and source.period == pytest.approx(0.05)
        frame = (source.grab(), source.retrieve())[1]
        assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
        assert _play(source, 11) == [1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
        assert not source.finished
    finally:
        source.close()


def test_video_without_loop_finishes(tmp_path):
    source = VideoFileSource(str(write_video(tmp_path / "clip.avi")), loop=False, rate=50.0)
    assert source.period == pytest.approx(0.02)
    assert _play(source, 10) == [0, 1, 2, 3, 4]
    assert source.finished and not source.grab()
    source.close()


def test_missing_or_unreadable_video_fails_at_open(tmp_path):
    with pytest.raises(SourceError, match="video file not found"):
        VideoFileSource(str(tmp_path / "nope.mp4"))
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(SourceError, match="cannot read frames from video file"):
        VideoFileSource(str(garbage))


def _write_images(folder: Path, names) -> None:
    folder.mkdir(exist_ok=True)
    for index, name in enumerate(names):
        bgr = np.full((30, 40, 3), COLOURS[index][::-1], np.uint8)
        assert cv2.imwrite(str(folder / name), bgr)


def test_image_folder_plays_in_name_order_and_loops(tmp_path):
    _write_images(tmp_path / "imgs", ["a.png", "b.jpg", "c.bmp"])
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    source = ImageFolderSource(str(tmp_path / "imgs"), loop=True, rate=0.0)
    assert source.period == pytest.approx(1 / DEFAULT_IMAGES_RATE)
    assert [p.name for p in source.paths] == ["a.png", "b.jpg", "c.bmp"]
    assert _play(source, 7) == [0, 1, 2, 0, 1, 2, 0]


def test_image_folder_skips_unreadable_files_with_an_error(tmp_path):
    _write_images(tmp_path / "imgs", ["a.png", "b.png"])
    (tmp_path / "imgs" / "a2.png").write_bytes(b"\x89PNG truncated")
    source = ImageFolderSource(str(tmp_path / "imgs"), loop=False, rate=5.0)
    assert source.period == pytest.approx(0.2)
    assert source.grab() and _colour_index(source.retrieve()) == 0
    assert source.grab()
    with pytest.raises(SourceError, match="cannot read image file .*a2.png"):
        source.retrieve()
    assert source.grab() and _colour_index(source.retrieve()) == 1
    assert not source.grab() and source.finished


def test_bad_image_folders_fail_at_open(tmp_path):
    with pytest.raises(SourceError, match="image folder not found"):
        ImageFolderSource(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        ImageFolderSource(str(tmp_path / "empty"))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.png").write_bytes(b"garbage")
    with pytest.raises(SourceError, match="none of the 1 image files"):
        ImageFolderSource(str(tmp_path / "junk"))


def test_missing_device_fails_at_open():
    with pytest.raises(SourceError, match="'/dev/video_vla_missing' does not exist"):
        DeviceSource("/dev/video_vla_missing")


def test_device_index_without_a_camera_fails_at_open():
    if any(Path("/dev").glob("video*")):
        pytest.skip("this machine has a camera device")
    with pytest.raises(SourceError, match="cannot read frames from camera device '7'"):
        DeviceSource("7")
