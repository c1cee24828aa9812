"""Layers import downwards only, checked on the source (every import, in functions too).

smolrgpt_core (the model) <- smolrgpt_ros (the robot adapter) <- training (never on a robot);
smolrgpt_cli.main names them all, and smolrgpt_cli.errors is a leaf every layer may import.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
import re
import subprocess
import sys

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ('smolrgpt_cli', 'smolrgpt_core', 'smolrgpt_ros', 'training')


@dataclass(frozen=True)
class Import:
    name: str  # dotted, with the imported name for `from X import Y` (X.Y)
    line: int
    module_level: bool  # runs at import time (outside functions and TYPE_CHECKING blocks)


class _Collector(ast.NodeVisitor):
    def __init__(self, package: str) -> None:
        self.package = package  # for relative imports
        self.depth = 0
        self.found: list[Import] = []

    def _add(self, name: str, node: ast.AST) -> None:
        self.found.append(Import(name, node.lineno, self.depth == 0))

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == 'TYPE_CHECKING') or (
            isinstance(test, ast.Attribute) and test.attr == 'TYPE_CHECKING'
        ):
            self.depth += 1  # annotations only: never executed
            for child in node.body:
                self.visit(child)
            self.depth -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ''
        if node.level:
            base = self.package.split('.')[: len(self.package.split('.')) - node.level + 1]
            module = '.'.join([*base, module] if module else base)
        for alias in node.names:
            self._add(f'{module}.{alias.name}', node)

    def visit_Call(self, node: ast.Call) -> None:
        # import_module('x.y') / __import__('x') / find_spec('x.y') (which imports x) by name
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, 'id', '')
        if called in ('import_module', '__import__', 'find_spec') and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                self._add(first.value, node)
        self.generic_visit(node)


def imports_of(source: str, package: str = '') -> list[Import]:
    collector = _Collector(package)
    collector.visit(ast.parse(source))
    return collector.found


def module_names_in_strings(source: str, layers: tuple[str, ...]) -> list[tuple[int, str]]:
    """String constants that are dotted module paths of ``layers`` (a dispatch table's
    entries, handed to importlib later), e.g. 'training.synth.cli'."""
    pattern = re.compile(rf'(?:{"|".join(layers)})(?:\.[A-Za-z_]\w*)+')
    return [
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and pattern.fullmatch(node.value)
    ]


def _files(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob('*.py'))


def _package_of(path: Path) -> str:
    return '.'.join(path.relative_to(ROOT).with_suffix('').parts[:-1])


def _is(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + '.')


def _violations(
    package: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()
) -> list[str]:
    """Imports of ``forbidden`` layers (and their module names in strings) under ``package``."""
    out = []
    for path in _files(package):
        source = path.read_text(encoding='utf-8')
        found = [(i.line, i.name) for i in imports_of(source, _package_of(path))]
        found += module_names_in_strings(source, forbidden)
        for line, name in found:
            if any(_is(name, f) for f in forbidden) and not any(_is(name, a) for a in allowed):
                out.append(f'{path.relative_to(ROOT)}:{line}: {name}')
    return out


def test_the_collector_sees_imports_inside_functions_and_relative_ones() -> None:
    found = imports_of(
        'import a\n'
        'from b.c import d\n'
        'def f():\n'
        '    from training.x import y\n'
        '    importlib.import_module("smolrgpt_ros.bags")\n'
        '    importlib.util.find_spec("smolrgpt_ros.srv")\n'
        'if TYPE_CHECKING:\n'
        '    from e import F\n'
        'from . import sibling\n',
        package='smolrgpt_core.commands',
    )
    assert [(i.name, i.module_level) for i in found] == [
        ('a', True),
        ('b.c.d', True),
        ('training.x.y', False),
        ('smolrgpt_ros.bags', False),
        ('smolrgpt_ros.srv', False),
        ('e.F', False),
        ('smolrgpt_core.commands.sibling', True),
    ]
    table = "T = {'a': 'training.synth.cli', 'b': 'smolrgpt_ros', 'c': 'see training.x here'}"
    assert module_names_in_strings(table, ('training', 'smolrgpt_ros')) == [
        (1, 'training.synth.cli')
    ]


def test_core_imports_neither_ros_nor_training_nor_the_dispatcher() -> None:
    # smolrgpt_cli.errors is the one leaf of the CLI package the core may raise from
    bad = _violations(
        'smolrgpt_core', ('smolrgpt_ros', 'training', 'smolrgpt_cli'), ('smolrgpt_cli.errors',)
    )
    assert not bad, 'smolrgpt_core imports an upper layer:\n' + '\n'.join(bad)


def test_ros_adapter_imports_no_training() -> None:
    bad = _violations('smolrgpt_ros', ('training', 'smolrgpt_cli'), ('smolrgpt_cli.errors',))
    assert not bad, 'smolrgpt_ros imports training or the dispatcher:\n' + '\n'.join(bad)


def test_command_error_module_is_a_leaf() -> None:
    path = ROOT / 'smolrgpt_cli' / 'errors.py'
    names = [i.name for i in imports_of(path.read_text(encoding='utf-8'), 'smolrgpt_cli')]
    assert not [n for n in names if any(_is(n, p) for p in PROJECT)], names


def test_training_imports_the_ros_adapter_only_inside_functions() -> None:
    """So that `import training.x` works on a training cluster without the ROS adapter."""
    bad = []
    for path in _files('training'):
        for imp in imports_of(path.read_text(encoding='utf-8'), _package_of(path)):
            if imp.module_level and _is(imp.name, 'smolrgpt_ros'):
                bad.append(f'{path.relative_to(ROOT)}:{imp.line}: {imp.name}')
    assert not bad, bad


def test_the_scorer_the_robot_uses_needs_no_torch() -> None:
    """replay-eval scores on the robot: the metric is pure Python (no torch, no training)."""
    probe = (
        'import sys, smolrgpt_core.warehouse_metric; '
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'training')))"
    )
    proc = subprocess.run(
        [sys.executable, '-c', probe], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == '[]'
