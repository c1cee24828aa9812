"""Small builders shared by the training tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from smolrgpt_core.modeling.smolrgpt import SmolRGPT
from smolrgpt_core.tokens import SmolRGPTTokenizer
from training.collate import Collator, ExampleDataset
from training.config import TrainConfig
from training.datasets import load_examples
from training.stages import STAGES, Stage

KIND = {'connector_alignment': 'captions', 'refiner_alignment': 'regions', 'sft': 'warehouse'}


def tiny_config(stage: str, tiny_dir: Path, out: Path, **kw: Any) -> TrainConfig:
    fields = {
        'stage': stage,
        'last_stage_checkpoint': str(tiny_dir),
        'batch_size': 2,
        'grad_accum': 1,
        'max_steps': 4,
        'lr': dict.fromkeys(('MP', 'MP_depth', 'rgb_refiner', 'depth_refiner', 'backbones'), 1e-3),
        'output_dir': str(out),
        'tensorboard': False,
        'progress': False,
        'eval_interval': 0,
        'save_interval': 0,
        'threads': 1,
    }
    return TrainConfig(**{**fields, **kw})


def batch_for(
    stage: str, tiny_dir: Path, synth_root: Path, n: int = 3
) -> tuple[SmolRGPT, dict[str, Any]]:
    model = SmolRGPT.from_pretrained(tiny_dir)
    tok = SmolRGPTTokenizer.from_dir(tiny_dir, model.cfg)
    examples = load_examples(KIND[stage], synth_root, 'train')[:n]
    uses_regions = STAGES[Stage(stage)].uses_regions
    ds = ExampleDataset(examples, tok, uses_regions=uses_regions, max_length=2048)
    return model, Collator(tok.pad_token_id)([ds[i] for i in range(len(ds))])
