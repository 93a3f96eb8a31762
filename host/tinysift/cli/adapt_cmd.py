"""``tinysift adapt``: on-device adaptation with a replay set tinysift chose."""

from __future__ import annotations

import typer

from tinysift.cli.app_console import say
from tinysift.cli.checks import seed_option


def register(app: typer.Typer) -> None:
    @app.command("adapt")
    def adapt_cmd(
        scenario: str = typer.Option("new-classes", help="new-classes, shift or user"),
        dataset: str = typer.Option("fashion-mnist", help="the base model's dataset"),
        old_classes: str = typer.Option(None, help="new-classes: the base model's classes "
                                                   "(default 0-7)"),
        new: str = typer.Option(None, help="user: the new data, npz:PATH or folder:PATH "
                                           "(@HxW or @HxWxC at its end: resized as read)"),
        new_per_class: int = typer.Option(100, help="new samples per class the device gets"),
        replay: str = typer.Option("vq", help="pruning method choosing the replay set, or "
                                              "'none' (the forgetting floor)"),
        replay_per_class: int = typer.Option(20, help="replay samples per old class"),
        update: str = typer.Option("head", help="head, bias or last-block"),
        board: str = typer.Option("qemu-mps2-an386", help="an emulated board"),
        steps: int = typer.Option(300, help="on-device optimizer steps"),
        lr: float = typer.Option(0.05, help="the device's SGD learning rate"),
        schedule: str = typer.Option("cosine", help="constant, cosine or step"),
        seed: int = seed_option(0, help="seed of the scenario's samples, the base model "
                                         "and the replay set (the device's: seed + 1)"),
        out: str = typer.Option("runs/adapt", help="run folder (shared by the runs of one "
                                                   "scenario: the base model is cached)"),
    ) -> None:
        """The device learns a new task and keeps the old one with a replay set.

        Trains a base model on the old task, chooses a replay set, and lets the device learn
        the new task with it; prints old/new/all accuracy against the host's joint model."""
        from tinysift.data.scenarios import KINDS
        from tinysift.errors import BudgetError
        from tinysift.pipeline.adapt import AdaptConfig, run_adapt, task_line

        if old_classes is not None and scenario in KINDS and scenario != "new-classes":
            # (was silently ignored; an unknown scenario is AdaptConfig's to refuse, by name)
            raise BudgetError(f"--old-classes applies to the new-classes scenario only: "
                              f"{scenario}'s base model learns every class of its dataset; "
                              "drop --old-classes")
        cfg = AdaptConfig(scenario=scenario, dataset=dataset,
                          old_classes=_classes("0-7" if old_classes is None else old_classes),
                          new=new,
                          new_per_class=new_per_class, replay=replay,
                          replay_per_class=replay_per_class, update=update, board=board,
                          steps=steps, lr=lr, schedule=schedule, seed=seed, out=out)
        doc = run_adapt(cfg, log=say)
        acc, ref = doc["device"]["acc"], doc["host_joint"]
        device = task_line(f"device ({doc['label']})", acc)
        say(f"{device};  host joint model: old {_pct(ref.get('old'))}  new "
            f"{_pct(ref.get('new'))}  all {_pct(ref['all'])};  "
            f"{doc['device']['energy_mj']:.1f} mJ (estimated)")


def _classes(text: str) -> tuple[int, ...]:
    from tinysift.errors import BudgetError

    out: list[int] = []
    try:
        for part in text.split(","):
            lo, dash, hi = part.partition("-")
            if dash and not hi.strip():  # "0-" was read as 0
                raise ValueError(part)
            if int(hi or lo) < int(lo):  # 7-0 named no class: "old_classes must name ..."
                raise ValueError(part)
            if int(hi or lo) > MAX_CLASS:  # 0-2000000000 built a list until memory ran out
                raise BudgetError(f"--old-classes {text}: class {int(hi or lo)} is beyond "
                                  f"any dataset's classes (numbered from 0, at most "
                                  f"{MAX_CLASS}); name the dataset's classes, e.g. 0-7")
            out += list(range(int(lo), int(hi or lo) + 1))
    except ValueError as exc:
        raise BudgetError(f"--old-classes takes numbers and ranges like 0-7 (low-high) or "
                          f"0,2,4; got {text!r}") from exc
    return tuple(sorted(set(out)))  # 0-3,2-5 names classes 2 and 3 once


#: The largest class index --old-classes accepts before the dataset is loaded (the dataset
#: then checks its own range)
MAX_CLASS = 9999


def _pct(v) -> str:
    return "-" if v is None else f"{v:.3f}"
