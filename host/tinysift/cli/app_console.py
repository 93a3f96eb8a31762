"""Shared rich consoles (stdout for results, stderr for errors), and plain JSON output."""

from __future__ import annotations

import json
import sys
from typing import Any

from tinysift.progress import make_console

# Not a terminal (a pipe, a file, CI): no width limit, so table cells are never cut or
# wrapped and `tinysift boards | grep NAME` finds the name whatever COLUMNS says.
console = make_console()
err_console = make_console(stderr=True)


def print_json(obj: Any) -> None:
    """``--json`` output: plain JSON on stdout, no markup, no highlighting."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
