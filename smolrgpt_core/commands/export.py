"""``smolrgpt export onnx|tensorrt``: graphs for ONNX Runtime, then engines for TensorRT."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = 'export the model to ONNX graphs (onnx) or build TensorRT engines from them (tensorrt)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    targets = parser.add_subparsers(dest='target', metavar='TARGET', required=True)
    onnx = targets.add_parser(
        'onnx',
        help='vision.onnx + decoder.onnx + manifest.json',
        description='Export vision.onnx and decoder.onnx (dynamo '
        'exporter) with a manifest, then check them with ONNX Runtime.',
    )
    onnx.add_argument('--checkpoint', required=True, help='checkpoint directory')
    onnx.add_argument('--out', required=True, help='output directory (created)')
    onnx.add_argument(
        '--dtype',
        choices=('fp32', 'fp16', 'int8'),
        default='fp32',
        help='precision baked into the graphs (fp16 is what TensorRT 11 needs; int8: '
        '8-bit decoder weights for ONNX Runtime on the CPU)',
    )
    onnx.add_argument('--opset', type=int, default=20, help='ONNX opset (default 20)')
    onnx.add_argument(
        '--no-verify',
        dest='verify',
        action='store_false',
        help='skip the ONNX Runtime vs torch check after export',
    )
    trt = targets.add_parser(
        'tensorrt',
        help='TensorRT engines from an ONNX export',
        description='Build (or reuse) TensorRT engines for this GPU and '
        'TensorRT version; cached engines with another key are rebuilt.',
    )
    trt.add_argument('--onnx', required=True, help='directory written by `export onnx`')
    trt.add_argument('--out', help='engine directory (default: the --onnx directory)')
    trt.add_argument('--max-batch', type=int, default=8, help='questions per batch')
    trt.add_argument('--max-prompt', type=int, default=256, help='tokens per prefill chunk')
    trt.add_argument('--max-context', type=int, default=1024, help='prompt + answer slots')
    trt.add_argument('--max-regions', type=int, default=32, help='masks per frame')
    trt.add_argument('--workspace-mib', type=int, default=4096, help='builder workspace limit')
    trt.add_argument('--force', action='store_true', help='rebuild even if cached')
    trt.add_argument('--verbose-build', action='store_true', help='TensorRT builder log')


def _run_onnx(args: argparse.Namespace) -> int:
    from safetensors import SafetensorError

    from smolrgpt_cli.errors import CommandError
    from smolrgpt_core.export.onnx_export import export_onnx
    from smolrgpt_core.weights import CheckpointError

    dtype = {'fp32': 'float32', 'fp16': 'float16', 'int8': 'int8'}[args.dtype]
    try:
        manifest = export_onnx(
            args.checkpoint, args.out, dtype=dtype, opset=args.opset, verify=args.verify
        )
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:  # before ValueError: a subclass
        raise CommandError(f'{args.checkpoint}: config.json is not JSON text ({exc})') from exc
    except SafetensorError as exc:
        raise CommandError(
            f'{args.checkpoint}: model.safetensors is not a readable safetensors file ({exc})'
        ) from exc
    except (CheckpointError, ImportError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    out = Path(args.out)
    for name, graph in manifest['graphs'].items():
        size = sum((out / f).stat().st_size for f in graph['files']) / 1e6
        print(f'{name}: {out / graph["file"]} ({size:.1f} MB, {graph["export_seconds"]} s)')
    if 'verification' in manifest:
        print(
            'onnxruntime vs torch (max abs diff): '
            + json.dumps({k: v for k, v in manifest['verification'].items() if k != 'onnxruntime'})
        )
    print(f'manifest: {out / "manifest.json"}')
    return 0


def _run_tensorrt(args: argparse.Namespace) -> int:
    from smolrgpt_cli.errors import CommandError
    from smolrgpt_core.export.manifest import ManifestError
    from smolrgpt_core.export.tensorrt_build import (
        BuildSettings,
        EngineBuildError,
        TensorRTUnavailable,
        build_engines,
    )

    onnx_dir = Path(args.onnx)
    out_dir = Path(args.out) if args.out else onnx_dir
    try:
        settings = BuildSettings(
            max_batch=args.max_batch,
            max_prompt=args.max_prompt,
            max_context=args.max_context,
            max_regions=args.max_regions,
            opt_batch=1,
            opt_prompt=min(96, args.max_prompt),
            opt_context=min(160, args.max_context),
            opt_regions=min(4, args.max_regions),
            workspace_mib=args.workspace_mib,
        )
        index = build_engines(
            onnx_dir, out_dir, settings, force=args.force, verbose=args.verbose_build
        )
    except (ValueError, ManifestError, TensorRTUnavailable, EngineBuildError) as exc:
        raise CommandError(str(exc)) from exc
    for name, engine in index['engines'].items():
        state = 'built' if engine['built_now'] else 'cached'
        key = engine['key']
        print(
            f'{name}: {out_dir / engine["plan"]} ({state}; TensorRT {key["tensorrt"]}, '
            f'{key["gpu"]}, {key["precision"]})'
        )
    return 0


def run(args: argparse.Namespace) -> int:
    return _run_onnx(args) if args.target == 'onnx' else _run_tensorrt(args)
