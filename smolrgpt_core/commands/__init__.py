"""Subcommands of the ``smolrgpt`` CLI (the table is ``smolrgpt_cli.main.SUBCOMMANDS``)."""
