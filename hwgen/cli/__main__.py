"""`python -m hwgen.cli ...`: the same as the `hwgen` command."""

import sys

from . import main

sys.exit(main())
