"""``smolrgpt classifier train|predict``: the warehouse question-category classifier.

The reference fine-tunes two Longformers (149M parameters each) to tell left_right / count /
distance / mcq from the question (and from the answer). The questions are templated, so a
TF-IDF + logistic regression model (scikit-learn) does the same job in seconds on a CPU.

The trained model is saved as JSON (vocabulary, idf weights, coefficients, plus the
scikit-learn version that trained it), never as a pickle: predicting is a few numpy lines
that reproduce scikit-learn's transform exactly, so ``predict`` needs no scikit-learn and
loading runs no code from the file.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
import contextlib
from dataclasses import dataclass
import json
import math
from pathlib import Path
import re
from typing import Any

import numpy as np

from smolrgpt_core.normalize import CATEGORIES

HELP = 'question-category classifier (TF-IDF + logistic regression): train | predict'
FORMAT = 'smolrgpt-category-classifier/1'
TOKEN_PATTERN = r'(?u)\b\w\w+\b'  # scikit-learn's default, reproduced in transform()
_TAGS = re.compile(r'<image>|<mask[^>]*>|<region_?\d+>')
# what save() writes and load() needs
_SAVED_FIELDS = (
    'classes',
    'ngram_range',
    'sublinear_tf',
    'vocabulary',
    'idf',
    'coef',
    'intercept',
)


def clean_text(text: str) -> str:
    """Model tags out, whitespace collapsed ('<mask>' carries no category information)."""
    return ' '.join(_TAGS.sub(' ', text).split())


@dataclass
class CategoryClassifier:
    vocabulary: list[str]  # feature index -> term
    idf: np.ndarray  # [V]
    coef: np.ndarray  # [C, V] (C = 1 for two classes, as scikit-learn stores it)
    intercept: np.ndarray  # [C]
    classes: list[str]
    ngram_range: tuple[int, int] = (1, 2)
    sublinear_tf: bool = True
    field: str = 'question'  # what it was trained on: question | answer
    meta: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self._index = {term: i for i, term in enumerate(self.vocabulary)}
        self._token = re.compile(TOKEN_PATTERN)

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> L2-normalised TF-IDF rows [N, V], as scikit-learn's TfidfVectorizer."""
        out = np.zeros((len(texts), len(self.vocabulary)), dtype=np.float64)
        low, high = self.ngram_range
        for row, text in enumerate(texts):
            tokens = self._token.findall(clean_text(text).lower())
            counts: Counter[int] = Counter()
            for n in range(low, high + 1):
                for i in range(len(tokens) - n + 1):
                    index = self._index.get(' '.join(tokens[i : i + n]))
                    if index is not None:
                        counts[index] += 1
            for index, count in counts.items():
                tf = 1.0 + math.log(count) if self.sublinear_tf else float(count)
                out[row, index] = tf * self.idf[index]
            norm = np.linalg.norm(out[row])
            if norm > 0:
                out[row] /= norm
        return out

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        scores = self.transform(texts) @ self.coef.T + self.intercept
        if len(self.classes) == 2:  # binary logistic regression: one score for class 1
            p1 = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            return np.stack([1.0 - p1, p1], axis=1)
        scores -= scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, texts: Sequence[str]) -> list[str]:
        if not texts:
            return []
        return [self.classes[i] for i in self.predict_proba(texts).argmax(axis=1)]

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            'format': FORMAT,
            'classes': self.classes,
            'field': self.field,
            'ngram_range': list(self.ngram_range),
            'sublinear_tf': self.sublinear_tf,
            'token_pattern': TOKEN_PATTERN,
            'meta': self.meta or {},
            'vocabulary': self.vocabulary,
            'idf': self.idf.tolist(),
            'coef': self.coef.tolist(),
            'intercept': self.intercept.tolist(),
        }
        path.write_text(json.dumps(data) + '\n', encoding='utf-8')
        return path

    @classmethod
    def load(cls, path: str | Path) -> CategoryClassifier:
        """Read a classifier JSON, checking every field (a bad file is a ValueError)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding='utf-8'))
        except UnicodeDecodeError as exc:
            raise ValueError(
                f'{path}: not a classifier file (not UTF-8 text; classifiers are JSON, '
                'never pickles)'
            ) from exc
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f'{path}: not a classifier file ({exc})') from exc
        if not isinstance(data, dict) or data.get('format') != FORMAT:
            raise ValueError(
                f'{path}: not a {FORMAT} file (format '
                f'{data.get("format") if isinstance(data, dict) else None!r})'
            )
        if data.get('token_pattern') != TOKEN_PATTERN:
            raise ValueError(
                f'{path}: trained with token pattern {data.get("token_pattern")!r}'
                f', this version reads {TOKEN_PATTERN!r}'
            )
        missing = [k for k in _SAVED_FIELDS if k not in data]
        if missing:
            raise ValueError(f'{path}: the classifier file lacks {missing}')
        vocabulary, classes, ngram = data['vocabulary'], data['classes'], data['ngram_range']
        if not isinstance(vocabulary, list) or not all(isinstance(t, str) for t in vocabulary):
            raise ValueError(f'{path}: vocabulary must be a list of strings')
        if (
            not isinstance(classes, list)
            or len(classes) < 2
            or not all(isinstance(c, str) for c in classes)
        ):
            raise ValueError(f'{path}: classes must be a list of at least two names')
        if not (
            isinstance(ngram, list)
            and len(ngram) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) for n in ngram)
            and 1 <= ngram[0] <= ngram[1]
        ):
            raise ValueError(f'{path}: ngram_range must be [low, high] with 1 <= low <= high')
        try:
            coef = np.asarray(data['coef'], dtype=np.float64)
            idf = np.asarray(data['idf'], dtype=np.float64)
            intercept = np.asarray(data['intercept'], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f'{path}: coef, idf and intercept must be arrays of numbers') from exc
        rows = 1 if len(classes) == 2 else len(classes)  # scikit-learn's binary layout
        if (
            coef.shape != (rows, len(vocabulary))
            or idf.shape != (len(vocabulary),)
            or intercept.shape != (rows,)
        ):
            raise ValueError(
                f'{path}: coefficient and vocabulary sizes differ (coef {list(coef.shape)}, idf '
                f'{list(idf.shape)}, intercept {list(intercept.shape)} for {len(classes)} '
                f'classes and {len(vocabulary)} terms)'
            )
        return cls(
            vocabulary=list(vocabulary),
            idf=idf,
            coef=coef,
            intercept=intercept,
            classes=list(classes),
            ngram_range=(ngram[0], ngram[1]),
            sublinear_tf=bool(data['sublinear_tf']),
            field=str(data.get('field', 'question')),
            meta=data.get('meta') if isinstance(data.get('meta'), dict) else {},
        )


def load_labelled(
    path: str | Path, field: str = 'question', limit: int = 0, seed: int = 0
) -> tuple[list[str], list[str]]:
    """(texts, categories) of a warehouse split file; ``limit`` > 0 keeps a random subset."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f'{path}: no such file')
    try:
        records = json.loads(path.read_text(encoding='utf-8'))
    except UnicodeDecodeError as exc:
        raise ValueError(f'{path}: not UTF-8 text') from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f'{path}: not JSON ({exc})') from exc
    if not isinstance(records, list):
        raise ValueError(f'{path}: expected a JSON list of records')
    texts, labels = [], []
    for record in records:
        if not isinstance(record, dict):
            continue
        category = record.get('category')
        turns = record.get('conversations') or []
        if category not in CATEGORIES or not isinstance(turns, list) or not turns:
            continue
        turns = [t if isinstance(t, dict) else {} for t in turns]
        if field == 'question':
            text = turns[0].get('value')
        else:
            text = record.get('freeform_answer') or (
                turns[1].get('value') if len(turns) > 1 else None
            )
        if text:
            texts.append(str(text))
            labels.append(category)
    if not texts:
        raise ValueError(f'{path}: no records with a category and a {field}')
    if limit and len(texts) > limit:
        keep = np.random.default_rng(seed).choice(len(texts), size=limit, replace=False)
        texts = [texts[i] for i in sorted(keep)]
        labels = [labels[i] for i in sorted(keep)]
    return texts, labels


def train(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    field: str = 'question',
    c: float = 10.0,
    ngram_range: tuple[int, int] = (1, 2),
    seed: int = 0,
) -> CategoryClassifier:
    """Fit TF-IDF + logistic regression (needs scikit-learn) and export it."""
    import sklearn
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    if len(set(labels)) < 2:
        raise ValueError(f'need at least two categories to train, got {sorted(set(labels))}')
    vectorizer = TfidfVectorizer(
        preprocessor=lambda t: clean_text(t).lower(),
        token_pattern=TOKEN_PATTERN,
        ngram_range=ngram_range,
        sublinear_tf=True,
    )
    features = vectorizer.fit_transform(texts)
    model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    model.fit(features, list(labels))
    vocabulary = [''] * len(vectorizer.vocabulary_)
    for term, index in vectorizer.vocabulary_.items():
        vocabulary[index] = term
    return CategoryClassifier(
        vocabulary=vocabulary,
        idf=vectorizer.idf_.astype(np.float64),
        coef=model.coef_.astype(np.float64),
        intercept=model.intercept_.astype(np.float64),
        classes=[str(c) for c in model.classes_],
        ngram_range=ngram_range,
        sublinear_tf=True,
        field=field,
        meta={
            'sklearn_version': sklearn.__version__,
            'C': c,
            'train_examples': len(texts),
            'train_counts': dict(Counter(labels)),
        },
    )


def evaluate(
    classifier: CategoryClassifier, texts: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, per-category accuracy and the confusion counts (true -> predicted)."""
    predicted = classifier.predict(texts)
    per: dict[str, list[int]] = {}
    confusion: Counter[str] = Counter()
    for truth, guess in zip(labels, predicted):
        per.setdefault(truth, [0, 0])
        per[truth][0] += truth == guess
        per[truth][1] += 1
        if truth != guess:
            confusion[f'{truth}->{guess}'] += 1
    correct = sum(t == p for t, p in zip(labels, predicted))
    return {
        'n': len(labels),
        'accuracy': 100.0 * correct / max(1, len(labels)),
        'per_category': {k: 100.0 * v[0] / v[1] for k, v in sorted(per.items())},
        'confusion': dict(confusion),
    }


def rules_accuracy(texts: Sequence[str], labels: Sequence[str]) -> float:
    """The rule normaliser's category accuracy on the same questions, for comparison."""
    from smolrgpt_core.normalize import NormalizationError, infer_category

    correct = 0
    for text, label in zip(texts, labels):
        with contextlib.suppress(NormalizationError):  # no category: a miss
            correct += infer_category(text) == label
    return 100.0 * correct / max(1, len(labels))


# CLI ------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest='action', metavar='ACTION', required=True)
    tr = sub.add_parser('train', help='fit on a split (train.json) and report held-out accuracy')
    tr.add_argument(
        '--data-root',
        required=True,
        type=Path,
        help='folder with train.json / val.json (NVIDIA layout)',
    )
    tr.add_argument('--train-split', default='train')
    tr.add_argument('--eval-split', default='val', help="held-out split ('' = none)")
    tr.add_argument(
        '--field',
        default='question',
        choices=('question', 'answer'),
        help="classify questions (default) or answers, as the reference's two",
    )
    tr.add_argument('--out', required=True, type=Path, help='classifier JSON to write')
    tr.add_argument(
        '--max-train',
        type=int,
        default=0,
        help='train on a random subset of this many examples (0 = all)',
    )
    tr.add_argument('--c', type=float, default=10.0, help='inverse regularisation strength')
    tr.add_argument('--seed', type=int, default=0)
    pr = sub.add_parser('predict', help='categories of questions (text or a split file)')
    pr.add_argument('--model', required=True, type=Path, help='classifier JSON')
    what = pr.add_mutually_exclusive_group(required=True)
    what.add_argument('--text', action='append', help='a question (repeat for several)')
    what.add_argument('--questions', type=Path, help='a split file (test.json, val.json)')
    pr.add_argument('--out', type=Path, help='write [{id, category}] JSON here')


def run(args: argparse.Namespace) -> int:
    return _train(args) if args.action == 'train' else _predict(args)


def _train(args: argparse.Namespace) -> int:
    from smolrgpt_cli.errors import CommandError

    try:
        texts, labels = load_labelled(
            args.data_root / f'{args.train_split}.json', args.field, args.max_train, args.seed
        )
        classifier = train(texts, labels, field=args.field, c=args.c, seed=args.seed)
    except ImportError as exc:
        raise CommandError('training needs scikit-learn: pip install scikit-learn') from exc
    except (OSError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    train_eval = evaluate(classifier, texts, labels)
    meta = classifier.meta or {}
    meta['train_accuracy'] = train_eval['accuracy']
    print(
        f'trained on {len(texts)} {args.train_split} {args.field}s '
        f'(scikit-learn {meta["sklearn_version"]}); train accuracy '
        f'{train_eval["accuracy"]:.2f}%'
    )
    held_out = args.data_root / f'{args.eval_split}.json' if args.eval_split else None
    if held_out is not None and held_out.is_file():
        eval_texts, eval_labels = load_labelled(held_out, args.field)
        result = evaluate(classifier, eval_texts, eval_labels)
        meta['held_out'] = {'split': args.eval_split, **result}
        line = (
            f'held-out {args.eval_split}: {result["accuracy"]:.2f}% of {result["n"]} '
            f'({", ".join(f"{k} {v:.1f}" for k, v in result["per_category"].items())})'
        )
        if args.field == 'question':
            rules = rules_accuracy(eval_texts, eval_labels)
            meta['held_out']['rules_accuracy'] = rules
            line += f'; the rules: {rules:.2f}%'
        print(line)
        if result['confusion']:
            print(f'confusions: {result["confusion"]}')
    classifier.meta = meta
    print(f'saved: {classifier.save(args.out)}')
    return 0


def _predict(args: argparse.Namespace) -> int:
    from smolrgpt_cli.errors import CommandError
    from training.submission.normalize import load_questions

    try:
        classifier = CategoryClassifier.load(args.model)
        if args.text:
            ids, texts = [str(i) for i in range(len(args.text))], list(args.text)
        else:
            questions = load_questions(args.questions)
            ids, texts = [q.id for q in questions], [q.question for q in questions]
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    categories = classifier.predict(texts)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps([{'id': i, 'category': c} for i, c in zip(ids, categories)], indent=1)
            + '\n'
        )
        counts = Counter(categories)
        print(f'{len(categories)} categories -> {args.out} ({dict(sorted(counts.items()))})')
    else:
        for text, category in zip(texts, categories):
            print(f'{category}\t{clean_text(text)}')
    return 0
