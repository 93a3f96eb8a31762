"""``tinysift bench guided``: guided training at fixed budgets against its controls.

For each seed: the full-data recipe (``full-cut`` at budget 1: every epoch on all the data,
the same loop) gives the reference accuracy; then every method trains at every budget (a
fraction of the recipe's sample-passes, every overhead charged). A seed fixes the
initialization and the run's random stream for every method (paired seeds), so the tables
give each method's paired difference to ``full-cut``, ``rs2`` and ``infobatch`` with a 95%
interval. Test accuracy is also measured after every epoch on a fixed stratified test subset
(not charged), for the accuracy-against-sample-passes curves.

Every finished training is appended to a progress log (committed with the results), and the
results files are rewritten after every seed: a killed bench resumes where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tinysift.bench.progress import (
    ProgressLog,
    append_json_line,
    config_dict,
    distinct,
    point_labels,
    read_json_lines,
    results_claim,
    run_record,
    summarize,
    write_results,
)

ALL_GUIDED = ("full-cut", "rs2", "infobatch", "ucb", "vq", "flow")
CONTROLS = ("full-cut", "rs2", "infobatch")
DEFAULT_BUDGETS = (0.3, 0.5, 0.7)
CURVE_TEST_SAMPLES = 2000
#: A run that spent more than this times its budget is flagged in the results (a fit inside
#: a sampler's plan is charged once it ran: one costing more than the budget had left ends
#: the run over it; the samplers are unchanged so that committed results stay valid).
OVER_BUDGET = 1.02


@dataclass
class GuidedBenchConfig:
    """What to run; the recipe is the full-data one (``epochs`` epochs of Adam 3e-3 with
    cosine decay, batch ``batch``), of which every budget is a fraction."""

    dataset: str = "fashion-mnist"
    budgets: tuple[float, ...] = DEFAULT_BUDGETS
    methods: tuple[str, ...] = ALL_GUIDED
    seeds: int = 5
    label_noise: float = 0.0
    epochs: int = 10
    out_dir: Path = Path("benchmarks/results")
    progress_dir: Path | None = Path("benchmarks/results/progress")
    method_params: dict = field(default_factory=dict)
    quick: bool = False
    #: methods (``full``: the recipe) trained again though logged, e.g. to pair them with a
    #: rerun method on one machine; the progress log keeps their earlier records
    rerun: tuple[str, ...] = ()
    #: budgeted runs train in batches of ``batch`` x budget: as many optimizer steps as the
    #: recipe (:func:`tinysift.guided.loop.keep_steps_batch`); the recipe keeps ``batch``
    keep_steps: bool = False
    #: the recipe's batch (every run's, unless ``keep_steps``)
    batch: int = 128

    def recipe(self) -> str:
        text = (f"tiny CNN (ds-cnn, width 16), Adam 3e-3, batch {self.batch}, {self.epochs} "
                "epochs of the full data = the reference; a budget is a fraction of its "
                "sample-passes, the learning rate decays (cosine) to zero as the budget is spent")
        if self.keep_steps:
            text += (f"; budgeted runs train in batches of {self.batch} x budget (as many "
                     f"steps as the recipe, --keep-steps)")
        from tinysift.guided import make_sampler

        for method, params in sorted(self.method_params.items()):
            default = make_sampler(_sampler_name(method))  # its attributes: the defaults
            changed = {k: v for k, v in params.items() if getattr(default, k, object()) != v}
            if changed:  # what differs from the method's defaults (--method-params)
                text += f"; {method} with " + ", ".join(f"{k}={v}" for k, v in
                                                        sorted(changed.items()))
        return text


def results_stem(dataset: str, label_noise: float) -> str:
    from tinysift.data import dataset_slug

    stem = f"guided_{dataset_slug(dataset)}"
    return stem + (f"_noise{label_noise:g}" if label_noise else "")


def bench_guided(cfg: GuidedBenchConfig, progress: bool = False, executor=None) -> dict:
    """Run the bench; ``executor`` (:mod:`tinysift.bench.executor`) runs its tasks (default:
    serial, in this process): one per (seed, method, budget) training."""
    from tinysift.bench.executor import SerialExecutor
    from tinysift.data import load_dataset
    from tinysift.errors import BudgetError, did_you_mean
    from tinysift.guided import known_samplers
    from tinysift.progress import make_console

    if cfg.seeds < 1:
        raise BudgetError(f"--seeds must be at least 1 (got {cfg.seeds})")
    if cfg.batch < 1:
        raise BudgetError(f"--batch must be at least 1 (got {cfg.batch})")
    for b in cfg.budgets:
        if not 0.0 < b <= 1.0:
            raise BudgetError(f"--budgets must be fractions in (0, 1], got {b}")
    point_labels(cfg.budgets, "--budgets")  # two budgets of one label would share a record
    distinct(cfg.methods, "--methods")  # a method given twice was trained twice
    unknown = sorted(set(cfg.methods) - set(known_samplers()))
    if unknown:
        hint = did_you_mean(unknown[0], known_samplers()) if len(unknown) == 1 else ""
        raise BudgetError(f"unknown guided method(s) {unknown}{hint}; known: "
                          f"{', '.join(known_samplers())}")
    if not set(cfg.rerun) <= {"full", *cfg.methods}:
        raise BudgetError(f"--rerun names {sorted(set(cfg.rerun) - {'full', *cfg.methods})}, "
                          f"which this bench does not run; choose from full, "
                          f"{', '.join(cfg.methods)}")
    ex = executor or SerialExecutor()
    console = make_console(stderr=True)
    base = load_dataset(cfg.dataset)
    stem = results_stem(cfg.dataset, cfg.label_noise) + ("_quick" if cfg.quick else "")
    log = _progress_log(cfg, base.content_hash, stem)
    with results_claim(log, Path(cfg.out_dir), stem):
        return _run(cfg, ex, console, log, base, stem, progress)


def _run(cfg: GuidedBenchConfig, ex, console, log: ProgressLog, base, stem: str,
         progress: bool) -> dict:
    """The bench's seeds, with its results claimed."""
    from tinysift.bench.driver import SeedData, run_seeds, worker_fields
    from tinysift.models.training import TrainConfig

    data = SeedData(base, cfg.label_noise)
    _check_points(cfg, data)  # before the log gets any line (a --rerun's marker)
    if (resuming := log.resuming()) is not None:
        console.print(resuming, markup=False)
    if log.stale:
        console.print(f"{log.stale} logged trainings ran with other method parameters: "
                      "rerunning those")
    if cfg.rerun:
        forgotten = log.forget(cfg.rerun, cfg.seeds)
        console.print(f"training {', '.join(cfg.rerun)} again (seeds 0-{cfg.seeds - 1}): "
                      f"{forgotten} logged trainings stay in the log and no longer count")
    curves = _load_curves(log)
    shipped = ex.share(data)
    progress = progress and not ex.remote
    jobs = [("full", 1.0)] + [(m, b) for m in cfg.methods for b in cfg.budgets]

    def handler(seed: int, method: str, at: str):
        def handle(done) -> None:
            r = dict(done.value)
            # The per-epoch curve first (a side file): a training whose log line exists
            # always has its curve.
            curves[(seed, method, at)] = _append_curve(log, seed, method, at, r.pop("epochs"),
                                                       r.pop("full_passes"))
            log.add(seed, method, at, **r, **worker_fields(ex, done))
            console.print(f"seed {seed}: {method:>9} budget {at:<4}: acc {r['acc']:.4f}  "
                          f"spent {r['spent']:.3f}  {r['seconds']:5.0f} s", markup=False)
        return handle

    def submit(seed: int) -> list:
        recipe = TrainConfig(epochs=cfg.epochs, seed=seed, batch_size=cfg.batch)
        return [(ex.submit(_guided_point, shipped, seed, method, budget, recipe,
                           cfg.method_params.get(_sampler_name(method), {}), progress,
                           cfg.keep_steps),
                 handler(seed, method, f"{budget:g}"),
                 "full data" if method == "full" else f"{method} budget {budget:g}")
                for method, budget in jobs if log.get(seed, method, f"{budget:g}") is None]

    return run_seeds(ex, log, cfg.seeds, submit,
                     lambda seeds, wall: _results(cfg, log, curves, seeds, wall),
                     lambda res: write_outputs(res, Path(cfg.out_dir), stem),
                     say=lambda line: console.print(line, markup=False))


def _check_points(cfg: GuidedBenchConfig, data) -> None:
    """Refuse before any training what every task would fail on, after the full-data
    training (each task failed alone and the bench said "rerun to train only the failed
    ones", which failed again): a label noise out of [0, 1) and a budget that buys less
    than the loop's stopping rule."""
    from tinysift.guided.loop import check_budget
    from tinysift.models.training import TrainConfig

    data.for_seed(0)  # the label noise's checks
    recipe = TrainConfig(epochs=cfg.epochs, seed=0, batch_size=cfg.batch)
    for budget in cfg.budgets:
        check_budget(len(data.base.y_train), budget, recipe, cfg.keep_steps)


def _sampler_name(method: str) -> str:
    return "full-cut" if method == "full" else method


def _guided_point(data, seed: int, method: str, budget: float, recipe, params: dict,
                  progress: bool, keep_steps: bool = False) -> dict:
    """Task: one guided training (``full``: the full-data recipe, full-cut at budget 1),
    tested on the full test split, and on a fixed stratified test subset after every epoch
    (not charged) for the curves."""
    from tinysift.guided import make_sampler
    from tinysift.guided.loop import train_guided
    from tinysift.models.training import evaluate, predict_proba
    from tinysift.selection.budget import balanced_subset

    ds = data.for_seed(seed)
    curve_idx = balanced_subset(ds.y_test, CURVE_TEST_SAMPLES, 0)
    x_curve, y_curve = ds.x_test[curve_idx], ds.y_test[curve_idx]

    def curve(epoch, model, ledger) -> dict:
        acc = float((predict_proba(model, x_curve).argmax(1) == y_curve).mean())
        return {"curve_acc": round(acc, 4)}

    sampler = make_sampler(_sampler_name(method), seed=seed, **params)
    res = train_guided(ds.x_train, ds.y_train, ds.num_classes, sampler, budget,
                       train_config=recipe, progress=progress, on_epoch_end=curve,
                       keep_steps=keep_steps)
    led = res.ledger
    full_passes = recipe.epochs * len(ds.y_train)
    return {"acc": evaluate(res.model, ds.x_test, ds.y_test), "seconds": res.seconds,
            "spent": led.spent / full_passes, "train_passes": led.train_passes,
            "fit_passes": led.fit_passes, "fit_seconds": sum(led.fit_seconds.values()),
            "epochs": res.epochs, "full_passes": full_passes, "batch_size": res.batch_size}


#: Options added after the committed benches: in the progress log's key only when set, so a
#: bench at their defaults finds the log it wrote before them.
LATER_OPTIONS = ("keep_steps", "batch")


#: The record fields a results point gives the mean of (over seeds).
MEAN_FIELDS = ("seconds", "spent", "fit_passes", "fit_seconds")
#: The numbers every progress record holds, which the results read: a record without one
#: trains again.
RECORD_FIELDS = ("acc", *MEAN_FIELDS)


def _progress_log(cfg: GuidedBenchConfig, data_hash: str, stem: str) -> ProgressLog:
    key = {k: v for k, v in config_dict(cfg).items()
           if k not in ("seeds", "methods", "budgets", "out_dir", "progress_dir", "rerun")}
    for name in LATER_OPTIONS:  # at its default, as in the logs written before it
        if key[name] == GuidedBenchConfig.__dataclass_fields__[name].default:
            del key[name]
    key["data"] = data_hash
    return ProgressLog(key, cfg.progress_dir, stem, point="budget",
                       method_params=bench_sampler_params(cfg),
                       key_defaults={name: GuidedBenchConfig.__dataclass_fields__[name].default
                                     for name in LATER_OPTIONS},
                       fields=RECORD_FIELDS)


def bench_sampler_params(cfg: GuidedBenchConfig) -> dict[str, dict]:
    """Every method's parameters, defaults included: a logged training counts as done only
    while its method's are unchanged."""
    from tinysift.guided import sampler_params

    return {m: sampler_params(_sampler_name(m), **cfg.method_params.get(_sampler_name(m), {}))
            for m in ("full", *cfg.methods)}


def _curves_path(log: ProgressLog) -> Path | None:
    return log.path.with_suffix(".curves.jsonl") if log.path is not None else None


def _append_curve(log: ProgressLog, seed: int, method: str, at: str, epochs: list[dict],
                  full_passes: int) -> list:
    """(fraction of the recipe spent, test-subset accuracy) after every epoch; appended to the
    curves file beside the progress log (with each epoch's plan size)."""
    points = [[round(e["spent"] / full_passes, 4), e["curve_acc"]] for e in epochs]
    path = _curves_path(log)
    if path is not None:
        rec = {"seed": seed, "method": method, "budget": at, "points": points,
               "sizes": [e["samples"] for e in epochs]}
        if method in log.method_params:
            rec["params"] = log.method_params[method]
        append_json_line(path, rec)
    return points


def _load_curves(log: ProgressLog) -> dict[tuple, list]:
    """Each training's curve: the last one logged, except that a curve of another method
    parameters than the log's never replaces one of the same (a default set back to an
    earlier value makes the earlier records count again, and their curves with them).
    Curves logged before 2026-12-02 carry no parameters and count as matching."""
    path = _curves_path(log)
    out: dict[tuple, list] = {}
    matched: set[tuple] = set()
    # A torn last line is ended here, before the bench appends the next curve.
    # (a line that is not a curve record is skipped: that curve is missing, no KeyError)
    for r in read_json_lines(path, {"seed": int, "method": str, "budget": str,
                                    "points": list}):
        key = (r["seed"], r["method"], r["budget"])
        same = "params" not in r or log.current(r["method"], r["params"])
        if same:
            matched.add(key)
        if same or key not in matched:
            out[key] = r["points"]
    return out


def _results(cfg: GuidedBenchConfig, log: ProgressLog, curves: dict, seeds_done: int,
              wall_seconds: float) -> dict:
    from tinysift.bench.stats import paired_difference

    full_runs = [log.get(s, "full", "1") for s in range(seeds_done)]
    full = summarize(full_runs, ("seconds",))
    rows = list(full_runs)
    methods: dict[str, dict] = {}
    for name in cfg.methods:
        for b in cfg.budgets:
            at = f"{b:g}"
            runs = [log.get(s, name, at) for s in range(seeds_done)]
            if any(r is None for r in runs):
                continue
            rows += runs
            point = summarize(runs, MEAN_FIELDS)
            # each seed's spending over its budget; runs over OVER_BUDGET x are flagged
            point["spent_of_budget"] = [round(r["spent"] / b, 4) for r in runs]
            point["over_budget"] = sum(r["spent"] > OVER_BUDGET * b for r in runs)
            point["vs_full_data"] = paired_difference([r["acc"] for r in runs],
                                                      [r["acc"] for r in full_runs])
            for ctrl in CONTROLS:
                ctrl_runs = [log.get(s, ctrl, at) for s in range(seeds_done)]
                if ctrl != name and all(r is not None for r in ctrl_runs):
                    point[f"vs_{ctrl}"] = paired_difference([r["acc"] for r in runs],
                                                            [r["acc"] for r in ctrl_runs])
            point["curves"] = [curves.get((s, name, at), []) for s in range(seeds_done)]
            methods.setdefault(name, {})[at] = point
    return {
        "dataset": cfg.dataset, "label_noise": cfg.label_noise,
        "budgets": [float(b) for b in cfg.budgets],
        **run_record(cfg, seeds_done, log, wall_seconds),
        "full_data_acc": {"mean": full["acc_mean"], "std": full["acc_std"],
                          "runs": full["runs"]},
        "full_data_seconds": full["seconds"],
        "full_data_curves": [curves.get((s, "full", "1"), []) for s in range(seeds_done)],
        "recipe": cfg.recipe(),
        **log.provenance(seeds_done, rows),
        "method_params": log.method_params,  # every parameter, the defaults included
        "over_budget_factor": OVER_BUDGET,
        "methods": methods,
    }


def write_outputs(results: dict, out: Path, stem: str) -> None:
    """``stem``.json, the markdown table and the plot, all from ``results``."""
    from tinysift.bench.guided_report import guided_markdown, guided_plot

    write_results(results, out, stem, guided_markdown, guided_plot)
