"""The TF-IDF + logistic regression category classifier: accuracy, parity, file format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from smolrgpt_cli.main import main
from training.classifier import CategoryClassifier, evaluate, load_labelled, train

pytest.importorskip('sklearn')

# real-data phrasings (spatial-benchmarks §4.1, §5.2), typos of the LLM rephrasing included
REAL_QUESTIONS = {
    '<image>\nWhat is the distance between the pallet <mask> and the pallet <mask>?': 'distance',
    'Could you tell me the distance of the pallet <mask> from the buffer region <mask>?': (
        'distance'
    ),
    'How many pallets <mask> <mask> <mask> are in the leftmost buffer region <mask> <mask>?': (
        'count'
    ),
    'Is the pallet <mask> to the left of the pallet <mask>?': 'left_right',
    'Which pallet is the leftmostthe among <mask> <mask> <mask>?': 'mcq',
    'Which of the pallets <mask> <mask> <mask> is in the middle?': 'mcq',
}


@pytest.fixture(scope='module')
def trained(classifier_root: Path) -> CategoryClassifier:
    texts, labels = load_labelled(classifier_root / 'train.json')
    return train(texts, labels)


def test_held_out_accuracy_and_real_phrasings(
    trained: CategoryClassifier, classifier_root: Path
) -> None:
    texts, labels = load_labelled(classifier_root / 'val.json')
    result = evaluate(trained, texts, labels)
    assert result['n'] >= 8 and result['accuracy'] >= 95.0
    assert trained.predict(list(REAL_QUESTIONS)) == list(REAL_QUESTIONS.values())


def test_numpy_prediction_matches_scikit_learn(classifier_root: Path) -> None:
    """The JSON export reproduces scikit-learn's TF-IDF + LR probabilities."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from training.classifier import TOKEN_PATTERN, clean_text

    texts, labels = load_labelled(classifier_root / 'train.json')
    ours = train(texts, labels)
    vectorizer = TfidfVectorizer(
        preprocessor=lambda t: clean_text(t).lower(),
        token_pattern=TOKEN_PATTERN,
        ngram_range=(1, 2),
        sublinear_tf=True,
    )
    model = LogisticRegression(C=10.0, max_iter=2000, random_state=0)
    model.fit(vectorizer.fit_transform(texts), labels)
    probe = [*REAL_QUESTIONS, 'completely unrelated words', '']
    expected = model.predict_proba(vectorizer.transform(probe))
    np.testing.assert_allclose(ours.predict_proba(probe), expected, atol=1e-9)


def test_save_load_round_trip(trained: CategoryClassifier, tmp_path: Path) -> None:
    path = trained.save(tmp_path / 'classifier.json')
    loaded = CategoryClassifier.load(path)
    probe = list(REAL_QUESTIONS)
    np.testing.assert_array_equal(loaded.predict_proba(probe), trained.predict_proba(probe))
    assert loaded.meta['sklearn_version']
    data = json.loads(path.read_text())
    data['format'] = 'something-else/9'
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match='not a smolrgpt-category-classifier'):
        CategoryClassifier.load(path)


def test_cli_train_predict(
    classifier_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model = tmp_path / 'cls.json'
    assert (
        main(['classifier', 'train', '--data-root', str(classifier_root), '--out', str(model)])
        == 0
    )
    out = capsys.readouterr().out
    assert 'held-out val' in out and 'the rules' in out
    meta = json.loads(model.read_text())['meta']
    assert meta['held_out']['accuracy'] >= 95.0
    pred = tmp_path / 'pred.json'
    assert (
        main(
            [
                'classifier',
                'predict',
                '--model',
                str(model),
                '--questions',
                str(classifier_root / 'test.json'),
                '--out',
                str(pred),
            ]
        )
        == 0
    )
    test = json.loads((classifier_root / 'test.json').read_text())
    assert [p['id'] for p in json.loads(pred.read_text())] == [r['id'] for r in test]
    capsys.readouterr()
    assert (
        main(
            [
                'classifier',
                'predict',
                '--model',
                str(model),
                '--text',
                'How many pallets are in the buffer <mask>?',
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.startswith('count\t')
