"""A tiny, complete SmolRGPT checkpoint made on the fly: config.json, model.safetensors and a
tokenizer directory, in the official layout. For tests and benchmarks of everything around
the model (engine, CLI, node); nothing is downloaded and building one takes well under a second."""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
import torch

from smolrgpt_core.config import SmolRGPTConfig
from smolrgpt_core.modeling.smolrgpt import SmolRGPT

VOCAB = 320
_CORPUS = [
    'Is the pallet <mask> to the left of the pallet <mask>?',
    'How many pallets are in the buffer? What is the distance between them?',
    'The pallet [Region 0] is 6.36 meters from the pallet [Region 1].',
    'Which of the pallets is the leftmost? The transporter is on the right.',
] * 5


def tiny_config(vocab: int = VOCAB, **overrides: object) -> SmolRGPTConfig:
    """The real structure at toy sizes: 32 px images, 8 px patches -> 16 patches -> 4 image
    tokens -> a 16x16 mask grid."""
    values: dict[str, object] = dict(
        vit_hidden_dim=32,
        vit_inter_dim=64,
        vit_patch_size=8,
        vit_img_size=32,
        vit_n_heads=4,
        vit_n_blocks=2,
        lm_hidden_dim=32,
        lm_inter_dim=64,
        lm_n_heads=4,
        lm_n_kv_heads=2,
        lm_n_blocks=2,
        lm_base_vocab_size=vocab,
        lm_max_position_embeddings=512,
        mp_pixel_shuffle_factor=2,
        mp_image_token_length=4,
    )
    values.update(overrides)
    return SmolRGPTConfig(**values)


def save_tokenizer(path: Path, vocab: int = VOCAB, corpus: list[str] | None = None) -> Path:
    """A byte-level BPE laid out like SmolLM2's (<|endoftext|>=0, <|im_start|>=1,
    <|im_end|>=2 = EOS), trained on a few sentences, saved as a tokenizer directory."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=['<|endoftext|>', '<|im_start|>', '<|im_end|>'],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus or _CORPUS, trainer)
    if tok.get_vocab_size(with_added_tokens=True) != vocab:
        raise ValueError(
            f'the corpus gives {tok.get_vocab_size(with_added_tokens=True)} tokens, not {vocab}'
        )
    path.mkdir(parents=True, exist_ok=True)
    tok.save(str(path / 'tokenizer.json'))
    (path / 'tokenizer_config.json').write_text(json.dumps({'eos_token': '<|im_end|>'}))
    return path


def widen_weights(model: SmolRGPT, std: float = 0.3) -> SmolRGPT:
    """Wider random weights than N(0, 0.02), so greedy decoding is not stuck on one token."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('weight') and p.dim() >= 2:
                p.normal_(0.0, std)
    return model


def make_tiny_checkpoint(path: Path, seed: int = 0) -> Path:
    """Random tiny weights + tokenizer in ``path``."""
    torch.manual_seed(seed)
    model = widen_weights(SmolRGPT(tiny_config()).eval())
    model.save_pretrained(path)
    save_tokenizer(path)
    return path
