"""Run the same on-device training twice on the emulated board and record the cycle counts.

    .venv/bin/python tools/device_determinism.py [RUN] [--out-dir DIR]
    (default RUN: a digits run it builds, seed 0)

Writes benchmarks/results/device_determinism_qemu-m4.json and .md: per phase and per epoch,
the counts of both runs and their difference, with the export's content hash, the machine
and the versions. Under -icount the instruction stream is deterministic, and with the counter
re-aligned at every measurement window the counts are identical (docs/protocol.md, "Cycle
counts").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _firmware_stamp import firmware_stamp

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", type=Path,
                    help="a run folder with an export (default: a digits run built here)")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.run is not None and not (args.run / "export" / "export.json").is_file():
        ap.error(f"{args.run} has no export (no export/export.json): give a run folder "
                 "`tinysift export` made, or no RUN to build a digits run")

    from tinysift.runs import atomic_write_json, atomic_write_text, machine_info, package_versions
    from tinysift.stages.device import TrainParams, run_on_device
    from tinysift.stages.export import export
    from tinysift.stages.quantize import quantize
    from tinysift.stages.train import train

    run = args.run or ROOT / "runs" / "_scratch" / "trainer-digits"
    if args.run is None:
        train("digits", run, epochs=30, seed=0, progress=False)
        quantize(run)
        export(run)
    params = TrainParams(epochs=5, init="zero")
    one, two = (run_on_device(run, "qemu-mps2-an386", params=params, label=f"determinism-{i}")
                for i in (1, 2))
    rows = []
    for name in one.phases:
        a, b = one.phases[name].cycles, two.phases[name].cycles
        rows.append({"what": f"phase {name}", "run1": a, "run2": b, "diff": b - a})
    for e1, e2 in zip(one.epochs, two.epochs, strict=True):
        rows.append({"what": f"epoch {e1.epoch}", "run1": e1.cycles, "run2": e2.cycles,
                     "diff": e2.cycles - e1.cycles})
    worst = max(abs(r["diff"]) / max(1, r["run1"]) for r in rows)
    same_results = all(getattr(one, k) == getattr(two, k)
                       for k in ("test_acc_before", "test_acc_after", "test_int8_acc_after")
                       ) and [e.loss for e in one.epochs] == [e.loss for e in two.epochs]
    run = run.resolve()
    exported = json.loads((run / "export" / "export.json").read_text())
    res = {"board": "qemu-mps2-an386", "counter": one.counter,
           # the project-relative path: an absolute one names this machine's checkout
           "run": str(run.relative_to(ROOT)) if run.is_relative_to(ROOT) else str(run),
           "export_hash": exported["content_hash"],
           "params": vars(params), "rows": rows, "max_relative_difference": worst,
           "losses_and_accuracies_identical": same_results,
           "machine": machine_info(), "versions": package_versions(),
           "firmware_source": firmware_stamp("device_determinism_qemu-m4")}
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "device_determinism_qemu-m4.json", res)
    lines = ["# Same inputs, two runs: cycle counts on qemu-m4 (-icount)", "",
             f"Counter `{res['counter']}`; losses and accuracies identical: {same_results}; "
             f"largest relative difference {worst:.2e}.", "",
             "| what | run 1 | run 2 | difference |", "|---|---|---|---|"]
    lines += [f"| {r['what']} | {r['run1']:,} | {r['run2']:,} | {r['diff']:+d} |" for r in rows]
    atomic_write_text(out / "device_determinism_qemu-m4.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    from tinysift.errors import TinysiftError

    try:
        sys.exit(main(sys.argv[1:]))
    except TinysiftError as exc:  # a missing tool, a device fault: its message, no traceback
        sys.exit(f"error: {exc}")
