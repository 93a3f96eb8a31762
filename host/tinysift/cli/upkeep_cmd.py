"""``tinysift bench upkeep``: on-device replay upkeep (``db stream``), reservoir against
coverage; a verb of the ``bench`` group, in its own module."""

from __future__ import annotations

from pathlib import Path

import typer

from tinysift.cli.app_console import say
from tinysift.cli.checks import positive_ints


def register(root: typer.Typer) -> None:
    from tinysift.cli.bench_cmd import app as bench

    bench.command("upkeep")(upkeep_cmd)


def upkeep_cmd(
    scenario: str = typer.Option(None, help="shift (MNIST -> the digits) or new-classes "
                                            "(default shift)"),
    dataset: str = typer.Option(None, help="base dataset (shift: mnist; new-classes: "
                                           "fashion-mnist)"),
    seeds: int = typer.Option(None, min=1, help="seeds 0..N-1 (default 3)"),
    buffers: str = typer.Option(None, help="buffer samples per streamed class (default 5,10)"),
    updates: str = typer.Option(None, help="comma-separated: head, last-block, bias "
                                           "(default head)"),
    vq_per_class: int = typer.Option(None, min=1, help="codewords per class of the exported "
                                                       "codebook (default 4)"),
    replay: str = typer.Option(None, help="method choosing the exported replay set "
                                          "(default random)"),
    replay_per_class: int = typer.Option(None, min=0, help="exported replay samples per old "
                                                           "class (default 10)"),
    new_per_class: int = typer.Option(None, min=1, help="new samples per class streamed "
                                                        "(default: every one there is)"),
    steps: int = typer.Option(None, min=1, help="on-device optimizer steps (default 300)"),
    base_epochs: int = typer.Option(None, min=1, help="epochs of the base model on the host "
                                                      "(default 10)"),
    board: str = typer.Option("qemu-mps2-an386", help="an emulated board"),
    quick: bool = typer.Option(False, help="digits, new-classes, 1 seed, buffer 5, head"),
    out_dir: Path = typer.Option(Path("benchmarks/results"),
                                 help="folder of the results files (JSON, markdown, plot)"),
) -> None:
    """Replay upkeep on the device: a buffer of a sample stream, reservoir vs VQ coverage.

    Stream every new sample, keep a buffer by reservoir sampling or by VQ coverage, train
    on it plus the exported replay set."""
    from tinysift.bench.upkeep import UpkeepBenchConfig, bench_upkeep
    from tinysift.cli.adapt_cmd import _classes
    from tinysift.cli.bench_cmd import _bench_scenario, _out_dir_ok, _quick_alone
    from tinysift.pipeline.upkeep import EVERY, UpkeepConfig

    _out_dir_ok(out_dir)
    # None is "not given": --quick refuses what it would ignore (it ignored them silently)
    _quick_alone(quick, "digits, new-classes, 1 seed, buffer 5, head", scenario=scenario,
                 dataset=dataset, seeds=seeds, buffers=buffers, updates=updates,
                 vq_per_class=vq_per_class, replay=replay, replay_per_class=replay_per_class,
                 new_per_class=new_per_class, steps=steps, base_epochs=base_epochs)
    # an empty --buffers is refused, not read as the default
    buffer_sizes = positive_ints("5,10" if buffers is None else buffers, "--buffers",
                                 "buffer samples per class >= 1")
    if quick:
        up = UpkeepConfig(scenario="new-classes", dataset="digits", old_classes=_classes("0-7"),
                          new_per_class=EVERY, replay="random", replay_per_class=5,
                          vq_per_class=4, buffers=(5,), updates=("head",), steps=150,
                          base_epochs=30, test_per_class=15, board=board)
        cfg = UpkeepBenchConfig(up, seeds=1, out_dir=out_dir, progress_dir=None, quick=True)
    else:
        scenario = _bench_scenario(scenario, "shift", "upkeep")
        shift = scenario == "shift"
        # what is not given keeps UpkeepConfig's and UpkeepBenchConfig's defaults (the replay
        # set's are the bench's own: random, 10 per class, not an adaptation's vq, 20)
        given = {k: v for k, v in (
            ("vq_per_class", vq_per_class), ("steps", steps), ("base_epochs", base_epochs),
            ("updates", None if updates is None else tuple(updates.split(","))))
            if v is not None}
        up = UpkeepConfig(
            scenario=scenario, dataset=dataset or ("mnist" if shift else "fashion-mnist"),
            old_classes=_classes("0-9" if shift else "0-7"),
            new_per_class=EVERY if new_per_class is None else new_per_class,
            replay="random" if replay is None else replay,
            replay_per_class=10 if replay_per_class is None else replay_per_class,
            buffers=buffer_sizes, board=board, **given)
        cfg = UpkeepBenchConfig(up, out_dir=out_dir, progress_dir=out_dir / "progress",
                                **({} if seeds is None else {"seeds": seeds}))
    res = bench_upkeep(cfg, log=say)
    say(f"wrote {out_dir}/{cfg.stem()}.* ({res['wall_seconds'] / 60:.1f} min)")
