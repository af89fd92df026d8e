"""``python -m biomedquant.cli``: the same command line as ``biomedquant``."""

import sys

from biomedquant.cli import main

sys.exit(main())
