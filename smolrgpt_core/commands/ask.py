"""``smolrgpt ask``: answer a question about one RGB-D frame from files, without ROS."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

from smolrgpt_core.limits import MAX_IMAGE_PIXELS, MAX_REGIONS

if TYPE_CHECKING:
    import numpy as np

from smolrgpt_core import settings

HELP = 'answer one spatial question about an RGB-D frame from image files (no ROS needed)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--checkpoint', help='checkpoint directory or hf://org/name (default: the embedded model)'
    )
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
    parser.add_argument(
        '--labels', nargs='*', help='class label of each region (pallet, buffer, transporter, ...)'
    )
    camera = parser.add_mutually_exclusive_group()
    camera.add_argument(
        '--camera-info',
        metavar='YAML',
        help='camera calibration YAML (camera_calibration / camera_info_manager format) of the '
        'depth image: enables geometry answers',
    )
    camera.add_argument(
        '--intrinsics', metavar='FX,FY,CX,CY', help='pinhole intrinsics in pixels (no distortion)'
    )
    parser.add_argument('--json', action='store_true', help='print JSON lines')
    settings.add_arguments(
        parser, (*settings.COMMON_FLAGS, 'answer.mode', 'answer.cross_check', 'answer.priors')
    )


def _existing_file(path: str) -> Path:
    from smolrgpt_cli.errors import CommandError

    file = Path(path)
    if not file.exists():
        raise CommandError(f'{path}: no such file')
    if not file.is_file():
        raise CommandError(f'{path}: not a file')
    return file


def _read_npy(file: Path, max_pixels: int) -> np.ndarray:
    """A numeric [H, W] or [H, W, C] array; its header is checked before the data is read."""
    import numpy as np
    from numpy.lib import format as npy

    from smolrgpt_cli.errors import CommandError

    readers = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
    try:
        with open(file, 'rb') as f:
            version = npy.read_magic(f)
            if version not in readers:
                raise CommandError(f'{file}: .npy format {version} is not read (1.0 and 2.0 are)')
            shape, _, dtype = readers[version](f)
            offset = f.tell()
    except ValueError as exc:  # bad magic string, bad header, file too short
        raise CommandError(f'{file}: not a .npy array file ({exc})') from exc
    if dtype.hasobject or dtype.names is not None or dtype.kind not in 'biuf':
        raise CommandError(
            f'{file}: holds {dtype} values; only plain numeric arrays are read (never pickles)'
        )
    if len(shape) not in (2, 3) or min(shape) < 1 or (len(shape) == 3 and shape[2] > 4):
        raise CommandError(f'{file}: shape {shape} is not an image [H, W] or [H, W, C<=4]')
    if shape[0] * shape[1] > max_pixels:
        raise CommandError(
            f'{file}: {shape[1]}x{shape[0]} is {shape[0] * shape[1]} pixels, more than the '
            f'{max_pixels} allowed'
        )
    needed = offset + math.prod(shape) * dtype.itemsize
    if file.stat().st_size < needed:
        raise CommandError(
            f'{file}: truncated ({file.stat().st_size} bytes; the header needs {needed})'
        )
    return np.load(file, allow_pickle=False)


def _read_picture(file: Path, max_pixels: int) -> np.ndarray:
    """A PNG/JPEG/... as an array; the size in its header is checked before decoding."""
    import struct
    import warnings

    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from smolrgpt_cli.errors import CommandError

    try:
        with warnings.catch_warnings():
            # PIL warns (and, past twice its limit, raises) on huge headers: both are refusals
            warnings.simplefilter('error', Image.DecompressionBombWarning)
            with Image.open(file) as image:  # reads the header only
                width, height = image.size
                if width * height > max_pixels:
                    raise CommandError(
                        f'{file}: {width}x{height} is {width * height} pixels, more than the '
                        f'{max_pixels} allowed'
                    )
                return np.array(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise CommandError(f'{file}: refused as a decompression bomb ({exc})') from exc
    except UnidentifiedImageError as exc:
        raise CommandError(f'{file}: not an image file (PNG, JPEG, ...)') from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        # PIL reports a truncated or corrupt file with any of these (SyntaxError: a bad chunk)
        raise CommandError(f'{file}: truncated or corrupt image ({exc})') from exc


def _read_image(path: str, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """An image file (PNG/JPEG/..., or .npy) as an array of at most ``max_pixels`` pixels."""
    from smolrgpt_cli.errors import CommandError

    file = _existing_file(path)
    if file.stat().st_size == 0:
        raise CommandError(f'{path}: empty file')
    if file.suffix.lower() == '.npy':
        return _read_npy(file, max_pixels)
    return _read_picture(file, max_pixels)


def _read_rles(path: str) -> list:
    from smolrgpt_cli.errors import CommandError

    file = _existing_file(path)
    try:
        data = json.loads(file.read_text(encoding='utf-8'))
    except UnicodeDecodeError as exc:
        raise CommandError(f'{path}: not UTF-8 text') from exc
    except json.JSONDecodeError as exc:
        raise CommandError(f'{path}: not JSON ({exc})') from exc
    rles = data.get('rle') if isinstance(data, dict) else data
    if not isinstance(rles, list):
        raise CommandError(f'{path}: expected a list of COCO RLEs (or {{"rle": [...]}})')
    return rles


def load_masks(
    args: argparse.Namespace,
    max_pixels: int = MAX_IMAGE_PIXELS,
    max_regions: int = MAX_REGIONS,
) -> tuple[np.ndarray, list[int]]:
    """bool masks [M, H, W] and their default region ids, from --instances or --masks."""
    import numpy as np

    from smolrgpt_cli.errors import CommandError
    from smolrgpt_core.masks import MaskFormatError, rles_decode

    if args.instances:
        ids_image = _read_image(args.instances, max_pixels)
        if ids_image.ndim != 2 or ids_image.dtype.kind not in 'biu':
            raise CommandError(
                f'{args.instances}: an instance-id image must be single-channel integers, got '
                f'{ids_image.dtype} {list(ids_image.shape)}'
            )
        ids = [int(v) for v in np.unique(ids_image) if v != 0]
        if not ids:
            raise CommandError(f'{args.instances}: no non-zero instance ids')
        if len(ids) > max_regions:
            raise CommandError(
                f'{args.instances}: {len(ids)} instance ids, more than the {max_regions} '
                'regions allowed'
            )
        return np.stack([ids_image == v for v in ids]), ids
    if len(args.masks) > max_regions:
        raise CommandError(
            f'{len(args.masks)} mask files, more than the {max_regions} regions allowed'
        )
    if len(args.masks) == 1 and args.masks[0].endswith('.json'):
        rles = _read_rles(args.masks[0])
        if len(rles) > max_regions:
            raise CommandError(
                f'{args.masks[0]}: {len(rles)} RLEs, more than the {max_regions} regions allowed'
            )
        try:
            masks = rles_decode(rles, max_pixels)
        except MaskFormatError as exc:
            raise CommandError(f'{args.masks[0]}: {exc}') from exc
    else:
        arrays = [_read_image(p, max_pixels) for p in args.masks]
        arrays = [a[..., 0] if a.ndim == 3 else a for a in arrays]
        if len({a.shape for a in arrays}) != 1:
            raise CommandError('the mask images have different sizes')
        masks = np.stack([a != 0 for a in arrays])
    return masks, list(range(len(masks)))


def _camera(args: argparse.Namespace, width: int, height: int) -> object:
    """The CameraModel the flags give (None without them); ValueError names the problem."""
    if not (args.camera_info or args.intrinsics):
        return None
    from smolrgpt_core.geometry import CameraModel

    if args.camera_info:
        camera = CameraModel.from_calibration_yaml(_existing_file(args.camera_info))
    else:
        camera = CameraModel.from_intrinsics_text(args.intrinsics, width, height)
    problem = camera.check_frame(width, height)
    if problem:
        raise ValueError(problem)
    return camera


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from smolrgpt_cli.errors import CommandError
    from smolrgpt_core.inference.engine import EngineError, Frame, Query, SpatialQueryEngine
    from smolrgpt_core.paths import embedded_model_dir
    from smolrgpt_core.weights import CheckpointError

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
    if depth.dtype == np.int32 and depth.size and (depth.min() < 0 or depth.max() > 65535):
        raise CommandError(f'{args.depth}: 32-bit depth values outside 0..65535 mm')
    depth = depth.astype({'mono8': np.uint8, '16UC1': np.uint16, '32FC1': np.float32}[encoding])
    masks, default_ids = load_masks(args)
    ids = args.region_ids if args.region_ids is not None else default_ids
    labels = args.labels or []
    if labels and len(labels) != len(masks):
        raise CommandError(f'--labels gives {len(labels)} labels for {len(masks)} regions')
    try:
        camera = _camera(args, depth.shape[1], depth.shape[0])
        checkpoint = args.checkpoint or embedded_model_dir()
        engine = SpatialQueryEngine.from_checkpoint(checkpoint, settings.from_args(args))
        frame = Frame(
            rgb=rgb,
            depth=depth,
            masks=masks,
            region_ids=ids,
            depth_encoding=encoding,
            labels=labels,
            camera=camera,
        )
        queries = [Query(q, args.ask_ids if '<mask>' in q else []) for q in args.question]
        answers = engine.ask_many(frame, queries)
    except (EngineError, CheckpointError, settings.SettingsError, OSError, ValueError) as exc:
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
                        'source': answer.source,
                        'cross_check': answer.cross_check,
                        'geometry_reason': answer.geometry_reason,
                        'latency_ms': round(answer.latency_ms, 1),
                    }
                )
            )
        else:
            text = answer.text if answer.answered else f'(not answered: {answer.geometry_reason})'
            note = f'; geometry: {answer.geometry_reason}' if answer.geometry_reason else ''
            check = f'; other path: {answer.cross_check}' if answer.cross_check else ''
            print(
                f'Q: {query.question}\nA: {text}\n   normalized: '
                f'{answer.normalized_answer or "-"} ({answer.category}), source {answer.source}, '
                f'{answer.latency_ms:.0f} ms{check}{note}'
            )
    return 0
