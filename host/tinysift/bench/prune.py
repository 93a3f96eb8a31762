"""``tinysift bench prune``: every method at every budget, same recipe, several seeds.

For each seed: one :class:`ScoringContext` is shared by all methods (so the proxy CNN and
embeddings are computed once), but each method is *charged* the compute time of every
shared item it used (cost accounting as if it ran alone). Every kept subset is trained with
the same recipe (:class:`TrainConfig` step rule) and tested on the full test split. A
full-data training with the same recipe gives the reference accuracy and cost.

Every finished training is appended to a progress log beside the cache (keyed by a hash of
the configuration), and the results files are rewritten after every seed: a killed bench
resumes where it stopped, and a partial bench still leaves honest results (``seeds`` says
how many seeds are in them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinysift.bench.progress import (
    ProgressLog,
    config_dict,
    distinct,
    point_labels,
    results_claim,
    run_record,
    summarize,
    write_results,
)

ALL_METHODS = ("random", "el2n", "grand", "forgetting", "aum", "ccs", "moderate", "herding",
               "kcenter", "prototypes", "d2", "vq", "flow")
DEFAULT_KEEPS = (0.5, 0.3, 0.1, 0.03, 0.01)
PROTOCOLS = ("proportional", "equal-steps")
# The equal-steps protocol's defaults: selection quality at the budgets where it matters.
EQUAL_STEPS_KEEPS = (0.1, 0.03, 0.01)
EQUAL_STEPS_METHODS = ("random", "ccs", "d2", "moderate", "herding", "vq", "flow")


@dataclass
class PruneBenchConfig:
    """What to run. The training recipe is the same for every method and budget. Protocol
    ``proportional``: ``max(min_steps, subset_epochs * ceil(n / 128))`` Adam steps (cosine
    decay), so compute shrinks with the kept set. Protocol ``equal-steps``: every kept set
    trains for the full-data recipe's sample-passes (its steps x 128: ``subset_epochs``
    epochs of all the data), the regime of a device that can loop over a tiny set many times:
    selection quality alone. Equal passes, not exactly equal steps: each epoch of a kept set
    ends in a partial batch (+7 % steps at 600 and 1,800 of 60,000 samples), and a set
    smaller than a batch trains in batches of its size (Digits keep 0.03: 2.98x the steps);
    methods at one keep always get the same steps."""

    dataset: str = "fashion-mnist"
    keeps: tuple[float, ...] = DEFAULT_KEEPS
    methods: tuple[str, ...] = ALL_METHODS
    seeds: int = 3
    label_noise: float = 0.0
    min_steps: int = 250
    subset_epochs: int = 3
    proxy_epochs: int = 3
    out_dir: Path = Path("benchmarks/results")
    cache_dir: Path | None = Path("runs/_bench_cache")
    # Every finished training, committed with the results: the raw numbers behind the
    # tables, and what a rerun on any machine resumes from.
    progress_dir: Path | None = Path("benchmarks/results/progress")
    method_params: dict = field(default_factory=dict)
    quick: bool = False
    protocol: str = "proportional"

    def recipe(self) -> str:
        steps = (f"steps = max({self.min_steps}, {self.subset_epochs} epochs of the kept set)"
                 if self.protocol == "proportional" else
                 f"the full data's sample-passes (its steps (max({self.min_steps}, "
                 f"{self.subset_epochs} epochs)) x 128) for every kept set, each epoch's last "
                 "batch partial (so up to 7 % more steps on 60,000-sample sets, a set under "
                 "128 in batches of its size), cosine decay over them (protocol equal-steps; "
                 "tinysift.guided's loop, softmax cross-entropy on logits)")
        return (f"tiny CNN (ds-cnn, width 16), Adam 3e-3 cosine decay, batch 128, {steps}; "
                f"proxy CNN for dynamics-based scores: {self.proxy_epochs} measurements "
                f"(>= 50 steps each); class-balanced budgets")


def results_stem(dataset: str, label_noise: float, protocol: str = "proportional") -> str:
    from tinysift.data.registry import dataset_slug

    stem = f"prune_{dataset_slug(dataset)}"
    stem += f"_noise{label_noise:g}" if label_noise else ""
    return stem + ("" if protocol == "proportional" else f"_{protocol}")


def bench_prune(cfg: PruneBenchConfig, progress: bool = True, executor=None) -> dict:
    """Run the bench; ``executor`` (:mod:`tinysift.bench.executor`) runs its tasks (default:
    serial, in this process)."""
    from tinysift.bench.driver import SeedData, run_seeds
    from tinysift.bench.executor import SerialExecutor
    from tinysift.data import load_dataset
    from tinysift.errors import TinysiftError, did_you_mean
    from tinysift.progress import make_console
    from tinysift.selection import resolve_keep

    if cfg.seeds < 1:
        raise TinysiftError(f"--seeds must be at least 1 (got {cfg.seeds})")
    if cfg.protocol not in PROTOCOLS:
        raise TinysiftError(f"unknown --protocol {cfg.protocol!r}"
                            f"{did_you_mean(cfg.protocol, PROTOCOLS)}; choose one of "
                            f"{', '.join(PROTOCOLS)}")
    point_labels(cfg.keeps, "--keep")  # two keeps of one label would share a record
    distinct(cfg.methods, "--methods")
    ex = executor or SerialExecutor()
    console = make_console(stderr=True)
    base = load_dataset(cfg.dataset)
    for keep in cfg.keeps:  # before any training: a bad keep failed every method's task
        resolve_keep(keep, len(base.y_train))
    stem = (results_stem(cfg.dataset, cfg.label_noise, cfg.protocol)
            + ("_quick" if cfg.quick else ""))
    log = _progress_log(cfg, base.content_hash)
    with results_claim(log, Path(cfg.out_dir), stem):
        if (resuming := log.resuming()) is not None:
            console.print(resuming, markup=False)
        data = SeedData(base, cfg.label_noise)
        tasks = _PruneTasks(cfg, ex, log, console, data, ex.share(data),
                            progress and not ex.remote)
        return run_seeds(ex, log, cfg.seeds, tasks.submit,
                         lambda seeds, wall: _results(cfg, log, seeds, wall),
                         lambda res: write_outputs(res, Path(cfg.out_dir), stem),
                         say=lambda line: console.print(line, markup=False))


class _PruneTasks:
    """One seed's tasks: the full-data training; per method with budgets left, its scoring
    fit, then one training per budget. On a cluster the proxy CNN's training dynamics (shared
    by most methods) are one more task, computed once per seed (or read from the cache)."""

    def __init__(self, cfg: PruneBenchConfig, ex, log: ProgressLog, console, data,
                 shipped, progress: bool) -> None:
        self.cfg, self.ex, self.log, self.console = cfg, ex, log, console
        self.data, self.shipped, self.progress = data, shipped, progress
        self.cache = (Path(cfg.cache_dir) / results_stem(cfg.dataset, cfg.label_noise)
                      if cfg.cache_dir else None)

    def submit(self, seed: int) -> list:
        from tinysift.models.training import TrainConfig
        from tinysift.selection import make_method

        cfg, ex, log = self.cfg, self.ex, self.log
        recipe = (cfg.protocol, TrainConfig(epochs=None, min_steps=cfg.min_steps,
                                            subset_epochs=cfg.subset_epochs, seed=seed))
        tasks: list = []
        rec = log.get(seed, "full", "1")
        if rec is None:
            tasks.append((ex.submit(_train_point, self.shipped, seed, recipe, None, None,
                                    self.progress), self._handler(seed, "full", "1"),
                          "full data"))
        else:
            self._say(rec)
        todo: dict[str, list] = {}
        for name in cfg.methods:
            for k in cfg.keeps:
                if (logged := log.get(seed, name, f"{k:g}")) is None:
                    todo.setdefault(name, []).append(k)
                else:  # said as the full data's row is (a resumed seed showed that one only)
                    self._say(logged)
        if not todo:
            return tasks
        ctx = self.data.context(seed, cache_dir=self.cache, proxy_epochs=cfg.proxy_epochs,
                                progress=self.progress)
        shared = None
        if ex.remote:  # each method's task gets a context of its own, with the shared work
            needs = set().union(*(make_method(n, **cfg.method_params.get(n, {})).needs
                                  for n in todo))
            shared, more = _ship_shared(ex, ctx, self.shipped, seed, cfg.proxy_epochs, needs)
            tasks += more
            ctx = None
        for name, keeps in todo.items():
            score = ex.submit(_score, ctx, self.shipped, seed, cfg.proxy_epochs, shared, name,
                              cfg.method_params.get(name, {}), keeps)
            tasks.append((score, None))
            tasks += [(ex.submit(_train_point, self.shipped, seed, recipe, score, keep,
                                 self.progress), self._handler(seed, name, f"{keep:g}"),
                       f"{name} keep {keep:g}")
                      for keep in keeps]
        return tasks

    def _handler(self, seed: int, name: str, at: str):
        from tinysift.bench.driver import worker_fields

        def handle(done) -> None:
            self._say(self.log.add(seed, name, at, **done.value,
                                   **worker_fields(self.ex, done)))
        return handle

    def _say(self, rec: dict) -> None:
        if rec["method"] == "full":
            text = f"full data: acc {rec['acc']:.4f} in {rec['train_seconds']:.0f} s"
        else:
            text = (f"{rec['method']:>10} keep {rec['keep']:<5} ({rec['count']:>5}): acc "
                    f"{rec['acc']:.4f}  score {rec['score_seconds']:6.1f} s  train "
                    f"{rec['train_seconds']:5.1f} s")
        self.console.print(f"[seed {rec['seed']}] {text}", markup=False)


def _ship_shared(ex, ctx, shipped, seed: int, proxy_epochs: int, needs: set) -> tuple:
    """The seed's shared work for the methods' tasks: from the driver's cache when there,
    else a task (whose result the driver then caches). Returns (handle, tasks)."""
    from tinysift.scoring.context import SHARED_WORK

    needs = sorted(set(needs) & set(SHARED_WORK))
    if not needs:
        return None, []
    if ctx.has_shared(needs):
        return ex.share(ctx.shared_work(needs)), []
    future = ex.submit(_shared_work, shipped, seed, proxy_epochs, needs)
    keep = (lambda done: ctx.adopt(done.value)) if ctx.cache_dir is not None else None
    return future, [(future, keep)]


def _shared_work(data, seed: int, proxy_epochs: int, needs: list) -> dict:
    """Task: the seed's shared work (the proxy CNN's training dynamics) with its compute time."""
    return data.context(seed, proxy_epochs=proxy_epochs, progress=False).shared_work(needs)


def _score(ctx, data, seed: int, proxy_epochs: int, shared, name: str, params: dict,
           keeps: list) -> dict:
    """Task: fit one method and select its kept indices at every budget. ``ctx`` is the
    seed's shared context (serial) or None (a task: a context of its own, given ``shared``).

    The method is charged the full compute time of every shared item it used, whether this
    call computed it or an earlier method (or another task) did: cost as if it ran alone."""
    from tinysift.selection import make_method, resolve_keep

    if ctx is None:
        ctx = data.context(seed, proxy_epochs=proxy_epochs, progress=False)
        if shared:
            ctx.adopt(shared)
    method = make_method(name, seed=seed, **params)
    _, score_seconds, fit_used = ctx.charged(lambda: method.fit(ctx))
    picks = {}
    for keep in keeps:
        count = resolve_keep(keep, ctx.num_samples)
        # Shared work a selection needs beyond the fit's (vq's hard cut reads the proxy CNN's
        # dynamics only at small keeps) is charged to that point in full, like the fit's.
        idx, seconds, _ = ctx.charged(lambda c=count: method.select(c), already=fit_used)
        picks[keep] = (idx, seconds)
    return {"score_seconds": score_seconds, "picks": picks}


def _train_point(data, seed: int, recipe: tuple, score: dict | None, keep, progress: bool
                 ) -> dict:
    """Task: train on the kept samples at ``keep`` (all the data when ``score`` is None) and
    test on the full test split; the record the progress log gets."""
    from tinysift.guided.loop import train_for_passes
    from tinysift.models.training import evaluate, train_model

    protocol, config = recipe
    ds = data.for_seed(seed)
    x, y, charged = ds.x_train, ds.y_train, 0.0
    if score is not None:
        idx, select_seconds = score["picks"][keep]
        x, y, charged = x[idx], y[idx], score["score_seconds"] + select_seconds
    if protocol == "equal-steps":
        # Every kept set (and the full data) trains for the full data's steps (as
        # sample-passes: steps x batch).
        passes = config.total_steps(len(ds.y_train)) * config.batch_size
        res = train_for_passes(x, y, ds.num_classes, passes, seed=config.seed,
                               progress=progress)
    else:
        res = train_model(x, y, ds.num_classes, train_config=config, progress=progress)
    return {"acc": evaluate(res.model, ds.x_test, ds.y_test), "score_seconds": charged,
            "train_seconds": res.seconds, "count": len(y)}


#: The record fields a results point gives the mean of (over seeds).
MEAN_FIELDS = ("score_seconds", "train_seconds")
#: The numbers every progress record holds (the full data's too), which the results and the
#: lines said on resuming read: a record without one trains again.
RECORD_FIELDS = ("acc", "count", *MEAN_FIELDS)


def _progress_log(cfg: PruneBenchConfig, data_hash: str) -> ProgressLog:
    # A record is one (seed, method, keep): adding a budget or a method to a finished bench
    # runs only the new points.
    key = {k: v for k, v in config_dict(cfg).items()
           if k not in ("seeds", "methods", "keeps", "out_dir", "cache_dir", "progress_dir")}
    if cfg.protocol == "proportional":
        del key["protocol"]  # the logs written before protocols existed stay valid
    key["data"] = data_hash
    # Without a progress folder (--quick) the log stays in memory: nothing to resume.
    return ProgressLog(key, cfg.progress_dir,
                       results_stem(cfg.dataset, cfg.label_noise, cfg.protocol), point="keep",
                       method_params=bench_method_params(cfg),
                       fields=RECORD_FIELDS)


def bench_method_params(cfg: PruneBenchConfig) -> dict[str, dict]:
    """Per method, the parameters it runs with (defaults included, the seed left out): a
    logged record counts as done only while they match, so changing a method's defaults
    reruns that method's points and no other."""
    from tinysift.selection import make_method

    return {name: make_method(name, **cfg.method_params.get(name, {})).plain_params()
            for name in cfg.methods}


def cost_ratio(cfg: PruneBenchConfig, rec: dict, full_count: int) -> float:
    """A point's cost (scoring + training) over the full data's training, both at the speed
    the point's own training ran: ``steps / full_steps x (score + train) / train``.

    The same as the plain ratio of seconds when both ran on one machine; unlike it, it stays
    right when the points of one table were measured on machines of different speeds (the
    guided ledger converts fits into sample-passes the same way)."""
    from tinysift.models.training import TrainConfig

    config = TrainConfig(epochs=None, min_steps=cfg.min_steps, subset_epochs=cfg.subset_epochs)
    full_steps = config.total_steps(full_count)
    steps = full_steps if cfg.protocol == "equal-steps" else config.total_steps(rec["count"])
    train = max(rec["train_seconds"], 1e-9)
    return steps / full_steps * (rec["score_seconds"] + train) / train


def _results(cfg: PruneBenchConfig, log: ProgressLog, seeds_done: int,
             wall_seconds: float) -> dict:
    full_runs = [log.get(s, "full", "1") for s in range(seeds_done)]
    rows = list(full_runs)
    methods: dict[str, dict] = {}
    for name in cfg.methods:
        for keep in cfg.keeps:
            runs = [log.get(s, name, f"{keep:g}") for s in range(seeds_done)]
            if all(r is not None for r in runs):
                rows += runs
                methods.setdefault(name, {})[f"{keep:g}"] = summarize(
                    runs, MEAN_FIELDS, count=True)
                methods[name][f"{keep:g}"]["cost_ratio"] = float(np.mean(
                    [cost_ratio(cfg, r, f["count"]) for r, f in zip(runs, full_runs,
                                                                  strict=True)]))
    full = summarize(full_runs, ("train_seconds",))
    return {
        "dataset": cfg.dataset, "label_noise": cfg.label_noise, "protocol": cfg.protocol,
        "keep": [float(k) for k in cfg.keeps],
        **run_record(cfg, seeds_done, log, wall_seconds),
        "full_data_acc": {"mean": full["acc_mean"], "std": full["acc_std"],
                          "runs": full["runs"]},
        "full_data_seconds": full["train_seconds"],
        "recipe": cfg.recipe(),
        **log.provenance(seeds_done, rows),
        "method_params": log.method_params,  # every parameter, the defaults included
        "methods": methods,
    }


def write_outputs(results: dict, out: Path, stem: str) -> None:
    """``stem``.json, the markdown table and the plot, all from ``results``."""
    from tinysift.bench.report import prune_markdown, prune_plot

    write_results(results, out, stem, prune_markdown, prune_plot)
