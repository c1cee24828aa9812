"""Subcommands of the ``smolrgpt`` CLI (see ``smolrgpt_core.cli``)."""
