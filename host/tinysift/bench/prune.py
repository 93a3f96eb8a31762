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

import time
from dataclasses import dataclass, field
from pathlib import Path

from tinysift.bench.progress import ProgressLog, config_dict, summarize, write_results

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
    trains for the full-data recipe's steps (``subset_epochs`` epochs of all the data), the
    regime of a device that can loop over a tiny set many times: selection quality alone."""

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
                 f"the full data's steps (max({self.min_steps}, {self.subset_epochs} epochs)) "
                 "for every kept set, cosine decay over them (protocol equal-steps; "
                 "tinysift.guided's loop, softmax cross-entropy on logits)")
        return (f"tiny CNN (ds-cnn, width 16), Adam 3e-3 cosine decay, batch 128, {steps}; "
                f"proxy CNN for dynamics-based scores: {self.proxy_epochs} measurements "
                f"(>= 50 steps each); class-balanced budgets")


def results_stem(dataset: str, label_noise: float, protocol: str = "proportional") -> str:
    from tinysift.data.registry import dataset_slug

    stem = f"prune_{dataset_slug(dataset)}"
    stem += f"_noise{label_noise:g}" if label_noise else ""
    return stem + ("" if protocol == "proportional" else f"_{protocol}")


def bench_prune(cfg: PruneBenchConfig, progress: bool = True) -> dict:
    from rich.console import Console

    from tinysift.data import add_label_noise, load_dataset
    from tinysift.errors import TinysiftError
    from tinysift.guided.loop import train_for_passes
    from tinysift.models.training import TrainConfig, evaluate, train_model
    from tinysift.scoring import ScoringContext
    from tinysift.selection import make_method, resolve_keep

    if cfg.seeds < 1:
        raise TinysiftError(f"--seeds must be at least 1 (got {cfg.seeds})")
    if cfg.protocol not in PROTOCOLS:
        raise TinysiftError(f"unknown --protocol {cfg.protocol!r}; choose one of "
                            f"{', '.join(PROTOCOLS)}")
    console = Console(stderr=True)
    wall = time.perf_counter()
    base = load_dataset(cfg.dataset)
    stem = (results_stem(cfg.dataset, cfg.label_noise, cfg.protocol)
            + ("_quick" if cfg.quick else ""))
    log = _progress_log(cfg, base.content_hash)
    if log.done:
        console.print(f"resuming: {len(log.done)} trainings already in {log.path}")
    for seed in range(cfg.seeds):
        seed_start = time.perf_counter()
        fresh_seed = log.is_fresh(seed)
        ds = base
        if cfg.label_noise:
            ds, _ = add_label_noise(base, cfg.label_noise, seed)
        recipe = TrainConfig(epochs=None, min_steps=cfg.min_steps,
                             subset_epochs=cfg.subset_epochs, seed=seed)
        if cfg.protocol == "equal-steps":
            # Every kept set (and the full data) trains for the full data's steps (as
            # sample-passes: steps x batch).
            passes = recipe.total_steps(len(ds.y_train)) * recipe.batch_size

            def fit(x, y, _k=ds.num_classes, _passes=passes, _seed=seed):
                return train_for_passes(x, y, _k, _passes, seed=_seed, progress=progress)
        else:
            def fit(x, y, _k=ds.num_classes, _recipe=recipe):
                return train_model(x, y, _k, train_config=_recipe, progress=progress)
        rec = log.get(seed, "full", "1")
        if rec is None:
            full = fit(ds.x_train, ds.y_train)
            rec = log.add(seed, "full", "1", acc=evaluate(full.model, ds.x_test, ds.y_test),
                          score_seconds=0.0, train_seconds=full.seconds,
                          count=len(ds.y_train))
        console.print(f"[seed {seed}] full data: acc {rec['acc']:.4f} in "
                      f"{rec['train_seconds']:.0f} s")
        cache = (Path(cfg.cache_dir) / results_stem(cfg.dataset, cfg.label_noise)
                 if cfg.cache_dir else None)
        ctx = ScoringContext(ds.x_train, ds.y_train, ds.num_classes, seed=seed,
                             cache_dir=cache, proxy_epochs=cfg.proxy_epochs, progress=progress)
        for name in cfg.methods:
            todo = [k for k in cfg.keeps if log.get(seed, name, f"{k:g}") is None]
            if not todo:
                continue
            ctx.reset_usage()
            before = dict(ctx.timings)
            method = make_method(name, seed=seed, **cfg.method_params.get(name, {}))
            start = time.perf_counter()
            method.fit(ctx)
            wall_fit = time.perf_counter() - start
            # Charge the method the full compute time of every shared item it used, whether
            # this call computed it or an earlier method did.
            computed_here = sum(v for k, v in ctx.timings.items() if k not in before)
            score_seconds = max(0.0, wall_fit - computed_here) + ctx.shared_seconds()
            for keep in todo:
                count = resolve_keep(keep, len(ds.y_train))
                t0 = time.perf_counter()
                idx = method.select(count)
                select_seconds = time.perf_counter() - t0
                res = fit(ds.x_train[idx], ds.y_train[idx])
                acc = evaluate(res.model, ds.x_test, ds.y_test)
                log.add(seed, name, f"{keep:g}", acc=acc,
                        score_seconds=score_seconds + select_seconds,
                        train_seconds=res.seconds, count=int(count))
                console.print(f"[seed {seed}] {name:>10} keep {keep:<5g} ({count:>5}): "
                              f"acc {acc:.4f}  score {score_seconds:6.1f} s  "
                              f"train {res.seconds:5.1f} s")
        if fresh_seed:  # a seed resumed half-way has no honest wall time
            log.add_seed_wall(seed, time.perf_counter() - seed_start)
        results = _results(cfg, log, seed + 1, time.perf_counter() - wall)
        write_outputs(results, Path(cfg.out_dir), stem)
    return results


def _progress_log(cfg: PruneBenchConfig, data_hash: str) -> ProgressLog:
    key = {k: v for k, v in config_dict(cfg).items()
           if k not in ("seeds", "methods", "out_dir", "cache_dir", "progress_dir")}
    if cfg.protocol == "proportional":
        del key["protocol"]  # the logs written before protocols existed stay valid
    key["data"] = data_hash
    # Without a progress folder (--quick) the log stays in memory: nothing to resume.
    return ProgressLog(key, cfg.progress_dir,
                       results_stem(cfg.dataset, cfg.label_noise, cfg.protocol), point="keep")


def _results(cfg: PruneBenchConfig, log: ProgressLog, seeds_done: int,
             wall_seconds: float) -> dict:
    from tinysift.runs import machine_info, package_versions

    methods: dict[str, dict] = {}
    for name in cfg.methods:
        for keep in cfg.keeps:
            runs = [log.get(s, name, f"{keep:g}") for s in range(seeds_done)]
            if all(r is not None for r in runs):
                methods.setdefault(name, {})[f"{keep:g}"] = summarize(
                    runs, ("score_seconds", "train_seconds"), count=True)
    full = summarize([log.get(s, "full", "1") for s in range(seeds_done)], ("train_seconds",))
    return {
        "dataset": cfg.dataset, "label_noise": cfg.label_noise, "protocol": cfg.protocol,
        "keep": [float(k) for k in cfg.keeps], "seeds": seeds_done,
        "seeds_planned": cfg.seeds,
        "full_data_acc": {"mean": full["acc_mean"], "std": full["acc_std"],
                          "runs": full["runs"]},
        "full_data_seconds": full["train_seconds"],
        "recipe": cfg.recipe(), "config": config_dict(cfg),
        "machine": machine_info(), "versions": package_versions(),
        "methods": methods,
        "wall_seconds": wall_seconds,
        "seed_wall_seconds": log.seed_walls(seeds_done),
    }


def write_outputs(results: dict, out: Path, stem: str) -> None:
    """``stem``.json, the markdown table and the plot, all from ``results``."""
    from tinysift.bench.report import prune_markdown, prune_plot

    write_results(results, out, stem, prune_markdown, prune_plot)
