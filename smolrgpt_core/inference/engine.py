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
from collections.abc import Callable, Collection, Sequence
import logging
import math
from pathlib import Path
import threading
import time

import numpy as np
import torch

from smolrgpt_core import depth as depth_codec
from smolrgpt_core.config import SmolRGPTConfig
from smolrgpt_core.generation import token_hook
from smolrgpt_core.inference.backends import Backend, BackendError, load_backend, resolve_device
from smolrgpt_core.inference.geometry_answers import GeometryPath
from smolrgpt_core.inference.requests import (
    Answer,
    EngineError,
    Frame,
    Prepared,
    Query,
    question_category,
    resolve_regions,
    validate_frame,
)
from smolrgpt_core.inference.types import EncodedFrame
from smolrgpt_core.normalize import (
    CATEGORIES,
    NormalizationError,
    normalize_answer,
    region_indices,
)
from smolrgpt_core.preprocess import preprocess_depth8, preprocess_rgb
from smolrgpt_core.sampling import SamplingParams
from smolrgpt_core.settings import ANSWER_MODES, InferenceSettings
from smolrgpt_core.tokens import (
    PromptError,
    SmolRGPTTokenizer,
    parse_references,
)

logger = logging.getLogger(__name__)
# (step, {query index: its new token id}) -> query indices to stop now, or None
QueryTokenHook = Callable[[int, dict[int, int]], 'Collection[int] | None']
# the request types are part of the engine's API (``from ...engine import Frame, Query``)
__all__ = [
    'Answer',
    'EngineError',
    'Frame',
    'Query',
    'SpatialQueryEngine',
    'resolve_regions',
    'validate_frame',
]


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
        self.geometry = GeometryPath(settings)

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
        if m.threads:  # process-wide; before the backend reads it (onnxruntime sessions)
            torch.set_num_threads(m.threads)
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

    def _prepare(self, frame: Frame, q: Query) -> Prepared:
        """Check one question against the bounds and the frame, before anything runs."""
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
        mode = q.mode or self.settings.answer.mode
        if mode not in ANSWER_MODES:
            raise EngineError(f'mode must be one of {", ".join(ANSWER_MODES)}, got {mode!r}')
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
        return Prepared(q, prompt, refs, ids, indices, category, mode)

    def check(self, frame: Frame, query: Query) -> None:
        """EngineError when ``ask_many`` would refuse this question about this (valid) frame;
        nothing runs. Callers batching questions from several sources drop the bad ones
        first, so one bad question does not fail the others."""
        self._prepare(frame, query)

    def ask_many(
        self, frame: Frame, queries: Sequence[Query], on_token: QueryTokenHook | None = None
    ) -> list[Answer]:
        """Several questions about one frame: geometry where the mode asks for it, and one
        vision pass + one batched generation for the questions the model answers.

        ``on_token(step, {query index: token id})`` follows the generation (the questions the
        model answers) and may name questions to stop there (their answers end early)."""
        start = time.perf_counter()
        if not queries:
            return []
        validate_frame(frame, self.settings)
        prepared = [self._prepare(frame, q) for q in queries]
        cross_check = self.settings.answer.cross_check
        measured = self.geometry.measure(frame, prepared)
        t_geometry = time.perf_counter()
        wanted = [
            p.mode == 'model' or cross_check or (p.mode == 'hybrid' and not m.answered)
            for p, m in zip(prepared, measured)
        ]
        rows = [k for k, want in enumerate(wanted) if want]  # query index of each model row
        hook = None
        if on_token is not None:

            def hook(step: int, tokens: list[int]) -> list[bool] | None:
                stop = on_token(step, dict(zip(rows, tokens)))
                return [k in stop for k in rows] if stop else None

        texts, t_encode, t_generate = self._generate(frame, [prepared[k] for k in rows], hook)
        model_texts = iter(texts)
        answers = []
        for p, m, want in zip(prepared, measured, wanted):
            model = self._answer_of(next(model_texts), p, frame) if want else None
            geometry = self._answer_of(m.text, p, frame) if m.answered else None
            if p.mode == 'model' or (p.mode == 'hybrid' and geometry is None):
                chosen, other = model, geometry
            else:  # geometry, or hybrid with a measurement
                chosen, other = geometry, model
            if chosen is None:  # geometry mode, nothing measurable
                chosen = self._answer_of('', p, frame)
                chosen.source = 'none'
            else:
                chosen.source = m.source if chosen is geometry else 'model'
            chosen.cross_check = other.normalized_answer if other is not None else ''
            chosen.geometry_reason = m.reason if p.mode != 'model' else ''
            chosen.detail = m.detail if chosen is geometry else ''
            chosen.regions_3d, chosen.floor = m.regions, m.floor
            answers.append(chosen)
        end = time.perf_counter()
        for a in answers:
            a.timings_ms = {
                'geometry': (t_geometry - start) * 1e3,
                'encode': t_encode,
                'generate': t_generate,
                'total': (end - start) * 1e3,
            }
        return answers

    def _generate(
        self,
        frame: Frame,
        prepared: Sequence[Prepared],
        hook: Callable[[int, list[int]], list[bool] | None] | None = None,
    ) -> tuple[list[str], float, float]:
        """The model's answer texts (one batched generation), and the encode/generate ms."""
        if not prepared:
            return [], 0.0, 0.0
        default = self.settings.generation.max_new_tokens
        budget = max(p.query.max_new_tokens or default for p in prepared)
        with self._lock:
            t0 = time.perf_counter()
            encoded = self._encode_locked(frame)
            t1 = time.perf_counter()
            with token_hook(hook):
                outputs = self.model.answer(
                    encoded,
                    [p.prompt for p in prepared],
                    eos_token_id=self.tokenizer.eos_token_id,
                    max_new_tokens=budget,
                    sampling=self.sampling,
                )
            t2 = time.perf_counter()
        texts = [
            self.tokenizer.decode(tokens[: p.query.max_new_tokens or default]).strip()
            for p, tokens in zip(prepared, outputs)
        ]
        return texts, (t1 - t0) * 1e3, (t2 - t1) * 1e3

    def _answer_of(self, text: str, p: Prepared, frame: Frame) -> Answer:
        return self._finish(text, p.query.question, p.ids, p.category, frame.stamp_ns)

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
