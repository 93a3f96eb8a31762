"""The firmware's flash and RAM per board, with and without a model (docs/firmware-build.md).

    .venv/bin/python tools/firmware_size_table.py [--boards qemu-mps2-an386,...]

Per board: the app built by PlatformIO (``tinysift.device.build.build_firmware``, the build
`tinysift device run` makes) without a model, and with the digits test export (300 training
samples, seed 0, the CLI's ``--epochs 0`` rule; the STM32 boards' export with a 100-sample
``db`` buffer, as tests/test_device_firmware.py makes it), exported for that board so that
its memory plan is the board's. Records ``arm-none-eabi-size``'s figures, PlatformIO's own
RAM and flash lines, the plan the export stage made before the build (never below the
image: tests/test_memory_plan.py) and the build's wall time (a clean build folder each
time, this machine). Writes ``benchmarks/results/firmware_size.{json,md}``. Run folders:
``runs/_bench_firmware/``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _firmware_stamp import firmware_stamp

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BOARDS = ("qemu-mps2-an386", "qemu-netduinoplus2", "nucleo_f411re", "nucleo_l4r5zi")
#: The STM32 boards' export keeps 100 samples in the `db` buffer (128 KB of RAM on the F4s).
DB_CAPACITY = {"qemu-netduinoplus2": 100, "nucleo_f411re": 100, "nucleo_l4r5zi": 100}


def make_export(board: str, work_dir: Path) -> Path:
    from tinysift.stages.export import export
    from tinysift.stages.quantize import quantize
    from tinysift.stages.train import train

    run = work_dir / f"digits300-{board}"
    train("digits", run, keep=300, epochs=None, seed=0, progress=False)
    quantize(run)
    export(run, board=board, db_capacity=DB_CAPACITY.get(board))
    return run / "export"


def build(export: Path | None, board, out: Path) -> dict:
    import shutil

    from tinysift.device.build import build_firmware, platformio_sizes
    from tinysift.device.icount import size_of

    shutil.rmtree(out, ignore_errors=True)  # a clean build: its time is a whole build's
    t0 = time.perf_counter()
    res = build_firmware(export, board, out)
    seconds = time.perf_counter() - t0
    if res.flash_bytes is None or res.ram_bytes is None:
        from tinysift.device.build import describe_sizes

        raise SystemExit(f"{board.name}: {describe_sizes(res, board)}")
    return {"size": size_of(res.elf), "flash_bytes": res.flash_bytes,
            "ram_bytes": res.ram_bytes, "platformio": platformio_sizes(res.log),
            "seconds": round(seconds, 1)}


def markdown(res: dict) -> str:
    lines = ["# Firmware size per board", "",
             "`tools/firmware_size_table.py`: the app built with PlatformIO (the build "
             "`tinysift device run` makes), without a model and with the digits test export "
             "(300 training samples; `db` buffer of 100 samples on the STM32 boards), "
             "exported for each board. Flash = text + data, RAM = data + bss including the "
             "stack region (`arm-none-eabi-size`). Plan: the export's memory plan, made "
             "before building; it must never be below the image (it reserves the whole stack "
             "and rounds the app's code and state up).", "",
             "| board (env) | chip flash / RAM | without a model: flash / RAM | with the "
             "export: flash / RAM | plan: flash / RAM | plan - image: flash / RAM | "
             "build s (without / with) |", "|---|---|---|---|---|---|---|"]
    pio_differs = []
    for name, r in res["boards"].items():
        bare, full, plan = r["without_model"], r["with_export"], r["plan"]
        for what, b in (("without a model", bare), ("with the export", full)):
            pio = b["platformio"]
            if (pio.get("ram", {}).get("used"), pio.get("flash", {}).get("used")) != (
                    b["ram_bytes"], b["flash_bytes"]):
                pio_differs.append(f"{name} {what}: PlatformIO says {pio}")
        lines.append(
            f"| {name} (`{r['pio_env']}`) | {r['flash_capacity']:,} / {r['ram_capacity']:,} | "
            f"{bare['flash_bytes']:,} / {bare['ram_bytes']:,} | "
            f"{full['flash_bytes']:,} / {full['ram_bytes']:,} "
            f"({100 * full['ram_bytes'] / r['ram_capacity']:.0f} % of the RAM) | "
            f"{plan['flash_total']:,} / {plan['ram_total']:,} | "
            f"{plan['flash_total'] - full['flash_bytes']:+,} / "
            f"{plan['ram_total'] - full['ram_bytes']:+,} | "
            f"{bare['seconds']:.0f} / {full['seconds']:.0f} |")
    lines += ["", "PlatformIO's own RAM and flash lines give the same figures"
              + (" except: " + "; ".join(pio_differs) if pio_differs else ".")]
    m = res["machine"]
    lines += ["", f"Build times: a clean build folder each, {m['processor']} x {m['cpus']} "
              f"CPUs; platformio {res['versions'].get('platformio', '?')}; "
              f"{res['toolchain']['gcc']}.", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", default=",".join(BOARDS))
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    ap.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "_bench_firmware")
    args = ap.parse_args(argv)

    import datetime as _dt
    import json

    from tinysift.bench.progress import write_results
    from tinysift.boards import load_board
    from tinysift.device.icount import run_tool
    from tinysift.errors import TinysiftError
    from tinysift.runs import machine_info, package_versions

    try:  # every board known before the first export trains (its error lists the known ones)
        boards = {name: load_board(name) for name in filter(None, args.boards.split(","))}
    except TinysiftError as exc:
        raise SystemExit(f"--boards: {exc}") from None
    rows = {}
    for name, board in boards.items():
        export = make_export(name, args.work_dir)
        meta = json.loads((export / "export.json").read_text())
        print(f"{name}: building without a model and with the export ...", flush=True)
        rows[name] = {
            "pio_env": board.pio_env, "flash_capacity": board.flash_bytes,
            "ram_capacity": board.ram_bytes, "export": str(export.relative_to(ROOT))
            if export.is_relative_to(ROOT) else str(export),
            "export_hash": meta["content_hash"], "train_samples": meta["train_samples"],
            "plan": meta["memory_plan"],
            "without_model": build(None, board, args.work_dir / f"build-{name}-bare"),
            "with_export": build(export, board, args.work_dir / f"build-{name}-export")}
        w = rows[name]["with_export"]
        print(f"  flash {w['flash_bytes']:,} B, RAM {w['ram_bytes']:,} B "
              f"({w['seconds']:.0f} s)", flush=True)
    res = {"benchmark": "firmware_size",
           "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
           "toolchain": {"gcc": run_tool(["arm-none-eabi-gcc", "--version"]).splitlines()[0]},
           "boards": rows, "machine": machine_info(),
           "versions": package_versions(), "firmware_source": firmware_stamp("firmware_size")}
    write_results(res, args.out_dir, "firmware_size", markdown)
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
