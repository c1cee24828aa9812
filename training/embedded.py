"""Rebuild the embedded default model ``models/smolrgpt-tiny-synthetic`` from nothing.

``python -m training.embedded`` (or ``make embedded-model``):

1. synthetic data (``training.synth``): a training set (``--seed``, 0) and one held-out set per
   ``--heldout-seeds`` (20261 and 20262);
2. a ByteLevel BPE tokenizer trained on the training set's texts;
3. the runs of the recipe (``training/configs/embedded/recipe.json``, ``training.recipe``):
   stages I and II, then stage III as consecutive runs with a cosine schedule each: three
   unlabelled, one that weighs left_right most, then two with region labels (the last on the
   same scenes with 8 questions a scene and category) after a gate that checks left_right
   has been learnt;
4. the official warehouse metric on held-out sets of fresh seeds (never used for a recipe
   decision) and on the training generation's val split (what recipe decisions use), each
   category with a 95 % interval next to its strongest baseline (training-set majority, best
   constant, question prior: ``training.metrics.baselines``); the last held-out set once more
   with realistic sensor noise (``--noise``);
5. the bar: every category ``--margin`` points above its strongest baseline and a final score
   of at least ``--final-min`` on every held-out set; only a model that clears it (or
   ``--force``) goes with MODEL_CARD.md into ``--out``, and the exit status says which.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
import functools
import json
import logging
from pathlib import Path
import platform
import shutil
import sys
import time
from typing import Any

import torch

from smolrgpt_core.normalize import CATEGORIES
from training.config import CONFIG_DIR
from training.recipe import MAX_QUESTIONS_PER_CATEGORY, Recipe, Run, load_recipe

EMBEDDED = CONFIG_DIR / 'embedded'
MODEL_FILES = ('config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json')
# the sensor-noise draw of the card's noisy evaluation (as `smolrgpt generate --perturb-seed`)
NOISE_SEED = 7

log = logging.getLogger(__name__)


def synth(out: Path, scenes: int, seed: int, per_category: int, size: str) -> None:
    from training.synth.cli import parse_size
    from training.synth.generate import generate

    if (out / 'train.json').is_file():
        log.info('reusing %s', out)
        return
    width, height = parse_size(size)
    generate(
        out, scenes, seed, width, height, {'nvidia'}, per_category=per_category, progress=False
    )


def build_tokenizer(data: Path, out: Path) -> int:
    from training.datasets import load_examples
    from training.tokenizer import save_tokenizer, train_tokenizer

    if (out / 'tokenizer.json').is_file():
        from tokenizers import Tokenizer

        log.info('reusing %s', out)
        return Tokenizer.from_file(str(out / 'tokenizer.json')).get_vocab_size(True)
    texts = []
    for kind in ('warehouse', 'captions', 'regions', 'pointers'):
        for ex in load_examples(kind, data, 'train'):
            for user, answer in ex.turns:
                texts.append(user.replace('<image>', '').replace('<mask>', ' '))
                texts.append(answer or '')
    tok = train_tokenizer(texts, vocab_size=1024)
    save_tokenizer(tok, out)
    return tok.get_vocab_size(with_added_tokens=True)


def model_config(vocab: int, path: Path, recipe: Path = EMBEDDED) -> Path:
    data = json.loads((recipe / 'model.json').read_text('utf-8'))
    data.pop('_comment', None)
    data['lm_base_vocab_size'] = vocab
    path.write_text(json.dumps(data, indent=2) + '\n', 'utf-8')
    return path


class GateMissed(RuntimeError):
    """A run's gate was not reached by the model of the run before it."""


def train_stages(
    work: Path,
    recipe: Recipe,
    data_for: Callable[[Run], Path],
    tokenizer: Path,
    model_json: Path,
    step_scale: float,
    threads: int,
    force: bool = False,
) -> tuple[Path, dict[str, float]]:
    """Run the recipe's runs in order, each from the one before; a run whose ``final``
    checkpoint exists is reused (so an interrupted rebuild continues where it stopped).
    ``data_for`` gives (making it first if needed) the data set a run trains on. A run with a
    gate starts only when the model before it reaches the gate on the val split; otherwise
    GateMissed says why (``force`` logs it and trains on)."""
    from training.config import TrainConfig
    from training.trainer import Trainer

    previous: Path | None = None
    minutes = {}
    for run in recipe.runs:
        cfg = TrainConfig.from_json(recipe.config_path(run))
        cfg.output_dir = str(work / 'runs' / run.name)
        final, timing = Path(cfg.output_dir) / 'final', Path(cfg.output_dir) / 'timing.json'
        if final.is_dir() and timing.is_file():
            log.info('reusing %s', final)
            minutes[run.name] = json.loads(timing.read_text('utf-8'))['minutes']
            previous = final
            continue
        data = data_for(run)
        cfg.data_root = str(data)
        cfg.max_steps = max(1, round(cfg.max_steps * step_scale))
        cfg.progress = sys.stderr.isatty()
        cfg.threads = threads
        if run.gate:
            assert previous is not None  # load_recipe refuses a gate on the first run
            # measured again on every start: a gate missed once may pass after a change
            gate = check_gate(run, previous, data)
            Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
            (Path(cfg.output_dir) / 'gate.json').write_text(json.dumps(gate, indent=2), 'utf-8')
            if not gate['passed']:
                message = f'{run.name} did not start: {gate["reason"]}'
                if not force:
                    raise GateMissed(message)
                log.warning('%s (--force: training on)', message)
        if previous is None:
            cfg.model_config, cfg.tokenizer = str(model_json), str(tokenizer)
        else:
            cfg.last_stage_checkpoint = str(previous)
        start = time.perf_counter()
        result = Trainer(cfg).train()
        minutes[run.name] = (time.perf_counter() - start) / 60
        timing.write_text(json.dumps({'minutes': minutes[run.name]}) + '\n', 'utf-8')
        log.info(
            '%s: %.1f min, last loss %.3f, val loss %s',
            run.name,
            minutes[run.name],
            result.losses[-1],
            result.val_loss,
        )
        previous = result.final_dir
    assert previous is not None
    return previous, minutes


def check_gate(run: Run, checkpoint: Path, data: Path) -> dict[str, Any]:
    """Score ``checkpoint`` on the first ``run.gate_questions`` val questions (by id) of each
    gated category of ``data`` with the official metric; ``passed`` when every one reaches
    its least accuracy, ``reason`` names those that do not."""
    from smolrgpt_core.warehouse_metric import score_warehouse
    from training.datasets import load_examples
    from training.generate import generate_answers

    examples = load_examples('warehouse', data, 'val')
    chosen = []
    for category in run.gate:
        of_kind = sorted((e for e in examples if e.category == category), key=lambda e: e.id)
        chosen.extend(of_kind[: run.gate_questions])
    records = generate_answers(checkpoint, chosen, progress=False)
    scored = score_warehouse(
        _records(chosen),
        [{'id': r['id'], 'normalized_answer': r['normalized_answer']} for r in records],
    ).to_dict()['per_category']
    result: dict[str, Any] = {'checkpoint': str(checkpoint), 'categories': {}}
    misses = []
    for category, least in run.gate.items():
        entry = scored.get(category, {'accuracy': 0.0, 'total': 0})
        result['categories'][category] = {
            'accuracy': entry['accuracy'],
            'questions': entry['total'],
            'least': least,
        }
        if entry['total'] == 0 or entry['accuracy'] < least:
            misses.append(
                f'{category} {entry["accuracy"]:.1f} % on {entry["total"]} val questions after '
                f'{checkpoint.parent.name}, the gate asks {least:g} %'
            )
    result['passed'] = not misses
    result['reason'] = '; '.join(misses) + (
        ' (a labelled run started before left_right is learnt keeps it at chance: '
        'docs/training.md, "The labelled recipe from nothing")'
        if misses
        else ''
    )
    log.info('gate of %s: %s', run.name, 'passed' if not misses else result['reason'])
    return result


def _records(examples: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            'id': e.id,
            'category': e.category,
            'question': e.question,
            'normalized_answer': e.normalized_answer,
        }
        for e in examples
    ]


@functools.cache
def training_records(train_data: Path) -> tuple[dict[str, Any], ...]:
    """The training questions the baselines are fitted on, read once per run (every held-out
    set and the val split compare with the same ones)."""
    from training.datasets import load_examples

    return tuple(_records(load_examples('warehouse', train_data, 'train')))


def evaluate(
    checkpoint: Path,
    train_data: Path,
    heldout: Path,
    work: Path,
    split: str = 'train',
    perturbation: str = 'none',
) -> dict[str, Any]:
    """Official warehouse scores of the model on ``heldout``, with a 95 % interval per
    category, next to the baselines of ``training.metrics.baselines.strongest_baselines``
    (training-set majority, best constant on the held-out answers, question prior).
    ``perturbation`` is a ``training.perturb`` preset applied to the sensor inputs (seeded
    with ``NOISE_SEED``); the baselines do not read the sensors, so they stay the same."""
    from smolrgpt_core.warehouse_metric import score_warehouse
    from training.datasets import load_examples
    from training.generate import generate_answers, write_jsonl
    from training.metrics.baselines import strongest_baselines, wilson_interval
    from training.perturb import Perturbation

    work.mkdir(parents=True, exist_ok=True)
    examples = load_examples('warehouse', heldout, split)
    gt = [
        {'id': e.id, 'category': e.category, 'normalized_answer': e.normalized_answer}
        for e in examples
    ]
    records = generate_answers(
        checkpoint,
        examples,
        perturbation=Perturbation.preset(perturbation),
        perturb_seed=NOISE_SEED,
        progress=sys.stderr.isatty(),
    )
    write_jsonl(work / 'heldout_answers.jsonl', records)
    pred = [{'id': r['id'], 'normalized_answer': r['normalized_answer']} for r in records]
    (work / 'heldout_model_pred.json').write_text(json.dumps(pred), 'utf-8')
    (work / 'heldout_gt.json').write_text(json.dumps(gt), 'utf-8')
    model = score_warehouse(gt, pred).to_dict()
    baselines = strongest_baselines(training_records(train_data), _records(examples))
    for entry in model['per_category'].values():
        entry['interval'] = wilson_interval(entry['correct'], entry['total'])
    return {
        'model': model,
        'baselines': baselines,
        'n_questions': len(examples),
        'heldout': str(heldout),
        'perturbation': perturbation,
        'perturb_seed': NOISE_SEED if perturbation != 'none' else None,
    }


def shortfalls(scores: dict[str, Any], margin: float, final_min: float) -> list[str]:
    """Why a model fails the bar: a category not ``margin`` points above its strongest
    baseline, or a final score under ``final_min``; empty when it passes."""
    out = []
    for cat in CATEGORIES:
        got = scores['model']['per_category'][cat]['accuracy']
        base = scores['baselines'][cat]
        if got < base['accuracy'] + margin:
            out.append(
                f'{cat} {got:.1f} is not {margin:g} points above its strongest baseline '
                f'({base["name"]} {base["accuracy"]:.1f})'
            )
    if scores['model']['final_score'] < final_min:
        out.append(f'final {scores["model"]["final_score"]:.1f} < {final_min:g}')
    return out


def score_table(scores: dict[str, Any]) -> str:
    lines = [
        '| category | n | model (%) [95% interval] | majority (train) | best constant '
        '(oracle) | question prior | model - strongest |',
        '|---|---|---|---|---|---|---|',
    ]
    for cat in CATEGORIES:
        m = scores['model']['per_category'][cat]
        b = scores['baselines'][cat]
        lo, hi = m['interval']
        lines.append(
            f'| {cat} | {m["total"]} | {m["accuracy"]:.1f} [{lo:.1f}, {hi:.1f}] | '
            f'{b["majority"]:.1f} | {b["best_constant"]:.1f} | {b["question_prior"]:.1f} | '
            f'{m["accuracy"] - b["accuracy"]:+.1f} |'
        )
    lines.append(
        f'| final (mean) | {scores["n_questions"]} | {scores["model"]["final_score"]:.1f} | '
        '| | | |'
    )
    return '\n'.join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog='python -m training.embedded',
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument('--work', type=Path, default=Path('build/embedded'))
    parser.add_argument('--out', type=Path, default=Path('models/smolrgpt-tiny-synthetic'))
    parser.add_argument('--train-scenes', type=int, default=2000)
    parser.add_argument('--heldout-scenes', type=int, default=300, help='scenes per held-out set')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--questions-per-category',
        type=int,
        default=3,
        help='training questions per scene and category (8 taught mcq in a labelled '
        'continuation; docs/training.md)',
    )
    parser.add_argument(
        '--recipe',
        type=Path,
        default=EMBEDDED,
        help='folder with model.json, recipe.json (the runs, in order: training/recipe.py) '
        'and the run configs it names; default: the shipped recipe',
    )
    parser.add_argument(
        '--heldout-seeds',
        type=int,
        nargs='+',
        default=[20261, 20262],
        help='one held-out set per seed; never used for a recipe decision (those use the '
        "training generation's val split)",
    )
    parser.add_argument('--size', default='256x144', help='synthetic image size')
    parser.add_argument(
        '--step-scale',
        type=float,
        default=1.0,
        help="multiply every stage's max_steps (e.g. 0.05 for a smoke run)",
    )
    parser.add_argument(
        '--margin',
        type=float,
        default=15.0,
        help='points every category must beat its strongest baseline by, on every held-out set',
    )
    parser.add_argument(
        '--final-min', type=float, default=60.0, help='least final score on every held-out set'
    )
    parser.add_argument(
        '--force',
        action='store_true',
        help='write the model to --out even when it misses the bar (the exit status still says)',
    )
    parser.add_argument(
        '--card-only',
        action='store_true',
        help='only rewrite MODEL_CARD.md from a finished run in --work',
    )
    parser.add_argument(
        '--noise',
        choices=('none', 'realistic'),
        default='realistic',
        help='sensor perturbation for a second scoring of the last held-out set (the card '
        "shows both: clean renders are an upper bound); 'none' skips it",
    )
    parser.add_argument(
        '--threads',
        type=int,
        default=2,
        help='torch CPU threads (1 can be faster on a busy machine)',
    )
    args = parser.parse_args(argv)
    try:
        load_recipe(args.recipe)
    except ValueError as err:
        parser.error(f'--recipe: {err}')
    if not 1 <= args.questions_per_category <= MAX_QUESTIONS_PER_CATEGORY:
        parser.error(f'--questions-per-category must be in [1, {MAX_QUESTIONS_PER_CATEGORY}]')
    if len(set(args.heldout_seeds)) != len(args.heldout_seeds) or args.seed in args.heldout_seeds:
        parser.error('--heldout-seeds must be distinct and differ from --seed')
    return args


def official_scores(work: Path) -> None:
    """The written prediction files scored again with the official metric (what `smolrgpt
    score warehouse --gt heldout_gt.json --pred heldout_model_pred.json` reports), for the
    record; each report goes next to its predictions as ``*.score.json``."""
    from smolrgpt_core.warehouse_metric import score_warehouse
    from training.metrics.report import format_table, write_json

    gt = json.loads((work / 'heldout_gt.json').read_text('utf-8'))
    pred_path = work / 'heldout_model_pred.json'
    report = score_warehouse(gt, json.loads(pred_path.read_text('utf-8'))).to_dict()
    write_json(pred_path.with_suffix('.score.json'), report)
    rows = [
        [category, entry['total'], entry['accuracy'], entry['unparsable']]
        for category, entry in report['per_category'].items()
    ]
    print(f'--- official warehouse metric on {pred_path}')
    print(format_table(['category', 'n', 'accuracy', 'unparsable'], rows))
    print(f'final score: {report["final_score"]:.2f}')


def eval_dir(work: Path, seed: int) -> Path:
    return work / f'eval-s{seed}'


def load_scores(args: argparse.Namespace) -> dict[int, dict[str, Any]]:
    return {
        seed: json.loads((eval_dir(args.work, seed) / 'scores.json').read_text('utf-8'))
        for seed in args.heldout_seeds
    }


def verdict(args: argparse.Namespace, scores: dict[int, dict[str, Any]]) -> list[str]:
    return [
        f'seed {seed}: {reason}'
        for seed, one in scores.items()
        for reason in shortfalls(one, args.margin, args.final_min)
    ]


def write_card(args: argparse.Namespace) -> None:
    from tokenizers import Tokenizer

    from training.model_card import write_model_card

    work = args.work
    scores = load_scores(args)
    recipe = load_recipe(args.recipe)
    minutes, gates = {}, {}
    for run in recipe.runs:
        timing = work / 'runs' / run.name / 'timing.json'
        minutes[run.name] = json.loads(timing.read_text('utf-8'))['minutes']
        gate = work / 'runs' / run.name / 'gate.json'
        if run.gate and gate.is_file():
            gates[run.name] = json.loads(gate.read_text('utf-8'))
    vocab = Tokenizer.from_file(str(work / 'tokenizer' / 'tokenizer.json')).get_vocab_size(True)
    train_data = train_dir(args)
    first = args.heldout_seeds[0]
    probe = cached_json(
        work / 'heldout_probe.json', lambda: region_probe(args.out, heldout_dir(args, first))
    )
    # the training generation's val split: scenes never trained on, used for recipe decisions
    val = cached_json(
        work / 'val_scores.json',
        lambda: evaluate(args.out, train_data, train_data, work / 'val', 'val'),
    )
    print(score_table(val))
    noise = None
    if args.noise != 'none':
        last = args.heldout_seeds[-1]
        noisy = cached_json(
            work / 'noise_scores.json',
            lambda: evaluate(
                args.out, train_data, heldout_dir(args, last), work / 'noise', 'train', args.noise
            ),
        )
        print(f'held-out seed {last} with {args.noise} sensor noise:')
        print(score_table(noisy))
        noise = (last, args.noise, noisy['n_questions'], score_table(noisy))
    write_model_card(
        args.out / 'MODEL_CARD.md',
        args=vars(args),
        recipe=recipe,
        gates=gates,
        minutes=minutes,
        tables={seed: (one['n_questions'], score_table(one)) for seed, one in scores.items()},
        shortfalls=verdict(args, scores),
        vocab=vocab,
        machine=f'{platform.machine()}, torch {torch.__version__}, {args.threads} thread(s)',
        probe=probe,
        val_table=score_table(val),
        noise=noise,
    )


def cached_json(path: Path, compute: Callable[[], Any]) -> Any:
    """The JSON in ``path``, or ``compute()`` written there first (main() clears these
    files when it writes a new model, so ``--card-only`` reuses what was measured)."""
    if not path.is_file():
        path.write_text(json.dumps(compute(), indent=2), 'utf-8')
    return json.loads(path.read_text('utf-8'))


def train_dir(args: argparse.Namespace) -> Path:
    return args.work / train_dir_name(args.seed, args.questions_per_category)


def train_dir_name(seed: int, questions_per_category: int) -> str:
    """The training set's folder in ``--work`` (the model card names it too)."""
    return f'synth-train-s{seed}-q{questions_per_category}'


def heldout_dir(args: argparse.Namespace, seed: int) -> Path:
    return args.work / f'synth-heldout-s{seed}'


def region_probe(checkpoint: Path, heldout: Path) -> dict[str, Any] | None:
    """Linear probe of where regions are, from the pooled region vectors (training.probe)."""
    from dataclasses import asdict

    from training.probe import probe_checkpoint

    try:
        result = probe_checkpoint(checkpoint, heldout)
    except ValueError as err:  # a smoke run's held-out set can be too small to probe
        log.warning('no region-position probe in the card: %s', err)
        return None
    print(result.line())
    return asdict(result)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    torch.set_num_threads(args.threads)
    work = args.work
    if args.card_only:
        done = {s for s in args.heldout_seeds if (eval_dir(work, s) / 'scores.json').is_file()}
        missing = [s for s in args.heldout_seeds if s not in done]
        if missing:
            print(
                f'training.embedded: --card-only needs a finished run in {work} '
                f'(no scores for held-out seed(s) {missing})',
                file=sys.stderr,
            )
            return 2
        write_card(args)
        return 0
    work.mkdir(parents=True, exist_ok=True)
    recipe = load_recipe(args.recipe)
    data = train_dir(args)
    synth(data, args.train_scenes, args.seed, args.questions_per_category, args.size)
    for seed in args.heldout_seeds:
        synth(heldout_dir(args, seed), args.heldout_scenes, seed, 2, args.size)
    vocab = build_tokenizer(data, work / 'tokenizer')
    model_json = model_config(vocab, work / 'model_config.json', args.recipe)

    def data_for(run: Run) -> Path:
        # the same scenes (same seed) with another number of questions a scene and category
        questions = run.questions_per_category or args.questions_per_category
        folder = args.work / train_dir_name(args.seed, questions)
        synth(folder, args.train_scenes, args.seed, questions, args.size)
        return folder

    try:
        final, _ = train_stages(
            work,
            recipe,
            data_for,
            work / 'tokenizer',
            model_json,
            args.step_scale,
            args.threads,
            args.force,
        )
    except GateMissed as err:
        print(
            f'training.embedded: {err}; {args.out} is left as it was (the finished runs in '
            f'{work / "runs"} are reused by the next rebuild; --force trains on)',
            file=sys.stderr,
        )
        return 1
    for seed in args.heldout_seeds:
        scores = evaluate(final, data, heldout_dir(args, seed), eval_dir(work, seed))
        print(f'held-out seed {seed}:')
        print(score_table(scores))
        (eval_dir(work, seed) / 'scores.json').write_text(json.dumps(scores, indent=2), 'utf-8')
        official_scores(eval_dir(work, seed))
    # the split recipe decisions are made on, scored for every run (kept or not)
    val = evaluate(final, data, data, work / 'val', 'val')
    (work / 'val_scores.json').write_text(json.dumps(val, indent=2), 'utf-8')
    print(f'val split of the seed-{args.seed} generation (what recipe decisions use):')
    print(score_table(val))
    misses = verdict(args, load_scores(args))
    for miss in misses:
        print(f'below the bar: {miss}')
    if misses and not args.force:
        print(
            f'the model in {final} misses the bar, so {args.out} is left as it was '
            '(--force writes it anyway)'
        )
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        shutil.copyfile(final / name, args.out / name)
    for measured in ('heldout_probe.json', 'noise_scores.json'):  # measured again for it
        (work / measured).unlink(missing_ok=True)
    write_card(args)
    print(f'model written to {args.out}' + (' (below the bar)' if misses else ''))
    return 1 if misses else 0


if __name__ == '__main__':
    sys.exit(main())
