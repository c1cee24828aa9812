"""MODEL_CARD.md of the embedded model, filled in from a finished ``training.embedded`` run."""

from __future__ import annotations

from pathlib import Path
import textwrap
from typing import Any

from smolrgpt_core.config import SmolRGPTConfig
from training.recipe import Recipe, Run


def write_model_card(
    path: Path,
    *,
    args: dict[str, Any],
    recipe: Recipe,
    minutes: dict[str, float],
    tables: dict[int, tuple[int, str]],
    shortfalls: list[str],
    vocab: int,
    machine: str,
    probe: dict[str, Any] | None = None,
    val_table: str = '',
    noise: tuple[int, str, int, str] | None = None,
    gates: dict[str, dict[str, Any]] | None = None,
) -> None:
    """``gates``: the measured gate of each gated run (``training.embedded.check_gate``)."""
    cfg = SmolRGPTConfig.from_json(path.parent / 'config.json')
    size_mb = (path.parent / 'model.safetensors').stat().st_size / 1e6
    from smolrgpt_core.modeling.smolrgpt import SmolRGPT

    n_params = SmolRGPT.from_pretrained(path.parent).num_parameters()
    stage_rows = '\n'.join(f'| {stage} | {m:.1f} |' for stage, m in minutes.items())
    from training.embedded import EMBEDDED, NOISE_SEED, train_dir_name

    configs = recipe.configs()
    first = configs[recipe.runs[0].name]
    folder = recipe.folder
    recipe_arg = '' if folder.resolve() == EMBEDDED.resolve() else f' --recipe {folder}'
    arch_rows = '\n'.join(
        [
            f'| ViT | {cfg.vit_img_size} px input, {cfg.vit_patch_size} px patches, width '
            f'{cfg.vit_hidden_dim}, {cfg.vit_n_blocks} blocks, {cfg.vit_n_heads} heads |',
            f'| projectors | pixel shuffle x{cfg.mp_pixel_shuffle_factor} -> '
            f'{cfg.mp_image_token_length} image tokens |',
            f'| refiners | {cfg.region_refiner_depth} transposed convs -> masks pooled on a '
            f'{cfg.mask_grid}x{cfg.mask_grid} grid |',
            f'| decoder | width {cfg.lm_hidden_dim}, {cfg.lm_n_blocks} blocks, {cfg.lm_n_heads} '
            f'heads / {cfg.lm_n_kv_heads} KV heads, MLP {cfg.lm_inter_dim} |',
            '| depth input | '
            + (
                f'metric: millimetres mapped to 8 bits over a fixed {cfg.depth_min_m:g}-'
                f'{cfg.depth_max_m:g} m range (the scale distances need) |'
                if cfg.depth_input == 'metric'
                else "the dataset's 8-bit depth image, normalised per frame |"
            ),
            f'| tokenizer | ByteLevel BPE, {vocab} tokens + 3 model tokens, trained on the '
            'synthetic texts |',
        ]
    )
    synth = f'smolrgpt synth --format nvidia --size {args["size"]} --out {args["work"]}/'
    commands = '\n'.join(
        [
            *(
                f'{synth}{train_dir_name(args["seed"], questions)} '
                f'--scenes {args["train_scenes"]} --seed {args["seed"]} '
                f'--questions-per-category {questions}'
                for questions in recipe.data_sets(args['questions_per_category'])
            ),
            *(
                f'{synth}synth-heldout-s{seed} --scenes {args["heldout_scenes"]} '
                f'--seed {seed} --questions-per-category 2'
                for seed in tables
            ),
        ]
    )
    if shortfalls:
        verdict = (
            f'**It misses the bar ({args["margin"]:g} points above the strongest baseline in '
            f'every category, final >= {args["final_min"]:g}, on every held-out set):**\n\n'
            + '\n'.join(f'- {line}' for line in shortfalls)
        )
    else:
        verdict = (
            f'It clears the bar on every held-out set: each category at least '
            f'{args["margin"]:g} points above its strongest baseline, final >= '
            f'{args["final_min"]:g}.'
        )
    heldout_text = '\n\n'.join(
        f'Seed {seed} ({n} questions):\n\n{table}' for seed, (n, table) in tables.items()
    )
    probe_text = ''
    if probe:
        probe_text = '\n\n' + textwrap.fill(
            f'Where regions are, as the decoder sees them (`python -m training.probe`, held-out '
            f'region descriptions): a linear probe on the pooled region vectors predicts the mask '
            f'centroid column with R^2 {probe["r2"]:.3f} and the image half with '
            f'{100 * probe["half_accuracy"]:.1f} % accuracy (majority '
            f'{100 * probe["majority_accuracy"]:.1f} %; {probe["n_test"]} test regions); the '
            f'column explains {100 * probe["variance_share"]:.1f} % of the '
            f"vectors' variance.",
            width=95,
        )
    repeats = {
        n: c.get('category_repeats') for n, c in configs.items() if c.get('category_repeats')
    }
    repeats_text = (
        '; '.join(
            f'{stage}: ' + ', '.join(f'{k} x{v}' for k, v in r.items())
            for stage, r in repeats.items()
        )
        or 'none'
    )
    base = first.get('vit_sincos_base', 10000.0)
    val_text = ''
    if val_table:
        val_text = (
            f'\nThe same scoring on the `val` split of the seed-{args["seed"]} generation '
            f'(scenes never trained on; its validation loss is what training watched), '
            f'as a second sample of how much the numbers move between sets:\n\n'
            f'{val_table}\n'
        )
    noise_text = ''
    if noise:
        seed, preset, n, table = noise
        noise_text = (
            f'\nThe seed-{seed} set again with {preset} sensor noise (`smolrgpt generate '
            f"--perturb {preset} --perturb-seed {NOISE_SEED}`: the camera's millimetre depth "
            'with range-dependent noise and holes, masks eroded or dilated by 1-3 px, one '
            f'region in five frames missed; {n} questions). Clean renders are an upper bound; '
            f'this is closer to what a robot sees:\n\n{table}\n'
        )
    refiner_text = ''
    if first.get('refiner_nearest_init'):
        refiner_text = (
            'The refiners start as nearest-neighbour upsampling '
            '(`refiner_nearest_init`: equal taps in each 2x2 transposed-conv '
            'kernel). With random taps they paint a pattern inside every token '
            'that drowns the differences between tokens: the image column then '
            "explains 2 % of the pooled region vectors' variance, and the "
            'decoder never learnt left from right.'
        )
        refiner_text = textwrap.fill(refiner_text, width=95) + '\n'
    gates = gates or {}
    stage_list = '\n'.join(
        f'# run {i}: {_shown(folder)}/{run.config}{_run_text(run, args, gates.get(run.name))}'
        for i, run in enumerate(recipe.runs, 1)
    )
    sft_runs = {n: c for n, c in configs.items() if c['stage'] == 'sft'}
    sft_text = ', then '.join(
        f'`{name}` ({c["max_steps"]} steps, peak lr {c["lr"]["backbones"]:g} for the decoder, '
        f'{max(v for g, v in c["lr"].items() if g != "backbones"):g} for projectors and '
        f'refiners{_deciding_text(c)}{_mixture_text(c)})'
        for name, c in sft_runs.items()
    )
    labelled = [name for name, c in sft_runs.items() if c.get('prompt_region_labels')]
    labels_text = ''
    if labelled:
        labels_text = (
            textwrap.fill(
                f'From `{labelled[0]}` on, the prompt labels each region "[Region k]" '
                '(`prompt_region_labels`, saved in config.json, so the engine and the node '
                'prompt this model the same way): the labels teach which region to name in an '
                'mcq or count answer, but switched on before left_right has been learnt they '
                'keep it at chance (docs/training.md).',
                width=95,
            )
            + '\n'
        )
    grouped = sorted({c.get('examples_per_image', 1) for c in configs.values()} - {1})
    grouped_text = ''
    if grouped:
        grouped_text = (
            textwrap.fill(
                f'Batches hold runs of {"/".join(map(str, grouped))} examples about one image '
                '(`examples_per_image`), and the vision side runs once per image of a batch: a '
                "stage III step costs about two thirds of a step that encodes every example's "
                'image on its own.',
                width=95,
            )
            + '\n'
        )
    steps = ', '.join(f'{n} ({c["stage"]}) {c["max_steps"]}' for n, c in configs.items())
    text = f"""# smolrgpt-tiny-synthetic

The embedded default model of SmolRGPT for ROS 2: a {n_params / 1e6:.2f} M-parameter SmolRGPT
trained from scratch, on CPU, on procedurally generated warehouse scenes only, through the
real three-stage curriculum. It exists so that `make demo`, the node and the tests run out of
the box with a real trained model; how well it answers is in the score table below. It is
**not** a substitute for the official SmolRGPT weights on real images: it has never seen a
real photo.

## Architecture

Same model code and checkpoint format as the full SmolRGPT (config.json + model.safetensors);
only the sizes differ:

| part | size |
|---|---|
{arch_rows}
| weights | {size_mb:.1f} MB (fp32 safetensors) |

## How it was made

Reproduce with `make embedded-model` (= `scripts/train_embedded_model.sh` =
`python -m training.embedded`). This model came from
`python -m training.embedded --work {args['work']} --threads {args['threads']}{recipe_arg}`, which
ran:

```
{commands}
# tokenizer: training/tokenizer.py on the training set's questions, answers and synthetic texts
{stage_list}
```

Data: training scenes = the `train` split (80 %) of the seed-{args['seed']} set; validation loss on
its `val` split. Stage I uses captions made from each scene file ("A warehouse with 3 pallets,
2 buffer regions and a transporter."). Stage II uses region descriptions made from the scene
files and instance masks: kind, distance from the camera, side of the image, whether a pallet
stands in a buffer region and how many pallets a buffer region holds ("A buffer region, 9.29
meters from the camera, in the middle of the image. It holds two pallets."). Stage III
uses the generator's warehouse QA (left_right, count, distance, mcq) plus the stage-II data;
runs that name the `pointers` or `containment` kinds add questions that point at one listed
region ("Which of the regions <mask> <mask> <mask> is the shelf?" -> "The shelf is [Region
1].") and pairwise ones ("Is the pallet <mask> in the buffer region <mask>?").
Optimizer steps (batch 32): {steps}.
{grouped_text}
Freezing and learning rates of stages I and II are the reference's (§1.12, §4.3): the ViT
is frozen in every stage. There is no pretrained SigLIP2 here, so the ViT keeps its random
weights, with its position embeddings started from a 2D sin-cos table (`vit_sincos_positions`)
instead of zeros, so that region features know where a region is. The table's wavelength base
is {base:g} (`vit_sincos_base`), not MAE's 10000, so that every x/y channel varies across the
{cfg.vit_grid}x{cfg.vit_grid} patch grid (with 10000, half of them are nearly constant there).
{refiner_text}The decoder is random and frozen in stages I-II, so those two stages only nudge
the projectors and refiners (measured: higher learning rates there, or a trainable ViT,
collapse the region features towards one vector). Almost all learning happens in stage III,
which trains everything but the ViT, as {len(sft_runs)} consecutive runs with a cosine
schedule each: {sft_text}. The vision side learns at a tenth of the decoder's rate: at the
decoder's rate, stage III washed the region positions out of the region vectors and left_right
stayed at chance (measured: 49.5 % on val after 2800 steps, against 88.5 % with the lower
rate). Categories repeated per epoch in stage III (`category_repeats`): {repeats_text}. A
left_right answer hinges on one token ("left"/"right") among about twenty template tokens, so
that category gets more passes.
{labels_text}
Training time on {machine} (shared machine, so wall time is an upper bound):

| stage | minutes |
|---|---|
{stage_rows}

## Held-out scores

Held-out sets: `train.json` of separately generated datasets (seeds
{', '.join(str(seed) for seed in tables)}, no scene in common with training, never used for a
recipe decision; those were made on the `val` split of the training generation), answered
through `SpatialQueryEngine` (greedy), normalised with the rule normaliser and scored with the
official warehouse metric (`smolrgpt_core/warehouse_metric.py`, as `smolrgpt score
warehouse`). Baselines (`training/metrics/baselines.py`): the most frequent training answer
per category; the best constant answer on the held-out answers themselves (an oracle: for
distance the constant that is within 10 % of the most truths); and a question prior (the best
answer given the question text alone, fitted on the training questions). The interval is the
95 % Wilson interval; "model - strongest" is the margin over the strongest of the three.

{heldout_text}

{verdict}{probe_text}
{noise_text}{val_text}
## Limits

Synthetic frames only ({args['size']} renders squashed to {cfg.vit_img_size} px); distances are
rough (Acc@10 counts a hit only within 10 %); counts and multiple-choice answers are learnt from
few thousand examples. mcq and count answers name the k-th region of the question, which a
from-scratch decoder tells apart only with the prompt's region labels; in every recipe measured
so far its count score stays within a few points of a prior on how many buffers and pallets the
question lists (it does not learn which listed pallets stand in the buffer), and distances fall
back towards their baseline under sensor noise: a robot should take counts and distances from
the geometry path (`answer_mode: hybrid`). When left_right is learnt varies from run to run
(docs/training.md has the measurements). Use it to exercise the pipeline, not to judge
SmolRGPT.
"""
    path.write_text(text, 'utf-8')


def _run_text(run: Run, args: dict[str, Any], gate: dict[str, Any] | None) -> str:
    """What the stage list adds after a run's config: its data set when it is not the
    rebuild's, and its gate with what was measured there."""
    from training.embedded import train_dir_name

    parts = []
    if run.questions_per_category and run.questions_per_category != args['questions_per_category']:
        parts.append(f'on {train_dir_name(args["seed"], run.questions_per_category)}')
    for category, least in run.gate.items():
        text = f'after the gate {category} >= {least:g} % on {run.gate_questions} val questions'
        measured = (gate or {}).get('categories', {}).get(category)
        if measured:
            text += f' (measured {measured["accuracy"]:.1f} on {measured["questions"]})'
        parts.append(text)
    return f' ({"; ".join(parts)})' if parts else ''


def _deciding_text(config: dict) -> str:
    weight = config.get('deciding_token_weight', 1.0)
    return '' if weight == 1.0 else f', the deciding answer tokens weighted x{weight:g}'


def _mixture_text(config: dict) -> str:
    """The question kinds a stage-III run adds to what the card describes for every run: the
    stage's default data and the stage-II data."""
    from training.stages import STAGES, Stage

    described = {*STAGES[Stage.SFT].default_data, *STAGES[Stage.REFINER_ALIGNMENT].default_data}
    extra = [k for k in config.get('datasets') or [] if k not in described]
    return f', with the {" and ".join(extra)} questions' if extra else ''


def _shown(recipe: Path) -> str:
    """The recipe folder as the card names it: relative to the repository when inside it."""
    root = Path(__file__).resolve().parent.parent
    try:
        return str(recipe.resolve().relative_to(root))
    except ValueError:
        return str(recipe)
