"""``CommandError``: the failure a subcommand reports to its user as one line.

A leaf module: it imports nothing from the project, so every layer (the model core, the ROS
adapter, training) may raise it without depending on the command dispatcher.
"""

from __future__ import annotations


class CommandError(Exception):
    """A user-facing failure: printed as ``smolrgpt <cmd>: error: <message>``, exit code 2."""
