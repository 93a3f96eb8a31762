"""``tinysift demo``: the main job, on the emulated board (what exists of it so far)."""

from __future__ import annotations

from pathlib import Path

import typer

from tinysift.cli.app_console import console


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(
        quick: bool = typer.Option(False, help="digits instead of Fashion-MNIST (< 2 min)"),
        out: Path = typer.Option(Path("runs/demo"), help="run folder"),
    ) -> None:
        """Run the pipeline end to end on the emulated board and report the trade-off."""
        from tinysift.export.stage import export
        from tinysift.models.stage import train
        from tinysift.quantize.stage import quantize

        dataset = "digits" if quick else "fashion-mnist"
        console.print(f"[bold]tinysift demo[/] on {dataset} -> {out}")
        t = train(dataset, out, keep="0.1", epochs=None, seed=0)
        console.print(f"train (random keep 0.1): {t.train_samples} samples, "
                      f"test acc {t.test_acc:.4f}")
        q = quantize(out)
        console.print(f"quantize: int8 (TFLM) {q.int8_acc:.4f}, float {q.float_acc:.4f}")
        e = export(out, fit=True)
        console.print(f"export: {e.train_samples} samples -> {e.export_dir}")
        console.print("[yellow]not yet built:[/] scoring with vq/flow, firmware build for "
                      "qemu-m4, on-device fine-tuning over serial, report.html "
                      "(see the open issues)")
