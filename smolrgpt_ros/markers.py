"""RViz markers of a measured answer, in the camera's optical frame (no rclpy import).

Per answer: a sphere and a label at each measured region centre, a labelled line between the
two regions of a distance question, and a patch of the fitted floor. Every marker has a
namespace, an id and a lifetime, and the array starts with DELETEALL, so stale markers of
the previous answer vanish.
"""

from __future__ import annotations

from collections.abc import Sequence
import math
from typing import Any

import numpy as np

# visualization_msgs/Marker type and action constants
SPHERE, CUBE, LINE_LIST, TEXT_VIEW_FACING = 2, 1, 5, 9
ADD, DELETEALL = 0, 3
LIFETIME_S = 10
COLOURS = {'geometry': (0.1, 0.8, 0.2), 'image': (0.9, 0.7, 0.1), 'model': (0.6, 0.6, 0.6)}


def _quaternion_z_to(normal: Sequence[float]) -> tuple[float, float, float, float]:
    """(x, y, z, w) rotating +z onto ``normal`` (a CUBE's thin axis onto the floor normal)."""
    n = np.asarray(normal, dtype=np.float64)
    n /= np.linalg.norm(n)
    axis = np.cross([0.0, 0.0, 1.0], n)
    s, c = float(np.linalg.norm(axis)), float(n[2])
    if s < 1e-9:
        return (1.0, 0.0, 0.0, 0.0) if c < 0 else (0.0, 0.0, 0.0, 1.0)
    half = math.atan2(s, c) / 2
    axis /= s
    return (*(float(a) * math.sin(half) for a in axis), math.cos(half))


def answer_markers(
    types: Any, header: Any, answer: Any, region_ids: Sequence[int], floor: Any = None
) -> Any:
    """``types``: an object with ``MarkerArray``, ``Marker`` and ``Point`` classes."""
    markers = [types.Marker(header=header, action=DELETEALL)]

    def marker(ns: str, kind: int, rgb: tuple[float, float, float], **fields: Any) -> Any:
        m = types.Marker(header=header, ns=ns, id=len(markers), type=kind, action=ADD)
        m.color.r, m.color.g, m.color.b, m.color.a = (*rgb, 0.9)
        m.lifetime.sec = LIFETIME_S
        m.pose.orientation.w = 1.0
        for name, value in fields.items():
            setattr(m, name, value)
        markers.append(m)
        return m

    colour = COLOURS.get(answer.source, COLOURS['model'])
    centres = []
    for rid, region in zip(region_ids, answer.regions_3d):
        if region.centre is None:
            centres.append(None)
            continue
        x, y, z = (float(c) for c in region.centre)
        centres.append((x, y, z))
        sphere = marker('centres', SPHERE, colour)
        sphere.pose.position.x, sphere.pose.position.y, sphere.pose.position.z = x, y, z
        sphere.scale.x = sphere.scale.y = sphere.scale.z = 0.15
        text = marker('labels', TEXT_VIEW_FACING, (1.0, 1.0, 1.0), text=f'{region.label} {rid}')
        text.pose.position.x, text.pose.position.y, text.pose.position.z = x, y - 0.3, z
        text.scale.z = 0.2
    if answer.category == 'distance' and answer.source == 'geometry':
        ends = [c for c in centres if c is not None]
        if len(ends) >= 2:
            line = marker('distance', LINE_LIST, (0.2, 0.6, 1.0))
            line.points = [types.Point(x=p[0], y=p[1], z=p[2]) for p in ends[:2]]
            line.scale.x = 0.03
            mid = np.mean(ends[:2], axis=0)
            label = marker(
                'distance', TEXT_VIEW_FACING, (0.2, 0.6, 1.0), text=f'{answer.normalized_answer} m'
            )
            label.pose.position.x, label.pose.position.y, label.pose.position.z = map(float, mid)
            label.scale.z = 0.25
    if floor is not None:
        n = np.asarray(floor.normal, dtype=np.float64)
        known = [c for c in centres if c is not None]
        target = np.mean(known, axis=0) if known else np.array([0.0, 0.0, 4.0])
        # the point of the floor under the regions (or 4 m ahead)
        on_floor = target - (target @ n + floor.offset) * n
        patch = marker('floor', CUBE, (0.3, 0.3, 0.8))
        patch.color.a = 0.3
        patch.pose.position.x, patch.pose.position.y, patch.pose.position.z = map(float, on_floor)
        q = _quaternion_z_to(n)
        o = patch.pose.orientation
        o.x, o.y, o.z, o.w = q
        patch.scale.x, patch.scale.y, patch.scale.z = 6.0, 6.0, 0.01
    return types.MarkerArray(markers=markers)
