"""Run the model over a question file, image by image, appending answers to a resumable CSV.

Shared by ``smolrgpt submission generate`` (warehouse) and ``smolrgpt bench spatialrgpt``.
Questions about one image go through ``SpatialQueryEngine.ask_many`` in chunks of ``batch``,
so the vision pass runs once per image (the engine caches it across chunks). Chunks are cut
from each image's full question list before done ids are removed, so a resumed run asks
exactly the batches an uninterrupted run would have asked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
import logging
from pathlib import Path
import time
from typing import TYPE_CHECKING

import numpy as np

from training.data.image_groups import ImageGroup
from training.data.samples import Sample
from training.submission.raw_csv import append_rows, open_for_resume

if TYPE_CHECKING:
    from smolrgpt_core.inference.engine import Frame, SpatialQueryEngine

log = logging.getLogger(__name__)

RowFn = Callable[[Sample, str], Sequence[str]]
DepthFn = Callable[[ImageGroup, np.ndarray], np.ndarray]


@dataclass
class RunStats:
    total: int = 0  # questions in the file
    skipped: int = 0  # already answered by an earlier run
    written: int = 0  # answered by this run
    failed: int = 0  # written with an empty output (unreadable frame, rejected question)
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return self.skipped + self.written == self.total

    def summary(self) -> str:
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        text = (
            f'{self.written} answered ({rate:.1f}/s), {self.skipped} already done, '
            f'{self.total - self.skipped - self.written} left'
        )
        return text + (f'; {self.failed} failed (empty output)' if self.failed else '')


def clean_question(question: str) -> str:
    """The dataset question without its ``<image>`` tag (the engine adds the image tokens)."""
    return question.replace('<image>', ' ').strip()


def stored_depth(group: ImageGroup, rgb: np.ndarray) -> np.ndarray:
    """The image's depth file as stored: 8-bit (the dataset's, near = dark) or 16-bit mm."""
    from PIL import Image

    if group.depth_path is None:
        raise ValueError(f'{group.rgb_path.name}: no depth image')
    with Image.open(group.depth_path) as image:
        depth = np.asarray(image)
        if depth.ndim == 3:
            depth = depth[..., 0]  # an 8-bit depth saved as RGB
        if depth.shape != rgb.shape[:2]:
            resized = Image.fromarray(depth).resize(
                (rgb.shape[1], rgb.shape[0]), Image.Resampling.NEAREST
            )
            depth = np.asarray(resized)
    return np.ascontiguousarray(depth)


def sensor_depth_of(group: ImageGroup, rgb: np.ndarray) -> np.ndarray:
    """What a robot's depth camera gives: 16UC1 mm where the dataset has it, else as stored."""
    from training.data.sensors import sensor_depth

    return sensor_depth(group.rgb_path, group.depth_path, rgb.shape[:2])[0]


def flat_depth(group: ImageGroup, rgb: np.ndarray) -> np.ndarray:
    """A constant mid-grey depth, for benches that ship no depth (answers lose depth cues)."""
    return np.full(rgb.shape[:2], 128, dtype=np.uint8)


def load_frame(group: ImageGroup, stamp_ns: int, depth_fn: DepthFn = stored_depth) -> Frame:
    from smolrgpt_core.inference.engine import Frame

    rgb = group.samples[0].load_rgb()
    depth = depth_fn(group, rgb)
    encoding = {np.dtype(np.uint8): 'mono8', np.dtype(np.uint16): '16UC1'}.get(depth.dtype)
    if encoding is None:
        raise ValueError(f'{group.depth_path}: unsupported depth type {depth.dtype}')
    masks = group.masks() if group.rles else np.zeros((0, *rgb.shape[:2]), dtype=bool)
    camera = None
    if depth_fn is sensor_depth_of:
        from training.data.sensors import camera_model

        camera = camera_model(group.rgb_path)
    return Frame(
        rgb=rgb,
        depth=depth,
        masks=masks,
        region_ids=list(range(len(masks))),
        depth_encoding=encoding,
        stamp_ns=stamp_ns,
        camera=camera,
    )


def fitting(
    frame: Frame, chunk: list[tuple[Sample, list[int]]], limit: int
) -> list[tuple[Frame, list[tuple[Sample, list[int]]]]]:
    """The chunk as (frame, questions) parts the engine accepts: an image with more distinct
    masks than ``limits.max_regions`` is refused whole, so each part's frame holds only the
    masks its questions name (their region ids kept), cut greedily in question order. A
    question naming more masks than the limit by itself is a part of its own (refused alone).
    Part frames are not cached (stamp 0): an encoded frame holds its masks."""
    if len(frame.region_ids) <= limit:
        return [(frame, chunk)]
    index = {rid: k for k, rid in enumerate(frame.region_ids)}
    parts: list[tuple[list[tuple[Sample, list[int]]], set[int]]] = []
    for pair in chunk:
        ids = {rid for rid in pair[1] if rid in index}  # an unknown id: the engine says so
        if parts and len(parts[-1][1] | ids) <= limit:
            parts[-1][0].append(pair)
            parts[-1][1].update(ids)
        else:
            parts.append(([pair], ids))
    pieces = []
    for questions, ids in parts:
        keep = sorted(ids, key=index.__getitem__)
        rows = [index[rid] for rid in keep]
        sub = replace(
            frame,
            masks=frame.masks[rows],  # [K, H, W]
            region_ids=keep,
            labels=[frame.labels[k] for k in rows] if frame.labels else (),
            stamp_ns=0,
        )
        pieces.append((sub, questions))
    return pieces


def _ask(
    engine: SpatialQueryEngine, frame: Frame, chunk: list[tuple[Sample, list[int]]]
) -> tuple[list[str], int]:
    """Answer texts for a chunk; a question the engine rejects gets '' (the rest still run)."""
    from smolrgpt_core.inference.engine import EngineError, Query

    queries = [Query(clean_question(s.question), ids) for s, ids in chunk]
    try:
        return [a.text for a in engine.ask_many(frame, queries)], 0
    except EngineError:
        pass  # find the culprit(s): one by one
    texts, failed = [], 0
    for (sample, _), query in zip(chunk, queries):
        try:
            texts.append(engine.ask_many(frame, [query])[0].text)
        except EngineError as exc:
            log.warning('%s: no answer (%s)', sample.id, exc)
            texts.append('')
            failed += 1
    return texts, failed


def answer_to_csv(
    engine: SpatialQueryEngine,
    groups: Sequence[ImageGroup],
    out: str | Path,
    *,
    columns: Sequence[str],
    row: RowFn,
    batch: int = 64,
    max_samples: int = 0,
    depth_fn: DepthFn = stored_depth,
    progress: bool = True,
) -> RunStats:
    """Answer every question of ``groups`` not yet in ``out``; append rows batch by batch.

    ``max_samples`` > 0 stops after the batch that reaches that many new answers (a partial
    run that a later call completes).
    """
    from tqdm import tqdm

    if batch < 1:
        raise ValueError(f'batch must be >= 1, got {batch}')
    done = open_for_resume(out, columns)
    limit = engine.settings.limits.max_regions
    stats = RunStats(total=sum(len(g.samples) for g in groups))
    stats.skipped = sum(s.id in done for g in groups for s in g.samples)
    start = time.perf_counter()
    bar = tqdm(
        total=stats.total,
        initial=stats.skipped,
        unit='q',
        desc='answering',
        disable=not progress,
        dynamic_ncols=True,
    )
    try:
        for index, group in enumerate(groups):
            pairs = list(zip(group.samples, group.region_ids))
            chunks = [pairs[i : i + batch] for i in range(0, len(pairs), batch)]
            chunks = [[p for p in c if p[0].id not in done] for c in chunks]
            chunks = [c for c in chunks if c]
            if not chunks:
                continue
            try:
                frame = load_frame(group, stamp_ns=index + 1, depth_fn=depth_fn)
            except (OSError, ValueError) as exc:
                log.warning(
                    '%s: cannot load the frame (%s); its questions get empty outputs',
                    group.rgb_path.name,
                    exc,
                )
                frame = None
            for chunk in chunks:
                if frame is None:
                    texts, failed = [''] * len(chunk), len(chunk)
                else:
                    texts, failed = [], 0
                    for part_frame, part in fitting(frame, chunk, limit):
                        part_texts, part_failed = _ask(engine, part_frame, part)
                        texts += part_texts
                        failed += part_failed
                append_rows(out, [row(s, t) for (s, _), t in zip(chunk, texts)])
                done.update(s.id for s, _ in chunk)
                stats.written += len(chunk)
                stats.failed += failed
                bar.update(len(chunk))
                if max_samples and stats.written >= max_samples:
                    return stats
    finally:
        bar.close()
        stats.seconds = time.perf_counter() - start
    return stats
