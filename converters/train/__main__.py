"""``python -m facegate.converters.train``."""

import sys

from facegate.converters.train.command import main

sys.exit(main())
