"""``tinysift demo`` and ``tinysift run PIPELINE.toml``: the whole pipeline, one command."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from tinysift.cli.app_console import console, say
from tinysift.cli.checks import seed_option


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(
        quick: bool = typer.Option(False, help="digits instead of Fashion-MNIST (minutes)"),
        out: str = typer.Option(None, help="run folder (default runs/demo; --quick: "
                                           "runs/demo-quick)"),
        board: str = typer.Option(None, help="an emulated board (default qemu-mps2-an386)"),
        seed: int = seed_option(None, help="the seed of the run: its new samples, base "
                                           "model, replay sets and device (default 0)"),
    ) -> None:
        """The emulated board learns new classes with a replay set; report the trade-off."""
        from tinysift.bench.adapt_demo import AdaptDemoConfig

        cfg = AdaptDemoConfig.quick() if quick else AdaptDemoConfig()
        _run_adapt(cfg.override(out=out, board=board, seed=seed))

    @app.command("run")
    def run_cmd(
        pipeline: Path = typer.Argument(..., help="pipeline TOML (see pipelines/demo.toml)"),
        out: str = typer.Option(None, help="override: run folder"),
        dataset: str = typer.Option(None, help="override: dataset"),
        board: str = typer.Option(None, help="override: board profile"),
        epochs: int = typer.Option(None, min=1, help="override: on-device epochs"),
        seed: int = seed_option(None, help="override: seed"),
        budgets: str = typer.Option(None, help="override: comma-separated sample counts"),
        methods: str = typer.Option(None, help="override: comma-separated methods (an adapt "
                                               "pipeline's replay methods)"),
    ) -> None:
        """Execute a pipeline file; flags override its settings."""
        from tinysift.bench.adapt_demo import AdaptDemoConfig
        from tinysift.cli.checks import positive_ints
        from tinysift.errors import TinysiftError
        from tinysift.pipeline.config import PipelineConfig, read_toml

        kind = read_toml(pipeline).get("kind", "select")
        if kind not in ("adapt", "select"):  # any other kind ran as a select pipeline
            raise TinysiftError(f"{pipeline}: kind = {kind!r} is not a pipeline kind; use "
                                "\"select\" (pipelines/select.toml) or \"adapt\" "
                                "(pipelines/demo.toml)")
        # an empty --methods or --budgets is refused, not read as the file's
        listed = methods.split(",") if methods is not None else None
        if kind == "adapt":
            from tinysift.errors import BudgetError

            if epochs is not None or budgets is not None:
                raise BudgetError(f"{pipeline} is an adapt pipeline (kind = \"adapt\"): it "
                                  "has no --epochs or --budgets; set steps and sizes (replay "
                                  "samples per class) in the file")
            _run_adapt(AdaptDemoConfig.from_toml(pipeline).override(
                out=out, dataset=dataset, board=board, seed=seed, methods=listed))
            return
        try:
            file_cfg = PipelineConfig.from_toml(pipeline)
        except TinysiftError as exc:
            _refuse_missing_kind(pipeline, exc, AdaptDemoConfig)
            raise
        cfg = file_cfg.override(
            out=out, dataset=dataset, board=board, epochs=epochs, seed=seed,
            budgets=list(positive_ints(budgets, "--budgets", "sample counts >= 1"))
            if budgets is not None else None,
            methods=listed)
        _run(cfg)


def _refuse_missing_kind(pipeline, exc: Exception, adapt_config) -> None:
    """A file without ``kind`` is read as a select pipeline: an adapt pipeline's settings
    were then "unknown pipeline settings [...] (did you mean board?)" when the line missing
    was ``kind = "adapt"``. Raises that, where the settings are an adapt pipeline's."""
    from tinysift.errors import TinysiftError
    from tinysift.pipeline.config import read_toml

    if "kind" in read_toml(pipeline) or "unknown pipeline settings" not in str(exc):
        return
    try:
        adapt_config.from_toml(pipeline)
    except TinysiftError as other:
        if "unknown pipeline settings" in str(other):
            return  # neither kind's settings: the select pipeline's refusal stands
    raise TinysiftError(f"{pipeline} has no kind line, so it is read as a select pipeline, "
                        "but its settings are an adapt pipeline's: add kind = \"adapt\" at "
                        "its top (as in pipelines/demo.toml)") from None


def _run_adapt(cfg) -> None:
    from tinysift.bench.adapt_demo import run_adapt_demo
    from tinysift.report.adapt import headers, rows

    console.print(f"[bold]tinysift[/] {escape(f'{cfg.name}: {cfg.dataset}')}, the device "
                  f"learns new classes on {escape(f'{cfg.board} -> {cfg.out}')}")
    summary = run_adapt_demo(cfg, log=say)
    table = Table(title="on-device learning of new classes with a replay set (int8 accuracy, "
                        "energy estimated)")
    for h in headers(summary):
        table.add_column(h, justify="left" if h in ("replay", "update") else "right")
    for row in rows(summary):
        table.add_row(*[str(c) for c in row])
    console.print(table)
    say(summary["headline"])
    say(f"report: {Path(cfg.out) / 'report.html'}  summary: "
        f"{Path(cfg.out) / 'summary.json'}  ({summary['wall_seconds']:.0f} s)")


def _run(cfg) -> None:
    from tinysift.pipeline.run import run_pipeline

    console.print(f"[bold]tinysift[/] "
                  f"{escape(f'{cfg.name}: {cfg.dataset} on {cfg.board} -> {cfg.out}')}")
    summary = run_pipeline(cfg, log=say)
    # "mJ fine-tune" at 43 times one epoch's, for one epoch, read as a mistake
    table = Table(title=escape(f"{summary['dataset']} on {summary['board']}: on-device "
                               f"fine-tuning, {summary['epochs']} epochs (energy estimated)"),
                  caption="mJ fine-tune: the whole bill, the backbone's one pass over the "
                          "samples (features cached) and every epoch of the head")
    from tinysift.report.html import SUMMARY_HEADERS, summary_rows

    for h in SUMMARY_HEADERS:
        table.add_column(h, justify="left" if h == "method" else "right")
    for row in summary_rows(summary):
        table.add_row(*[str(c) for c in row])
    console.print(table)
    say(summary["headline"])
    say(f"report: {Path(cfg.out) / 'report.html'}  summary: "
        f"{Path(cfg.out) / 'summary.json'}  ({summary['wall_seconds']:.0f} s)")
