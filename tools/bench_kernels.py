#!/usr/bin/env python
"""Kernel benchmark on QEMU mps2-an386 (Cortex-M4F): instructions per MAC, flash, RAM, stack.

Builds tools/bench/kernels_bench.c with the engine (firmware/lib/tsengine) and the QEMU
platform runtime (boards/platform-qemu) by hand with arm-none-eabi-gcc, using the qemu-m4
env's flags, runs it under ``qemu-system-arm -icount shift=0`` (SysTick converted to
executed instructions: deterministic run to run; QEMU counts instructions, not cycles) and
writes

    benchmarks/results/kernels_qemu-m4.json   every number, with the tool versions and flags
    benchmarks/results/kernels_qemu-m4.md     the tables

Per kernel case: MACs, instructions of the scalar path (``*_ref``) and the DSP path
(``*_dsp``: SMLAD, two 16-bit MACs per instruction), instructions per MAC, and the stack each
call uses (the stack is painted before the call). Also the engine's flash and static RAM
from ``arm-none-eabi-size`` (a program calling ts_invoke, minus the same program without the
engine) for TS_USE_DSP=0 and 1. With ``--export RUN/export`` the bench also times every
layer of that model and one ts_invoke.

    .venv/bin/python tools/bench_kernels.py [--export runs/NAME/export] [--out benchmarks/results]

Not a test: nothing here asserts a speed. The design goal is <= 2.0 instructions per MAC on
the DSP path (the floor is 0.5: two MACs per SMLAD).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "firmware" / "lib" / "tsengine" / "src"
ENGINE_SRCS = ["ts_executor.c", "ts_kernels.c", "ts_kernels_dsp.c", "ts_kernels_elementwise.c",
               "ts_softmax.c"]
RUNTIME = ROOT / "boards" / "runtime"
QEMU_RT = ROOT / "boards" / "platform-qemu" / "runtime"
CORTEXM_RT = RUNTIME / "cortex-m"  # reset, faults, stack, libc glue, the SysTick counter
LDSCRIPT = ROOT / "boards" / "platform-qemu" / "ldscripts" / "qemu_mps2.ld"
BENCH_SRC = ROOT / "tools" / "bench" / "kernels_bench.c"
SIZE_SRC = ROOT / "tools" / "bench" / "engine_size_main.c"
GOAL_INSTR_PER_MAC = 2.0

CPU = ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"]
CFLAGS = ["-std=c99", "-O2", "-g", "-ffunction-sections", "-fdata-sections", "-fno-common",
          "-Wall", "-Wextra", "-Werror"]
DEFINES = ["-DTS_TARGET_QEMU", "-DTS_SYSTICK_HZ=25000000u", "-DTS_SYSTICK_NS_NUM=40u",
           "-DTS_SYSTICK_NS_DEN=1u"]
LDFLAGS = ["--specs=nano.specs", "-nostartfiles", "-Wl,--gc-sections",
           "-Wl,--no-warn-rwx-segments", f"-L{CORTEXM_RT}", f"-T{LDSCRIPT}"]
QEMU = ["qemu-system-arm", "-machine", "mps2-an386", "-nographic", "-monitor", "none",
        "-serial", "stdio", "-icount", "shift=0", "-semihosting-config",
        "enable=on,target=native", "-kernel"]

LINE_RE = re.compile(r"^(BENCH\w*) (.*)$", re.M)


def _kv(text: str) -> dict:
    out = {}
    for item in text.split():
        key, _, value = item.partition("=")
        out[key] = int(value) if re.fullmatch(r"-?\d+", value) else value
    return out


def _run(cmd: list[str], timeout: float = 600) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise SystemExit(f"command failed ({r.returncode}): {' '.join(cmd)}\n"
                         f"{r.stdout[-3000:]}{r.stderr[-3000:]}")
    return r.stdout


def build(out: Path, name: str, main: Path, dsp: int, export: Path | None = None,
          extra_defines: list[str] = ()) -> Path:
    """Compile and link one firmware ELF; returns its path."""
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    inc = [f"-I{ENGINE}", f"-I{RUNTIME / 'include'}", f"-I{CORTEXM_RT}", f"-I{QEMU_RT}"]
    defs = [*DEFINES, f"-DTS_USE_DSP={dsp}", *extra_defines]
    srcs = [main, *(ENGINE / s for s in ENGINE_SRCS), *sorted(QEMU_RT.glob("*.c")),
            *sorted((RUNTIME / "src").glob("*.c")), *sorted(CORTEXM_RT.glob("*.c"))]
    if export is not None:
        inc.append(f"-I{export}")
        defs.append("-DTS_HAVE_EXPORT")
        srcs += [export / "ts_export_model.c", export / "ts_export_data.c"]
    objs = []
    for i, src in enumerate(srcs):
        obj = d / f"{i:02d}_{src.stem}.o"
        flags = CFLAGS if src.parent in (ENGINE, main.parent) else [
            f for f in CFLAGS if f != "-Werror"]
        _run(["arm-none-eabi-gcc", *CPU, *flags, *defs, *inc, "-c", str(src), "-o", str(obj)])
        objs.append(str(obj))
    elf = d / f"{name}.elf"
    _run(["arm-none-eabi-gcc", *CPU, *LDFLAGS, *objs, "-lm", "-o", str(elf)])
    return elf


def size_of(elf: Path) -> dict:
    """arm-none-eabi-size (Berkeley): text, data, bss."""
    line = _run(["arm-none-eabi-size", "-B", "-d", str(elf)]).strip().splitlines()[-1].split()
    text, data, bss = (int(v) for v in line[:3])
    return {"text": text, "data": data, "bss": bss}


def engine_size(out: Path, dsp: int) -> dict:
    """Flash and static RAM of the engine: a program that calls ts_invoke (every kernel is
    reachable through the op dispatch) minus the same program without it."""
    with_engine = size_of(build(out, f"size-dsp{dsp}", SIZE_SRC, dsp))
    baseline = size_of(build(out, f"size-base{dsp}", SIZE_SRC, dsp,
                             extra_defines=["-DTS_SIZE_BASELINE"]))
    flash = (with_engine["text"] + with_engine["data"]) - (baseline["text"] + baseline["data"])
    ram = (with_engine["data"] + with_engine["bss"]) - (baseline["data"] + baseline["bss"])
    return {"flash_bytes": flash, "static_ram_bytes": ram, "elf": with_engine,
            "baseline_elf": baseline}


def run_qemu(elf: Path, timeout: float = 900) -> str:
    r = subprocess.run(["timeout", "--foreground", str(int(timeout)), *QEMU, str(elf)],
                       capture_output=True, text=True, timeout=timeout + 30)
    if r.returncode != 0 or "BENCH_DONE" not in r.stdout:
        raise SystemExit(f"the bench firmware failed (exit {r.returncode}):\n"
                         f"{r.stdout[-3000:]}{r.stderr[-3000:]}")
    return r.stdout


def parse(text: str) -> dict:
    res = {"info": {}, "cases": [], "layers": [], "model": None}
    for kind, rest in LINE_RE.findall(text):
        kv = _kv(rest)
        if kind == "BENCH_INFO":
            res["info"] = kv
        elif kind == "BENCH":
            kv["ref_instr_per_mac"] = round(kv["ref_instr"] / kv["macs"], 3)
            kv["dsp_instr_per_mac"] = round(kv["dsp_instr"] / kv["macs"], 3)
            kv["speedup"] = round(kv["ref_instr"] / kv["dsp_instr"], 2)
            res["cases"].append(kv)
        elif kind == "BENCH_LAYER":
            if kv["macs"]:
                kv["dsp_instr_per_mac"] = round(kv["dsp_instr"] / kv["macs"], 3)
            res["layers"].append(kv)
        elif kind == "BENCH_MODEL":
            res["model"] = kv
        elif kind == "BENCH_ERROR":
            raise SystemExit(f"bench error: {rest}")
    return res


def per_op_summary(cases: list[dict]) -> dict:
    """MAC-weighted instructions per MAC per op (total instructions / total MACs)."""
    out = {}
    for op in sorted({c["op"] for c in cases}):
        sel = [c for c in cases if c["op"] == op]
        macs = sum(c["macs"] for c in sel)
        out[op] = {
            "macs": macs,
            "ref_instr_per_mac": round(sum(c["ref_instr"] for c in sel) / macs, 3),
            "dsp_instr_per_mac": round(sum(c["dsp_instr"] for c in sel) / macs, 3),
        }
    return out


def markdown(result: dict) -> str:
    info = result["run"]
    lines = [
        "# Kernel benchmark: QEMU mps2-an386 (Cortex-M4F)",
        "",
        f"Counter: `{info['counter']}` (SysTick under `-icount shift={info['icount_shift']}`: "
        "executed instructions, deterministic; QEMU does not model cycles, so these are "
        "instructions, not cycles). Compiler: "
        f"{result['toolchain']['gcc']}, `{' '.join(CPU + CFLAGS[:2])}`. Generated by "
        "`tools/bench_kernels.py`; every output of the DSP path equals the scalar path's "
        f"(all cases: {'yes' if all(c['equal'] for c in result['cases']) else 'NO'}).",
        "",
        "Instructions per MAC include everything the kernel does per call (im2col, "
        "requantization of every output, loop overhead). Goal on the DSP path: <= "
        f"{GOAL_INSTR_PER_MAC} instructions/MAC (floor 0.5: two MACs per SMLAD).",
        "",
        "## Per op (MAC-weighted over the cases)",
        "",
        "| op | MACs | scalar instr/MAC | DSP instr/MAC | speed-up |",
        "|---|---:|---:|---:|---:|",
    ]
    for op, s in result["per_op"].items():
        lines.append(f"| {op} | {s['macs']:,} | {s['ref_instr_per_mac']:.2f} | "
                     f"{s['dsp_instr_per_mac']:.2f} | "
                     f"{s['ref_instr_per_mac'] / s['dsp_instr_per_mac']:.2f}x |")
    lines += ["", "## Per case", "",
              "| case | op | MACs | outputs | scalar instr | DSP instr | scalar instr/MAC | "
              "DSP instr/MAC | speed-up | stack scalar / DSP (B) |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in result["cases"]:
        lines.append(f"| {c['case']} | {c['op']} | {c['macs']:,} | {c['outputs']:,} | "
                     f"{c['ref_instr']:,} | {c['dsp_instr']:,} | {c['ref_instr_per_mac']:.2f} | "
                     f"{c['dsp_instr_per_mac']:.2f} | {c['speedup']:.2f}x | "
                     f"{c['ref_stack']} / {c['dsp_stack']} |")
    lines += ["", "## Engine size (arm-none-eabi-size)", "",
              "A program calling `ts_invoke` (all kernels reachable) minus the same program "
              "without the engine; `-O2`, `--gc-sections`.", "",
              "| build | flash (text+data) | static RAM (data+bss) |", "|---|---:|---:|"]
    for key, label in (("scalar", "TS_USE_DSP=0"), ("dsp", "TS_USE_DSP=1")):
        s = result["engine_size"][key]
        lines.append(f"| {label} | {s['flash_bytes']:,} B | {s['static_ram_bytes']:,} B |")
    lines += ["", f"Bench firmware: text {result['bench_elf']['text']:,} B, data "
              f"{result['bench_elf']['data']:,} B, bss {result['bench_elf']['bss']:,} B; "
              f"stack region {info['stack_size']:,} B (each call's stack use is in the "
              "table above)."]
    if result.get("model"):
        m = result["model"]
        lines += ["", f"## Whole model ({result['export']})", "",
                  f"ts_invoke (TS_USE_DSP={m['dsp']}): {m['invoke_instr']:,} instructions for "
                  f"{m['macs']:,} MACs = {m['invoke_instr'] / m['macs']:.2f} instr/MAC; stack "
                  f"{m['stack']} B; arena {m['arena']:,} B.", "",
                  "| layer | op | MACs | scalar instr | DSP instr | DSP instr/MAC |",
                  "|---:|---|---:|---:|---:|---:|"]
        for lay in result["layers"]:
            per = f"{lay['dsp_instr_per_mac']:.2f}" if lay["macs"] else "-"
            lines.append(f"| {lay['index']} | {lay['op']} | {lay['macs']:,} | "
                         f"{lay['ref_instr']:,} | {lay['dsp_instr']:,} | {per} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--export", type=Path, help="also time every layer of this RUN/export")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--keep-build", action="store_true", help="keep the build folder")
    args = ap.parse_args(argv)
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: run tools/setup.sh")
    export = args.export.resolve() if args.export else None
    tmp = Path(tempfile.mkdtemp(prefix="bench-kernels-"))
    try:
        elf = build(tmp, "kernels_bench", BENCH_SRC, 1, export)
        parsed = parse(run_qemu(elf))
        result = {
            "benchmark": "kernels",
            "board": "qemu-m4 (QEMU mps2-an386, Cortex-M4F)",
            "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "toolchain": {
                "gcc": _run(["arm-none-eabi-gcc", "--version"]).splitlines()[0],
                "qemu": _run(["qemu-system-arm", "--version"]).splitlines()[0],
                "cflags": CPU + CFLAGS,
            },
            "run": {**parsed["info"], "qemu_args": QEMU},
            "goal_dsp_instr_per_mac": GOAL_INSTR_PER_MAC,
            "cases": parsed["cases"],
            "per_op": per_op_summary(parsed["cases"]),
            "engine_size": {"scalar": engine_size(tmp, 0), "dsp": engine_size(tmp, 1)},
            "bench_elf": size_of(elf),
            "export": str(export.relative_to(ROOT)) if export and export.is_relative_to(ROOT)
            else (str(export) if export else None),
            "layers": parsed["layers"],
            "model": parsed["model"],
        }
    finally:
        if args.keep_build:
            print(f"build kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kernels_qemu-m4.json").write_text(json.dumps(result, indent=2) + "\n")
    md = markdown(result)
    (args.out / "kernels_qemu-m4.md").write_text(md)
    print(md)
    return result


if __name__ == "__main__":
    main()
