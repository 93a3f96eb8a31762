"""The README's full-data table: `tinysift train` then `tinysift quantize` on each dataset.

    .venv/bin/python tools/full_data_table.py [--datasets digits,mnist,fashion-mnist] [--seed 0]

Trains the default tiny CNN on all the training data with the README's commands (digits 30
epochs, MNIST and Fashion-MNIST 10), quantizes it to int8 and scores it with the TFLM runtime
on the whole test split. Writes ``benchmarks/results/full_data.{json,md}`` with the seed, the
datasets' hashes, the machine and the versions. The run folders live under
``runs/_bench_full/`` (``--work-dir``) and are stages like any other: a rerun with nothing
changed reuses them (their seconds are those of the run that trained them).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: The README's recipe per dataset (epochs over the full training split).
EPOCHS = {"digits": 30, "mnist": 10, "fashion-mnist": 10}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(EPOCHS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    ap.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "_bench_full",
                    help="where the run folders live")
    args = ap.parse_args(argv)

    from tinysift.bench.progress import machine_label, write_results
    from tinysift.runs import Run, machine_info, package_versions
    from tinysift.stages.quantize import quantize
    from tinysift.stages.train import train

    names = args.datasets.split(",")
    unknown = [name for name in names if name not in EPOCHS]
    if unknown:  # before the first dataset trains (minutes), not after
        raise SystemExit(f"unknown dataset {unknown[0]!r}; known: {', '.join(EPOCHS)}")
    start = time.perf_counter()
    rows = {}
    for name in names:
        run = args.work_dir / f"{name}-seed{args.seed}"
        t = train(name, run, epochs=EPOCHS[name], seed=args.seed)
        q = quantize(run)
        trained = Run(run).manifest["stages"]["train"]
        # seconds rounded as the train stage records them, so a rerun reads the same
        rows[name] = {"epochs": EPOCHS[name], "test_acc": t.test_acc,
                      "seconds": round(t.seconds, 2),
                      "params": t.params, "macs_per_sample": t.macs_per_sample,
                      "int8_acc": q.int8_acc, "drop": q.drop, "tflite_bytes": q.tflite_bytes,
                      "arena_bytes": q.arena_bytes,
                      # as the train stage recorded it (no second load of the data)
                      "dataset_hash": Run(run).manifest["dataset"]["hash"],
                      # the code and machine that trained it: a reused run folder's own,
                      # not this invocation's
                      "trained_with": {"git": trained["versions"].get("git"),
                                       "tinysift_source":
                                           trained["versions"].get("tinysift_source"),
                                       "machine": machine_label(trained["machine"])}}
        print(f"{name}: float {t.test_acc:.4f} ({t.seconds:.0f} s), int8 {q.int8_acc:.4f} "
              f"(drop {100 * q.drop:.2f} pt)", flush=True)
    res = {"seed": args.seed, "datasets": rows, "machine": machine_info(),
           "versions": package_versions(), "wall_seconds": time.perf_counter() - start}
    lines = ["# Full-data training and int8 quantization", "",
             f"`tinysift train --dataset D --epochs E --seed {args.seed}` then `tinysift "
             "quantize`: the default tiny CNN (ds-cnn, width 16), Adam 3e-3 with cosine decay, "
             "batch 128, on all the training data; int8 accuracy computed by the TFLM runtime "
             "on the whole test split. One seed (training is deterministic on one machine).", "",
             "| dataset | epochs | test accuracy | training time | int8 (TFLM) | drop | "
             ".tflite bytes |", "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['epochs']} | {r['test_acc']:.4f} | {r['seconds']:.1f} s | "
                     f"{r['int8_acc']:.4f} | {100 * r['drop']:.2f} pt | {r['tflite_bytes']:,} |")
    m = res["machine"]
    lines += ["", f"Machine: {m['processor']} × {m['cpus']} CPUs; tensorflow "
              f"{res['versions'].get('tensorflow', '?')}.", ""]
    here = {"git": res["versions"].get("git"),
            "tinysift_source": res["versions"].get("tinysift_source"),
            "machine": machine_label(m)}
    other = [f"{name} (git {(r['trained_with']['git'] or '?')[:10]}, source "
             f"{r['trained_with']['tinysift_source']}, on {r['trained_with']['machine']})"
             for name, r in rows.items() if r["trained_with"] != here]
    if other:  # reused run folders trained by other code or on another machine
        lines += ["Trained by other code or on another machine (reused run folders): "
                  + "; ".join(other) + ".", ""]
    write_results(res, args.out_dir, "full_data", lambda _: "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
