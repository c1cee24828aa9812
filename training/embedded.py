"""Rebuild the embedded default model ``models/smolrgpt-tiny-synthetic`` from nothing.

``python -m training.embedded`` (or ``make embedded-model``):

1. synthetic data (``training.synth``): a training set (seed 0) and a held-out set (seed 1000);
2. a ByteLevel BPE tokenizer trained on the training set's texts;
3. the three stages with the configs in ``training/configs/embedded/``;
4. the held-out score with the official warehouse metric, next to the majority-answer
   baseline (the most frequent training answer of each category), and the same on the
   training generation's val split (scenes never trained on);
5. the model files and MODEL_CARD.md into ``--out``.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable, Sequence
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

EMBEDDED = CONFIG_DIR / 'embedded'
STAGE_FILES = (
    'stage1_connector.json',
    'stage2_refiner.json',
    'stage3_sft.json',
    'stage3b_sft_continued.json',
)
MODEL_FILES = ('config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json')

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


def model_config(vocab: int, path: Path) -> Path:
    data = json.loads((EMBEDDED / 'model.json').read_text('utf-8'))
    data.pop('_comment', None)
    data['lm_base_vocab_size'] = vocab
    path.write_text(json.dumps(data, indent=2) + '\n', 'utf-8')
    return path


def train_stages(
    work: Path, data: Path, tokenizer: Path, model_json: Path, step_scale: float, threads: int
) -> tuple[Path, dict[str, float]]:
    """Run the three stages in order; a stage whose ``final`` checkpoint exists is reused
    (so an interrupted rebuild continues where it stopped)."""
    from training.config import TrainConfig
    from training.trainer import Trainer

    previous: Path | None = None
    minutes = {}
    for name in STAGE_FILES:
        cfg = TrainConfig.from_json(EMBEDDED / name)
        cfg.data_root = str(data)
        cfg.output_dir = str(work / 'runs' / Path(name).stem)
        cfg.max_steps = max(1, round(cfg.max_steps * step_scale))
        cfg.progress = sys.stderr.isatty()
        cfg.threads = threads
        final, timing = Path(cfg.output_dir) / 'final', Path(cfg.output_dir) / 'timing.json'
        if final.is_dir() and timing.is_file():
            log.info('reusing %s', final)
            minutes[Path(name).stem] = json.loads(timing.read_text('utf-8'))['minutes']
            previous = final
            continue
        if previous is None:
            cfg.model_config, cfg.tokenizer = str(model_json), str(tokenizer)
        else:
            cfg.last_stage_checkpoint = str(previous)
        start = time.perf_counter()
        result = Trainer(cfg).train()
        minutes[Path(name).stem] = (time.perf_counter() - start) / 60
        timing.write_text(json.dumps({'minutes': minutes[Path(name).stem]}) + '\n', 'utf-8')
        log.info(
            '%s: %.1f min, last loss %.3f, val loss %s',
            name,
            minutes[Path(name).stem],
            result.losses[-1],
            result.val_loss,
        )
        previous = result.final_dir
    assert previous is not None
    return previous, minutes


def evaluate(
    checkpoint: Path, train_data: Path, heldout: Path, work: Path, split: str = 'train'
) -> dict[str, Any]:
    """Official warehouse scores of the model and of the majority baseline on ``heldout``."""
    from smolrgpt_core.warehouse_metric import score_warehouse
    from training.datasets import load_examples
    from training.generate import generate_answers, write_jsonl

    work.mkdir(parents=True, exist_ok=True)
    examples = load_examples('warehouse', heldout, split)
    gt = [
        {'id': e.id, 'category': e.category, 'normalized_answer': e.normalized_answer}
        for e in examples
    ]
    records = generate_answers(checkpoint, examples)
    write_jsonl(work / 'heldout_answers.jsonl', records)
    pred = [{'id': r['id'], 'normalized_answer': r['normalized_answer']} for r in records]
    training = load_examples('warehouse', train_data, 'train')  # once, not per category
    majority = {}
    for cat in CATEGORIES:
        answers = [str(e.normalized_answer) for e in training if e.category == cat]
        majority[cat] = Counter(answers).most_common(1)[0][0]
    baseline = [{'id': e.id, 'normalized_answer': majority[e.category]} for e in examples]
    for name, rows in (('model', pred), ('baseline', baseline)):
        (work / f'heldout_{name}_pred.json').write_text(json.dumps(rows), 'utf-8')
    (work / 'heldout_gt.json').write_text(json.dumps(gt), 'utf-8')
    model = score_warehouse(gt, pred).to_dict()
    base = score_warehouse(gt, baseline).to_dict()
    return {
        'model': model,
        'baseline': base,
        'majority_answers': majority,
        'n_questions': len(examples),
    }


def score_table(scores: dict[str, Any]) -> str:
    lines = [
        '| category | n | model accuracy (%) | majority baseline (%) | majority answer |',
        '|---|---|---|---|---|',
    ]
    for cat in CATEGORIES:
        m = scores['model']['per_category'][cat]
        b = scores['baseline']['per_category'][cat]
        lines.append(
            f'| {cat} | {m["total"]} | {m["accuracy"]:.2f} | {b["accuracy"]:.2f} | '
            f'{scores["majority_answers"][cat]} |'
        )
    lines.append(
        f'| final (mean) | {scores["n_questions"]} | '
        f'{scores["model"]["final_score"]:.2f} | '
        f'{scores["baseline"]["final_score"]:.2f} | |'
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
    parser.add_argument('--heldout-scenes', type=int, default=1000)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--heldout-seed', type=int, default=1000)
    parser.add_argument('--size', default='256x144', help='synthetic image size')
    parser.add_argument(
        '--step-scale',
        type=float,
        default=1.0,
        help="multiply every stage's max_steps (e.g. 0.05 for a smoke run)",
    )
    parser.add_argument(
        '--card-only',
        action='store_true',
        help='only rewrite MODEL_CARD.md from a finished run in --work',
    )
    parser.add_argument(
        '--threads',
        type=int,
        default=2,
        help='torch CPU threads (1 can be faster on a busy machine)',
    )
    return parser.parse_args(argv)


def official_scores(work: Path) -> None:
    """The written prediction files scored again with the official metric (what `smolrgpt
    score warehouse --gt heldout_gt.json --pred heldout_NAME_pred.json` reports), for the
    record; each report goes next to its predictions as ``*.score.json``."""
    from smolrgpt_core.warehouse_metric import score_warehouse
    from training.metrics.report import format_table, write_json

    gt = json.loads((work / 'heldout_gt.json').read_text('utf-8'))
    for name in ('model', 'baseline'):
        pred_path = work / f'heldout_{name}_pred.json'
        report = score_warehouse(gt, json.loads(pred_path.read_text('utf-8'))).to_dict()
        write_json(pred_path.with_suffix('.score.json'), report)
        rows = [
            [category, entry['total'], entry['accuracy'], entry['unparsable']]
            for category, entry in report['per_category'].items()
        ]
        print(f'--- {name}: official warehouse metric on {pred_path}')
        print(format_table(['category', 'n', 'accuracy', 'unparsable'], rows))
        print(f'final score: {report["final_score"]:.2f}')


def write_card(args: argparse.Namespace) -> None:
    from tokenizers import Tokenizer

    from training.model_card import write_model_card

    work = args.work
    scores = json.loads((work / 'heldout_scores.json').read_text('utf-8'))
    minutes = {}
    for name in STAGE_FILES:
        timing = work / 'runs' / Path(name).stem / 'timing.json'
        minutes[Path(name).stem] = json.loads(timing.read_text('utf-8'))['minutes']
    vocab = Tokenizer.from_file(str(work / 'tokenizer' / 'tokenizer.json')).get_vocab_size(True)
    train_data = work / f'synth-train-s{args.seed}'
    probe = cached_json(
        work / 'heldout_probe.json', lambda: region_probe(args.out, heldout_dir(args))
    )
    # the training generation's val split: scenes never trained on
    val = cached_json(
        work / 'val_scores.json',
        lambda: evaluate(args.out, train_data, train_data, work / 'val', 'val'),
    )
    print(score_table(val))
    write_model_card(
        args.out / 'MODEL_CARD.md',
        args=vars(args),
        minutes=minutes,
        table=score_table(scores),
        scores=scores,
        vocab=vocab,
        machine=f'{platform.machine()}, torch {torch.__version__}, {args.threads} thread(s)',
        probe=probe,
        val_table=score_table(val),
    )


def cached_json(path: Path, compute: Callable[[], Any]) -> Any:
    """The JSON in ``path``, or ``compute()`` written there first (main() clears these
    files when it writes a new model, so ``--card-only`` reuses what was measured)."""
    if not path.is_file():
        path.write_text(json.dumps(compute(), indent=2), 'utf-8')
    return json.loads(path.read_text('utf-8'))


def heldout_dir(args: argparse.Namespace) -> Path:
    return args.work / f'synth-heldout-s{args.heldout_seed}'


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
        if not (work / 'heldout_scores.json').is_file():
            print(
                f'training.embedded: --card-only needs a finished run in {work} '
                f'(no heldout_scores.json there)',
                file=sys.stderr,
            )
            return 2
        write_card(args)
        official_scores(work)
        return 0
    work.mkdir(parents=True, exist_ok=True)
    data = work / f'synth-train-s{args.seed}'
    heldout = heldout_dir(args)
    synth(data, args.train_scenes, args.seed, 3, args.size)
    synth(heldout, args.heldout_scenes, args.heldout_seed, 2, args.size)
    vocab = build_tokenizer(data, work / 'tokenizer')
    model_json = model_config(vocab, work / 'model_config.json')
    final, _ = train_stages(
        work, data, work / 'tokenizer', model_json, args.step_scale, args.threads
    )
    scores = evaluate(final, data, heldout, work)
    table = score_table(scores)
    print(table)
    (work / 'heldout_scores.json').write_text(json.dumps(scores, indent=2), 'utf-8')
    official_scores(work)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        shutil.copyfile(final / name, args.out / name)
    for stale in ('heldout_probe.json', 'val_scores.json'):  # measured again for this model
        (work / stale).unlink(missing_ok=True)
    write_card(args)
    beaten = all(
        scores['model']['per_category'][c]['accuracy']
        > scores['baseline']['per_category'][c]['accuracy']
        for c in CATEGORIES
    )
    print(
        f'{"beats" if beaten else "DOES NOT beat"} the majority baseline in every category; '
        f'model written to {args.out}'
    )
    return 0 if beaten else 1


if __name__ == '__main__':
    sys.exit(main())
