"""The geometry toolkit stays light: numpy at import time, OpenCV only when measuring."""

from __future__ import annotations

import ast
from pathlib import Path
import subprocess
import sys

ROOT = Path(__file__).resolve().parents[2]


def test_import_pulls_in_neither_opencv_nor_torch_nor_training() -> None:
    probe = (
        'import sys, smolrgpt_core.geometry, smolrgpt_core.geometry.relations; '
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'cv2', 'torch', 'training', "
        "'smolrgpt_ros', 'yaml'}))"
    )
    proc = subprocess.run(
        [sys.executable, '-c', probe], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == '[]'


def test_geometry_imports_only_numpy_opencv_yaml_and_the_core() -> None:
    """Every import, inside functions too (tests/test_layers.py checks the whole core)."""
    allowed = {'numpy', 'cv2', 'yaml', 'smolrgpt_core', '__future__'}
    stdlib = set(sys.stdlib_module_names)
    found = set()
    for path in sorted((ROOT / 'smolrgpt_core' / 'geometry').glob('*.py')):
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if isinstance(node, ast.Import):
                found |= {(path.name, a.name.split('.')[0]) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add((path.name, node.module.split('.')[0]))
    bad = sorted((f, m) for f, m in found if m not in allowed and m not in stdlib)
    assert not bad, bad
    assert ('camera.py', 'cv2') in found  # the check sees imports inside functions
