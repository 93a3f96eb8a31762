"""Top-level Typer app; every verb lives in a small module of this package."""

from __future__ import annotations

import sys

import typer

from tinysift.cli.app_console import console, err_console  # noqa: E402,F401
from tinysift.errors import Terminated, TinysiftError

app = typer.Typer(
    name="tinysift",
    help="Prune or condense image datasets for on-device training on microcontrollers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    """``--version``: tinysift's version and the code that runs (the git commit and the
    sources' hash, which a bug report needs: an editable install always says 0.1.0), then
    Python's and the tracked packages' versions, one per line."""
    if not value:
        return
    from tinysift.runs import package_versions

    versions = package_versions()
    code = ", ".join(f"{key} {versions.pop(key)[:12]}" for key in ("git", "tinysift_source")
                     if versions.get(key))
    print(f"tinysift {versions.pop('tinysift')}" + (f" ({code})" if code else ""))
    for name, version in versions.items():
        print(f"  {name} {version}")
    raise typer.Exit(0)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True,
                                       callback=_show_version,
                                       help="Show the versions of tinysift and the packages "
                                            "it runs on, and exit.")) -> None:
    """Prune or condense image datasets for on-device training on microcontrollers."""


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
        upkeep_cmd,
    )

    for module in (data_cmd, prune_cmd, train_cmd, quantize_cmd, engine_cmd, device_cmd,
                   adapt_cmd, bench_cmd, upkeep_cmd, demo_cmd):
        module.register(app)
    _reflow_help(app)


def _reflow_help(typer_app: typer.Typer) -> None:
    """Each command's help from its docstring with every paragraph as one line: typer keeps
    the line breaks of the paragraphs after the first, so on an 80-column terminal they
    broke again mid-line (a ragged "engine check --help")."""
    import inspect

    for info in typer_app.registered_commands:
        if info.help is None and info.callback is not None and info.callback.__doc__:
            info.help = "\n\n".join(" ".join(paragraph.split())
                                     for paragraph in inspect.cleandoc(
                                         info.callback.__doc__).split("\n\n"))
    for group in typer_app.registered_groups:
        _reflow_help(group.typer_instance)


_register()


def main(argv: list[str] | None = None) -> int:
    """Entry point, and the one error path of every command: nothing ends in a traceback.

    Exit status: 0 done; 2 bad input or environment (a TinysiftError: one clear message; out
    of memory) and usage errors (unknown command or option, a bad value); 130 Ctrl-C;
    128 + N when signal N (SIGTERM, SIGHUP) stopped it; 1 an unexpected error (a bug: one
    line, the traceback with TINYSIFT_TRACEBACK=1)."""
    usage, abort = _click_exceptions()
    previous = _install_signal_handlers()
    try:
        _refuse_empty_paths(sys.argv[1:] if argv is None else argv)
        # the name in "Usage:" lines: under `python -m tinysift` click made it
        # "python -m tinysift.tinysift", a command that does not exist
        rv = app(args=argv, prog_name="tinysift", standalone_mode=False)
        if rv == 130:  # typer turns Ctrl-C into Exit(130) and returns its code
            return _interrupted("interrupted (Ctrl-C)", 130)
        return rv if isinstance(rv, int) else 0
    except TinysiftError as exc:
        report_error(str(exc))
        return 2
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        return int(code or 0)
    except KeyboardInterrupt:
        return _interrupted("interrupted (Ctrl-C)", 130)
    except Terminated as exc:
        return _interrupted(f"stopped by signal {exc.signum}", 128 + exc.signum)
    except usage as exc:
        exc.show()
        return exc.exit_code
    except abort:
        return _interrupted("aborted", 130)
    except MemoryError as exc:  # the machine, not a bug: it was "a bug in tinysift" (exit 1)
        report_error(_out_of_memory(exc))
        return 2
    except Exception as exc:  # noqa: BLE001 - the last resort of the one error path
        import os

        if os.environ.get("TINYSIFT_TRACEBACK"):
            raise
        from tinysift.errors import is_out_of_memory

        if is_out_of_memory(exc):  # TensorFlow's: a model too wide for the machine
            report_error(_out_of_memory(exc))
            return 2
        if isinstance(exc, FileNotFoundError) and _cwd_gone():
            # every relative path (the default runs/NAME) failed inside os.path.abspath
            report_error("the current folder no longer exists (deleted or replaced since "
                         "this shell entered it): cd to an existing folder and run again")
            return 2
        text = f": {exc}" if str(exc) else ""  # a bare ``assert``: its type alone
        report_error(f"unexpected {type(exc).__name__}{text} (a bug in tinysift: please "
                     "report it; TINYSIFT_TRACEBACK=1 shows the traceback)")
        return 1
    finally:
        _restore_signal_handlers(previous)


#: Options that name a place (a file or folder: an empty value is the current folder to
#: typer; a serial port: `--port "$PORT"` unset was "cannot open : [Errno 2] ...", after the
#: checks, or auto-detection on `device flash`)
LOCATION_OPTIONS = ("--out", "--run", "--out-dir", "--selection", "--condensed", "--new",
                    "--tflite", "--inputs", "--port")


def _refuse_empty_paths(args: list[str]) -> None:
    """``--out ''`` (an unset shell variable: ``--out "$OUT"``) wrote a run into the current
    folder, and ``--selection ''`` read ./selection.npz: refused before any work."""
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if flag not in LOCATION_OPTIONS:
            continue
        if (eq and not value) or (not eq and i + 1 < len(args) and args[i + 1] == ""):
            raise TinysiftError(f"{flag} is empty (an unset shell variable?); give it a "
                                "value, or leave the option out for its default (`tinysift "
                                "COMMAND --help` says what it takes)")


def _cwd_gone() -> bool:
    """Whether the process's working folder was deleted (``os.getcwd()`` fails)."""
    import os

    try:
        os.getcwd()
    except FileNotFoundError:
        return True
    return False


def _out_of_memory(error: BaseException) -> str:
    from tinysift.errors import out_of_memory_said

    return (f"{out_of_memory_said(error)}: ask for less (a smaller count, dataset, batch or "
            "model: --width) or use a machine with more memory")


def report_error(message: str) -> None:
    """``error: <message>`` on stderr, verbatim: compiler output, paths in brackets and the
    like are text, never rich markup."""
    from rich.text import Text

    err_console.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)


def _interrupted(what: str, code: int) -> int:
    from rich.text import Text

    # (a folder with an earlier complete result keeps it in results.json: the interrupted
    # session's partial results are beside it, which this line did not say)
    err_console.print(Text.assemble((f"{what}", "yellow"), ": finished stages are saved and a "
                                    "device run's partial results are in its results.json, or "
                                    "in results.failed.json where an earlier complete result "
                                    "stays in results.json; rerun the command to resume"),
                      soft_wrap=True)
    return code


def _click_exceptions() -> tuple[tuple, tuple]:
    """Usage errors and aborts of click and of the click that typer vendors."""
    import click

    usage, abort = [click.exceptions.ClickException], [click.exceptions.Abort]
    for module in ("typer._click.exceptions", "typer.exceptions"):
        try:
            mod = __import__(module, fromlist=["_"])
        except ImportError:
            continue
        usage += [mod.ClickException] if hasattr(mod, "ClickException") else []
        abort += [mod.Abort] if hasattr(mod, "Abort") else []
    return tuple(usage), tuple(abort)


def _install_signal_handlers() -> dict:
    """SIGTERM and SIGHUP unwind like Ctrl-C (every ``finally`` runs: the emulator stops,
    results are written) instead of killing the process where it stands."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum, _frame):
        raise Terminated(signum)

    previous = {}
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            previous[sig] = signal.signal(sig, handler)
    return previous


def _restore_signal_handlers(previous: dict) -> None:
    import signal

    for sig, old in previous.items():
        signal.signal(sig, old)


if __name__ == "__main__":
    sys.exit(main())
