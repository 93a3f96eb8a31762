#!/usr/bin/env python
"""Exact per-instruction profile of one ``ts_invoke`` on the emulated Cortex-M4.

QEMU 7.2 (Debian's) has no TCG plugins, so there is no profiler to attach; but with
``-singlestep`` every translation block is one instruction, and ``-d exec,nochain`` logs the
address of every block executed. The histogram of those addresses, against the ELF's
symbols and its disassembly, counts how often each instruction ran: where the kernels spend
their instructions (register spills, loop overhead), down to the line.

    .venv/bin/python tools/profile_qemu.py --export runs/k-fmnist/export
    .venv/bin/python tools/profile_qemu.py --export runs/k-fmnist/export --function conv_pairs_asm

The bench firmware (tools/bench/kernels_bench.c, TS_BENCH_MODEL_ONLY) runs one invoke of
the export's first test input; the counts include what the firmware does around it (stack
painting, the model check), listed under their own symbols. The log is streamed through a
pipe (about 80 bytes an instruction), nothing is kept on disk.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))

from tinysift.device.icount import BENCH_SRC, QEMU, build  # noqa: E402

# "Trace 0: 0x7f... [00800408/00005c84/00000110/ff020201] Reset_Handler": the guest PC is
# the second field in the brackets
TRACE_RE = re.compile(rb"^Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/")
DIS_RE = re.compile(r"^\s*([0-9a-f]+):")


def count_pcs(lines) -> collections.Counter:
    """Executions per guest address from QEMU's ``-d exec`` lines (bytes)."""
    counts: collections.Counter = collections.Counter()
    for line in lines:
        m = TRACE_RE.match(line)
        if m:
            counts[int(m.group(1), 16)] += 1
    return counts


def symbols(elf: Path) -> list[tuple[int, int, str]]:
    """(start, size, name) of the ELF's functions, Thumb bit cleared."""
    out = subprocess.run(["arm-none-eabi-nm", "-S", "--size-sort", str(elf)],
                         capture_output=True, text=True, check=True).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tT":
            syms.append((int(parts[0], 16) & ~1, int(parts[1], 16), parts[3]))
    return sorted(syms)


def per_function(counts: collections.Counter, syms) -> collections.Counter:
    """Executed instructions per function ("?" outside every symbol)."""
    per: collections.Counter = collections.Counter()
    for pc, n in counts.items():
        name = "?"
        for start, size, sym in syms:
            if start <= pc < start + size:
                name = sym
                break
        per[name] += n
    return per


def annotate(elf: Path, function: str, counts: collections.Counter) -> list[str]:
    """The function's disassembly, each line prefixed with its execution count."""
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", "--no-show-raw-insn", str(elf)],
                         capture_output=True, text=True, check=True).stdout
    out, inside = [], False
    for line in dis.splitlines():
        if line.endswith(f"<{function}>:"):
            inside = True
            out.append(line)
            continue
        if inside:
            if not line.strip():
                break
            m = DIS_RE.match(line)
            n = counts.get(int(m.group(1), 16), 0) if m else 0
            out.append(f"{n:9d} {line}")
    if not out:
        raise SystemExit(f"no function {function!r} in {elf}")
    return out


def profile(export: Path, work: Path, dsp: bool = True) -> dict:
    """Build the bench firmware for ``export`` in ``work`` and run it instruction by
    instruction: {"elf", "serial" (its output), "counts" (per address), "functions"}."""
    elf = build(Path(work), "invoke", BENCH_SRC, int(dsp), Path(export).resolve(),
                extra_defines=["-DTS_BENCH_MODEL_ONLY"])
    fifo = Path(work) / "exec.fifo"
    os.mkfifo(fifo)
    cmd = [*QEMU[:-1], "-singlestep", "-d", "exec,nochain", "-D", str(fifo), "-kernel", str(elf)]
    qemu = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    with open(fifo, "rb") as log:
        counts = count_pcs(log)
    serial = qemu.communicate(timeout=600)[0].decode(errors="replace")
    if "BENCH_DONE" not in serial:
        raise SystemExit(f"the bench firmware failed:\n{serial[-2000:]}")
    return {"elf": elf, "serial": serial, "counts": counts,
            "functions": per_function(counts, symbols(elf))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--export", type=Path, required=True, help="a RUN/export folder")
    ap.add_argument("--function", help="also print this function's annotated disassembly")
    ap.add_argument("--top", type=int, default=20, help="functions listed (default 20)")
    ap.add_argument("--scalar", action="store_true", help="TS_USE_DSP=0 (default: DSP)")
    args = ap.parse_args(argv)
    if not (args.export / "ts_export.h").is_file():
        raise SystemExit(f"--export {args.export}: not an export folder (no ts_export.h); "
                         "give RUN/export of a run `tinysift export` made")
    with tempfile.TemporaryDirectory(prefix="profile-qemu-") as tmp:
        prof = profile(args.export, Path(tmp), dsp=not args.scalar)
        model = re.search(r"BENCH_MODEL .*", prof["serial"])
        print(model.group(0) if model else "")
        print(f"{sum(prof['counts'].values()):,} instructions executed in all")
        for name, n in prof["functions"].most_common(args.top):
            print(f"{n:12,d}  {name}")
        if args.function:
            print("\n".join(annotate(prof["elf"], args.function, prof["counts"])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
