"""Project-wide pytest setup: ROS isolation and marker-based skips.

ROS tests use real rclpy and Fast DDS, restricted to this machine (localhost discovery) and to
a domain id unique to this test run, so parallel runs and other ROS graphs never cross-talk.
The environment is set before any test imports rclpy, because the context reads it at init.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault('ROS_DOMAIN_ID', str(1 + os.getpid() % 100))  # valid ids: 0..101
if os.environ.get('ROS_DISTRO') in ('humble', 'iron'):
    os.environ.setdefault('ROS_LOCALHOST_ONLY', '1')  # deprecated (and overriding) from Jazzy
else:
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')


def _ros_unavailable_reason() -> str | None:
    if importlib.util.find_spec('rclpy') is None:
        return 'rclpy is not installed (run `make setup`, or source a ROS 2 install)'
    try:
        from smolrgpt_ros.srv import SpatialQuery  # noqa: F401
    except ImportError as exc:
        return f'smolrgpt_ros interfaces are not built ({exc}); run `make setup` or colcon build'
    return None


def _cuda_unavailable_reason() -> str | None:
    if importlib.util.find_spec('torch') is None:
        return 'torch is not installed'
    import torch

    return None if torch.cuda.is_available() else 'no CUDA GPU on this machine'


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reasons = {}
    for item in items:
        for marker in ('ros', 'gpu', 'tensorrt'):
            if item.get_closest_marker(marker) is None:
                continue
            if marker not in reasons:
                if marker == 'ros':
                    reasons[marker] = _ros_unavailable_reason()
                elif marker == 'gpu':
                    reasons[marker] = _cuda_unavailable_reason()
                else:
                    reasons[marker] = (
                        'TensorRT is not installed'
                        if importlib.util.find_spec('tensorrt') is None
                        else _cuda_unavailable_reason()
                    )
            if reasons[marker]:
                item.add_marker(pytest.mark.skip(reason=reasons[marker]))


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete tiny checkpoint directory (see smolrgpt_core/testing.py)."""
    from smolrgpt_core.testing import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp('tiny_checkpoint'))
