"""smolrgpt_core must work on machines without ROS (training clusters, laptops)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Block every ROS module at import time, then import the core and the CLI: any ROS import on
# the way fails loudly instead of silently succeeding on this ROS-equipped machine.
_PROBE = textwrap.dedent(
    """
    import importlib.abc, sys

    ROS_PREFIXES = ('rclpy', 'rosidl', 'rmw', 'builtin_interfaces', 'sensor_msgs',
                    'std_msgs', 'launch', 'ament_index_python', 'rosgraph_msgs')
    # the CLI registers smolrgpt_ros subcommands, which are plain Python until they run;
    # the generated interfaces (msg/srv) need ROS and must not load
    ROS_MODULES = ('smolrgpt_ros.msg', 'smolrgpt_ros.srv')

    def is_ros(name):
        return name.split('.')[0] in ROS_PREFIXES or name.startswith(ROS_MODULES)

    class BlockRos(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if is_ros(name):
                raise ImportError(f'ROS module {name} imported by smolrgpt_core')
            return None

    sys.meta_path.insert(0, BlockRos())
    import smolrgpt_core
    from smolrgpt_cli import main as cli
    cli.build_parser()
    loaded = sorted(m for m in sys.modules if is_ros(m))
    assert not loaded, loaded
    print('ok', smolrgpt_core.__version__)
    """
)


def test_core_imports_with_ros_blocked() -> None:
    proc = subprocess.run(
        [sys.executable, '-c', _PROBE], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('ok ')


def test_core_model_classes_import_with_ros_blocked() -> None:
    probe = _PROBE.replace(
        'cli.build_parser()', 'from smolrgpt_core import SmolRGPT, SmolRGPTConfig'
    )
    proc = subprocess.run(
        [sys.executable, '-c', probe], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
