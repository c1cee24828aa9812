"""Checkpoints are written atomically: a failure leaves no partial directory behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from smolrgpt_core.modeling.smolrgpt import SmolRGPT
from training.checkpoint import save_checkpoint


def test_failed_write_leaves_nothing_and_keeps_the_old_checkpoint(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = SmolRGPT.from_pretrained(tiny_dir)
    target = tmp_path / 'final'
    save_checkpoint(target, model, tokenizer_dir=tiny_dir)
    before = (target / 'model.safetensors').read_bytes()

    def half_write(path: Path) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / 'model.safetensors').write_bytes(b'partial')
        raise OSError('disk full')

    monkeypatch.setattr(model, 'save_pretrained', half_write)
    with pytest.raises(OSError, match='disk full'):
        save_checkpoint(target, model, tokenizer_dir=tiny_dir)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['final']
    assert (target / 'model.safetensors').read_bytes() == before
    assert SmolRGPT.from_pretrained(target) is not None
    assert (target / 'tokenizer.json').is_file()
