"""The recipe's list of runs (training/recipe.py): what the shipped one says, what a bad one
is refused for, and how a gate holds a run back (training.embedded.train_stages)."""

from __future__ import annotations

import json
from pathlib import Path
import shutil
from typing import Any

import pytest

from training import embedded
from training.embedded import EMBEDDED, GateMissed, check_gate, train_stages
from training.recipe import RECIPE_FILE, Run, load_recipe


def test_the_shipped_recipe_gates_its_labelled_runs_on_left_right() -> None:
    recipe = load_recipe(EMBEDDED)
    names = [run.name for run in recipe.runs]
    assert names[:6] == [
        'stage1_connector',
        'stage2_refiner',
        'stage3_sft',
        'stage3b_sft_continued',
        'stage3c_sft_low_rate',
        'stage3d_left_right_focus',
    ]
    configs = recipe.configs()
    # the run before the gate weighs left_right most
    assert configs['stage3d_left_right_focus']['category_repeats'] == {'left_right': 20}
    labelled = [n for n in names if configs[n].get('prompt_region_labels')]
    assert labelled == ['stage3e_sft_labels', 'stage3f_sft_labels_q8']
    gated = [run for run in recipe.runs if run.gate]
    assert [run.name for run in gated] == [labelled[0]]  # before the first labelled run
    assert gated[0].gate == {'left_right': 90.0} and gated[0].gate_questions == 100
    assert recipe.data_sets(3) == [3, 8]
    assert recipe.runs[-1].questions_per_category == 8


def _recipe_with(tmp_path: Path, change: Any) -> Path:
    folder = tmp_path / 'recipe'
    shutil.copytree(EMBEDDED, folder)
    data = json.loads((folder / RECIPE_FILE).read_text('utf-8'))
    change(data)
    (folder / RECIPE_FILE).write_text(json.dumps(data), 'utf-8')
    return folder


def _set(index: int, **values: Any) -> Any:
    return lambda data: data['runs'][index].update(values)


@pytest.mark.parametrize(
    ('change', 'message'),
    [
        (lambda d: d.update(runs=[]), '"runs" must be a non-empty list'),
        (lambda d: d.update(run=[]), "unknown keys ['run']"),
        (_set(2, steps=5), "run 2 has unknown keys ['steps']"),
        (_set(2, config='nope.json'), 'lacks nope.json'),
        (_set(2, config='../embedded/stage3_sft.json'), 'lacks ../embedded/stage3_sft.json'),
        (_set(7, questions_per_category=0), 'questions_per_category must be a whole number'),
        (_set(7, questions_per_category=33), 'in [1, 32], got 33'),
        (_set(7, questions_per_category=True), 'got True'),
        (_set(6, gate={'left': 90}), "gate names 'left'"),
        (_set(6, gate={'left_right': 101}), 'gate left_right must be a percentage, got 101'),
        (_set(6, gate=[90]), 'gate must map categories'),
        (_set(6, gate_questions=0), 'gate_questions must be a whole number'),
        (_set(6, gate_questions=10**9), 'in [1, 10000]'),
        (_set(0, gate={'left_right': 50}), 'the first run has no model before it to gate'),
        (_set(4, config='stage3_sft.json'), 'a run config is listed twice'),
    ],
)
def test_a_bad_recipe_is_refused_with_what_is_wrong(
    tmp_path: Path, change: Any, message: str
) -> None:
    folder = _recipe_with(tmp_path, change)
    with pytest.raises(ValueError) as err:
        load_recipe(folder)
    assert message in str(err.value)


def test_a_recipe_file_that_is_not_json_names_itself(tmp_path: Path) -> None:
    folder = tmp_path / 'recipe'
    shutil.copytree(EMBEDDED, folder)
    (folder / RECIPE_FILE).write_text('{"runs": [', 'utf-8')
    with pytest.raises(ValueError, match=r'recipe\.json: not JSON'):
        load_recipe(folder)
    (folder / RECIPE_FILE).unlink()
    with pytest.raises(ValueError, match=r'lacks recipe\.json'):
        load_recipe(folder)


def test_a_gate_scores_the_first_val_questions_of_its_category(
    tiny_dir: Path, make_synth: Any
) -> None:
    data = make_synth(20, seed=5, per_category=2)
    low = check_gate(Run('x.json', gate={'left_right': 0.0}, gate_questions=3), tiny_dir, data)
    measured = low['categories']['left_right']
    assert measured['questions'] == 3 and low['passed'] and low['reason'] == ''
    # a least accuracy above what was measured holds the run back and says by how much
    if measured['accuracy'] < 100:
        least = measured['accuracy'] + 1
        high = check_gate(
            Run('x.json', gate={'left_right': least}, gate_questions=3), tiny_dir, data
        )
        assert not high['passed'] and high['categories'] == {
            'left_right': {**measured, 'least': least}
        }
        assert f'left_right {measured["accuracy"]:.1f} % on 3 val questions' in high['reason']
        assert f'the gate asks {least:g} %' in high['reason']


def _two_run_recipe(tmp_path: Path, gate: dict[str, float]) -> Path:
    folder = tmp_path / 'recipe'
    shutil.copytree(EMBEDDED, folder)
    runs = [{'config': 'stage1_connector.json'}, {'config': 'stage2_refiner.json', 'gate': gate}]
    (folder / RECIPE_FILE).write_text(json.dumps({'runs': runs}), 'utf-8')
    return folder


@pytest.mark.parametrize('passed', [True, False])
@pytest.mark.parametrize('force', [True, False])
def test_a_run_starts_only_after_its_gate_unless_forced(
    tmp_path: Path, synth_root: Path, monkeypatch, passed: bool, force: bool
) -> None:
    recipe = load_recipe(_two_run_recipe(tmp_path, {'left_right': 90}))
    seen: list[Path] = []

    def gate(run: Run, checkpoint: Path, data: Path) -> dict[str, Any]:
        seen.append(checkpoint)
        return {'passed': passed, 'reason': 'left_right 40.0 % on 100 val questions'}

    monkeypatch.setattr(embedded, 'check_gate', gate)
    vocab = embedded.build_tokenizer(synth_root, tmp_path / 'tok')
    model_json = embedded.model_config(vocab, tmp_path / 'model.json', recipe.folder)
    work = tmp_path / 'work'

    def run() -> tuple[Path, dict[str, float]]:
        return train_stages(
            work, recipe, lambda _: synth_root, tmp_path / 'tok', model_json, 0.01, 1, force
        )

    if passed or force:
        final, minutes = run()
        assert final == work / 'runs' / 'stage2_refiner' / 'final'
        assert set(minutes) == {'stage1_connector', 'stage2_refiner'}
    else:
        with pytest.raises(GateMissed, match=r'stage2_refiner did not start: left_right 40\.0'):
            run()
        assert not (work / 'runs' / 'stage2_refiner' / 'final').exists()
    # the gate read the model of the run before, and its verdict is kept with the run
    assert seen == [work / 'runs' / 'stage1_connector' / 'final']
    kept = json.loads((work / 'runs' / 'stage2_refiner' / 'gate.json').read_text('utf-8'))
    assert kept['passed'] is passed
