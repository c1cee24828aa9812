"""`smolrgpt demo` (what `make demo` runs) end to end, on a tiny model.

In its own module: a second node on the graph would answer the same service."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.ros


def test_demo_command_end_to_end(
    tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make demo`'s command on a tiny model (the embedded one is tested elsewhere)."""
    from smolrgpt_cli.main import main

    code = main(
        [
            'demo',
            '--out',
            str(tmp_path / 'demo'),
            '--checkpoint',
            str(tiny_checkpoint),
            '--scenes',
            '10',
            '--rate',
            'max',
        ]
    )
    out = capsys.readouterr().out
    log = (tmp_path / 'demo' / 'node.log').read_text()[-2000:]
    assert code == 0, f'{out}\n--- node log ---\n{log}'
    assert '[4/4] replaying the bag' in out and 'official warehouse score by answer source' in out
    header = next(line for line in out.splitlines() if line.startswith('category '))
    assert header.split() == ['category', 'model', 'geometry', 'hybrid']
    assert ' geometry ' in out  # per-question sources: the bag carries CameraInfo
    assert ' answered, 0 rejected, 0 frames dropped' in out
    # the demo runs on the compact form: every mask is cropped to its box
    from smolrgpt_ros import bags

    store = bags.typestore()
    regions = [
        store.deserialize_cdr(m.raw, m.msgtype)
        for m in bags.read_messages(tmp_path / 'demo' / 'demo.bag')
        if m.topic == bags.REGIONS_TOPIC
    ]
    masks = [r for msg in regions for r in msg.regions]
    assert masks and all(
        (r.mask.width, r.mask.height) == (r.bbox.width, r.bbox.height) for r in masks
    )
    assert sum(len(r.mask.data) for r in masks) < 0.1 * len(masks) * 640 * 360
