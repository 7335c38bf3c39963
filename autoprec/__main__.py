"""`python -m autoprec ...`: the same as the `autoprec` command."""

import sys

from autoprec.cli import main

sys.exit(main())
