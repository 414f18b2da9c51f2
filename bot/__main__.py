"""`python -m bot`: the same command line as the `salespulse` script (bot.cli)."""

import sys

from bot.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
