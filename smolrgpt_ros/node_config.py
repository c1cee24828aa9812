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

# the node answers with geometry where it can; the core's default (model) serves submissions.
# One inference thread: the node shares its CPU with DDS and the rest of the robot's graph, and
# OpenMP threads spin-waiting against them made answers 20x slower on a loaded 2-core machine;
# batching across callers gives the throughput back (raise it on a dedicated multi-core CPU).
NODE_INFERENCE_DEFAULTS = InferenceSettings.from_flat(
    {'answer.mode': 'hybrid', 'model.threads': 1}
)


class NodeConfigError(ValueError):
    """A parameter value the node cannot run with; the message names the parameter."""


REGION_FORMS = ('masks', 'instances')


def _param(
    default: Any, description: str, lo: float | None = None, hi: float | None = None
) -> Any:
    """A node parameter; numbers are checked against lo..hi (inclusive) when given."""
    return field(default=default, metadata={'description': description, 'lo': lo, 'hi': hi})


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
    topics_regions: str = _param(
        'regions',
        'regions topic, stamped like the images: RegionMaskArray (regions.form masks) or '
        'RegionArray (regions.form instances)',
    )
    topics_instances: str = _param(
        'instances',
        'instance-label image (mono8, mono16 or 32SC1; 0 = background, else the region id), '
        'regions.form instances only',
    )
    regions_form: str = _param(
        'masks',
        'how regions arrive: masks (RegionMaskArray, each mask full-frame or cropped to its '
        'bbox) | instances (an instance-label image on topics.instances + RegionArray)',
    )
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
    sync_queue_size: int = _param(
        10, 'messages kept per input for approximate-time matching', 1, 1024
    )
    sync_slop_s: float = _param(0.05, 'largest stamp spread (seconds) of one RGB-D-masks set')
    sync_max_age_s: float = _param(
        2.0,
        'a question about the latest frame (stamp 0) fails when that frame is older than this, '
        "by the node's clock (sim time with use_sim_time); 0 = no limit",
        0.0,
        86400.0,
    )
    encode_eager: bool = _param(
        False, 'run the vision encoder on every frame as it arrives (else on first question)'
    )
    requests_queue_limit: int = _param(
        4,
        'batches waiting for the engine; a question that joins none and finds this many '
        'waiting is rejected with "busy"',
        1,
        1024,
    )
    requests_batch_max: int = _param(
        8,
        'most questions (from every caller, about one frame) answered by one engine pass',
        1,
        64,
    )
    requests_batch_window_s: float = _param(
        0.01,
        'seconds a batch waits for more questions about its frame, from its first question or '
        "the engine's last answer, whichever is later (while the engine is busy, batches fill "
        'anyway)',
        0.0,
        1.0,
    )
    diagnostics_period_s: float = _param(1.0, 'seconds between /diagnostics reports', 0.1, 60.0)
    diagnostics_stale_s: float = _param(
        5.0,
        '/diagnostics says ERROR when no frame has been synchronised for this many seconds',
        0.1,
        3600.0,
    )
    autostart: bool = _param(True, 'configure and activate the lifecycle node at start-up')
    inference: InferenceSettings = field(default_factory=lambda: NODE_INFERENCE_DEFAULTS)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def fail(name: str, problem: str) -> None:
            raise NodeConfigError(f'parameter {param_name(name)}: {problem}')

        for f in _own_fields():
            lo, hi, value = f.metadata['lo'], f.metadata['hi'], getattr(self, f.name)
            if lo is not None and not lo <= value <= hi:
                fail(f.name, f'must be in {lo}..{hi}, got {value}')
        if not 0 < self.sync_slop_s <= 10:
            fail('sync_slop_s', f'must be in (0, 10] seconds, got {self.sync_slop_s}')
        for name in (
            'topics_rgb',
            'topics_depth',
            'topics_regions',
            'topics_instances',
            'topics_camera_info',
        ):
            if not getattr(self, name):
                fail(name, 'must not be empty')
        if self.regions_form not in REGION_FORMS:
            fail('regions_form', f'{self.regions_form!r} is not one of {", ".join(REGION_FORMS)}')

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
