"""SmolRGPT core: the region-aware RGB-D vision-language model, free of ROS.

Public names are resolved lazily so that ``import smolrgpt_core`` (and ``smolrgpt --help``)
stays cheap and does not pull in torch until a model is actually needed.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = '0.3.0'

# public name -> module that defines it
_LAZY = {
    'SmolRGPT': 'smolrgpt_core.modeling.smolrgpt',
    'SmolRGPTConfig': 'smolrgpt_core.config',
}

__all__ = ['__version__', *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'smolrgpt_core' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
