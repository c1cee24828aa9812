"""Checkpoints: atomic writes, a trainer state that is never unpickled, and damaged files
reported as one error line that names them."""

from __future__ import annotations

import json
from pathlib import Path
import pickle
import random
from typing import Any

import numpy as np
import pytest
import torch
from training_helpers import tiny_config

from smolrgpt_cli.main import main as smolrgpt
from smolrgpt_core.modeling.smolrgpt import SmolRGPT
from smolrgpt_core.weights import CONFIG_NAME, WEIGHTS_NAME
from training.checkpoint import (
    PICKLED_STATE,
    STATE_JSON,
    STATE_TENSORS,
    CheckpointError,
    TrainerState,
    load_trainer_state,
    save_checkpoint,
    set_rng_state,
)
from training.tensor_json import StateFormatError, decode, encode
from training.trainer import Trainer


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


# the trainer state: JSON + safetensors, never a pickle -------------------------------------
COMMON = ['--max-steps', '1', '--batch-size', '2', '--no-tensorboard', '--no-progress']
COMMON += ['--max-val-samples', '2', '--threads', '1']


class _Payload:
    """Unpickling this creates ``marker``: what a planted trainer-state file could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return open, (str(self.marker), 'w')


def _resumable(tiny_dir: Path, target: Path) -> Path:
    """A checkpoint with a real trainer state (one AdamW step, so it has moments)."""
    torch.manual_seed(0)
    model = SmolRGPT.from_pretrained(tiny_dir)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sum(p.sum() for p in model.parameters()).backward()
    optimizer.step()
    state = TrainerState(step=1, epoch=0, batch_in_epoch=1, samples_seen=2)
    return save_checkpoint(target, model, tokenizer_dir=tiny_dir, optimizer=optimizer, state=state)


def _train(tmp_path: Path, synth_root: Path, *flags: str) -> list[str]:
    argv = ['train', '--stage', 'sft', '--data-root', str(synth_root), *flags]
    return [*argv, '--output-dir', str(tmp_path / 'run'), *COMMON]


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    lines = [line for line in err.splitlines() if 'error:' in line]
    assert len(lines) == 1, err
    return lines[0]


def test_trainer_state_round_trips_exactly(tiny_dir: Path, tmp_path: Path) -> None:
    path = _resumable(tiny_dir, tmp_path / 'ckpt')
    assert not (path / PICKLED_STATE).exists()
    json.loads((path / STATE_JSON).read_text('utf-8'))  # plain JSON
    # what the RNGs give right after the save, which the restored states must give again
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    state, optimizer_state, rng = load_trainer_state(path)
    assert state == TrainerState(step=1, epoch=0, batch_in_epoch=1, samples_seen=2)
    set_rng_state(rng)
    assert torch.equal(torch.rand(3), expected[0])
    assert (np.random.rand(3) == expected[1]).all() and random.random() == expected[2]
    model = SmolRGPT.from_pretrained(path)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    optimizer.load_state_dict(optimizer_state)
    moments = optimizer.state_dict()['state'][0]
    assert float(moments['step']) == 1.0 and moments['exp_avg'].abs().sum() > 0
    assert optimizer.state_dict()['param_groups'][0]['betas'] == (0.9, 0.999)


def test_tensor_json_refuses_what_it_did_not_write() -> None:
    tree = {'a': (1, 2.5, None), 0: [torch.arange(3)], 'n': np.arange(4, dtype=np.uint32)}
    skeleton, tensors = encode(tree)
    back = decode(json.loads(json.dumps(skeleton)), tensors)
    assert back['a'] == (1, 2.5, None) and torch.equal(back[0][0], torch.arange(3))
    assert back['n'].dtype == np.uint32 and back['n'].tolist() == [0, 1, 2, 3]
    for bad in (
        {'__reduce__': ['os.system', 'true']},
        {'__ndarray__': '0', 'dtype': 'object', 'shape': [3]},
        {'__tensor__': 'missing'},
    ):
        with pytest.raises(StateFormatError):
            decode(bad, tensors)
    with pytest.raises(TypeError, match='cannot store'):
        encode({'f': len})


@pytest.mark.parametrize('where', [PICKLED_STATE, STATE_TENSORS])
def test_a_planted_pickle_is_refused_and_never_unpickled(
    tiny_dir: Path,
    synth_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    where: str,
) -> None:
    ckpt = _resumable(tiny_dir, tmp_path / 'ckpt')
    if where == PICKLED_STATE:  # an old-style checkpoint: only the pickle, no JSON state
        (ckpt / STATE_JSON).unlink()
        (ckpt / STATE_TENSORS).unlink()
    marker = tmp_path / 'pwned'
    payload = pickle.dumps({'trainer': _Payload(marker)})
    (ckpt / where).write_bytes(payload)

    assert smolrgpt(_train(tmp_path, synth_root, '--resume', str(ckpt))) == 2
    line = _error_line(capsys)
    assert str(ckpt / where) in line
    assert ('pickled' in line) == (where == PICKLED_STATE)
    cfg = tiny_config('sft', tiny_dir, tmp_path / 'api', data_root=str(synth_root))
    with pytest.raises(CheckpointError, match=where):
        Trainer(cfg, resume=ckpt)
    assert not marker.exists()
    pickle.loads(payload)  # the payload is live: loading it the old way would have run it
    assert marker.exists()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    ('flag', 'damaged'),
    [
        ('--last-stage-checkpoint', WEIGHTS_NAME),
        ('--last-stage-checkpoint', CONFIG_NAME),
        ('--resume', WEIGHTS_NAME),
        ('--resume', STATE_TENSORS),
        ('--resume', STATE_JSON),
    ],
)
def test_a_truncated_checkpoint_is_one_error_line_naming_the_file(
    tiny_dir: Path,
    synth_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    damaged: str,
) -> None:
    ckpt = _resumable(tiny_dir, tmp_path / 'ckpt')
    _truncate(ckpt / damaged)
    assert smolrgpt(_train(tmp_path, synth_root, flag, str(ckpt))) == 2
    line = _error_line(capsys)
    assert line.startswith('smolrgpt train: error: ') and str(ckpt / damaged) in line
    assert not (tmp_path / 'run' / 'final').exists()
