"""Optional class-size priors (``config/class_priors.yaml``), used only when a caller asks.

A prior only ever *grows* a measurement to a class's least size, on the side the camera cannot
see (the hidden back of a shelf, the far strip of a pallet under its load); results record that
a prior was used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import math
import os
from pathlib import Path
from typing import Any

PRIORS_FILE = 'class_priors.yaml'
MAX_PRIORS_BYTES = 64 * 1024
MAX_SIZE_M = 100.0  # no warehouse object is larger; a bigger number is a unit mistake


@dataclass(frozen=True)
class ClassPrior:
    footprint_m: tuple[float, float] | None = None  # (long side, short side)
    min_height_m: float | None = None


@dataclass(frozen=True)
class ClassPriors:
    by_label: Mapping[str, ClassPrior]

    def get(self, label: str) -> ClassPrior | None:
        return self.by_label.get(label)


def _size(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f'{where} must be a number of metres, got {value!r}')
    if not (math.isfinite(value) and 0 < value <= MAX_SIZE_M):
        raise ValueError(f'{where} must be within (0, {MAX_SIZE_M}] metres, got {value}')
    return float(value)


def parse_class_priors(doc: Any, source: str = 'class priors') -> ClassPriors:
    """A parsed YAML mapping ``{label: {footprint_m: [a, b], min_height_m: h}}`` -> priors."""
    if not isinstance(doc, Mapping):
        raise ValueError(f'{source} must be a mapping of class labels')
    out: dict[str, ClassPrior] = {}
    for label, entry in doc.items():
        entry = entry or {}
        if not isinstance(entry, Mapping):
            raise ValueError(f'{source}: {label} must be a mapping')
        unknown = set(entry) - {'footprint_m', 'min_height_m'}
        if unknown:
            raise ValueError(f'{source}: {label} has unknown keys {sorted(unknown)}')
        footprint = None
        if 'footprint_m' in entry:
            sides = entry['footprint_m']
            if not isinstance(sides, (list, tuple)) or len(sides) != 2:
                raise ValueError(f'{source}: {label}.footprint_m must be [long, short] metres')
            a, b = (_size(s, f'{source}: {label}.footprint_m') for s in sides)
            footprint = (max(a, b), min(a, b))
        height = None
        if 'min_height_m' in entry:
            height = _size(entry['min_height_m'], f'{source}: {label}.min_height_m')
        out[str(label)] = ClassPrior(footprint, height)
    return ClassPriors(out)


def default_priors_path() -> Path:
    """config/class_priors.yaml of the source tree, or share/smolrgpt_ros/config of a ROS
    install (CMakeLists.txt installs config/ there)."""
    candidates = [Path(__file__).resolve().parents[2] / 'config' / PRIORS_FILE]
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / 'share' / 'smolrgpt_ros' / 'config' / PRIORS_FILE)
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f'{PRIORS_FILE} was not found (looked in {", ".join(str(c) for c in candidates)})'
    )


def load_class_priors(path: str | Path | None = None) -> ClassPriors:
    """Read the priors YAML (``default_priors_path()`` when ``path`` is None)."""
    import yaml

    path = Path(path) if path is not None else default_priors_path()
    if not path.is_file():
        raise ValueError(f'class priors file {path} does not exist')
    if path.stat().st_size > MAX_PRIORS_BYTES:
        raise ValueError(f'class priors file {path} is larger than {MAX_PRIORS_BYTES} bytes')
    try:
        doc = yaml.safe_load(path.read_text(encoding='utf-8'))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(f'class priors file {path} is not readable YAML ({exc})') from None
    return parse_class_priors(doc, str(path))
