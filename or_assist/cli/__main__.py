"""``python -m or_assist.cli``: the ``or-assist`` command."""

import sys

from or_assist.cli import main

if __name__ == "__main__":
    sys.exit(main())
