"""Answers measured from the frame: a question plan (``smolrgpt_core.questions``) evaluated on
the frame's region geometry (``smolrgpt_core.geometry``), written as the dataset would.

Preconditions are checked in one place (``metric_reason``): metric depth, camera intrinsics
that fit the frame, an understood question, enough valid points per region. Without metric
data, the image-plane tools still answer left/right and the extremes from mask centroids (as
the AI City 2025 winner did); distances and counts need metric data.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
import threading
from typing import Any

from smolrgpt_core import depth as depth_codec
from smolrgpt_core.geometry import (
    CameraModel,
    FloorPlane,
    NotMeasurable,
    RegionGeometry,
    SceneGeometry,
    load_class_priors,
    measure_scene,
    relations,
)
from smolrgpt_core.inference.requests import Frame, Prepared
from smolrgpt_core.questions import (
    Closest,
    CountInBuffer,
    Distance,
    DistanceExtremes,
    Extreme,
    IsLeft,
    NotUnderstood,
    QuestionPlan,
    plan_question,
    render_answer,
)
from smolrgpt_core.settings import InferenceSettings

# labels that say nothing about a region's class (bags of the NVIDIA layout write 'region')
GENERIC_LABELS = frozenset({'', 'region', 'object', 'unknown'})


class CannotMeasure(ValueError):
    """Geometry cannot answer this question on this frame; the message says why."""


@dataclass(frozen=True)
class MeasuredAnswer:
    text: str  # the dataset-style sentence
    normalized: str  # as the official scorer reads it
    value: Any  # 'left' | 'right', metres, count, or the chosen reference index
    basis: str  # 'metric' (3D) or 'image' (mask centroids)
    detail: str  # one sentence of evidence
    ambiguous: bool


def metric_reason(
    depth_encoding: str, camera: CameraModel | None, width: int, height: int
) -> str | None:
    """Why metric geometry cannot run on a frame (None when it can)."""
    if not depth_codec.encoding(depth_encoding).metric:
        return f'depth is {depth_encoding}, not metric (16UC1 or 32FC1)'
    if camera is None:
        return 'no camera intrinsics (camera_info) for this frame'
    return camera.check_frame(width, height)


def answer(plan: QuestionPlan, regions: Sequence[RegionGeometry]) -> MeasuredAnswer:
    """Evaluate ``plan`` on the geometry of the question's references (``regions[k]`` = the
    k-th reference). CannotMeasure when a region lacks what the operation needs."""
    op = plan.operation
    n = plan.refs_count
    try:
        if isinstance(op, IsLeft):
            rel = relations.is_left_of(regions[op.a], regions[op.b])
            value: Any = 'left' if rel.value else 'right'
            text = render_answer(plan, value, refs_count=n)
        elif isinstance(op, Distance):
            rel = relations.distance(regions[op.a], regions[op.b])
            value = round(float(rel.value), 2)
            text = render_answer(plan, value, refs_count=n)
        elif isinstance(op, DistanceExtremes):
            group = [regions[k] for k in op.group]
            ends = tuple(op.group[_pick(group, which).value] for which in op.which)
            rel = relations.distance(regions[ends[0]], regions[ends[1]])
            value = round(float(rel.value), 2)
            text = render_answer(plan, value, refs_count=n, ends=ends)
        elif isinstance(op, CountInBuffer):
            side = _pick([regions[k] for k in op.buffers], f'{op.side}most')
            buffer = op.buffers[side.value]
            rel = relations.count_inside(regions[buffer], [regions[k] for k in op.pallets])
            members = tuple(k for k in op.pallets if regions[k].index in rel.members)
            value = int(rel.value)
            text = render_answer(plan, value, refs_count=n, members=members, buffer=buffer)
        elif isinstance(op, Extreme):
            rel = _pick([regions[k] for k in op.group], op.which)
            value = int(op.group[rel.value])
            text = render_answer(plan, value, refs_count=n)
        elif isinstance(op, Closest):
            rel = relations.closest(regions[op.to], [regions[k] for k in op.candidates])
            value = int(op.candidates[rel.value])
            text = render_answer(plan, value, refs_count=n)
        else:  # a plan type this module does not know yet: the model answers
            raise CannotMeasure(f'no measurement for {type(op).__name__} questions')
    except NotMeasurable as exc:
        raise CannotMeasure(str(exc)) from None
    normalized = value if isinstance(value, str) else _number(value)
    return MeasuredAnswer(text, normalized, value, rel.basis, rel.detail, rel.ambiguous)


def _pick(group: Sequence[RegionGeometry], which: str) -> relations.Relation[int]:
    pick = {'leftmost': relations.leftmost, 'rightmost': relations.rightmost,
            'middle': relations.middle}[which]  # fmt: skip
    return pick(group)


def _number(value: float | int) -> str:
    return str(value) if isinstance(value, int) else f'{value:.2f}'


def region_labels(frame_labels: Sequence[str], n_masks: int, plans: Sequence[tuple[
        Sequence[int], QuestionPlan | None]]) -> tuple[str, ...]:  # fmt: skip
    """One class name per frame mask: the frame's own labels where they say something, else
    what the questions' wording calls each mask (the first plan that names it)."""
    labels = [
        str(frame_labels[i]).lower() if i < len(frame_labels) else '' for i in range(n_masks)
    ]
    for indices, plan in plans:
        if plan is None:
            continue
        for mask, kind in zip(indices, plan.kinds):
            if kind and labels[mask] in GENERIC_LABELS:
                labels[mask] = kind
    return tuple(label or 'region' for label in labels)


@dataclass
class Measured:
    """What the geometry path made of one prepared query."""

    answered: bool = False
    text: str = ''
    source: str = ''  # 'geometry' (metric) or 'image' (mask centroids)
    reason: str = ''  # why it did not answer
    detail: str = ''
    regions: list[RegionGeometry] = field(default_factory=list)  # per question reference
    floor: FloorPlane | None = None


class GeometryPath:
    """Measures a frame's regions once (cached by stamp and labels) and answers the queries
    whose mode asks for geometry. Pure numpy: it never waits for the model's lock."""

    def __init__(self, settings: InferenceSettings) -> None:
        self.settings = settings
        self.priors = load_class_priors() if settings.answer.priors else None
        self._scenes: OrderedDict[tuple[Any, ...], SceneGeometry] = OrderedDict()
        self._lock = threading.Lock()

    def measure(self, frame: Frame, prepared: Sequence[Prepared]) -> list[Measured]:
        out = [Measured() for _ in prepared]
        todo = [i for i, p in enumerate(prepared) if p.mode != 'model']
        if not todo:
            return out
        plans: dict[int, QuestionPlan | None] = {}
        for i in todo:
            plan = plan_question(prepared[i].refs, self._labels_for(frame, prepared[i]))
            if isinstance(plan, NotUnderstood):
                out[i].reason = f'question not understood: {plan.reason}'
                plans[i] = None
            else:
                plans[i] = plan
        h, w = frame.rgb.shape[:2]
        metric = metric_reason(frame.depth_encoding, frame.camera, w, h)
        labels = region_labels(
            frame.labels, frame.masks.shape[0], [(prepared[i].indices, plans[i]) for i in todo]
        )
        scene = self._scene(frame, labels, metric is None)
        for i in todo:
            plan, p = plans[i], prepared[i]
            out[i].regions = [scene.regions[k] for k in p.indices]
            out[i].floor = scene.floor
            if plan is None:
                continue
            try:
                measured = answer(plan, out[i].regions)
            except CannotMeasure as exc:
                out[i].reason = f'{exc} ({metric})' if metric else str(exc)
                continue
            out[i].answered, out[i].text, out[i].detail = True, measured.text, measured.detail
            out[i].source = 'geometry' if measured.basis == 'metric' else 'image'
            if measured.basis == 'metric':
                out[i].reason = ''
            else:  # why the image plane had to do: no metric frame, or a region unmeasured
                unmeasured = [r.reason for r in out[i].regions if not r.valid]
                out[i].reason = metric or (unmeasured[0] if unmeasured else 'image-plane answer')
        return out

    @staticmethod
    def _labels_for(frame: Frame, p: Prepared) -> list[str] | None:
        labels = [str(frame.labels[k]).lower() if k < len(frame.labels) else '' for k in p.indices]
        return None if any(label in GENERIC_LABELS for label in labels) else labels

    def _scene(self, frame: Frame, labels: tuple[str, ...], metric: bool) -> SceneGeometry:
        key = (frame.stamp_ns, labels, frame.camera if metric else None)
        with self._lock:
            if frame.stamp_ns and key in self._scenes:
                self._scenes.move_to_end(key)
                return self._scenes[key]
        scene = measure_scene(
            frame.masks,
            frame.depth if metric else None,
            frame.depth_encoding,
            frame.camera if metric else None,
            labels,
            min_points=self.settings.answer.min_points,
            priors=self.priors,
        )
        if frame.stamp_ns:
            with self._lock:
                self._scenes[key] = scene
                while len(self._scenes) > self.settings.cache.frames:
                    self._scenes.popitem(last=False)
        return scene
