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
from dataclasses import dataclass, field
import logging
import math
from pathlib import Path
import threading
import time

import numpy as np
import torch

from smolrgpt_core import depth as depth_codec
from smolrgpt_core.config import SmolRGPTConfig
from smolrgpt_core.inference.backends import Backend, BackendError, load_backend, resolve_device
from smolrgpt_core.inference.types import EncodedFrame, Prompt
from smolrgpt_core.normalize import (
    CATEGORIES,
    NormalizationError,
    infer_category,
    normalize_answer,
    region_indices,
)
from smolrgpt_core.preprocess import preprocess_depth8, preprocess_rgb
from smolrgpt_core.sampling import SamplingParams
from smolrgpt_core.settings import InferenceSettings
from smolrgpt_core.tokens import (
    PromptError,
    RegionReferences,
    SmolRGPTTokenizer,
    parse_references,
)

logger = logging.getLogger(__name__)


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
    labels: Sequence[str] = ()

    @property
    def nbytes(self) -> int:
        return sum(getattr(a, 'nbytes', 0) for a in (self.rgb, self.depth, self.masks))


@dataclass
class Query:
    question: str
    region_ids: Sequence[int] = ()
    max_new_tokens: int = 0  # 0 = the settings' default


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


def _mask_problem(masks: np.ndarray) -> str | None:
    """Why these masks are not binary, or None. Costs no full-size temporary for uint8."""
    if masks.dtype == bool:
        return None
    if masks.dtype == np.uint8:
        counts = np.bincount(masks.reshape(-1), minlength=256)
        if counts[2:255].any():
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


def _encoded_bytes(encoded: EncodedFrame) -> int:
    return sum(
        t.numel() * t.element_size()
        for t in (encoded.image_embeds, encoded.rgb_regions, encoded.depth_regions)
    )


class SpatialQueryEngine:
    def __init__(
        self,
        model: Backend,
        tokenizer: SmolRGPTTokenizer,
        settings: InferenceSettings | None = None,
        *,
        sampling: SamplingParams | None = None,
    ) -> None:
        self.model = model  # any Backend: SmolRGPT itself, or an exported-graph runner
        self.tokenizer = tokenizer
        self.cfg: SmolRGPTConfig = model.cfg
        self.settings = settings = settings or InferenceSettings()
        self.sampling = sampling
        self.device = torch.device(resolve_device(settings.model.device))
        # the checkpoint's own depth fields win unless the settings say otherwise (README)
        self.depth_range = settings.depth.range_for(self.cfg)
        self.depth_pipeline = settings.depth.pipeline_for(self.cfg)
        overridden = settings.depth.disagreement(self.cfg)
        if overridden:
            logger.warning('depth: %s', overridden)
        self._warned_mono8 = False
        self._cache: OrderedDict[int, tuple[EncodedFrame, int]] = OrderedDict()
        self._cache_bytes = 0
        self._lock = threading.Lock()  # one inference at a time; the cache is shared

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        settings: InferenceSettings | None = None,
        *,
        sampling: SamplingParams | None = None,
    ) -> SpatialQueryEngine:
        """Load a checkpoint directory (config.json, model.safetensors, tokenizer.json)."""
        settings = settings or InferenceSettings()
        m = settings.model
        try:
            model = load_backend(
                m.backend, path, device=m.device, dtype=m.dtype, engine_dir=m.engine_dir or None
            )
            tokenizer = SmolRGPTTokenizer.from_dir(path, model.cfg)
        except (BackendError, OSError, ValueError) as exc:
            raise EngineError(str(exc)) from exc
        return cls(model, tokenizer, settings, sampling=sampling)

    # vision side ------------------------------------------------------------------------
    def _depth8(self, frame: Frame) -> np.ndarray:
        expected = self.settings.depth.encoding
        if expected != 'auto' and depth_codec.encoding(expected).name != frame.depth_encoding:
            raise EngineError(
                f'depth arrives as {frame.depth_encoding}, but depth.encoding is {expected}'
            )
        if (
            frame.depth_encoding == 'mono8'
            and self.depth_range is not None
            and not self._warned_mono8
        ):
            self._warned_mono8 = True
            logger.warning(
                'mono8 depth is a per-image rendering; this checkpoint reads a fixed '
                '%.2f-%.2f m range: send 16UC1/32FC1 depth for meaningful answers',
                *self.depth_range,
            )
        try:
            return depth_codec.to_depth8(
                frame.depth, frame.depth_encoding, self.depth_range, self.cfg
            )
        except ValueError as exc:
            raise EngineError(f'malformed depth: {exc}') from None

    def encode(self, frame: Frame) -> EncodedFrame:
        """The vision side of a frame (cached by ``stamp_ns`` when it is not 0)."""
        validate_frame(frame, self.settings)
        with self._lock:
            return self._encode_locked(frame)

    def _encode_locked(self, frame: Frame) -> EncodedFrame:
        if frame.stamp_ns and frame.stamp_ns in self._cache:
            self._cache.move_to_end(frame.stamp_ns)
            return self._cache[frame.stamp_ns][0]
        image = preprocess_rgb(frame.rgb, self.cfg.vit_img_size)
        depth = preprocess_depth8(self._depth8(frame), self.cfg.vit_img_size, self.depth_pipeline)
        masks = torch.from_numpy(frame.masks if frame.masks.dtype == bool else frame.masks != 0)
        encoded = self.model.encode_frame(
            image.to(self.device), depth.to(self.device), masks.to(self.device)
        )
        if frame.stamp_ns:
            self._remember(frame.stamp_ns, encoded)
        return encoded

    def _remember(self, stamp_ns: int, encoded: EncodedFrame) -> None:
        size = _encoded_bytes(encoded)
        self._cache[stamp_ns] = (encoded, size)
        self._cache_bytes += size
        cache = self.settings.cache
        while len(self._cache) > cache.frames or (
            self._cache_bytes > cache.max_bytes and len(self._cache) > 1
        ):
            _, (_, dropped) = self._cache.popitem(last=False)
            self._cache_bytes -= dropped

    # language side ----------------------------------------------------------------------
    def ask(
        self, frame: Frame, question: str, region_ids: Sequence[int] = (), max_new_tokens: int = 0
    ) -> Answer:
        return self.ask_many(frame, [Query(question, region_ids, max_new_tokens)])[0]

    def _prepare(self, frame: Frame, q: Query) -> tuple[Prompt, list[int], str]:
        """Check one question against the bounds and the frame, before anything runs:
        (prompt, region ids in question order, category)."""
        gen = self.settings.generation
        if not isinstance(q.question, str):
            raise EngineError(f'the question must be text, got {type(q.question).__name__}')
        if not q.question.strip():
            raise EngineError('the question is empty')
        if len(q.question) > gen.max_question_chars:
            raise EngineError(
                f'the question has {len(q.question)} characters, above '
                f'generation.max_question_chars {gen.max_question_chars}'
            )
        if not 0 <= q.max_new_tokens <= gen.max_new_tokens_cap:
            raise EngineError(
                f'max_new_tokens must be in 0..{gen.max_new_tokens_cap} '
                f'(generation.max_new_tokens_cap; 0 = {gen.max_new_tokens}), '
                f'got {q.max_new_tokens}'
            )
        try:
            refs = parse_references(q.question)
        except PromptError as exc:
            raise EngineError(str(exc)) from None
        ids, indices = resolve_regions(refs, q.region_ids, frame.region_ids)
        category = question_category(refs)
        if not ids and category != 'other':
            raise EngineError(
                f'this {category} question needs region references '
                '(<mask> with region_ids, or <regionN>)'
            )
        for rid, index in zip(ids, indices):
            if not frame.masks[index].any():
                raise EngineError(f'region {rid} has an empty mask')
        try:
            prompt = self.tokenizer.prompt(refs, indices)
        except PromptError as exc:
            raise EngineError(str(exc)) from None
        if len(prompt.ids) > gen.max_prompt_tokens:
            raise EngineError(
                f'the prompt is {len(prompt.ids)} tokens, above generation.max_prompt_tokens '
                f'{gen.max_prompt_tokens}'
            )
        return prompt, ids, category

    def ask_many(self, frame: Frame, queries: Sequence[Query]) -> list[Answer]:
        """Several questions about one frame: one vision pass, one batched generation."""
        start = time.perf_counter()
        if not queries:
            return []
        validate_frame(frame, self.settings)
        prepared = [self._prepare(frame, q) for q in queries]
        default = self.settings.generation.max_new_tokens
        budget = max(q.max_new_tokens or default for q in queries)
        with self._lock:
            t0 = time.perf_counter()
            encoded = self._encode_locked(frame)
            t1 = time.perf_counter()
            outputs = self.model.answer(
                encoded,
                [prompt for prompt, _, _ in prepared],
                eos_token_id=self.tokenizer.eos_token_id,
                max_new_tokens=budget,
                sampling=self.sampling,
            )
            t2 = time.perf_counter()
        answers = []
        for q, (_, ids, category), tokens in zip(queries, prepared, outputs):
            tokens = tokens[: q.max_new_tokens or default]
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
