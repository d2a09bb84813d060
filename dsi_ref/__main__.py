"""`python -m dsi_ref`: see dsi_ref.cli."""

import os
import sys

from dsi_ref.cli import main

try:
    code = main()
    sys.stdout.flush()  # inside the try: a closed pipe surfaces here, not at exit
except BrokenPipeError:
    # The reader went away (`... | head`): stop quietly, as a Unix tool does. Point stdout
    # at /dev/null so the interpreter's own flush at exit cannot raise again.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    code = 141  # 128 + SIGPIPE, what a shell reports for a tool killed by a closed pipe
sys.exit(code)
