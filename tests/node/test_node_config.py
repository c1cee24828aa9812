"""NodeConfig: the YAML, the dataclass and the declared ROS parameters agree; bad values fail."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from smolrgpt_ros.node_config import (
    NodeConfig,
    NodeConfigError,
    declare_and_read,
    descriptions,
    flatten_params,
    load_params_file,
)

ROOT = Path(__file__).resolve().parents[2]
YAML = ROOT / 'config' / 'warehouse.yaml'


def test_shipped_yaml_equals_defaults_and_names_every_parameter() -> None:
    assert load_params_file(str(YAML)) == NodeConfig()
    doc = yaml.safe_load(YAML.read_text())
    assert set(flatten_params(doc['/**']['ros__parameters'])) == set(NodeConfig().to_params())


def test_every_parameter_has_a_description() -> None:
    assert all(len(text) > 10 for text in descriptions().values())


def test_from_params_round_trip_and_int_to_float() -> None:
    cfg = NodeConfig.from_params(
        {
            'model.backend': 'onnxruntime',
            'sync.slop_s': 1,
            'depth.range': 'fixed',
            'depth.min_m': 0.5,
            'depth.max_m': 20,
        }
    )
    assert cfg.inference.model.backend == 'onnxruntime' and cfg.sync_slop_s == 1.0
    assert (cfg.inference.depth.min_m, cfg.inference.depth.max_m) == (0.5, 20.0)
    assert NodeConfig.from_params(cfg.to_params()) == cfg
    assert NodeConfig().inference.depth.range == 'checkpoint'


def test_node_builds_the_same_settings_object_as_the_cli() -> None:
    import argparse

    from smolrgpt_core import settings

    parser = argparse.ArgumentParser()
    settings.add_arguments(parser)
    settings.add_arguments(parser, ('answer.mode', 'model.threads'))
    args = parser.parse_args(
        [
            '--backend',
            'onnxruntime',
            '--max-new-tokens',
            '20',
            '--mode',
            'hybrid',
            '--threads',
            '1',
        ]
    )
    from_cli = settings.from_args(args)
    from_node = NodeConfig.from_params(
        {'model.backend': 'onnxruntime', 'generation.max_new_tokens': 20}
    ).inference
    assert from_cli == from_node


@pytest.mark.parametrize(
    ('params', 'message'),
    [
        ({'model.backend': 'openvino'}, "parameter model.backend: unknown backend 'openvino'"),
        ({'model.dtype': 'int4'}, 'parameter model.dtype'),
        ({'model.device': 'gpu0'}, 'parameter model.device'),
        (
            {'model.backend': 'tensorrt'},
            'parameter model.device: the tensorrt backend runs on cuda',
        ),
        ({'depth.encoding': 'rgb8'}, 'parameter depth.encoding'),
        (
            {'depth.min_m': 1.0, 'depth.max_m': 5.0},
            'parameter depth.range: .* set range to "fixed"',
        ),
        (
            {'depth.range': 'fixed', 'depth.min_m': 5.0, 'depth.max_m': 1.0},
            'parameter depth.min_m: a fixed range needs 0 <= min_m < max_m',
        ),
        ({'generation.max_new_tokens': 0}, 'parameter generation.max_new_tokens: must be >= 1'),
        ({'generation.max_new_tokens': 300}, 'above the cap 256'),
        ({'limits.max_regions': 10**6}, 'parameter limits.max_regions: must be in 1..4096'),
        ({'cache.frames': 0}, 'parameter cache.frames'),
        ({'sync.queue_size': 0}, 'parameter sync.queue_size: must be in 1..1024'),
        ({'sync.slop_s': 0.0}, 'parameter sync.slop_s'),
        ({'requests.queue_limit': -1}, 'parameter requests.queue_limit'),
        ({'requests.batch_max': 0}, 'parameter requests.batch_max: must be in 1..64, got 0'),
        ({'requests.batch_window_s': 2.0}, 'parameter requests.batch_window_s: must be in'),
        ({'sync.max_age_s': -1.0}, 'parameter sync.max_age_s: must be in 0.0..86400.0'),
        ({'diagnostics.period_s': 0.0}, 'parameter diagnostics.period_s'),
        ({'regions.form': 'rle'}, "parameter regions.form: 'rle' is not one of masks, instances"),
        ({'topics.instances': ''}, 'parameter topics.instances: must not be empty'),
        ({'topics.rgb': ''}, 'parameter topics.rgb: must not be empty'),
        ({'sync.queue_size': '10'}, 'parameter sync.queue_size: expected int'),
        ({'encode.eager': 1}, 'parameter encode.eager: expected bool'),
        ({'sync.queue_size': True}, 'expected int'),
        ({'model.bakend': 'torch'}, 'unknown parameters: model.bakend'),
    ],
)
def test_bad_values_name_the_parameter(params: dict, message: str) -> None:
    with pytest.raises(NodeConfigError, match=message):
        NodeConfig.from_params(params)


def test_params_file_for_named_node_and_other_nodes(tmp_path: Path) -> None:
    path = tmp_path / 'p.yaml'
    path.write_text(
        yaml.safe_dump(
            {
                'spatial_query_node': {'ros__parameters': {'model': {'device': 'cuda:1'}}},
                'some_camera': {'ros__parameters': {'fps': 30}},
            }
        )
    )
    assert load_params_file(str(path)).inference.model.device == 'cuda:1'
    path.write_text(yaml.safe_dump({'/**': {'params': {}}}))
    with pytest.raises(NodeConfigError, match='no ros__parameters'):
        load_params_file(str(path))


@pytest.mark.ros
def test_declared_on_a_real_node_with_overrides() -> None:
    import rclpy
    from rclpy.node import Node

    context = rclpy.Context()
    rclpy.init(
        context=context,
        args=[
            '--ros-args',
            '--params-file',
            str(YAML),
            '-p',
            'sync.slop_s:=0.2',
            '-p',
            'model.backend:=onnxruntime',
        ],
    )
    try:
        node = Node('spatial_query_node', context=context)
        cfg = declare_and_read(node)
        assert cfg.sync_slop_s == 0.2 and cfg.inference.model.backend == 'onnxruntime'
        assert cfg.topics_rgb == 'rgb/image'
        described = node.describe_parameters(['sync.slop_s'])[0].description
        assert described == descriptions()['sync.slop_s']
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_node_command_validates_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from smolrgpt_cli.main import main

    bad = tmp_path / 'bad.yaml'
    bad.write_text(yaml.safe_dump({'/**': {'ros__parameters': {'model': {'backend': 'x'}}}}))
    assert main(['node', '--params', str(bad)]) == 2
    assert capsys.readouterr().err.strip() == (
        "smolrgpt node: error: parameter model.backend: unknown backend 'x'; available: torch, "
        'torch-fast, onnxruntime, tensorrt'
    )
    assert main(['node', '--params', str(tmp_path / 'missing.yaml')]) == 2
    assert 'no such parameters file' in capsys.readouterr().err
    assert main(['node', '-p', 'model.backend=torch']) == 2
    assert 'expected NAME:=VALUE' in capsys.readouterr().err


def test_node_command_builds_ros_args() -> None:
    import argparse

    from smolrgpt_ros.commands.node import ros_args

    args = argparse.Namespace(
        params=str(YAML),
        param=['sync.slop_s:=0.1'],
        remap=['rgb/image:=/cam/rgb'],
        namespace='robot1',
    )
    assert ros_args(args) == [
        '--ros-args',
        '--params-file',
        str(YAML),
        '-p',
        'sync.slop_s:=0.1',
        '-r',
        'rgb/image:=/cam/rgb',
        '-r',
        '__ns:=/robot1',
    ]


def test_readme_documents_every_parameter() -> None:
    readme = (ROOT / 'README.md').read_text()
    missing = [name for name in NodeConfig().to_params() if f'`{name}`' not in readme]
    assert not missing, f'README parameter table lacks {missing}'


def test_int8_only_on_torch_cpu() -> None:
    assert NodeConfig.from_params({'model.dtype': 'int8'}).inference.model.dtype == 'int8'
    with pytest.raises(NodeConfigError, match=r'torch-fast backend takes float32 \| float16'):
        NodeConfig.from_params({'model.dtype': 'int8', 'model.backend': 'torch-fast'})
    with pytest.raises(NodeConfigError, match=r'parameter model\.'):
        NodeConfig.from_params({'model.dtype': 'int8', 'model.device': 'cuda'})
