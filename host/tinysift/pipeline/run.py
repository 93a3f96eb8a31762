"""Run the whole pipeline and write the report.

1. base model: the tiny CNN trained on the host on ``base_keep`` of the data, int8-quantized
   (checked with TFLM) and exported with the largest training set that fits the board (the
   *full exported set*);
2. selection: every method picks every budget from the full training split (one shared
   scoring context);
3. device: the firmware is built once for the export; on the emulated board the head is
   fine-tuned on the full exported set (compiled into flash) and on every selected set
   (streamed with ``db load``), each in a fresh emulator; cycles, estimated energy and
   accuracy come back over serial;
4. report: ``summary.json``, ``report.html`` and a terminal table.

Every stage is cached in its run folder, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from tinysift.device.results import DeviceResults
from tinysift.pipeline.config import PipelineConfig, check_report_folder


def run_pipeline(cfg: PipelineConfig, log=print) -> dict:
    from tinysift.boards import load_board
    from tinysift.data import load_dataset
    from tinysift.quantize import tflm
    from tinysift.report.html import write_report
    from tinysift.runs import Run, atomic_write_json, machine_info, package_versions
    from tinysift.stages.device import cached_results, ensure_built, run_on_device
    from tinysift.stages.export import export
    from tinysift.stages.prune import prune_many
    from tinysift.stages.quantize import quantize
    from tinysift.stages.train import train

    cfg.validate()
    start = time.perf_counter()
    # the data and the board before the run folder: an unknown dataset left a folder behind
    board = load_board(cfg.board)
    ds = load_dataset(cfg.dataset)
    out = Path(cfg.out)
    check_report_folder(out, "select")
    cfg.check_base_keep_holds(len(ds.y_train), ds.num_classes)
    run = Run(out)
    timings: dict[str, float] = {}

    def timed(name: str, fn):
        # said before it starts too: the stages run without bars here, and base training or
        # scoring is minutes of silence on the larger datasets
        log(f"{name} ...")
        t0 = time.perf_counter()
        result = fn()
        timings[name] = round(time.perf_counter() - t0, 2)
        log(f"{name}: {timings[name]:.1f} s")
        return result

    base_dir = out / "base"
    base = timed("train base model", lambda: train(
        cfg.dataset, base_dir, keep=cfg.base_keep, epochs=cfg.base_epochs, seed=cfg.seed,
        progress=False, epochs_setting="base_epochs"))
    # recorded once the first stage took the folder: a refused one (another dataset in a
    # used folder) wrote its settings over those of the folder's pipeline
    run.record_command()
    run.set("pipeline", cfg.to_dict())
    log(f"  base model: {base.train_samples} samples, float test accuracy {base.test_acc:.4f}")
    for warning in base.warnings:  # e.g. a base_epochs too short for its set: near chance
        log(f"  warning: {warning}")
    q = timed("quantize (TFLM check)", lambda: quantize(base_dir, seed=cfg.seed,
                                                                progress=False))
    log(f"  int8 (TFLM) {q.int8_acc:.4f} vs float {q.float_acc:.4f}")
    # the `db load` buffer holds the largest set streamed, and none is larger than the base's
    # set (a budget above it was a larger buffer never filled: RAM the plan reserved, and
    # over 65,535 an export refusal naming --db-capacity, an option `run` does not have)
    exp = timed("export (fit the board)", lambda: export(
        base_dir, board=cfg.board, fit=True, test_samples=cfg.test_samples,
        db_capacity=min(max(cfg.budgets), base.train_samples), seed=cfg.seed))
    log(f"  full exported set: {exp.train_samples} samples")
    budgets = sorted({min(int(b), exp.train_samples) for b in cfg.budgets})
    over = sorted(int(b) for b in cfg.budgets if int(b) > exp.train_samples)
    if over:  # said, not silent: such a row is as large as the full set's
        log(f"  budgets {over} are larger than the full exported set: "
            f"{exp.train_samples} samples each")
    selections = timed("score and select", lambda: prune_many(
        cfg.dataset, cfg.methods, budgets, out / "select", seed=cfg.seed,
        proxy_epochs=cfg.proxy_epochs, progress=False, method_params=cfg.method_params))
    timings["firmware build"] = 0.0
    t0 = time.perf_counter()
    ensure_built(base_dir, board)
    timings["firmware build"] = round(time.perf_counter() - t0, 2)
    log(f"firmware build: {timings['firmware build']:.1f} s")

    params = cfg.device_params()
    scale, zp = tflm.input_quant((base_dir / "model.tflite").read_bytes())
    rows = []
    t_dev = time.perf_counter()
    jobs = [("full", exp.train_samples, None)] + [
        (m, c, selections[(m, c)]) for m in cfg.methods for c in budgets]
    for method, count, sel_path in jobs:
        label = f"{method}-{count}"
        train_set = None
        if sel_path is not None:
            idx = np.load(sel_path)["indices"]
            train_set = (tflm.quantize_images(ds.x_train[idx], scale, zp), ds.y_train[idx])
        # The set is part of the key: a changed selection under the same label trains again.
        cached = cached_results(base_dir, label, params, cfg.board, train_set=train_set)
        if cached is None:
            result = run_on_device(base_dir, cfg.board, params=params, train_set=train_set,
                                   label=label)
        else:
            result = cached
        rows.append(_row(method, count, result))
        log(f"  device {label:>12}: acc {rows[-1]['acc_before']:.3f} -> "
            f"{rows[-1]['acc_after']:.3f}, {rows[-1]['energy_mj_per_epoch']:.3f} mJ/epoch")
    timings["on-device fine-tuning"] = round(time.perf_counter() - t_dev, 2)

    summary = {
        "kind": "select", "name": cfg.name, "dataset": cfg.dataset,
        "dataset_hash": ds.content_hash, "num_classes": ds.num_classes,
        "board": cfg.board, "seed": cfg.seed,
        "counter": rows[0]["counter"], "clock_hz": board.clock_hz,
        "epochs": cfg.epochs, "test_samples": exp.test_samples,
        "base_model": f"ds-cnn width 16 trained on {base.train_samples} samples; int8 "
                      f"{q.int8_acc:.4f} (TFLM) vs float {q.float_acc:.4f}",
        "energy_model": {"supply_v": board.supply_v,
                         "active_current_ma": board.active_current_ma,
                         "source": board.current_source},
        "memory_plan": exp.plan, "rows": rows, "timings": timings,
        "config": cfg.to_dict(), "versions": package_versions(), "machine": machine_info(),
        "commands": [" ".join(c["argv"]) for c in run.manifest.get("commands", [])][-3:]
                    or [" ".join(sys.argv)],
        "wall_seconds": time.perf_counter() - start,
    }
    summary["headline"] = headline(summary)
    atomic_write_json(out / "summary.json", summary)
    write_report(summary, out / "report.html")
    return summary


def _row(method: str, count: int, res: DeviceResults) -> dict:
    features = res.phase("features")
    samples = int(res.samples or count)
    total_mj = res.training_energy_mj(samples)
    return {
        "method": method, "samples": samples,
        "acc_before": res.test_acc_before, "acc_after": res.test_acc_after,
        "int8_acc_after": res.test_int8_acc_after,
        "cycles_per_epoch": int(res.mean_epoch("cycles")),
        "energy_mj_per_epoch": float(res.mean_epoch("energy_mj")),
        "energy_mj_total": total_mj,
        "seconds_per_epoch": float(res.mean_epoch("seconds")),
        "feature_cycles": features.cycles, "counter": res.counter,
        "energy_kind": res.epochs[0].energy_kind if res.epochs else "estimated",
    }


def headline(summary: dict) -> str:
    rows = summary["rows"]
    full = next(r for r in rows if r["method"] == "full")
    pruned = [r for r in rows if r["method"] != "full"]
    best = max(pruned, key=lambda r: (r["acc_after"], -r["samples"]))

    def saving(r: dict) -> str:
        ratio = full["energy_mj_per_epoch"] / max(r["energy_mj_per_epoch"], 1e-12)
        return f"{ratio:.{0 if ratio >= 10 else 1}f}x less" if ratio > 1 else "no less"

    chance = 1 / summary["num_classes"] if summary.get("num_classes") else 0.0
    if chance and max(r["acc_after"] for r in rows) <= chance + 0.02:
        # every row at 0.100 read as "random with 20 samples: 14x less energy", a win
        return (f"Every set, the full one included, ends at chance ({chance:.3f} for "
                f"{summary['num_classes']} classes): the device's model did not learn (a "
                "base model trained too briefly? see the warnings above), so this run "
                "compares no sets.")
    text = (f"Best pruned set (one seed): {best['method']} with {best['samples']} samples "
            f"reaches {best['acc_after']:.3f} after fine-tuning (full exported set, "
            f"{full['samples']} samples: {full['acc_after']:.3f}) at "
            f"{best['energy_mj_per_epoch']:.3f} mJ per epoch instead of "
            f"{full['energy_mj_per_epoch']:.3f} mJ ({saving(best)}).")
    close = [r for r in pruned if r["acc_after"] >= full["acc_after"] - 0.01]
    if close:
        small = min(close, key=lambda r: (r["samples"], -r["acc_after"]))
        text += (f" Smallest set within 1 point of the full set: {small['method']} with "
                 f"{small['samples']} samples ({small['acc_after']:.3f}), {saving(small)} "
                 "energy per epoch.")
    return text
