"""One step lowers the loss per stage; a stopped + resumed run repeats the uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from training_helpers import KIND, batch_for, tiny_config

from training.checkpoint import STATE_JSON, STATE_TENSORS
from training.datasets import load_examples
from training.model_setup import apply_freeze
from training.stages import STAGES, Stage
from training.trainer import Trainer, loss_sum


@pytest.mark.parametrize('stage', list(KIND))
def test_one_step_lowers_the_loss_on_a_fixed_batch(
    stage: str, tiny_dir: Path, synth_root: Path
) -> None:
    torch.manual_seed(0)
    model, batch = batch_for(stage, tiny_dir, synth_root)
    apply_freeze(model, STAGES[Stage(stage)])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    loss, n = loss_sum(model, batch, autocast=False)
    (loss / n).backward()
    opt.step()
    with torch.no_grad():
        after, _ = loss_sum(model, batch, autocast=False)
    assert after.item() < loss.item()


def _examples(synth_root: Path) -> dict[str, list]:
    train = load_examples('warehouse', synth_root, 'train')[:10]
    return {'train': train, 'val': load_examples('warehouse', synth_root, 'val')[:2]}


@pytest.mark.parametrize('examples_per_image', [1, 3])
def test_resume_gives_the_uninterrupted_loss_curve(
    tiny_dir: Path, synth_root: Path, tmp_path: Path, examples_per_image: int
) -> None:
    # 10 examples, batch 2, accum 2 -> 3 steps per epoch; 7 steps cross two epoch borders
    kw = {'grad_accum': 2, 'max_steps': 7, 'examples_per_image': examples_per_image}
    full = Trainer(
        tiny_config('sft', tiny_dir, tmp_path / 'full', **kw), examples=_examples(synth_root)
    ).train()
    part = Trainer(
        tiny_config('sft', tiny_dir, tmp_path / 'part', **kw), examples=_examples(synth_root)
    ).train(stop_after=4)
    assert part.final_dir is not None
    assert (part.final_dir / STATE_JSON).is_file() and (part.final_dir / STATE_TENSORS).is_file()
    rest = Trainer(
        tiny_config('sft', tiny_dir, tmp_path / 'part', **kw),
        resume=part.final_dir,
        examples=_examples(synth_root),
    ).train()
    assert len(full.losses) == 7
    assert part.losses + rest.losses == pytest.approx(full.losses, rel=1e-5, abs=1e-6)
    assert rest.val_loss == pytest.approx(full.val_loss, rel=1e-5)
    assert full.losses[-1] < full.losses[0]
