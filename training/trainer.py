"""The training loop: accumulation, DDP, evaluation, checkpoints and resume.

Its parts live next to it: the model a stage starts from and its freezing in
``model_setup``, AdamW and the schedule in ``optim``, the process group in ``distributed``,
the epoch sampler in ``sampler``, a stage's examples in ``stage_data``, the metrics and
progress output in ``run_log``.

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
from dataclasses import dataclass
import logging
import math
from pathlib import Path
import time
from typing import Any

import torch
from torch import nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Sampler

from smolrgpt_core.modeling.smolrgpt import IGNORE_INDEX
from training.checkpoint import (
    TrainerState,
    load_tokenizer,
    prune_checkpoints,
    resume_state,
    save_checkpoint,
)
from training.collate import Collator, ExampleDataset
from training.config import TrainConfig
from training.data.samples import Sample
from training.distributed import init_distributed
from training.model_setup import apply_freeze, build_model
from training.optim import build_optimizer, lr_factor
from training.perturb import Perturbation
from training.run_log import RunLog
from training.sampler import EpochSampler
from training.stage_data import stage_examples
from training.stages import STAGES, Stage, group_of

log = logging.getLogger(__name__)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            out[key] = value.to(device, non_blocking=True)
        elif isinstance(value, list):
            out[key] = [v.to(device, non_blocking=True) for v in value]
    return out


def target_mass(batch: dict[str, Any]) -> float:
    """What a batch's loss is a sum over: its target count, or their summed weights."""
    if 'target_weights' in batch:
        return float(batch['target_weights'].sum())
    return float((batch['targets'] != IGNORE_INDEX).sum())


def loss_sum(
    model: nn.Module, batch: dict[str, Any], autocast: bool
) -> tuple[torch.Tensor, float]:
    """Summed cross-entropy over the batch's target tokens (each times its
    ``target_weights`` entry when the batch has them), and ``target_mass``."""
    scored = batch['targets'] != IGNORE_INDEX  # [B, T]: the head runs at these positions only
    ctx = torch.autocast('cuda', dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with ctx:
        logits, _ = model(
            batch['input_ids'],
            batch['images'],
            batch.get('depths'),
            batch.get('masks'),
            batch['attention_mask'],
            image_index=batch.get('image_index'),
            logits_at=scored,
        )  # [N, V]
    weights = batch.get('target_weights')
    loss = F.cross_entropy(
        logits.float(),
        batch['targets'][scored],  # [N, V], [N]
        reduction='sum' if weights is None else 'none',
    )
    if weights is not None:
        loss = (loss * weights[scored]).sum()
    return loss, target_mass(batch)


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
        examples: dict[str, list[Sample]] | None = None,
    ) -> None:
        self.cfg = cfg
        self.spec = STAGES[Stage(cfg.stage)]
        self.dist = init_distributed(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.model, self.tokenizer_dir = build_model(cfg, resume)
        self.trainable = apply_freeze(self.model, self.spec, cfg.unfreeze, cfg.freeze)
        self.model.to(self.dist.device)
        self.tok = load_tokenizer(self.tokenizer_dir, self.model.cfg)
        examples = examples or {}
        train = examples.get('train') or stage_examples(cfg, self.spec, 'train')
        val = examples['val'] if 'val' in examples else stage_examples(cfg, self.spec, 'val')
        kw = {'uses_regions': self.spec.uses_regions, 'max_length': cfg.max_length}
        weighted = cfg.deciding_token_weight != 1.0
        self.train_set = ExampleDataset(
            train,
            self.tok,
            **kw,
            deciding_weight=cfg.deciding_token_weight,
            sensor_noise=Perturbation.preset(cfg.sensor_noise),
            sensor_noise_p=cfg.sensor_noise_p,
            seed=cfg.seed,
        )
        # validation keeps the plain mean token loss, comparable between recipes
        self.val_set = ExampleDataset(val, self.tok, **kw) if val else None
        self.collate = Collator(self.tok.pad_token_id, weighted=weighted)
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
            self.state = resume_state(resume, self.optimizer)
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
        self.run_log = RunLog(self.output_dir, main=self.dist.main, tensorboard=cfg.tensorboard)

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
        n_local = sum(target_mass(b) for b in window)
        n_global = self.dist.all_sum(torch.tensor(n_local, device=device))
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
        self.run_log.scalar('train/loss', mean, self.state.step)
        self.run_log.scalar('train/grad_norm', float(grad_norm), self.state.step)
        for group in self.optimizer.param_groups:
            self.run_log.scalar(f'lr/{group["name"]}', group['lr'], self.state.step)
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

    # -- the loop
    def train(self, stop_after: int | None = None) -> TrainResult:
        """Run to ``total_steps`` (or stop after ``stop_after`` steps of this run, saving a
        checkpoint there, as an interrupted run would have)."""
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
        bar = self.run_log.progress(self.total_steps, state.step, cfg.progress, cfg.stage)
        global_batch = cfg.batch_size * self.dist.world
        t0, seen0 = time.perf_counter(), state.samples_seen
        val_loss = None
        while state.step < self.total_steps:
            self.sampler.set_epoch(state.epoch, state.batch_in_epoch)
            self.train_set.set_epoch(state.epoch)
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
                    self.run_log.record(
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
        self.run_log.close()
        return TrainResult(final, losses, val_loss)

    def _eval_and_log(self) -> float | None:
        val_loss = self.evaluate()
        if val_loss is not None:
            self.state.best_val_loss = min(self.state.best_val_loss, val_loss)
            self.run_log.scalar('val/loss', val_loss, self.state.step)
            self.run_log.record({'step': self.state.step, 'val_loss': val_loss})
            if self.dist.main:
                log.info('step %d: val loss %.4f', self.state.step, val_loss)
        return val_loss
