"""Top-level Typer app; every verb lives in a small module of this package."""

from __future__ import annotations

import sys

import typer

from tinysift.cli.app_console import console, err_console  # noqa: E402,F401
from tinysift.errors import TinysiftError

app = typer.Typer(
    name="tinysift",
    help="Prune or condense image datasets for on-device training on microcontrollers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    """Every command module adds its verbs with ``register(app)``, in help order. A module
    missing here is an ImportError at start-up, never a silently absent command."""
    from tinysift.cli import (
        adapt_cmd,
        bench_cmd,
        data_cmd,
        demo_cmd,
        device_cmd,
        engine_cmd,
        prune_cmd,
        quantize_cmd,
        train_cmd,
    )

    for module in (data_cmd, prune_cmd, train_cmd, quantize_cmd, engine_cmd, device_cmd,
                   adapt_cmd, bench_cmd, demo_cmd):
        module.register(app)


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one clear message and exit with status 2."""
    try:
        app(args=argv, standalone_mode=False)
    except TinysiftError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        return 2
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        return int(code or 0)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: finished stages are saved; rerun to resume")
        return 130
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
