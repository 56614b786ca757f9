"""Raw image buffers <-> numpy arrays, following sensor_msgs/Image's conventions. No ROS imports.

A raw image is what a sensor_msgs/Image carries: an encoding name, height, width,
`step` (bytes per row, which may include padding), the big-endian flag and the
bytes. `to_rgb8` turns any supported colour/mono/Bayer/YUV encoding into an
(H, W, 3) uint8 RGB array; `to_depth_m` turns a depth image (16UC1 in
millimetres, 32FC1 in metres, as REP 118 defines them) into float32 metres.
Both raise ImageDecodeError with a message a user can act on.

Conversions to 8 bits follow cv_bridge so that results agree whichever is used:
16-bit channels scale by 255/65535, depth encodings are not colour images.
"""
from __future__ import annotations

import array
from dataclasses import dataclass

import cv2
import numpy as np

# What a message's `data` may be: rclpy gives array.array('B'), tests and files give bytes.
BytesLike = bytes | bytearray | memoryview | array.array


class ImageDecodeError(ValueError):
    """An image buffer cannot be decoded; the message says why."""


@dataclass(frozen=True)
class RawImage:
    """The pixel-carrying fields of a sensor_msgs/Image."""

    encoding: str
    height: int
    width: int
    step: int
    is_bigendian: bool
    data: BytesLike


@dataclass(frozen=True)
class _Layout:
    channels: int
    dtype: np.dtype
    kind: str  # colour | mono | depth | bayer | yuv
    # OpenCV conversion to RGB (same bit depth); None when the pixels already are RGB or depth.
    to_rgb_code: int | None = None


_U8, _U16, _F32 = np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)

# OpenCV names Bayer patterns after the second row's pixels; ROS after the first row's.
_ENCODINGS: dict[str, _Layout] = {
    "rgb8": _Layout(3, _U8, "colour"),
    "bgr8": _Layout(3, _U8, "colour", cv2.COLOR_BGR2RGB),
    "rgba8": _Layout(4, _U8, "colour", cv2.COLOR_RGBA2RGB),
    "bgra8": _Layout(4, _U8, "colour", cv2.COLOR_BGRA2RGB),
    "rgb16": _Layout(3, _U16, "colour"),
    "bgr16": _Layout(3, _U16, "colour", cv2.COLOR_BGR2RGB),
    "rgba16": _Layout(4, _U16, "colour", cv2.COLOR_RGBA2RGB),
    "bgra16": _Layout(4, _U16, "colour", cv2.COLOR_BGRA2RGB),
    "mono8": _Layout(1, _U8, "mono", cv2.COLOR_GRAY2RGB),
    "mono16": _Layout(1, _U16, "mono", cv2.COLOR_GRAY2RGB),
    "16UC1": _Layout(1, _U16, "depth"),
    "32FC1": _Layout(1, _F32, "depth"),
    "bayer_rggb8": _Layout(1, _U8, "bayer", cv2.COLOR_BayerBG2RGB),
    "bayer_bggr8": _Layout(1, _U8, "bayer", cv2.COLOR_BayerRG2RGB),
    "bayer_gbrg8": _Layout(1, _U8, "bayer", cv2.COLOR_BayerGR2RGB),
    "bayer_grbg8": _Layout(1, _U8, "bayer", cv2.COLOR_BayerGB2RGB),
    # 4:2:2, two bytes per pixel: U Y0 V Y1 (yuv422, UYVY) and Y0 U Y1 V (yuv422_yuy2, YUYV).
    "yuv422": _Layout(2, _U8, "yuv", cv2.COLOR_YUV2RGB_UYVY),
    "yuv422_yuy2": _Layout(2, _U8, "yuv", cv2.COLOR_YUV2RGB_YUY2),
}

SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_ENCODINGS)
DEPTH_ENCODINGS: tuple[str, ...] = tuple(name for name, layout in _ENCODINGS.items() if layout.kind == "depth")
# Each Bayer pattern's top-left 2x2 cell, row by row, e.g. "rggb".
BAYER_CELLS: dict[str, str] = {name: name[6:10] for name, layout in _ENCODINGS.items() if layout.kind == "bayer"}
# RGB -> the encodings from_rgb8 produces besides rgb8 and the Bayer patterns.
_FROM_RGB_CODES = {
    "bgr8": cv2.COLOR_RGB2BGR,
    "rgba8": cv2.COLOR_RGB2RGBA,
    "bgra8": cv2.COLOR_RGB2BGRA,
    "mono8": cv2.COLOR_RGB2GRAY,
}


def _layout(encoding: str) -> _Layout:
    try:
        return _ENCODINGS[encoding]
    except KeyError:
        raise ImageDecodeError(
            f"unsupported image encoding {encoding!r} (supported: {', '.join(SUPPORTED_ENCODINGS)})"
        ) from None


def _check_geometry(raw: RawImage, layout: _Layout) -> memoryview:
    """The message bytes, after checking that they hold height x width pixels of `layout`."""
    height, width, step = int(raw.height), int(raw.width), int(raw.step)
    if height == 0 or width == 0:
        raise ImageDecodeError(f"empty {raw.encoding} image ({width}x{height})")
    if layout.kind == "yuv" and width % 2:
        raise ImageDecodeError(f"{raw.encoding} needs an even width (two pixels share chroma), got {width}")
    row_bytes = width * layout.channels * layout.dtype.itemsize
    if step < row_bytes:
        raise ImageDecodeError(
            f"step {step} is shorter than one row of {width} {raw.encoding} pixels ({row_bytes} bytes)"
        )
    buffer = memoryview(raw.data).cast("B")
    if len(buffer) < step * height:
        raise ImageDecodeError(
            f"{raw.encoding} image {width}x{height} with step {step} needs {step * height} bytes, got {len(buffer)}"
        )
    return buffer


def _kind_layout(raw: RawImage, depth: bool) -> _Layout:
    """The layout of `raw`'s encoding, refusing a depth image where colour is expected and vice versa."""
    layout = _layout(raw.encoding)
    if depth and layout.kind != "depth":
        raise ImageDecodeError(
            f"{raw.encoding} is not a depth encoding (depth images are {' or '.join(DEPTH_ENCODINGS)})"
        )
    if not depth and layout.kind == "depth":
        raise ImageDecodeError(f"{raw.encoding} is a depth encoding, not a colour image (use the depth input)")
    return layout


def validate(raw: RawImage, depth: bool = False) -> None:
    """Cheap checks (no pixel is read): what to_rgb8 (or to_depth_m, with depth=True) would refuse
    for its encoding, emptiness or size, raised as the same ImageDecodeError."""
    _check_geometry(raw, _kind_layout(raw, depth))


def _pixel_view(raw: RawImage, layout: _Layout) -> np.ndarray:
    """The pixels as (H, W) or (H, W, C) over `raw.data`: no copy unless the byte order must change.

    Rows keep their padding as a stride; OpenCV and numpy both read such views.
    """
    buffer = _check_geometry(raw, layout)
    pixel_bytes = layout.channels * layout.dtype.itemsize
    stored = layout.dtype.newbyteorder(">" if raw.is_bigendian else "<")
    view = np.ndarray(
        shape=(int(raw.height), int(raw.width), layout.channels),
        dtype=stored,
        buffer=buffer,
        strides=(int(raw.step), pixel_bytes, layout.dtype.itemsize),
    )
    if not stored.isnative:
        view = view.astype(layout.dtype)
    return view[..., 0] if layout.channels == 1 else view


def _to_8bit(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == _U8:
        return pixels
    # Round-to-nearest v * 255 / 65535, as cv_bridge (OpenCV convertTo) does.
    return ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def pixel_array(raw: RawImage) -> np.ndarray:
    """The stored pixels, padding removed, native byte order: (H, W) for one channel, else (H, W, C).

    An owning copy, independent of the message buffer.
    """
    return np.array(_pixel_view(raw, _layout(raw.encoding)))


def to_rgb8(raw: RawImage) -> np.ndarray:
    """Decode any colour, mono, Bayer or YUV encoding to a C-contiguous (H, W, 3) uint8 RGB array."""
    layout = _kind_layout(raw, depth=False)
    view = _pixel_view(raw, layout)
    rgb = view if layout.to_rgb_code is None else cv2.cvtColor(view, layout.to_rgb_code)
    return np.ascontiguousarray(_to_8bit(rgb))


def to_depth_m(raw: RawImage) -> np.ndarray:
    """Decode a depth image to (H, W) float32 metres; unknown depth (0, NaN, inf, negative) becomes NaN."""
    layout = _kind_layout(raw, depth=True)
    pixels = _pixel_view(raw, layout)
    if layout.dtype == _U16:  # millimetres
        metres = pixels.astype(np.float32) / np.float32(1000.0)
    else:
        metres = pixels.astype(np.float32, copy=True)
    metres[~np.isfinite(metres) | ~(metres > 0)] = np.nan
    return metres


def decode_compressed_rgb8(fmt: str, data: BytesLike) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage payload (JPEG, PNG, ...) to (H, W, 3) uint8 RGB."""
    if "compressedDepth" in fmt:
        raise ImageDecodeError(f"compressed depth ({fmt!r}) is not a colour image; subscribe the raw depth topic")
    encoded = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    if encoded.size == 0:
        raise ImageDecodeError(f"empty compressed image (format {fmt!r})")
    rgb = cv2.imdecode(encoded, cv2.IMREAD_COLOR_RGB)
    if rgb is None:
        raise ImageDecodeError(f"cannot decode compressed image (format {fmt!r}, {encoded.size} bytes)")
    return rgb


def encode_pixels(pixels: np.ndarray, encoding: str, *, big_endian: bool = False, row_padding: int = 0) -> RawImage:
    """Pack pixels already in `encoding`'s layout ((H, W) or (H, W, C) of its dtype) into a RawImage.

    `big_endian` and `row_padding` (extra bytes per row) produce the less common
    layouts drivers send, e.g. for tests.
    """
    layout = _layout(encoding)
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[..., np.newaxis]
    if pixels.ndim != 3 or pixels.shape[2] != layout.channels or pixels.dtype != layout.dtype:
        raise ValueError(
            f"{encoding} needs (H, W{'' if layout.channels == 1 else f', {layout.channels}'}) {layout.dtype} pixels, "
            f"got {pixels.shape} {pixels.dtype}"
        )
    height, width = pixels.shape[:2]
    stored = pixels.astype(layout.dtype.newbyteorder(">" if big_endian else "<"), copy=False)
    rows = np.ascontiguousarray(stored).view(np.uint8).reshape(height, -1)
    if row_padding:
        rows = np.pad(rows, ((0, 0), (0, row_padding)))
    return RawImage(encoding, height, width, rows.shape[1], big_endian, rows.tobytes())


def from_rgb8(rgb: np.ndarray, encoding: str = "rgb8") -> RawImage:
    """Encode an (H, W, 3) uint8 RGB array as `encoding`: rgb8, bgr8, rgba8, bgra8, mono8 or a Bayer mosaic."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != _U8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {rgb.shape} {rgb.dtype}")
    if encoding == "rgb8":
        pixels = rgb
    elif encoding in _FROM_RGB_CODES:
        pixels = cv2.cvtColor(np.ascontiguousarray(rgb), _FROM_RGB_CODES[encoding])
    elif encoding in BAYER_CELLS:
        pixels = np.empty(rgb.shape[:2], np.uint8)
        for index, colour in enumerate(BAYER_CELLS[encoding]):
            row, col = divmod(index, 2)
            pixels[row::2, col::2] = rgb[row::2, col::2, "rgb".index(colour)]
    else:
        raise ValueError(f"from_rgb8 cannot produce {encoding!r}; use encode_pixels with pixels in that layout")
    return encode_pixels(pixels, encoding)
