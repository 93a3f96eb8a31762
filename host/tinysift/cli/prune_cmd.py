"""``tinysift prune`` and ``tinysift condense``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from tinysift.cli.app_console import console
from tinysift.cli.checks import DATASET_HELP, seed_option
from tinysift.data.registry import dataset_slug


def register(app: typer.Typer) -> None:
    @app.command("prune")
    def prune_cmd(
        dataset: str = typer.Option(..., help=DATASET_HELP),
        method: str = typer.Option("vq", help="vq, flow, or a baseline (random, el2n, ...)"),
        keep: str = typer.Option(..., help="fraction in (0,1] or integer count to KEEP"),
        out: Path = typer.Option(None, help="run folder (default "
                                            "runs/prune-<dataset>-<method>-<keep>)"),
        seed: int = seed_option(0),
        label_noise: float = typer.Option(0.0, help="fraction of training labels flipped at "
                                                    "random to another class, in [0, 1)"),
        no_balance: bool = typer.Option(False, "--no-balance",
                                        help="one global budget instead of per-class quotas"),
    ) -> None:
        """Keep an exact budget of the most useful training samples -> RUN/selection.npz."""
        from tinysift.stages.prune import prune

        out = out or Path("runs") / f"prune-{dataset_slug(dataset)}-{method}-{keep}"
        r = prune(dataset, method, keep, out, seed=seed, label_noise=label_noise,
                  balance=not no_balance)
        tag = " (cached)" if r.skipped else ""
        console.print(f"{method}: kept {r.keep_count} of {r.num_samples} "
                      f"({100 * r.keep_count / r.num_samples:.2f}%), scored in "
                      f"{r.score_seconds:.1f} s, selected in {r.select_seconds:.1f} s{tag}")
        # the run folder is the user's text, not markup ("[/]" in it was a MarkupError)
        console.print(f"per class: {r.class_counts}  -> {escape(str(r.run_dir))}/selection.npz")

    @app.command("condense")
    def condense_cmd(
        dataset: str = typer.Option(..., help=DATASET_HELP),
        method: str = typer.Option("vq", help="vq, vq-real, flow, dm, random, herding"),
        per_class: int = typer.Option(..., help="synthetic/representative samples per class"),
        out: Path = typer.Option(None, help="run folder (default "
                                            "runs/condense-<dataset>-<method>-<K>)"),
        seed: int = seed_option(0),
    ) -> None:
        """Synthesize K samples per class -> RUN/condensed.npz."""
        from tinysift.stages.condense import condense

        out = out or Path("runs") / f"condense-{dataset_slug(dataset)}-{method}-{per_class}"
        r = condense(dataset, method, per_class, out, seed=seed)
        console.print(f"{method}: {r.count} samples ({per_class} per class) in "
                      f"{r.seconds:.1f} s -> {escape(str(r.run_dir))}/condensed.npz"
                      f"{' (cached)' if r.skipped else ''}")
