"""`smolrgpt ask`: one frame from files -> answers; masks as PNGs, RLE JSON or instance ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
import pytest

from smolrgpt_cli.main import main
from smolrgpt_core.masks import rle_encode

H, W = 30, 40


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(tmp_path / 'rgb.png')
    Image.fromarray(rng.integers(300, 8000, (H, W)).astype(np.uint16)).save(tmp_path / 'mm.png')
    Image.fromarray(rng.integers(0, 256, (H, W), dtype=np.uint8)).save(tmp_path / 'd8.png')
    np.save(tmp_path / 'm.npy', rng.uniform(0.5, 9, (H, W)).astype(np.float32))
    masks = np.zeros((2, H, W), dtype=bool)
    masks[0, 2:10, 3:15] = True
    masks[1, 15:28, 20:38] = True
    for k, m in enumerate(masks):
        Image.fromarray(m.astype(np.uint8) * 255).save(tmp_path / f'mask{k}.png')
    (tmp_path / 'rle.json').write_text(json.dumps([rle_encode(m) for m in masks]))
    instances = np.zeros((H, W), np.uint8)
    instances[masks[0]] = 5
    instances[masks[1]] = 8
    Image.fromarray(instances).save(tmp_path / 'ids.png')
    return {p.stem: p for p in tmp_path.iterdir()}


def _ask(
    files: dict[str, Path], ckpt: Path, depth: str, *masks: str, capsys: pytest.CaptureFixture[str]
) -> list[dict]:
    argv = [
        'ask',
        '--checkpoint',
        str(ckpt),
        '--rgb',
        str(files['rgb']),
        '--depth',
        str(files[depth]),
        '--max-new-tokens',
        '4',
        '--json',
        '--question',
        'Is the pallet <mask> left of the pallet <mask>?',
        *masks,
    ]
    assert main(argv) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_mask_inputs_agree(
    files: dict[str, Path], tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pngs = _ask(
        files,
        tiny_checkpoint,
        'mm',
        '--masks',
        str(files['mask0']),
        str(files['mask1']),
        '--ask-ids',
        '0',
        '1',
        capsys=capsys,
    )
    rle = _ask(
        files,
        tiny_checkpoint,
        'mm',
        '--masks',
        str(files['rle']),
        '--ask-ids',
        '0',
        '1',
        capsys=capsys,
    )
    inst = _ask(
        files,
        tiny_checkpoint,
        'mm',
        '--instances',
        str(files['ids']),
        '--ask-ids',
        '5',
        '8',
        capsys=capsys,
    )

    def strip(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k != 'latency_ms'} for r in rows]

    assert strip(pngs) == strip(rle)
    assert pngs[0]['answer'] == inst[0]['answer']
    assert pngs[0]['category'] == 'left_right'


@pytest.mark.parametrize('depth', ['d8', 'm'])
def test_depth_formats(
    files: dict[str, Path], tiny_checkpoint: Path, depth: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _ask(
        files,
        tiny_checkpoint,
        depth,
        '--instances',
        str(files['ids']),
        '--ask-ids',
        '5',
        '8',
        capsys=capsys,
    )
    assert len(out) == 1 and isinstance(out[0]['answer'], str)


def test_errors_are_one_line(
    files: dict[str, Path], tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        'ask',
        '--checkpoint',
        str(tiny_checkpoint),
        '--rgb',
        str(files['rgb']),
        '--depth',
        str(files['mm']),
        '--instances',
        str(files['ids']),
        '--question',
        'Is <mask> left of <mask>?',
        '--ask-ids',
        '5',
        '6',
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['smolrgpt ask: error: unknown region ids [6]; the frame has [5, 8]']
    argv[4] = '/nonexistent.png'
    assert main(argv) == 2
    assert 'no such file' in capsys.readouterr().err
