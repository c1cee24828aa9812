"""`python -m training.embedded` end to end at smoke scale: data, tokenizer, the recipe's runs
and its gate, scoring on two held-out seeds and the val split, the bar, model files and card."""

from __future__ import annotations

import json
from pathlib import Path
import shutil

import pytest

from training.embedded import CATEGORIES, EMBEDDED, main, model_config, shortfalls

SMOKE = ['--train-scenes', '20', '--heldout-scenes', '6', '--size', '128x72',
         '--step-scale', '0.004', '--threads', '1', '--heldout-seeds', '71', '72']  # fmt: skip


def test_smoke_rebuild_stops_at_the_gate_and_is_held_back_by_the_bar_unless_forced(
    tmp_path: Path, capsys
) -> None:
    work, out = tmp_path / 'work', tmp_path / 'model'
    # a smoke-scale model has not learnt left_right, so the labelled runs do not start
    assert main(['--work', str(work), '--out', str(out), *SMOKE]) == 1
    assert not out.exists()  # a model below the bar does not replace the shipped one
    err = capsys.readouterr().err
    assert 'stage3e_sft_labels did not start: left_right' in err
    assert 'the gate asks 90 %' in err and '--force trains on' in err
    gate = json.loads((work / 'runs' / 'stage3e_sft_labels' / 'gate.json').read_text('utf-8'))
    assert not gate['passed'] and gate['categories']['left_right']['least'] == 90
    assert gate['categories']['left_right']['accuracy'] < 90
    assert (work / 'runs' / 'stage3c_sft_low_rate' / 'final').is_dir()
    assert not (work / 'runs' / 'stage3e_sft_labels' / 'final').exists()
    assert not (work / 'synth-train-s0-q8').exists()  # made only when its run starts

    # --force trains on past the gate (reusing the finished runs), scores, writes the model
    # and still exits 1: the bar is missed
    assert main(['--work', str(work), '--out', str(out), '--force', *SMOKE]) == 1
    printed = capsys.readouterr().out
    assert 'below the bar: seed 71:' in printed
    # the decision split is scored for every model
    assert 'what recipe decisions use' in printed
    val = json.loads((work / 'val_scores.json').read_text('utf-8'))
    assert set(val['model']['per_category']) >= set(CATEGORIES)
    for seed in (71, 72):
        scores = json.loads((work / f'eval-s{seed}' / 'scores.json').read_text('utf-8'))
        assert set(scores['model']['per_category']) >= set(CATEGORIES)
        for category in CATEGORIES:
            base = scores['baselines'][category]
            assert base['accuracy'] == max(
                base['majority'], base['best_constant'], base['question_prior']
            )
            lo, hi = scores['model']['per_category'][category]['interval']
            assert 0 <= lo <= scores['model']['per_category'][category]['accuracy'] <= hi <= 100
    # the last run trained on the same scenes with 8 questions a scene and category
    last = json.loads(
        (work / 'runs' / 'stage3f_sft_labels_q8' / 'final' / 'train_config.json').read_text()
    )
    assert last['data_root'] == str(work / 'synth-train-s0-q8')
    first = json.loads((work / 'runs' / 'stage3_sft' / 'final' / 'train_config.json').read_text())
    assert first['data_root'] == str(work / 'synth-train-s0-q3')

    assert {p.name for p in out.iterdir()} >= {
        'config.json',
        'model.safetensors',
        'tokenizer.json',
        'MODEL_CARD.md',
    }
    card = (out / 'MODEL_CARD.md').read_text('utf-8')
    assert '**It misses the bar' in card and 'seed 72:' in card
    val = json.loads((work / 'val_scores.json').read_text('utf-8'))
    for seed in (71, 72):
        scores = json.loads((work / f'eval-s{seed}' / 'scores.json').read_text('utf-8'))
        assert f'Seed {seed} ({scores["n_questions"]} questions)' in card
        assert f'| final (mean) | {scores["n_questions"]} |' in card
    assert f'| final (mean) | {val["n_questions"]} |' in card  # the val table too
    assert 'question prior' in card and '| depth input |' in card
    assert '-q3 --scenes 20 --seed 0 --questions-per-category 3' in card  # the default
    assert '-q8 --scenes 20 --seed 0 --questions-per-category 8' in card  # the last run's
    assert 'stage3f_sft_labels_q8.json (on synth-train-s0-q8)' in card
    measured = gate['categories']['left_right']
    assert (
        'stage3e_sft_labels.json (after the gate left_right >= 90 % on 100 val questions '
        f'(measured {measured["accuracy"]:.1f} on {measured["questions"]}))'
    ) in card
    # the shipped recipe labels its regions from its fifth stage-III run on
    assert json.loads((out / 'config.json').read_text('utf-8'))['prompt_region_labels'] is True
    assert 'From `stage3e_sft_labels` on, the prompt labels each region' in card
    # every stage-III run is named with its steps and, where set, its deciding-token weight
    for name in (
        'stage3_sft',
        'stage3b_sft_continued',
        'stage3c_sft_low_rate',
        'stage3d_left_right_focus',
        'stage3e_sft_labels',
        'stage3f_sft_labels_q8',
    ):
        config = json.loads((EMBEDDED / f'{name}.json').read_text('utf-8'))
        assert f'| {name} |' in card  # its minutes
        weight = config.get('deciding_token_weight', 1)
        shown = f'`{name}` ({config["max_steps"]} steps'
        assert shown in card and (weight == 1 or f'weighted x{weight:g}' in card)
    # the last held-out set scored again through the realistic sensor perturbation
    noisy = json.loads((work / 'noise_scores.json').read_text('utf-8'))
    clean = json.loads((work / 'eval-s72' / 'scores.json').read_text('utf-8'))
    assert (noisy['perturbation'], noisy['perturb_seed']) == ('realistic', 7)
    assert noisy['heldout'] == clean['heldout'] and clean['perturbation'] == 'none'
    assert noisy['n_questions'] == clean['n_questions']
    assert noisy['baselines'] == clean['baselines']  # they never read the sensors
    _, _, after = card.partition('The seed-72 set again with realistic sensor noise')
    final = noisy['model']['final_score']
    assert f'| final (mean) | {noisy["n_questions"]} | {final:.1f} |' in after


def _scores(accuracy: dict[str, float], base: float, final: float) -> dict:
    return {
        'model': {
            'per_category': {c: {'accuracy': accuracy[c]} for c in CATEGORIES},
            'final_score': final,
        },
        'baselines': {c: {'name': 'majority', 'accuracy': base} for c in CATEGORIES},
    }


def test_the_bar_names_every_category_and_the_final_score_that_miss() -> None:
    good = dict.fromkeys(CATEGORIES, 70.0)
    assert shortfalls(_scores(good, 50.0, 70.0), 15, 60) == []
    low = {**good, 'count': 64.9}
    [reason] = shortfalls(_scores(low, 50.0, 66.0), 15, 60)
    assert reason.startswith('count 64.9 is not 15 points above') and 'majority 50.0' in reason
    reasons = shortfalls(_scores(good, 50.0, 59.0), 15, 60)
    assert reasons == ['final 59.0 < 60']


def test_card_only_without_a_finished_run_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    assert main(['--work', str(tmp_path), '--out', str(tmp_path / 'model'), '--card-only']) == 2
    err = capsys.readouterr().err.strip()
    assert 'needs a finished run' in err and 'held-out seed' in err and '\n' not in err
    assert not (tmp_path / 'model').exists()


@pytest.mark.parametrize('seeds', [['5', '5'], ['0', '9']])
def test_heldout_seeds_must_be_fresh(seeds: list[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(['--work', str(tmp_path), '--heldout-seeds', *seeds])
    assert exit_info.value.code == 2


@pytest.mark.parametrize('n', ['0', '33'])
def test_questions_per_category_is_bounded(n: str, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(['--work', str(tmp_path / 'work'), '--questions-per-category', n])
    assert exit_info.value.code == 2
    assert '--questions-per-category must be in [1, 32]' in capsys.readouterr().err
    assert not (tmp_path / 'work').exists()


def test_a_recipe_folder_replaces_the_shipped_configs(tmp_path: Path, capsys) -> None:
    recipe = tmp_path / 'recipe'
    shutil.copytree(EMBEDDED, recipe)
    arch = json.loads((recipe / 'model.json').read_text('utf-8'))
    arch['lm_n_blocks'] = 2
    (recipe / 'model.json').write_text(json.dumps(arch), 'utf-8')
    written = json.loads(model_config(577, tmp_path / 'model_config.json', recipe).read_text())
    assert written['lm_n_blocks'] == 2 and written['lm_base_vocab_size'] == 577
    (recipe / 'stage3_sft.json').unlink()
    with pytest.raises(SystemExit) as exit_info:
        main(['--work', str(tmp_path / 'work'), '--recipe', str(recipe)])
    assert exit_info.value.code == 2
    assert f'--recipe: recipe {recipe} lacks stage3_sft.json' in capsys.readouterr().err
    assert not (tmp_path / 'work').exists()  # refused before anything is generated
