"""``smolrgpt export onnx``: a checkpoint -> ``vision.onnx`` + ``decoder.onnx`` + manifest.

Both graphs go through the dynamo exporter (``torch.onnx.export(..., dynamo=True)``), the one
that produced valid graphs for the vision side in our checks (the legacy TorchScript exporter
emitted an invalid Gather for a ViT's position embeddings). Precision lives in the graph:
``--dtype float16`` casts the weights before export, which is what TensorRT 11 (strongly
typed networks, no FP16 builder flag) expects. RMSNorm statistics, RoPE angles, attention
softmax and the logits stay float32 inside the fp16 graph; the vision inputs stay float32
(the graph casts them).

The token embedding table is written beside the graphs (``token_embedding.npy``): the host
embeds prompt and generated tokens and splices the image and region vectors in, exactly as
``SmolRGPT.embed`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import importlib.metadata
import logging
from pathlib import Path
import time
from typing import Any
import warnings

import numpy as np
import torch

from smolrgpt_core import __version__
from smolrgpt_core.export.graphs import (
    DECODER_INPUTS,
    DECODER_OUTPUTS,
    VISION_INPUTS,
    VISION_OUTPUTS,
    DecoderGraph,
    VisionGraph,
)
from smolrgpt_core.export.manifest import (
    FORMAT,
    FORMAT_VERSION,
    file_record,
    graph_files,
    graph_sha256,
    write_manifest,
)

logger = logging.getLogger(__name__)

# int8: exported in float32, then the decoder's weight matmuls become MatMulNBits (onnx_int8)
EXPORT_DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'int8': torch.float32}
DEFAULT_OPSET = 20  # the torch 2.13 dynamo default; TensorRT 10.x parses opsets up to 20+
EMBEDDING_FILE = 'token_embedding.npy'


@dataclass(frozen=True)
class ExportedGraph:
    name: str
    files: list[str]
    sha256: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    seconds: float


def _versions() -> dict[str, str | None]:
    def version(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        'smolrgpt': __version__,
        'torch': torch.__version__,
        'onnx': version('onnx'),
        'onnxscript': version('onnxscript'),
        'onnxruntime': version('onnxruntime'),
    }


def _tensor_specs(values: Any) -> list[dict[str, Any]]:
    import onnx

    specs = []
    for value in values:
        t = value.type.tensor_type
        shape = [d.dim_param if d.dim_param else d.dim_value for d in t.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
        specs.append({'name': value.name, 'shape': shape, 'dtype': dtype})
    return specs


def _export(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    input_names: tuple[str, ...],
    output_names: tuple[str, ...],
    dynamic_shapes: dict[str, dict[int, Any]],
    opset: int,
) -> ExportedGraph:
    import onnx

    start = time.perf_counter()
    path.unlink(missing_ok=True)
    Path(str(path) + '.data').unlink(missing_ok=True)
    with warnings.catch_warnings():
        # exporter-internal notices (pytree deprecations, merged axis names), not ours
        warnings.filterwarnings('ignore', category=FutureWarning)
        warnings.filterwarnings('ignore', message='.*axis name.*')
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            input_names=list(input_names),
            output_names=list(output_names),
            opset_version=opset,
            external_data=True,
            verbose=False,
        )
    seconds = time.perf_counter() - start
    model = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(str(path))  # a path, so graphs over 2 GB are checked too
    files = graph_files(path.parent, path.name)
    logger.info(
        'exported %s in %.1f s (%s)',
        path.name,
        seconds,
        ', '.join(f'{f.name} {f.stat().st_size / 1e6:.1f} MB' for f in files),
    )
    return ExportedGraph(
        path.stem,
        [f.name for f in files],
        graph_sha256(files),
        _tensor_specs(model.graph.input),
        _tensor_specs(model.graph.output),
        seconds,
    )


def vision_example(cfg: Any, n_regions: int = 3, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    S, G = cfg.vit_img_size, cfg.mask_grid
    image = torch.rand(1, 3, S, S, generator=g) * 2 - 1
    depth = torch.rand(1, 3, S, S, generator=g) * 2 - 1
    masks = (torch.rand(n_regions, G, G, generator=g) > 0.5).float()
    return image, depth, masks


def decoder_example(
    cfg: Any, dtype: torch.dtype, batch: int = 2, seq: int = 5, past: int = 3, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    L, Hkv, Dh, D = cfg.lm_n_blocks, cfg.lm_n_kv_heads, cfg.lm_head_dim, cfg.lm_hidden_dim
    embeds = (torch.randn(batch, seq, D, generator=g) * 0.5).to(dtype)
    positions = (torch.arange(seq) + past).expand(batch, seq).contiguous()
    bias = torch.zeros(batch, 1, seq, past + seq, dtype=dtype)
    past_k = torch.randn(L, batch, Hkv, past, Dh, generator=g).to(dtype)
    past_v = torch.randn(L, batch, Hkv, past, Dh, generator=g).to(dtype)
    return embeds, positions, bias, past_k, past_v


def _max_abs_diff(ort_out: list[np.ndarray], torch_out: tuple[torch.Tensor, ...]) -> list[float]:
    return [
        float((torch.from_numpy(np.asarray(o)).float() - t.float()).abs().max())
        if t.numel()
        else 0.0
        for o, t in zip(ort_out, torch_out)
    ]


def verify_with_onnxruntime(
    out: Path, vision: VisionGraph, decoder: DecoderGraph, cfg: Any, dtype: torch.dtype
) -> dict[str, Any]:
    """Run both graphs on fresh shapes (not the export examples) and compare with torch."""
    import onnxruntime as ort

    result: dict[str, Any] = {'onnxruntime': ort.__version__}
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    sess = ort.InferenceSession(
        str(out / 'vision.onnx'), options, providers=['CPUExecutionProvider']
    )
    args = vision_example(cfg, n_regions=5, seed=1)
    got = sess.run(None, dict(zip(VISION_INPUTS, (a.numpy() for a in args))))
    with torch.inference_mode():
        want = vision(*args)
    result['vision_max_abs_diff'] = dict(zip(VISION_OUTPUTS, _max_abs_diff(got, want)))
    sess = ort.InferenceSession(
        str(out / 'decoder.onnx'), options, providers=['CPUExecutionProvider']
    )
    for label, shape in (
        ('prefill', dict(batch=1, seq=7, past=0)),
        ('decode', dict(batch=3, seq=1, past=9)),
    ):
        args = decoder_example(cfg, dtype, seed=2, **shape)
        got = sess.run(None, dict(zip(DECODER_INPUTS, (a.numpy() for a in args))))
        with torch.inference_mode():
            want = decoder(*args)
        result[f'decoder_{label}_max_abs_diff'] = dict(
            zip(DECODER_OUTPUTS, _max_abs_diff(got, want))
        )
    return result


def export_onnx(
    checkpoint: str | Path,
    out: str | Path,
    *,
    dtype: str = 'float32',
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
) -> dict[str, Any]:
    """Export a checkpoint's graphs and write the manifest; returns the manifest."""
    from smolrgpt_core.modeling.smolrgpt import SmolRGPT
    from smolrgpt_core.weights import CONFIG_NAME, WEIGHTS_NAME, resolve_dir

    if dtype not in EXPORT_DTYPES:
        raise ValueError(f'export dtype must be one of {", ".join(EXPORT_DTYPES)}, got {dtype!r}')
    directory = resolve_dir(checkpoint, [CONFIG_NAME, WEIGHTS_NAME])
    model = SmolRGPT.from_pretrained(directory, dtype=EXPORT_DTYPES[dtype]).eval()
    return export_model(
        model,
        out,
        opset=opset,
        verify=verify,
        checkpoint_weights=directory / WEIGHTS_NAME,
        int8=dtype == 'int8',
    )


def export_model(
    model: Any,
    out: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
    checkpoint_weights: Path | None = None,
    int8: bool = False,
) -> dict[str, Any]:
    """Export an in-memory ``SmolRGPT`` (its current dtype) to ``out``; ``int8``: a float32
    model whose decoder graph is then quantised (``onnx_int8``)."""
    dtypes = {torch.float32: 'float32', torch.float16: 'float16'}
    torch_dtype = model.decoder.token_embedding.weight.dtype
    if torch_dtype not in dtypes:
        raise ValueError(f'cannot export a {torch_dtype} model; use float32 or float16')
    if int8 and torch_dtype != torch.float32:
        raise ValueError('the int8 graphs are quantised from a float32 model')
    dtype = 'int8' if int8 else dtypes[torch_dtype]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg
    for p in model.parameters():
        p.requires_grad_(False)
    vision, decoder = VisionGraph(model).eval(), DecoderGraph(model.decoder).eval()

    Dim = torch.export.Dim
    regions = Dim('regions', min=1, max=4096)
    vision_graph = _export(
        vision,
        vision_example(cfg),
        out / 'vision.onnx',
        VISION_INPUTS,
        VISION_OUTPUTS,
        {'image': {}, 'depth': {}, 'masks': {0: regions}},
        opset,
    )
    batch, seq = Dim('batch', min=1, max=1024), Dim('seq', min=1, max=65536)
    # total = past + seq with seq >= 1: a past of 65536 could never fit, and declaring it
    # makes the exporter's range check fail whenever its solver notices (order-dependent)
    past, total = Dim('past', min=0, max=65535), Dim('total', min=1, max=65536)
    decoder_graph = _export(
        decoder,
        decoder_example(cfg, torch_dtype),
        out / 'decoder.onnx',
        DECODER_INPUTS,
        DECODER_OUTPUTS,
        {
            'inputs_embeds': {0: batch, 1: seq},
            'position_ids': {0: batch, 1: seq},
            'attention_bias': {0: batch, 2: seq, 3: total},
            'past_key': {1: batch, 3: past},
            'past_value': {1: batch, 3: past},
        },
        opset,
    )
    quantization = None
    if int8:
        from smolrgpt_core.export.onnx_int8 import quantize_decoder

        start = time.perf_counter()
        quantization = quantize_decoder(out / 'decoder.onnx')
        files = graph_files(out, 'decoder.onnx')
        decoder_graph = replace(
            decoder_graph,
            files=[f.name for f in files],
            sha256=graph_sha256(files),
            seconds=decoder_graph.seconds + time.perf_counter() - start,
        )

    table = model.decoder.token_embedding.weight.detach().cpu().numpy()  # [V, D]
    np.save(out / EMBEDDING_FILE, table)
    manifest: dict[str, Any] = {
        'format': FORMAT,
        'format_version': FORMAT_VERSION,
        'dtype': dtype,
        'opset': opset,
        'exporter': 'torch.onnx.export(dynamo=True)',
        'config': cfg.to_dict(),
        'checkpoint': file_record(checkpoint_weights) if checkpoint_weights else None,
        'versions': _versions(),
        'embedding': {
            'file': EMBEDDING_FILE,
            'dtype': str(table.dtype),
            'shape': list(table.shape),
        },
        'graphs': {
            g.name: {
                'file': g.files[0],
                'files': g.files,
                'sha256': g.sha256,
                'inputs': g.inputs,
                'outputs': g.outputs,
                'export_seconds': round(g.seconds, 2),
            }
            for g in (vision_graph, decoder_graph)
        },
    }
    if quantization is not None:
        manifest['quantization'] = quantization
    if verify:
        manifest['verification'] = verify_with_onnxruntime(out, vision, decoder, cfg, torch_dtype)
        logger.info('onnxruntime vs torch: %s', manifest['verification'])
    write_manifest(out, manifest)
    return manifest
