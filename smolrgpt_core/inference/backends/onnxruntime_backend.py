"""ONNX Runtime backend: ``vision.onnx`` + ``decoder.onnx`` from ``smolrgpt export onnx``.

The decoder's keys and values live in two pairs of preallocated host (or CUDA) buffers, sized
for the whole answer when it starts and reused across answers. Each step binds the current
pair as ``past_*`` and the other pair as ``present_*`` (IO binding with explicit buffer
pointers), then swaps them: no allocation and no numpy conversion per token. The graph still
concatenates past and new keys (O(past) copy per step), which costs little at this model
size and context (<= 1-2k tokens).

dtype ``int8`` runs the export made with ``smolrgpt export onnx --dtype int8``: the decoder's
weight matmuls as ``MatMulNBits`` (8-bit, int8 activations per row and block, see
``export/onnx_int8.py``), on the CPU.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from smolrgpt_core.config import SmolRGPTConfig
from smolrgpt_core.export.manifest import ManifestError, check_checkpoint, read_manifest
from smolrgpt_core.inference.backends import BackendError
from smolrgpt_core.inference.backends.graph_runtime import GraphBackend, PingPongKV

logger = logging.getLogger(__name__)

# the dtype of each export's inputs, outputs and KV cache (int8 graphs keep float32 I/O)
GRAPH_DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'int8': torch.float32}
NUMPY_DTYPES = {torch.float32: np.float32, torch.float16: np.float16, torch.int64: np.int64}


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendError(
            'backend onnxruntime: the onnxruntime package is not installed '
            '(pip install onnxruntime)'
        ) from exc
    return onnxruntime


class OrtDecoderRunner(PingPongKV):
    """``KVRunner`` over an ONNX Runtime session, bound to the ping-pong KV buffers."""

    def __init__(
        self, session: object, cfg: SmolRGPTConfig, dtype: torch.dtype, device: torch.device
    ) -> None:
        super().__init__(cfg, dtype, device)
        self.session = session
        self._device_type = 'cuda' if device.type == 'cuda' else 'cpu'
        self._device_id = device.index or 0

    def _execute(self, inputs: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor]) -> None:
        io = self.session.io_binding()
        for names, bind in ((inputs, io.bind_input), (outputs, io.bind_output)):
            for name, tensor in names.items():
                bind(
                    name,
                    self._device_type,
                    self._device_id,
                    NUMPY_DTYPES[tensor.dtype],
                    list(tensor.shape),
                    tensor.data_ptr(),
                )
        self.session.run_with_iobinding(io)


class OnnxRuntimeBackend(GraphBackend):
    def __init__(
        self, directory: str | Path, *, device: str = 'cpu', threads: int | None = None
    ) -> None:
        ort = _import_onnxruntime()
        self.directory = Path(directory)
        try:
            self.manifest = read_manifest(self.directory)
        except ManifestError as exc:
            raise BackendError(f'backend onnxruntime: {exc}') from exc
        self.cfg = SmolRGPTConfig.from_dict(self.manifest['config'])
        self.dtype = GRAPH_DTYPES[self.manifest['dtype']]
        self.device = torch.device(device)
        providers = ['CPUExecutionProvider']
        if self.device.type == 'cuda':
            if 'CUDAExecutionProvider' not in ort.get_available_providers():
                raise BackendError(
                    'backend onnxruntime: device cuda needs onnxruntime-gpu '
                    '(CUDAExecutionProvider is not available)'
                )
            providers.insert(0, ('CUDAExecutionProvider', {'device_id': self.device.index or 0}))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        graphs = self.manifest['graphs']
        self.vision = ort.InferenceSession(
            str(self.directory / graphs['vision']['file']), options, providers=providers
        )
        self.decoder = ort.InferenceSession(
            str(self.directory / graphs['decoder']['file']), options, providers=providers
        )
        table = np.load(self.directory / self.manifest['embedding']['file'])
        self.table = torch.from_numpy(table).to(self.device)  # [V, D]
        self._kv_runner = OrtDecoderRunner(self.decoder, self.cfg, self.dtype, self.device)
        logger.info(
            'onnxruntime %s: %s graphs from %s on %s',
            ort.__version__,
            self.manifest['dtype'],
            self.directory,
            providers[0],
        )

    def _run_vision(
        self, image: torch.Tensor, depth: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feed = {
            'image': image.cpu().numpy(),
            'depth': depth.cpu().numpy(),
            'masks': masks.float().cpu().numpy(),
        }
        outputs = self.vision.run(None, feed)
        image_embeds, rgb, depth_regions = (torch.from_numpy(o).to(self.device) for o in outputs)
        return image_embeds, rgb, depth_regions

    def _runner(self) -> OrtDecoderRunner:
        return self._kv_runner


def default_engine_dir(checkpoint: Path) -> Path:
    return checkpoint / 'onnx'


def load_onnxruntime(
    checkpoint: Path, *, device: str, dtype: str, engine_dir: Path | None
) -> OnnxRuntimeBackend:
    """Loader for ``load_backend('onnxruntime', ...)``: graphs in ``engine_dir`` (default
    ``<checkpoint>/onnx``), checked against the checkpoint they were exported from."""
    from smolrgpt_core.weights import CONFIG_NAME, WEIGHTS_NAME

    directory = engine_dir or default_engine_dir(checkpoint)
    try:
        manifest = read_manifest(directory)
        if dtype != manifest['dtype']:
            raise BackendError(
                f'backend onnxruntime: the graphs in {directory} are '
                f'{manifest["dtype"]}, not {dtype}; set dtype to '
                f'{manifest["dtype"]} or export again with --dtype {dtype}'
            )
        config = SmolRGPTConfig.from_json(checkpoint / CONFIG_NAME).to_dict()
        check_checkpoint(manifest, config, checkpoint / WEIGHTS_NAME)
    except (ManifestError, OSError) as exc:
        raise BackendError(f'backend onnxruntime: {exc}') from exc
    backend = OnnxRuntimeBackend(directory, device=device)
    return backend
