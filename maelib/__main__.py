"""``python -m maelib``: the command line (see :mod:`maelib.cli`)."""

import sys

from .cli import main

sys.exit(main())
