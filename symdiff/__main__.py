"""``python -m symdiff``: see symdiff.cli."""

import sys

from symdiff.cli import main

sys.exit(main())
