"""``tinysift quantize``, ``tinysift export`` and ``tinysift boards``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from tinysift.cli.app_console import console, print_json
from tinysift.cli.checks import require_run, seed_option

#: held-out test samples `export` draws when --test-samples is not given
EXPORT_TEST_SAMPLES = 200


def register(app: typer.Typer) -> None:
    @app.command("quantize")
    def quantize_cmd(
        run: Path = typer.Option(..., help="run folder with a trained model"),
        qat: bool = typer.Option(False, help="quantization-aware fine-tuning (tfmot) first"),
        representative: int = typer.Option(500, min=1,
                                           help="kept samples used for calibration"),
        seed: int = seed_option(0),
    ) -> None:
        """Full-integer int8 .tflite, checked on the test set with the TFLM runtime."""
        from tinysift.stages.quantize import quantize

        r = quantize(require_run(run), qat=qat, representative=representative, seed=seed)
        tag = " (cached)" if r.skipped else ""
        # QAT trains on: its "drop" is from the model as trained, before QAT (a negative
        # one is QAT's extra training, not a gain from quantizing)
        before = " (as trained, before QAT)" if r.mode == "qat" else ""
        console.print(f"{r.mode}: float{before} {r.float_acc:.4f}  int8 (TFLM) {r.int8_acc:.4f}  "
                      f"drop {100 * r.drop:+.2f} pt  TFLM arena {r.arena_bytes} B  "
                      f".tflite {r.tflite_bytes} B{tag}")

    @app.command("export")
    def export_cmd(
        run: Path = typer.Option(..., help="run folder with model.tflite"),
        board: str = typer.Option("qemu-mps2-an386", help="board profile (tinysift boards)"),
        fit: bool = typer.Option(False, help="shrink the training set to what fits the board: "
                                             "a class-balanced random subset (seeded) of the "
                                             "kept set; for a selection-ordered set, prune "
                                             "again with --keep N"),
        test_samples: int = typer.Option(None, help="held-out int8 test samples to export "
                                                    f"(default {EXPORT_TEST_SAMPLES}; a "
                                                    "smaller test split is exported whole)"),
        db_capacity: int = typer.Option(None, help="samples `db load` can stream into RAM "
                                                   "(default: the exported set's size)"),
        head_only: bool = typer.Option(False, "--head-only",
                                       help="a firmware that trains the head only (update="
                                            "head): without the buffers of update=last-block "
                                            "/ bias, it needs less RAM and flash"),
        seed: int = seed_option(0),
    ) -> None:
        """Write RUN/export/: layer table, int8 sets, golden vectors (memory plan first)."""
        from tinysift.errors import TinysiftError
        from tinysift.runs import Run
        from tinysift.stages.checks import check_trained, refuse_untrained
        from tinysift.stages.export import export

        run = require_run(run)
        try:
            r = export(run, board=board, fit=fit, test_samples=EXPORT_TEST_SAMPLES
                       if test_samples is None else test_samples, db_capacity=db_capacity,
                       seed=seed, backbone_training=not head_only)
        except TinysiftError:
            if not (run / "model.tflite").exists():
                # a folder not trained yet was told to quantize, and quantize then to train;
                # one trained on other data, its own fix (train again, or another folder)
                refuse_untrained(Run(run), f"`tinysift quantize --run {run}`: export reads "
                                 "its model.tflite")
                check_trained(Run(run))
            raise
        print_plan(r.plan)
        console.print(f"exported {r.train_samples} training + {r.test_samples} test samples "
                      f"-> {r.export_dir}{' (cached)' if r.skipped else ''}", markup=False)
        if test_samples is not None and r.test_samples < test_samples:
            # the draw takes the whole split when it is smaller (a user dataset below the
            # default 200 must still export), but a larger number asked for is not kept
            # quiet; the default, not asked for, is
            console.print(f"[yellow]--test-samples {test_samples}: the run's test split has "
                          f"{r.test_samples} samples, all of them exported[/]")
        if head_only:
            console.print("head-only: its firmware trains update=head only (export without "
                          "--head-only for update=last-block / bias)")
        if r.fit:
            f = r.fit
            source = str(((Run(run).stage_info("train") or {}).get("params") or {})
                         .get("source", ""))
            if source.startswith("selection:"):
                console.print(f"--fit: a class-balanced random subset (seed {f['seed']}) of "
                              f"the {f['kept']} kept samples, not the selection's first "
                              f"{f['exported']} ({f['dropped']} dropped; export.json `fit` "
                              f"lists the positions); for a selection-ordered set, prune "
                              f"again with --keep {f['exported']}")
            else:  # no selection to keep the order of (a full set was told of one)
                console.print(f"--fit: a class-balanced random subset (seed {f['seed']}) of "
                              f"the {f['kept']} training samples, {f['exported']} kept "
                              f"({f['dropped']} dropped; export.json `fit` lists the "
                              f"positions); to choose which, prune with --keep "
                              f"{f['exported']} and train on its selection")

    @app.command("boards")
    def boards_cmd(json_out: bool = typer.Option(False, "--json", help="JSON on stdout")
                   ) -> None:
        """List the board profiles and where each is built and run."""
        from tinysift.boards import SUPPORT, board_support, list_boards

        boards = [(b, board_support(b)) for b in list_boards()]
        if json_out:
            print_json([{**b.to_dict(), "support": code, "support_text": SUPPORT[code],
                         "user_profile": b.user_profile} for b, code in boards])
            return
        table = Table(title="boards")
        for col in ("name", "core", "clock", "RAM", "flash", "I active", "counter", "env",
                    "port", "on this project's machines"):
            table.add_column(col)
        for b, code in boards:
            cur = f"{b.active_current_ma:g} mA" + (" (est.)" if b.current_is_estimate
                                                   else " (measured)" if b.user_profile
                                                   else "")
            # a profile's strings are text, not rich markup (`[r0p1]` vanished, `[/x]` was a
            # MarkupError)
            table.add_row(*map(escape, (
                b.name, b.core, f"{b.clock_hz / 1e6:g} MHz", f"{b.ram_bytes // 1024} KB",
                f"{b.flash_bytes // 1024} KB", cur, b.counter, b.pio_env, b.port or "-",
                SUPPORT[code])))
        console.print(table)


def print_plan(plan: dict) -> None:
    # the board's name is a profile's text, not markup (a user's `name = "f411 [rev c]"`
    # lost its "[rev c]", and "[/x]" was a MarkupError after the export had finished)
    table = Table(title=f"memory plan on {escape(plan['board'])}")
    table.add_column("memory")
    table.add_column("item")
    table.add_column("bytes", justify="right")
    for mem in ("flash", "ram"):
        for item, n in plan[mem].items():
            table.add_row(mem, item, f"{n:,}")
        cap = plan[f"{mem}_capacity"]
        table.add_row(mem, "[bold]total / capacity[/]", f"{plan[f'{mem}_total']:,} / {cap:,}")
    console.print(table)
    for line in plan_caveats(plan):
        console.print(line, style="yellow", markup=False)


def plan_caveats(plan: dict) -> list[str]:
    """What the plan's totals leave out: its own ``not_counted`` lines, and the framework of
    a board built with stock PlatformIO (Arduino, ESP-IDF), whose RAM and flash no plan here
    measures (the plan's estimates were measured on the project's own runtimes)."""
    from tinysift.boards import builds_offline, load_board
    from tinysift.errors import TinysiftError

    out = [f"not counted: {item} ({n:,} B)" for item, n in plan.get("not_counted", {}).items()]
    try:
        board = load_board(plan["board"])
    except TinysiftError:
        return out
    if board.port and not builds_offline(board):
        out.append(f"{board.name} builds with its stock framework (port {board.port}): the "
                   "plan does not count that framework's own RAM and flash; leave room for "
                   "them, and check the build's sizes (`tinysift device flash` prints them)")
    return out
