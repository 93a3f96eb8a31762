"""``tinysift bench device``: on-device adaptation, replay methods x replay sizes x update
modes, on the emulated board, against the host's joint model and the no-replay floor.

Per seed: the scenario (its new samples drawn with the seed), the base model trained on the
old task with the seed, int8-quantized, exported once, the firmware built once; then every
(replay method, replay size, update mode) trains on the device from the export's model, on
the replay set followed by the new samples, both streamed with ``db load`` (one firmware
for every replay set; the same set in the same order as a replay set exported to flash
with ``db use both``). Accuracy of the re-quantized int8 model on the exported test subset
(old and new task), estimated energy of the training epochs, and the RAM of the memory plan
of the firmware each update mode needs (update=head: a head-only build; the bench builds one
firmware for every row, with the update=last-block / bias buffers only when a row needs
them). A seed is paired across methods (the same base model, new samples and
device sample order), so the tables give each method's paired difference to random replay.

Every finished device run is appended to a progress log; the results files are rewritten
after every seed, so a killed bench resumes. Each record carries the firmware sources' hash:
after a firmware change (its kernels set the cycles and the energy) the points run again.

A device run that fails (a timeout, a garbled link, its replay selection's error) does not end
the bench: it is said and recorded, the other runs of its seed and the other seeds run on and
are logged, and the bench ends with one error listing the failed runs
(:class:`tinysift.bench.driver.SerialTasks`); the results files hold the seeds before the first
with a failed run, and a rerun runs only the failed ones. A failure every run would repeat
(the firmware does not build, the emulator does not start) or a seed's setup failing (base
model, export) stops the bench at once.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinysift.bench.progress import (
    ProgressLog,
    config_dict,
    device_provenance,
    distinct,
    results_claim,
    summarize,
    user_data_key,
    write_results,
)
from tinysift.export.memory import has_backbone_buffers, needs_backbone_buffers
from tinysift.pipeline.adapt import NEW_TASK_ONLY, REPLAY_DEFAULTS, check_updates

REPLAY_METHODS = ("random", "herding", "ccs", "vq", "flow")
#: The record fields a device row's results give the mean of (over seeds).
MEAN_FIELDS = ("acc_old", "acc_new", "energy_mj", "cycles", "ram_plan")
#: The numbers every progress record of a device row holds, which the results read: a record
#: without one runs again; the host's joint-training reference logs its accuracies only.
RECORD_FIELDS = ("acc", *MEAN_FIELDS)
REFERENCE_FIELDS = {"joint": ("acc", "acc_old", "acc_new")}


@dataclass
class DeviceBenchConfig:
    scenario: str = "new-classes"
    dataset: str = "fashion-mnist"
    old_classes: tuple[int, ...] = tuple(range(8))
    new_per_class: int = 100
    board: str = "qemu-mps2-an386"
    seeds: int = 3
    first_seed: int = 0  # seeds first_seed .. first_seed + seeds - 1 (the demo's --seed)
    methods: tuple[str, ...] = REPLAY_METHODS
    sizes: tuple[int, ...] = (5, 10, 20)
    updates: tuple[str, ...] = ("head",)
    steps: int = 300
    lr: float = 0.05
    batch: int = 32
    schedule: str = "cosine"
    base_epochs: int = 10
    # 30 per class (300 in all) left one standard error of ~2 points, as large as the
    # differences between replay methods (docs/methods.md)
    test_per_class: int = 100
    out_dir: Path = Path("benchmarks/results")
    progress_dir: Path | None = Path("benchmarks/results/progress")
    work_dir: Path = Path("runs/_bench_device")
    quick: bool = False
    # in the config (and so in the progress log's key): a change of a replay rule starts a
    # new log instead of mixing runs of the old rule with the new
    replay_params: dict = field(default_factory=lambda: copy.deepcopy(REPLAY_DEFAULTS))

    def adapt_config(self, seed: int, replay: str = "none", size: int = 0,
                     update: str = "head"):
        from tinysift.pipeline.adapt import AdaptConfig

        return AdaptConfig(scenario=self.scenario, dataset=self.dataset,
                           old_classes=self.old_classes, new_per_class=self.new_per_class,
                           replay=replay, replay_per_class=size, update=update,
                           board=self.board, steps=self.steps, lr=self.lr, batch=self.batch,
                           schedule=self.schedule, base_epochs=self.base_epochs,
                           test_per_class=self.test_per_class, seed=seed,
                           out=str(self.work_dir / f"{self.stem()}-s{seed}"),
                           replay_params=self.replay_params.get(replay, {}))

    def seed_values(self) -> list[int]:
        return list(range(self.first_seed, self.first_seed + self.seeds))

    def stem(self) -> str:
        from tinysift.data import dataset_slug

        return (f"device_{self.scenario}_{dataset_slug(self.dataset)}"
                + ("_quick" if self.quick else ""))


def bench_device(cfg: DeviceBenchConfig, log=None, pipeline_folder: bool = False) -> dict:
    """Run (or resume) the bench. ``pipeline_folder``: ``cfg.out_dir`` is a pipeline's run
    folder, whose results follow the pipeline file, edited or not (a bench's folder refuses
    results of another configuration: :func:`check_results_owner`)."""
    from tinysift.device.build import firmware_source_hash
    from tinysift.errors import BudgetError
    from tinysift.progress import make_console

    if cfg.seeds < 1:
        raise BudgetError(f"--seeds must be at least 1 (got {cfg.seeds})")
    # an update mode given twice ran every row twice on the device; a method or size twice
    # counted its rows twice in the results
    for values, flag in ((cfg.methods, "--methods"), (cfg.sizes, "--sizes"),
                         (cfg.updates, "--updates")):
        distinct(values, flag)
    # every replay method and update mode (and the board) before the first base model is
    # trained: a misspelt one was refused only after it; the modes first, as --updates (one
    # mode's check named --update, which the bench does not have)
    check_updates(cfg.updates)
    for method in cfg.methods:
        for update in cfg.updates:
            cfg.adapt_config(cfg.first_seed, replay=method, size=1, update=update).validate()
    console = make_console(stderr=True)
    say = log or (lambda line: console.print(line, markup=False))  # user paths: no markup
    wall = time.perf_counter()
    key = {k: v for k, v in config_dict(cfg).items()
           if k not in ("seeds", "first_seed", "methods", "sizes", "updates", "out_dir",
                        "progress_dir", "work_dir")}
    key.update(user_data_key({"dataset": cfg.dataset}))
    # device points depend on the firmware (its kernels set the cycles and energy): a
    # changed firmware source reruns them
    plog = ProgressLog(key, cfg.progress_dir, cfg.stem(), point="point",
                       stamp={"firmware": firmware_source_hash()},
                       fields=RECORD_FIELDS, fields_by_method=REFERENCE_FIELDS)
    with results_claim(plog, Path(cfg.out_dir), cfg.stem(), check_owner=not pipeline_folder):
        return _run(cfg, plog, say, wall)


def _run(cfg: DeviceBenchConfig, plog: ProgressLog, say, wall: float) -> dict:
    """The bench's seeds, with its results claimed."""
    from tinysift.bench.driver import SerialTasks, say_later_seeds
    from tinysift.pipeline.adapt import (
        device_task_accuracies,
        exported_tests,
        host_joint_reference,
        prepare_base,
        test_indices,
        tested_tasks,
    )
    from tinysift.quantize import tflm
    from tinysift.stages.device import TrainParams, run_on_device
    from tinysift.stages.export import export

    results: dict = {}
    tasks = SerialTasks()  # failure lines on stderr, verbatim (not console markup)
    say_later_seeds(plog, cfg.seed_values(), tasks.say)  # before any results are written
    complete = 0  # the seeds the results files hold: those before the first failed run
    # this invocation's memory plans (the export's, and per update mode), and its scenario:
    # every row's RAM column is the plan of this invocation's firmware (its largest --sizes),
    # rows resumed from an invocation of other --sizes included
    plan: dict | None = None
    ram_plans: dict[str, int] = {}
    scenario_info: dict = {}
    last = cfg.seed_values()[-1]

    def write(seed: int) -> None:
        """The results files of the seeds up to ``seed``, all complete."""
        nonlocal results, complete
        done = list(range(cfg.first_seed, seed + 1))
        results = _results(cfg, plog, done, plan, ram_plans, time.perf_counter() - wall)
        results["scenario_info"] = scenario_info
        write_outputs(results, Path(cfg.out_dir), cfg.stem())
        complete = len(done)

    for seed in cfg.seed_values():
        # A seed whose every row is logged needs no base model, export nor firmware (minutes
        # of training each); the last one is set up still when no seed was, for the plans.
        if _all_logged(cfg, plog, seed) and (plan is not None or seed != last):
            say(f"seed {seed}: every row already in {plog.path}, its setup skipped")
            if plan is not None and not tasks.failures:
                write(seed)
            continue
        base_cfg = cfg.adapt_config(seed)
        base_cfg.validate()
        scn, parts, _name, base = prepare_base(base_cfg, say)
        tests = test_indices(scn, parts, cfg.test_per_class, seed,
                             tasks=tested_tasks(cfg.scenario))
        if plog.get(seed, "joint", "host") is None:
            # On the same exported test subset as the device: a paired comparison.
            ref = host_joint_reference(scn, base, seed, exported_tests(scn, parts, tests))
            plog.add(seed, "joint", "host", acc=ref["all"], acc_old=ref.get("old", 0.0),
                     acc_new=ref.get("new", 0.0))
        most = max(cfg.sizes) * len(scn.old_classes) + len(scn.y_new)
        flash = parts["old"][[int(np.flatnonzero(scn.y_old == c)[0]) for c in scn.old_classes]]
        # one firmware for every row: with the update=last-block / bias buffers only when a
        # row needs them (head-only otherwise, as `tinysift adapt --update head` builds)
        backbone = needs_backbone_buffers(*cfg.updates)
        exp = export(base, board=cfg.board, test_samples=len(tests), seed=seed,
                     db_capacity=most, train_indices=flash, test_indices=tests,
                     backbone_training=backbone)
        ram_plans = {u: _plan_ram(base, cfg.board, exp, u) for u in cfg.updates}
        scale, zp = tflm.input_quant((base / "model.tflite").read_bytes())
        x_new = tflm.quantize_images(scn.x_new, scale, zp)
        jobs = [("none", 0)] + [(m, s) for m in cfg.methods for s in cfg.sizes]
        # method -> (fitted, seconds), or the fit's error: one scoring per seed
        fits: dict[str, tuple | Exception] = {}
        for method, size in jobs:
            todo = [u for u in cfg.updates if plog.get(seed, method, f"{size}:{u}") is None]
            if not todo:
                continue
            # a selection that fails fails this size's rows (said once, as one task)
            chosen = tasks.run(seed, f"{method} {size}/class", _replay_set, cfg, seed, method,
                               size, scn, base, fits)
            if chosen is None:
                continue
            local, select_seconds = chosen
            x_rep = tflm.quantize_images(scn.x_old[local], scale, zp)
            train_set = (np.concatenate([x_rep, x_new]),
                         np.concatenate([scn.y_old[local], scn.y_new]))
            for update in todo:
                params = TrainParams(lr=cfg.lr, batch=cfg.batch, seed=seed + 1,
                                     update=update, steps=cfg.steps, schedule=cfg.schedule,
                                     balance=True)
                res = tasks.run(seed, f"{method} {size}/class {update}", run_on_device, base,
                                cfg.board, params=params, train_set=train_set,
                                label=f"{method}-{size}-{update}", db_use="ram")
                if res is None:
                    continue
                acc = device_task_accuracies(res, scn)
                ram = ram_plans[update]
                plog.add(seed, method, f"{size}:{update}", acc=acc["all"],
                         acc_old=acc.get("old") or 0.0, acc_new=acc.get("new") or 0.0,
                         energy_mj=res.training_energy_mj(len(train_set[1])),
                         cycles=sum(e.cycles for e in res.epochs),
                         select_seconds=select_seconds, ram_plan=ram,
                         ram_static=res.ram_bytes or 0)
                old = "-" if acc.get("old") is None else f"{acc['old']:.3f}"  # shift: untested
                say(f"seed {seed}: {method:>8} {size:>3}/class {update:<10}: old {old} new "
                    f"{acc['new']:.3f} all {acc['all']:.3f}")
        plan = exp.plan
        scenario_info = {"description": scn.description, "new_samples": int(len(scn.y_new)),
                         "num_classes": int(scn.num_classes),
                         "old_classes": list(scn.old_classes),
                         "new_classes": list(scn.new_classes)}
        if not tasks.failures:  # else this seed or one before it is not complete
            write(seed)
    tasks.finish(plog, complete, cfg.seeds, reported=cfg.seed_values())
    return results


def _replay_set(cfg: DeviceBenchConfig, seed: int, method: str, size: int, scn, base: Path,
                fits: dict[str, tuple | Exception]) -> tuple[np.ndarray, float]:
    """The replay set of ``size`` per old class (indices into the old training data) and
    its selection's seconds. ``fits`` keeps each method's scoring of the seed (or its error:
    every size of a method that failed to fit fails with it, without fitting again)."""
    from tinysift.pipeline.adapt import choose_replay, fit_replay

    run_cfg = cfg.adapt_config(seed, method, size)
    if run_cfg.uses_replay and method not in fits:
        t0 = time.perf_counter()
        try:
            fits[method] = (fit_replay(run_cfg, scn, base), time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 - re-raised, and for the method's other sizes
            fits[method] = exc
            raise
    fit = fits.get(method, (None, 0.0))
    if isinstance(fit, Exception):
        raise fit
    fitted, fit_seconds = fit
    t0 = time.perf_counter()
    local = choose_replay(run_cfg, scn, base, fitted)
    # Each size is charged the whole scoring, as if it ran alone.
    return local, fit_seconds + time.perf_counter() - t0


def _all_logged(cfg: DeviceBenchConfig, plog: ProgressLog, seed: int) -> bool:
    """Every row of ``seed`` (the host's joint model, the floor and every method, size and
    update mode) is in the progress log."""
    rows = [("joint", "host")] + [
        (method, f"{size}:{update}") for update in cfg.updates
        for method, size in [("none", 0)] + [(m, s) for m in cfg.methods for s in cfg.sizes]]
    return all(plog.get(seed, method, at) is not None for method, at in rows)


def _plan_ram(base: Path, board: str, exp, update: str) -> int:
    """RAM of the memory plan of the firmware this update mode needs, for the bench's export
    (``exp``, a tinysift.stages.export.ExportOutcome): update=head's is a head-only build's
    (the firmware ``tinysift adapt --update head`` and ``tinysift export --head-only`` build,
    which the bench built too unless a row of another mode needed the backbone buffers);
    last-block's and bias's the export's own plan (a firmware with those buffers)."""
    plan = exp.plan
    if needs_backbone_buffers(update) or not has_backbone_buffers(plan):
        return int(plan["ram_total"])
    from tinysift.stages.export import memory_plan_for

    return int(memory_plan_for(base, board, exp.test_samples, train_samples=exp.train_samples,
                               db_capacity=plan["db_capacity"],
                               backbone_training=False)["ram_total"])


def _results(cfg: DeviceBenchConfig, plog: ProgressLog, seeds_done: list[int], plan: dict,
             ram_plans: dict[str, int], wall_seconds: float) -> dict:
    """The results file's fields; ``plan`` is this invocation's memory plan and
    ``ram_plans`` its RAM per update mode: every row's RAM, whichever invocation ran it."""
    from tinysift.bench.stats import paired_difference
    from tinysift.runs import machine_info, package_versions

    def runs(method, point):
        rs = [plog.get(s, method, point) for s in seeds_done]
        return rs if all(r is not None for r in rs) else None

    joint = runs("joint", "host")
    rows = list(joint or [])
    # shift (and user): the device tests the new task only; the old task's accuracy is not
    # measured
    old_untested = cfg.scenario in NEW_TASK_ONLY
    points: dict[str, dict] = {}
    for update in cfg.updates:
        for method, size in [("none", 0)] + [(m, s) for m in cfg.methods for s in cfg.sizes]:
            rs = runs(method, f"{size}:{update}")
            if rs is None:
                continue
            rows += rs
            p = summarize(rs, MEAN_FIELDS)
            p.update(method=method, size=size, update=update,
                     old_runs=[r["acc_old"] for r in rs], new_runs=[r["acc_new"] for r in rs])
            # A row logs the RAM of the firmware it ran on, whose replay buffer the largest
            # --sizes of its invocation set; the table's column is this invocation's plan
            # (one for every row, as its text says), not a mean over several invocations'.
            p["ram_plan"] = float(ram_plans[update])
            for ref in ("random", "herding"):
                ref_rs = runs(ref, f"{size}:{update}")
                if ref_rs is not None and ref != method and method != "none":
                    p[f"vs_{ref}"] = paired_difference([r["acc"] for r in rs],
                                                       [r["acc"] for r in ref_rs])
            if joint is not None:
                p["vs_joint"] = paired_difference([r["acc"] for r in rs],
                                                  [r["acc"] for r in joint])
                if not old_untested:
                    p["old_vs_joint"] = paired_difference([r["acc_old"] for r in rs],
                                                          [r["acc_old"] for r in joint])
            if old_untested:  # the logs' 0.0 is a placeholder, not a measurement
                p["acc_old"] = p["old_runs"] = None
            points[f"{method}:{size}:{update}"] = p
    return {
        "scenario": cfg.scenario, "dataset": cfg.dataset, "board": cfg.board,
        "seeds": len(seeds_done), "seed_values": seeds_done, "seeds_planned": cfg.seeds,
        "methods": list(cfg.methods),
        "sizes": list(cfg.sizes), "updates": list(cfg.updates),
        "joint": (summarize(joint, ("acc_new",) if old_untested else ("acc_old", "acc_new"))
                  if joint else None),
        "points": points, "memory_plan": plan,
        "config": config_dict(cfg),
        # the log, the date, the code versions and machines of the rows (the seeds are
        # seed_values above: they start at first_seed)
        **{k: v for k, v in device_provenance(plog, len(seeds_done), rows).items()
           if k != "seed_values"},
        "machine": machine_info(), "versions": package_versions(),
        "wall_seconds": wall_seconds,
    }


def write_outputs(results: dict, out: Path, stem: str) -> None:
    """``stem``.json, the markdown table and the plot, all from ``results``."""
    from tinysift.bench.device_report import device_markdown, device_plot

    write_results(results, out, stem, device_markdown, device_plot)
