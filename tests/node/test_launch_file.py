"""launch/warehouse.launch.py against the node's real parameters and topics.

`launch`/`launch_ros` are not on PyPI: where they are importable (a ROS 2 install) the file is
loaded and its description inspected; elsewhere its source is parsed and the same facts are
checked (arguments, parameter names, remapped topics, executable)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from smolrgpt_ros.node_config import NodeConfig

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / 'launch' / 'warehouse.launch.py'
HAS_LAUNCH_ROS = importlib.util.find_spec('launch_ros') is not None


def _module_constants() -> dict[str, object]:
    tree = ast.parse(LAUNCH.read_text())
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return constants


def _calls(name: str) -> list[ast.Call]:
    tree = ast.parse(LAUNCH.read_text())
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, 'id', None) == name
    ]


def test_only_launch_modules_are_imported() -> None:
    tree = ast.parse(LAUNCH.read_text())
    modules = {
        n.module if isinstance(n, ast.ImportFrom) else n.names[0].name
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom))
    }
    assert modules <= {
        'os',
        'ament_index_python.packages',
        'launch',
        'launch.actions',
        'launch.substitutions',
        'launch_ros.actions',
        'smolrgpt_core.inference.backends',
    }


def test_arguments_map_to_real_parameters_and_topics() -> None:
    constants = _module_constants()
    params = set(NodeConfig().to_params()) | {'use_sim_time'}
    assert set(constants['PARAMETER_ARGUMENTS'].values()) <= params
    cfg = NodeConfig()
    assert set(constants['TOPIC_ARGUMENTS']) == {
        cfg.topics_rgb,
        cfg.topics_depth,
        cfg.topics_regions,
        cfg.topics_instances,
    }
    declared = {c.args[0].value for c in _calls('DeclareLaunchArgument')}
    used = set(constants['PARAMETER_ARGUMENTS']) | set(constants['TOPIC_ARGUMENTS'].values())
    assert used | {'namespace', 'params_file'} == declared


def test_node_action_names_the_installed_executable() -> None:
    (node,) = _calls('Node')
    kwargs = {k.arg: k.value for k in node.keywords}
    assert kwargs['package'].value == 'smolrgpt_ros'
    assert kwargs['executable'].value == 'spatial_query_node'
    assert (ROOT / 'scripts' / kwargs['executable'].value).is_file()
    cmake = (ROOT / 'CMakeLists.txt').read_text()
    assert 'scripts/spatial_query_node' in cmake and 'install(DIRECTORY launch config' in cmake


@pytest.mark.skipif(
    importlib.util.find_spec('launch_ros') is None,
    reason='launch_ros is not on PyPI; present only with a ROS 2 install',
)
def test_generate_launch_description_on_a_ros_install() -> None:
    spec = importlib.util.spec_from_file_location('warehouse_launch', LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    names = {a.name for a in description.get_launch_arguments()}
    assert {'model', 'backend', 'rgb_topic', 'params_file'} <= names


def _load_launch_module(monkeypatch: pytest.MonkeyPatch) -> object:
    """The launch file as a module; where launch/launch_ros are missing, small stand-ins that
    record what the file builds take their place (the logic under test is the file's own)."""
    import sys
    import types

    if not HAS_LAUNCH_ROS:

        class Recorded:
            def __init__(self, *args: object, **kwargs: object) -> None:
                self.args, self.kwargs = args, kwargs

        class LaunchConfiguration(Recorded):
            def perform(self, context: dict[str, str]) -> str:
                return context[self.args[0]]

        fakes = {
            'launch': {'LaunchDescription': Recorded},
            'launch.actions': {'DeclareLaunchArgument': Recorded, 'OpaqueFunction': Recorded},
            'launch.substitutions': {'LaunchConfiguration': LaunchConfiguration},
            'launch_ros': {},
            'launch_ros.actions': {'Node': Recorded},
            'ament_index_python.packages': {'get_package_share_directory': lambda _: str(ROOT)},
        }
        for name, attrs in fakes.items():
            module = types.ModuleType(name)
            module.__dict__.update(attrs)
            monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location('warehouse_launch', LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_params_file_values_survive_unless_an_argument_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    launch = _load_launch_module(monkeypatch)
    unset = dict.fromkeys(launch.PARAMETER_ARGUMENTS, launch.UNSET)
    # nothing given: the params file alone, so its model.* values stand
    assert launch.node_parameters('robot.yaml', unset, str) == ['robot.yaml']
    given = {**unset, 'backend': 'onnxruntime', 'use_sim_time': 'true'}
    assert launch.node_parameters('robot.yaml', given, lambda arg: f'<{arg}>') == [
        'robot.yaml',
        {'model.backend': '<backend>', 'use_sim_time': '<use_sim_time>'},
    ]


@pytest.mark.skipif(HAS_LAUNCH_ROS, reason='reads the stand-ins, used where launch_ros is absent')
def test_launch_defaults_leave_parameters_to_the_params_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from smolrgpt_core.inference.backends import BACKENDS

    launch = _load_launch_module(monkeypatch)
    description = launch.generate_launch_description()
    declared = {a.args[0]: a.kwargs for a in description.args[0][:-1]}
    for arg in launch.PARAMETER_ARGUMENTS:
        assert declared[arg]['default_value'] == launch.UNSET
    assert all(name in declared['backend']['description'] for name in BACKENDS)
    (node,) = description.args[0][-1].kwargs['function'](
        {**dict.fromkeys(launch.PARAMETER_ARGUMENTS, ''), 'dtype': 'float16'}
    )
    parameters = node.kwargs['parameters']
    assert len(parameters) == 2 and list(parameters[1]) == ['model.dtype']
