"""Deployment settings of the spatial-query node: one dataclass, validated in pure Python.

Every field is a ROS parameter with a dotted name (``model.backend``, ``sync.slop_s``, ...),
declared with a description from the field metadata. ``config/warehouse.yaml`` holds the same
names. Architecture never appears here: it comes from the checkpoint's ``config.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
import math
from typing import Any

BACKENDS = ('torch', 'torch-fast', 'onnxruntime', 'tensorrt')
DTYPES = ('float32', 'float16', 'bfloat16', 'int8')
DEPTH_ENCODINGS = ('auto', '16UC1', '32FC1', 'mono8')


class NodeConfigError(ValueError):
    """A parameter value the node cannot run with; the message names the parameter."""


def _param(default: Any, description: str) -> Any:
    return field(default=default, metadata={'description': description})


@dataclass
class NodeConfig:
    model_checkpoint_dir: str = _param(
        '',
        'checkpoint directory (config.json + model.safetensors + tokenizer); '
        'empty = the embedded synthetic model',
    )
    model_backend: str = _param('torch', f'inference backend: {" | ".join(BACKENDS)}')
    model_device: str = _param('cpu', 'torch device: cpu, cuda or cuda:N')
    model_dtype: str = _param('float32', f'weights and activations: {" | ".join(DTYPES)}')
    model_engine_dir: str = _param('', 'ONNX / TensorRT engine directory (those backends)')
    topics_rgb: str = _param('rgb/image', 'RGB image topic (rgb8 or bgr8)')
    topics_depth: str = _param('depth/image', 'depth image topic (16UC1 mm, 32FC1 m, mono8)')
    topics_regions: str = _param('regions', 'RegionMaskArray topic, stamped like the images')
    qos_reliable: bool = _param(
        False,
        'subscribe RELIABLE instead of best effort (sensor data QoS): needed for large '
        'messages over UDP (e.g. full-HD masks, rosbag replay); a reliable subscription does not '
        'match best-effort publishers',
    )
    depth_encoding: str = _param(
        'auto', f'expected depth encoding: {" | ".join(DEPTH_ENCODINGS)} (auto = as received)'
    )
    depth_min_m: float = _param(
        0.0,
        "metric depth (m) mapped to 8-bit 0; min_m = max_m = 0: each frame's own valid "
        "range, as in the dataset's depth PNGs",
    )
    depth_max_m: float = _param(0.0, 'metric depth (m) mapped to 8-bit 255 (see depth.min_m)')
    sync_queue_size: int = _param(10, 'messages kept per input for approximate-time matching')
    sync_slop_s: float = _param(0.05, 'largest stamp spread (seconds) of one RGB-D-masks set')
    cache_frames: int = _param(8, 'synchronised frames kept for stamp lookups')
    encode_eager: bool = _param(
        False, 'run the vision encoder on every frame as it arrives (else on first question)'
    )
    generation_max_new_tokens: int = _param(48, 'answer length cap when a request says 0')
    requests_queue_limit: int = _param(
        4, 'requests waiting for the model; more are rejected with "busy"'
    )
    autostart: bool = _param(True, 'configure and activate the lifecycle node at start-up')

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def fail(name: str, problem: str) -> None:
            raise NodeConfigError(f'parameter {param_name(name)}: {problem}')

        if self.model_backend not in BACKENDS:
            fail('model_backend', f'{self.model_backend!r} is not one of {", ".join(BACKENDS)}')
        if self.model_dtype not in DTYPES:
            fail('model_dtype', f'{self.model_dtype!r} is not one of {", ".join(DTYPES)}')
        device = self.model_device
        if not (
            device == 'cpu'
            or device == 'cuda'
            or (device.startswith('cuda:') and device[5:].isdigit())
        ):
            fail('model_device', f'{device!r} is not cpu, cuda or cuda:N')
        if self.model_backend == 'tensorrt' and not device.startswith('cuda'):
            fail('model_device', 'the tensorrt backend needs a cuda device')
        if self.model_dtype == 'int8' and (self.model_backend != 'torch' or device != 'cpu'):
            fail('model_dtype', 'int8 weights are a torch backend option on the cpu device')
        if self.depth_encoding not in DEPTH_ENCODINGS:
            fail(
                'depth_encoding',
                f'{self.depth_encoding!r} is not one of {", ".join(DEPTH_ENCODINGS)}',
            )
        lo, hi = self.depth_min_m, self.depth_max_m
        if (lo, hi) != (0.0, 0.0) and not (math.isfinite(hi) and 0 <= lo < hi):
            fail(
                'depth_min_m',
                'need 0 <= depth.min_m < depth.max_m (or both 0 for each '
                f"frame's own range), got {lo} and {hi}",
            )
        for name in (
            'sync_queue_size',
            'cache_frames',
            'generation_max_new_tokens',
            'requests_queue_limit',
        ):
            if getattr(self, name) < 1:
                fail(name, f'must be >= 1, got {getattr(self, name)}')
        if not 0 < self.sync_slop_s <= 10:
            fail('sync_slop_s', f'must be in (0, 10] seconds, got {self.sync_slop_s}')
        for name in ('topics_rgb', 'topics_depth', 'topics_regions'):
            if not getattr(self, name):
                fail(name, 'must not be empty')

    @classmethod
    def from_params(cls, values: dict[str, Any]) -> NodeConfig:
        """From dotted parameter names (as in the YAML); unknown names are an error."""
        known = {param_name(f.name): f.name for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise NodeConfigError(f'unknown parameters: {", ".join(unknown)}')
        kwargs = {}
        for dotted, value in values.items():
            name = known[dotted]
            expected = type(_default_of(name))
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise NodeConfigError(
                    f'parameter {dotted}: expected {expected.__name__}, got {value!r}'
                )
            kwargs[name] = value
        return cls(**kwargs)

    def to_params(self) -> dict[str, Any]:
        return {param_name(f.name): getattr(self, f.name) for f in fields(self)}

    @property
    def depth_range_m(self) -> tuple[float, float] | None:
        """The fixed metric depth range, or None for each frame's own range."""
        if (self.depth_min_m, self.depth_max_m) == (0.0, 0.0):
            return None
        return self.depth_min_m, self.depth_max_m


def flatten_params(tree: dict[str, Any], prefix: str = '') -> dict[str, Any]:
    """Nested YAML groups ({'model': {'backend': ..}}) -> dotted names, as ROS 2 flattens them."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            flat.update(flatten_params(value, f'{name}.'))
        else:
            flat[name] = value
    return flat


def load_params_file(path: str) -> NodeConfig:
    """A ROS 2 parameters YAML (``/**:`` or ``<node name>:`` -> ``ros__parameters``)."""
    import yaml

    with open(path, encoding='utf-8') as f:
        doc = yaml.safe_load(f) or {}
    params: dict[str, Any] = {}
    for node_key, section in doc.items():
        if not isinstance(section, dict) or 'ros__parameters' not in section:
            raise NodeConfigError(f'{path}: {node_key!r} has no ros__parameters section')
        if node_key.lstrip('/') not in ('**', 'spatial_query_node'):
            continue  # parameters for other nodes
        params.update(flatten_params(section['ros__parameters'] or {}))
    return NodeConfig.from_params(params)


def _default_of(name: str) -> Any:
    return next(f.default for f in fields(NodeConfig) if f.name == name)


# field name -> dotted parameter name: the first underscore separates the group, except for
# the ungrouped `autostart`
def param_name(field_name: str) -> str:
    if '_' not in field_name:
        return field_name
    group, rest = field_name.split('_', 1)
    return f'{group}.{rest}'


def descriptions() -> dict[str, str]:
    return {param_name(f.name): f.metadata['description'] for f in fields(NodeConfig)}


def declare_and_read(node: Any) -> NodeConfig:
    """Declare every parameter on an rclpy node (with descriptions) and read them back."""
    from rcl_interfaces.msg import ParameterDescriptor

    values = {}
    for f in fields(NodeConfig):
        name = param_name(f.name)
        node.declare_parameter(
            name, f.default, ParameterDescriptor(description=f.metadata['description'])
        )
        values[name] = node.get_parameter(name).value
    return NodeConfig.from_params(values)
