"""``tinysift bench condense``: condensation methods at K samples per class, same recipe.

Like the pruning bench, every finished training goes to an append-only progress log keyed by
the configuration and the data, the results are rewritten after every seed, and a rerun with
more seeds only adds the missing ones. A full-data training per seed gives the ceiling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from tinysift.bench.progress import (
    ProgressLog,
    distinct,
    results_claim,
    run_record,
    summarize,
    write_results,
)
from tinysift.bench.report import (
    acc_cell,
    full_data_cell,
    origins_lines,
    seeds_phrase,
    wall_phrase,
)

ALL_CONDENSERS = ("random", "herding", "dm", "vq", "vq-real", "flow")


@dataclass
class CondenseBenchConfig:
    dataset: str = "fashion-mnist"
    per_class: tuple[int, ...] = (1, 10, 50)
    methods: tuple[str, ...] = ALL_CONDENSERS
    seeds: int = 3
    min_steps: int = 250
    subset_epochs: int = 3
    out_dir: Path = Path("benchmarks/results")
    progress_dir: Path | None = Path("benchmarks/results/progress")
    quick: bool = False

    def recipe(self) -> str:
        return (f"tiny CNN, Adam 3e-3 cosine, batch 128, steps = max({self.min_steps}, "
                f"{self.subset_epochs} epochs)")


def bench_condense(cfg: CondenseBenchConfig, progress: bool = False, executor=None) -> dict:
    """Run the bench; ``executor`` (:mod:`tinysift.bench.executor`) runs its tasks (default:
    serial, in this process): per seed the full-data training, and one task per method and
    K (condense, then train on the condensed set)."""
    from tinysift.bench.executor import SerialExecutor
    from tinysift.data import dataset_slug, load_dataset
    from tinysift.errors import TinysiftError
    from tinysift.progress import make_console

    if cfg.seeds < 1:
        raise TinysiftError(f"--seeds must be at least 1 (got {cfg.seeds})")
    # a method or K given twice was submitted twice: trained and logged twice
    distinct(cfg.methods, "--methods")
    distinct(cfg.per_class, "--per-class")
    if any(k < 1 for k in cfg.per_class):  # before any training: it failed every method's task
        raise TinysiftError(f"--per-class takes samples per class >= 1, got "
                            f"{','.join(map(str, cfg.per_class))}")
    ex = executor or SerialExecutor()
    console = make_console(stderr=True)
    ds = load_dataset(cfg.dataset)
    stem = f"condense_{dataset_slug(cfg.dataset)}" + ("_quick" if cfg.quick else "")
    log = _progress_log(cfg, ds.content_hash, stem)
    with results_claim(log, Path(cfg.out_dir), stem):
        return _run(cfg, ex, console, log, ds, stem, progress)


def _run(cfg: CondenseBenchConfig, ex, console, log: ProgressLog, ds, stem: str,
         progress: bool) -> dict:
    """The bench's seeds, with its results claimed."""
    from tinysift.bench.driver import SeedData, run_seeds, worker_fields
    from tinysift.models.training import TrainConfig

    if (resuming := log.resuming()) is not None:
        console.print(resuming, markup=False)
    data = SeedData(ds)
    shipped = ex.share(data)
    progress = progress and not ex.remote

    def handler(seed: int, name: str, at: str):
        def handle(done) -> None:
            log.add(seed, name, at, **done.value, **worker_fields(ex, done))
            if name != "full":
                console.print(f"seed {seed}: {name:>8} K={at:<3}: acc {done.value['acc']:.4f}"
                              f" ({done.value['condense_seconds']:.1f} s to condense)",
                              markup=False)
        return handle

    def submit(seed: int) -> list:
        recipe = TrainConfig(epochs=None, min_steps=cfg.min_steps,
                             subset_epochs=cfg.subset_epochs, seed=seed)
        # Serial: one context per seed, its embeddings shared by the methods, as always; a
        # task on a cluster builds its own.
        ctx = None if ex.remote else data.context(seed, progress=progress)
        jobs = [("full", "all", None)] + [(name, str(k), k) for name in cfg.methods
                                          for k in cfg.per_class]
        return [(ex.submit(_condense_point, ctx, shipped, seed, name, k, recipe, progress),
                 handler(seed, name, at), "full data" if k is None else f"{name} K={at}")
                for name, at, k in jobs if log.get(seed, name, at) is None]

    return run_seeds(ex, log, cfg.seeds, submit,
                     lambda seeds, wall: _results(cfg, log, seeds, wall),
                     lambda res: write_outputs(res, Path(cfg.out_dir), stem),
                     say=lambda line: console.print(line, markup=False))


#: What every condenser ran with in the committed logs, written before records carried
#: their method's parameters (the defaults from 2026-11-26 on; flow's rows rerun 2026-12-03
#: with its latent temperature): such a record counts while they are the method's now.
UNSTAMPED_PARAMS = {
    "random": {}, "herding": {"dim": 32, "embedding": "random-conv"},
    "dm": {"depth": 3, "iterations": 400, "learning_rate": 1.0, "real_batch": 64, "width": 64},
    "vq": {"dim": 32, "embedding": "random-conv"},
    "vq-real": {"dim": 32, "embedding": "random-conv"},
    "flow": {"dim": 24, "flow": {"batch": 256, "hidden": 64, "learning_rate": 0.002,
                                 "n_layers": 6, "steps": 600, "weight_decay": 0.0001},
             "temperature": 0.7},
}


#: The record fields a results point gives the mean of (over seeds).
MEAN_FIELDS = ("condense_seconds", "train_seconds")
#: The numbers every progress record holds, which the results read: a record without one
#: trains again.
RECORD_FIELDS = ("acc", *MEAN_FIELDS)


def _progress_log(cfg: CondenseBenchConfig, data_hash: str, stem: str) -> ProgressLog:
    """The bench's log: keyed by the configuration and the data; a record counts while its
    condenser's parameters are today's. A record is one (seed, method, K): ``per_class``
    stays in the key at its default whatever the command's (the committed log's name was
    hashed with it), so adding a K to a finished bench runs only the new points (it started
    a new log and retrained every point, full data included)."""
    from tinysift.condensation.base import make_condenser

    key = {k: v for k, v in asdict(cfg).items()
           if k not in ("seeds", "methods", "out_dir", "progress_dir")}
    key["per_class"] = CondenseBenchConfig.__dataclass_fields__["per_class"].default
    key.update(bench="condense", data=data_hash)
    params = {name: make_condenser(name).plain_params() for name in cfg.methods}
    return ProgressLog(key, cfg.progress_dir, stem, point="per_class", method_params=params,
                       unstamped_params=UNSTAMPED_PARAMS,
                       fields=RECORD_FIELDS, points=cfg.per_class)


def _condense_point(ctx, data, seed: int, name: str, per_class: int | None, recipe,
                    progress: bool) -> dict:
    """Task: condense ``per_class`` samples per class with ``name`` (``full``: no
    condensing, all the data) and train on them; the record the progress log gets.

    The condenser is charged as if it ran alone (:meth:`ScoringContext.charged`):
    its own time plus the full compute time of every shared item (embedding) it used,
    whether it computed it or an earlier method on the seed's shared context did."""
    from tinysift.condensation.base import make_condenser
    from tinysift.models.training import evaluate, train_model

    ds = data.for_seed(seed)
    x, y, secs = ds.x_train, ds.y_train, 0.0
    if name != "full":
        ctx = ctx or data.context(seed, progress=False)
        (x, y), secs, _ = ctx.charged(
            lambda: make_condenser(name, seed=seed).fit(ctx).condense(per_class))
    res = train_model(x, y, ds.num_classes, train_config=recipe, progress=progress)
    return {"acc": evaluate(res.model, ds.x_test, ds.y_test), "condense_seconds": secs,
            "train_seconds": res.seconds}


def _results(cfg: CondenseBenchConfig, log: ProgressLog, seeds_done: int,
             wall_seconds: float) -> dict:
    def summary(runs: list[dict]) -> dict:
        return summarize(runs, MEAN_FIELDS)

    seeds = range(seeds_done)
    rows = {(name, str(k)): [log.get(s, name, str(k)) for s in seeds]
            for name in cfg.methods for k in cfg.per_class}
    methods = {name: {str(k): summary(rows[name, str(k)]) for k in cfg.per_class}
               for name in cfg.methods}
    full_runs = [log.get(s, "full", "all") for s in seeds]
    full = summary(full_runs)
    return {
        "dataset": cfg.dataset, "per_class": list(cfg.per_class), "recipe": cfg.recipe(),
        **run_record(cfg, seeds_done, log, wall_seconds),
        **log.provenance(seeds_done, full_runs + [r for runs in rows.values() for r in runs]),
        "full_data_acc": {"mean": full["acc_mean"], "std": full["acc_std"],
                          "runs": full["runs"]},
        "full_data_seconds": full["train_seconds"],
        "method_params": log.method_params,  # every parameter, the defaults included
        "methods": methods,
    }


def write_outputs(results: dict, out: Path, stem: str) -> None:
    """``stem``.json, the markdown table and the plot, all from ``results``."""
    write_results(results, out, stem, condense_markdown, condense_plot)


def condense_plot(res: dict, path: Path) -> None:
    """Accuracy against samples per class (log x), one line per method, error bars."""
    from tinysift.report.plots import log_scale, pyplot

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 4))
    ks = [int(k) for k in res["per_class"]]
    for name, per in res["methods"].items():
        pts = [per[str(k)] for k in ks]
        style = ({"linewidth": 2.5} if name in ("vq", "vq-real", "flow")
                 else {"linewidth": 1, "alpha": 0.8})
        ax.errorbar(ks, [p["acc_mean"] for p in pts], yerr=[p["acc_std"] for p in pts],
                    marker="o", markersize=3, capsize=2, label=name, **style)
    if "full_data_acc" in res:
        ax.axhline(res["full_data_acc"]["mean"], color="black", linestyle="--", linewidth=1,
                   label="full data")
    log_scale(ax, "x")
    ax.set_xlabel("samples per class")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{res['dataset']}: condensation ({seeds_phrase(res['seeds'])})")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def condense_markdown(res: dict) -> str:
    ks = [str(k) for k in res["per_class"]]
    best = {k: max(m[k]["acc_mean"] for m in res["methods"].values()) for k in ks}
    lines = [f"# Condensation benchmark: {res['dataset']}", "",
             f"Test accuracy (mean ± std, {seeds_phrase(res['seeds'])}) of the tiny CNN "
             "trained on K "
             f"samples per class only. {res['recipe']}." + _full_phrase(res), "",
             "| method | " + " | ".join(f"K={k}" for k in ks) + " | seconds to condense |",
             "|---|" + "---|" * (len(ks) + 1)]
    for name, per in res["methods"].items():
        cells = []
        for k in ks:
            v = per[k]
            cell = acc_cell(v, res["seeds"])
            cells.append(f"**{cell}**" if v["acc_mean"] == best[k] else cell)
        secs = max(v["condense_seconds"] for v in per.values())
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {secs:.1f} |")
    lines += ["", wall_phrase(res), ""] + origins_lines(res)
    return "\n".join(lines)


def _full_phrase(res: dict) -> str:
    if "full_data_acc" not in res:
        return ""
    return (f" Full data: {full_data_cell(res)} "
            f"({res['full_data_seconds']:.0f} s per training).")
