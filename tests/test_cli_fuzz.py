"""Bad input to every subcommand ends in one line that names the problem, never a traceback.

Each case runs ``smolrgpt_cli.main.main(argv)`` in-process on files made here (corrupt, pickled
and oversized arrays, decompression-bomb and truncated PNGs, malformed RLEs, non-UTF-8 text,
broken bags, ...) and checks: a non-zero exit, exactly one line on stderr, no 'Traceback'
anywhere, and a key word of the problem in that line. Commands that need a running ROS graph
(node, query) are covered by the errors they report before touching it.
"""

from __future__ import annotations

import json
from pathlib import Path
import shutil
import struct
import zlib

import numpy as np
from PIL import Image
import pytest

from smolrgpt_cli.main import main
from smolrgpt_core.masks import counts_to_string, rle_encode

H, W = 30, 40
ASK = ['ask', '--checkpoint', '{ckpt}', '--question', 'Is <mask> left of <mask>?']
ASK_OK = [*ASK, '--rgb', '{rgb}', '--depth', '{mm}']  # + a masks source
TWO = ['--ask-ids', '0', '1']
PNG_MASKS = ['--masks', '{mask0}', '{mask1}', *TWO]
WH = ['score', 'warehouse', '--gt', '{gt}', '--no-chart', '--report', '{out}/r.json']
NORM = ['submission', 'normalize', '--out', '{out}/s.json']
PREDICT = ['classifier', 'predict', '--text', 'How far is <mask> from <mask>?']
BAG = ['bag', 'from-dataset', '--out', '{out}/bag']
REPLAY = ['replay-eval', '--timeout', '1', '--out', '{out}/replay']

# (case id, argv with {file} placeholders, a word the error line must contain)
CASES = [
    # the command line itself
    ('no-command', [], 'required'),
    ('unknown-command', ['no-such-command'], 'invalid choice'),
    ('unknown-flag', ['info', '--bogus'], 'unrecognized arguments'),
    # ask: images and arrays
    ('ask-missing-rgb-flag', [*ASK, '--depth', '{mm}', *PNG_MASKS], 'required'),
    ('ask-rgb-missing-file', [*ASK, '--rgb', '{tmp}/nope.png', '--depth', '{mm}', *PNG_MASKS],
     'no such file'),
    ('ask-rgb-directory', [*ASK, '--rgb', '{tmp}', '--depth', '{mm}', *PNG_MASKS], 'not a file'),
    ('ask-rgb-bomb-50000', [*ASK, '--rgb', '{bomb}', '--depth', '{mm}', *PNG_MASKS],
     'decompression bomb'),
    ('ask-rgb-bomb-10000', [*ASK, '--rgb', '{bomb10k}', '--depth', '{mm}', *PNG_MASKS],
     'decompression bomb'),
    ('ask-rgb-over-bound', [*ASK, '--rgb', '{big9k}', '--depth', '{mm}', *PNG_MASKS],
     'more than the'),
    ('ask-rgb-truncated-png', [*ASK, '--rgb', '{truncated_png}', '--depth', '{mm}', *PNG_MASKS],
     'truncated or corrupt'),
    ('ask-rgb-text-as-png', [*ASK, '--rgb', '{text_png}', '--depth', '{mm}', *PNG_MASKS],
     'not an image'),
    ('ask-rgb-zero-bytes', [*ASK, '--rgb', '{empty_png}', '--depth', '{mm}', *PNG_MASKS],
     'empty file'),
    ('ask-rgb-corrupt-npy', [*ASK, '--rgb', '{corrupt_npy}', '--depth', '{mm}', *PNG_MASKS],
     'not a .npy'),
    ('ask-depth-pickled-npy', [*ASK, '--rgb', '{rgb}', '--depth', '{pickled_npy}', *PNG_MASKS],
     'never pickles'),
    ('ask-depth-magic-only-npy', [*ASK, '--rgb', '{rgb}', '--depth', '{magic_npy}', *PNG_MASKS],
     'not a .npy'),
    ('ask-depth-truncated-npy', [*ASK, '--rgb', '{rgb}', '--depth', '{short_npy}', *PNG_MASKS],
     'truncated'),
    ('ask-depth-huge-header-npy', [*ASK, '--rgb', '{rgb}', '--depth', '{huge_npy}', *PNG_MASKS],
     'more than the'),
    ('ask-depth-4d-npy', [*ASK, '--rgb', '{rgb}', '--depth', '{npy_4d}', *PNG_MASKS], 'shape'),
    ('ask-depth-structured-npy', [*ASK, '--rgb', '{rgb}', '--depth', '{struct_npy}', *PNG_MASKS],
     'plain numeric'),
    ('ask-depth-complex-npy', [*ASK, '--rgb', '{rgb}', '--depth', '{complex_npy}', *PNG_MASKS],
     'plain numeric'),
    ('ask-depth-bool-npy', [*ASK, '--rgb', '{rgb}', '--depth', '{bool_npy}', *PNG_MASKS],
     'unsupported depth type'),
    ('ask-depth-other-size', [*ASK, '--rgb', '{rgb}', '--depth', '{mm_small}', *PNG_MASKS],
     'depth'),
    # ask: masks as COCO RLE JSON
    ('rle-counts-null', [*ASK_OK, '--masks', '{rle_counts_null}', *TWO], 'a string or a list'),
    ('rle-int-size', [*ASK_OK, '--masks', '{rle_int_size}', *TWO], 'two positive integers'),
    ('rle-negative-counts', [*ASK_OK, '--masks', '{rle_negative}', *TWO], 'non-negative'),
    ('rle-negative-coded', [*ASK_OK, '--masks', '{rle_negative_coded}', *TWO], 'negative'),
    ('rle-1e10-pixels', [*ASK_OK, '--masks', '{rle_huge}', *TWO], 'more than the'),
    ('rle-counts-not-summing', [*ASK_OK, '--masks', '{rle_short}', *TWO], 'needs 1200 pixels'),
    ('rle-bad-character', [*ASK_OK, '--masks', '{rle_bad_char}', *TWO], 'invalid character'),
    ('rle-endless-count', [*ASK_OK, '--masks', '{rle_endless}', *TWO], 'longer than'),
    ('rle-sizes-differ', [*ASK_OK, '--masks', '{rle_two_sizes}', *TWO], 'different sizes'),
    ('rle-empty-list', [*ASK_OK, '--masks', '{rle_empty}'], 'no RLEs'),
    ('rle-dict-without-list', [*ASK_OK, '--masks', '{rle_dict}', *TWO], 'list of COCO RLEs'),
    ('rle-not-utf8', [*ASK_OK, '--masks', '{latin1_json}', *TWO], 'not UTF-8'),
    ('rle-not-json', [*ASK_OK, '--masks', '{broken_json}', *TWO], 'not JSON'),
    ('rle-missing-file', [*ASK_OK, '--masks', '{tmp}/nope.json', *TWO], 'no such file'),
    ('rle-size-not-the-frame', [*ASK_OK, '--masks', '{rle_other_size}', *TWO], 'mask'),
    # ask: instance ids and mask PNGs
    ('instances-float', [*ASK_OK, '--instances', '{float_npy}', *TWO], 'single-channel integers'),
    ('instances-rgb', [*ASK_OK, '--instances', '{rgb}', *TWO], 'single-channel'),
    ('instances-all-zero', [*ASK_OK, '--instances', '{zeros_png}', *TWO], 'no non-zero'),
    ('instances-too-many-ids', [*ASK_OK, '--instances', '{ids300}', *TWO], 'regions allowed'),
    ('masks-too-many-files', [*ASK_OK, '--masks', *['{mask0}'] * 257, *TWO], 'regions allowed'),
    ('masks-sizes-differ', [*ASK_OK, '--masks', '{mask0}', '{mm_small}', *TWO], 'different sizes'),
    ('ask-unknown-region-id', [*ASK_OK, *PNG_MASKS[:3], '--ask-ids', '0', '6'], 'unknown region'),
    ('ask-region-ids-count', [*ASK_OK, *PNG_MASKS, '--region-ids', '4'], 'region'),
    ('ask-max-new-tokens-negative', [*ASK_OK, *PNG_MASKS, '--max-new-tokens', '-1'],
     'max-new-tokens'),
    ('ask-max-new-tokens-text', [*ASK_OK, *PNG_MASKS, '--max-new-tokens', 'many'],
     'invalid int value'),
    ('ask-checkpoint-is-a-file', ['ask', '--checkpoint', '{rgb}', *ASK[3:], '--rgb', '{rgb}',
                                  '--depth', '{mm}', *PNG_MASKS], 'not a directory'),
    ('ask-checkpoint-empty-dir', ['ask', '--checkpoint', '{empty_dir}', *ASK[3:], '--rgb', '{rgb}',
                                  '--depth', '{mm}', *PNG_MASKS], 'config.json: no such file'),
    # export
    ('export-no-target', ['export'], 'required'),
    ('export-checkpoint-empty-dir', ['export', 'onnx', '--checkpoint', '{empty_dir}', '--out',
                                     '{out}/onnx'], 'config.json: no such file'),
    ('export-checkpoint-is-a-file', ['export', 'onnx', '--checkpoint', '{rgb}', '--out',
                                     '{out}/onnx'], 'not a directory'),
    ('export-config-not-json', ['export', 'onnx', '--checkpoint', '{ckpt_bad_config}', '--out',
                                '{out}/onnx'], 'config.json'),
    ('export-weights-garbage', ['export', 'onnx', '--checkpoint', '{ckpt_bad_weights}', '--out',
                                '{out}/onnx'], 'safetensors'),
    ('export-trt-bad-limits', ['export', 'tensorrt', '--onnx', '{empty_dir}', '--max-batch', '0'],
     'max'),
    # score
    ('score-no-benchmark', ['score'], 'required'),
    ('score-pred-not-utf8', [*WH, '--pred', '{latin1_json}'], 'not UTF-8'),
    ('score-pred-not-json', [*WH, '--pred', '{broken_json}'], 'invalid JSON'),
    ('score-pred-directory', [*WH, '--pred', '{empty_dir}'], 'not a file'),
    ('score-pred-missing', [*WH, '--pred', '{tmp}/nope.json'], 'no such file'),
    ('score-pred-xml', [*WH, '--pred', '{xml}'], '.json or .csv'),
    ('score-pred-list-of-numbers', [*WH, '--pred', '{numbers_json}'], 'list of objects'),
    ('score-pred-csv-not-utf8', [*WH, '--pred', '{latin1_csv}'], 'not UTF-8'),
    ('score-pred-csv-empty', [*WH, '--pred', '{empty_csv}'], 'empty'),
    ('score-pred-csv-no-id', [*WH, '--pred', '{no_id_csv}'], '"id" column'),
    ('score-pred-ids-differ', [*WH, '--pred', '{pred_missing_one}'], 'ids differ'),
    ('score-pred-no-answer', [*WH, '--pred', '{pred_no_answer}'], 'normalized_answer'),
    ('score-gt-not-utf8', ['score', 'warehouse', '--gt', '{latin1_json}', '--pred', '{pred}'],
     'not UTF-8'),
    ('score-gt-without-answers', ['score', 'warehouse', '--gt', '{gt_no_answers}', '--pred',
                                  '{pred}', '--no-chart'], 'has no'),
    ('score-gt-category-list', ['score', 'warehouse', '--gt', '{gt_list_category}', '--pred',
                                '{pred}', '--no-chart'], 'unknown category'),
    ('score-bench-gt-not-bench', ['score', 'spatialrgpt', '--gt', '{gt}', '--pred', '{pred}',
                                  '--no-chart'], 'lacks'),
    # submission normalize
    ('normalize-raw-not-utf8', [*NORM, '--raw', '{latin1_csv}', '--questions', '{gt}'],
     'not UTF-8'),
    ('normalize-raw-missing', [*NORM, '--raw', '{tmp}/nope.csv', '--questions', '{gt}'],
     'no such file'),
    ('normalize-raw-no-id', [*NORM, '--raw', '{no_id_csv}', '--questions', '{gt}'], '"id"'),
    ('normalize-raw-ragged', [*NORM, '--raw', '{ragged_csv}', '--questions', '{gt}'], 'fields'),
    ('normalize-raw-no-output', [*NORM, '--raw', '{no_output_csv}', '--questions', '{gt}'],
     'no "output" column'),
    ('normalize-questions-not-utf8', [*NORM, '--raw', '{raw}', '--questions', '{latin1_json}'],
     'not UTF-8'),
    ('normalize-questions-not-json', [*NORM, '--raw', '{raw}', '--questions', '{broken_json}'],
     'cannot read the questions'),
    ('normalize-questions-not-list', [*NORM, '--raw', '{raw}', '--questions', '{rle_dict}'],
     'list of records'),
    ('normalize-classifier-pickle', [*NORM, '--raw', '{raw}', '--questions', '{gt}',
                                     '--classifier', '{pickle}'], 'never pickles'),
    # classifier
    ('classifier-model-pickle', [*PREDICT, '--model', '{pickle}'], 'never pickles'),
    ('classifier-model-other-json', [*PREDICT, '--model', '{gt}'], 'not a smolrgpt-category'),
    ('classifier-model-lacks-fields', [*PREDICT, '--model', '{cls_lacking}'], 'lacks'),
    ('classifier-model-bad-shape', [*PREDICT, '--model', '{cls_bad_shape}'], 'sizes differ'),
    ('classifier-model-text-coef', [*PREDICT, '--model', '{cls_text_coef}'], 'numbers'),
    ('classifier-model-bad-ngrams', [*PREDICT, '--model', '{cls_bad_ngram}'], 'ngram_range'),
    ('classifier-model-missing', [*PREDICT, '--model', '{tmp}/nope.json'], 'not a classifier'),
    ('classifier-questions-not-utf8', ['classifier', 'predict', '--model', '{cls}',
                                       '--questions', '{latin1_json}'], 'not UTF-8'),
    ('classifier-train-no-split', ['classifier', 'train', '--data-root', '{empty_dir}', '--out',
                                   '{out}/c.json'], 'no such file'),
    ('classifier-train-not-utf8', ['classifier', 'train', '--data-root', '{latin1_root}',
                                   '--out', '{out}/c.json'], 'not UTF-8'),
    # bag from-dataset
    ('bag-no-action', ['bag'], 'required'),
    ('bag-data-root-missing', [*BAG, '--data-root', '{tmp}/nope'], 'not found'),
    ('bag-data-root-is-a-file', [*BAG, '--data-root', '{rgb}'], 'not found'),
    ('bag-split-not-utf8', [*BAG, '--data-root', '{latin1_root}', '--split', 'train'],
     'not UTF-8'),
    ('bag-split-not-json', [*BAG, '--data-root', '{broken_root}', '--split', 'train'],
     'not a JSON file'),
    ('bag-rate-zero', [*BAG, '--data-root', '{dataset}', '--rate', '0'], 'rate'),
    ('bag-limit-negative', [*BAG, '--data-root', '{dataset}', '--limit', '-1'], 'limit'),
    ('bag-out-exists', ['bag', 'from-dataset', '--data-root', '{dataset}', '--out', '{empty_dir}'],
     'exists'),
    ('bag-truncated-image', [*BAG, '--data-root', '{dataset}'], 'truncated'),
    ('bag-bad-storage', [*BAG, '--data-root', '{dataset}', '--storage', 'zip'], 'invalid choice'),
    # replay-eval (bag checks come before any node or DDS)
    ('replay-zero-byte-bag', [*REPLAY, '--bag', '{empty_png}'], 'not a rosbag2 directory'),
    ('replay-bag-missing', [*REPLAY, '--bag', '{tmp}/nope'], 'no such path'),
    ('replay-dir-not-a-bag', [*REPLAY, '--bag', '{empty_dir}'], 'no metadata.yaml'),
    ('replay-zero-byte-metadata', [*REPLAY, '--bag', '{bag_zero_metadata}'], 'not a readable'),
    ('replay-garbage-metadata', [*REPLAY, '--bag', '{bag_garbage_metadata}'], 'not a readable'),
    ('replay-truncated-mcap', [*REPLAY, '--bag', '{bag_truncated_mcap}'], 'not a readable'),
    ('replay-truncated-sqlite', [*REPLAY, '--bag', '{bag_truncated_sqlite}'], 'corrupt'),
    ('replay-bag-storage-missing', [*REPLAY, '--bag', '{bag_no_storage}'], 'missing'),
    ('replay-rate-text', [*REPLAY, '--bag', '{bag_truncated_mcap}', '--rate', 'fast'],
     'expected a number'),
    ('replay-rate-negative', [*REPLAY, '--bag', '{bag_truncated_mcap}', '--rate', '-1'], '> 0'),
    ('replay-timeout-zero', ['replay-eval', '--bag', '{empty_dir}', '--timeout', '0'], 'timeout'),
    # node and query: the errors they give before starting ROS
    ('node-params-missing', ['node', '--params', '{tmp}/nope.yaml'], 'no such parameters file'),
    ('node-params-not-yaml', ['node', '--params', '{broken_yaml}'], 'not YAML'),
    ('node-params-not-utf8', ['node', '--params', '{latin1_json}'], 'not UTF-8'),
    ('node-params-a-list', ['node', '--params', '{list_yaml}'], 'mapping'),
    ('node-param-no-assign', ['node', '-p', 'model.backend'], 'NAME:=VALUE'),
    ('node-remap-no-assign', ['node', '-r', 'rgb/image'], 'FROM:=TO'),
    ('query-no-question', ['query'], 'required'),
    ('query-bad-stamp', ['query', 'Is <region5> left?', '--stamp', 'yesterday'], 'SEC.NANOSEC'),
    ('query-stamp-overflow', ['query', 'q', '--stamp', '99999999999'], '2^31'),
    ('query-timeout-negative', ['query', 'q', '--timeout', '-1'], 'timeout'),
    ('query-max-new-tokens-negative', ['query', 'q', '--max-new-tokens', '-1'], 'max-new-tokens'),
    # demo, synth, training commands
    ('demo-scenes-zero', ['demo', '--scenes', '0', '--out', '{out}/demo'], 'scenes'),
    ('demo-rate-text', ['demo', '--rate', 'fast', '--out', '{out}/demo'], 'expected a number'),
    ('demo-out-is-a-file', ['demo', '--out', '{rgb}'], 'not a directory'),
    ('demo-out-not-a-demo', ['demo', '--out', '{dataset}'], 'not an earlier demo output'),
    ('synth-scenes-zero', ['synth', '--out', '{out}/synth', '--scenes', '0'], 'scenes'),
    ('synth-bad-size', ['synth', '--out', '{out}/synth', '--size', 'huge'], 'size'),
    ('train-bad-stage', ['train', '--stage', 'pretraining'], 'invalid choice'),
    ('generate-no-data', ['generate', '--stage', 'sft', '--checkpoint', '{ckpt}', '--data-root',
                          '{empty_dir}'], 'not found'),
]  # fmt: skip


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height, with a few bytes of image data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', crc)

    header = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return (
        b'\x89PNG\r\n\x1a\n'
        + chunk(b'IHDR', header)
        + chunk(b'IDAT', zlib.compress(b'\x00' * 64))
        + chunk(b'IEND', b'')
    )


def _npy_header_only(shape: tuple[int, ...], dtype: str) -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {'descr': dtype, 'fortran_order': False, 'shape': shape}
    )
    return buffer.getvalue()


def _write(path: Path, data: bytes | str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding='utf-8')
    else:
        path.write_bytes(data)
    return str(path)


def _images(root: Path, rng: np.random.Generator) -> dict[str, str]:
    files = {}
    for name, array in {
        'rgb': rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        'mm': rng.integers(300, 8000, (H, W)).astype(np.uint16),
        'mm_small': rng.integers(300, 8000, (H // 2, W // 2)).astype(np.uint16),
        'zeros_png': np.zeros((H, W), np.uint8),
        'ids300': np.arange(H * W, dtype=np.uint16).reshape(H, W) % 300 + 1,
    }.items():
        Image.fromarray(array).save(root / f'{name}.png')
        files[name] = str(root / f'{name}.png')
    masks = np.zeros((2, H, W), dtype=bool)
    masks[0, 2:10, 3:15] = True
    masks[1, 15:28, 20:38] = True
    for k, mask in enumerate(masks):
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / f'mask{k}.png')
        files[f'mask{k}'] = str(root / f'mask{k}.png')
    png = (root / 'rgb.png').read_bytes()
    files['truncated_png'] = _write(root / 'truncated.png', png[: len(png) // 2])
    files['text_png'] = _write(root / 'text.png', 'this is not a picture\n')
    files['empty_png'] = _write(root / 'empty.png', b'')
    files['bomb'] = _write(root / 'bomb.png', _png_header_only(50_000, 50_000))
    files['bomb10k'] = _write(root / 'bomb10k.png', _png_header_only(10_000, 10_000))
    files['big9k'] = _write(root / 'big9k.png', _png_header_only(9_000, 9_000))
    return files


def _arrays(root: Path) -> dict[str, str]:
    files = {'corrupt_npy': _write(root / 'corrupt.npy', b'definitely not numpy' * 4)}
    np.save(root / 'pickled.npy', np.array([{'a': 1}, None], dtype=object), allow_pickle=True)
    files['pickled_npy'] = str(root / 'pickled.npy')
    files['magic_npy'] = _write(root / 'magic.npy', b'\x93NUMPY')
    full = _npy_header_only((H, W), '<f4') + np.ones((H, W), np.float32).tobytes()
    files['short_npy'] = _write(root / 'short.npy', full[: len(full) - 100])
    files['huge_npy'] = _write(root / 'huge.npy', _npy_header_only((50_000, 50_000), '<f4'))
    for name, array in {
        'npy_4d': np.zeros((2, 2, 2, 2), np.float32),
        'struct_npy': np.zeros((H, W), dtype=[('a', '<f4'), ('b', '<i4')]),
        'complex_npy': np.zeros((H, W), np.complex64),
        'bool_npy': np.ones((H, W), bool),
        'float_npy': np.full((H, W), 2.5, np.float32),
    }.items():
        np.save(root / f'{name}.npy', array)
        files[name] = str(root / f'{name}.npy')
    return files


def _rles(root: Path) -> dict[str, str]:
    good = rle_encode(np.eye(H, W, dtype=bool))
    negative_string = counts_to_string([H * W + 5, -5])  # runs that sum right, one negative
    rles = {
        'rle_counts_null': [good, {'size': [H, W], 'counts': None}],
        'rle_int_size': [good, {'size': H * W, 'counts': good['counts']}],
        'rle_negative': [good, {'size': [H, W], 'counts': [H * W + 5, -5]}],
        'rle_negative_coded': [good, {'size': [H, W], 'counts': negative_string}],
        'rle_huge': [good, {'size': [100_000, 100_000], 'counts': '0'}],
        'rle_short': [good, {'size': [H, W], 'counts': ';23'}],
        'rle_bad_char': [good, {'size': [H, W], 'counts': ' 23'}],
        'rle_endless': [good, {'size': [H, W], 'counts': 'o' * 100_000}],
        'rle_two_sizes': [good, rle_encode(np.ones((H + 1, W), dtype=bool))],
        'rle_other_size': [rle_encode(np.eye(H + 2, W, dtype=bool))] * 2,
        'rle_empty': [],
        'rle_dict': {'masks': [good]},
    }
    files = {name: _write(root / f'{name}.json', json.dumps(v)) for name, v in rles.items()}
    files['latin1_json'] = _write(root / 'latin1.json', '[{"id": "caf\xe9"}]'.encode('latin-1'))
    files['broken_json'] = _write(root / 'broken.json', '[{"id": ')
    return files


def _records(root: Path) -> dict[str, str]:
    gt = [
        {'id': 'a', 'category': 'count', 'normalized_answer': '3'},
        {'id': 'b', 'category': 'left_right', 'normalized_answer': 'left'},
        {'id': 'c', 'category': 'distance', 'normalized_answer': '2.5'},
    ]
    for record in gt:
        record['conversations'] = [{'from': 'human', 'value': 'How many <mask>?'}]
    pred = [{'id': r['id'], 'normalized_answer': r['normalized_answer']} for r in gt]
    return {
        'gt': _write(root / 'gt.json', json.dumps(gt)),
        'pred': _write(root / 'pred.json', json.dumps(pred)),
        'pred_missing_one': _write(root / 'pred_missing.json', json.dumps(pred[1:])),
        'pred_no_answer': _write(root / 'pred_no_answer.json', json.dumps([{'id': 'a'}])),
        'gt_no_answers': _write(root / 'gt_test.json', json.dumps([{'id': 'a'}, {'id': 'b'}])),
        'gt_list_category': _write(
            root / 'gt_list.json',
            json.dumps([{'id': 'a', 'category': ['count'], 'normalized_answer': 1}]),
        ),
        'numbers_json': _write(root / 'numbers.json', '[1, 2, 3]'),
        'xml': _write(root / 'pred.xml', '<pred/>'),
        'latin1_csv': _write(root / 'latin1.csv', 'id;output\na;caf\xe9\n'.encode('latin-1')),
        'empty_csv': _write(root / 'empty.csv', ''),
        'no_id_csv': _write(root / 'no_id.csv', 'key;output\na;3\n'),
        'ragged_csv': _write(root / 'ragged.csv', 'id;image_id;output\na;x.png;3;extra\n'),
        'no_output_csv': _write(root / 'no_output.csv', 'id;image_id\na;x.png\n'),
        'raw': _write(root / 'raw.csv', 'id;image_id;output\na;x.png;three\n'),
        'pickle': _write(root / 'model.pkl', b'\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00.'),
        'broken_yaml': _write(root / 'broken.yaml', 'a: [unclosed\n'),
        'list_yaml': _write(root / 'list.yaml', '- 1\n- 2\n'),
    }


def _classifiers(root: Path) -> dict[str, str]:
    from training.classifier import FORMAT, TOKEN_PATTERN

    valid = {
        'format': FORMAT,
        'token_pattern': TOKEN_PATTERN,
        'classes': ['count', 'distance'],
        'ngram_range': [1, 1],
        'sublinear_tf': True,
        'vocabulary': ['far', 'many'],
        'idf': [1.0, 1.0],
        'coef': [[1.0, -1.0]],
        'intercept': [0.0],
    }
    variants = {
        'cls': valid,
        'cls_lacking': {'format': FORMAT, 'token_pattern': TOKEN_PATTERN},
        'cls_bad_shape': {**valid, 'coef': [[1.0, -1.0, 0.5]]},
        'cls_text_coef': {**valid, 'coef': [['a', 'b']]},
        'cls_bad_ngram': {**valid, 'ngram_range': [2, 1]},
    }
    return {k: _write(root / f'{k}.json', json.dumps(v)) for k, v in variants.items()}


def _dataset(root: Path, rgb_png: Path) -> dict[str, str]:
    """A one-record val split whose RGB image is cut short; split files that do not parse."""
    data = root / 'dataset'
    png = rgb_png.read_bytes()
    _write(data / 'val' / 'images' / 'a.png', png[: len(png) // 2 + 40])
    (data / 'val' / 'depths').mkdir(parents=True)
    shutil.copy(rgb_png, data / 'val' / 'depths' / 'a_depth.png')
    record = {
        'id': 'q0',
        'image': 'a.png',
        'conversations': [{'from': 'human', 'value': 'Is <mask> left of <mask>?'}],
        'rle': [rle_encode(np.eye(H, W, dtype=bool))] * 2,
        'category': 'left_right',
        'normalized_answer': 'left',
    }
    _write(data / 'val.json', json.dumps([record]))
    return {
        'dataset': str(data),
        'latin1_root': str(Path(_write(root / 'latin1_root' / 'train.json', b'[\xe9]')).parent),
        'broken_root': str(Path(_write(root / 'broken_root' / 'train.json', '[{')).parent),
    }


def _bags(root: Path) -> dict[str, str]:
    from smolrgpt_ros import bags

    def frame(k: int) -> bags.BagFrame:
        return bags.BagFrame(
            stamp_ns=1_700_000_000_000_000_000 + k * 100_000_000,
            rgb=np.zeros((8, 8, 3), np.uint8),
            depth=np.zeros((8, 8), np.uint16),
            masks=np.ones((1, 8, 8), bool),
            region_ids=[0],
            labels=['pallet'],
            questions=[bags.Question(f'q{k}', 'Is <mask> a pallet?', [0], 'mcq', '1', '1')],
        )

    files = {}
    for storage in ('mcap', 'sqlite3'):
        bags.write_bag(root / storage, [frame(k) for k in range(3)], storage=storage)
    for name, source, edit in [
        ('bag_zero_metadata', 'mcap', lambda d: (d / 'metadata.yaml').write_text('')),
        ('bag_garbage_metadata', 'mcap', lambda d: (d / 'metadata.yaml').write_text('a: [')),
        ('bag_no_storage', 'mcap', lambda d: (d / 'mcap.mcap').unlink()),
        ('bag_truncated_mcap', 'mcap', lambda d: _cut(d / 'mcap.mcap', 0.5)),
        ('bag_truncated_sqlite', 'sqlite3', lambda d: _cut(d / 'sqlite3.db3', 0.9)),
    ]:
        shutil.copytree(root / source, root / name)
        edit(root / name)
        files[name] = str(root / name)
    return files


def _cut(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def _checkpoints(root: Path, tiny: Path) -> dict[str, str]:
    bad_config, bad_weights = root / 'ckpt_bad_config', root / 'ckpt_bad_weights'
    shutil.copytree(tiny, bad_config)
    shutil.copytree(tiny, bad_weights)
    (bad_config / 'config.json').write_text('{"vit_hidden_dim": ')
    (bad_weights / 'model.safetensors').write_bytes(b'\x00\x01garbage' * 10)
    return {'ckpt_bad_config': str(bad_config), 'ckpt_bad_weights': str(bad_weights)}


@pytest.fixture(scope='module')
def files(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> dict[str, str]:
    root = tmp_path_factory.mktemp('fuzz')
    rng = np.random.default_rng(0)
    (root / 'empty_dir').mkdir()
    out = {'tmp': str(root), 'empty_dir': str(root / 'empty_dir'), 'ckpt': str(tiny_checkpoint)}
    out |= _images(root, rng)
    out |= _arrays(root)
    out |= _rles(root)
    out |= _records(root)
    out |= _classifiers(root)
    out |= _dataset(root, root / 'rgb.png')
    out |= _bags(root)
    out |= _checkpoints(root, tiny_checkpoint)
    return out


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES), 'case ids must be unique'


@pytest.mark.parametrize(('argv', 'keyword'), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(
    argv: list[str],
    keyword: str,
    files: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [a.format(out=tmp_path, **files) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: usage errors
        code = exc.code
    out, err = capsys.readouterr()
    assert code not in (0, None), out
    assert 'Traceback' not in out + err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith('smolrgpt'), lines[0]
    assert keyword.lower() in lines[0].lower(), lines[0]
