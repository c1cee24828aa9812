"""A small ByteLevel BPE tokenizer trained on a text corpus, laid out like SmolLM2's.

``<|endoftext|>`` = 0, ``<|im_start|>`` = 1, ``<|im_end|>`` = 2 (EOS and pad); digits are
split one by one (as SmolLM2 does), which keeps numbers such as distances easy to learn. The
model's three extra tokens are *not* part of it: ``SmolRGPTTokenizer`` appends them at ids
base..base+2, so the model's ``lm_base_vocab_size`` must equal this tokenizer's size.
"""

from __future__ import annotations

from collections.abc import Iterable
import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from smolrgpt_core.config import CHAT_TEMPLATE

SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>']


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def save_tokenizer(tok: Tokenizer, path: str | Path) -> Path:
    """tokenizer.json + a tokenizer_config.json naming the special tokens."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok.save(str(path / 'tokenizer.json'))
    config = {
        'tokenizer_class': 'GPT2Tokenizer',
        'bos_token': '<|im_start|>',
        'eos_token': '<|im_end|>',
        'pad_token': '<|im_end|>',
        'unk_token': '<|endoftext|>',
        'model_max_length': 8192,
        'chat_template': CHAT_TEMPLATE,
    }
    (path / 'tokenizer_config.json').write_text(json.dumps(config, indent=2) + '\n', 'utf-8')
    return path
