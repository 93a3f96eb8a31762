"""``tinysift train``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from tinysift.cli.app_console import console, err_console
from tinysift.cli.checks import DATASET_HELP, json_object, seed_option


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        dataset: str = typer.Option(..., help=DATASET_HELP),
        out: Path = typer.Option(None, help="run folder (default runs/train-<dataset>)"),
        keep: str = typer.Option(None, help="fraction in (0,1] or integer count to KEEP: a "
                                            "random class-balanced subset (seeded); with "
                                            "--selection, its keep count"),
        selection: Path = typer.Option(None, help="selection.npz (or its run folder)"),
        condensed: Path = typer.Option(None, help="condensed.npz (or its run folder)"),
        epochs: int = typer.Option(None, help="passes over the data (default: 10 on the full "
                                              "set; on a kept or condensed set the subset "
                                              "step rule, max(500 steps, 6 epochs)); 0 = that "
                                              "rule"),
        seed: int = seed_option(0),
        width: int = typer.Option(16, min=1, help="stem channels of the tiny CNN"),
        variant: str = typer.Option("ds-cnn", help="ds-cnn, conv-maxpool or resnet8 "
                                                   "(MLPerf Tiny's residual ResNet-8)"),
        guided: str = typer.Option(None, help="guided training: full-cut, rs2, infobatch, "
                                              "ucb, vq or flow choose each epoch's data"),
        budget: float = typer.Option(None, help="with --guided: fraction in (0,1] of the "
                                                "full-data recipe's sample-passes"),
        guided_params: str = typer.Option(None, help="with --guided: the method's parameters "
                                                     "as a JSON object, e.g. '{\"judge\": "
                                                     "\"knn\"}' (flow's label judge)"),
        keep_steps: bool = typer.Option(False, help="with --guided: train in batches of "
                                        "--batch x budget, as many optimizer steps as the "
                                        "full-data recipe"),
        batch: int = typer.Option(128, help="the recipe's batch (with --guided: the full-data "
                                            "recipe's; the benchmarks use 128)"),
        label_noise: float = typer.Option(0.0, help="fraction of training labels flipped at "
                                                    "random to another class, in [0, 1)"),
    ) -> None:
        """Train the tiny CNN (int8-ready, Keras 2) and record it in the run folder."""
        from tinysift.data import dataset_slug
        from tinysift.stages.train import train

        params = json_object("--guided-params", guided_params)
        out = out or Path("runs") / f"train-{dataset_slug(dataset)}"
        subset = keep is not None or selection is not None or condensed is not None
        if epochs is None:
            epochs = 0 if subset else 10
        res = train(dataset, out, keep=keep, selection=selection, condensed=condensed,
                    epochs=epochs if epochs != 0 else None, seed=seed, width=width,
                    variant=variant, guided=guided, budget=budget, label_noise=label_noise,
                    guided_params=params,
                    keep_steps=keep_steps, batch=batch)
        for warning in res.warnings:
            from rich.text import Text

            err_console.print(Text.assemble(("warning:", "yellow"), " ", warning),
                              soft_wrap=True)
        tag = " (cached: inputs unchanged)" if res.skipped else ""
        console.print(f"trained on {res.train_samples} samples in {res.seconds:.1f} s "
                      f"({res.steps} steps){tag}")
        console.print(f"test accuracy [bold]{res.test_acc:.4f}[/]  params {res.params}  "
                      f"MACs/sample {res.macs_per_sample}  -> "
                      f"{escape(str(res.run_dir))}/model.keras")  # a path, not markup
