"""``python -m tinysift``: the ``tinysift`` command, for an environment whose scripts folder is
not on PATH."""

import sys

from tinysift.cli import main

if __name__ == "__main__":
    # Recorded in run folders as the command that made them (the rerun hints read it) and
    # shown in the help: the command, not this file's path.
    sys.argv[0] = "tinysift"
    sys.exit(main())
