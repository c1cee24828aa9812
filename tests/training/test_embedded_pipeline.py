"""`python -m training.embedded` end to end at smoke scale: data, tokenizer, the four stage runs,
held-out and val scoring, model files and card."""

from __future__ import annotations

import json
from pathlib import Path

from training.embedded import CATEGORIES, main


def test_smoke_rebuild_writes_a_scored_model_and_its_card(tmp_path: Path, capsys) -> None:
    work, out = tmp_path / 'work', tmp_path / 'model'
    rc = main(
        [
            '--work',
            str(work),
            '--out',
            str(out),
            '--train-scenes',
            '20',
            '--heldout-scenes',
            '6',
            '--size',
            '128x72',
            '--step-scale',
            '0.004',
            '--threads',
            '1',
        ]
    )
    assert rc in (0, 1)
    assert {p.name for p in out.iterdir()} >= {
        'config.json',
        'model.safetensors',
        'tokenizer.json',
        'MODEL_CARD.md',
    }
    scores = json.loads((work / 'heldout_scores.json').read_text('utf-8'))
    val = json.loads((work / 'val_scores.json').read_text('utf-8'))
    for result in (scores, val):
        assert set(result['model']['per_category']) >= set(CATEGORIES)
    beaten = all(
        scores['model']['per_category'][c]['accuracy']
        > scores['baseline']['per_category'][c]['accuracy']
        for c in CATEGORIES
    )
    assert rc == (0 if beaten else 1)
    card = (out / 'MODEL_CARD.md').read_text('utf-8')
    assert ('It beats the majority baseline in every category.' in card) == beaten
    assert f'| final (mean) | {scores["n_questions"]} |' in card
    assert f'| final (mean) | {val["n_questions"]} |' in card  # the val table too
    assert 'refiner_nearest_init' in card
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith('beats' if beaten else 'DOES NOT beat')


def test_card_only_without_a_finished_run_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    assert main(['--work', str(tmp_path), '--out', str(tmp_path / 'model'), '--card-only']) == 2
    err = capsys.readouterr().err.strip()
    assert 'needs a finished run' in err and 'heldout_scores.json' in err and '\n' not in err
    assert not (tmp_path / 'model').exists()
