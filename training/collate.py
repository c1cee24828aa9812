"""Examples -> token ids with loss targets -> right-sized, left-padded batches.

Loss targets (smolrgpt-reference §4.5): the tokens of every assistant answer plus its
``<|im_end|>`` and the newline after it; the user turn, image and region placeholders and the
assistant header are context only. Each segment is tokenised on its own, exactly as the
inference prompt is (the added special tokens split the text there anyway).

Batches are padded on the left to the longest sample of the batch (not to a fixed 512), so
generation-style left padding and training agree. An image that several samples of a batch
share is stacked once (``image_index`` maps samples to images), so the vision side runs once
per distinct image. The k-th ``<mask_rgb><mask_depth>`` pair of
a sample is its k-th mask; the dataset checks the counts when it tokenises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import logging
from pathlib import Path
import zlib

import numpy as np
import torch
from torch.utils.data import Dataset

from smolrgpt_core.config import SmolRGPTConfig
from smolrgpt_core.masks import rles_decode
from smolrgpt_core.modeling.smolrgpt import IGNORE_INDEX
from smolrgpt_core.preprocess import masks_to_tensor, preprocess_depth, preprocess_rgb
from smolrgpt_core.tokens import DATASET_IMAGE, IM_END, IM_START, SmolRGPTTokenizer, spell_regions
from training.data.samples import Sample
from training.data.sensors import model_depth_path, sensor_depth
from training.deciding import deciding_span
from training.perturb import Perturbation, perturb_masks

log = logging.getLogger(__name__)


def user_text(question: str, cfg: SmolRGPTConfig, first: bool) -> str:
    """Dataset question -> model user turn: no ``<image>``, each ``<mask>`` written as
    inference writes it (``spell_regions``), the image placeholders prepended to the first
    turn."""
    text = spell_regions(question.replace(DATASET_IMAGE, ''), cfg)
    return cfg.image_token * cfg.mp_image_token_length + text if first else text


def encode_example(
    example: Sample, tok: SmolRGPTTokenizer, deciding_weight: float = 1.0
) -> tuple[list[int], list[float]]:
    """-> token ids and a same-length list of loss weights: 0 for context, 1 for an answer
    token, ``deciding_weight`` for a token of the last answer's deciding span
    (``training.deciding``: what the official metric reads)."""
    ids: list[int] = []
    target: list[float] = []
    last = len(example.turns) - 1
    for i, (user, answer) in enumerate(example.turns):
        if answer is None:
            raise ValueError(f'example {example.id} has an unanswered turn')
        for text in (
            f'{IM_START}user\n{user_text(user, tok.cfg, i == 0)}{IM_END}\n',
            f'{IM_START}assistant\n',
        ):
            piece = tok.encode(text)
            ids += piece
            target += [0.0] * len(piece)
        text = f'{answer}{IM_END}\n'
        span = None
        if deciding_weight != 1.0 and i == last:
            span = deciding_span(answer, example.category, example.normalized_answer)
        if span is None:
            piece = tok.encode(text)
            weights = [1.0] * len(piece)
        else:
            # the same ids as encode() (one segment); offsets say which tokens hold the span
            encoding = tok.tokenizer.encode(text, add_special_tokens=False)
            piece = encoding.ids
            weights = [
                deciding_weight if s < span[1] and e > span[0] else 1.0
                for s, e in encoding.offsets
            ]
        ids += piece
        target += weights
    n_regions = ids.count(tok.mask_rgb_token_id)
    if n_regions != ids.count(tok.mask_depth_token_id) or n_regions != len(example.rle or []):
        raise ValueError(
            f'example {example.id}: {n_regions} region token pairs but '
            f'{len(example.rle or [])} masks'
        )
    return ids, target


def load_image(path: Path, kind: str, cfg: SmolRGPTConfig) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as image:
        if kind == 'rgb':
            return preprocess_rgb(image.convert('RGB'), cfg.vit_img_size)
        # the 8-bit depth PNG as stored, or millimetres for a metric-depth model
        return preprocess_depth(np.asarray(image), cfg)


class ExampleDataset(Dataset):
    """Tokenised once up front; images are preprocessed lazily and cached (small datasets)."""

    def __init__(
        self,
        examples: Sequence[Sample],
        tok: SmolRGPTTokenizer,
        *,
        uses_regions: bool,
        max_length: int,
        deciding_weight: float = 1.0,
        sensor_noise: Perturbation | None = None,
        sensor_noise_p: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.tok = tok
        self.uses_regions = uses_regions
        if sensor_noise is not None and tok.cfg.depth_input != 'metric':
            raise ValueError(
                'sensor_noise perturbs millimetre depth: it needs a model with '
                f'depth_input "metric", this one has {tok.cfg.depth_input!r}'
            )
        self.sensor_noise, self.sensor_noise_p, self.seed = sensor_noise, sensor_noise_p, seed
        self.epoch = 0
        self._noisy_depth: tuple[tuple[int, str], torch.Tensor] | None = None
        self.examples: list[Sample] = []
        self.encoded: list[tuple[list[int], list[float]]] = []
        too_long = 0
        for ex in examples:
            if uses_regions and not ex.rle:
                raise ValueError(f'example {ex.id} has no region masks; this stage needs them')
            ids, target = encode_example(ex, tok, deciding_weight)
            if len(ids) > max_length:
                too_long += 1
                continue
            self.examples.append(ex)
            self.encoded.append((ids, target))
        if too_long:
            log.warning('dropped %d examples longer than max_length %d', too_long, max_length)
        if not self.examples:
            raise ValueError('no usable training examples')
        # model-size images are small: keep each preprocessed once (per worker process)
        self._images: dict[tuple[str, str], torch.Tensor] = {}

    def _image(self, path: Path, kind: str) -> torch.Tensor:
        key = (str(path), kind)
        if key not in self._images:
            self._images[key] = load_image(path, kind, self.tok.cfg)
        return self._images[key]

    def __len__(self) -> int:
        return len(self.examples)

    def _depth_path(self, ex: Sample) -> Path:
        metric = self.tok.cfg.depth_input == 'metric'
        return model_depth_path(Path(ex.rgb_path), ex.depth_path, metric)

    def image_key(self, index: int) -> str:
        """What identifies the sample's vision input: samples with equal keys share it."""
        ex = self.examples[index]
        depth = ex.depth_path if self.uses_regions else None
        return f'{ex.rgb_path}|{depth}'

    def __getitem__(self, index: int) -> dict[str, object]:
        ex = self.examples[index]
        ids, target = self.encoded[index]
        item: dict[str, object] = {
            'input_ids': ids,
            'target': target,
            'image_key': self.image_key(index),
            'image': self._image(Path(ex.rgb_path), 'rgb'),
        }
        if self.uses_regions:
            noisy = self._sensor_noise(index)
            if noisy is None:
                item['depth'] = self._image(self._depth_path(ex), 'depth')
                item['masks'] = masks_to_tensor(ex.rle)  # [M, H, W]
            else:
                item['depth'], item['masks'] = noisy
        return item

    def set_epoch(self, epoch: int) -> None:
        """Sensor noise is drawn afresh each epoch (the trainer calls this with the
        sampler's)."""
        self.epoch = epoch

    def _sensor_noise(self, index: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(depth [3, S, S], masks [M, H, W]) as a perturbed sensor would give them, or None
        for a clean draw. The draw depends only on (seed, epoch, image), so every example of
        an image in an epoch sees the same depth frame, as the shared vision pass needs; the
        examples of one image come in runs, so the last frame is kept for the next."""
        if self.sensor_noise is None or self.sensor_noise_p <= 0.0:
            return None
        ex, key = self.examples[index], self.image_key(index)
        image = zlib.crc32(key.encode('utf-8'))
        rng = np.random.default_rng([self.seed, self.epoch, image])
        if rng.random() >= self.sensor_noise_p:
            return None
        if self._noisy_depth is None or self._noisy_depth[0] != (self.epoch, key):
            self._depth_path(ex)  # the clear error when the dataset has no millimetre depth
            mm, _ = sensor_depth(Path(ex.rgb_path), None, (0, 0), self.sensor_noise, rng)
            self._noisy_depth = ((self.epoch, key), preprocess_depth(mm, self.tok.cfg))
        # the masks draw from their own stream: it must not depend on whether depth was cached
        mask_rng = np.random.default_rng([self.seed, self.epoch, image, index])
        masks = perturb_masks(rles_decode(list(ex.rle)).astype(bool), self.sensor_noise, mask_rng)
        return self._noisy_depth[1], masks_to_tensor(masks)


@dataclass
class Collator:
    pad_token_id: int
    # also return ``target_weights`` [B, T] (the loss weight of each target; 0 elsewhere)
    weighted: bool = False

    def __call__(self, items: Sequence[dict[str, object]]) -> dict[str, object]:
        T = max(len(it['input_ids']) for it in items)
        B = len(items)
        input_ids = torch.full((B, T), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros(B, T, dtype=torch.long)
        targets = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)
        weights = torch.zeros(B, T) if self.weighted else None
        for b, it in enumerate(items):
            ids = torch.tensor(it['input_ids'], dtype=torch.long)
            weight = torch.tensor(it['target'], dtype=torch.float32)
            n = len(ids)
            input_ids[b, T - n :] = ids
            attention[b, T - n :] = 1
            # label[t] = token[t + 1] where that token is a target (the model does not shift)
            shifted = torch.where(weight[1:] > 0, ids[1:], IGNORE_INDEX)  # [n - 1]
            targets[b, T - n : T - 1] = shifted
            if weights is not None:
                weights[b, T - n : T - 1] = weight[1:]
        # each distinct image once; image_index[b] says which one sample b looks at
        first: dict[object, int] = {}
        for b, it in enumerate(items):
            first.setdefault(it.get('image_key', b), b)
        slot = {key: u for u, key in enumerate(first)}
        distinct = [items[b] for b in first.values()]
        batch: dict[str, object] = {
            'input_ids': input_ids,
            'attention_mask': attention,
            'targets': targets,
            **({'target_weights': weights} if weights is not None else {}),
            'images': torch.stack([it['image'] for it in distinct]),  # [U, 3, S, S]
            'image_index': torch.tensor(
                [slot[it.get('image_key', b)] for b, it in enumerate(items)]
            ),  # [B]
        }
        if 'depth' in items[0]:
            batch['depths'] = torch.stack([it['depth'] for it in distinct])  # [U, 3, S, S]
            batch['masks'] = [it['masks'] for it in items]
        return batch
