"""The embedded model's recipe: which training runs, in which order, on which data set.

A recipe folder (``training/configs/embedded/`` is the shipped one) holds ``model.json`` (the
architecture), one ``TrainConfig`` JSON per run, and ``recipe.json``, the list of runs::

    {"runs": [
        {"config": "stage1_connector.json"},
        ...
        {"config": "stage3e_sft_labels.json", "gate": {"left_right": 90}},
        {"config": "stage3f_sft_labels_q8.json", "questions_per_category": 8}
    ]}

Each run continues from the one before it. ``questions_per_category`` trains a run on the
same scenes generated with that many questions a scene and category (default: the rebuild's
``--questions-per-category``). ``gate`` names categories whose accuracy (%), on
``gate_questions`` questions of each from the val split, the model of the run before must
reach before this run starts: a run with region labels started before left_right has been
learnt keeps it at chance (docs/training.md), and a rebuild should say so at once rather than
after another hour of training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import json
from pathlib import Path
from typing import Any

from smolrgpt_core.normalize import CATEGORIES

RECIPE_FILE = 'recipe.json'
MAX_QUESTIONS_PER_CATEGORY = 32
MAX_GATE_QUESTIONS = 10_000
_RUN_KEYS = {'config', 'questions_per_category', 'gate', 'gate_questions'}


@dataclass(frozen=True)
class Run:
    config: str  # file name of the run's TrainConfig JSON, inside the recipe folder
    questions_per_category: int | None = None  # None: the rebuild's --questions-per-category
    gate: dict[str, float] = field(default_factory=dict)  # category -> least accuracy (%)
    gate_questions: int = 100  # per gated category, from the val split

    @property
    def name(self) -> str:
        return Path(self.config).stem


@dataclass(frozen=True)
class Recipe:
    folder: Path
    runs: tuple[Run, ...]

    def config_path(self, run: Run) -> Path:
        return self.folder / run.config

    def configs(self) -> dict[str, dict[str, Any]]:
        """Each run's TrainConfig JSON as written (what the model card describes)."""
        return {
            run.name: json.loads(self.config_path(run).read_text('utf-8')) for run in self.runs
        }

    def data_sets(self, default: int) -> list[int]:
        """The questions-per-category of every data set the runs train on, first use first."""
        return list(dict.fromkeys(run.questions_per_category or default for run in self.runs))


def load_recipe(folder: str | Path) -> Recipe:
    """Read and check ``folder``'s recipe; ValueError names the first problem found (a
    missing file, an unknown key, a size out of bounds), before anything is trained."""
    folder = Path(folder)
    missing = [n for n in ('model.json', RECIPE_FILE) if not (folder / n).is_file()]
    if missing:
        raise ValueError(f'recipe {folder} lacks {", ".join(missing)}')
    try:
        data = json.loads((folder / RECIPE_FILE).read_text('utf-8'))
    except json.JSONDecodeError as err:
        raise ValueError(f'{folder / RECIPE_FILE}: not JSON ({err})') from None
    if isinstance(data, dict) and set(data) - {'runs', '_comment'}:
        raise ValueError(
            f'{folder / RECIPE_FILE}: unknown keys {sorted(set(data) - {"runs", "_comment"})}; '
            "expected 'runs'"
        )
    entries = data.get('runs') if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f'{folder / RECIPE_FILE}: "runs" must be a non-empty list')
    runs = tuple(_run(folder, i, entry) for i, entry in enumerate(entries))
    names = [run.name for run in runs]
    if len(set(names)) != len(names):
        raise ValueError(f'{folder / RECIPE_FILE}: a run config is listed twice ({names})')
    if runs[0].gate:
        raise ValueError(f'{folder / RECIPE_FILE}: the first run has no model before it to gate')
    return Recipe(folder, runs)


def _run(folder: Path, index: int, entry: Any) -> Run:
    where = f'{folder / RECIPE_FILE}: run {index}'
    if not isinstance(entry, dict) or not isinstance(entry.get('config'), str):
        raise ValueError(f'{where} must be an object with a "config" file name')
    unknown = sorted(set(entry) - _RUN_KEYS)
    if unknown:
        raise ValueError(f'{where} has unknown keys {unknown}; expected {sorted(_RUN_KEYS)}')
    config = entry['config']
    if Path(config).name != config or not (folder / config).is_file():
        raise ValueError(f'recipe {folder} lacks {config}')
    questions = entry.get('questions_per_category')
    if questions is not None and not _whole(questions, 1, MAX_QUESTIONS_PER_CATEGORY):
        raise ValueError(
            f'{where}: questions_per_category must be a whole number in '
            f'[1, {MAX_QUESTIONS_PER_CATEGORY}], got {questions!r}'
        )
    gate = entry.get('gate', {})
    if not isinstance(gate, dict):
        raise ValueError(f'{where}: gate must map categories to accuracies (%)')
    for category, least in gate.items():
        if category not in CATEGORIES:
            raise ValueError(f'{where}: gate names {category!r}; expected one of {CATEGORIES}')
        if isinstance(least, bool) or not isinstance(least, int | float) or not 0 <= least <= 100:
            raise ValueError(f'{where}: gate {category} must be a percentage, got {least!r}')
    gate_questions = entry.get('gate_questions', 100)
    if not _whole(gate_questions, 1, MAX_GATE_QUESTIONS):
        raise ValueError(
            f'{where}: gate_questions must be a whole number in [1, {MAX_GATE_QUESTIONS}], '
            f'got {gate_questions!r}'
        )
    return Run(config, questions, {c: float(v) for c, v in gate.items()}, gate_questions)


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
