"""The ``tinysift`` command line: a thin layer over the importable stages."""

from tinysift.cli.app import app, main

__all__ = ["app", "main"]
