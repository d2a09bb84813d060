"""`python -m dsi_ref`: see dsi_ref.cli."""

import sys

from dsi_ref.cli import main

sys.exit(main())
