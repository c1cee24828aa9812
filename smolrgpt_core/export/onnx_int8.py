"""int8 decoder graph for ONNX Runtime: the fp32 ``decoder.onnx`` with its weight matmuls as
``MatMulNBits`` (8-bit weights, one fp32 scale per block of 32 inputs, symmetric).

``accuracy_level=4`` makes ONNX Runtime's CPU kernels quantise the activations to int8 too,
per row and per block of 32 inputs, and sum in integers: fast (about a quarter of the fp32
bytes per token), and a row's result does not depend on the other rows of the batch, so an
answer is the same alone and inside any batch. The head is exported as a ``Gemm`` over the
[V, D] embedding table; it is rewritten as a ``MatMul`` over the transposed table first, so it
is quantised as well. Everything else (norms, RoPE, attention, the KV cache, inputs and
outputs) stays float32: the graph's interface is the fp32 graph's.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

BITS = 8
BLOCK_SIZE = 32
ACCURACY_LEVEL = 4  # int8 activations, integer sums (MLAS "CompInt8")


def gemm_heads_to_matmul(model: Any) -> int:
    """``Gemm(A, W, transB=1)`` with a constant W and no bias -> ``MatMul(A, W.T)`` (the
    form ``MatMulNBits`` quantises); returns how many were rewritten."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    rewritten = 0
    for index, node in enumerate(list(graph.node)):
        if node.op_type != 'Gemm' or len(node.input) != 2 or node.input[1] not in inits:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get('transA', 0) != 0 or attrs.get('transB', 0) != 1:
            continue
        if attrs.get('alpha', 1.0) != 1.0:
            continue
        weight = inits[node.input[1]]
        transposed = numpy_helper.from_array(
            np.ascontiguousarray(numpy_helper.to_array(weight).T), weight.name + '_t'
        )  # [V, D] -> [D, V]
        graph.initializer.remove(weight)
        graph.initializer.append(transposed)
        matmul = helper.make_node(
            'MatMul', [node.input[0], transposed.name], list(node.output), name=node.name
        )
        graph.node.remove(node)
        graph.node.insert(index, matmul)
        rewritten += 1
    return rewritten


def quantize_decoder(path: Path) -> dict[str, Any]:
    """Rewrite ``path`` (an fp32 decoder graph with external data) in place as the int8
    graph; returns what the manifest records about it."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(path))  # with its external data, now in memory
    heads = gemm_heads_to_matmul(model)
    quant_logger = logging.getLogger('onnxruntime.quantization.matmul_nbits_quantizer')
    level = quant_logger.level
    quant_logger.setLevel(logging.WARNING)  # one INFO line per matmul otherwise
    try:
        quantizer = MatMulNBitsQuantizer(
            model,
            bits=BITS,
            block_size=BLOCK_SIZE,
            is_symmetric=True,
            accuracy_level=ACCURACY_LEVEL,
        )
        quantizer.process()
    finally:
        quant_logger.setLevel(level)
    quantized = quantizer.model.model
    count = sum(node.op_type == 'MatMulNBits' for node in quantized.graph.node)
    data = path.with_name(path.name + '.data')
    path.unlink()
    data.unlink(missing_ok=True)
    onnx.save_model(
        quantized,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=data.name,
    )
    onnx.checker.check_model(str(path))
    logger.info(
        'quantised %d matmuls of %s to %d-bit (%d head rewritten)', count, path, BITS, heads
    )
    return {
        'op': 'MatMulNBits',
        'bits': BITS,
        'block_size': BLOCK_SIZE,
        'symmetric': True,
        'accuracy_level': ACCURACY_LEVEL,
        'matmuls': count,
    }
