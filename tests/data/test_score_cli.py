"""``smolrgpt synth`` + ``smolrgpt score``: end to end on a tiny dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smolrgpt_cli.main import main


def test_perfect_predictions_score_100(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt = json.loads((synth_root / 'val.json').read_text())
    pred = tmp_path / 'pred.json'
    pred.write_text(
        json.dumps([{'id': r['id'], 'normalized_answer': r['normalized_answer']} for r in gt])
    )
    assert (
        main(['score', 'warehouse', '--gt', str(synth_root / 'val.json'), '--pred', str(pred)])
        == 0
    )
    out = capsys.readouterr().out
    assert 'final score: 100.00' in out
    report = json.loads((tmp_path / 'pred.score.json').read_text())
    assert report['final_score'] == 100.0
    assert (tmp_path / 'pred.score.png').stat().st_size > 1000


def test_free_form_csv_predictions_are_normalised(synth_root: Path, tmp_path: Path) -> None:
    gt = json.loads((synth_root / 'val.json').read_text())
    pred = tmp_path / 'raw_output.csv'
    lines = ['id;image_id;output'] + [f'{r["id"]};{r["image"]};{r["freeform_answer"]}' for r in gt]
    pred.write_text('\n'.join(lines) + '\n')
    assert (
        main(
            [
                'score',
                'warehouse',
                '--gt',
                str(synth_root / 'val.json'),
                '--pred',
                str(pred),
                '--normalize',
                '--no-chart',
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / 'raw_output.score.json').read_text())['final_score'] == 100.0


def test_id_mismatch_is_a_one_line_error(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gt = json.loads((synth_root / 'val.json').read_text())
    pred = tmp_path / 'pred.json'
    pred.write_text(json.dumps([{'id': r['id'], 'normalized_answer': 1} for r in gt[1:]]))
    assert (
        main(['score', 'warehouse', '--gt', str(synth_root / 'val.json'), '--pred', str(pred)])
        == 2
    )
    assert 'ids differ' in capsys.readouterr().err


def test_spatialrgpt_score(tmp_path: Path) -> None:
    def record(i: int, category: str, answer: str) -> dict:
        return {
            'id': f'q{i}',
            'qa_info': {'type': 'x', 'category': category},
            'conversations': [{'from': 'human', 'value': 'q'}, {'from': 'gpt', 'value': answer}],
        }

    gt = [
        record(0, 'distance_data', 'Region [0] and Region [1] are 2 meters apart.'),
        record(1, 'width_data', 'Region [0] is 4.65 inches wide.'),
        record(2, 'direction', "Region [1] is roughly at 3 o'clock from Region [0]."),
        record(3, 'left_predicate', 'Incorrect, Region [0] is not on the left of Region [1].'),
        record(4, 'below_choice', 'Region [1] is below.'),
    ]
    pred = [
        {'id': 'q0', 'answer': 'About 240 cm.'},
        {'id': 'q1', 'answer': '30 centimeters'},
        {'id': 'q2', 'answer': "At four o'clock."},
        {'id': 'q3', 'answer': 'It is on the right.'},
        {'id': 'q4', 'answer': 'Region [0] is higher than Region [1].'},
    ]
    (tmp_path / 'bench.json').write_text(json.dumps(gt))
    (tmp_path / 'pred.json').write_text(json.dumps(pred))
    assert (
        main(
            [
                'score',
                'spatialrgpt',
                '--gt',
                str(tmp_path / 'bench.json'),
                '--pred',
                str(tmp_path / 'pred.json'),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / 'pred.score.json').read_text())
    cats = report['per_category']
    assert cats['direct_distance']['accuracy'] == 100.0  # 2.4 m is within 25% of 2 m
    assert cats['direct_distance']['abs_rel'] == pytest.approx(0.2)
    assert cats['width']['accuracy'] == 0.0  # 0.30 m vs 0.118 m
    assert cats['direction']['accuracy'] == 100.0 and cats['direction']['mean_error_deg'] == 30
    assert cats['left_right']['accuracy'] == 100.0 and cats['below_above']['accuracy'] == 100.0
