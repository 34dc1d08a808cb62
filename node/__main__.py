"""`python -m node` runs the p2p-node command."""

import sys

from .cli import main

sys.exit(main())
