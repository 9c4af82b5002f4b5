"""``python -m symdiff``: see symdiff.cli."""

import sys

from .cli import main

sys.exit(main())
