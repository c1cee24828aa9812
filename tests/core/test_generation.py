"""Forward, splicing and generation on the tiny model: the cached, batched, shared-prefix
decoder must reproduce plain full-sequence recomputation token for token."""

from __future__ import annotations

from core_fixtures import random_frame
import pytest
import torch

from smolrgpt_core.inference.types import Prompt
from smolrgpt_core.modeling.smolrgpt import SmolRGPT
from smolrgpt_core.sampling import SamplingParams, filter_top_k, filter_top_p, select_next

EOS = 2


def make_ids(model: SmolRGPT, words: list[int], n_regions: int) -> list[int]:
    cfg = model.cfg
    ids = [1, 17, 10] + [cfg.image_token_id] * cfg.mp_image_token_length + words
    for _ in range(n_regions):
        ids += [cfg.mask_rgb_token_id, cfg.mask_depth_token_id, 40]
    return [*ids, 2, 10, 1, 33, 10]


def uncached_greedy(
    model: SmolRGPT,
    ids: list[int],
    image: torch.Tensor,
    depth: torch.Tensor,
    masks: torch.Tensor,
    steps: int,
) -> list[int]:
    """Oracle: recompute the whole sequence with forward() for every new token."""
    out: list[int] = []
    seq = list(ids)
    with torch.no_grad():
        for _ in range(steps):
            logits, _ = model(torch.tensor([seq]), image[None], depth[None], [masks])
            token = int(logits[0, -1].argmax())
            if token == EOS:
                break
            out.append(token)
            seq.append(token)
    return out


def test_forward_shapes_and_loss(tiny_model: SmolRGPT) -> None:
    cfg = tiny_model.cfg
    image, depth, masks = random_frame(cfg, 2)
    ids = torch.tensor([make_ids(tiny_model, [50, 51], 2)] * 2)
    targets = torch.full_like(ids, -100)
    targets[:, -3:] = ids[:, -3:]
    logits, loss = tiny_model(
        ids, torch.stack([image] * 2), torch.stack([depth] * 2), [masks, masks], targets=targets
    )
    assert logits.shape == (2, ids.shape[1], cfg.lm_vocab_size)
    expected = torch.nn.functional.cross_entropy(
        logits[:, -3:].reshape(-1, logits.shape[-1]), ids[:, -3:].reshape(-1)
    )
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert tiny_model.rgb_refiner.refiner[0].weight.grad.abs().sum() > 0
    assert tiny_model.MP_depth.proj.weight.grad.abs().sum() > 0


def test_logits_at_keeps_only_the_scored_positions(tiny_model: SmolRGPT) -> None:
    """Training runs the head at the target positions only: the same logits, row-major, and
    the same loss as slicing the full [B, T, V] logits."""
    cfg = tiny_model.cfg
    image, depth, masks = random_frame(cfg, 2)
    ids = torch.tensor([make_ids(tiny_model, [50, 51], 2), make_ids(tiny_model, [52, 53], 2)])
    images, depths = torch.stack([image] * 2), torch.stack([depth] * 2)
    targets = torch.full_like(ids, -100)
    targets[0, -3:], targets[1, -5:-1] = ids[0, -3:], ids[1, -5:-1]
    scored = targets != -100
    full, full_loss = tiny_model(ids, images, depths, [masks, masks], targets=targets)
    part, part_loss = tiny_model(
        ids, images, depths, [masks, masks], targets=targets, logits_at=scored
    )
    assert part.shape == (7, cfg.lm_vocab_size)
    torch.testing.assert_close(part, full[scored])
    torch.testing.assert_close(part_loss, full_loss)
    with pytest.raises(ValueError, match='logits_at must be a bool mask'):
        tiny_model(ids, images, depths, [masks, masks], logits_at=scored.long())


def test_scored_logits_of_a_large_batch_match_the_full_batch(tiny_model: SmolRGPT) -> None:
    """With ``logits_at``, a left-padded batch is decoded in groups of similar length, each cut
    to its longest row: the scored logits and the gradients match decoding it whole."""
    from smolrgpt_core.modeling.smolrgpt import DECODE_GROUP_ROWS

    cfg = tiny_model.cfg
    B = 2 * DECODE_GROUP_ROWS + 3  # three groups, the last one short
    image, depth, masks = random_frame(cfg, 1)
    rows = [make_ids(tiny_model, list(range(50, 50 + (7 * b) % 23)), 1) for b in range(B)]
    T = max(len(r) for r in rows)
    ids = torch.zeros(B, T, dtype=torch.long)
    attention = torch.zeros(B, T, dtype=torch.long)
    targets = torch.full((B, T), -100)
    for b, r in enumerate(rows):
        ids[b, T - len(r) :], attention[b, T - len(r) :] = torch.tensor(r), 1
        targets[b, -4:-1] = ids[b, -3:]
    scored = targets != -100
    args = (ids, image[None], depth[None], [masks] * B, attention)
    index = torch.zeros(B, dtype=torch.long)

    def run(**kw):
        tiny_model.zero_grad()
        logits, loss = tiny_model(*args, targets=targets, image_index=index, **kw)
        loss.backward()
        return logits, loss, {n: p.grad.clone() for n, p in tiny_model.named_parameters()}

    full, full_loss, full_grads = run()
    part, part_loss, part_grads = run(logits_at=scored)
    torch.testing.assert_close(part, full[scored], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(part_loss, full_loss)
    for name, grad in full_grads.items():
        torch.testing.assert_close(part_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)
    # a right-padded batch cannot be cut from the left: it is decoded whole
    flipped = [t.flip(-1) for t in (ids, attention, targets)]
    logits, _ = tiny_model(
        flipped[0],
        image[None],
        depth[None],
        [masks] * B,
        flipped[1],
        image_index=index,
        logits_at=flipped[2] != -100,
    )
    whole, _ = tiny_model(
        flipped[0], image[None], depth[None], [masks] * B, flipped[1], image_index=index
    )
    torch.testing.assert_close(logits, whole[flipped[2] != -100])


def test_shared_images_equal_per_sample_copies(tiny_model: SmolRGPT) -> None:
    """Three samples on two images: image_index gives the logits and gradients of stacking a
    copy of the image per sample, with the vision side run on 2 images instead of 3."""
    cfg = tiny_model.cfg
    a, da, ma = random_frame(cfg, 2, seed=1)
    b, db, mb = random_frame(cfg, 1, seed=2)
    ids = torch.tensor(
        [
            make_ids(tiny_model, [50, 51], 2),
            make_ids(tiny_model, [52, 53], 2),
            make_ids(tiny_model, [54, 55, 56, 57, 58], 1),
        ]
    )
    masks = [ma, ma.flip(0), mb]

    def run(images, depths, index):
        tiny_model.zero_grad()
        logits, _ = tiny_model(ids, images, depths, masks, image_index=index)
        (logits * torch.linspace(-1, 1, logits.shape[-1])).sum().backward()
        return logits, {
            n: p.grad.clone() for n, p in tiny_model.named_parameters() if p.grad is not None
        }

    calls = []
    hook = tiny_model.rgb_refiner.register_forward_hook(lambda m, i, o: calls.append(len(o)))
    shared, shared_grads = run(torch.stack([a, b]), torch.stack([da, db]), torch.tensor([0, 0, 1]))
    copies, copy_grads = run(torch.stack([a, a, b]), torch.stack([da, da, db]), None)
    hook.remove()
    assert calls == [2, 3]
    torch.testing.assert_close(shared, copies, atol=1e-5, rtol=1e-5)
    assert shared_grads.keys() == copy_grads.keys()
    assert 'rgb_refiner.refiner.0.weight' in shared_grads
    for name, grad in copy_grads.items():
        torch.testing.assert_close(
            shared_grads[name], grad, atol=1e-4, rtol=1e-3, msg=lambda m, name=name: f'{name}: {m}'
        )


def test_image_index_out_of_range_is_an_error(tiny_model: SmolRGPT) -> None:
    image, depth, masks = random_frame(tiny_model.cfg, 1)
    ids = torch.tensor([make_ids(tiny_model, [50], 1)] * 2)
    with pytest.raises(ValueError, match='image_index'):
        tiny_model(ids, image[None], depth[None], [masks, masks], image_index=torch.tensor([0, 1]))


def test_vit_runs_once_for_rgb_and_depth(tiny_model: SmolRGPT) -> None:
    calls = []
    tiny_model.vision_encoder.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    image, depth, masks = random_frame(tiny_model.cfg, 1)
    tiny_model(torch.tensor([make_ids(tiny_model, [50], 1)]), image[None], depth[None], [masks])
    assert calls == [torch.Size([2, 3, 32, 32])]


def test_regions_are_spliced_in_mask_order(tiny_model: SmolRGPT) -> None:
    image, depth, masks = random_frame(tiny_model.cfg, 2)
    ids = torch.tensor([make_ids(tiny_model, [50], 2)])
    a, _ = tiny_model(ids, image[None], depth[None], [masks])
    b, _ = tiny_model(ids, image[None], depth[None], [masks.flip(0)])
    assert not torch.allclose(a[0, -1], b[0, -1])
    frame = tiny_model.encode_frame(image, depth, masks)
    emb = tiny_model.embed(
        ids, frame.image_embeds[None], [frame.rgb_regions], [frame.depth_regions]
    )
    rgb_at = (ids[0] == tiny_model.cfg.mask_rgb_token_id).nonzero()[:, 0]
    torch.testing.assert_close(emb[0, rgb_at], frame.rgb_regions)
    img_at = (ids[0] == tiny_model.cfg.image_token_id).nonzero()[:, 0]
    torch.testing.assert_close(emb[0, img_at], frame.image_embeds)


@pytest.mark.parametrize('n_masks', [1, 3])
def test_region_count_mismatch_is_an_error(tiny_model: SmolRGPT, n_masks: int) -> None:
    image, depth, masks = random_frame(tiny_model.cfg, n_masks)
    ids = torch.tensor([make_ids(tiny_model, [50], 2)])
    with pytest.raises(ValueError, match=r'\[2\] placeholder tokens per sample'):
        tiny_model(ids, image[None], depth[None], [masks])


def test_batch_mismatch_never_shifts_regions_between_samples(tiny_model: SmolRGPT) -> None:
    # 3 regions in total, as the batch has 3 <mask_rgb>, but split 1/2 against prompts 2/1
    image, depth, masks = random_frame(tiny_model.cfg, 3)
    ids = torch.tensor([make_ids(tiny_model, [50], 2), make_ids(tiny_model, [50, 51, 52, 53], 1)])
    with pytest.raises(ValueError, match='placeholder'):
        tiny_model(ids, torch.stack([image] * 2), torch.stack([depth] * 2), [masks[:1], masks[1:]])


def test_left_padding_does_not_change_real_logits(tiny_model: SmolRGPT) -> None:
    image, depth, masks = random_frame(tiny_model.cfg, 1)
    ids = make_ids(tiny_model, [50, 51], 1)
    padded = torch.tensor([[2, 2, 2, *ids]])
    attention = torch.tensor([[0, 0, 0] + [1] * len(ids)])
    plain, _ = tiny_model(torch.tensor([ids]), image[None], depth[None], [masks])
    logits, _ = tiny_model(padded, image[None], depth[None], [masks], attention_mask=attention)
    torch.testing.assert_close(logits[:, 3:], plain, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(logits).all()


def test_cached_generation_equals_uncached_recomputation(tiny_model: SmolRGPT) -> None:
    image, depth, masks = random_frame(tiny_model.cfg, 2, seed=3)
    ids = make_ids(tiny_model, [50, 60], 2)
    frame = tiny_model.encode_frame(image, depth, masks)
    cached = tiny_model.answer(
        frame, [Prompt(tuple(ids), (0, 1))], eos_token_id=EOS, max_new_tokens=12
    )[0]
    assert len(cached) >= 6  # the random model produces a real sequence to compare
    assert cached == uncached_greedy(tiny_model, ids, image, depth, masks, 12)


def test_batched_answers_equal_one_by_one(tiny_model: SmolRGPT) -> None:
    image, depth, masks = random_frame(tiny_model.cfg, 3, seed=1)
    frame = tiny_model.encode_frame(image, depth, masks)
    prompts = [
        Prompt(tuple(make_ids(tiny_model, [50], 1)), (2,)),
        Prompt(tuple(make_ids(tiny_model, [51, 52, 53, 54], 2)), (1, 0)),
        Prompt(tuple(make_ids(tiny_model, [], 0)), ()),
        Prompt(tuple(make_ids(tiny_model, [55, 56], 3)), (0, 2, 1)),
    ]
    batched = tiny_model.answer(frame, prompts, eos_token_id=EOS, max_new_tokens=10)
    single = [
        tiny_model.answer(frame, [p], eos_token_id=EOS, max_new_tokens=10)[0] for p in prompts
    ]
    assert batched == single
    assert len({tuple(s) for s in single}) > 1
    # the region selection is real: prompt 1 with the masks it names, by forward()
    ref = uncached_greedy(tiny_model, list(prompts[1].ids), image, depth, masks[[1, 0]], 10)
    assert single[1] == ref


def test_reference_style_generate_matches_answer(tiny_model: SmolRGPT) -> None:
    image, depth, masks = random_frame(tiny_model.cfg, 2, seed=2)
    a, b = make_ids(tiny_model, [50], 2), make_ids(tiny_model, [51, 52, 53], 1)
    width = max(len(a), len(b))
    ids = torch.tensor([[2] * (width - len(a)) + a, [2] * (width - len(b)) + b])
    attention = torch.arange(width) >= torch.tensor([[width - len(a)], [width - len(b)]])
    out = tiny_model.generate(
        ids,
        torch.stack([image] * 2),
        torch.stack([depth] * 2),
        [masks, masks[1:]],
        attention.long(),
        eos_token_id=EOS,
        max_new_tokens=8,
    )
    frame = tiny_model.encode_frame(image, depth, masks)
    expected = tiny_model.answer(
        frame,
        [Prompt(tuple(a), (0, 1)), Prompt(tuple(b), (1,))],
        eos_token_id=EOS,
        max_new_tokens=8,
    )
    assert out == expected


def test_generation_stops_when_all_rows_hit_eos(tiny_model: SmolRGPT) -> None:
    image, depth, masks = random_frame(tiny_model.cfg, 1)
    frame = tiny_model.encode_frame(image, depth, masks)
    prompt = Prompt(tuple(make_ids(tiny_model, [50], 1)), (0,))
    first = tiny_model.answer(frame, [prompt], eos_token_id=EOS, max_new_tokens=3)[0][0]
    calls = []
    hook = tiny_model.decoder.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    out = tiny_model.answer(frame, [prompt], eos_token_id=first, max_new_tokens=50)
    hook.remove()
    assert out == [[]]
    assert len(calls) == 2  # shared-prefix prefill + suffix prefill, not a single decode step


def test_region_index_out_of_range(tiny_model: SmolRGPT) -> None:
    image, depth, masks = random_frame(tiny_model.cfg, 2)
    frame = tiny_model.encode_frame(image, depth, masks)
    with pytest.raises(ValueError, match='frame has 2 masks'):
        tiny_model.answer(
            frame, [Prompt(tuple(make_ids(tiny_model, [], 1)), (2,))], eos_token_id=EOS
        )


def test_top_k_and_top_p_follow_the_reference() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_top_k(logits, 2)[0, 2:]).all()
    assert torch.isfinite(filter_top_k(logits, 2)[0, :2]).all()
    # cumulative 0.5, 0.8, 0.95, 1.0: p=0.8 keeps 0.5 and 0.3 (0.8 does not exceed 0.8)
    kept = torch.isfinite(filter_top_p(logits, 0.8))[0].tolist()
    assert kept == [True, True, False, False]
    # p=0.75: the token that crosses p is dropped (HF would keep it)
    assert torch.isfinite(filter_top_p(logits, 0.75))[0].tolist() == [True, False, False, False]
    assert torch.isfinite(filter_top_p(logits, 0.1))[0].tolist() == [True, False, False, False]


def test_sampling_is_seeded_and_respects_filters(tiny_model: SmolRGPT) -> None:
    logits = torch.randn(4, 50)
    params = SamplingParams(greedy=False, temperature=1.0, top_k=3, top_p=1.0)
    a = select_next(logits, params, torch.Generator().manual_seed(0))
    b = select_next(logits, params, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    top3 = logits.topk(3).indices
    assert all(int(t) in top3[i].tolist() for i, t in enumerate(a))
    assert torch.equal(select_next(logits, SamplingParams()), logits.argmax(-1))
    image, depth, masks = random_frame(tiny_model.cfg, 1)
    frame = tiny_model.encode_frame(image, depth, masks)
    prompts = [Prompt(tuple(make_ids(tiny_model, [50], 1)), (0,))] * 2
    run = [
        tiny_model.answer(
            frame,
            prompts,
            eos_token_id=EOS,
            max_new_tokens=6,
            sampling=params,
            generator=torch.Generator().manual_seed(1),
        )
        for _ in range(2)
    ]
    assert run[0] == run[1]
