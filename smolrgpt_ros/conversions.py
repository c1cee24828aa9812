"""ROS messages <-> engine types (Frame, Answer). Pure functions; rclpy is not imported."""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from smolrgpt_core import depth as depth_codec
from smolrgpt_core.inference.engine import Answer, EngineError, Frame
from smolrgpt_core.settings import FrameLimits
from smolrgpt_ros import region_forms
from smolrgpt_ros.image_conversion import ImageConversionError, imgmsg_to_numpy
from smolrgpt_ros.sync import stamp_to_ns

RGB_ENCODINGS = ('rgb8', 'bgr8')


def ns_to_stamp(stamp_ns: int, stamp_type: type) -> Any:
    return stamp_type(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)


def message_problem(msg: Any, limits: FrameLimits) -> str | None:
    """Why one incoming Image, RegionMaskArray or RegionArray cannot belong to a frame the
    engine would take (sizes only, from the header fields: nothing is converted or
    allocated), or None."""
    if hasattr(msg, 'regions'):
        return region_forms.regions_problem(msg, limits)
    return region_forms.image_problem(msg, 'input', limits)


def frame_from_msgs(
    rgb_msg: Any,
    depth_msg: Any,
    regions_msg: Any,
    limits: FrameLimits | None = None,
    instances_msg: Any = None,
) -> Frame:
    """The one conversion point: synchronised messages -> engine Frame.

    ``regions_msg`` is a RegionMaskArray (masks full-frame or cropped to their bbox), or a
    RegionArray with ``instances_msg``, the instance-label image (``region_forms`` documents
    the forms; they give the same Frame for the same regions). Sizes are checked from the
    headers before anything is allocated; masks stay uint8 (the engine refuses values other
    than 0, 1 and 255). Raises EngineError naming the problem."""
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
    if rgb_msg.encoding not in RGB_ENCODINGS:
        raise EngineError(f'rgb image encoding must be rgb8 or bgr8, got {rgb_msg.encoding!r}')
    try:
        encoding = depth_codec.encoding(depth_msg.encoding).name
    except ValueError as exc:
        raise EngineError(f'malformed depth: {exc}') from None
    if instances_msg is not None:
        masks = region_forms.masks_from_instances(instances_msg, regions_msg, h, w, limits)
    elif any(not hasattr(r, 'mask') for r in regions_msg.regions):
        raise EngineError('a RegionArray needs its instance-label image (regions.form instances)')
    else:
        masks = region_forms.masks_from_mask_array(regions_msg, h, w, limits)
    try:
        rgb = imgmsg_to_numpy(rgb_msg)
        if rgb_msg.encoding == 'bgr8':
            rgb = np.ascontiguousarray(rgb[..., ::-1])
        depth = imgmsg_to_numpy(depth_msg)
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
    """One synchronised set of messages, converted to an engine Frame once, on first use:
    callbacks stay cheap, and later questions about the frame skip the conversion."""

    def __init__(
        self,
        rgb_msg: Any,
        depth_msg: Any,
        regions_msg: Any,
        limits: FrameLimits | None = None,
        instances_msg: Any = None,
    ) -> None:
        self.msgs = (rgb_msg, depth_msg, regions_msg)
        self.instances = instances_msg
        self.limits = limits or FrameLimits()
        self._frame: Frame | None = None
        self._lock = threading.Lock()

    @property
    def header(self) -> Any:
        return self.msgs[0].header

    @property
    def nbytes(self) -> int:
        """Bytes this frame may hold: its messages' pixel data, and once converted the
        engine Frame's copies of RGB and depth and its full-frame masks (one byte a pixel)."""
        rgb, depth, regions = self.msgs
        images = len(rgb.data) + len(depth.data)
        wire = images + sum(len(r.mask.data) for r in regions.regions if hasattr(r, 'mask'))
        if self.instances is not None:
            wire += len(self.instances.data)
        full_masks = len(regions.regions) * int(rgb.height) * int(rgb.width)
        return wire + images + full_masks

    def frame(self) -> Frame:
        with self._lock:
            if self._frame is None:  # a failed conversion is not cached: it raises again
                self._frame = frame_from_msgs(*self.msgs, self.limits, self.instances)
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
        'batch_size',
    ):
        setattr(msg, name, getattr(response, name))
    return msg
