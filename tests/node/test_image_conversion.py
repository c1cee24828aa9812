"""Image <-> numpy with cv_bridge's contract: encodings, row padding, byte order, errors."""

from __future__ import annotations

from dataclasses import dataclass, field
import importlib.util

import numpy as np
import pytest

from smolrgpt_ros.image_conversion import (
    ImageConversionError,
    depth_to_metres,
    imgmsg_to_numpy,
    numpy_to_imgmsg,
)


@dataclass
class FakeImage:
    """The fields of sensor_msgs/Image that the converter reads and writes."""

    height: int = 0
    width: int = 0
    encoding: str = ''
    is_bigendian: int = 0
    step: int = 0
    data: bytes = b''
    header: object = field(default=None)


def test_rgb8_round_trip() -> None:
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    msg = numpy_to_imgmsg(rgb, 'rgb8', msg_type=FakeImage)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (2, 3, 9, 'rgb8')
    out = imgmsg_to_numpy(msg)
    assert out.shape == (2, 3, 3) and np.array_equal(out, rgb)


def test_row_padding_is_cropped() -> None:
    # 2x3 mono8 image stored with step 5: two padding bytes per row (values 99 must vanish)
    data = bytes([1, 2, 3, 99, 99, 4, 5, 6, 99, 99])
    msg = FakeImage(height=2, width=3, encoding='mono8', step=5, data=data)
    out = imgmsg_to_numpy(msg)
    assert out.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert out.flags['C_CONTIGUOUS']


def test_16uc1_little_and_big_endian() -> None:
    depth = np.array([[0, 1000], [65535, 1234]], dtype=np.uint16)
    little = numpy_to_imgmsg(depth, '16UC1', msg_type=FakeImage)
    assert little.is_bigendian == 0 and little.step == 4
    assert np.array_equal(imgmsg_to_numpy(little), depth)
    big = FakeImage(
        height=2,
        width=2,
        encoding='16UC1',
        is_bigendian=1,
        step=4,
        data=depth.astype('>u2').tobytes(),
    )
    out = imgmsg_to_numpy(big)
    assert out.dtype == np.uint16 and out.dtype.isnative and np.array_equal(out, depth)


def test_32fc1_with_padding() -> None:
    depth = np.array([[1.5, np.nan], [np.inf, 0.25]], dtype=np.float32)
    padded = np.zeros((2, 3), dtype=np.float32)
    padded[:, :2] = depth
    msg = FakeImage(height=2, width=2, encoding='32FC1', step=12, data=padded.tobytes())
    out = imgmsg_to_numpy(msg)
    assert out.shape == (2, 2)
    np.testing.assert_array_equal(out, depth)


def test_decoded_array_does_not_alias_the_message() -> None:
    data = bytearray([10, 20, 30, 40])
    msg = FakeImage(height=2, width=2, encoding='mono8', step=2, data=data)
    out = imgmsg_to_numpy(msg)
    data[0] = 0
    assert out[0, 0] == 10


def test_passthrough_encoding_names_cv_type() -> None:
    assert numpy_to_imgmsg(np.zeros((2, 2), np.uint16), msg_type=FakeImage).encoding == '16UC1'
    assert numpy_to_imgmsg(np.zeros((2, 2, 3), np.uint8), msg_type=FakeImage).encoding == '8UC3'
    assert numpy_to_imgmsg(np.zeros((2, 2), np.float32), msg_type=FakeImage).encoding == '32FC1'


@pytest.mark.parametrize(
    ('msg', 'message'),
    [
        (FakeImage(2, 2, 'yuv422', 0, 4, b'\0' * 8), 'unsupported image encoding'),
        (FakeImage(2, 2, 'rgb8', 0, 4, b'\0' * 8), 'needs step >= 6'),
        (FakeImage(2, 2, 'mono8', 0, 2, b'\0' * 3), 'needs 4 bytes'),
        (FakeImage(2, 2, '16UC1', 0, 5, b'\0' * 10), 'not a multiple'),
    ],
)
def test_bad_messages_raise_clear_errors(msg: FakeImage, message: str) -> None:
    with pytest.raises(ImageConversionError, match=message):
        imgmsg_to_numpy(msg)


def test_encoding_must_fit_the_array() -> None:
    with pytest.raises(
        ImageConversionError,
        match='encoding specified as rgb8, but image has incompatible type 16UC1',
    ):
        numpy_to_imgmsg(np.zeros((2, 2), np.uint16), 'rgb8', msg_type=FakeImage)
    with pytest.raises(ImageConversionError, match='no image encoding'):
        numpy_to_imgmsg(np.zeros((2, 2), np.float16), msg_type=FakeImage)
    with pytest.raises(ImageConversionError, match='numpy array'):
        numpy_to_imgmsg([[1, 2]], msg_type=FakeImage)  # type: ignore[arg-type]


def test_depth_to_metres_rep118() -> None:
    mm = np.array([[0, 1500]], dtype=np.uint16)
    out = depth_to_metres(mm, '16UC1')
    assert np.isnan(out[0, 0]) and out[0, 1] == pytest.approx(1.5)
    m = np.array([[np.inf, 2.0, -np.inf]], dtype=np.float32)
    out = depth_to_metres(m, '32FC1')
    assert np.isnan(out[0, 0]) and out[0, 1] == 2.0 and np.isnan(out[0, 2])
    with pytest.raises(ImageConversionError, match='not a metric depth'):
        depth_to_metres(np.zeros((1, 1), np.uint8), 'mono8')


@pytest.mark.ros
@pytest.mark.skipif(
    importlib.util.find_spec('sensor_msgs') is None, reason='sensor_msgs (ROS 2) not installed'
)
def test_real_sensor_msgs_image_round_trip() -> None:
    from sensor_msgs.msg import Image

    depth = (np.arange(12, dtype=np.uint16) * 500).reshape(3, 4)
    msg = numpy_to_imgmsg(depth, '16UC1')
    assert isinstance(msg, Image) and msg.step == 8
    assert np.array_equal(imgmsg_to_numpy(msg), depth)


def test_stored_frame_converts_once() -> None:
    """Later questions about a frame reuse its converted arrays (no per-question copies)."""
    from types import SimpleNamespace

    from smolrgpt_ros.conversions import StoredFrame

    header = SimpleNamespace(stamp=SimpleNamespace(sec=1, nanosec=5))
    rgb = FakeImage(2, 2, 'rgb8', 0, 6, bytes(range(12)), header)
    depth = FakeImage(2, 2, '16UC1', 0, 4, np.full((2, 2), 900, np.uint16).tobytes(), header)
    mask = FakeImage(2, 2, 'mono8', 0, 2, bytes([255, 0, 0, 0]), header)
    regions = SimpleNamespace(
        header=header, regions=[SimpleNamespace(id=3, label='pallet', mask=mask)]
    )
    stored = StoredFrame(rgb, depth, regions)
    first = stored.frame()
    assert stored.frame() is first and stored.header is header
    assert first.stamp_ns == 1_000_000_005 and first.region_ids == [3]
    assert first.masks[0].tolist() == [[255, 0], [0, 0]]  # uint8 as received
