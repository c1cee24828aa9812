"""Object centres as the warehouse data defines them, from a region's floor-frame points.

The dataset (and ``training/synth/scene.py``) puts a pallet's, transporter's or shelf's centre
at the centre of its 3D bounding box: x/z at the middle of its floor footprint, height half
its top. A buffer is a painted floor rectangle: its centre is the rectangle's, at height 0.

The camera looks down on the floor, so the floor projection of an object's visible points
covers its footprint (top faces are seen): the rectangle around the projected outline is the
footprint (``footprint.footprint_of``). What the camera cannot see stays unmeasured unless the
caller asks for class priors: then a footprint grows to the class's size past its unseen sides
(an occluder, the image end, and always the far side, which hides under the object's top).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smolrgpt_core.geometry.footprint import (
    Footprint,
    far_side,
    footprint_of,
    grow,
    hidden_share,
    quantiles,
)
from smolrgpt_core.geometry.priors import ClassPrior
from smolrgpt_core.geometry.visibility import DepthView, place_prior_box

# the object classes of the warehouse data; 'buffer' regions are painted on the floor
OBJECT_CLASSES = ('pallet', 'buffer', 'transporter', 'shelf')
FLOOR_CLASSES = ('buffer',)
TOP_PERCENTILE = 99.5  # the top face is a large share of an object's points seen from above
EXTENT_PERCENTILES = (0.5, 99.5)
HIDDEN_TOP_MARGIN_M = 0.05  # a top this close below the camera's height is seen edge-on
STATS_POINTS = 4096  # an even subset is enough for the extent percentiles


@dataclass(frozen=True)
class ObjectEstimate:
    centre_floor: tuple[float, float, float]  # (x, height, z)
    footprint: Footprint
    top_height: float
    extent_min: tuple[float, float, float]
    extent_max: tuple[float, float, float]
    prior_used: bool
    hidden_back: bool  # the top is not visible, so the far side of the footprint is unseen


def estimate_object(
    interior: np.ndarray,
    boundary: np.ndarray,
    hidden: np.ndarray,
    label: str,
    camera_height: float,
    prior: ClassPrior | None = None,
    grid_angle: float | None = None,
    view: DepthView | None = None,
) -> ObjectEstimate:
    """The centre, footprint and top of one region from floor-frame points: [N, 3] interior
    sample, [K, 3] boundary (pushed to the silhouette) and its [K] hidden flags.
    ``grid_angle``: the scene's layout direction (``footprint.grid_angle``), or None.
    ``view``: the frame's depth, so a prior-sized box is placed where the camera did not see
    past it (``visibility.place_prior_box``); without it the hidden shares alone decide."""
    stats = interior[:: max(1, len(interior) // STATS_POINTS)]
    lo, hi = quantiles(stats, EXTENT_PERCENTILES)
    outline = boundary if len(boundary) >= 3 else interior
    flags = hidden if len(boundary) >= 3 else np.zeros(len(interior), dtype=bool)
    footprint = footprint_of(outline[:, [0, 2]], flags, grid_angle=grid_angle)
    if label in FLOOR_CLASSES:
        x, z = footprint.centre
        lo3, hi3 = (float(lo[0]), 0.0, float(lo[2])), (float(hi[0]), 0.0, float(hi[2]))
        return ObjectEstimate((x, 0.0, z), footprint, 0.0, lo3, hi3, False, False)
    top = float(quantiles(interior[:, 1].copy(), (TOP_PERCENTILE,))[0])
    hidden_back = top >= camera_height - HIDDEN_TOP_MARGIN_M
    prior_used = False
    if prior is not None and prior.min_height_m is not None and top < prior.min_height_m:
        top, prior_used = prior.min_height_m, True
    if prior is not None and prior.footprint_m is not None:
        xz = outline[:, [0, 2]]
        share = np.maximum(hidden_share(footprint, xz, flags), far_side(footprint))
        guess, grown = grow(footprint, prior.footprint_m, share)
        if grown and view is not None:
            guess = place_prior_box(footprint, xz, prior.footprint_m, top, view, guess, grid_angle)
        footprint, prior_used = guess, prior_used or grown
    x, z = footprint.centre
    return ObjectEstimate(
        (x, top / 2.0, z),  # objects stand on the floor: the box spans 0..top
        footprint,
        top,
        (float(lo[0]), 0.0, float(lo[2])),
        (float(hi[0]), top, float(hi[2])),
        prior_used,
        hidden_back,
    )
