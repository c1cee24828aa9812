from __future__ import annotations

from pathlib import Path

from core_fixtures import make_tiny_config
import numpy as np
import pytest

from smolrgpt_core.tokens import PromptError, SmolRGPTTokenizer, prompt_masks, render_chat


@pytest.fixture
def tok(tokenizer_dir: Path) -> SmolRGPTTokenizer:
    return SmolRGPTTokenizer.from_dir(tokenizer_dir, make_tiny_config())


def test_special_tokens_get_the_next_ids(tok: SmolRGPTTokenizer) -> None:
    base = tok.cfg.lm_base_vocab_size
    assert (tok.image_token_id, tok.mask_rgb_token_id, tok.mask_depth_token_id) == (
        base,
        base + 1,
        base + 2,
    )
    assert tok.eos_token_id == tok.pad_token_id == 2
    assert tok.encode('<mask_rgb><mask_depth>') == [base + 1, base + 2]
    assert tok.decode([1, base, 5, base + 1, 2]) == tok.decode([5])


def test_wrong_base_vocab_is_refused(tokenizer_dir: Path) -> None:
    with pytest.raises(ValueError, match='expected'):
        SmolRGPTTokenizer.from_dir(tokenizer_dir, make_tiny_config(lm_base_vocab_size=299))


def test_chat_template_has_no_system_prompt() -> None:
    text = render_chat([{'role': 'user', 'content': 'Hi'}])
    assert text == '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n'
    assert render_chat(
        [{'role': 'user', 'content': 'a'}, {'role': 'assistant', 'content': 'b'}],
        add_generation_prompt=False,
    ) == ('<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n')


def test_dataset_style_prompt(tok: SmolRGPTTokenizer) -> None:
    prompt = tok.build_prompt('<image>\nHow far is the pallet <mask> from the box <mask>?', 2)
    cfg = tok.cfg
    expected = tok.encode(
        '<|im_start|>user\n'
        + '<|image|>' * cfg.mp_image_token_length
        + '\nHow far is the pallet <mask_rgb><mask_depth> from the box '
        '<mask_rgb><mask_depth>?<|im_end|>\n<|im_start|>assistant\n'
    )
    assert list(prompt.ids) == expected
    assert prompt.regions == (0, 1)
    rgb_at = [i for i, t in enumerate(prompt.ids) if t == tok.mask_rgb_token_id]
    assert [prompt.ids[i + 1] for i in rgb_at] == [tok.mask_depth_token_id] * 2


def test_region_style_prompt_selects_by_index(tok: SmolRGPTTokenizer) -> None:
    prompt = tok.build_prompt('Is <region2> closer than <region0>?', 3)
    assert prompt.regions == (2, 0)
    masks = np.arange(3)[:, None, None] * np.ones((3, 2, 2))
    assert prompt_masks(masks, prompt)[:, 0, 0].tolist() == [2, 0]
    assert tok.build_prompt('How far is the box?', 3).regions == ()


def test_labelled_references_are_numbered_in_question_order(tokenizer_dir: Path) -> None:
    """prompt_region_labels: '[Region k] ' before the k-th pair, for both reference styles;
    the placeholders and the region order stay as they are."""
    labelled = SmolRGPTTokenizer.from_dir(
        tokenizer_dir, make_tiny_config(prompt_region_labels=True)
    )
    pair = '<mask_rgb><mask_depth>'
    for question, n_masks, regions in (
        ('Is <mask> left of <mask>?', 2, (0, 1)),
        ('Is <region2> left of <region0>?', 3, (2, 0)),
    ):
        prompt = labelled.build_prompt(question, n_masks)
        text = labelled.decode(prompt.ids, skip_special_tokens=False)
        assert f'Is [Region 0] {pair} left of [Region 1] {pair}?' in text
        assert prompt.regions == regions
        assert list(prompt.ids).count(labelled.mask_rgb_token_id) == 2
    plain = SmolRGPTTokenizer.from_dir(tokenizer_dir, make_tiny_config())
    text = plain.decode(
        plain.build_prompt('Is <mask> left of <mask>?', 2).ids, skip_special_tokens=False
    )
    assert f'Is {pair} left of {pair}?' in text and 'Region' not in text


@pytest.mark.parametrize(
    'question, n_masks, message',
    [
        ('the pallet <mask>', 2, '1 <mask> references but 2 masks'),
        ('<mask> and <mask>', 1, '2 <mask> references but 1 masks'),
        ('is <region3> left?', 3, r'regions \[3\]'),
        ('<mask> and <region0>', 1, 'mix'),
        ('sneaky <mask_rgb>', 1, 'reserved'),
    ],
)
def test_reference_errors(
    tok: SmolRGPTTokenizer, question: str, n_masks: int, message: str
) -> None:
    with pytest.raises(PromptError, match=message):
        tok.build_prompt(question, n_masks)
