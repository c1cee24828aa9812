"""SpatialQueryEngine: numpy frames and questions in, answers out. No ROS.

The engine owns everything between a synchronised RGB-D frame with region masks and a
scored answer: input validation, depth conversion, the vision side (run once per frame and
cached by stamp), prompt building with region ids, batched generation, decoding and the
rule normaliser. The ROS node and the ``smolrgpt ask`` command only adapt it.

Region references in questions (as in ``SpatialQuery.srv``):

* ``<mask>`` placeholders: the k-th refers to ``region_ids[k]`` (dataset style);
* ``<regionN>`` tags: refer to the region whose *id* is N (product style).

Answers mention regions as ``[Region k]``, k indexing the question's references; the engine
maps them back to region ids.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
import math
from pathlib import Path
import re
import threading
import time

import numpy as np
import torch

from smolrgpt_core.config import SmolRGPTConfig
from smolrgpt_core.inference.backends import Backend, BackendError, load_backend
from smolrgpt_core.inference.types import EncodedFrame
from smolrgpt_core.normalize import (
    NormalizationError,
    infer_category,
    normalize_answer,
    region_indices,
)
from smolrgpt_core.preprocess import metric_to_depth8, preprocess_depth, preprocess_rgb
from smolrgpt_core.sampling import SamplingParams
from smolrgpt_core.tokens import DATASET_MASK, REGION_TAG, PromptError, SmolRGPTTokenizer

DEPTH_ENCODINGS = {'mono8': np.uint8, '16UC1': np.uint16, '32FC1': np.float32}
CATEGORIES = ('left_right', 'count', 'distance', 'mcq')


class EngineError(ValueError):
    """A request the engine cannot answer; the message says why (shown to the caller)."""


@dataclass
class Frame:
    """One synchronised RGB-D frame with its region masks, as numpy arrays.

    depth: ``mono8`` = the dataset's 8-bit image (near = dark); ``16UC1`` = millimetres with
    0 = invalid; ``32FC1`` = metres with NaN/inf = invalid (REP 118).
    """

    rgb: np.ndarray  # uint8 [H, W, 3]
    depth: np.ndarray  # [H, W], dtype per depth_encoding
    masks: np.ndarray  # bool [M, H, W]
    region_ids: Sequence[int]  # id of each mask, unique
    depth_encoding: str = 'mono8'
    stamp_ns: int = 0  # cache key for the encoded frame; 0 = do not cache
    labels: Sequence[str] = ()


@dataclass
class Query:
    question: str
    region_ids: Sequence[int] = ()
    max_new_tokens: int = 0  # 0 = the engine's default


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

    @property
    def latency_ms(self) -> float:
        return self.timings_ms.get('total', math.nan)


def validate_frame(frame: Frame) -> None:
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
    if frame.depth_encoding not in DEPTH_ENCODINGS:
        raise EngineError(
            f'unsupported depth encoding {frame.depth_encoding!r}; expected one '
            f'of {", ".join(DEPTH_ENCODINGS)}'
        )
    expected = np.dtype(DEPTH_ENCODINGS[frame.depth_encoding])
    if not isinstance(depth, np.ndarray) or depth.dtype != expected:
        raise EngineError(
            f'malformed depth: {frame.depth_encoding} needs {expected}, got '
            f'{getattr(depth, "dtype", type(depth).__name__)}'
        )
    if depth.shape != (h, w):
        raise EngineError(f'size mismatch: depth is {list(depth.shape)}, rgb is [{h}, {w}]')
    if not isinstance(masks, np.ndarray) or masks.ndim != 3:
        raise EngineError(f'masks must be [M, H, W], got {getattr(masks, "shape", None)}')
    if masks.shape[1:] != (h, w):
        raise EngineError(f'size mismatch: masks are {list(masks.shape[1:])}, rgb is [{h}, {w}]')
    ids = list(frame.region_ids)
    if len(ids) != masks.shape[0]:
        raise EngineError(f'{masks.shape[0]} masks but {len(ids)} region ids')
    if len(set(ids)) != len(ids):
        raise EngineError(f'region ids must be unique, got {ids}')


def resolve_regions(
    question: str, region_ids: Sequence[int], frame_ids: Sequence[int]
) -> tuple[str, list[int]]:
    """Rewrite the question with ``<regionI>`` tags (I = mask index in the frame) and return
    the referenced region ids in question order."""
    n_masks = question.count(DATASET_MASK)
    tags = [int(m.group(1)) for m in REGION_TAG.finditer(question)]
    if n_masks and tags:
        raise EngineError('the question mixes <mask> placeholders and <regionN> tags')
    if n_masks:
        if len(region_ids) != n_masks:
            raise EngineError(
                f'the question has {n_masks} <mask> placeholders but '
                f'{len(region_ids)} region ids were given'
            )
        wanted = [int(r) for r in region_ids]
    else:
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
    pieces = iter(wanted)
    if n_masks:
        text = re.sub(
            re.escape(DATASET_MASK), lambda _: f'<region{index[next(pieces)]}>', question
        )
    else:
        text = REGION_TAG.sub(lambda _: f'<region{index[next(pieces)]}>', question)
    return text, wanted


def question_category(question: str) -> str:
    try:
        return infer_category(REGION_TAG.sub(' ', question.replace(DATASET_MASK, ' ')))
    except NormalizationError:
        return 'other'


class SpatialQueryEngine:
    def __init__(
        self,
        model: Backend,
        tokenizer: SmolRGPTTokenizer,
        *,
        max_new_tokens: int = 48,
        metric_depth_range: tuple[float, float] | None = None,
        cache_size: int = 8,
        sampling: SamplingParams | None = None,
        device: str = 'cpu',
        depth_pipeline: str | None = None,
    ) -> None:
        if max_new_tokens < 1 or cache_size < 1:
            raise ValueError('max_new_tokens and cache_size must be >= 1')
        self.model = model  # any Backend: SmolRGPT itself, or an exported-graph runner
        self.tokenizer = tokenizer
        self.cfg: SmolRGPTConfig = model.cfg
        self.max_new_tokens = max_new_tokens
        self.metric_depth_range = metric_depth_range
        self.sampling = sampling
        self.cache_size = cache_size
        self._cache: OrderedDict[int, EncodedFrame] = OrderedDict()
        self._lock = threading.Lock()  # one inference at a time; the cache is shared
        self.device = torch.device(device)
        # 'rgb' reproduces the reference's test-time depth preprocessing (bilinear, [-1, 1]);
        # None keeps the checkpoint's own setting (the training pipeline)
        self.depth_pipeline = depth_pipeline or self.cfg.depth_pipeline

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        *,
        backend: str = 'torch',
        device: str = 'cpu',
        dtype: str = 'float32',
        engine_dir: str | Path | None = None,
        **kwargs: object,
    ) -> SpatialQueryEngine:
        """Load a checkpoint directory (config.json, model.safetensors, tokenizer.json)."""
        try:
            model = load_backend(backend, path, device=device, dtype=dtype, engine_dir=engine_dir)
        except BackendError as exc:
            raise EngineError(str(exc)) from exc
        tokenizer = SmolRGPTTokenizer.from_dir(path, model.cfg)
        return cls(model, tokenizer, device=device, **kwargs)  # type: ignore[arg-type]

    # vision side ------------------------------------------------------------------------
    def _depth8(self, frame: Frame) -> np.ndarray:
        if frame.depth_encoding == 'mono8':
            return frame.depth
        depth = frame.depth
        valid = depth > 0 if depth.dtype == np.uint16 else np.isfinite(depth) & (depth > 0)
        if not valid.any():
            raise EngineError('malformed depth: no valid depth pixel in the frame')
        if self.metric_depth_range is not None:
            near, far = self.metric_depth_range
        else:
            # the warehouse data maps each image's own [nearest, farthest] to [0, 255]
            metres = depth[valid].astype(np.float64)
            metres = metres / 1000.0 if depth.dtype == np.uint16 else metres
            near, far = float(metres.min()), float(metres.max())
            far = max(far, near + 1e-3)
        return metric_to_depth8(
            depth,
            min_m=near,
            max_m=far,
            near_is_dark=self.cfg.depth_near_is_dark,
            invalid_value=self.cfg.depth_invalid_value,
        )

    def encode(self, frame: Frame) -> EncodedFrame:
        """The vision side of a frame (cached by ``stamp_ns`` when it is not 0)."""
        validate_frame(frame)
        with self._lock:
            return self._encode_locked(frame)

    def _encode_locked(self, frame: Frame) -> EncodedFrame:
        if frame.stamp_ns and frame.stamp_ns in self._cache:
            self._cache.move_to_end(frame.stamp_ns)
            return self._cache[frame.stamp_ns]
        image = preprocess_rgb(frame.rgb, self.cfg.vit_img_size)
        # _depth8 made it 8-bit already
        depth_cfg = replace(self.cfg, depth_input='image', depth_pipeline=self.depth_pipeline)
        depth = preprocess_depth(self._depth8(frame), depth_cfg)
        masks = torch.from_numpy(frame.masks.astype(np.float32))  # [M, H, W]
        encoded = self.model.encode_frame(
            image.to(self.device), depth.to(self.device), masks.to(self.device)
        )
        if frame.stamp_ns:
            self._cache[frame.stamp_ns] = encoded
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return encoded

    # language side ----------------------------------------------------------------------
    def ask(
        self, frame: Frame, question: str, region_ids: Sequence[int] = (), max_new_tokens: int = 0
    ) -> Answer:
        return self.ask_many(frame, [Query(question, region_ids, max_new_tokens)])[0]

    def ask_many(self, frame: Frame, queries: Sequence[Query]) -> list[Answer]:
        """Several questions about one frame: one vision pass, one batched generation."""
        start = time.perf_counter()
        if not queries:
            return []
        validate_frame(frame)
        prompts, resolved = [], []
        for q in queries:
            if not isinstance(q.question, str) or not q.question.strip():
                raise EngineError('the question is empty')
            if q.max_new_tokens < 0:
                raise EngineError(f'max_new_tokens must be >= 0, got {q.max_new_tokens}')
            text, ids = resolve_regions(q.question, q.region_ids, frame.region_ids)
            category = question_category(q.question)
            if not ids and category != 'other':
                raise EngineError(
                    f'this {category} question needs region references '
                    '(<mask> with region_ids, or <regionN>)'
                )
            for rid in ids:
                if not frame.masks[list(frame.region_ids).index(rid)].any():
                    raise EngineError(f'region {rid} has an empty mask')
            try:
                prompts.append(self.tokenizer.build_prompt(text, len(frame.region_ids)))
            except PromptError as exc:
                raise EngineError(str(exc)) from exc
            resolved.append((ids, category))
        budget = max(q.max_new_tokens or self.max_new_tokens for q in queries)
        with self._lock:
            t0 = time.perf_counter()
            encoded = self._encode_locked(frame)
            t1 = time.perf_counter()
            outputs = self.model.answer(
                encoded,
                prompts,
                eos_token_id=self.tokenizer.eos_token_id,
                max_new_tokens=budget,
                sampling=self.sampling,
            )
            t2 = time.perf_counter()
        answers = []
        for q, (ids, category), tokens in zip(queries, resolved, outputs):
            tokens = tokens[: q.max_new_tokens or self.max_new_tokens]
            text = self.tokenizer.decode(tokens).strip()
            answers.append(self._finish(text, q.question, ids, category, frame.stamp_ns))
        end = time.perf_counter()
        for a in answers:
            a.timings_ms = {
                'encode': (t1 - t0) * 1e3,
                'generate': (t2 - t1) * 1e3,
                'total': (end - start) * 1e3,
            }
        return answers

    @staticmethod
    def _finish(text: str, question: str, ids: list[int], category: str, stamp_ns: int) -> Answer:
        mentioned = [ids[k] for k, _, _ in region_indices(text) if k < len(ids)]
        normalized, value = '', math.nan
        if category in CATEGORIES:
            try:
                parsed = normalize_answer(text, category, question)
            except NormalizationError:
                parsed = None
            if parsed is not None:
                normalized = str(parsed)
                if category != 'left_right':
                    value = float(parsed)
                if category == 'mcq' and 0 <= int(parsed) < len(ids):
                    mentioned = [ids[int(parsed)]]
        return Answer(
            text=text,
            normalized_answer=normalized,
            category=category,
            value=value,
            region_ids=list(dict.fromkeys(mentioned)),
            question_region_ids=ids,
            frame_stamp_ns=stamp_ns,
        )
