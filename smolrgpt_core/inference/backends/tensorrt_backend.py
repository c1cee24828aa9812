"""TensorRT backend: engines built from the exported ONNX graphs, run on torch CUDA buffers.

Not yet run against TensorRT in our CI (TensorRT cannot be installed on the project's
machines). The code follows the TensorRT 10/11 name-based I/O API (``num_io_tensors``,
``get_tensor_name/mode/dtype``, ``set_input_shape``, ``set_tensor_address``,
``execute_async_v3``); its host logic is the same as the ONNX Runtime backend's
(``graph_runtime``), and the unit tests drive it with a stand-in engine that runs the ONNX
graphs through ONNX Runtime.

``tensorrt`` is imported only when this backend is selected; without it, selecting the
backend fails with one line (``BackendError``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from smolrgpt_core.config import SmolRGPTConfig
from smolrgpt_core.export.manifest import ManifestError, check_checkpoint, read_manifest
from smolrgpt_core.export.tensorrt_build import (
    INDEX_NAME,
    BuildSettings,
    Profile,
    TensorRTUnavailable,
    build_engines,
    check_shapes,
    decoder_profile_index,
    decoder_profiles,
    import_tensorrt,
    read_settings,
    vision_profiles,
)
from smolrgpt_core.inference.backends import BackendError
from smolrgpt_core.inference.backends.graph_runtime import GraphBackend, PingPongKV

logger = logging.getLogger(__name__)

GRAPH_DTYPES = {'float32': torch.float32, 'float16': torch.float16}


class EngineRunner(Protocol):
    """What the backend needs from an engine: run with caller-owned output buffers."""

    def run(
        self, inputs: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor], profile: int
    ) -> None: ...


def _torch_dtype(trt: object, dtype: object) -> torch.dtype:
    table = {
        'FLOAT': torch.float32,
        'HALF': torch.float16,
        'BF16': torch.bfloat16,
        'INT64': torch.int64,
        'INT32': torch.int32,
        'INT8': torch.int8,
        'BOOL': torch.bool,
    }
    for name, torch_dtype in table.items():
        if hasattr(trt.DataType, name) and dtype == getattr(trt.DataType, name):
            return torch_dtype
    raise TensorRTUnavailable(f'unsupported TensorRT tensor dtype {dtype}')


class TrtEngine:
    """A deserialized engine with one execution context per optimisation profile."""

    def __init__(self, plan: Path, n_profiles: int) -> None:
        trt = import_tensorrt()
        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self._logger)
        self.engine = self.runtime.deserialize_cuda_engine(plan.read_bytes())
        if self.engine is None:
            raise TensorRTUnavailable(f'TensorRT could not deserialize {plan.name}')
        self.stream = torch.cuda.Stream()
        self.contexts = []
        for index in range(n_profiles):
            context = self.engine.create_execution_context()
            context.set_optimization_profile_async(index, self.stream.cuda_stream)
            self.contexts.append(context)
        self.stream.synchronize()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [
            n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT
        ]
        self.outputs = [n for n in names if n not in self.inputs]
        self.dtypes = {n: _torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in names}
        # TensorRT wants a valid address even for a zero-volume tensor (an empty past)
        self._placeholder = torch.empty(64, dtype=torch.uint8, device='cuda')
        logger.info(
            '%s: inputs %s, outputs %s',
            plan.name,
            {n: str(self.dtypes[n]) for n in self.inputs},
            {n: str(self.dtypes[n]) for n in self.outputs},
        )

    def _address(self, tensor: torch.Tensor) -> int:
        return tensor.data_ptr() if tensor.numel() else self._placeholder.data_ptr()

    def run(
        self, inputs: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor], profile: int
    ) -> None:
        context = self.contexts[profile]
        for name in self.inputs:
            tensor = inputs[name]
            if tensor.dtype != self.dtypes[name] or not tensor.is_cuda:
                raise ValueError(
                    f'{name}: engine wants CUDA {self.dtypes[name]}, got '
                    f'{tensor.device} {tensor.dtype}'
                )
            context.set_input_shape(name, tuple(tensor.shape))
            context.set_tensor_address(name, self._address(tensor))
        for name in self.outputs:
            tensor = outputs[name]
            expected = tuple(context.get_tensor_shape(name))
            if tuple(tensor.shape) != expected or tensor.dtype != self.dtypes[name]:
                raise ValueError(
                    f'{name}: engine gives {expected} {self.dtypes[name]}, buffer '
                    f'is {tuple(tensor.shape)} {tensor.dtype}'
                )
            context.set_tensor_address(name, self._address(tensor))
        # the buffers were written on torch's current stream; the engine runs on its own
        self.stream.wait_stream(torch.cuda.current_stream())
        if not context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError('TensorRT execute_async_v3 failed')
        torch.cuda.current_stream().wait_stream(self.stream)


class TrtDecoderRunner(PingPongKV):
    def __init__(
        self,
        engine: EngineRunner,
        cfg: SmolRGPTConfig,
        dtype: torch.dtype,
        device: torch.device,
        profiles: list[Profile],
    ) -> None:
        super().__init__(cfg, dtype, device)
        self.engine = engine
        self.profiles = profiles

    def _execute(self, inputs: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor]) -> None:
        index = decoder_profile_index(inputs['inputs_embeds'].shape[1])
        check_shapes(
            self.profiles[index], {n: tuple(t.shape) for n, t in inputs.items()}, 'decoder'
        )
        self.engine.run(inputs, outputs, index)


class TensorRTBackend(GraphBackend):
    """Runs a vision engine and a decoder engine; ``engines`` may be injected (tests)."""

    def __init__(
        self,
        onnx_dir: str | Path,
        *,
        settings: BuildSettings,
        engines: dict[str, EngineRunner],
        device: str = 'cuda',
    ) -> None:
        self.directory = Path(onnx_dir)
        self.manifest = read_manifest(self.directory)
        self.cfg = SmolRGPTConfig.from_dict(self.manifest['config'])
        self.dtype = GRAPH_DTYPES[self.manifest['dtype']]
        self.device = torch.device(device)
        self.settings = settings
        self.vision_profiles = vision_profiles(self.cfg, settings)
        self.engines = engines
        table = np.load(self.directory / self.manifest['embedding']['file'])
        self.table = torch.from_numpy(table).to(self.device)  # [V, D]
        self._kv_runner = TrtDecoderRunner(
            engines['decoder'],
            self.cfg,
            self.dtype,
            self.device,
            decoder_profiles(self.cfg, settings),
        )

    def _run_vision(
        self, image: torch.Tensor, depth: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        inputs = {
            'image': image.to(self.device, torch.float32).contiguous(),
            'depth': depth.to(self.device, torch.float32).contiguous(),
            'masks': masks.to(self.device, torch.float32).contiguous(),
        }
        check_shapes(self.vision_profiles[0], {'masks': tuple(masks.shape)}, 'vision')
        M, D = masks.shape[0], self.cfg.lm_hidden_dim
        outputs = {
            name: torch.empty(shape, dtype=self.dtype, device=self.device)
            for name, shape in (
                ('image_embeds', (self.cfg.mp_image_token_length, D)),
                ('rgb_regions', (M, D)),
                ('depth_regions', (M, D)),
            )
        }
        self.engines['vision'].run(inputs, outputs, 0)
        return outputs['image_embeds'], outputs['rgb_regions'], outputs['depth_regions']

    def _runner(self) -> TrtDecoderRunner:
        return self._kv_runner


def load_tensorrt(
    checkpoint: Path, *, device: str, dtype: str, engine_dir: Path | None
) -> TensorRTBackend:
    """Loader for ``load_backend('tensorrt', ...)``.

    ``engine_dir`` is either the output of ``smolrgpt export tensorrt`` (holding
    ``tensorrt.json``, which names the ONNX directory) or an ONNX export directory; engines
    missing or built for another TensorRT/GPU are (re)built there.
    """
    from smolrgpt_core.weights import CONFIG_NAME, WEIGHTS_NAME

    try:
        import_tensorrt()
        if not torch.cuda.is_available():
            raise TensorRTUnavailable('TensorRT needs a CUDA GPU, and torch sees none')
    except TensorRTUnavailable as exc:
        raise BackendError(f'backend tensorrt: {exc}') from exc
    if not device.startswith('cuda'):
        raise BackendError(f'backend tensorrt runs on cuda, not {device!r}')
    out_dir = engine_dir or checkpoint / 'onnx'
    onnx_dir, settings = read_settings(out_dir)
    onnx_dir = onnx_dir or out_dir
    try:
        manifest = read_manifest(onnx_dir)
        if dtype != manifest['dtype']:
            raise BackendError(
                f'backend tensorrt: the graphs in {onnx_dir} are '
                f'{manifest["dtype"]}, not {dtype}; set dtype to '
                f'{manifest["dtype"]} or export again with --dtype {dtype}'
            )
        config = SmolRGPTConfig.from_json(checkpoint / CONFIG_NAME).to_dict()
        check_checkpoint(manifest, config, checkpoint / WEIGHTS_NAME)
        index = build_engines(onnx_dir, out_dir, settings)
    except (ManifestError, TensorRTUnavailable, OSError) as exc:
        raise BackendError(f'backend tensorrt: {exc}') from exc
    with torch.cuda.device(torch.device(device)):
        engines = {
            'vision': TrtEngine(out_dir / index['engines']['vision']['plan'], 1),
            'decoder': TrtEngine(out_dir / index['engines']['decoder']['plan'], 2),
        }
    logger.info('tensorrt engines from %s (%s)', out_dir, INDEX_NAME)
    return TensorRTBackend(onnx_dir, settings=settings, engines=engines, device=device)
