"""``smolrgpt train`` / ``python -m training.train``: run one stage of the curriculum.

    smolrgpt train --stage refiner_alignment --last-stage-checkpoint runs/stage1/final \\
        --data-root datasets/osd-110k-smolRGPT
    torchrun --nproc-per-node=2 -m training.train --stage sft --last_stage_checkpoint DIR ...

The stage's JSON in training/configs/ gives the defaults (``--config FILE`` replaces it); any
TrainConfig field can be overridden with ``--field value``. The stage given here always wins
over the stage stored in a checkpoint.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import logging
from pathlib import Path
import sys

HELP = 'train one stage (connector_alignment, refiner_alignment, sft) of the curriculum'
STAGE_NAMES = ('connector_alignment', 'refiner_alignment', 'sft')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from training.config import add_override_arguments

    parser.add_argument('--stage', required=True, choices=STAGE_NAMES)
    parser.add_argument(
        '--config',
        type=Path,
        help="TrainConfig JSON (default: the stage's file in training/configs/)",
    )
    parser.add_argument('--resume', type=Path, help='continue a run from one of its checkpoints')
    add_override_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from smolrgpt_cli.errors import CommandError
    from training.config import TrainConfig, apply_lr_overrides, overrides_from_args
    from training.trainer import Trainer

    try:
        cfg = TrainConfig.for_stage(args.stage, args.config, **overrides_from_args(args))
        apply_lr_overrides(cfg, args.lr_overrides)
        if args.resume is None and not (cfg.last_stage_checkpoint or cfg.model_config):
            raise ValueError(
                'give --last-stage-checkpoint DIR (or --model-config FILE '
                '--tokenizer DIR for a fresh model, or --resume DIR)'
            )
        trainer = Trainer(cfg, resume=args.resume)
    except (ValueError, FileNotFoundError) as exc:  # CheckpointError is a ValueError
        raise CommandError(str(exc)) from exc
    result = trainer.train()
    if result.final_dir is not None:
        print(
            f'final checkpoint: {result.final_dir}'
            + (f' (val loss {result.val_loss:.4f})' if result.val_loss is not None else '')
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from smolrgpt_cli.errors import CommandError

    parser = argparse.ArgumentParser(prog='python -m training.train', description=HELP)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    try:
        return run(args)
    except CommandError as exc:
        print(f'training.train: error: {exc}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
