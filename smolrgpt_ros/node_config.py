"""Deployment settings of the spatial-query node: one dataclass, validated in pure Python.

Declared once, read once, handed to the core as one struct: ``declare_and_read`` declares every
parameter (with its description) in a loop and returns a ``NodeConfig``, whose ``inference`` is
the core's ``InferenceSettings`` — the same object ``smolrgpt ask`` and the other CLIs build, with
the same validation and the same choice lists (from the backend registry). Every setting is a ROS
parameter with a dotted name (``model.backend``, ``sync.slop_s``, ...); ``config/warehouse.yaml``
holds the same names. Architecture never appears here: it comes from the checkpoint's
``config.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from smolrgpt_core.settings import InferenceSettings, SettingsError

# the node answers with geometry where it can; the core's default (model) serves submissions
NODE_INFERENCE_DEFAULTS = InferenceSettings.from_flat({'answer.mode': 'hybrid'})


class NodeConfigError(ValueError):
    """A parameter value the node cannot run with; the message names the parameter."""


def _param(default: Any, description: str) -> Any:
    return field(default=default, metadata={'description': description})


@dataclass
class NodeConfig:
    """The node's own parameters, plus ``inference``: the core's settings, whose dotted names
    (``model.*``, ``depth.*``, ``generation.*``, ``limits.*``, ``cache.*``) are ROS parameters too.
    """

    model_checkpoint_dir: str = _param(
        '',
        'checkpoint directory (config.json + model.safetensors + tokenizer), or hf://org/name; '
        'empty = the embedded synthetic model',
    )
    topics_rgb: str = _param('rgb/image', 'RGB image topic (rgb8 or bgr8)')
    topics_depth: str = _param('depth/image', 'depth image topic (16UC1 mm, 32FC1 m, mono8)')
    topics_regions: str = _param('regions', 'RegionMaskArray topic, stamped like the images')
    topics_camera_info: str = _param(
        'depth/camera_info',
        'sensor_msgs/CameraInfo of the depth image (registered to the RGB image, as '
        'aligned_depth_to_color); matched by stamp, else the latest',
    )
    qos_reliable: bool = _param(
        False,
        'subscribe RELIABLE instead of best effort (sensor data QoS): needed for large '
        'messages over UDP (e.g. full-HD masks, rosbag replay); a reliable subscription does not '
        'match best-effort publishers',
    )
    sync_queue_size: int = _param(10, 'messages kept per input for approximate-time matching')
    sync_slop_s: float = _param(0.05, 'largest stamp spread (seconds) of one RGB-D-masks set')
    encode_eager: bool = _param(
        False, 'run the vision encoder on every frame as it arrives (else on first question)'
    )
    requests_queue_limit: int = _param(
        4, 'requests waiting for the model; more are rejected with "busy"'
    )
    autostart: bool = _param(True, 'configure and activate the lifecycle node at start-up')
    inference: InferenceSettings = field(default_factory=lambda: NODE_INFERENCE_DEFAULTS)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def fail(name: str, problem: str) -> None:
            raise NodeConfigError(f'parameter {param_name(name)}: {problem}')

        for name in ('sync_queue_size', 'requests_queue_limit'):
            if not 1 <= getattr(self, name) <= 1024:
                fail(name, f'must be in 1..1024, got {getattr(self, name)}')
        if not 0 < self.sync_slop_s <= 10:
            fail('sync_slop_s', f'must be in (0, 10] seconds, got {self.sync_slop_s}')
        for name in ('topics_rgb', 'topics_depth', 'topics_regions', 'topics_camera_info'):
            if not getattr(self, name):
                fail(name, 'must not be empty')

    @classmethod
    def from_params(cls, values: dict[str, Any]) -> NodeConfig:
        """From dotted parameter names (as in the YAML); unknown names are an error."""
        own = {param_name(f.name): f for f in _own_fields()}
        settings_names = set(InferenceSettings().to_flat())
        unknown = sorted(set(values) - set(own) - settings_names)
        if unknown:
            raise NodeConfigError(f'unknown parameters: {", ".join(unknown)}')
        kwargs: dict[str, Any] = {}
        for dotted, f in own.items():
            if dotted not in values:
                continue
            value, expected = values[dotted], type(f.default)
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                raise NodeConfigError(
                    f'parameter {dotted}: expected {expected.__name__}, got {value!r}'
                )
            kwargs[f.name] = value
        try:
            kwargs['inference'] = InferenceSettings.from_flat(
                {k: v for k, v in values.items() if k in settings_names}, NODE_INFERENCE_DEFAULTS
            )
        except SettingsError as exc:
            raise NodeConfigError(f'parameter {exc.name}: {exc.problem}') from None
        return cls(**kwargs)

    def to_params(self) -> dict[str, Any]:
        own = {param_name(f.name): getattr(self, f.name) for f in _own_fields()}
        return {**own, **self.inference.to_flat()}


def _own_fields() -> list[Any]:
    return [f for f in fields(NodeConfig) if f.name != 'inference']


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


# field name -> dotted parameter name: the first underscore separates the group, except for
# the ungrouped `autostart`
def param_name(field_name: str) -> str:
    if '_' not in field_name:
        return field_name
    group, rest = field_name.split('_', 1)
    return f'{group}.{rest}'


def descriptions() -> dict[str, str]:
    own = {param_name(f.name): f.metadata['description'] for f in _own_fields()}
    core = {name: text for name, (_, text, _) in InferenceSettings.describe().items()}
    return {**own, **core}


def declare_and_read(node: Any) -> NodeConfig:
    """Declare every parameter on an rclpy node (with descriptions) and read them back."""
    from rcl_interfaces.msg import ParameterDescriptor

    values = {}
    texts = descriptions()
    for name, default in NodeConfig().to_params().items():
        node.declare_parameter(name, default, ParameterDescriptor(description=texts[name]))
        values[name] = node.get_parameter(name).value
    return NodeConfig.from_params(values)
