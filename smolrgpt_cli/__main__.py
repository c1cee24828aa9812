"""``python -m smolrgpt_cli``: the ``smolrgpt`` command without the console script."""

import sys

from smolrgpt_cli.main import main

sys.exit(main())
