"""``tinysift bench upkeep``: on-device replay upkeep, ``reservoir`` against ``coverage``, at
several buffer sizes and update modes, on the emulated board.

Per seed (:mod:`tinysift.pipeline.upkeep`): the scenario, the base model trained with the
seed, the exported replay set and VQ codebook, the stream (every new sample, shuffled with the
seed), one firmware; then for every buffer size and update mode both policies keep a buffer
of the same stream and the device trains on it plus the replay set (the same training seed),
and a reference point keeps the whole stream. A seed is paired across policies (same base
model, stream order, replay set and sample order of the training), so the tables give the
paired difference coverage - reservoir with a 95% interval.

Every finished device run is appended to a progress log; the results files are rewritten
after every seed, so a killed bench resumes. Each record carries the firmware sources' hash:
after a firmware change (its kernels set the cycles and the energy) the points run again.

A device run that fails (a timeout, a garbled link) does not end the bench: it is said and
recorded, the other points of its seed and the other seeds run on and are logged, and the
bench ends with one error listing the failed runs (:class:`tinysift.bench.driver.SerialTasks`,
as ``bench device``); the results files hold the seeds before the first with a failed run, and
a rerun runs only the failed ones. A failure every run would repeat (the firmware does not
build, the emulator does not start) or a seed's setup failing stops the bench at once.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tinysift.bench.progress import (
    ProgressLog,
    device_provenance,
    distinct,
    results_claim,
    summarize,
    user_data_key,
    write_results,
)
from tinysift.pipeline.adapt import NEW_TASK_ONLY
from tinysift.pipeline.upkeep import ALL, UpkeepConfig, points, prepare, run_point

# The version of ts_replay.c's coverage rules (docs/trainer.md "Replay upkeep"). Every
# coverage record in the progress log carries it (none: 1), and only records of the current
# rules are resumed: the other points (reservoir, the whole stream) do not depend on them.
# 1: codewords' shares of the buffer by rank (left slots empty); 2: class-, then
# codeword-balanced reservoir; 3: class-balanced, codeword-proportional (stratified).
COVERAGE_RULES = 3


def current(rec: dict | None, method: str) -> dict | None:
    """``rec`` if it was measured with the current rules (always, but for coverage)."""
    if rec is None or method != "coverage":
        return rec
    return rec if rec.get("coverage_rules", 1) == COVERAGE_RULES else None

FIELDS = ("acc_old", "acc_new", "seen", "kept", "codewords", "covered", "evicted",
          "stream_cycles", "train_cycles", "energy_mj")
#: The numbers every progress record holds: a record without one runs again.
RECORD_FIELDS = ("acc", *FIELDS)


@dataclass
class UpkeepBenchConfig:
    """The experiment of one seed (``upkeep``: its ``seed`` and ``out`` are set per seed)
    and how many seeds, where results, progress and run folders go."""

    upkeep: UpkeepConfig = field(default_factory=UpkeepConfig)
    seeds: int = 3
    out_dir: Path = Path("benchmarks/results")
    progress_dir: Path | None = Path("benchmarks/results/progress")
    work_dir: Path = Path("runs/_bench_upkeep")
    quick: bool = False

    def stem(self) -> str:
        from tinysift.data import dataset_slug

        u = self.upkeep
        return (f"upkeep_{u.scenario}_{dataset_slug(u.dataset)}"
                + ("_quick" if self.quick else ""))

    def seed_config(self, seed: int) -> UpkeepConfig:
        return replace(self.upkeep, seed=seed, out=str(self.work_dir / f"{self.stem()}-s{seed}"))


def point_key(policy: str, per_class: int | None, update: str) -> tuple[str, str]:
    """(method, point) of the progress log: the policy (``all`` for the whole stream) and
    ``<buffer per class>:<update>``."""
    return (ALL, f"all:{update}") if per_class is None else (policy, f"{per_class}:{update}")


def bench_upkeep(cfg: UpkeepBenchConfig, log=None) -> dict:
    from tinysift.device.build import firmware_source_hash
    from tinysift.errors import BudgetError
    from tinysift.pipeline.adapt import replay_method_params
    from tinysift.progress import make_console

    if cfg.seeds < 1:
        raise BudgetError(f"--seeds must be at least 1 (got {cfg.seeds})")
    say = log or make_console(stderr=True).print
    cfg.upkeep.validate()
    # a buffer, policy or mode given twice counted its rows twice in the results
    for values, flag in ((cfg.upkeep.buffers, "--buffers"), (cfg.upkeep.policies, "--policies"),
                         (cfg.upkeep.updates, "--updates")):
        distinct(values, flag)
    wall = time.perf_counter()
    key = {k: v for k, v in asdict(cfg.upkeep).items()
           if k not in ("seed", "out", "buffers", "updates", "policies", "reference_all")}
    # the replay rule in effect (defaults included), as `bench device` keys it: a changed
    # default starts a new log instead of counting the old rule's points as done
    key["replay_params"] = replay_method_params(cfg.upkeep.replay, cfg.upkeep.replay_params)
    key.update(user_data_key({"dataset": cfg.upkeep.dataset, "new": cfg.upkeep.new}))
    # device points depend on the firmware: a changed firmware source reruns them
    plog = ProgressLog({**key, "quick": cfg.quick}, cfg.progress_dir, cfg.stem(),
                       point="point", stamp={"firmware": firmware_source_hash()},
                       fields=RECORD_FIELDS)
    with results_claim(plog, Path(cfg.out_dir), cfg.stem()):
        return _run(cfg, plog, say, wall)


def _run(cfg: UpkeepBenchConfig, plog: ProgressLog, say, wall: float) -> dict:
    """The bench's seeds, with its results claimed."""
    from tinysift.bench.driver import SerialTasks, say_later_seeds

    results: dict = {}
    tasks = SerialTasks()  # failure lines on stderr, verbatim (not console markup)
    say_later_seeds(plog, list(range(cfg.seeds)), tasks.say)  # before any results are written
    complete = 0  # the seeds the results files hold: those before the first failed run
    for seed in range(cfg.seeds):
        ucfg = cfg.seed_config(seed)
        setup = None
        for policy, per_class, update in points(ucfg):
            method, at = point_key(policy, per_class, update)
            if current(plog.get(seed, method, at), method) is not None:
                continue
            setup = setup or prepare(ucfg, say)  # its failure stops the bench
            buffer = "whole stream" if per_class is None else f"buffer {per_class}/class"
            row = tasks.run(seed, f"{method} {buffer} {update}", run_point, ucfg, setup,
                            policy, per_class, update)
            if row is None:
                continue
            rules = {"coverage_rules": COVERAGE_RULES} if method == "coverage" else {}
            plog.add(seed, method, at, acc=row["acc"], acc_old=row["acc_old"] or 0.0,
                     acc_new=row["acc_new"] or 0.0, **rules,
                     **{k: row[k] for k in FIELDS if k not in ("acc_old", "acc_new")})
            say(f"seed {seed}: {method:>9} buffer {row['cap']:>5} {update:<10}: all "
                f"{row['acc']:.3f} (kept {row['kept']}, codewords {row['codewords']}, "
                f"covered {row['covered']})")
        if tasks.failures:  # this seed or one before it is not complete
            continue
        results = _results(cfg, plog, seed + 1, time.perf_counter() - wall)
        write_outputs(results, Path(cfg.out_dir), cfg.stem())
        complete = seed + 1
    tasks.finish(plog, complete, cfg.seeds, reported=list(range(cfg.seeds)))
    return results


def _results(cfg: UpkeepBenchConfig, plog: ProgressLog, seeds_done: int,
             wall_seconds: float) -> dict:
    from tinysift.bench.stats import paired_difference
    from tinysift.runs import machine_info, package_versions

    def runs(method, at):
        rs = [current(plog.get(s, method, at), method) for s in range(seeds_done)]
        return rs if all(r is not None for r in rs) else None

    u = cfg.upkeep
    # shift (and user): the device tests the new task only; the logs' acc_old is a
    # placeholder 0.0, not a measurement (as in bench device's results)
    old_untested = u.scenario in NEW_TASK_ONLY
    out: dict[str, dict] = {}
    rows: list[dict] = []
    for policy, per_class, update in points(u):
        method, at = point_key(policy, per_class, update)
        rs = runs(method, at)
        if rs is None:
            continue
        rows += rs
        p = summarize(rs, FIELDS)
        p.update(policy=method, per_class=per_class, update=update,
                 old_runs=[r["acc_old"] for r in rs], new_runs=[r["acc_new"] for r in rs])
        other = runs("reservoir", at)
        if method == "coverage" and other is not None:
            p["vs_reservoir"] = paired_difference([r["acc"] for r in rs],
                                                  [r["acc"] for r in other])
            if not old_untested:
                p["old_vs_reservoir"] = paired_difference([r["acc_old"] for r in rs],
                                                          [r["acc_old"] for r in other])
        if old_untested:
            p["acc_old"] = p["old_runs"] = None
        out[f"{method}:{at}"] = p
    return {"scenario": u.scenario, "dataset": u.dataset, "board": u.board,
            "seeds": seeds_done, "seeds_planned": cfg.seeds, "buffers": list(u.buffers),
            "updates": list(u.updates), "policies": list(u.policies), "points": out,
            "config": {**asdict(u), "seeds": cfg.seeds, "quick": cfg.quick,
                       "coverage_rules": COVERAGE_RULES},
            **device_provenance(plog, seeds_done, rows),
            "machine": machine_info(), "versions": package_versions(),
            "wall_seconds": wall_seconds}


def write_outputs(results: dict, out: Path, stem: str) -> None:
    """``stem``.json, the markdown table and the plot, all from ``results``."""
    from tinysift.bench.upkeep_report import upkeep_markdown, upkeep_plot

    write_results(results, out, stem, upkeep_markdown, upkeep_plot)
