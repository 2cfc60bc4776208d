"""``python -m xplstm``: the ``xplstm`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
