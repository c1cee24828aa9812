"""ROS messages <-> engine types (Frame, Answer). Pure functions; rclpy is not imported."""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from smolrgpt_core import depth as depth_codec
from smolrgpt_core.inference.engine import Answer, EngineError, Frame
from smolrgpt_core.settings import FrameLimits
from smolrgpt_ros.image_conversion import ImageConversionError, imgmsg_to_numpy
from smolrgpt_ros.sync import stamp_to_ns

RGB_ENCODINGS = ('rgb8', 'bgr8')


def ns_to_stamp(stamp_ns: int, stamp_type: type) -> Any:
    return stamp_type(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)


def _image_problem(msg: Any, what: str, limits: FrameLimits) -> str | None:
    width, height = int(msg.width), int(msg.height)
    if width == 0 or height == 0:
        return f'the {what} image is empty ({width}x{height})'
    if width * height > limits.max_image_pixels:
        return (
            f'the {what} image is {width}x{height}, above limits.max_image_pixels '
            f'{limits.max_image_pixels}'
        )
    if len(msg.data) > limits.max_frame_bytes:
        return f'the {what} image holds {len(msg.data)} bytes, above limits.max_frame_bytes'
    return None


def message_problem(msg: Any, limits: FrameLimits) -> str | None:
    """Why one incoming Image or RegionMaskArray cannot belong to a frame the engine would take
    (sizes only, from the header fields: nothing is converted or allocated), or None."""
    if hasattr(msg, 'regions'):
        if len(msg.regions) > limits.max_regions:
            return f'{len(msg.regions)} regions, above limits.max_regions {limits.max_regions}'
        total = 0
        for region in msg.regions:
            problem = _image_problem(region.mask, f'mask of region {region.id}', limits)
            if problem:
                return problem
            total += len(region.mask.data)
        if total > limits.max_frame_bytes:
            return f'the masks hold {total} bytes, above limits.max_frame_bytes'
        return None
    return _image_problem(msg, 'input', limits)


def frame_from_msgs(
    rgb_msg: Any, depth_msg: Any, regions_msg: Any, limits: FrameLimits | None = None
) -> Frame:
    """A synchronised (Image, Image, RegionMaskArray) triple -> engine Frame.

    Sizes are checked from the headers before anything is allocated; masks stay uint8 (the
    engine refuses values other than 0, 1 and 255). Raises EngineError naming the problem."""
    limits = limits or FrameLimits()
    for msg in (rgb_msg, depth_msg, regions_msg):
        problem = message_problem(msg, limits)
        if problem:
            raise EngineError(problem)
    h, w = int(rgb_msg.height), int(rgb_msg.width)
    if (int(depth_msg.height), int(depth_msg.width)) != (h, w):
        raise EngineError(
            f'size mismatch: depth is [{depth_msg.height}, {depth_msg.width}], rgb is [{h}, {w}]'
        )
    for region in regions_msg.regions:
        if (int(region.mask.height), int(region.mask.width)) != (h, w):
            raise EngineError(
                f'size mismatch: mask of region {region.id} is '
                f'[{region.mask.height}, {region.mask.width}], rgb is [{h}, {w}]'
            )
    try:
        if rgb_msg.encoding not in RGB_ENCODINGS:
            raise EngineError(f'rgb image encoding must be rgb8 or bgr8, got {rgb_msg.encoding!r}')
        try:
            encoding = depth_codec.encoding(depth_msg.encoding).name
        except ValueError as exc:
            raise EngineError(f'malformed depth: {exc}') from None
        rgb = imgmsg_to_numpy(rgb_msg)
        if rgb_msg.encoding == 'bgr8':
            rgb = np.ascontiguousarray(rgb[..., ::-1])
        depth = imgmsg_to_numpy(depth_msg)
        masks = np.empty((len(regions_msg.regions), h, w), dtype=np.uint8)
        for k, region in enumerate(regions_msg.regions):
            if region.mask.encoding not in ('mono8', '8UC1'):
                raise EngineError(
                    f'mask of region {region.id} must be mono8, got {region.mask.encoding!r}'
                )
            masks[k] = imgmsg_to_numpy(region.mask)
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

    def __init__(
        self, rgb_msg: Any, depth_msg: Any, regions_msg: Any, limits: FrameLimits | None = None
    ) -> None:
        self.msgs = (rgb_msg, depth_msg, regions_msg)
        self.limits = limits or FrameLimits()
        self._frame: Frame | None = None
        self._lock = threading.Lock()

    @property
    def header(self) -> Any:
        return self.msgs[0].header

    @property
    def nbytes(self) -> int:
        """Bytes this frame may hold: its messages' pixel data, and as much again once
        converted (the engine Frame's arrays are copies of the same pixels)."""
        held = len(self.msgs[0].data) + len(self.msgs[1].data)
        return 2 * (held + sum(len(r.mask.data) for r in self.msgs[2].regions))

    def frame(self) -> Frame:
        with self._lock:
            if self._frame is None:  # a failed conversion is not cached: it raises again
                self._frame = frame_from_msgs(*self.msgs, self.limits)
            return self._frame


def region_geometry_msg(msg: Any, region_id: int, region: Any) -> Any:
    """smolrgpt_ros/RegionGeometry from a measured region (``geometry.RegionGeometry``)."""
    msg.id, msg.label = int(region_id), str(region.label)
    msg.valid, msg.reason = bool(region.valid), str(region.reason)
    msg.valid_points = int(region.n_valid)
    if region.centre is not None:
        msg.centre.x, msg.centre.y, msg.centre.z = (float(c) for c in region.centre)
    if region.extent_min is not None and region.extent_max is not None:
        size = [float(b) - float(a) for a, b in zip(region.extent_min, region.extent_max)]
        msg.extent.x, msg.extent.y, msg.extent.z = size
    return msg


def fill_response(
    response: Any, answer: Answer, stamp_type: type, geometry_type: type | None = None
) -> Any:
    """Response (or SpatialAnswer) fields of an engine Answer. An answer nothing could give
    (geometry mode, nothing measurable) is a failure whose error says why."""
    response.source = answer.source
    response.cross_check = answer.cross_check
    response.geometry_reason = answer.geometry_reason
    if geometry_type is not None:
        response.regions_3d = [
            region_geometry_msg(geometry_type(), rid, region)
            for rid, region in zip(answer.question_region_ids, answer.regions_3d)
        ]
    response.frame_stamp = ns_to_stamp(answer.frame_stamp_ns, stamp_type)
    if not answer.answered:
        return fail_response(
            response, f'geometry cannot answer: {answer.geometry_reason}', answer.latency_ms
        )
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
        'source',
        'cross_check',
        'geometry_reason',
        'regions_3d',
    ):
        setattr(msg, name, getattr(response, name))
    return msg
