"""``python -m facegate.cli``."""

import sys

from facegate.cli import main

sys.exit(main())
