"""`python -m pox_executor.cli` runs the `pox` command."""

import sys

from pox_executor.cli import main

sys.exit(main())
