"""Raw outputs -> submission: real phrasings, fallbacks, the official format; the CSV file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smolrgpt_core.warehouse_metric import score_warehouse
from training.submission.normalize import (
    FALLBACK_ANSWERS,
    Question,
    build_submission,
    load_questions,
)
from training.submission.raw_csv import (
    RawCsvError,
    append_rows,
    open_for_resume,
    read_rows,
)

# questions and answers in the real data's phrasing (spatial-benchmarks §4.1, §5.1-5.2),
# including an LLM-rephrasing typo
REAL = [
    (
        'q1',
        'distance',
        '<image>\nWhat is the distance between the pallet <mask> and the pallet <mask>?',
        'The distance of the pallet [Region 0] from the pallet [Region 1] is 2.32 meters.',
        '2.32',
    ),
    (
        'q2',
        'distance',
        'How far is the pallet <mask> from the buffer region <mask>?',
        'The pallet [Region 0] is inside the buffer region [Region 1].',
        '0.0',
    ),
    (
        'q3',
        'count',
        'How many pallets <mask> <mask> <mask> are in the leftmost buffer region <mask> <mask>?',
        'The leftmost buffer region [Region 3] has three pallets, namely '
        '[Region 0], [Region 1] and [Region 2].',
        '3',
    ),
    (
        'q4',
        'left_right',
        'Is the pallet <mask> to the left of the pallet <mask>?',
        'The pallet [Region 0] is on the right-hand side of the pallet [Region 1].',
        'right',
    ),
    (
        'q5',
        'mcq',
        'Which pallet is the leftmostthe among <mask> <mask> <mask>?',
        'The leftmost pallet is [Region 2].',
        '2',
    ),
    (
        'q6',
        'mcq',
        'Which pallet among <mask> <mask> <mask> should the empty transporter <mask> pick up?',
        'The empty transporter [Region 3] should pick up the pallet [Region 1], '
        'which is the closest.',
        '1',
    ),
    (
        'q7',
        'distance',
        'Could you tell me how far apart the pallet <mask> and the pallet <mask> are?',
        'They are 150 cm apart.',
        '1.5',
    ),
]


def _questions() -> list[Question]:
    return [Question(i, q) for i, _, q, _, _ in REAL]


def test_real_phrasings_by_rules() -> None:
    submission, stats = build_submission(_questions(), {i: a for i, _, _, a, _ in REAL})
    assert [s['normalized_answer'] for s in submission] == [e for *_, e in REAL]
    assert stats.fallbacks == 0
    gt = [{'id': i, 'category': c, 'normalized_answer': e} for i, c, _, _, e in REAL]
    assert score_warehouse(gt, submission).to_dict()['final_score'] == 100.0


class _Fixed:
    """A classifier that always answers the same category (for the fallback paths)."""

    def __init__(self, category: str) -> None:
        self.category = category

    def predict(self, texts: list[str]) -> list[str]:
        return [self.category] * len(texts)


def test_every_id_gets_an_answer_and_fallbacks_are_counted() -> None:
    questions = [
        Question('a', 'Is the pallet <mask> left or right of the pallet <mask>?'),
        Question('b', 'How many pallets are in the buffer <mask>?'),
        Question('c', 'What about <mask> and <mask>?'),  # no category words
        Question('d', 'Which pallet among <mask> <mask> is the rightmost?'),
    ]
    outputs = {
        'a': 'I am not sure.',
        'b': '',
        'c': 'The pallet [Region 1].',
        'x': 'an id that is not a question',
    }  # d: no row at all
    submission, stats = build_submission(questions, outputs, classifier=_Fixed('mcq'))
    answers = {s['id']: s['normalized_answer'] for s in submission}
    assert list(answers) == ['a', 'b', 'c', 'd']
    assert answers['a'] == FALLBACK_ANSWERS['left_right']  # nothing readable
    assert answers['b'] == FALLBACK_ANSWERS['count']  # empty output
    assert answers['d'] == FALLBACK_ANSWERS['mcq']  # missing row
    assert stats.category_from_classifier == 1 and answers['c'] == '1'
    assert stats.classifier_disagreements == 2  # a, b: the rules win
    assert (stats.missing_output, stats.empty_output, stats.extra_rows) == (1, 1, 1)
    assert stats.answer_default == 3
    assert stats.fallbacks == 4


def test_category_from_output_when_nothing_else_tells() -> None:
    submission, stats = build_submission(
        [Question('c', 'And <mask>, <mask>?')], {'c': 'They are 3.5 meters apart.'}
    )
    assert submission == [{'id': 'c', 'normalized_answer': '3.5'}]
    assert stats.category_from_output == 1


def test_load_questions_reads_test_json(warehouse_root: Path) -> None:
    questions = load_questions(warehouse_root / 'test.json')
    records = json.loads((warehouse_root / 'test.json').read_text())
    assert [q.id for q in questions] == [r['id'] for r in records]
    assert all('<mask>' in q.question for q in questions)


def test_raw_csv_round_trip_and_repair(tmp_path: Path) -> None:
    path = tmp_path / 'raw.csv'
    assert open_for_resume(path) == set()
    append_rows(path, [('1', 'a.png', 'left; then\nright'), ('2', 'b.png', '"quoted"')])
    with open(path, 'a', encoding='utf-8') as f:
        f.write('3;c.png;half a li')  # an interrupted write
    assert open_for_resume(path) == {'1', '2'}
    assert path.read_text().endswith('\n')
    rows = read_rows(path)
    assert rows == [
        {'id': '1', 'image_id': 'a.png', 'output': 'left; then right'},
        {'id': '2', 'image_id': 'b.png', 'output': '"quoted"'},
    ]
    path.write_text('id;image;answer\n')
    with pytest.raises(RawCsvError, match='header'):
        open_for_resume(path)


def test_normalize_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from smolrgpt_cli.main import main

    questions = tmp_path / 'test.json'
    questions.write_text(json.dumps([{'id': '1', 'conversations': [{'value': 'q <mask>'}]}]))
    assert (
        main(
            [
                'submission',
                'normalize',
                '--raw',
                str(tmp_path / 'none.csv'),
                '--questions',
                str(questions),
                '--out',
                str(tmp_path / 's.json'),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert 'no such file' in err and len(err.strip().splitlines()) == 1
