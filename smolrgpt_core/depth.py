"""What a depth pixel means: one table of encodings, one validity rule, one range policy.

In the spirit of image_pipeline's ``depth_traits``: every part of the product that reads a depth
image (preprocessing, the engine, the node, the CLI, geometry) asks this module, so there is no
second opinion on whether 0 is valid or which unit a value is in.

Encodings (REP 118 for the metric ones):

* ``16UC1``: unsigned millimetres; 0 = no reading.
* ``32FC1``: float metres; NaN, +-inf and values <= 0 = no reading.
* ``mono8``: the warehouse dataset's 8-bit depth image (near = dark, each image's own range);
  not metric, it is already the model's 8-bit representation.

The model sees depth as an 8-bit image. A metric frame becomes one through a *range policy*:

* ``per_frame``: each frame's own [nearest, farthest] valid depth maps to [0, 255], as the
  dataset's depth PNGs were made;
* ``fixed``: a fixed [min_m, max_m] maps to [0, 255] (metric scale survives);
* ``checkpoint``: whatever the checkpoint says it was trained with (``depth_input`` 'image' =
  per_frame, 'metric' = fixed at its ``depth_min_m``/``depth_max_m``). This is the default,
  because the range is part of what the model learnt.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from smolrgpt_core.config import SmolRGPTConfig

RANGE_POLICIES = ('checkpoint', 'per_frame', 'fixed')
# what the ViT input of depth is made from: the checkpoint's own choice, the reference's training
# pipeline (nearest resize, [0, 1]) or its test-time quirk (depth through the RGB pipeline)
PIPELINES = ('checkpoint', 'train', 'rgb')
# a per-frame range narrower than this is widened, so a flat wall does not divide by zero
MIN_SPAN_M = 1e-3
_ROWS_PER_CHUNK = 256  # float temporaries stay bounded to this many rows of a frame


@dataclass(frozen=True)
class DepthEncoding:
    """One depth encoding: its pixel type, whether it is metric, and how to read it."""

    name: str
    dtype: np.dtype
    units_per_metre: float  # NaN for the non-metric mono8

    @property
    def metric(self) -> bool:
        return not math.isnan(self.units_per_metre)

    def valid(self, values: np.ndarray) -> np.ndarray:
        """bool [H, W]: which pixels hold a reading (the one validity rule)."""
        if self.dtype == np.uint16:
            return values > 0
        if self.dtype == np.float32:
            return np.isfinite(values) & (values > 0)
        return np.ones(values.shape, dtype=bool)  # mono8: every pixel is a value

    def to_metres(self, values: np.ndarray) -> np.ndarray:
        """float32 metres, NaN where there is no reading."""
        if not self.metric:
            raise ValueError('mono8 depth is a per-image 8-bit rendering, not metres')
        metres = values.astype(np.float32) / np.float32(self.units_per_metre)
        metres[~self.valid(values)] = np.nan
        return metres

    def from_metres(self, metres: np.ndarray) -> np.ndarray:
        """float metres -> this encoding; non-finite, <= 0 or out-of-range values -> no reading."""
        if not self.metric:
            raise ValueError('mono8 depth cannot be made from metres without a range')
        metres = np.asarray(metres, dtype=np.float64)
        if self.dtype == np.float32:
            ok = np.isfinite(metres) & (metres > 0)
            return np.where(ok, metres, np.nan).astype(np.float32)
        units = np.rint(metres * self.units_per_metre)
        ok = np.isfinite(units) & (units > 0) & (units <= np.iinfo(np.uint16).max)
        return np.where(ok, units, 0).astype(np.uint16)

    def valid_range_m(self, values: np.ndarray) -> tuple[float, float] | None:
        """(nearest, farthest) valid depth in metres, or None when no pixel is valid."""
        if self.dtype == np.uint16:
            if not (values > 0).any():
                return None
            near = values.min(where=values > 0, initial=np.iinfo(np.uint16).max)
            return float(near) / self.units_per_metre, float(values.max()) / self.units_per_metre
        valid = self.valid(values)
        if not valid.any():
            return None
        return float(values.min(where=valid, initial=np.inf)), float(
            values.max(where=valid, initial=-np.inf)
        )

    def to_depth8(
        self,
        values: np.ndarray,
        near_m: float,
        far_m: float,
        *,
        near_is_dark: bool = True,
        invalid_value: int = 0,
    ) -> np.ndarray:
        """Metric depth [H, W] -> the model's uint8 depth image: [near_m, far_m] to [0, 255]
        (clipped), far = bright unless ``near_is_dark`` is false, no reading = ``invalid_value``.

        The frame is never copied to float whole: millimetres go through a 65536-entry lookup
        table, metres through row chunks.
        """
        if not self.metric:
            return values
        if not far_m > near_m:
            raise ValueError(f'depth range needs far > near, got [{near_m}, {far_m}]')
        if self.dtype == np.uint16:
            return _depth8_lut(near_m, far_m, near_is_dark, invalid_value)[values]
        out = np.empty(values.shape, dtype=np.uint8)
        for start in range(0, values.shape[0], _ROWS_PER_CHUNK):
            rows = values[start : start + _ROWS_PER_CHUNK]
            valid = self.valid(rows)
            chunk = _scale8(rows.astype(np.float64), valid, near_m, far_m, near_is_dark)
            chunk[~valid] = invalid_value
            out[start : start + _ROWS_PER_CHUNK] = chunk
        return out


def _scale8(
    metres: np.ndarray, valid: np.ndarray, near: float, far: float, near_is_dark: bool
) -> np.ndarray:
    scaled = np.clip((np.where(valid, metres, near) - near) / (far - near), 0.0, 1.0)
    if not near_is_dark:
        scaled = 1.0 - scaled
    return np.rint(scaled * 255.0).astype(np.uint8)


def _depth8_lut(near: float, far: float, near_is_dark: bool, invalid_value: int) -> np.ndarray:
    mm = np.arange(65536, dtype=np.float64)
    lut = _scale8(mm / ENCODINGS['16UC1'].units_per_metre, mm > 0, near, far, near_is_dark)
    lut[0] = invalid_value
    return lut


ENCODINGS: dict[str, DepthEncoding] = {
    '16UC1': DepthEncoding('16UC1', np.dtype(np.uint16), 1000.0),
    '32FC1': DepthEncoding('32FC1', np.dtype(np.float32), 1.0),
    'mono8': DepthEncoding('mono8', np.dtype(np.uint8), math.nan),
}
# sensor_msgs/Image encodings that carry the same pixels under another name
ROS_ALIASES = {'mono16': '16UC1', '8UC1': 'mono8'}


def encoding(name: str) -> DepthEncoding:
    """The encoding named ``name`` (ROS aliases accepted); ValueError names the choices."""
    key = ROS_ALIASES.get(name, name)
    if key not in ENCODINGS:
        choices = ', '.join([*ENCODINGS, *ROS_ALIASES])
        raise ValueError(f'unsupported depth encoding {name!r}; expected one of {choices}')
    return ENCODINGS[key]


def encoding_for_dtype(dtype: np.dtype) -> str:
    """The encoding of an array read from a file: uint8 -> mono8, uint16 -> 16UC1 (mm),
    float -> 32FC1 (metres)."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return 'mono8'
    if dtype == np.uint16:
        return '16UC1'
    if dtype in (np.float32, np.float64):
        return '32FC1'
    raise ValueError(f'depth of type {dtype} is none of uint8, uint16 (mm), float (m)')


class DepthSpecError(ValueError):
    """A DepthSpec field that makes no sense; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field


@dataclass(frozen=True)
class DepthSpec:
    """How the product reads depth frames: expected encoding and range policy.

    ``encoding``: 'auto' (as received) or one of ENCODINGS, checked against each frame.
    ``range``: see the module docstring; ``min_m``/``max_m`` are used by 'fixed' only.
    ``pipeline``: the depth ViT input ('checkpoint' keeps the checkpoint's ``depth_pipeline``).
    """

    encoding: str = 'auto'
    range: str = 'checkpoint'
    min_m: float = 0.0
    max_m: float = 0.0
    pipeline: str = 'checkpoint'

    def __post_init__(self) -> None:
        if self.encoding != 'auto':
            try:
                encoding(self.encoding)
            except ValueError as exc:
                raise DepthSpecError('encoding', f'{exc} (or auto)') from None
        if self.range not in RANGE_POLICIES:
            choices = ', '.join(RANGE_POLICIES)
            raise DepthSpecError('range', f'{self.range!r} is not one of {choices}')
        if self.pipeline not in PIPELINES:
            choices = ', '.join(PIPELINES)
            raise DepthSpecError('pipeline', f'{self.pipeline!r} is not one of {choices}')
        fixed = self.range == 'fixed'
        lo, hi = self.min_m, self.max_m
        if fixed and not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi):
            raise DepthSpecError(
                'min_m', f'a fixed range needs 0 <= min_m < max_m, got {lo}, {hi}'
            )
        if not fixed and (lo, hi) != (0.0, 0.0):
            raise DepthSpecError(
                'range', f'min_m/max_m ({lo}, {hi}) are given, so set range to "fixed"'
            )

    def range_for(self, cfg: SmolRGPTConfig) -> tuple[float, float] | None:
        """The fixed range in metres this spec means for a checkpoint, or None for per-frame."""
        if self.range == 'fixed':
            return self.min_m, self.max_m
        if self.range == 'checkpoint' and cfg.depth_input == 'metric':
            return cfg.depth_min_m, cfg.depth_max_m
        return None

    def pipeline_for(self, cfg: SmolRGPTConfig) -> str:
        return cfg.depth_pipeline if self.pipeline == 'checkpoint' else self.pipeline

    def disagreement(self, cfg: SmolRGPTConfig) -> str | None:
        """A sentence when this spec overrides what the checkpoint was trained with."""
        trained = (cfg.depth_min_m, cfg.depth_max_m) if cfg.depth_input == 'metric' else None
        used = self.range_for(cfg)
        if used == trained:
            return None

        def say(r: tuple[float, float] | None) -> str:
            return 'per-frame depth ranges' if r is None else f'a fixed {r[0]}-{r[1]} m range'

        return f'the checkpoint was trained with {say(trained)}; the settings feed it {say(used)}'


def to_depth8(
    values: np.ndarray, name: str, fixed_range: tuple[float, float] | None, cfg: SmolRGPTConfig
) -> np.ndarray:
    """A depth frame in encoding ``name`` -> the model's 8-bit depth image.

    ``fixed_range`` None = the frame's own valid range. A mono8 frame is returned as is.
    ValueError when a metric frame has no valid pixel.
    """
    enc = encoding(name)
    if not enc.metric:
        return values
    if fixed_range is None:
        found = enc.valid_range_m(values)
        if found is None:
            raise ValueError('no valid depth pixel in the frame')
        near, far = found
        fixed_range = (near, max(far, near + MIN_SPAN_M))
    return enc.to_depth8(
        values,
        *fixed_range,
        near_is_dark=cfg.depth_near_is_dark,
        invalid_value=cfg.depth_invalid_value,
    )
