"""InferenceSettings: everything a job decides about running a checkpoint, in one object.

Built once per job — by ``NodeConfig`` (ROS parameters), by the CLIs (``add_arguments`` /
``from_args``), by benchmarks and replay — validated once, here, and handed to
``SpatialQueryEngine.from_checkpoint(path, settings)``. The architecture never appears here: it
comes from the checkpoint's ``config.json``.

Every setting has one dotted name (``model.backend``, ``generation.max_new_tokens``, ...), which is
also its ROS parameter name, and one CLI flag. Every size a caller controls has a bound here, so
the engine can refuse a request before it allocates anything for it.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from smolrgpt_core.depth import ENCODINGS, PIPELINES, RANGE_POLICIES, DepthSpec, DepthSpecError
from smolrgpt_core.inference.backends import BACKENDS, DTYPE_CHOICES, ChoiceError, check_choice

MIB = 1 << 20


class SettingsError(ValueError):
    """A setting the product cannot run with; ``name`` is its dotted name."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f'{name}: {problem}')
        self.name = name
        self.problem = problem


def _setting(
    default: Any, description: str, flag: str, lo: float | None = None, hi: float | None = None
) -> Any:
    meta = {'description': description, 'flag': flag, 'lo': lo, 'hi': hi}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ModelSettings:
    backend: str = _setting('torch', f'inference backend: {" | ".join(BACKENDS)}', '--backend')
    device: str = _setting(
        'cpu', 'torch device: cpu, cuda, cuda:N or auto (cuda when present)', '--device'
    )
    dtype: str = _setting(
        'float32', f'weights and activations: {" | ".join(DTYPE_CHOICES)} (per backend)', '--dtype'
    )
    engine_dir: str = _setting(
        '',
        'exported graphs / engines (onnxruntime, tensorrt); empty = <checkpoint>/onnx',
        '--engine-dir',
    )
    threads: int = _setting(
        0,
        'CPU threads of the inference library (torch intra-op, set when the checkpoint is '
        'loaded; onnxruntime follows it); 0 = its default, one per core',
        '--threads',
        0,
        256,
    )


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = _setting(
        48, 'answer length when a request says 0', '--max-new-tokens', 1, None
    )
    max_new_tokens_cap: int = _setting(
        256,
        'largest answer length a request may ask for (larger requests are refused)',
        '--max-new-tokens-cap',
        1,
        8192,
    )
    max_prompt_tokens: int = _setting(
        1024,
        'largest tokenised prompt (question + image and region tokens); longer questions '
        'are refused before the model runs',
        '--max-prompt-tokens',
        16,
        65536,
    )
    max_question_chars: int = _setting(
        2000, 'largest question, in characters', '--max-question-chars', 1, 1_000_000
    )


@dataclass(frozen=True)
class FrameLimits:
    max_image_pixels: int = _setting(
        4096 * 4096,
        'largest image (width x height) of a frame; larger frames are refused',
        '--max-image-pixels',
        1,
        1 << 30,
    )
    max_regions: int = _setting(128, 'most regions (masks) in a frame', '--max-regions', 1, 4096)
    max_frame_bytes: int = _setting(
        512 * MIB,
        'largest frame in bytes (RGB + depth + masks as received)',
        '--max-frame-bytes',
        MIB,
        1 << 36,
    )


@dataclass(frozen=True)
class CacheSettings:
    frames: int = _setting(8, 'frames kept for stamp lookups', '--cache-frames', 1, 4096)
    max_bytes: int = _setting(
        512 * MIB,
        'byte budget of the frame cache (oldest frames go first)',
        '--cache-max-bytes',
        MIB,
        1 << 38,
    )


ANSWER_MODES = ('model', 'geometry', 'hybrid')


@dataclass(frozen=True)
class AnswerSettings:
    mode: str = _setting(
        'model',
        'model (the language model) | geometry (measured from metric depth and intrinsics; '
        'refuses what it cannot measure) | hybrid (geometry where its preconditions hold, '
        'else the model)',
        '--mode',
    )
    cross_check: bool = _setting(
        False,
        'also run the other path and report its answer (geometry and hybrid)',
        '--cross-check',
    )
    priors: bool = _setting(
        False,
        'use class-size priors (config/class_priors.yaml) in geometry; answers say so',
        '--priors',
    )
    min_points: int = _setting(
        50, 'fewest valid depth pixels a region needs to be measured', '--min-points', 1, 20000
    )


_DEPTH_META = {
    'encoding': (
        'expected depth encoding: auto (as received) | ' + ' | '.join(ENCODINGS),
        '--depth-encoding',
    ),
    'range': (
        "metric depth to the model's 8-bit depth: "
        + ' | '.join(RANGE_POLICIES)
        + ' (checkpoint = what it was trained with)',
        '--depth-range',
    ),
    'min_m': ('near end of a fixed depth range (m), depth.range fixed only', '--depth-min-m'),
    'max_m': ('far end of a fixed depth range (m), depth.range fixed only', '--depth-max-m'),
    'pipeline': (
        'depth ViT input: ' + ' | '.join(PIPELINES) + " (rgb = the reference's test-time quirk)",
        '--depth-pipeline',
    ),
}


@dataclass(frozen=True)
class InferenceSettings:
    model: ModelSettings = field(default_factory=ModelSettings)
    depth: DepthSpec = field(default_factory=DepthSpec)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    limits: FrameLimits = field(default_factory=FrameLimits)
    cache: CacheSettings = field(default_factory=CacheSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)

    def __post_init__(self) -> None:
        for name, value, meta in self._items():
            kind = type(meta['default'])
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                continue
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise SettingsError(name, f'expected {kind.__name__}, got {value!r}')
            lo, hi = meta.get('lo'), meta.get('hi')
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                bounds = f'in {lo}..{hi}' if hi is not None else f'>= {lo}'
                raise SettingsError(name, f'must be {bounds}, got {value}')
        m, g = self.model, self.generation
        try:
            check_choice(m.backend, m.device, m.dtype)
        except ChoiceError as exc:
            raise SettingsError(f'model.{exc.field}', str(exc)) from None
        if self.answer.mode not in ANSWER_MODES:
            raise SettingsError(
                'answer.mode', f'{self.answer.mode!r} is not one of {", ".join(ANSWER_MODES)}'
            )
        if g.max_new_tokens > g.max_new_tokens_cap:
            raise SettingsError(
                'generation.max_new_tokens',
                f'{g.max_new_tokens} is above the cap {g.max_new_tokens_cap} '
                '(generation.max_new_tokens_cap)',
            )

    # one dotted name per setting ------------------------------------------------------------
    def _items(self) -> Iterator[tuple[str, Any, dict[str, Any]]]:
        for section in fields(self):
            obj = getattr(self, section.name)
            for f in fields(obj):
                meta = dict(f.metadata) if f.metadata else {}
                if section.name == 'depth':
                    meta = {'description': _DEPTH_META[f.name][0], 'flag': _DEPTH_META[f.name][1]}
                meta['default'] = f.default
                yield f'{section.name}.{f.name}', getattr(obj, f.name), meta

    def to_flat(self) -> dict[str, Any]:
        return {name: value for name, value, _ in self._items()}

    @classmethod
    def from_flat(
        cls, values: Mapping[str, Any], base: InferenceSettings | None = None
    ) -> InferenceSettings:
        """From dotted names (a subset; the rest from ``base`` or the defaults). Unknown names
        and wrong types are SettingsErrors naming the setting."""
        base = base or cls()
        known = base.to_flat()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise SettingsError(unknown[0], 'unknown setting')
        groups: dict[str, dict[str, Any]] = {}
        for name, value in values.items():
            default = known[name]
            if (
                isinstance(default, float)
                and isinstance(value, int)
                and not isinstance(value, bool)
            ):
                value = float(value)
            section, key = name.split('.', 1)
            groups.setdefault(section, {})[key] = value
        sections = {}
        for section, changes in groups.items():
            try:
                sections[section] = replace(getattr(base, section), **changes)
            except DepthSpecError as exc:
                raise SettingsError(f'{section}.{exc.field}', str(exc)) from None
            except TypeError as exc:
                raise SettingsError(section, str(exc)) from None
        return replace(base, **sections)

    @staticmethod
    def describe() -> dict[str, tuple[Any, str, str]]:
        """dotted name -> (default, description, CLI flag), for parameter declarations."""
        return {
            name: (meta['default'], meta['description'], meta['flag'])
            for name, _, meta in InferenceSettings()._items()
        }


# command-line flags ---------------------------------------------------------------------------
COMMON_FLAGS = (
    'model.backend',
    'model.device',
    'model.dtype',
    'model.engine_dir',
    'generation.max_new_tokens',
    'depth.range',
    'depth.min_m',
    'depth.max_m',
)


def add_arguments(
    parser: argparse.ArgumentParser,
    names: tuple[str, ...] = COMMON_FLAGS,
    defaults: InferenceSettings | None = None,
) -> None:
    """Declare the flags of the named settings (defaults shown from ``defaults``)."""
    flat = (defaults or InferenceSettings()).to_flat()
    table = InferenceSettings.describe()
    group = parser.add_argument_group('inference settings')
    for name in names:
        _, description, flag = table[name]
        default = flat[name]
        kwargs: dict[str, Any] = {
            'dest': 'setting:' + name,
            'default': default,
            'help': f'{description} (default: {default!r})',
        }
        if name == 'model.backend':
            kwargs['choices'] = list(BACKENDS)
        elif name == 'model.dtype':
            kwargs['choices'] = list(DTYPE_CHOICES)
        elif name == 'depth.range':
            kwargs['choices'] = list(RANGE_POLICIES)
        elif name == 'depth.pipeline':
            kwargs['choices'] = list(PIPELINES)
        elif name == 'answer.mode':
            kwargs['choices'] = list(ANSWER_MODES)
        elif isinstance(default, bool):
            kwargs['action'] = argparse.BooleanOptionalAction
        elif not isinstance(default, str):
            kwargs['type'] = type(default)
        group.add_argument(flag, **kwargs)


def from_args(
    args: argparse.Namespace, defaults: InferenceSettings | None = None
) -> InferenceSettings:
    """The settings the flags of ``add_arguments`` ask for. SettingsError names the flag."""
    values = {k.split(':', 1)[1]: v for k, v in vars(args).items() if k.startswith('setting:')}
    try:
        return InferenceSettings.from_flat(values, defaults)
    except SettingsError as exc:
        table = InferenceSettings.describe()
        flag = table[exc.name][2] if exc.name in table else exc.name
        raise SettingsError(flag, exc.problem) from None
