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


def say(line: str) -> None:
    """Print a line of the pipelines' and benches' progress on stdout as it is: their lines
    name the user's paths and data, which rich read as markup (a folder with `[/]` in its
    name ended a finished run in a MarkupError, `[v2]` vanished)."""
    console.print(line, markup=False)


def print_json(obj: Any) -> None:
    """``--json`` output: plain JSON on stdout, no markup, no highlighting."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
