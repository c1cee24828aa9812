"""ROS messages <-> engine types (Frame, Answer). Pure functions; rclpy is not imported."""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from smolrgpt_core.inference.engine import Answer, EngineError, Frame
from smolrgpt_ros.image_conversion import ImageConversionError, imgmsg_to_numpy
from smolrgpt_ros.sync import stamp_to_ns

RGB_ENCODINGS = ('rgb8', 'bgr8')
DEPTH_ENCODINGS = {
    '16UC1': '16UC1',
    'mono16': '16UC1',
    '32FC1': '32FC1',
    'mono8': 'mono8',
    '8UC1': 'mono8',
}


def ns_to_stamp(stamp_ns: int, stamp_type: type) -> Any:
    return stamp_type(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)


def frame_from_msgs(
    rgb_msg: Any, depth_msg: Any, regions_msg: Any, expected_depth: str = 'auto'
) -> Frame:
    """A synchronised (Image, Image, RegionMaskArray) triple -> engine Frame.

    Raises EngineError naming the problem (encoding, size, empty region list)."""
    try:
        if rgb_msg.encoding not in RGB_ENCODINGS:
            raise EngineError(f'rgb image encoding must be rgb8 or bgr8, got {rgb_msg.encoding!r}')
        rgb = imgmsg_to_numpy(rgb_msg)
        if rgb_msg.encoding == 'bgr8':
            rgb = np.ascontiguousarray(rgb[..., ::-1])
        encoding = DEPTH_ENCODINGS.get(depth_msg.encoding)
        if encoding is None:
            raise EngineError(
                f'malformed depth: encoding {depth_msg.encoding!r} is not one of '
                f'{", ".join(DEPTH_ENCODINGS)}'
            )
        if expected_depth != 'auto' and encoding != expected_depth:
            raise EngineError(
                f'depth arrives as {depth_msg.encoding} but depth.encoding is {expected_depth}'
            )
        depth = imgmsg_to_numpy(depth_msg)
        h, w = rgb.shape[:2]
        masks = np.zeros((len(regions_msg.regions), h, w), dtype=bool)
        for k, region in enumerate(regions_msg.regions):
            mask = imgmsg_to_numpy(region.mask)
            if mask.shape != (h, w):
                raise EngineError(
                    f'size mismatch: mask of region {region.id} is '
                    f'{list(mask.shape)}, rgb is [{h}, {w}]'
                )
            masks[k] = mask != 0
    except ImageConversionError as exc:
        raise EngineError(str(exc)) from exc
    return Frame(
        rgb=rgb,
        depth=depth,
        masks=masks,
        region_ids=[int(r.id) for r in regions_msg.regions],
        labels=[r.label for r in regions_msg.regions],
        depth_encoding=encoding,
        stamp_ns=stamp_to_ns(rgb_msg.header.stamp),
    )


class StoredFrame:
    """One synchronised message triple, converted to an engine Frame once, on first use:
    callbacks stay cheap, and later questions about the frame skip the conversion."""

    def __init__(self, rgb_msg: Any, depth_msg: Any, regions_msg: Any) -> None:
        self.msgs = (rgb_msg, depth_msg, regions_msg)
        self._frame: Frame | None = None
        self._lock = threading.Lock()

    @property
    def header(self) -> Any:
        return self.msgs[0].header

    def frame(self, expected_depth: str = 'auto') -> Frame:
        with self._lock:
            if self._frame is None:  # a failed conversion is not cached: it raises again
                self._frame = frame_from_msgs(*self.msgs, expected_depth)
            return self._frame


def fill_response(response: Any, answer: Answer, stamp_type: type) -> Any:
    response.success = True
    response.error = ''
    response.answer = answer.text
    response.normalized_answer = answer.normalized_answer
    response.category = answer.category
    response.value = float(answer.value)
    response.region_ids = [int(r) for r in answer.region_ids]
    response.frame_stamp = ns_to_stamp(answer.frame_stamp_ns, stamp_type)
    response.latency_ms = float(answer.latency_ms)
    return response


def fail_response(response: Any, error: str, latency_ms: float = math.nan) -> Any:
    response.success = False
    response.error = error
    response.value = math.nan
    response.latency_ms = float(latency_ms)
    return response


def answer_message(msg: Any, request: Any, response: Any, header: Any) -> Any:
    """SpatialAnswer from a request and its response (header of the frame used)."""
    msg.header = header
    msg.question = request.question
    msg.question_region_ids = list(request.region_ids)
    for name in (
        'success',
        'error',
        'answer',
        'normalized_answer',
        'category',
        'value',
        'region_ids',
        'latency_ms',
    ):
        setattr(msg, name, getattr(response, name))
    return msg
