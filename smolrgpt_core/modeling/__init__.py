"""The SmolRGPT network, one file per part.

* ``vision.py``: SigLIP-style ViT shared by the RGB and depth images.
* ``projector.py``: pixel shuffle + bias-free linear into the LM width (``MP``, ``MP_depth``).
* ``region.py``: feature refiner (8x transposed-conv upsampling) and mask pooling.
* ``decoder.py``: Llama-style decoder (RMSNorm, RoPE, GQA attention, SwiGLU, tied head), one
  block for the eager, static (CUDA-graph) and exported paths.
* ``kv_cache.py``: the cache objects that block writes its keys/values to (``EagerCache``,
  ``StaticCache``, ``ExportCache``).
* ``splice.py``: image and region vectors into the prompt's placeholder rows (every backend).
* ``smolrgpt.py``: the VLM that composes them: training forward, ``encode_frame`` and
  ``answer``.

Module and parameter names are chosen so that ``state_dict()`` keys equal the official
checkpoint keys (hence ``MP``/``MP_depth``, ``qkv_proj``, ``out_proj``, ``norm1``, ...).

Shape letters used in the shape comments of every file:

* ``B`` batch, ``T`` tokens (query length), ``S`` key/value length (cache slots in use)
* ``N`` ViT patches (256), ``n`` image tokens after the pixel shuffle (64)
* ``D`` hidden width of the part at hand (ViT 768, LM 960), ``Di`` MLP inner width
* ``H``/``Hkv`` query/key-value heads, ``Dh`` head dim
* ``h, w`` a patch or token grid, ``s`` pixel-shuffle factor, ``G`` refined mask grid (64)
* ``M`` regions (masks), ``V`` vocabulary, ``L`` decoder layers
* ``Hi, Wi`` image (or mask) height and width in pixels
"""
