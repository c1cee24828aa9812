"""What callers hand the engine (frames, queries) and get back (answers), and how a frame
and a question's region references are checked before anything runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
import math
from typing import TYPE_CHECKING

import numpy as np

from smolrgpt_core import depth as depth_codec
from smolrgpt_core.normalize import NormalizationError, infer_category
from smolrgpt_core.settings import InferenceSettings

if TYPE_CHECKING:
    from smolrgpt_core.geometry import CameraModel, FloorPlane, RegionGeometry
    from smolrgpt_core.inference.types import Prompt
from smolrgpt_core.tokens import RegionReferences


class EngineError(ValueError):
    """A request the engine cannot answer; the message says why (shown to the caller)."""


@dataclass
class Frame:
    """One synchronised RGB-D frame with its region masks, as numpy arrays.

    depth: in ``depth_encoding`` (``smolrgpt_core.depth`` says what its pixels mean).
    masks: bool, or uint8 / float holding only 0 and 1 (uint8 also 255 for inside).
    """

    rgb: np.ndarray  # uint8 [H, W, 3]
    depth: np.ndarray  # [H, W], dtype per depth_encoding
    masks: np.ndarray  # [M, H, W]
    region_ids: Sequence[int]  # id of each mask, unique
    depth_encoding: str = 'mono8'
    stamp_ns: int = 0  # cache key for the encoded frame; 0 = do not cache
    labels: Sequence[str] = ()  # class of each mask ('pallet', 'buffer', ...), when known
    camera: CameraModel | None = None  # intrinsics of the (registered) depth image

    @property
    def nbytes(self) -> int:
        return sum(getattr(a, 'nbytes', 0) for a in (self.rgb, self.depth, self.masks))


@dataclass
class Query:
    question: str
    region_ids: Sequence[int] = ()
    max_new_tokens: int = 0  # 0 = the settings' default
    mode: str = ''  # model | geometry | hybrid; '' = the settings' answer.mode


@dataclass
class Answer:
    text: str
    normalized_answer: str  # '' when the answer holds nothing the scorer could read
    category: str  # left_right | count | distance | mcq | other
    value: float  # numeric answer (metres, count, choice index); NaN otherwise
    region_ids: list[int]  # regions the answer mentions, as ids
    question_region_ids: list[int]
    frame_stamp_ns: int
    timings_ms: dict[str, float] = field(default_factory=dict)
    # 'model', 'geometry' (measured in 3D), 'image' (mask centroids, no intrinsics) or 'none'
    # (geometry mode, nothing measurable: geometry_reason says why)
    source: str = 'model'
    cross_check: str = ''  # the other path's normalized answer, when both ran
    geometry_reason: str = ''  # why geometry did not answer ('' when it did or was not asked)
    regions_3d: list[RegionGeometry] = field(default_factory=list)  # per question reference
    detail: str = ''  # the measurement's evidence, one sentence
    floor: FloorPlane | None = None  # the floor geometry measured on, when it found one

    @property
    def answered(self) -> bool:
        return self.source != 'none'

    @property
    def latency_ms(self) -> float:
        return self.timings_ms.get('total', math.nan)


def _mask_problem(masks: np.ndarray) -> str | None:
    """Why these masks are not binary, or None. Costs no full-size temporary for uint8."""
    if masks.dtype == bool:
        return None
    if masks.dtype == np.uint8:
        # 0, 1 and 255 are the three values >= 253 once shifted by -2 (uint8 wraps): one
        # byte-sized pass, 12x faster than a bincount (which widens every pixel to int64)
        if ((masks - np.uint8(2)) < 253).any():
            return 'masks must be binary (0 outside; 1 or 255 inside), got other values'
        return None
    if masks.dtype.kind == 'f':
        if not np.isfinite(masks).all():
            return 'masks hold NaN or infinite values'
        if not ((masks == 0) | (masks == 1)).all():
            return 'masks must be binary (0 or 1), got other values'
        return None
    return f'masks must be bool or uint8, got {masks.dtype}'


def validate_frame(frame: Frame, settings: InferenceSettings | None = None) -> None:
    """EngineError naming the first problem of a frame (sizes bounded by ``settings``)."""
    limits = (settings or InferenceSettings()).limits
    rgb, depth, masks = frame.rgb, frame.depth, frame.masks
    if (
        not isinstance(rgb, np.ndarray)
        or rgb.dtype != np.uint8
        or rgb.ndim != 3
        or rgb.shape[2] != 3
    ):
        raise EngineError(
            f'rgb must be uint8 [H, W, 3], got {getattr(rgb, "dtype", None)} '
            f'{getattr(rgb, "shape", None)}'
        )
    h, w = rgb.shape[:2]
    if h == 0 or w == 0:
        raise EngineError(f'the image is empty ({w}x{h})')
    if h * w > limits.max_image_pixels:
        raise EngineError(
            f'the image is {w}x{h} = {h * w} pixels, above limits.max_image_pixels '
            f'{limits.max_image_pixels}'
        )
    try:
        enc = depth_codec.encoding(frame.depth_encoding)
    except ValueError as exc:
        raise EngineError(str(exc)) from None
    if not isinstance(depth, np.ndarray) or depth.dtype != enc.dtype:
        raise EngineError(
            f'malformed depth: {frame.depth_encoding} needs {enc.dtype}, got '
            f'{getattr(depth, "dtype", type(depth).__name__)}'
        )
    if depth.shape != (h, w):
        raise EngineError(f'size mismatch: depth is {list(depth.shape)}, rgb is [{h}, {w}]')
    if not isinstance(masks, np.ndarray) or masks.ndim != 3:
        raise EngineError(f'masks must be [M, H, W], got {getattr(masks, "shape", None)}')
    if masks.shape[0] > limits.max_regions:
        raise EngineError(
            f'{masks.shape[0]} regions, above limits.max_regions {limits.max_regions}'
        )
    if masks.shape[1:] != (h, w):
        raise EngineError(f'size mismatch: masks are {list(masks.shape[1:])}, rgb is [{h}, {w}]')
    if frame.nbytes > limits.max_frame_bytes:
        raise EngineError(
            f'the frame holds {frame.nbytes} bytes, above limits.max_frame_bytes '
            f'{limits.max_frame_bytes}'
        )
    problem = _mask_problem(masks)
    if problem:
        raise EngineError(problem)
    ids = list(frame.region_ids)
    if len(ids) != masks.shape[0]:
        raise EngineError(f'{masks.shape[0]} masks but {len(ids)} region ids')
    if len(set(ids)) != len(ids):
        raise EngineError(f'region ids must be unique, got {ids}')


def resolve_regions(
    refs: RegionReferences, region_ids: Sequence[int], frame_ids: Sequence[int]
) -> tuple[list[int], list[int]]:
    """(region ids, frame mask indices) of a question's references, in question order.

    ``<mask>``: the k-th is ``region_ids[k]``; ``<regionN>``: the region whose id is N.
    """
    if refs.style == 'mask':
        if len(region_ids) != refs.count:
            raise EngineError(
                f'the question has {refs.count} <mask> placeholders but '
                f'{len(region_ids)} region ids were given'
            )
        wanted = [int(r) for r in region_ids]
    else:
        tags = [int(t) for t in refs.tags if t is not None]
        if region_ids and [int(r) for r in region_ids] != tags:
            raise EngineError(
                f'region_ids {list(region_ids)} do not match the <regionN> tags '
                f'{tags} of the question (leave region_ids empty with tags)'
            )
        wanted = tags
    index = {rid: i for i, rid in enumerate(frame_ids)}
    unknown = [r for r in wanted if r not in index]
    if unknown:
        raise EngineError(f'unknown region ids {unknown}; the frame has {list(frame_ids)}')
    return wanted, [index[r] for r in wanted]


def question_category(refs: RegionReferences) -> str:
    try:
        return infer_category(refs.plain)
    except NormalizationError:
        return 'other'


@dataclass(frozen=True)
class Prepared:
    """A query checked against the bounds and the frame: everything both answer paths need."""

    query: Query
    prompt: Prompt
    refs: RegionReferences
    ids: list[int]  # region ids of the references, in question order
    indices: list[int]  # frame mask index of each reference
    category: str
    mode: str  # model | geometry | hybrid
