"""The `smolrgpt` command: help, version, info, and the one-line error contract."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from smolrgpt_cli.errors import CommandError
from smolrgpt_cli.main import SUBCOMMANDS, main
from smolrgpt_core import __version__


def test_help_exits_zero_and_lists_every_subcommand() -> None:
    proc = subprocess.run(
        [sys.executable, '-m', 'smolrgpt_cli', '--help'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    for name in SUBCOMMANDS:
        assert name in proc.stdout


@pytest.mark.parametrize('name', sorted(SUBCOMMANDS))
def test_each_subcommand_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([name, '--help'])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith('usage: smolrgpt')


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(['--version'])
    assert capsys.readouterr().out.strip() == f'smolrgpt {__version__}'


def test_unknown_subcommand_fails(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(['no-such-command'])
    assert exc.value.code == 2
    assert 'invalid choice' in capsys.readouterr().err


def test_info_json_reports_backends(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['info', '--json']) == 0
    info = json.loads(capsys.readouterr().out)
    assert info['smolrgpt'] == __version__
    torch_status = info['backends']['torch']
    assert torch_status['usable'] is True and torch_status['version'].startswith('2.')
    # TensorRT cannot be installed on the project machines; where it is, it must say usable
    trt = info['backends']['tensorrt']
    assert trt['usable'] or trt['reason'] == 'not installed' or trt['reason'].startswith('import')


def test_info_text_names_every_backend(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['info']) == 0
    out = capsys.readouterr().out
    for backend in ('torch:', 'onnxruntime:', 'tensorrt:', 'ros:'):
        assert backend in out


def test_command_error_is_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from smolrgpt_core.commands import info

    def failing(_args: object) -> int:
        raise CommandError('checkpoint directory /nope does not exist')

    monkeypatch.setattr(info, 'run', failing)
    assert main(['info']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['smolrgpt info: error: checkpoint directory /nope does not exist']


@pytest.mark.ros
def test_node_with_bad_parameter_exits_with_the_reason() -> None:
    """`ros2 run smolrgpt_ros spatial_query_node` with a bad value: exit 1, reason logged."""
    proc = subprocess.run(
        [
            sys.executable,
            '-m',
            'smolrgpt_ros.spatial_query_node',
            '--ros-args',
            '-p',
            'model.backend:=openvino',
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "parameter model.backend: 'openvino' is not one of" in proc.stderr + proc.stdout
