#!/usr/bin/env python
"""MLPerf Tiny's four reference models on the tinysift engine: instructions on the emulated
Cortex-M4, arena against TFLM's, flash, stack, and the time and energy this implies on the
NUCLEO-L4R5ZI, beside MLPerf Tiny's published results for that board.

Per model (tinysift.models.mlperf_tiny: the published architecture, trained briefly on
stand-in data and converted to full int8; the weights' values change neither the instruction
count of the int8 kernels much nor any size):

* bit-exactness with the TFLM runtime on 20 random inputs, scalar and DSP kernels, natively
  (``tinysift engine check``'s path);
* the engine's planned activation arena and TFLM's (its non-persistent "head" arena);
* the inference memory plan for nucleo_l4r5zi (flash: engine code, weights and layer table;
  RAM: arena, I/O buffers, reserved stack);
* one ``ts_invoke`` with the DSP kernels on QEMU mps2-an386 under ``-icount shift=0``
  (tools/bench_kernels.py's bench firmware with the model compiled in): executed
  instructions and the stack it used (painted);
* implied time at the L4R5ZI's 120 MHz if every instruction took one cycle (a lower bound:
  flash wait states and pipeline stalls make a real Cortex-M4 spend more cycles than
  instructions), and the energy at the board profile's run-mode power (boards/nucleo_l4r5zi).

    .venv/bin/python tools/bench_mlperf.py [--models resnet8,ds_cnn] [--out benchmarks/results]

Writes mlperf_tiny_qemu-m4.json (every number, versions, machine) and .md. Not a test: it
asserts nothing about speed; a model that is not bit-exact stops it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import shutil
import sys
import tempfile
from pathlib import Path

from _firmware_stamp import firmware_stamp

ROOT = Path(__file__).resolve().parents[1]
BOARD = "nucleo_l4r5zi"
SEED = 0  # of the models' initialization and their brief training on stand-in data
TASKS = {"resnet8": "image classification (CIFAR-10, 32x32x3)",
         "mobilenet": "visual wake words (96x96x3)",
         "ds_cnn": "keyword spotting (49x10 MFCC)",
         "autoencoder": "anomaly detection (640 log-mel)"}

# MLPerf Tiny's published closed-division results on the NUCLEO-L4R5ZI (120 MHz), read from
# the results repositories github.com/mlcommons/tiny_results_v*: the files give the median
# throughput (inferences/s; latency here is 1000 / that) and, where measured, the median
# energy per inference (uJ, EnergyRunner, the whole board's supply at the stated voltage).
# <b> in a source stands for the benchmark's folder (ic, vww, kws, ad).
_BENCH = {"resnet8": "ic", "mobilenet": "vww", "ds_cnn": "kws", "autoencoder": "ad"}


def _published(round_: str, submitter: str, software: str, source: str,
               per_model: dict[str, tuple[float, float | None]]) -> list[dict]:
    return [{"round": round_, "submitter": submitter, "software": software, "model": m,
             "throughput_per_s": ips, "latency_ms": round(1000.0 / ips, 2), "energy_uj": uj,
             "source": source.replace("<b>", _BENCH[m])} for m, (ips, uj) in per_model.items()]


PUBLISHED: list[dict] = [
    *_published("v0.5", "reference", "TFLM 2.3.1 (mbed, GCC 6), 1.8 V",
                "mlcommons/tiny_results_v0.5: closed/reference/results/Nucleo-L4R5ZI/<b>/"
                "performance/results.txt", {
                    "resnet8": (1.420, 29207.0), "mobilenet": (1.665, 24312.6),
                    "ds_cnn": (5.497, 7373.7), "autoencoder": (99.487, 416.3)}),
    *_published("v1.0", "OctoML", "microTVM + CMSIS-NN (Zephyr 2.7.3)",
                "mlcommons/tiny_results_v1.0: closed/OctoML/results/microtvm_cmsis_nn/"
                "NUCLEO_L4R5ZI/<b>/performance/results.txt", {
                    "resnet8": (2.567, 20236.3), "mobilenet": (3.320, 15531.4),
                    "ds_cnn": (10.019, 5230.3), "autoencoder": (116.212, 443.2)}),
    *_published("v1.0", "STMicroelectronics", "X-CUBE-AI 7.3.0 (GCC 10.3), 1.8 V",
                "mlcommons/tiny_results_v1.0: closed/STMicroelectronics/results/NUCLEO_L4R5ZI/"
                "<b>/performance/results.txt", {
                    "resnet8": (4.407, 10681.6), "mobilenet": (4.339, 10066.6),
                    "ds_cnn": (13.323, 3371.7), "autoencoder": (131.950, 323.0)}),
    *_published("v1.1", "Plumerai", "Plumerai Inference Engine 2023.05",
                "mlcommons/tiny_results_v1.1: closed/plumerai/results/NUCLEO-L4R5ZI/<b>/"
                "performance/results.txt", {
                    "resnet8": (5.961, None), "mobilenet": (10.126, None),
                    "ds_cnn": (20.929, None), "autoencoder": (246.814, None)}),
    *_published("v1.2", "STMicroelectronics", "X-CUBE-AI 9.0 (GCC 10.3), 1.8 V",
                "mlcommons/tiny_results_v1.2: closed/STMicroelectronics/results/NUCLEO_L4R5ZI/"
                "<b>/performance/results.txt", {
                    "resnet8": (6.056, 6919.4), "mobilenet": (11.245, 3894.6),
                    "ds_cnn": (23.155, 1820.5), "autoencoder": (190.086, 203.4)}),
]


def measure(name: str, work: Path) -> dict:
    from tinysift.boards import load_board
    from tinysift.device.icount import invoke_instructions
    from tinysift.quantize.convert import mlperf_tiny_int8
    from tinysift.runs import file_hash
    from tinysift.stages.engine import check_tflite

    board = load_board(BOARD)
    path = work / f"{name}.tflite"
    path.write_bytes(mlperf_tiny_int8(name, seed=SEED))
    chk = check_tflite(path, count=20, board=BOARD, out_dir=work / name)
    if not chk.ok:
        raise SystemExit(f"{name}: not bit-exact with TFLM: {chk.results}")
    plan = chk.plan
    model = invoke_instructions(chk.export_dir, work / "fw" / name)
    instr = model["instructions"]
    ms = instr / board.clock_hz * 1e3
    power_w = board.active_current_ma * 1e-3 * board.supply_v
    return {
        "model": name, "task": TASKS[name], "tflite_bytes": path.stat().st_size,
        "tflite_hash": file_hash(path),
        "bit_exact": {k: f"{v['equal']}/{v['inputs']}" for k, v in chk.results.items()},
        "macs": int(model["macs"]), "invoke_instructions": instr,
        "instr_per_mac": round(instr / int(model["macs"]), 3),
        "stack_bytes": int(model["stack"]), "arena_bytes": chk.arena_bytes,
        "scratch_bytes": model["scratch"],
        "tflm_arena_bytes": chk.tflm_arena_head,
        "flash_bytes": plan["flash_total"], "flash": plan["flash"],
        "ram_bytes": plan["ram_total"], "ram": plan["ram"],
        "implied_ms_at_1_cpi": round(ms, 3),
        "implied_uj_at_1_cpi": round(ms * 1e-3 * power_w * 1e6, 1),
    }


def markdown(res: dict) -> str:
    b = res["board"]
    lines = [
        "# MLPerf Tiny's reference models on the tinysift engine",
        "",
        f"Engine: DSP kernels, one `ts_invoke` on QEMU mps2-an386 (Cortex-M4F) under "
        f"`-icount shift=0` (executed instructions, deterministic). Implied time: instructions "
        f"at {b['clock_hz'] / 1e6:.0f} MHz, one cycle each (a lower bound on a real "
        f"{b['name']}: flash wait states and stalls add cycles); energy at the profile's "
        f"{b['power_mw']:.1f} mW ({b['current_source']}). Models: the published "
        "architectures (tinysift.models.mlperf_tiny), trained briefly on stand-in data, full "
        "int8; bit-exact with TFLM on 20 random inputs (scalar / DSP). Generated by "
        "`tools/bench_mlperf.py`.",
        "",
        "| model | task | MACs | instructions | instr/MAC | implied ms (uJ) at 1 CPI | "
        "arena (TFLM) | kernel scratch | flash (plan) | stack | bit-exact scalar / DSP |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for m in res["models"]:
        tflm = f"{m['tflm_arena_bytes']:,}" if m["tflm_arena_bytes"] is not None else "-"
        lines.append(
            f"| {m['model']} | {m['task']} | {m['macs']:,} | {m['invoke_instructions']:,} | "
            f"{m['instr_per_mac']:.2f} | {m['implied_ms_at_1_cpi']:.1f} "
            f"({m['implied_uj_at_1_cpi']:,.0f}) | {m['arena_bytes']:,} ({tflm}) | "
            f"{m.get('scratch_bytes', 0):,} | {m['flash_bytes']:,} | {m['stack_bytes']:,} | "
            f"{m['bit_exact']['scalar']} / "
            f"{m['bit_exact']['dsp']} |")
    if res["published"]:
        subs = list(dict.fromkeys((p["round"], p["submitter"], p["software"])
                                  for p in res["published"]))
        cell = {(p["round"], p["submitter"], p["software"], p["model"]): p
                for p in res["published"]}
        lines += ["", f"## Beside MLPerf Tiny's published results on the {b['name']}", "",
                  "Latency ms per inference (1000 / the median throughput in the file) and, in "
                  "brackets, energy uJ per inference where measured (EnergyRunner, the board's "
                  "supply at the submission's voltage: not the profile's estimate above).", "",
                  "| model | tinysift, implied at 1 CPI | "
                  + " | ".join(f"{r} {s} ({sw})" for r, s, sw in subs) + " |",
                  "|---|---:|" + "---:|" * len(subs)]
        for m in res["models"]:
            row = [m["model"], f"{m['implied_ms_at_1_cpi']:.1f}"]
            for key in subs:
                p = cell.get((*key, m["model"]))
                row.append("-" if p is None else f"{p['latency_ms']:.1f}" + (
                    f" ({p['energy_uj']:,.0f})" if p["energy_uj"] is not None else ""))
            lines.append("| " + " | ".join(row) + " |")
        lines += ["", "Sources (`<b>`: ic, vww, kws, ad; the energy in the same folder's "
                  "`energy/results.txt`):", ""]
        for r, sname, _sw in subs:
            src = next(p["source"] for p in res["published"]
                       if (p["round"], p["submitter"]) == (r, sname))
            for bench in ("ic", "vww", "kws", "ad"):
                src = src.replace(f"/{bench}/", "/<b>/")
            lines.append(f"- {r} {sname}: `{src}`")
    lines += ["", f"Machine: {res['machine']}; {res['date']}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    from tinysift.boards import load_board
    from tinysift.device.icount import run_tool
    from tinysift.models.mlperf_tiny import MODELS
    from tinysift.runs import atomic_write_json, atomic_write_text, machine_info, package_versions

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args(argv)
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm", "gcc"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: run tools/setup.sh")
    names = [n for n in args.models.split(",") if n]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    board = load_board(BOARD)
    work = Path(tempfile.mkdtemp(prefix="bench-mlperf-"))
    try:
        rows = []
        for name in names:
            rows.append(measure(name, work))
            print(f"{name}: {rows[-1]['invoke_instructions']:,} instructions, "
                  f"{rows[-1]['instr_per_mac']:.2f}/MAC", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    machine = machine_info()
    res = {
        "benchmark": "mlperf_tiny",
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "board": {"name": board.name, "clock_hz": board.clock_hz,
                  "power_mw": board.active_current_ma * board.supply_v,
                  "current_source": board.current_source},
        "counter": "QEMU mps2-an386 -icount shift=0 (instructions)",
        "seed": SEED,
        "models": rows,
        "published": [p for p in PUBLISHED if p["model"] in names],
        "toolchain": {"gcc": run_tool(["arm-none-eabi-gcc", "--version"]).splitlines()[0],
                      "qemu": run_tool(["qemu-system-arm", "--version"]).splitlines()[0]},
        "versions": package_versions(),
        "firmware_source": firmware_stamp("mlperf_tiny_qemu-m4"),
        "machine": f"{machine.get('platform', '')} x {machine.get('cpus', '?')} CPUs",
        "machine_info": machine,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "mlperf_tiny_qemu-m4.json", res)
    md = markdown(res)
    atomic_write_text(args.out / "mlperf_tiny_qemu-m4.md", md)
    print(md)
    return res


if __name__ == "__main__":
    main()
