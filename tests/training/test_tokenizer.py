"""The project's tokenizer trainer gives a SmolLM2-like layout usable by the model."""

from __future__ import annotations

from pathlib import Path

from smolrgpt_core.config import SmolRGPTConfig
from smolrgpt_core.tokens import SmolRGPTTokenizer
from training.tokenizer import save_tokenizer, train_tokenizer


def test_layout_and_model_tokens(tmp_path: Path) -> None:
    texts = [
        'The pallet [Region 0] is 6.36 meters from the pallet [Region 1].',
        'How many pallets are in the leftmost buffer region?',
    ] * 20
    tok = train_tokenizer(texts, vocab_size=300)
    assert [tok.token_to_id(t) for t in ('<|endoftext|>', '<|im_start|>', '<|im_end|>')] == [
        0,
        1,
        2,
    ]
    assert [t for t in tok.encode('6.36').tokens] == ['6', '.', '3', '6']  # digits one by one
    save_tokenizer(tok, tmp_path)
    cfg = SmolRGPTConfig(lm_base_vocab_size=tok.get_vocab_size(with_added_tokens=True))
    model_tok = SmolRGPTTokenizer.from_dir(tmp_path, cfg)
    assert model_tok.eos_token_id == 2
    assert model_tok.image_token_id == cfg.lm_base_vocab_size
    text = 'The pallet [Region 0] is 6.36 meters away.'
    assert model_tok.decode(model_tok.encode(text)) == text
