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


def _failing_info(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    from smolrgpt_core.commands import info

    def failing(_args: object) -> int:
        raise exc

    monkeypatch.setattr(info, 'run', failing)


def test_command_error_is_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _failing_info(monkeypatch, CommandError('checkpoint directory /nope\ndoes not exist'))
    assert main(['info']) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == ['smolrgpt info: error: checkpoint directory /nope does not exist']


@pytest.mark.parametrize(
    ('exc', 'line'),
    [
        (
            FileNotFoundError(2, 'No such file or directory', '/data/x.json'),
            'cannot open /data/x.json: No such file or directory',
        ),
        (
            UnicodeDecodeError('utf-8', b'ab\xe9', 2, 3, 'invalid continuation byte'),
            'an input file is not UTF-8 text (invalid continuation byte at byte 2)',
        ),
        (MemoryError(), 'out of memory: an input is larger than this machine can hold'),
        (
            IndexError('list index out of range'),
            'list index out of range (IndexError; run with --verbose for the traceback)',
        ),
        (RuntimeError(''), 'no message (RuntimeError; run with --verbose for the traceback)'),
    ],
)
def test_any_other_failure_is_one_sentence_exit_1(
    exc: BaseException,
    line: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _failing_info(monkeypatch, exc)
    assert main(['info']) == 1
    out, err = capsys.readouterr()
    assert err.splitlines() == [f'smolrgpt info: error: {line}']
    assert 'Traceback' not in out + err


def test_verbose_adds_the_traceback_above_the_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _failing_info(monkeypatch, KeyError('rle'))
    assert main(['--verbose', 'info']) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == 'Traceback (most recent call last):'
    assert err[-2] == "KeyError: 'rle'"
    assert err[-1] == "smolrgpt info: error: 'rle' (KeyError)"


def test_interrupt_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _failing_info(monkeypatch, KeyboardInterrupt())
    assert main(['info']) == 130
    assert capsys.readouterr().err.splitlines() == ['smolrgpt info: interrupted']


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(['ask', '--rgb'])
    assert exc.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        'smolrgpt ask: error: argument --rgb: expected one argument (see smolrgpt ask --help)'
    ]


def test_subcommands_of_an_absent_layer_are_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """A robot installs no training/: the dispatcher offers what is installed."""
    from smolrgpt_cli import main as cli

    monkeypatch.setitem(cli.SUBCOMMANDS, 'robot-only', 'smolrgpt_core.commands.info')
    monkeypatch.setitem(cli.SUBCOMMANDS, 'absent', 'no_such_layer.commands.x')
    commands = cli.build_parser()._subparsers._group_actions[0].choices
    assert 'robot-only' in commands and 'absent' not in commands


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
    assert "parameter model.backend: unknown backend 'openvino'" in proc.stderr + proc.stdout
