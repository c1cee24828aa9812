"""sensor_msgs/Image <-> numpy, with the semantics of ROS 2 ``cv_bridge``.

``cv_bridge`` is used when importable; it is not on PyPI (the PyPI ``cv-bridge`` is a ROS 1
repackage that maps 16UC1 to 8-bit: wrong for depth), so this module carries a converter with
the same contract for the encodings the node handles:

* ``imgmsg_to_numpy(msg)``: dtype and channels from the encoding, byte order from
  ``is_bigendian``, rows of ``step`` bytes cropped to ``width`` (row padding honoured), one
  channel -> ``[H, W]``, a C-contiguous copy that does not alias the message buffer;
* ``numpy_to_imgmsg(array, encoding)``: ``step = len(data) // height``, ``is_bigendian`` from
  the dtype, an encoding that does not fit the array raises ``ImageConversionError``.

Depth follows REP 118: 32FC1 is metres, 16UC1 is millimetres with 0 = invalid.
The message class is only needed to build messages, so decoding is tested without ROS.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from smolrgpt_core import depth as depth_codec


class ImageConversionError(TypeError):
    """An image message or array that does not fit its encoding (cv_bridge's CvBridgeError)."""


# encoding -> (numpy dtype, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    'rgb8': (np.dtype(np.uint8), 3),
    'bgr8': (np.dtype(np.uint8), 3),
    'rgba8': (np.dtype(np.uint8), 4),
    'bgra8': (np.dtype(np.uint8), 4),
    'mono8': (np.dtype(np.uint8), 1),
    '8UC1': (np.dtype(np.uint8), 1),
    '8UC3': (np.dtype(np.uint8), 3),
    'mono16': (np.dtype(np.uint16), 1),
    '16UC1': (np.dtype(np.uint16), 1),
    '32SC1': (np.dtype(np.int32), 1),
    '32FC1': (np.dtype(np.float32), 1),
    '64FC1': (np.dtype(np.float64), 1),
}


def imgmsg_to_numpy(msg: Any) -> np.ndarray:
    """Decode a sensor_msgs/Image into ``[H, W]`` or ``[H, W, C]`` (passthrough encoding)."""
    encoding = msg.encoding
    if encoding not in ENCODINGS:
        raise ImageConversionError(
            f'unsupported image encoding {encoding!r}; supported: {", ".join(ENCODINGS)}'
        )
    dtype, channels = ENCODINGS[encoding]
    dtype = dtype.newbyteorder('>' if msg.is_bigendian else '<')
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageConversionError(
            f'{encoding} image of width {width} needs step >= {row_bytes}, got {step}'
        )
    if step % dtype.itemsize:
        raise ImageConversionError(f'step {step} is not a multiple of the {dtype} item size')
    data = msg.data
    buffer = data if isinstance(data, (bytes, bytearray, memoryview)) else bytes(data)
    if len(buffer) < step * height:
        raise ImageConversionError(
            f'{encoding} image {height}x{width} (step {step}) needs {step * height} bytes, '
            f'message has {len(buffer)}'
        )
    flat = np.frombuffer(buffer, dtype=dtype, count=step * height // dtype.itemsize)
    rows = flat.reshape(height, step // dtype.itemsize)  # [H, step / itemsize]
    pixels = rows[:, : width * channels]  # drop row padding
    image = pixels.reshape(height, width, channels) if channels > 1 else pixels  # [H, W(, C)]
    image = np.array(image, order='C', copy=True)  # never alias the message's buffer
    if not image.dtype.isnative:  # cv_bridge byteswaps to the host order
        image = image.astype(image.dtype.newbyteorder('='))
    return image


def _encoding_for(array: np.ndarray) -> str:
    base = {
        np.dtype(np.uint8): '8U',
        np.dtype(np.int8): '8S',
        np.dtype(np.uint16): '16U',
        np.dtype(np.int16): '16S',
        np.dtype(np.int32): '32S',
        np.dtype(np.float32): '32F',
        np.dtype(np.float64): '64F',
    }.get(array.dtype.newbyteorder('='))
    if base is None:
        raise ImageConversionError(f'arrays of dtype {array.dtype} have no image encoding')
    channels = 1 if array.ndim == 2 else array.shape[2]
    return f'{base}C{channels}'


def numpy_to_imgmsg(
    array: np.ndarray,
    encoding: str = 'passthrough',
    header: Any = None,
    msg_type: type | None = None,
) -> Any:
    """Encode ``[H, W]`` / ``[H, W, C]`` into a sensor_msgs/Image (``msg_type`` defaults to it)."""
    if not isinstance(array, np.ndarray):
        raise ImageConversionError(f'expected a numpy array, got {type(array).__name__}')
    if array.ndim not in (2, 3):
        raise ImageConversionError(f'an image must be [H, W] or [H, W, C], got {array.shape}')
    if encoding == 'passthrough':
        encoding = _encoding_for(array)
    elif encoding in ENCODINGS:
        dtype, channels = ENCODINGS[encoding]
        actual = 1 if array.ndim == 2 else array.shape[2]
        if array.dtype.newbyteorder('=') != dtype or actual != channels:
            raise ImageConversionError(
                f'encoding specified as {encoding}, but image has incompatible type '
                f'{_encoding_for(array)}'
            )
    else:
        raise ImageConversionError(f'unsupported image encoding {encoding!r}')
    if msg_type is None:
        from sensor_msgs.msg import Image as msg_type
    msg = msg_type()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(
        array.dtype.byteorder == '>' or (array.dtype.byteorder == '=' and sys.byteorder == 'big')
    )
    data = np.ascontiguousarray(array).tobytes()
    msg.step = len(data) // msg.height
    msg.data = data
    return msg


def depth_to_metres(depth: np.ndarray, encoding: str) -> np.ndarray:
    """REP 118 depth -> float32 metres with NaN where invalid (``smolrgpt_core.depth`` rules)."""
    try:
        return depth_codec.encoding(encoding).to_metres(depth)
    except ValueError as exc:
        raise ImageConversionError(
            f'{encoding} is not a metric depth encoding (16UC1 or 32FC1)'
        ) from exc
