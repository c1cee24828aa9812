"""Where the embedded default model lives, in a source tree, a pip install or a ROS install."""

from __future__ import annotations

import os
from pathlib import Path

EMBEDDED_MODEL_NAME = 'smolrgpt-tiny-synthetic'
ENV_VAR = 'SMOLRGPT_EMBEDDED_MODEL'


def embedded_model_dir() -> Path:
    """The embedded model directory: $SMOLRGPT_EMBEDDED_MODEL, the repository's models/, or
    share/smolrgpt_ros/models/ of a ROS 2 install (CMakeLists.txt installs it there)."""
    candidates = []
    if os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]))
    candidates.append(Path(__file__).resolve().parent.parent / 'models' / EMBEDDED_MODEL_NAME)
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if prefix:
            candidates.append(
                Path(prefix) / 'share' / 'smolrgpt_ros' / 'models' / EMBEDDED_MODEL_NAME
            )
    for path in candidates:
        if (path / 'config.json').is_file():
            return path
    raise FileNotFoundError(
        f'the embedded model {EMBEDDED_MODEL_NAME} was not found (looked in '
        f'{", ".join(str(c) for c in candidates)}); set {ENV_VAR} or pass a checkpoint directory'
    )
