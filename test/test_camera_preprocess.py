"""Framing camera images into the policy's square input."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_ros.camera.preprocess import RESIZE_MODES, policy_depth, policy_frame

RED, GREEN = (255, 0, 0), (0, 255, 0)


def _wide_frame(height=480, width=640) -> np.ndarray:
    """Green centred square, red side strips: what crop keeps and what it drops are easy to tell apart."""
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = RED
    left = (width - height) // 2
    frame[:, left : left + height] = GREEN
    return frame


def test_crop_keeps_the_centred_square_only():
    out = policy_frame(_wide_frame(), 128, "crop")
    assert out.shape == (128, 128, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    assert (out == GREEN).all()


def test_crop_of_a_tall_image_keeps_the_middle_rows():
    tall = np.transpose(_wide_frame(), (1, 0, 2))  # 640 rows x 480 columns
    assert (policy_frame(tall, 96, "crop") == GREEN).all()


def test_stretch_keeps_everything_and_distorts():
    out = policy_frame(_wide_frame(), 128, "stretch")
    assert (out[:, 0] == RED).all() and (out[:, -1] == RED).all() and (out[:, 64] == GREEN).all()


def test_pad_fits_the_whole_image_on_black():
    white = np.full((100, 200, 3), 255, np.uint8)
    out = policy_frame(white, 128, "pad")
    # 200x100 scaled to 128x64, centred: 32 black rows above and below.
    assert (out[:32] == 0).all() and (out[96:] == 0).all() and (out[32:96] == 255).all()


def test_small_images_are_enlarged():
    tiny = np.zeros((10, 10, 3), np.uint8)
    tiny[:, 5:] = 200
    out = policy_frame(tiny, 128, "crop")
    assert out.shape == (128, 128, 3)
    # Bilinear: the edge blends only between the two source pixels next to it (12.8 output pixels each).
    assert (out[:, :56] == 0).all() and (out[:, 72:] == 200).all() and (np.diff(out[0, :, 0].astype(int)) >= 0).all()


def test_same_size_input_is_returned_unchanged():
    frame = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    np.testing.assert_array_equal(policy_frame(frame, 128), frame)


def test_depth_is_sampled_not_blended_and_padded_with_nan():
    depth = np.full((40, 80), 1.0, np.float32)
    depth[:, 40:] = 3.0
    depth[0, 0] = np.nan
    for mode in RESIZE_MODES:
        out = policy_depth(depth, 32, mode)
        assert out.shape == (32, 32) and out.dtype == np.float32
        assert set(np.unique(out[np.isfinite(out)])) <= {1.0, 3.0}, mode
    padded = policy_depth(depth, 32, "pad")
    assert np.isnan(padded[:8]).all() and np.isnan(padded[24:]).all()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: policy_frame(np.zeros((4, 4, 3), np.uint8), 8, "zoom"), "resize mode must be one of"),
        (lambda: policy_frame(np.zeros((4, 4, 3), np.uint8), 0), "output size must be >= 1"),
        (lambda: policy_frame(np.zeros((4, 4), np.uint8), 8), r"expected an \(H, W, 3\) RGB frame"),
        (lambda: policy_frame(np.zeros((0, 4, 3), np.uint8), 8), "cannot resize an empty image"),
        (lambda: policy_depth(np.zeros((4, 4, 3), np.float32), 8), r"expected an \(H, W\) depth map"),
    ],
)
def test_bad_input_raises_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@settings(max_examples=80, deadline=None)
@given(
    height=st.integers(1, 300),
    width=st.integers(1, 300),
    size=st.integers(1, 160),
    mode=st.sampled_from(RESIZE_MODES),
    value=st.integers(1, 255),
)
def test_any_frame_becomes_the_requested_square(height, width, size, mode, value):
    frame = np.full((height, width, 3), value, np.uint8)
    out = policy_frame(frame, size, mode)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8
    # A uniform image stays uniform inside the picture (pad adds black around it).
    assert set(np.unique(out)) <= ({0, value} if mode == "pad" else {value})
    assert (out == value).any()
