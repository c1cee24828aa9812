"""Broken checkpoints: every kind fails with a CheckpointError naming the file, never another
exception, and a valid checkpoint still loads bit-identically.

Each case copies the tiny checkpoint (tests/conftest.py) and breaks one thing. ``stage`` says
how far loading may get before it must fail: 'config' (no model built, no tensor read),
'header' (the model built on the meta device, no tensor read), 'values' (tensors read) or
'tokenizer' (the model loads; the tokenizer fails).
"""

from __future__ import annotations

from collections.abc import Callable
import json
import math
from pathlib import Path
import random
import shutil
import struct
from typing import Any

import pytest
from safetensors.torch import load_file, save_file
import torch

from smolrgpt_core import weights
from smolrgpt_core.checkpoint import CheckpointError, read_config
from smolrgpt_core.modeling.smolrgpt import SmolRGPT
from smolrgpt_core.tokens import SmolRGPTTokenizer

CONFIG, WEIGHTS, TOKENIZER, TOKENIZER_CONFIG = (
    'config.json',
    'model.safetensors',
    'tokenizer.json',
    'tokenizer_config.json',
)
Q_PROJ = 'decoder.blocks.0.attn.q_proj.weight'


# --- ways to break a checkpoint directory -----------------------------------------------


def edit_config(**changes: object) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        data = json.loads((d / CONFIG).read_text())
        data.update(changes)
        (d / CONFIG).write_text(json.dumps(data, indent=4))

    return damage


def write(name: str, content: str | bytes) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        if isinstance(content, bytes):
            (d / name).write_bytes(content)
        else:
            (d / name).write_text(content)

    return damage


def remove(name: str) -> Callable[[Path], None]:
    return lambda d: (d / name).unlink()


def cut(name: str, fraction: float) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        data = (d / name).read_bytes()
        (d / name).write_bytes(data[: int(len(data) * fraction)])

    return damage


def edit_tensors(change: Callable[[dict[str, torch.Tensor]], None]) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        tensors = load_file(d / WEIGHTS)
        change(tensors)
        save_file(tensors, d / WEIGHTS, metadata=dict(weights.TIED_METADATA))

    return damage


def split_safetensors(d: Path) -> tuple[dict[str, Any], bytes]:
    raw = (d / WEIGHTS).read_bytes()
    (n,) = struct.unpack('<Q', raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def join_safetensors(d: Path, header: bytes, data: bytes, length: int | None = None) -> None:
    prefix = struct.pack('<Q', len(header) if length is None else length)
    (d / WEIGHTS).write_bytes(prefix + header + data)


def edit_header(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        header, data = split_safetensors(d)
        change(header)
        join_safetensors(d, json.dumps(header).encode(), data)

    return damage


def raw_header(text: bytes) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        join_safetensors(d, text, split_safetensors(d)[1])

    return damage


def header_length(length: int) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        header, data = split_safetensors(d)
        join_safetensors(d, json.dumps(header).encode(), data, length)

    return damage


def duplicated_tensor_name(d: Path) -> None:
    header, data = split_safetensors(d)
    text = json.dumps(header)
    entry = json.dumps({Q_PROJ: header[Q_PROJ]})[1:-1]
    join_safetensors(d, (text[:-1] + ', ' + entry + '}').encode(), data)


def offsets_past_the_end(header: dict[str, Any]) -> None:
    begin, end = header[Q_PROJ]['data_offsets']
    header[Q_PROJ]['data_offsets'] = [begin + 10**6, end + 10**6]


def overlapping(header: dict[str, Any]) -> None:
    # two same-sized tensors at one place
    header['decoder.blocks.1.attn.q_proj.weight']['data_offsets'] = header[Q_PROJ]['data_offsets']


def tokenizer_json(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        data = json.loads((d / TOKENIZER).read_text())
        change(data)
        (d / TOKENIZER).write_text(json.dumps(data))

    return damage


def added_tokens(*names: str, first_id: int = 320) -> Callable[[dict[str, Any]], None]:
    """Tokens saved in tokenizer.json as if by an earlier load (the tiny vocabulary is 320)."""

    def change(data: dict[str, Any]) -> None:
        for i, name in enumerate(names):
            data['added_tokens'].append(
                {
                    'id': first_id + i,
                    'content': name,
                    'single_word': False,
                    'lstrip': False,
                    'rstrip': False,
                    'normalized': False,
                    'special': True,
                }
            )

    return change


def replace_with_directory(name: str) -> Callable[[Path], None]:
    def damage(d: Path) -> None:
        (d / name).unlink()
        (d / name).mkdir()

    return damage


# id: (damage, offending file, part of the message, stage)
CASES: dict[str, tuple[Callable[[Path], None], str, str, str]] = {
    # model.safetensors: the file and its header
    'weights-missing': (remove(WEIGHTS), WEIGHTS, 'no such file', 'config'),
    'weights-empty': (write(WEIGHTS, b''), WEIGHTS, 'empty file', 'config'),
    'weights-7-bytes': (write(WEIGHTS, b'\x10' * 7), WEIGHTS, 'truncated (7 bytes', 'config'),
    'weights-truncated': (cut(WEIGHTS, 0.5), WEIGHTS, 'truncated (header says', 'config'),
    'weights-cut-in-header': (cut(WEIGHTS, 0.001), WEIGHTS, 'truncated (the header', 'config'),
    'header-longer-than-file': (
        header_length(10**7),
        WEIGHTS,
        'truncated (the header alone is 10.0 MB',
        'config',
    ),
    'header-length-absurd': (header_length(1 << 60), WEIGHTS, 'more than the 100.0 MB', 'config'),
    'header-not-json': (raw_header(b'{"a": [1, 2'), WEIGHTS, 'not valid JSON (line 1', 'config'),
    'header-not-utf8': (raw_header(b'{"\xff": 1}'), WEIGHTS, 'not UTF-8', 'config'),
    'header-a-list': (raw_header(b'[1, 2]'), WEIGHTS, 'got a list', 'config'),
    'header-duplicated-tensor': (duplicated_tensor_name, WEIGHTS, 'appears twice', 'config'),
    'header-offsets-past-end': (
        edit_header(offsets_past_the_end),
        WEIGHTS,
        'truncated (header says',
        'config',
    ),
    'header-overlap': (edit_header(overlapping), WEIGHTS, 'overlap', 'config'),
    'header-offsets-vs-shape': (
        edit_header(lambda h: h[Q_PROJ].update(shape=[4, 4])),
        WEIGHTS,
        'data_offsets span 4096 bytes, but a F32 tensor of shape [4, 4] has 64',
        'config',
    ),
    'header-negative-shape': (
        edit_header(lambda h: h[Q_PROJ].update(shape=[-32, -32])),
        WEIGHTS,
        'shape must be a list',
        'config',
    ),
    'header-unknown-dtype': (
        edit_header(lambda h: h[Q_PROJ].update(dtype='F7')),
        WEIGHTS,
        'unknown dtype "F7"',
        'config',
    ),
    'header-entry-incomplete': (
        edit_header(lambda h: h[Q_PROJ].pop('shape')),
        WEIGHTS,
        f'tensor {Q_PROJ}: the header entry must hold',
        'config',
    ),
    'header-bad-metadata': (
        edit_header(lambda h: h.update(__metadata__={'x': 1})),
        WEIGHTS,
        '__metadata__',
        'config',
    ),
    # model.safetensors: the tensors against the config
    'tensor-missing': (
        edit_tensors(lambda t: t.pop(Q_PROJ)),
        WEIGHTS,
        f'missing tensors {Q_PROJ}',
        'header',
    ),
    'tensor-unexpected': (
        edit_tensors(lambda t: t.update(extra=torch.zeros(2))),
        WEIGHTS,
        'unexpected tensors extra',
        'header',
    ),
    'tensor-shape': (
        edit_tensors(lambda t: t.update({weights.HEAD_KEY: torch.zeros(10, 32)})),
        WEIGHTS,
        f'tensor {weights.HEAD_KEY} has shape [10, 32], config.json needs [323, 32]',
        'header',
    ),
    'tensor-dtype': (
        edit_tensors(lambda t: t.update({Q_PROJ: t[Q_PROJ].to(torch.int32)})),
        WEIGHTS,
        f'tensor {Q_PROJ} has dtype I32, not floating point',
        'header',
    ),
    'tied-pair-differs': (
        edit_tensors(lambda t: t.update({weights.EMBEDDING_KEY: t[weights.HEAD_KEY] + 1})),
        WEIGHTS,
        'differ, but the model ties them',
        'values',
    ),
    # config.json
    'config-missing': (remove(CONFIG), CONFIG, 'no such file', 'config'),
    'config-a-directory': (replace_with_directory(CONFIG), CONFIG, 'not a regular file', 'config'),
    'config-empty': (write(CONFIG, ''), CONFIG, 'empty file', 'config'),
    'config-truncated': (cut(CONFIG, 0.5), CONFIG, 'not valid JSON (line', 'config'),
    'config-not-utf8': (write(CONFIG, b'{"\xfe\xff": 0}'), CONFIG, 'not UTF-8', 'config'),
    'config-a-list': (
        write(CONFIG, '[1, 2]'),
        CONFIG,
        'must hold a JSON object, got a list',
        'config',
    ),
    'config-nested-deeply': (write(CONFIG, '[' * 100_000), CONFIG, 'not valid JSON', 'config'),
    'config-huge-integer': (
        write(CONFIG, '{"lm_n_heads": 1' + '0' * 5000 + '}'),
        CONFIG,
        'not valid JSON',
        'config',
    ),
    'config-duplicate-key': (
        write(CONFIG, '{"lm_n_heads": 4, "lm_n_heads": 0}'),
        CONFIG,
        'key "lm_n_heads" appears twice',
        'config',
    ),
    'lm-n-heads-0': (
        edit_config(lm_n_heads=0),
        CONFIG,
        'lm_n_heads must be >= 1, got 0',
        'config',
    ),
    'vit-patch-size-0': (
        edit_config(vit_patch_size=0),
        CONFIG,
        'vit_patch_size must be >= 1',
        'config',
    ),
    'pixel-shuffle-0': (
        edit_config(mp_pixel_shuffle_factor=0),
        CONFIG,
        'mp_pixel_shuffle_factor must be >= 1',
        'config',
    ),
    'kv-heads-0': (edit_config(lm_n_kv_heads=0), CONFIG, 'lm_n_kv_heads must be >= 1', 'config'),
    'vit-heads-negative': (
        edit_config(vit_n_heads=-4),
        CONFIG,
        'vit_n_heads must be >= 1',
        'config',
    ),
    'hidden-dim-absurd': (
        edit_config(lm_hidden_dim=10**9),
        CONFIG,
        'lm_hidden_dim must be <= 65536, got 1000000000',
        'config',
    ),
    'parameters-absurd': (
        edit_config(
            lm_hidden_dim=65536,
            lm_inter_dim=262144,
            lm_n_heads=512,
            lm_n_kv_heads=512,
            lm_n_blocks=1024,
        ),
        CONFIG,
        'billion parameters, more than the 20 billion',
        'config',
    ),
    'string-for-int': (
        edit_config(lm_n_blocks='2'),
        CONFIG,
        'lm_n_blocks must be an integer, got "2"',
        'config',
    ),
    'bool-for-int': (
        edit_config(vit_n_blocks=True),
        CONFIG,
        'vit_n_blocks must be an integer, got true',
        'config',
    ),
    'float-for-int': (
        edit_config(lm_hidden_dim=32.0),
        CONFIG,
        'must be an integer, got 32.0',
        'config',
    ),
    'null-for-int': (
        edit_config(lm_inter_dim=None),
        CONFIG,
        'lm_inter_dim must be an integer, got null',
        'config',
    ),
    'nan-rms-eps': (
        edit_config(lm_rms_eps=math.nan),
        CONFIG,
        'lm_rms_eps must be a finite number, got NaN',
        'config',
    ),
    'zero-ln-eps': (edit_config(vit_ln_eps=0.0), CONFIG, 'vit_ln_eps must be > 0', 'config'),
    'dropout-one': (edit_config(lm_dropout=1.0), CONFIG, 'lm_dropout must be in [0, 1)', 'config'),
    'string-for-bool': (
        edit_config(lm_tie_weights='yes'),
        CONFIG,
        'lm_tie_weights must be true or false',
        'config',
    ),
    'int-for-string': (
        edit_config(lm_chat_template=3),
        CONFIG,
        'lm_chat_template must be a string',
        'config',
    ),
    'extra-tokens-a-list': (
        edit_config(vlm_extra_tokens=['<|image|>']),
        CONFIG,
        'vlm_extra_tokens must be an object of strings',
        'config',
    ),
    'extra-tokens-repeated': (
        edit_config(
            vlm_extra_tokens={
                'image_token': '<a>',
                'mask_rgb_token': '<a>',
                'mask_depth_token': '<b>',
            }
        ),
        CONFIG,
        'distinct',
        'config',
    ),
    'vocab-size-inconsistent': (
        edit_config(lm_vocab_size=5),
        CONFIG,
        'lm_vocab_size 5 !=',
        'config',
    ),
    'vocab-size-a-string': (
        edit_config(lm_vocab_size='323'),
        CONFIG,
        'lm_vocab_size must be an integer',
        'config',
    ),
    'unknown-stage': (edit_config(stage='pretrain'), CONFIG, 'stage must be one of', 'config'),
    'stage-a-long-list': (
        edit_config(stage=['sft', 'sft']),
        CONFIG,
        'stage must be a string or a 1-element list',
        'config',
    ),
    'image-tokens-mismatch': (
        edit_config(mp_image_token_length=5),
        CONFIG,
        'mp_image_token_length 5',
        'config',
    ),
    # tokenizer.json / tokenizer_config.json
    'tokenizer-missing': (
        remove(TOKENIZER),
        TOKENIZER,
        'no such file (an official stage',
        'tokenizer',
    ),
    'tokenizer-empty': (write(TOKENIZER, ''), TOKENIZER, 'empty file', 'tokenizer'),
    'tokenizer-truncated': (cut(TOKENIZER, 0.5), TOKENIZER, 'not valid JSON (line', 'tokenizer'),
    'tokenizer-not-json': (
        write(TOKENIZER, '{\n"version": "1.0",\n"model": ]\n}'),
        TOKENIZER,
        'not valid JSON (line 3',
        'tokenizer',
    ),
    'tokenizer-a-list': (write(TOKENIZER, '[]'), TOKENIZER, 'got a list', 'tokenizer'),
    'tokenizer-no-model': (
        write(TOKENIZER, '{}'),
        TOKENIZER,
        'not a tokenizer (Model missing',
        'tokenizer',
    ),
    'tokenizer-lacks-mask-rgb': (
        tokenizer_json(added_tokens('<|image|>', '<mask_depth>')),
        TOKENIZER,
        "special tokens ['<|image|>', '<mask_rgb>', '<mask_depth>'] got ids [320, 322, 321]",
        'tokenizer',
    ),
    'tokenizer-vocab-too-big': (
        tokenizer_json(added_tokens('<|image|>', '<mask_rgb>', '<mask_depth>', '<extra>')),
        TOKENIZER,
        'ids up to 323, past the 323 tokens',
        'tokenizer',
    ),
    'tokenizer-no-eos': (
        write(TOKENIZER_CONFIG, '{"eos_token": "<|eot|>"}'),
        TOKENIZER,
        "no EOS token '<|eot|>'",
        'tokenizer',
    ),
    'tokenizer-config-bad-eos': (
        write(TOKENIZER_CONFIG, '{"eos_token": {"id": 2}}'),
        TOKENIZER_CONFIG,
        'eos_token must be a token',
        'tokenizer',
    ),
    'tokenizer-config-not-json': (
        write(TOKENIZER_CONFIG, '{"eos_token": '),
        TOKENIZER_CONFIG,
        'not valid JSON (line 1',
        'tokenizer',
    ),
    'tokenizer-config-a-string': (
        write(TOKENIZER_CONFIG, '"<|im_end|>"'),
        TOKENIZER_CONFIG,
        'must hold a JSON object, got a string',
        'tokenizer',
    ),
}


@pytest.fixture
def broken(tmp_path: Path, tiny_checkpoint: Path) -> Path:
    directory = tmp_path / 'ckpt'
    shutil.copytree(tiny_checkpoint, directory)
    return directory


def forbid(monkeypatch: pytest.MonkeyPatch, stage: str) -> None:
    """Fail the test if loading gets further than ``stage`` allows."""

    def not_now(what: str) -> Callable[..., Any]:
        def fail(*args: object, **kwargs: object) -> None:
            raise AssertionError(f'{what} before the broken file was refused')

        return fail

    if stage == 'config':
        monkeypatch.setattr(SmolRGPT, '__init__', not_now('built a model'))
    if stage in ('config', 'header'):
        monkeypatch.setattr(weights, 'load_file', not_now('read the tensors'))


def assert_names(exc: pytest.ExceptionInfo[CheckpointError], file: Path, part: str) -> None:
    message = str(exc.value)
    assert type(exc.value) is CheckpointError
    assert message.startswith(f'{file}: '), message
    assert part in message, message
    assert '\n' not in message and 'Traceback' not in message


@pytest.mark.parametrize('case', CASES)
def test_broken_checkpoint_fails_naming_the_file(
    case: str, broken: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    damage, name, part, stage = CASES[case]
    cfg = read_config(broken / CONFIG)  # the intact config, for the tokenizer's cases
    damage(broken)
    if stage == 'tokenizer':
        model = SmolRGPT.from_pretrained(broken)
        with pytest.raises(CheckpointError) as exc:
            SmolRGPTTokenizer.from_dir(broken, model.cfg)
    else:
        forbid(monkeypatch, stage)
        with pytest.raises(CheckpointError) as exc:
            SmolRGPT.from_pretrained(broken)
    assert_names(exc, broken / name, part)
    if stage == 'config' and name == CONFIG:
        # the tokenizer reads no config.json: its loader is unaffected
        assert SmolRGPTTokenizer.from_dir(broken, cfg).eos_token_id == 2


def test_cases_cover_every_kind() -> None:
    assert len(CASES) >= 16
    assert {file for _, file, _, _ in CASES.values()} == {
        CONFIG,
        WEIGHTS,
        TOKENIZER,
        TOKENIZER_CONFIG,
    }


def test_checkpoint_path_that_is_a_file(broken: Path) -> None:
    with pytest.raises(CheckpointError, match='not a directory'):
        SmolRGPT.from_pretrained(broken / CONFIG)
    with pytest.raises(CheckpointError, match='not a directory'):
        SmolRGPTTokenizer.from_dir(broken / CONFIG, read_config(broken / CONFIG))


def test_valid_checkpoint_loads_bit_identically(tiny_checkpoint: Path, tmp_path: Path) -> None:
    stored = load_file(tiny_checkpoint / WEIGHTS)
    model = SmolRGPT.from_pretrained(tiny_checkpoint)
    state = model.state_dict()
    assert set(state) == set(stored) | {weights.EMBEDDING_KEY}
    for name, tensor in stored.items():
        assert tensor.dtype == state[name].dtype and torch.equal(tensor, state[name]), name
    model.save_pretrained(tmp_path / 'again')
    for name in (CONFIG, WEIGHTS):
        assert (tmp_path / 'again' / name).read_bytes() == (tiny_checkpoint / name).read_bytes()
    tok = SmolRGPTTokenizer.from_dir(tiny_checkpoint, model.cfg)
    assert tok.image_token_id == model.cfg.image_token_id


# --- random damage: whatever the bytes, a CheckpointError or a model ---------------------

ODD_VALUES = [0, -1, 10**12, 1.5, math.nan, math.inf, '7', '', None, True, [], {}, [1], {'a': 1}]


def test_odd_config_values_fail_cleanly(broken: Path) -> None:
    original = json.loads((broken / CONFIG).read_text())
    loaded = refused = 0
    for key in original:
        for value in ODD_VALUES:
            (broken / CONFIG).write_text(json.dumps({**original, key: value}))
            try:
                read_config(broken / CONFIG)
            except CheckpointError as exc:
                message = str(exc)
                assert message.startswith(f'{broken / CONFIG}: ') and key in message, message
                refused += 1
                continue
            try:  # a config that passes must load or name the weights that do not fit it
                SmolRGPT.from_pretrained(broken)
                loaded += 1
            except CheckpointError as exc:
                assert str(exc).startswith(f'{broken / WEIGHTS}: '), (key, value, exc)
                refused += 1
    assert loaded and refused > len(original) * len(ODD_VALUES) // 2


@pytest.mark.parametrize('name', [WEIGHTS, TOKENIZER, CONFIG])
def test_random_byte_damage_fails_cleanly(name: str, broken: Path) -> None:
    rng = random.Random(f'{name}-0')
    original = (broken / name).read_bytes()
    # the safetensors header, or the whole of a JSON file
    span = 8 + struct.unpack('<Q', original[:8])[0] if name == WEIGHTS else len(original)
    outcomes = {'loaded': 0, 'refused': 0}
    for trial in range(60):
        data = bytearray(original)
        if trial % 3 == 0:
            data = data[: rng.randrange(len(data))]
        else:
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(span)] = rng.randrange(256)
        (broken / name).write_bytes(bytes(data))
        try:
            model = SmolRGPT.from_pretrained(broken)
            SmolRGPTTokenizer.from_dir(broken, model.cfg)
            outcomes['loaded'] += 1
        except CheckpointError as exc:
            assert str(exc).startswith(str(broken)), exc
            outcomes['refused'] += 1
    assert outcomes['refused'] >= 20, outcomes
