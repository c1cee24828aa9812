"""The training loop: freeze table, AdamW groups, cosine schedule, accumulation, DDP, resume.

Departures from the reference, each fixing a bug of smolrgpt-reference §9:

* the stage comes from the TrainConfig (the CLI), never from the checkpoint's config;
* the loss of an optimizer step is the mean over *all* target tokens of its micro-batches on
  all ranks (the reference averages per-micro-batch means), so 2 processes x B/2 give the
  gradients of 1 process x B;
* every epoch reshuffles (``set_epoch``); checkpoints are saved on a fixed interval and at the
  end, atomically, with everything needed to resume exactly.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
import contextlib
from dataclasses import dataclass, field
import json
import logging
import math
import os
from pathlib import Path
import time
from typing import Any

import torch
from torch import nn
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Sampler

from smolrgpt_core.config import SmolRGPTConfig
from smolrgpt_core.modeling.smolrgpt import IGNORE_INDEX, SmolRGPT
from smolrgpt_core.tokens import SmolRGPTTokenizer
from training.checkpoint import (
    TrainerState,
    load_trainer_state,
    prune_checkpoints,
    save_checkpoint,
    set_rng_state,
)
from training.collate import Collator, ExampleDataset
from training.config import TrainConfig
from training.datasets import Example, load_examples
from training.stages import GROUPS, STAGES, Stage, StageSpec, group_of, is_trainable

log = logging.getLogger(__name__)


# model, freezing, optimizer, schedule --------------------------------------------------------
def build_model(cfg: TrainConfig, resume: str | Path | None = None) -> tuple[SmolRGPT, Path]:
    """-> (model with the CLI stage set, tokenizer dir)."""
    source = resume or cfg.last_stage_checkpoint
    if source:
        model = SmolRGPT.from_pretrained(source)
        tokenizer_dir = Path(cfg.tokenizer or source)
    elif cfg.model_config:
        torch.manual_seed(cfg.seed)
        model_cfg = SmolRGPTConfig.from_json(cfg.model_config)
        if cfg.vision_backbone and cfg.lm_backbone:
            model = SmolRGPT.from_backbones(cfg.vision_backbone, cfg.lm_backbone, model_cfg)
        else:
            model = SmolRGPT(model_cfg)
        if cfg.vit_sincos_positions:
            init_sincos_positions(model, cfg.vit_sincos_base)
        if cfg.refiner_nearest_init:
            init_refiners_nearest(model)
        if not cfg.tokenizer:
            raise ValueError('a fresh model (model_config) needs --tokenizer DIR')
        tokenizer_dir = Path(cfg.tokenizer)
    else:
        raise ValueError('give --last-stage-checkpoint DIR, --resume DIR or --model-config FILE')
    # the stage asked for wins over the one stored in the checkpoint (reference bug §9.1.1)
    model.cfg.stage = cfg.stage
    return model.train(), tokenizer_dir


def sincos_table(grid: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    """[grid*grid, dim] 2D sin-cos positions (half the channels for x, half for y); the
    frequencies run from 1 down to about 1/base per patch."""
    if dim % 4:
        raise ValueError(f'sin-cos positions need a width divisible by 4, got {dim}')
    freqs = 1.0 / base ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    coords = torch.arange(grid, dtype=torch.float64)
    ys, xs = torch.meshgrid(coords, coords, indexing='ij')  # [grid, grid] each, row-major

    def encode(pos: torch.Tensor) -> torch.Tensor:
        angles = pos.flatten()[:, None] * freqs[None]  # [N, dim/4]
        return torch.cat((angles.sin(), angles.cos()), 1)  # [N, dim/2]

    return torch.cat((encode(xs), encode(ys)), 1).float()  # [N, dim]


@torch.no_grad()
def init_sincos_positions(model: SmolRGPT, base: float = 10000.0) -> None:
    embedding = model.vision_encoder.patch_embedding.position_embedding  # [1, N, D]
    embedding.copy_(sincos_table(model.cfg.vit_grid, embedding.shape[-1], base)[None])


@torch.no_grad()
def init_refiners_nearest(model: SmolRGPT) -> None:
    """Copy each refiner ConvTranspose2d's top-left tap to its other taps (ICNR init).

    A stride-2, 2x2 transposed conv gives each of the four output pixels of an input pixel
    its own random kernel, so a random refiner paints an 8x8 pattern inside every token that
    is far stronger than the differences between tokens (measured on the embedded model:
    the image column explains 0.1 % of the refined map's variance, 17 % of the token map's).
    With equal taps the upsampling starts as nearest-neighbour and training breaks symmetry.
    """
    for refiner in (model.rgb_refiner, model.depth_refiner):
        for layer in refiner.modules():
            if isinstance(layer, nn.ConvTranspose2d):
                weight = layer.weight  # [C_in, C_out, kh, kw]
                weight.copy_(weight[:, :, :1, :1].expand_as(weight))


def apply_freeze(
    model: nn.Module, spec: StageSpec, unfreeze: Sequence[str] = (), freeze: Sequence[str] = ()
) -> list[str]:
    """Set requires_grad per the stage table; returns the trainable parameter names."""
    trainable = []
    for name, p in model.named_parameters():
        p.requires_grad_(is_trainable(name, spec, tuple(unfreeze), tuple(freeze)))
        if p.requires_grad:
            trainable.append(name)
    return trainable


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """One AdamW group per reference group that has trainable parameters, in table order."""
    grouped: dict[str, list[nn.Parameter]] = {g: [] for g in GROUPS}
    for name, p in model.named_parameters():
        if p.requires_grad:
            grouped[group_of(name)].append(p)
    groups = [
        {'params': ps, 'lr': cfg.lr[g], 'peak_lr': cfg.lr[g], 'name': g}
        for g, ps in grouped.items()
        if ps
    ]
    if not groups:
        raise ValueError(f'stage {cfg.stage} leaves no trainable parameters')
    return torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)


def lr_factor(step: int, total: int, warmup_ratio: float, min_ratio: float) -> float:
    """Linear warmup, cosine to ``min_ratio`` x peak, then flat (§4.4)."""
    warmup = int(warmup_ratio * total)
    if step < warmup:
        return (step + 1) / warmup
    if step > total:
        return min_ratio
    progress = (step - warmup) / max(1, total - warmup)
    return min_ratio + 0.5 * (1 - min_ratio) * (1 + math.cos(math.pi * progress))


# distributed ----------------------------------------------------------------------------------
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device('cpu'))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, value: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            dist.all_reduce(value)
        return value


def init_distributed(device: str) -> Dist:
    """torchrun sets RANK/WORLD_SIZE/LOCAL_RANK: NCCL on GPUs, gloo on CPU."""
    cuda = device == 'cuda' or (device == 'auto' and torch.cuda.is_available())
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world <= 1:
        return Dist(device=torch.device('cuda' if cuda else 'cpu'))
    if not dist.is_initialized():
        dist.init_process_group('nccl' if cuda else 'gloo')
    local = int(os.environ.get('LOCAL_RANK', '0'))
    if cuda:
        torch.cuda.set_device(local)  # the local rank, so several nodes work too
    return Dist(
        dist.get_rank(), world, torch.device(f'cuda:{local}') if cuda else torch.device('cpu')
    )


class EpochSampler(Sampler[int]):
    """A seeded shuffle per epoch, sharded by rank, that can start mid-epoch (resume).

    With ``groups`` (one key per example, e.g. its image) and ``group_size`` K > 1, each
    epoch cuts every key's shuffled examples into runs of up to K and shuffles the runs, so a
    batch holds about B/K images with K questions each and the vision side (shared per image
    in a batch, see the collator) runs B/K times instead of B.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        rank: int,
        world: int,
        seed: int,
        groups: Sequence[str] | None = None,
        group_size: int = 1,
    ) -> None:
        if groups is not None and len(groups) != n:
            raise ValueError(f'{len(groups)} group keys for {n} examples')
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world = rank, world
        self.groups, self.group_size = groups, group_size
        self.epoch = 0
        self.start_batch = 0
        # whole global batches only, as DistributedSampler + drop_last would do
        per_rank = n // world
        self.per_rank = per_rank // batch_size * batch_size if per_rank >= batch_size else per_rank

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def _order(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        if self.groups is None or self.group_size <= 1:
            return order
        by_key: dict[str, list[int]] = {}
        for i in order:
            by_key.setdefault(self.groups[i], []).append(i)
        runs = [
            same[j : j + self.group_size]
            for same in by_key.values()
            for j in range(0, len(same), self.group_size)
        ]
        return [i for r in torch.randperm(len(runs), generator=g).tolist() for i in runs[r]]

    def __iter__(self) -> Iterator[int]:
        order = self._order()
        if self.world > 1:  # rank r takes the r-th slice of every global batch
            b = min(self.batch_size, self.per_rank)  # one rank's batch
            order = [
                order[start + self.rank * b + j]
                for start in range(0, self.per_rank * self.world, b * self.world)
                for j in range(b)
            ]
        mine = order[: self.per_rank]
        return iter(mine[self.start_batch * self.batch_size :])

    def __len__(self) -> int:
        return max(0, self.per_rank - self.start_batch * self.batch_size)

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(self.per_rank / self.batch_size)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            out[key] = value.to(device, non_blocking=True)
        elif isinstance(value, list):
            out[key] = [v.to(device, non_blocking=True) for v in value]
    return out


def loss_sum(model: nn.Module, batch: dict[str, Any], autocast: bool) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the batch's target tokens, and their count."""
    targets = batch['targets']
    ctx = torch.autocast('cuda', dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with ctx:
        logits, _ = model(
            batch['input_ids'],
            batch['images'],
            batch.get('depths'),
            batch.get('masks'),
            batch['attention_mask'],
            image_index=batch.get('image_index'),
        )
    loss = F.cross_entropy(
        logits.flatten(0, 1).float(),
        targets.flatten(),  # [B*T, V], [B*T]
        ignore_index=IGNORE_INDEX,
        reduction='sum',
    )
    return loss, int((targets != IGNORE_INDEX).sum())


# data ------------------------------------------------------------------------------------------
def stage_examples(cfg: TrainConfig, spec: StageSpec, split: str) -> list[Example]:
    if not cfg.data_root:
        raise ValueError('--data-root is required')
    kinds = cfg.datasets or list(spec.default_data)
    roots = [Path(r) for r in cfg.data_root.split(os.pathsep)]
    examples: list[Example] = []
    for root in roots:
        for kind in kinds:
            try:
                examples += load_examples(kind, root, split, cfg.seed)
            except FileNotFoundError:
                if split == 'train':
                    raise
                log.warning('no %s split of %s in %s', split, kind, root)
    limit = cfg.max_train_samples if split == 'train' else cfg.max_val_samples
    if limit and len(examples) > limit:
        g = torch.Generator().manual_seed(cfg.seed)
        examples = [
            examples[i]
            for i in sorted(torch.randperm(len(examples), generator=g)[:limit].tolist())
        ]
    if split == 'train' and cfg.category_repeats:
        examples = repeat_categories(examples, cfg.category_repeats)
    return examples


def repeat_categories(examples: list[Example], repeats: dict[str, int]) -> list[Example]:
    """Each example of a listed category ``repeats[category]`` times (the sampler shuffles)."""
    present = {ex.category for ex in examples}
    missing = sorted(set(repeats) - present)
    if missing:
        raise ValueError(
            f'category_repeats names {missing}, which no training example has '
            f'(categories: {sorted(c for c in present if c)})'
        )
    return [ex for ex in examples for _ in range(repeats.get(ex.category or '', 1))]


# the loop ------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    final_dir: Path | None
    losses: list[float]  # per optimizer step (this run only)
    val_loss: float | None


class Trainer:
    def __init__(
        self,
        cfg: TrainConfig,
        resume: str | Path | None = None,
        examples: dict[str, list[Example]] | None = None,
    ) -> None:
        self.cfg = cfg
        self.spec = STAGES[Stage(cfg.stage)]
        self.dist = init_distributed(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.model, self.tokenizer_dir = build_model(cfg, resume)
        self.trainable = apply_freeze(self.model, self.spec, cfg.unfreeze, cfg.freeze)
        self.model.to(self.dist.device)
        self.tok = SmolRGPTTokenizer.from_dir(self.tokenizer_dir, self.model.cfg)
        examples = examples or {}
        train = examples.get('train') or stage_examples(cfg, self.spec, 'train')
        val = examples['val'] if 'val' in examples else stage_examples(cfg, self.spec, 'val')
        kw = {'uses_regions': self.spec.uses_regions, 'max_length': cfg.max_length}
        self.train_set = ExampleDataset(train, self.tok, **kw)
        self.val_set = ExampleDataset(val, self.tok, **kw) if val else None
        self.collate = Collator(self.tok.pad_token_id)
        self.sampler = EpochSampler(
            len(self.train_set),
            cfg.batch_size,
            self.dist.rank,
            self.dist.world,
            cfg.seed,
            groups=[self.train_set.image_key(i) for i in range(len(self.train_set))],
            group_size=cfg.examples_per_image,
        )
        updates_per_epoch = math.ceil(self.sampler.batches_per_epoch / cfg.grad_accum)
        self.total_steps = cfg.max_steps or updates_per_epoch * cfg.epochs
        self.optimizer = build_optimizer(self.model, cfg)
        self.state = TrainerState()
        if resume:
            self.state, opt_state, rng = load_trainer_state(resume)
            self.optimizer.load_state_dict(opt_state)
            set_rng_state(rng)
        self.ddp: nn.Module = self.model
        if self.dist.world > 1:
            self.ddp = nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[self.dist.device.index]
                if self.dist.device.index is not None
                else None,
            )
        self.autocast = self.dist.device.type == 'cuda'
        self.output_dir = Path(cfg.output_dir)
        self.writer = None
        if self.dist.main and cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.output_dir / 'tensorboard'))
            except ImportError:
                log.warning('tensorboard is not installed; no tensorboard logs')

    # -- helpers
    def _loader(
        self, dataset: ExampleDataset, sampler: Sampler[int] | Sequence[int]
    ) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            collate_fn=self.collate,
            num_workers=self.cfg.num_workers,
            pin_memory=self.dist.device.type == 'cuda',
        )

    def _windows(self) -> Iterator[list[dict[str, Any]]]:
        window: list[dict[str, Any]] = []
        for batch in self._loader(self.train_set, self.sampler):
            window.append(batch)
            if len(window) == self.cfg.grad_accum:
                yield window
                window = []
        if window:  # the last micro-batches of the epoch still update (as the reference)
            yield window

    def _set_lr(self) -> float:
        factor = lr_factor(
            self.state.step, self.total_steps, self.cfg.warmup_ratio, self.cfg.min_lr_ratio
        )
        for group in self.optimizer.param_groups:
            group['lr'] = group['peak_lr'] * factor
        return self.optimizer.param_groups[0]['lr']

    def accumulate(self, window: list[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Backward over the micro-batches of one optimizer step; gradients = d(mean token
        loss over every rank's targets). Returns (summed loss, global target count)."""
        device = self.dist.device
        n_local = sum(int((b['targets'] != IGNORE_INDEX).sum()) for b in window)
        n_global = self.dist.all_sum(torch.tensor(float(n_local), device=device))
        scale = self.dist.world / n_global.clamp(min=1.0)  # DDP averages over ranks
        total = torch.zeros((), device=device)
        for j, batch in enumerate(window):
            sync = j == len(window) - 1 or self.dist.world == 1
            ctx = contextlib.nullcontext() if sync else self.ddp.no_sync()
            with ctx:
                loss, _ = loss_sum(self.ddp, to_device(batch, device), self.autocast)
                (loss * scale).backward()
            total += loss.detach()
        return total, n_global

    def step(self, window: list[dict[str, Any]]) -> float:
        """One optimizer step over micro-batches; returns the step's mean token loss."""
        total, n_global = self.accumulate(window)
        params = [p for p in self.model.parameters() if p.requires_grad]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm)
        lr = self._set_lr()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        mean = float(self.dist.all_sum(total) / n_global.clamp(min=1.0))
        if self.writer is not None:
            self.writer.add_scalar('train/loss', mean, self.state.step)
            self.writer.add_scalar('train/grad_norm', float(grad_norm), self.state.step)
            for group in self.optimizer.param_groups:
                self.writer.add_scalar(f'lr/{group["name"]}', group['lr'], self.state.step)
        self._last_lr = lr
        return mean

    @torch.no_grad()
    def evaluate(self) -> float | None:
        if self.val_set is None:
            return None
        self.model.eval()
        shard = list(range(self.dist.rank, len(self.val_set), self.dist.world))
        total = torch.zeros(2, device=self.dist.device)
        for batch in self._loader(self.val_set, shard):
            loss, n = loss_sum(self.model, to_device(batch, self.dist.device), self.autocast)
            total += torch.stack((loss, torch.tensor(float(n), device=loss.device)))
        self.model.train()
        total = self.dist.all_sum(total)
        return float(total[0] / total[1].clamp(min=1.0))

    def save(self, name: str) -> Path | None:
        if not self.dist.main:
            return None
        path = save_checkpoint(
            self.output_dir / name,
            self.model,
            tokenizer_dir=self.tokenizer_dir,
            optimizer=self.optimizer,
            state=self.state,
            train_config=self.cfg,
        )
        if name.startswith('checkpoint-'):
            prune_checkpoints(self.output_dir, self.cfg.keep_checkpoints)
        return path

    def _log(self, record: dict[str, Any]) -> None:
        if self.dist.main:
            with open(self.output_dir / 'metrics.jsonl', 'a', encoding='utf-8') as f:
                f.write(json.dumps(record) + '\n')

    # -- the loop
    def train(self, stop_after: int | None = None) -> TrainResult:
        """Run to ``total_steps`` (or stop after ``stop_after`` steps of this run, saving a
        checkpoint there, as an interrupted run would have)."""
        from tqdm import tqdm

        cfg, state = self.cfg, self.state
        if self.dist.main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            cfg.to_json(self.output_dir / 'train_config.json')
            log.info(
                'stage %s: %d trainable parameters in %s; %d train / %d val examples; '
                '%d optimizer steps',
                cfg.stage,
                sum(p.numel() for p in self.model.parameters() if p.requires_grad),
                sorted({group_of(n) for n in self.trainable} | set(cfg.unfreeze)),
                len(self.train_set),
                len(self.val_set or []),
                self.total_steps,
            )
        losses: list[float] = []
        bar = tqdm(
            total=self.total_steps,
            initial=state.step,
            disable=not (self.dist.main and cfg.progress),
            desc=cfg.stage,
            unit='step',
        )
        global_batch = cfg.batch_size * self.dist.world
        t0, seen0 = time.perf_counter(), state.samples_seen
        val_loss = None
        while state.step < self.total_steps:
            self.sampler.set_epoch(state.epoch, state.batch_in_epoch)
            for window in self._windows():
                loss = self.step(window)
                losses.append(loss)
                state.step += 1
                state.batch_in_epoch += len(window)
                state.samples_seen += global_batch * len(window)
                rate = (state.samples_seen - seen0) / max(1e-9, time.perf_counter() - t0)
                bar.update(1)
                bar.set_postfix(
                    loss=f'{loss:.3f}', lr=f'{self._last_lr:.2e}', samples_s=f'{rate:.1f}'
                )
                if state.step % cfg.log_interval == 0:
                    self._log(
                        {
                            'step': state.step,
                            'loss': loss,
                            'lr': self._last_lr,
                            'samples_per_s': rate,
                        }
                    )
                if cfg.eval_interval and state.step % cfg.eval_interval == 0:
                    val_loss = self._eval_and_log()
                if cfg.save_interval and state.step % cfg.save_interval == 0:
                    self.save(f'checkpoint-{state.step}')
                if stop_after is not None and len(losses) >= stop_after:
                    self.save(f'checkpoint-{state.step}')
                    bar.close()
                    return TrainResult(
                        self.output_dir / f'checkpoint-{state.step}', losses, val_loss
                    )
                if state.step >= self.total_steps:
                    break
            else:
                state.epoch += 1
                state.batch_in_epoch = 0
        bar.close()
        val_loss = self._eval_and_log()
        final = self.save('final')
        if self.writer is not None:
            self.writer.close()
        return TrainResult(final, losses, val_loss)

    def _eval_and_log(self) -> float | None:
        val_loss = self.evaluate()
        if val_loss is not None:
            self.state.best_val_loss = min(self.state.best_val_loss, val_loss)
            if self.writer is not None:
                self.writer.add_scalar('val/loss', val_loss, self.state.step)
            self._log({'step': self.state.step, 'val_loss': val_loss})
            if self.dist.main:
                log.info('step %d: val loss %.4f', self.state.step, val_loss)
        return val_loss
