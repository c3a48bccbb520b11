"""`python -m hwgen ...`: the same as the `hwgen` command."""

import sys

from .cli import main

sys.exit(main())
