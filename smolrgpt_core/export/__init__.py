"""Exporting SmolRGPT for other runtimes: ONNX graphs (``onnx_export``), their manifest
(``manifest``) and TensorRT engines built from them (``tensorrt_build``).

``graphs`` holds the export-friendly wrappers: fixed-rank tensors in and out, no Python lists,
no ``.item()`` and no data-dependent branches, so the exported graph is the model's math.
"""
