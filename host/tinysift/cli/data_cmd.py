"""``tinysift data list`` and ``tinysift data info NAME``."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from tinysift.cli.app_console import console, print_json
from tinysift.cli.checks import DATASET_HELP

app = typer.Typer(help="Datasets: list what exists here, inspect one.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="data")


@app.command("list")
def list_cmd(json_out: bool = typer.Option(False, "--json", help="JSON on stdout")) -> None:
    """List the registered datasets, their sizes and whether each is available here."""
    from tinysift.data import list_datasets

    if json_out:
        print_json([{"name": i.name, "description": i.description, "shape": list(i.shape),
                     "train": i.train, "test": i.test, "available": i.available(),
                     "install_hint": i.install_hint} for i in list_datasets()])
        return
    table = Table(title="datasets")
    for col in ("name", "shape", "train", "test", "available here", "how to get it"):
        table.add_column(col)
    for info in list_datasets():
        ok = info.available()
        table.add_row(info.name, "x".join(map(str, info.shape)), str(info.train), str(info.test),
                      "[green]yes[/]" if ok else "[red]no[/]", info.install_hint)
    table.add_row("npz:PATH", "any", "-", "-", "user data", "x, y [, x_test, y_test]")
    table.add_row("folder:PATH", "any", "-", "-", "user data", "one sub-folder per class")
    table.caption = ("any name may end in @HxW or @HxWxC (mnist@14x14, folder:PATH@32x32x1): "
                     "the images resized to H x W (and made C channels, 1 gray or 3 RGB) as "
                     "they are read")
    console.print(table)


@app.command("info")
def info_cmd(name: str = typer.Argument(..., help=DATASET_HELP),
             download: bool = typer.Option(False, help="allow a Keras download if missing"),
             json_out: bool = typer.Option(False, "--json", help="JSON on stdout")):
    """Load a dataset and print its split sizes, shape, hash and per-class counts."""
    from tinysift.data import load_dataset

    ds = load_dataset(name, allow_download=download)
    if json_out:
        tr, te = ds.class_counts("train"), ds.class_counts("test")
        print_json({"name": ds.name, "source": ds.source, "train": len(ds.y_train),
                    "test": len(ds.y_test), "shape": list(ds.input_shape),
                    "num_classes": ds.num_classes, "content_hash": ds.content_hash,
                    "classes": [{"index": c, "name": n, "train": int(tr[c]),
                                 "test": int(te[c])} for c, n in enumerate(ds.class_names)],
                    "warnings": ds.warnings()})
        return
    # names, paths and class names are the user's text, not markup: "[/]" in one was an
    # unexpected MarkupError and "[v2]" vanished from a path
    console.print(f"[bold]{escape(ds.name)}[/]  source: {escape(ds.source)}")
    console.print(f"train {len(ds.y_train)}  test {len(ds.y_test)}  "
                  f"image {'x'.join(map(str, ds.input_shape))} uint8  "
                  f"classes {ds.num_classes}  hash {ds.content_hash}")
    table = Table()
    for col in ("class", "name", "train", "test"):
        table.add_column(col, justify="right" if col in ("train", "test") else "left")
    tr, te = ds.class_counts("train"), ds.class_counts("test")
    for c, cname in enumerate(ds.class_names):
        table.add_row(str(c), escape(cname), str(tr[c]), str(te[c]))
    console.print(table)
    for warning in ds.warnings():
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", soft_wrap=True)
