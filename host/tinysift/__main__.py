"""``python -m tinysift``: the ``tinysift`` command, for an environment whose scripts folder is
not on PATH."""

import sys

from tinysift.cli import main

if __name__ == "__main__":
    sys.exit(main())
