"""``smolrgpt ask``: answer a question about one RGB-D frame from files, without ROS."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

HELP = 'answer one spatial question about an RGB-D frame from image files (no ROS needed)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--checkpoint', help='checkpoint directory (default: embedded model)')
    parser.add_argument('--rgb', required=True, help='RGB image (PNG/JPEG)')
    parser.add_argument(
        '--depth',
        required=True,
        help='depth: 8-bit PNG (dataset style, near = dark), 16-bit PNG '
        '(millimetres) or .npy (float metres)',
    )
    masks = parser.add_mutually_exclusive_group(required=True)
    masks.add_argument(
        '--masks',
        nargs='+',
        metavar='FILE',
        help='one binary PNG per region (non-zero = inside), or one JSON file '
        'with a list of COCO RLEs',
    )
    masks.add_argument(
        '--instances',
        metavar='PNG',
        help='instance-id PNG: each non-zero value is a region with that id',
    )
    parser.add_argument(
        '--region-ids',
        type=int,
        nargs='*',
        help='id of each region (default: 0..M-1, or the instance values)',
    )
    parser.add_argument(
        '--question',
        required=True,
        action='append',
        help='the question; regions as <mask> (in --ask-ids order) or '
        '<regionN> by id; repeat for several questions about the frame',
    )
    parser.add_argument(
        '--ask-ids',
        type=int,
        nargs='*',
        default=[],
        help='region ids for the <mask> placeholders, in order',
    )
    parser.add_argument('--backend', default='torch', help='torch | onnxruntime | tensorrt')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--dtype', default='float32')
    parser.add_argument('--engine-dir', help='exported graphs (onnxruntime / tensorrt)')
    parser.add_argument('--max-new-tokens', type=int, default=48)
    parser.add_argument('--json', action='store_true', help='print JSON lines')


def _read_image(path: str) -> object:
    import numpy as np
    from PIL import Image

    from smolrgpt_cli.errors import CommandError

    file = Path(path)
    if not file.is_file():
        raise CommandError(f'{path}: no such file')
    if file.suffix == '.npy':
        return np.load(file)
    try:
        with Image.open(file) as image:
            return np.array(image)
    except OSError as exc:
        raise CommandError(f'{path}: not a readable image ({exc})') from exc


def load_masks(args: argparse.Namespace) -> tuple[object, list[int]]:
    import numpy as np

    from smolrgpt_cli.errors import CommandError
    from smolrgpt_core.masks import MaskFormatError, rles_decode

    if args.instances:
        ids_image = np.asarray(_read_image(args.instances))
        if ids_image.ndim != 2:
            raise CommandError(f'{args.instances}: an instance-id image must be single-channel')
        ids = [int(v) for v in np.unique(ids_image) if v != 0]
        if not ids:
            raise CommandError(f'{args.instances}: no non-zero instance ids')
        return np.stack([ids_image == v for v in ids]), ids
    if len(args.masks) == 1 and args.masks[0].endswith('.json'):
        try:
            rles = json.loads(Path(args.masks[0]).read_text())
            rles = rles['rle'] if isinstance(rles, dict) else rles
            masks = rles_decode(rles)
        except (OSError, ValueError, KeyError, MaskFormatError) as exc:
            raise CommandError(f'{args.masks[0]}: not a list of COCO RLEs ({exc})') from exc
    else:
        arrays = [np.asarray(_read_image(p)) for p in args.masks]
        arrays = [a[..., 0] if a.ndim == 3 else a for a in arrays]
        if len({a.shape for a in arrays}) != 1:
            raise CommandError('the mask images have different sizes')
        masks = np.stack([a != 0 for a in arrays])
    return masks, list(range(len(masks)))


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from smolrgpt_cli.errors import CommandError
    from smolrgpt_core.inference.engine import EngineError, Frame, Query, SpatialQueryEngine
    from smolrgpt_core.paths import embedded_model_dir

    rgb = np.asarray(_read_image(args.rgb))
    if rgb.ndim == 3 and rgb.shape[2] == 4:
        rgb = np.ascontiguousarray(rgb[..., :3])
    depth = np.asarray(_read_image(args.depth))
    if depth.ndim == 3:
        depth = np.ascontiguousarray(depth[..., 0])  # an 8-bit depth saved as RGB
    encoding = {
        np.dtype(np.uint8): 'mono8',
        np.dtype(np.uint16): '16UC1',
        np.dtype(np.int32): '16UC1',
        np.dtype(np.float32): '32FC1',
        np.dtype(np.float64): '32FC1',
    }.get(depth.dtype)
    if encoding is None:
        raise CommandError(f'{args.depth}: unsupported depth type {depth.dtype}')
    depth = depth.astype({'mono8': np.uint8, '16UC1': np.uint16, '32FC1': np.float32}[encoding])
    masks, default_ids = load_masks(args)
    ids = args.region_ids if args.region_ids is not None else default_ids
    try:
        checkpoint = args.checkpoint or embedded_model_dir()
        engine = SpatialQueryEngine.from_checkpoint(
            checkpoint,
            backend=args.backend,
            device=args.device,
            dtype=args.dtype,
            engine_dir=args.engine_dir,
            max_new_tokens=args.max_new_tokens,
        )
        frame = Frame(rgb=rgb, depth=depth, masks=masks, region_ids=ids, depth_encoding=encoding)
        queries = [Query(q, args.ask_ids if '<mask>' in q else []) for q in args.question]
        answers = engine.ask_many(frame, queries)
    except (EngineError, FileNotFoundError) as exc:
        raise CommandError(str(exc)) from exc
    for query, answer in zip(queries, answers):
        if args.json:
            print(
                json.dumps(
                    {
                        'question': query.question,
                        'answer': answer.text,
                        'normalized_answer': answer.normalized_answer,
                        'category': answer.category,
                        'value': None if math.isnan(answer.value) else answer.value,
                        'region_ids': answer.region_ids,
                        'latency_ms': round(answer.latency_ms, 1),
                    }
                )
            )
        else:
            print(
                f'Q: {query.question}\nA: {answer.text}\n   normalized: '
                f'{answer.normalized_answer or "-"} ({answer.category}), '
                f'{answer.latency_ms:.0f} ms'
            )
    return 0
