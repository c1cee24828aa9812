"""``smolrgpt export tensorrt``: TensorRT engines from the exported ONNX graphs, cached.

Not yet run against TensorRT in our CI: TensorRT cannot be installed from the package
registries our machines reach, so this module is written to the TensorRT 10/11 Python API
and only its TensorRT-free parts (profiles, cache keys, manifest checks) are unit-tested.

* Precision lives in the ONNX graph (``export onnx --dtype float16``). TensorRT >= 10.12
  builds a *strongly typed* network (in 11.x always; the FP16 builder flag is gone there);
  older TensorRT (10.3 on JetPack 6) builds a weakly typed network with ``BuilderFlag.FP16``
  for an fp16 graph.
* Optimisation profiles: vision has one, over the region count; the decoder has two, *prefill*
  (prompt chunks up to ``max_prompt`` tokens) and *decode* (one token, context up to
  ``max_context``). Requests beyond the built ranges are refused with a message that names the
  build flag to raise.
* Engines are tied to the TensorRT version and the GPU. Each plan is cached next to a sidecar
  JSON holding its key (ONNX hash, TensorRT version, GPU name and compute capability,
  precision, profile ranges); a plan whose key does not match the running system is rebuilt,
  never loaded (an engine silently breaking after a TensorRT upgrade is the failure Isaac ROS
  users report most).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
import hashlib
import json
import logging
from pathlib import Path
import time
from typing import Any

from smolrgpt_core.config import SmolRGPTConfig

logger = logging.getLogger(__name__)

INDEX_NAME = 'tensorrt.json'
KEY_VERSION = 1

Shape = tuple[int, ...]
Profile = dict[str, tuple[Shape, Shape, Shape]]  # input name -> (min, opt, max)

PREFILL, DECODE = 0, 1  # decoder profile indices


class TensorRTUnavailable(RuntimeError):
    """TensorRT (or a CUDA GPU) is missing; the message is one line for the user."""


class EngineBuildError(RuntimeError):
    pass


def import_tensorrt():
    """``import tensorrt`` or one clear line (never at package import time)."""
    try:
        import tensorrt
    except ImportError as exc:
        raise TensorRTUnavailable(
            'TensorRT is not installed (the tensorrt Python package, with its CUDA libraries); '
            'use backend onnxruntime or torch on this machine'
        ) from exc
    except OSError as exc:  # a wheel whose CUDA libraries do not load
        raise TensorRTUnavailable(f'TensorRT failed to load: {exc}') from exc
    return tensorrt


def version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split('.')[:3]:
        digits = ''.join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def uses_strong_typing(trt_version: str) -> bool:
    """Strongly typed networks from 10.12 (opt-in) and 11.x (always)."""
    return version_tuple(trt_version) >= (10, 12)


@dataclass(frozen=True)
class BuildSettings:
    """Shape ranges and memory for the engines; part of the cache key."""

    max_batch: int = 8  # questions answered together about one frame
    max_prompt: int = 256  # tokens in one prefill chunk (image tokens included)
    max_context: int = 1024  # past + new slots in one answer
    max_regions: int = 32  # masks per frame
    opt_batch: int = 1
    opt_prompt: int = 96
    opt_context: int = 160
    opt_regions: int = 4
    workspace_mib: int = 4096

    def __post_init__(self) -> None:
        for low, high in (
            ('opt_batch', 'max_batch'),
            ('opt_prompt', 'max_prompt'),
            ('opt_context', 'max_context'),
            ('opt_regions', 'max_regions'),
        ):
            if not 1 <= getattr(self, low) <= getattr(self, high):
                raise ValueError(
                    f'need 1 <= {low} ({getattr(self, low)}) <= {high} ({getattr(self, high)})'
                )
        if self.max_prompt > self.max_context:
            raise ValueError(
                f'max_prompt ({self.max_prompt}) exceeds max_context ({self.max_context})'
            )
        if self.workspace_mib < 1:
            raise ValueError('workspace_mib must be >= 1')


def vision_profiles(cfg: SmolRGPTConfig, s: BuildSettings) -> list[Profile]:
    G = cfg.mask_grid
    return [{'masks': ((1, G, G), (s.opt_regions, G, G), (s.max_regions, G, G))}]


def decoder_profiles(cfg: SmolRGPTConfig, s: BuildSettings) -> list[Profile]:
    """[prefill, decode]. Past keys start at 0 slots (an empty past is a real input)."""
    L, Hkv, Dh, D = cfg.lm_n_blocks, cfg.lm_n_kv_heads, cfg.lm_head_dim, cfg.lm_hidden_dim
    b0, b1, b2 = 1, s.opt_batch, s.max_batch

    def profile(t: tuple[int, int, int], past: tuple[int, int, int]) -> Profile:
        total = tuple(min(p + q, s.max_context) for p, q in zip(past, t))
        return {
            'inputs_embeds': ((b0, t[0], D), (b1, t[1], D), (b2, t[2], D)),
            'position_ids': ((b0, t[0]), (b1, t[1]), (b2, t[2])),
            'attention_bias': (
                (b0, 1, t[0], max(total[0], 1)),
                (b1, 1, t[1], total[1]),
                (b2, 1, t[2], total[2]),
            ),
            'past_key': tuple((L, b, Hkv, p, Dh) for b, p in zip((b0, b1, b2), past)),
            'past_value': tuple((L, b, Hkv, p, Dh) for b, p in zip((b0, b1, b2), past)),
        }

    prefill = profile((1, s.opt_prompt, s.max_prompt), (0, 0, s.max_context - s.max_prompt))
    decode = profile((1, 1, 1), (0, s.opt_context - 1, s.max_context - 1))
    return [prefill, decode]


def check_shapes(profile: Profile, shapes: dict[str, Shape], graph: str) -> None:
    """Refuse inputs outside an engine's profile, naming the dimension and the limit."""
    for name, shape in shapes.items():
        low, _, high = profile[name]
        if len(shape) != len(high):
            raise ValueError(
                f'{graph} input {name}: rank {len(shape)}, engine expects {len(high)}'
            )
        for axis, (v, lo, hi) in enumerate(zip(shape, low, high)):
            if not lo <= v <= hi:
                raise ValueError(
                    f'{graph} input {name} dim {axis} = {v} is outside the '
                    f'engine profile [{lo}, {hi}]; rebuild with larger '
                    '--max-batch/--max-prompt/--max-context/--max-regions'
                )


def decoder_profile_index(seq_len: int) -> int:
    return DECODE if seq_len == 1 else PREFILL


# --- cache keys -----------------------------------------------------------------------------
def engine_key(
    graph: str,
    onnx_sha256: str,
    precision: str,
    trt_version: str,
    gpu_name: str,
    compute_capability: tuple[int, int],
    settings: BuildSettings,
    profiles: list[Profile],
) -> dict[str, Any]:
    return {
        'key_version': KEY_VERSION,
        'graph': graph,
        'onnx_sha256': onnx_sha256,
        'precision': precision,
        'tensorrt': trt_version,
        'strongly_typed': uses_strong_typing(trt_version),
        'gpu': gpu_name,
        'compute_capability': list(compute_capability),
        'settings': asdict(settings),
        'profiles': [
            {name: [list(s) for s in shapes] for name, shapes in p.items()} for p in profiles
        ],
    }


def key_digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def plan_paths(out_dir: Path, graph: str, key: dict[str, Any]) -> tuple[Path, Path]:
    stem = f'{graph}-{key_digest(key)}'
    return out_dir / f'{stem}.plan', out_dir / f'{stem}.json'


def describe_mismatch(old: dict[str, Any], new: dict[str, Any]) -> str:
    """What changed between a cached engine's key and the one needed now."""
    labels = {
        'tensorrt': 'TensorRT version',
        'gpu': 'GPU',
        'compute_capability': 'compute capability',
        'onnx_sha256': 'ONNX graph',
        'precision': 'precision',
        'settings': 'build settings',
        'profiles': 'profiles',
        'strongly_typed': 'typing mode',
        'key_version': 'cache format',
    }
    changes = []
    for field, label in labels.items():
        if old.get(field) != new.get(field):
            if field in ('tensorrt', 'gpu', 'precision', 'compute_capability'):
                changes.append(f'{label} {old.get(field)} -> {new.get(field)}')
            else:
                changes.append(f'{label} changed')
    return ', '.join(changes) or 'unknown difference'


def stale_sidecars(out_dir: Path, graph: str, key: dict[str, Any]) -> list[tuple[Path, str]]:
    """Cached engines of ``graph`` built for another key, with what differs."""
    _, wanted = plan_paths(out_dir, graph, key)
    stale = []
    for sidecar in sorted(out_dir.glob(f'{graph}-*.json')):
        if sidecar == wanted:
            continue
        try:
            old = json.loads(sidecar.read_text(encoding='utf-8'))['key']
        except (OSError, ValueError, KeyError):
            old = {}
        stale.append((sidecar, describe_mismatch(old, key)))
    return stale


def ensure_engine(
    out_dir: Path,
    graph: str,
    key: dict[str, Any],
    build: Callable[[], bytes],
    *,
    force: bool = False,
    allow_build: bool = True,
) -> tuple[Path, bool]:
    """Path of the plan for ``key`` (building it if missing, stale or forced) and whether it
    was built now. Stale plans of the same graph are removed after a successful build."""
    plan, sidecar = plan_paths(out_dir, graph, key)
    if not force and plan.is_file() and sidecar.is_file():
        try:
            recorded = json.loads(sidecar.read_text(encoding='utf-8')).get('key')
        except ValueError:
            recorded = None
        if recorded == key:
            return plan, False
    stale = stale_sidecars(out_dir, graph, key)
    for path, why in stale:
        logger.warning(
            'cached %s engine %s does not match this system (%s): rebuilding',
            graph,
            path.with_suffix('.plan').name,
            why,
        )
    if not allow_build:
        raise TensorRTUnavailable(
            f'no {graph} engine for this TensorRT/GPU in {out_dir}; run `smolrgpt export tensorrt`'
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    data = build()
    seconds = time.perf_counter() - start
    tmp = plan.with_suffix('.plan.tmp')
    tmp.write_bytes(data)
    tmp.replace(plan)
    sidecar.write_text(
        json.dumps(
            {
                'key': key,
                'plan': plan.name,
                'bytes': len(data),
                'build_seconds': round(seconds, 1),
            },
            indent=2,
        )
        + '\n',
        encoding='utf-8',
    )
    for path, _ in stale:
        path.with_suffix('.plan').unlink(missing_ok=True)
        path.unlink(missing_ok=True)
    logger.info('built %s (%.1f MB) in %.1f s', plan.name, len(data) / 1e6, seconds)
    return plan, True


# --- building (needs TensorRT) --------------------------------------------------------------
def build_serialized(
    onnx_path: Path,
    profiles: list[Profile],
    precision: str,
    workspace_mib: int,
    verbose: bool = False,
) -> bytes:
    """Parse an ONNX graph and build a serialized engine with the TensorRT Python API."""
    trt = import_tensorrt()
    trt_logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    strong = uses_strong_typing(trt.__version__)
    flags = 0
    if strong and hasattr(trt.NetworkDefinitionCreationFlag, 'STRONGLY_TYPED'):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(str(onnx_path)):  # resolves the external .onnx.data file
        errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f'TensorRT could not parse {onnx_path.name}: {errors}')
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    if not strong and precision == 'float16':
        config.set_flag(trt.BuilderFlag.FP16)  # TensorRT < 10.12: weakly typed network
    for shapes in profiles:
        profile = builder.create_optimization_profile()
        for name, (low, opt, high) in shapes.items():
            profile.set_shape(name, low, opt, high)
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(
            f'TensorRT failed to build an engine from {onnx_path.name} '
            '(run with --verbose for the builder log)'
        )
    return bytes(serialized)


def gpu_identity() -> tuple[str, tuple[int, int]]:
    import torch

    if not torch.cuda.is_available():
        raise TensorRTUnavailable('TensorRT needs a CUDA GPU, and torch sees none')
    return torch.cuda.get_device_name(), torch.cuda.get_device_capability()


def require_float_graphs(manifest: dict[str, Any], onnx_dir: Path) -> None:
    """ValueError for exports TensorRT cannot build (the int8 graphs' MatMulNBits is an ONNX
    Runtime operator)."""
    if manifest['dtype'] not in ('float32', 'float16'):
        raise ValueError(
            f'{onnx_dir} holds {manifest["dtype"]} graphs (ONNX Runtime operators TensorRT '
            'does not parse); export float32 or float16 graphs for TensorRT'
        )


def build_engines(
    onnx_dir: Path,
    out_dir: Path,
    settings: BuildSettings,
    *,
    force: bool = False,
    allow_build: bool = True,
    verbose: bool = False,
) -> dict[str, Any]:
    """Ensure vision and decoder engines for this system; write and return the index."""
    from smolrgpt_core.export.manifest import read_manifest

    trt = import_tensorrt()
    gpu, capability = gpu_identity()
    manifest = read_manifest(onnx_dir)
    require_float_graphs(manifest, onnx_dir)
    cfg = SmolRGPTConfig.from_dict(manifest['config'])
    profiles = {
        'vision': vision_profiles(cfg, settings),
        'decoder': decoder_profiles(cfg, settings),
    }
    engines = {}
    for graph, graph_profiles in profiles.items():
        info = manifest['graphs'][graph]
        key = engine_key(
            graph,
            info['sha256'],
            manifest['dtype'],
            trt.__version__,
            gpu,
            capability,
            settings,
            graph_profiles,
        )
        plan, built = ensure_engine(
            out_dir,
            graph,
            key,
            lambda info=info, graph_profiles=graph_profiles: build_serialized(
                onnx_dir / info['file'],
                graph_profiles,
                manifest['dtype'],
                settings.workspace_mib,
                verbose,
            ),
            force=force,
            allow_build=allow_build,
        )
        engines[graph] = {'plan': plan.name, 'key': key, 'built_now': built}
    index = {'onnx_dir': str(onnx_dir.resolve()), 'settings': asdict(settings), 'engines': engines}
    (out_dir / INDEX_NAME).write_text(json.dumps(index, indent=2) + '\n', encoding='utf-8')
    return index


def read_settings(out_dir: Path) -> tuple[Path | None, BuildSettings]:
    """(onnx_dir, settings) from a previous build's index, or (None, defaults)."""
    index = out_dir / INDEX_NAME
    if not index.is_file():
        return None, BuildSettings()
    data = json.loads(index.read_text(encoding='utf-8'))
    return Path(data['onnx_dir']), BuildSettings(**data['settings'])
