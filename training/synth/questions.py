"""Ground-truth questions for a rendered scene, computed from the 3D layout.

Left/right and leftmost/rightmost use the camera-frame x of object centres (the image order
of the mask centroids must agree, and gaps must be clear, or the question is not asked);
distances are centre to centre in metres, 0 for a pallet inside a buffer; counts are the listed
pallets whose centre lies over the buffer. Only objects with a visible mask take part.
"""

from __future__ import annotations

from dataclasses import dataclass
import itertools

import numpy as np

from training.synth import templates
from training.synth.scene import Scene, SceneObject, distance

Answer = str | int | float
MIN_GAP_M = 0.6  # left/right separation below which a question would be ambiguous
MIN_CLOSER_M = 0.5  # "closest pallet" must win by this much


@dataclass(frozen=True)
class QA:
    category: str
    question: str  # NVIDIA form: '<mask>' placeholders, maybe an '<image>\n' prefix
    answer: str  # free-form, '[Region k]' names
    normalized: Answer
    regions: tuple[int, ...]  # instance ids, in '<mask>' order


@dataclass(frozen=True)
class Visible:
    obj: SceneObject
    x_cam: float  # camera-frame x of the centre, metres
    u: float  # image column of the mask centroid
    area: int


def visible_objects(scene: Scene, instances: np.ndarray, min_area: int) -> list[Visible]:
    ids, counts = np.unique(instances, return_counts=True)
    area = dict(zip(ids.tolist(), counts.tolist(), strict=True))
    cols = np.arange(instances.shape[1])
    out = []
    for obj in scene.objects:
        n = area.get(obj.instance_id, 0)
        if n < min_area:
            continue
        column_hits = (instances == obj.instance_id).sum(axis=0)
        u = float((column_hits * cols).sum() / n)
        x_cam = float(scene.camera.world_to_camera(obj.center[None])[0, 0])
        out.append(Visible(obj, x_cam, u, n))
    return out


def _separated(items: list[Visible]) -> bool:
    """Camera x and image column give the same order, with clear gaps."""
    by_x = sorted(items, key=lambda v: v.x_cam)
    by_u = sorted(items, key=lambda v: v.u)
    gaps = [b.x_cam - a.x_cam for a, b in itertools.pairwise(by_x)]
    same_order = [v.obj.instance_id for v in by_x] == [v.obj.instance_id for v in by_u]
    return same_order and all(g >= MIN_GAP_M for g in gaps)


def _prefix(rng: np.random.Generator, question: str) -> str:
    # about half of the real questions start with the image token
    return '<image>\n' + question if rng.random() < 0.5 else question


def make_questions(
    scene: Scene, instances: np.ndarray, rng: np.random.Generator, per_category: int = 2
) -> list[QA]:
    min_area = max(40, instances.size // 2500)
    visible = visible_objects(scene, instances, min_area)
    pallets = [v for v in visible if v.obj.kind == 'pallet']
    buffers = [v for v in visible if v.obj.kind == 'buffer']
    transporters = [v for v in visible if v.obj.kind == 'transporter']
    out: list[QA] = []
    for _ in range(per_category):
        for build in (_left_right, _count, _distance, _mcq):
            qa = build(scene, rng, pallets, buffers, transporters)
            if qa is not None:
                out.append(
                    QA(
                        qa.category,
                        _prefix(rng, qa.question),
                        qa.answer,
                        qa.normalized,
                        qa.regions,
                    )
                )
    return out


def _choose(rng: np.random.Generator, items: list[Visible], k: int) -> list[Visible]:
    return [items[i] for i in rng.permutation(len(items))[:k]]


def _left_right(scene, rng, pallets, buffers, transporters) -> QA | None:
    pool = pallets + (transporters if rng.random() < 0.3 else [])
    for _ in range(10):
        if len(pool) < 2:
            return None
        a, b = _choose(rng, pool, 2)
        if _separated([a, b]):
            side = 'left' if a.x_cam < b.x_cam else 'right'
            q, ans = templates.left_right(rng, a.obj.kind, b.obj.kind, side)
            return QA('left_right', q, ans, side, (a.obj.instance_id, b.obj.instance_id))
    return None


def _count(scene, rng, pallets, buffers, transporters) -> QA | None:
    if len(buffers) < 2 or not pallets:
        return None
    if not _separated(buffers):
        return None
    side = 'left' if rng.random() < 0.5 else 'right'
    target = min(buffers, key=lambda v: v.x_cam if side == 'left' else -v.x_cam)
    listed_buffers = _choose(rng, buffers, len(buffers))
    listed_pallets = _choose(rng, pallets, min(len(pallets), 10))
    offset = len(listed_buffers)
    members = [
        offset + i for i, p in enumerate(listed_pallets) if target.obj.contains_xz(p.obj.center)
    ]
    q, ans = templates.count_in_buffer(
        rng, side, len(listed_buffers), len(listed_pallets), listed_buffers.index(target), members
    )
    regions = tuple(v.obj.instance_id for v in listed_buffers + listed_pallets)
    return QA('count', q, ans, len(members), regions)


def _distance(scene, rng, pallets, buffers, transporters) -> QA | None:
    kind = rng.choice(
        ['pallets', 'pallet_buffer', 'extremes', 'transporter'], p=[0.4, 0.3, 0.15, 0.15]
    )
    if kind == 'extremes' and len(pallets) >= 3:
        group = _choose(rng, pallets, 3)
        if _separated(group):
            left = min(group, key=lambda v: v.x_cam)
            right = max(group, key=lambda v: v.x_cam)
            metres = float(templates.metres_text(distance(scene, left.obj, right.obj)))
            q, ans = templates.distance_extremes(
                rng, 3, group.index(left), group.index(right), metres
            )
            return QA('distance', q, ans, metres, tuple(v.obj.instance_id for v in group))
    if kind == 'pallet_buffer' and pallets and buffers:
        a, b = _choose(rng, pallets, 1)[0], _choose(rng, buffers, 1)[0]
    elif kind == 'transporter' and pallets and transporters:
        a, b = _choose(rng, transporters, 1)[0], _choose(rng, pallets, 1)[0]
    elif len(pallets) >= 2:
        a, b = _choose(rng, pallets, 2)
    else:
        return None
    metres = float(templates.metres_text(distance(scene, a.obj, b.obj)))
    noun_b = 'buffer region' if b.obj.kind == 'buffer' else b.obj.kind
    q, ans = templates.distance_pair(rng, a.obj.kind, noun_b, metres, inside=metres == 0.0)
    return QA('distance', q, ans, metres, (a.obj.instance_id, b.obj.instance_id))


def _mcq(scene, rng, pallets, buffers, transporters) -> QA | None:
    if transporters and len(pallets) >= 3 and rng.random() < 0.35:
        transporter = _choose(rng, transporters, 1)[0]
        group = _choose(rng, pallets, 3)
        dists = [distance(scene, transporter.obj, p.obj) for p in group]
        order = np.argsort(dists)
        if dists[order[1]] - dists[order[0]] >= MIN_CLOSER_M:
            first = rng.random() < 0.3
            shift = 1 if first else 0
            chosen = int(order[0]) + shift
            t_index = 0 if first else len(group)
            q, ans = templates.mcq_pick_up(rng, len(group), first, chosen, t_index)
            ids = [p.obj.instance_id for p in group]
            regions = (
                [transporter.obj.instance_id, *ids]
                if first
                else [*ids, transporter.obj.instance_id]
            )
            return QA('mcq', q, ans, chosen, tuple(regions))
    if len(pallets) < 3:
        return None
    for _ in range(10):
        group = _choose(rng, pallets, 3)
        if not _separated(group):
            continue
        which = str(rng.choice(['leftmost', 'rightmost', 'middle']))
        ordered = sorted(group, key=lambda v: v.x_cam)
        target = {'leftmost': ordered[0], 'rightmost': ordered[-1], 'middle': ordered[1]}[which]
        chosen = group.index(target)
        q, ans = templates.mcq_extreme(rng, which, len(group), chosen)
        return QA('mcq', q, ans, chosen, tuple(v.obj.instance_id for v in group))
    return None
