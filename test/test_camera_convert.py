"""The image converter against hand-built buffers with known pixel values, for every encoding.

Buffers are written byte by byte here (not by the converter's own encoder), so a
wrong channel order, byte order or stride shows up as a wrong pixel.
"""
import struct

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from hypothesis import given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import CompressedImage, Image

from vla_ros.camera import convert, ros_image
from vla_ros.camera.convert import ImageDecodeError, RawImage

# 2 rows x 3 columns of RGB values.
RGB = np.array(
    [[(255, 0, 0), (0, 255, 0), (0, 0, 255)], [(10, 20, 30), (200, 100, 50), (1, 2, 3)]], dtype=np.uint8
)
HEIGHT, WIDTH = RGB.shape[:2]
ALPHA = 7


def _raw(encoding, rows: list[bytes], big_endian=False, pad=b""):
    """A RawImage from per-row byte strings, each followed by `pad`."""
    data = b"".join(row + pad for row in rows)
    return RawImage(encoding, len(rows), WIDTH, len(rows[0]) + len(pad), big_endian, data)


def _rows(pixel_bytes) -> list[bytes]:
    return [b"".join(pixel_bytes(tuple(int(v) for v in RGB[r, c])) for c in range(WIDTH)) for r in range(HEIGHT)]


COLOUR_8BIT = {
    "rgb8": lambda p: bytes(p),
    "bgr8": lambda p: bytes(p[::-1]),
    "rgba8": lambda p: bytes(p + (ALPHA,)),
    "bgra8": lambda p: bytes(p[::-1] + (ALPHA,)),
}


def _wide(v: int) -> int:
    """A 16-bit value that scales back to exactly v, with different high and low bytes (so byte order matters)."""
    return v * 256 + 127


COLOUR_16BIT = {
    "rgb16": lambda p, o: struct.pack(f"{o}3H", *map(_wide, p)),
    "bgr16": lambda p, o: struct.pack(f"{o}3H", *map(_wide, p[::-1])),
    "rgba16": lambda p, o: struct.pack(f"{o}4H", *map(_wide, p + (ALPHA,))),
    "bgra16": lambda p, o: struct.pack(f"{o}4H", *map(_wide, p[::-1] + (ALPHA,))),
}


@pytest.mark.parametrize("encoding", COLOUR_8BIT)
@pytest.mark.parametrize("pad", [b"", b"\xee" * 5])
def test_8bit_colour_encodings_decode_to_known_rgb(encoding, pad):
    rgb = convert.to_rgb8(_raw(encoding, _rows(COLOUR_8BIT[encoding]), pad=pad))
    assert rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb, RGB)


@pytest.mark.parametrize("encoding", COLOUR_16BIT)
@pytest.mark.parametrize("big_endian", [False, True])
def test_16bit_colour_encodings_honour_the_big_endian_flag(encoding, big_endian):
    order = ">" if big_endian else "<"
    rows = _rows(lambda p: COLOUR_16BIT[encoding](p, order))
    np.testing.assert_array_equal(convert.to_rgb8(_raw(encoding, rows, big_endian, pad=b"\x01\x02")), RGB)
    # Read with the wrong byte order, the same bytes give different colours.
    assert not np.array_equal(convert.to_rgb8(_raw(encoding, rows, not big_endian)), RGB)


def test_16bit_scaling_rounds_like_cv_bridge():
    # 0x8000 * 255 / 65535 = 127.50 -> 128; 0x1234 -> 18.13 -> 18; 65535 -> 255.
    raw = RawImage("mono16", 1, 3, 6, True, bytes([0x80, 0x00, 0x12, 0x34, 0xFF, 0xFF]))
    np.testing.assert_array_equal(convert.to_rgb8(raw)[0, :, 0], [128, 18, 255])


def test_mono8_is_replicated_into_three_channels():
    raw = _raw("mono8", [bytes([0, 100, 255]), bytes([1, 2, 3])], pad=b"\x09")
    rgb = convert.to_rgb8(raw)
    np.testing.assert_array_equal(rgb[..., 0], [[0, 100, 255], [1, 2, 3]])
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()


@pytest.mark.parametrize("big_endian", [False, True])
def test_mono16_scales_to_8_bits(big_endian):
    order = ">" if big_endian else "<"
    rows = [struct.pack(f"{order}3H", 0, 257 * 100, 65535), struct.pack(f"{order}3H", 257, 514, 771)]
    np.testing.assert_array_equal(
        convert.to_rgb8(_raw("mono16", rows, big_endian))[..., 2], [[0, 100, 255], [1, 2, 3]]
    )


@pytest.mark.parametrize("big_endian", [False, True])
def test_16uc1_depth_is_millimetres_and_zero_is_unknown(big_endian):
    order = ">" if big_endian else "<"
    rows = [struct.pack(f"{order}3H", 1500, 0, 65535), struct.pack(f"{order}3H", 1, 250, 1000)]
    depth = convert.to_depth_m(_raw("16UC1", rows, big_endian, pad=b"\x00\x07"))
    assert depth.dtype == np.float32 and depth.shape == (HEIGHT, WIDTH)
    np.testing.assert_allclose(depth, [[1.5, np.nan, 65.535], [0.001, 0.25, 1.0]], rtol=1e-6)


@pytest.mark.parametrize("big_endian", [False, True])
def test_32fc1_depth_is_metres_and_invalid_values_are_nan(big_endian):
    order = ">" if big_endian else "<"
    rows = [struct.pack(f"{order}3f", 2.25, float("nan"), -1.0), struct.pack(f"{order}3f", 0.0, float("inf"), 0.5)]
    depth = convert.to_depth_m(_raw("32FC1", rows, big_endian))
    np.testing.assert_array_equal(depth, np.array([[2.25, np.nan, np.nan], [np.nan, np.nan, 0.5]], np.float32))


@pytest.mark.parametrize("encoding", convert.DEPTH_ENCODINGS)
def test_depth_is_not_a_colour_image(encoding):
    raw = convert.encode_pixels(np.ones((2, 2), np.uint16 if encoding == "16UC1" else np.float32), encoding)
    with pytest.raises(ImageDecodeError, match="depth encoding"):
        convert.to_rgb8(raw)
    with pytest.raises(ImageDecodeError, match="not a depth encoding"):
        convert.to_depth_m(convert.from_rgb8(RGB))


def _mosaic_by_hand(rgb: np.ndarray, cell: str) -> np.ndarray:
    """The Bayer mosaic of `rgb` for a 2x2 cell such as 'rggb' (row 0: r g, row 1: g b)."""
    mosaic = np.empty(rgb.shape[:2], np.uint8)
    for y in range(rgb.shape[0]):
        for x in range(rgb.shape[1]):
            mosaic[y, x] = rgb[y, x, "rgb".index(cell[(y % 2) * 2 + x % 2])]
    return mosaic


BAYER = ["bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8"]


@pytest.mark.parametrize("encoding", BAYER)
def test_bayer_uniform_colour_demosaics_to_that_colour(encoding):
    uniform = np.full((6, 8, 3), (200, 100, 50), np.uint8)
    mosaic = _mosaic_by_hand(uniform, encoding[6:10])
    raw = RawImage(encoding, 6, 8, 8, False, mosaic.tobytes())
    np.testing.assert_array_equal(convert.to_rgb8(raw), uniform)


@pytest.mark.parametrize("encoding", BAYER)
def test_bayer_keeps_each_measured_channel(encoding):
    rgb = np.random.default_rng(3).integers(0, 256, (8, 10, 3), dtype=np.uint8)
    cell = encoding[6:10]
    mosaic = _mosaic_by_hand(rgb, cell)
    padded = np.pad(mosaic, ((0, 0), (0, 2)), constant_values=77)  # step 12 for width 10
    out = convert.to_rgb8(RawImage(encoding, 8, 10, 12, False, padded.tobytes()))
    # Away from the 1-pixel border, the channel a photosite measured comes back unchanged.
    for y in range(1, 7):
        for x in range(1, 9):
            channel = "rgb".index(cell[(y % 2) * 2 + x % 2])
            assert out[y, x, channel] == rgb[y, x, channel], (y, x)
    # The encoder writes the same mosaic.
    np.testing.assert_array_equal(convert.pixel_array(convert.from_rgb8(rgb, encoding)), mosaic)


def _bt601(y, u, v):
    """Limited-range BT.601 YUV -> RGB, the convention of UYVY/YUYV cameras."""
    c, d, e = 1.164 * (y - 16), u - 128, v - 128
    return np.clip(np.rint([c + 1.596 * e, c - 0.392 * d - 0.813 * e, c + 2.017 * d]), 0, 255)


@pytest.mark.parametrize("encoding", ["yuv422", "yuv422_yuy2"])
def test_yuv422_decodes_with_bt601(encoding):
    pairs = [(81, 90, 240, 81), (126, 128, 128, 200), (145, 54, 34, 41)]  # (Y0, U, V, Y1): red, grey/white, green-ish
    row = b""
    for y0, u, v, y1 in pairs:
        row += bytes([u, y0, v, y1]) if encoding == "yuv422" else bytes([y0, u, y1, v])
    raw = RawImage(encoding, 1, 6, len(row), False, row)
    rgb = convert.to_rgb8(raw)
    for i, (y0, u, v, y1) in enumerate(pairs):
        np.testing.assert_allclose(rgb[0, 2 * i], _bt601(y0, u, v), atol=2)
        np.testing.assert_allclose(rgb[0, 2 * i + 1], _bt601(y1, u, v), atol=2)


def test_yuv422_needs_an_even_width():
    with pytest.raises(ImageDecodeError, match="even width"):
        convert.to_rgb8(RawImage("yuv422", 1, 3, 6, False, bytes(6)))


@pytest.mark.parametrize(
    "raw, message",
    [
        (RawImage("rgb9", 2, 2, 6, False, bytes(12)), "unsupported image encoding 'rgb9'.*rgb8"),
        (RawImage("", 2, 2, 6, False, bytes(12)), "unsupported image encoding ''"),
        (RawImage("rgb8", 0, 2, 6, False, b""), "empty rgb8 image"),
        (RawImage("mono8", 2, 0, 0, False, b""), "empty mono8 image"),
        (RawImage("rgb8", 2, 2, 5, False, bytes(12)), "step 5 is shorter than one row"),
        (RawImage("rgb8", 2, 2, 6, False, bytes(11)), "needs 12 bytes, got 11"),
        (RawImage("mono16", 2, 2, 6, False, bytes(11)), "needs 12 bytes, got 11"),
        (RawImage("rgb8", 100000, 100000, 300000, False, bytes(10)), "needs 30000000000 bytes, got 10"),
    ],
)
def test_bad_buffers_raise_clear_errors(raw, message):
    with pytest.raises(ImageDecodeError, match=message):
        convert.to_rgb8(raw)
    with pytest.raises(ImageDecodeError):
        convert.validate(raw)


def test_the_big_endian_flag_is_irrelevant_for_8_bit_data():
    rows = _rows(COLOUR_8BIT["bgr8"])
    np.testing.assert_array_equal(convert.to_rgb8(_raw("bgr8", rows, big_endian=True)), RGB)


def test_pixel_array_is_an_owning_copy_without_padding():
    data = bytearray(b"".join(row + b"\xff" for row in _rows(COLOUR_8BIT["rgb8"])))
    pixels = convert.pixel_array(RawImage("rgb8", HEIGHT, WIDTH, WIDTH * 3 + 1, False, data))
    data[:] = bytes(len(data))
    np.testing.assert_array_equal(pixels, RGB)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_from_rgb8_round_trips(encoding):
    raw = convert.from_rgb8(RGB, encoding)
    assert raw.step == WIDTH * (4 if "a" in encoding[:4] else 3)
    np.testing.assert_array_equal(convert.to_rgb8(raw), RGB)


def test_from_rgb8_mono8_is_luminance():
    grey = convert.pixel_array(convert.from_rgb8(RGB, "mono8"))
    np.testing.assert_allclose(grey, RGB @ np.array([0.299, 0.587, 0.114]), atol=1)


def test_from_rgb8_refuses_what_it_cannot_produce():
    with pytest.raises(ValueError, match="cannot produce '32FC1'"):
        convert.from_rgb8(RGB, "32FC1")
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        convert.from_rgb8(RGB.astype(np.float32))


@settings(max_examples=60, deadline=None)
@given(
    encoding=st.sampled_from(["rgb8", "bgra8", "mono8", "mono16", "rgb16", "16UC1", "32FC1", "yuv422"]),
    height=st.integers(1, 5),
    half_width=st.integers(1, 4),
    big_endian=st.booleans(),
    padding=st.integers(0, 7),
    seed=st.integers(0, 2**16),
)
def test_encode_pixels_round_trips_any_layout(encoding, height, half_width, big_endian, padding, seed):
    channels = {"rgb8": 3, "bgra8": 4, "rgb16": 3, "yuv422": 2}.get(encoding, 1)
    dtype = {"mono16": np.uint16, "rgb16": np.uint16, "16UC1": np.uint16, "32FC1": np.float32}.get(encoding, np.uint8)
    shape = (height, 2 * half_width) + ((channels,) if channels > 1 else ())
    rng = np.random.default_rng(seed)
    pixels = (rng.random(shape) * 60000).astype(dtype)
    raw = convert.encode_pixels(pixels, encoding, big_endian=big_endian, row_padding=padding)
    assert raw.step == pixels[0].nbytes + padding and len(raw.data) == raw.step * height
    np.testing.assert_array_equal(convert.pixel_array(raw), pixels)


def test_compressed_png_decodes_exactly_and_jpeg_closely():
    image = np.random.default_rng(5).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    smooth = cv2.resize(image[:3, :4], (32, 24), interpolation=cv2.INTER_LINEAR)
    png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()
    jpeg = cv2.imencode(".jpg", cv2.cvtColor(smooth, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    np.testing.assert_array_equal(convert.decode_compressed_rgb8("png", png), image)
    decoded = convert.decode_compressed_rgb8("rgb8; jpeg compressed bgr8", jpeg)
    assert np.abs(decoded.astype(int) - smooth).mean() < 3


@pytest.mark.parametrize(
    "fmt, data, message",
    [
        ("jpeg", b"", "empty compressed image"),
        ("jpeg", b"not a jpeg at all", "cannot decode compressed image"),
        ("16UC1; compressedDepth png", b"\x00" * 20, "compressed depth"),
    ],
)
def test_bad_compressed_images_raise_clear_errors(fmt, data, message):
    with pytest.raises(ImageDecodeError, match=message):
        convert.decode_compressed_rgb8(fmt, data)


# --- the ROS adapter, on real sensor_msgs messages -------------------------------------------------------


def _image_msg(raw: RawImage) -> Image:
    return ros_image.raw_to_image_msg(raw, Time(sec=12, nanosec=345), "cam")


def test_image_msgs_decode_through_the_adapter():
    msg = _image_msg(_raw("bgr8", _rows(COLOUR_8BIT["bgr8"]), pad=b"\x01\x02"))
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (12, 345, "cam")
    assert msg.step == WIDTH * 3 + 2
    np.testing.assert_array_equal(ros_image.image_to_rgb(msg), RGB)


def test_rgb_to_image_msg_makes_a_plain_rgb8_image():
    msg = ros_image.rgb_to_image_msg(RGB, Time(sec=1, nanosec=2), "camera")
    assert (msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian) == ("rgb8", HEIGHT, WIDTH, WIDTH * 3, 0)
    assert bytes(msg.data) == RGB.tobytes()
    np.testing.assert_array_equal(ros_image.image_to_rgb(msg), RGB)


def test_depth_messages_round_trip_in_metres():
    depth = np.array([[0.5, np.nan], [2.0, 3.25]], np.float32)
    msg = ros_image.depth_to_image_msg(depth, Time(), "depth")
    assert msg.encoding == "32FC1" and msg.step == 8
    np.testing.assert_array_equal(ros_image.image_to_depth_m(msg), depth)


def test_bad_image_msgs_raise_decode_errors():
    msg = Image(encoding="rgb8", height=4, width=4, step=12)
    msg.data = bytes(10)
    with pytest.raises(ImageDecodeError, match="needs 48 bytes"):
        ros_image.image_to_rgb(msg)
    with pytest.raises(ImageDecodeError, match="cannot decode"):
        ros_image.compressed_to_rgb(CompressedImage(format="jpeg", data=b"\x00\x01\x02"))


def test_camera_info_carries_the_image_size():
    info = ros_image.camera_info_msg(640, 480, Time(sec=3), "camera")
    assert (info.width, info.height, info.header.frame_id, info.header.stamp.sec) == (640, 480, "camera", 3)
    assert not any(info.k)  # uncalibrated


def test_cv_bridge_agrees_with_our_converter():
    cv_bridge = pytest.importorskip(
        "cv_bridge", reason="cv_bridge is not installable on the pip path; runs where a ROS 2 distro is sourced"
    )
    bridge = cv_bridge.CvBridge()
    cases = [_raw(enc, _rows(COLOUR_8BIT[enc])) for enc in COLOUR_8BIT]
    cases += [_raw(enc, _rows(lambda p, e=enc: COLOUR_16BIT[e](p, "<"))) for enc in COLOUR_16BIT]
    cases += [convert.from_rgb8(np.random.default_rng(1).integers(0, 256, (8, 10, 3), dtype=np.uint8), enc)
              for enc in BAYER + ["mono8"]]
    for raw in cases:
        msg = _image_msg(raw)
        np.testing.assert_array_equal(bridge.imgmsg_to_cv2(msg, "rgb8"), convert.to_rgb8(raw), err_msg=raw.encoding)
