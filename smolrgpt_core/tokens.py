"""Tokenizer, chat template and prompt building.

The tokenizer is SmolLM2's (a Hugging Face ``tokenizer.json``), loaded with the ``tokenizers``
library (no ``transformers`` needed) and extended with three special tokens that must receive
ids base, base+1, base+2 in the order ``<|image|>``, ``<mask_rgb>``, ``<mask_depth>``
(49152..49154 for SmolLM2). Pad = EOS = ``<|im_end|>`` (id 2 in SmolLM2).

A prompt is the user turn ``<|image|>`` x 64 + question, rendered with ChatML and the
generation prompt, with every region reference written as ``<mask_rgb><mask_depth>``. Region
references come in two styles (never mixed in one question):

* dataset style, ``<mask>``: the k-th ``<mask>`` is the k-th mask supplied, and the count must
  equal the number of masks;
* product style, ``<regionN>``: refers to mask N of the frame, in any order or subset.

A model whose config sets ``prompt_region_labels`` reads each pair after a '[Region k] ' label,
k counting the question's references from 0 (the names its answers use).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import itertools
import json
import logging
from pathlib import Path
import re

import numpy as np
from tokenizers import AddedToken, Tokenizer

from smolrgpt_core.checkpoint import (
    MAX_TOKENIZER_BYTES,
    MAX_TOKENIZER_CONFIG_BYTES,
    TOKENIZER_CONFIG_NAME,
    TOKENIZER_NAME,
    CheckpointError,
    parse_json,
    read_json_object,
    read_text,
    resolve_checkpoint,
)
from smolrgpt_core.config import SmolRGPTConfig, json_kind
from smolrgpt_core.inference.types import Prompt

logger = logging.getLogger(__name__)

IM_START = '<|im_start|>'
IM_END = '<|im_end|>'
DATASET_MASK = '<mask>'
DATASET_MASK_RE = re.compile(re.escape(DATASET_MASK))
DATASET_IMAGE = '<image>'


class PromptError(ValueError):
    """A question whose region references do not match the masks."""


def spell_regions(
    text: str, cfg: SmolRGPTConfig, pattern: re.Pattern[str] = DATASET_MASK_RE
) -> str:
    """Each region reference (``<mask>``, or ``pattern``'s matches) -> the model's form: the
    ``<mask_rgb><mask_depth>`` pair, after a '[Region k] ' label (k = the reference's place in
    the text) when the model was trained with ``prompt_region_labels``."""
    pair = cfg.mask_rgb_token + cfg.mask_depth_token
    if not cfg.prompt_region_labels:
        return pattern.sub(pair, text)
    places = itertools.count()
    return pattern.sub(lambda _: f'[Region {next(places)}] {pair}', text)


def render_chat(messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> str:
    """The reference's template: ChatML turns, no system prompt, optional assistant header."""
    text = ''.join(f'{IM_START}{m["role"]}\n{m["content"]}{IM_END}\n' for m in messages)
    return text + (f'{IM_START}assistant\n' if add_generation_prompt else '')


@dataclass
class SmolRGPTTokenizer:
    tokenizer: Tokenizer
    cfg: SmolRGPTConfig
    eos_token: str = IM_END

    def __post_init__(self) -> None:
        specials = list(self.cfg.vlm_extra_tokens.values())
        self.tokenizer.add_special_tokens(
            [AddedToken(t, special=True, normalized=False) for t in specials]
        )
        got = [self.tokenizer.token_to_id(t) for t in specials]
        want = [self.cfg.lm_base_vocab_size + i for i in range(len(specials))]
        if got != want:
            raise ValueError(
                f'special tokens {specials} got ids {got}, expected {want}: the '
                f'tokenizer does not match lm_base_vocab_size '
                f'{self.cfg.lm_base_vocab_size}'
            )
        # any id past the embedding table would fail only later, inside the model
        size = max(self.tokenizer.get_vocab(with_added_tokens=True).values()) + 1
        if size > self.cfg.lm_vocab_size:
            raise ValueError(
                f'the tokenizer has ids up to {size - 1}, past the {self.cfg.lm_vocab_size} '
                'tokens (lm_vocab_size) of the model'
            )
        eos = self.tokenizer.token_to_id(self.eos_token)
        if eos is None:
            raise ValueError(f'the tokenizer has no EOS token {self.eos_token!r}')
        self.eos_token_id = eos
        self.pad_token_id = eos
        self.image_token_id, self.mask_rgb_token_id, self.mask_depth_token_id = got

    @classmethod
    def from_dir(cls, path: str | Path, cfg: SmolRGPTConfig) -> SmolRGPTTokenizer:
        """Load ``tokenizer.json`` (EOS from ``tokenizer_config.json`` when present) from a
        checkpoint directory or ``hf://org/name``. Anything missing, malformed or not fitting
        ``cfg`` is a ``CheckpointError`` naming the file."""
        directory = resolve_checkpoint(path)
        file = directory / TOKENIZER_NAME
        if not file.exists():
            raise CheckpointError(
                f'{file}: no such file (an official stage directory holds no tokenizer: '
                f'copy in the tokenizer.json and tokenizer_config.json of {cfg.lm_tokenizer})'
            )
        text = read_text(file, MAX_TOKENIZER_BYTES)
        data = parse_json(file, text)  # tells the line of bad JSON, unlike tokenizers
        if not isinstance(data, dict):
            raise CheckpointError(f'{file}: must hold a JSON object, got {json_kind(data)}')
        try:
            tokenizer = Tokenizer.from_str(text)
        except Exception as exc:  # the tokenizers library raises bare Exceptions
            raise CheckpointError(f'{file}: not a tokenizer ({exc})') from exc
        eos = IM_END
        config_file = directory / TOKENIZER_CONFIG_NAME
        if config_file.exists():
            settings = read_json_object(config_file, MAX_TOKENIZER_CONFIG_BYTES)
            value = settings.get('eos_token', IM_END)
            eos = value.get('content') if isinstance(value, dict) else value
            if not isinstance(eos, str) or not eos:
                raise CheckpointError(
                    f'{config_file}: eos_token must be a token or an object with its '
                    f'"content", got {json.dumps(value)[:60]}'
                )
        try:
            return cls(tokenizer, cfg, eos)
        except ValueError as exc:
            raise CheckpointError(f'{file}: {exc}') from exc

    def encode(self, text: str) -> list[int]:
        # the template already holds every marker; no post-processor tokens are wanted
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def build_prompt(self, question: str, n_masks: int) -> Prompt:
        """Question with ``<mask>`` or ``<regionN>`` references -> token ids + region order.

        ``n_masks`` is the number of masks available (the sample's or the frame's): the k-th
        ``<mask>`` is mask k, ``<regionN>`` is mask N.
        """
        refs = parse_references(question)
        if refs.style == 'mask':
            if refs.count != n_masks:
                raise PromptError(f'{refs.count} <mask> references but {n_masks} masks')
            return self.prompt(refs, range(refs.count))
        bad = [n for n in refs.tags if n is not None and n >= n_masks]
        if bad:
            raise PromptError(f'references to regions {bad}, but only {n_masks} masks')
        return self.prompt(refs, [n for n in refs.tags if n is not None])

    def prompt(self, refs: RegionReferences, regions: Sequence[int]) -> Prompt:
        """A parsed question whose k-th reference is frame mask ``regions[k]`` -> the prompt."""
        cfg = self.cfg
        if len(regions) != refs.count:
            raise PromptError(f'{refs.count} region references but {len(regions)} regions')
        text = refs.slotted
        reserved = [t for t in (*cfg.vlm_extra_tokens.values(), IM_START, IM_END) if t in text]
        if reserved:
            raise PromptError(f'the question contains reserved tokens {reserved}')
        text = spell_regions(text, cfg, _SLOT_RE)
        user = cfg.image_token * cfg.mp_image_token_length + text
        ids = self.encode(render_chat([{'role': 'user', 'content': user}]))
        counts = [
            ids.count(t)
            for t in (self.image_token_id, self.mask_rgb_token_id, self.mask_depth_token_id)
        ]
        expected = [cfg.mp_image_token_length, refs.count, refs.count]
        if counts != expected:
            raise PromptError(
                f'tokenised prompt holds {counts} image/rgb/depth placeholders, '
                f'expected {expected}'
            )
        return Prompt(tuple(ids), tuple(int(r) for r in regions))


# a reference slot while a prompt is spelt: NUL never survives into a valid question
_SLOT = '\x00'
_SLOT_RE = re.compile(_SLOT)
# the model's own pair (SmolRGPT parquet questions) is a dataset-style reference too
_REFERENCE = re.compile(r'<mask>|<mask_rgb><mask_depth>|<region(\d+)>')


@dataclass(frozen=True)
class RegionReferences:
    """A question's region references, parsed once: the text around them and, per reference,
    N of ``<regionN>`` (None for a dataset ``<mask>``). Never a mix of the two styles."""

    pieces: tuple[str, ...]  # len = count + 1
    tags: tuple[int | None, ...]

    @property
    def count(self) -> int:
        return len(self.tags)

    @property
    def style(self) -> str:
        """'mask' (dataset ``<mask>``), 'tag' (``<regionN>``) or 'none'."""
        if not self.tags:
            return 'none'
        return 'mask' if self.tags[0] is None else 'tag'

    @property
    def slotted(self) -> str:
        """The text with a slot per reference (``prompt`` spells slots in the model's form)."""
        return _SLOT.join(self.pieces)

    @property
    def plain(self) -> str:
        """The text with every reference blanked out (for reading the question's wording)."""
        return ' '.join(self.pieces)


def parse_references(question: str) -> RegionReferences:
    """``<mask>`` (or ``<mask_rgb><mask_depth>``) / ``<regionN>`` references of a question
    (``<image>`` markers dropped)."""
    text = question.replace(DATASET_IMAGE, '').replace(_SLOT, '')
    pieces, tags, last = [], [], 0
    for match in _REFERENCE.finditer(text):
        pieces.append(text[last : match.start()])
        tags.append(None if match.group(1) is None else int(match.group(1)))
        last = match.end()
    pieces.append(text[last:])
    if len({tag is None for tag in tags}) > 1:
        raise PromptError('the question mixes <mask> placeholders and <regionN> tags')
    return RegionReferences(tuple(pieces), tuple(tags))


def prompt_masks(masks: np.ndarray, prompt: Prompt) -> np.ndarray:
    """Masks [M, H, W] reordered to the prompt's references (k-th reference -> k-th row),
    the form the training forward takes."""
    return masks[list(prompt.regions)] if prompt.regions else masks[:0]
