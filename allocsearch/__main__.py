"""``python -m allocsearch``: the command line, as the ``allocsearch`` script runs it."""

import sys

from allocsearch.cli import main

if __name__ == "__main__":
    sys.exit(main())
