"""`smolrgpt train`, `python -m training.train` and `smolrgpt generate` end to end (tiny)."""

from __future__ import annotations

import json
from pathlib import Path

from smolrgpt_cli.main import main as smolrgpt
from smolrgpt_core.modeling.smolrgpt import SmolRGPT
from training.train import main as train_main

COMMON = [
    '--max-steps',
    '2',
    '--batch-size',
    '2',
    '--grad-accum',
    '1',
    '--no-tensorboard',
    '--no-progress',
    '--max-val-samples',
    '2',
    '--threads',
    '1',
]


def test_smolrgpt_train_sft_writes_a_loadable_checkpoint(
    tiny_dir: Path, synth_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / 'run'
    rc = smolrgpt(
        [
            'train',
            '--stage',
            'sft',
            '--last-stage-checkpoint',
            str(tiny_dir),
            '--data-root',
            str(synth_root),
            '--output-dir',
            str(out),
            *COMMON,
        ]
    )
    assert rc == 0
    model = SmolRGPT.from_pretrained(out / 'final')
    assert model.cfg.stage == 'sft'
    assert {
        'config.json',
        'model.safetensors',
        'tokenizer.json',
        'trainer_state.json',
        'trainer_state.safetensors',
        'train_config.json',
    } <= {p.name for p in (out / 'final').iterdir()}
    lines = (out / 'metrics.jsonl').read_text().splitlines()
    assert any('val_loss' in json.loads(line) for line in lines)


def test_upstream_flag_spelling_and_resume(
    tiny_dir: Path, synth_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / 'run'
    args = [
        '--stage',
        'refiner_alignment',
        '--last_stage_checkpoint',
        str(tiny_dir),
        '--data_root',
        str(synth_root),
        '--output_dir',
        str(out),
        *COMMON,
    ]
    assert train_main(args) == 0
    # resume the finished 2-step run with a longer budget: it continues at step 2
    assert train_main([*args, '--max-steps', '3', '--resume', str(out / 'final')]) == 0
    from training.checkpoint import load_trainer_state

    state, _, _ = load_trainer_state(out / 'final')
    assert state.step == 3


def test_missing_init_is_a_one_line_error(synth_root: Path, capsys) -> None:
    rc = smolrgpt(['train', '--stage', 'sft', '--data-root', str(synth_root)])
    assert rc == 2
    assert 'last-stage-checkpoint' in capsys.readouterr().err


def test_generate_writes_jsonl_with_ground_truth(
    tiny_dir: Path, synth_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / 'answers.jsonl'
    rc = smolrgpt(
        [
            'generate',
            '--checkpoint',
            str(tiny_dir),
            '--stage',
            'sft',
            '--data-root',
            str(synth_root),
            '--split',
            'train',
            '--limit',
            '3',
            '--max-new-tokens',
            '4',
            '--out',
            str(out),
        ]
    )
    assert rc == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 3
    assert {'id', 'question', 'answer', 'ground_truth', 'correct'} <= set(records[0])
    for stage in ('rgb', 'refiners'):
        rc = smolrgpt(
            [
                'generate',
                '--checkpoint',
                str(tiny_dir),
                '--stage',
                stage,
                '--data-root',
                str(synth_root),
                '--split',
                'train',
                '--limit',
                '2',
                '--max-new-tokens',
                '3',
                '--out',
                str(tmp_path / f'{stage}.jsonl'),
            ]
        )
        assert rc == 0
