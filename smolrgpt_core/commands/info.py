"""``smolrgpt info``: versions of the runtime stack and which inference backends are usable."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import os
from pathlib import Path
import platform
import sys
from typing import Any

from smolrgpt_core import __version__

HELP = 'print versions (torch, ROS 2, onnxruntime, TensorRT) and the usable inference backends'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--json', action='store_true', help='print one JSON object, not text')


def _dist_version(*names: str) -> str | None:
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _torch_status() -> dict[str, Any]:
    if importlib.util.find_spec('torch') is None:
        return {'version': None, 'usable': False, 'reason': 'not installed'}
    import torch

    cuda = torch.cuda.is_available()
    return {
        'version': torch.__version__,
        'usable': True,
        'devices': ['cpu'] + ([f'cuda ({torch.cuda.get_device_name(0)})'] if cuda else []),
        'threads': torch.get_num_threads(),
    }


def _onnxruntime_status() -> dict[str, Any]:
    if importlib.util.find_spec('onnxruntime') is None:
        return {'version': None, 'usable': False, 'reason': 'not installed'}
    import onnxruntime

    return {
        'version': onnxruntime.__version__,
        'usable': True,
        'providers': onnxruntime.get_available_providers(),
    }


def _tensorrt_status() -> dict[str, Any]:
    if importlib.util.find_spec('tensorrt') is None:
        return {'version': None, 'usable': False, 'reason': 'not installed'}
    try:
        trt = importlib.import_module('tensorrt')
    except (ImportError, OSError) as exc:  # a broken CUDA/TensorRT install shows up here
        return {'version': None, 'usable': False, 'reason': f'import failed: {exc}'}
    return {'version': trt.__version__, 'usable': True}


def _interfaces_built() -> bool:
    """Whether the generated smolrgpt_ros.srv is on sys.path (looked up, never imported: the
    core does not import the ROS adapter; the package may span several directories)."""
    return any(
        (Path(entry) / 'smolrgpt_ros' / 'srv' / '__init__.py').is_file() for entry in sys.path
    )


def _ros_status() -> dict[str, Any]:
    if importlib.util.find_spec('rclpy') is None:
        return {'rclpy': None, 'distro': os.environ.get('ROS_DISTRO'), 'interfaces': False}
    interfaces = _interfaces_built()
    return {
        # PyPI wheels are named ros-rclpy; a system install has no dist-info but sets ROS_DISTRO
        'rclpy': _dist_version('ros-rclpy', 'rclpy') or 'system',
        'distro': os.environ.get('ROS_DISTRO')
        or ('jazzy' if _dist_version('ros-jazzy-rclpy') else None),
        'rmw': os.environ.get('RMW_IMPLEMENTATION', 'default'),
        'interfaces': interfaces,
    }


def collect() -> dict[str, Any]:
    return {
        'smolrgpt': __version__,
        'python': sys.version.split()[0],
        'platform': platform.platform(),
        'ros': _ros_status(),
        'backends': {
            'torch': _torch_status(),
            'onnxruntime': _onnxruntime_status(),
            'tensorrt': _tensorrt_status(),
        },
    }


def _format_backend(name: str, status: dict[str, Any]) -> str:
    if not status['usable']:
        return f'{name}: {status["reason"]}'
    extra = status.get('devices') or status.get('providers')
    suffix = f' [{", ".join(extra)}]' if extra else ''
    return f'{name}: {status["version"]} (usable){suffix}'


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    ros = info['ros']
    print(f'smolrgpt {info["smolrgpt"]}  python {info["python"]}  {info["platform"]}')
    if ros['rclpy'] is None:
        print('ros: rclpy not installed (the model, CLI and training work without ROS)')
    else:
        print(
            f'ros: rclpy {ros["rclpy"]}, distro {ros["distro"]}, rmw {ros["rmw"]}, '
            'smolrgpt_ros interfaces '
            + ('built' if ros['interfaces'] else 'NOT built (run make setup)')
        )
    for name, status in info['backends'].items():
        print(_format_backend(name, status))
    return 0
