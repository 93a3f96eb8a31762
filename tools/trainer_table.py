"""The on-device trainer's cost tables (docs/trainer.md) from runs of tools/bench_trainer.sh.

    .venv/bin/python tools/trainer_table.py [--datasets digits,fashion-mnist]
                                            [--export NAME=RUN/export] [--only NAME[/CORE],...]

Builds tools/bench/trainer_bench.c per training mode and core with tools/bench_trainer.sh and
runs it on QEMU mps2-an386 under ``-icount``, where ``ts_cycles()`` counts executed
**instructions** (deterministic: the same build gives the same counts on any host). Per build
it records the phases of each epoch record and of the whole call (frozen layers, float
forward, backward, update, evaluation), the ELF's sizes, the final loss and a fingerprint of
the re-quantized head (two cores that train alike give the same one), and for update=head the
counter's own cost (the same training again without per-phase counting). Writes
``benchmarks/results/trainer_qemu.{json,md}``.

The exports are the test suite's: digits (all 1,437 training images, 30 epochs, seed 0) and
Fashion-MNIST (3,000 random images, 3 epochs, seed 0), each quantized and exported with the
200-sample test set; the run folders live under ``runs/_bench_trainer/`` (stages: a rerun
reuses them). ``--export NAME=DIR`` uses an existing export instead. Builds that train a
fixed number of steps (the slow modes on Fashion-MNIST, last-block on the M0+ code) are
scaled to an epoch per sample (forward, backward, frozen layers) and per batch (update).

Not a test: nothing here asserts a speed (tests/test_trainer.py checks what the trainer
computes on the same builds).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from _firmware_stamp import firmware_stamp

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SCRIPT = ROOT / "tools" / "bench_trainer.sh"
PHASES = ("frozen", "forward", "backward", "update", "evaluation")  # ts_trainer_phase_t order
BATCH = 32  # trainer_bench.c's batch size
RAM_BYTES = 4 << 20  # the emulated board's RAM (boards/platform-qemu/ldscripts/qemu_mps2.ld)
#: How each export is made: the stages' keyword arguments (the test suite's exports).
EXPORTS = {"digits": {"epochs": 30}, "fashion-mnist": {"keep": 3000, "epochs": 3}}


@dataclass(frozen=True)
class Build:
    """One build of trainer_bench.c: a training mode on a core, for an epoch or some steps."""

    name: str
    dataset: str
    core: str  # m4f | m0plus (bench_trainer.sh's names)
    update: int = 0  # 0 head, 1 last-block, 2 bias
    cache: bool = True  # the trained layers' inputs cached once
    steps: int = 0  # 0: one epoch

    def bench_flags(self) -> list[str]:
        out = [f"-DBENCH_UPDATE={self.update}", f"-DBENCH_CACHE={int(self.cache)}"]
        return out + ([f"-DBENCH_STEPS={self.steps}"] if self.steps else [])


BUILDS = (
    Build("head", "digits", "m4f"),
    Build("head", "digits", "m0plus"),
    Build("head-recomputed", "digits", "m4f", cache=False),
    Build("last-block-cached", "digits", "m4f", update=1),
    Build("last-block", "digits", "m4f", update=1, cache=False),
    Build("bias", "digits", "m4f", update=2, cache=False),
    Build("last-block", "digits", "m0plus", update=1, cache=False, steps=1),
    Build("head", "fashion-mnist", "m4f"),
    Build("last-block-cached", "fashion-mnist", "m4f", update=1, steps=10),
    Build("last-block", "fashion-mnist", "m4f", update=1, cache=False, steps=10),
    Build("bias", "fashion-mnist", "m4f", update=2, cache=False, steps=5),
)


def build_key(b: Build) -> str:
    return f"{b.dataset}/{b.name}/{b.core}"


def make_export(dataset: str, work_dir: Path) -> Path:
    """Train, quantize and export ``dataset`` as the test suite does (cached stages)."""
    from tinysift.stages.export import export
    from tinysift.stages.quantize import quantize
    from tinysift.stages.train import train

    run = work_dir / dataset
    train(dataset, run, seed=0, progress=False, **EXPORTS[dataset])
    quantize(run)
    export(run)
    return run / "export"


def parse_bench(text: str) -> dict:
    """The summary lines trainer_bench.c prints (tests/test_trainer.py parses the weights)."""
    out: dict = {"epochs": []}
    for line in text.splitlines():
        word, _, rest = line.partition(" ")
        f = rest.split()
        if word == "size" and len(f) == 6:
            out["elf"] = {f[0]: int(f[1]), f[2]: int(f[3]), f[4]: int(f[5])}
        elif word == "mode":
            out["mode"] = f[0]
            out["backbone_workspace_bytes"], out["backbone_q_bytes"] = int(f[4]), int(f[6])
        elif word == "ws_size":
            out["workspace_bytes"] = int(f[0])
        elif word == "epoch":
            out["epochs"].append({"epoch": int(f[0]), "mean_loss": float(f[1]),
                                  "correct": int(f[2]),
                                  "phases": dict(zip(PHASES, map(int, f[3:]), strict=True))})
        elif word == "result":
            out["test_count"], out["test_correct_int8"] = int(f[1]), int(f[4])
            out["test_correct_float"] = int(f[3])
        elif word == "steps_run":
            out["steps_run"] = int(f[0])
        elif word == "cycles":
            out["phases"] = dict(zip(PHASES, map(int, f), strict=True))
        elif word == "overhead":  # uncounted U counted C status S
            out["uncounted"], out["counted"] = int(f[1]), int(f[3])
        elif word == "platform":  # platform NAME counter NAME
            out["platform"], out["counter"] = f[0], f[2]
        elif word in ("qw", "qb", "qs"):
            out.setdefault("_head", []).append(line)
    if "phases" not in out or not out["epochs"]:
        raise ValueError("trainer_bench printed no phase counts:\n" + text[-2000:])
    out["head_fingerprint"] = hashlib.sha256("\n".join(out.pop("_head", [])).encode()
                                             ).hexdigest()[:16]
    return out


def per_epoch(b: Build, raw: dict, n_train: int) -> dict:
    """Instructions of one epoch over ``n_train`` samples per phase: the epoch record itself
    (a one-epoch build) or the steps' record scaled (per sample; the update per batch)."""
    rec = raw["epochs"][0]["phases"]
    if not b.steps:
        return {p: rec[p] for p in PHASES[:4]}
    samples = raw["steps_run"] * BATCH
    batches = math.ceil(n_train / BATCH)
    scaled = {p: round(rec[p] * n_train / samples) for p in PHASES[:3]}
    scaled["update"] = round(rec["update"] * batches / raw["steps_run"])
    return scaled


def summarize(b: Build, raw: dict, info: dict) -> dict:
    n, t = info["train_count"], info["test_count"]
    ep = per_epoch(b, raw, n)
    epoch_total = sum(ep.values())
    frozen_outside = raw["phases"]["frozen"] - sum(e["phases"]["frozen"] for e in raw["epochs"])
    row = {**asdict(b), "flags": b.bench_flags(), "n_train": n, "n_test": t,
           "per_epoch": {**ep, "epoch": epoch_total},
           "per_sample": round(epoch_total / n),
           # the cache fill (N + T samples) where there is a cache; else evaluation's passes
           "frozen_outside_epochs": frozen_outside,
           "evaluation": raw["phases"]["evaluation"],
           "final_loss": raw["epochs"][-1]["mean_loss"],
           "scaled_from_steps": raw["steps_run"] if b.steps else None, "raw": raw}
    if b.cache:
        row["cache_fill_per_sample"] = round(frozen_outside / (n + t))
    if "uncounted" in raw:
        row["counter_cost"] = (raw["counted"] - raw["uncounted"]) / raw["uncounted"]
    return row


def cache_bytes(b: Build, info: dict) -> int:
    """The static cache of the trained layers' inputs a build holds (N + T samples)."""
    if not b.cache:
        return 0
    dims = info["model_dims"]
    per = {0: info["feature_dim"], 1: int(dims["TS_MODEL_BLOCK_IN_C"])
           * int(dims["TS_MODEL_BLOCK_PIXELS"])}.get(b.update, 0)
    return (info["train_count"] + info["test_count"]) * per


def run_build(b: Build, export: Path, log_dir: Path | None = None) -> dict:
    cmd = [str(SCRIPT), str(export), "1", b.core, *b.bench_flags()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{build_key(b)}: bench_trainer.sh failed ({done.returncode}):\n"
                         f"{done.stdout[-1500:]}{done.stderr[-1500:]}")
    if log_dir is not None:  # the bench's whole output (weights, logits) beside the results
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / (build_key(b).replace("/", "_") + ".txt")).write_text(done.stdout)
    return parse_bench(done.stdout)


def given_exports(specs: list[str], datasets: list[str]) -> dict[str, Path]:
    """The ``--export NAME=DIR`` options as {dataset: resolved export folder}.

    Parameters
    ----------
    specs : the options' values
    datasets : the datasets benchmarked (``--datasets``)

    Returns
    -------
    dict[str, Path]

    Raises
    ------
    SystemExit
        A value without ``=``, an empty name or folder, a dataset named twice or not among
        ``datasets`` (its export would be ignored), naming the option and the fix.
    """
    given: dict[str, Path] = {}
    for spec in specs:
        name, eq, folder = spec.partition("=")
        name, folder = name.strip(), folder.strip()
        if not eq or not name or not folder:
            raise SystemExit(f"--export {spec}: give NAME=DIR, a dataset and its export folder "
                             "(e.g. --export digits=runs/NAME/export)")
        if name in given:
            raise SystemExit(f"--export names {name} twice; give one export per dataset")
        if name not in datasets:
            raise SystemExit(f"--export {spec}: {name} is not among the datasets benchmarked "
                             f"({', '.join(datasets) or 'none'}); add it to --datasets or drop "
                             "the option")
        given[name] = Path(folder).resolve()
    return given


def export_info(export: Path) -> dict:
    import json

    path = export / "export.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"{path} not found: --export takes a folder written by `tinysift "
                         "export --run RUN` (RUN/export)") from None
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{path} is not a readable export.json ({exc}); export the run "
                         "again (`tinysift export --run RUN`)") from None
    missing = [k for k in ("content_hash", "train_samples", "test_samples", "feature_dim",
                           "num_classes", "layers", "head_layer") if k not in meta]
    if missing:
        raise SystemExit(f"{path} lacks {', '.join(missing)}: not a run's export; export the "
                         "run again (`tinysift export --run RUN`)")
    dims = subprocess.run([sys.executable, str(ROOT / "firmware" / "scripts" /
                                               "ts_model_dims.py"), str(export)],
                          capture_output=True, text=True, check=True).stdout.split()
    return {"content_hash": meta["content_hash"], "train_count": int(meta["train_samples"]),
            "test_count": int(meta["test_samples"]), "feature_dim": int(meta["feature_dim"]),
            "num_classes": int(meta["num_classes"]),
            "model_dims": dict(d[2:].split("=", 1) for d in dims)}


def fmt_m(v: float) -> str:
    """Instructions in millions (k below a million), as the docs write them."""
    if v >= 1e9:
        return f"{v / 1e6:,.0f} M"
    if v >= 1e6:
        return f"{v / 1e6:.2f} M"
    return f"{v / 1e3:.1f} k"


def markdown(res: dict) -> str:
    rows = res["builds"]
    lines = ["# The on-device trainer's cost on QEMU (instructions)", "",
             "`tools/trainer_table.py`: tools/bench/trainer_bench.c built by "
             "`tools/bench_trainer.sh` and run on QEMU mps2-an386 under `-icount` (the counter "
             "counts executed instructions: deterministic, not cycles). Batch 32, lr 0.05, "
             "momentum 0.9, seed 7. `m4f`: Cortex-M4F, hard float; `m0plus`: the engine "
             "compiled as Cortex-M0+ code (ARMv6-M, soft float) on the same emulated core. "
             f"{res['toolchain']['gcc']}; {res['toolchain']['qemu']}.", ""]
    for ds, info in res["exports"].items():
        lines.append(f"- {ds}: N = {info['train_count']:,} training samples, T = "
                     f"{info['test_count']} test samples, export {info['content_hash']}")
    lines += ["", "## One epoch, per mode and core", "",
              "| dataset | build | core | frozen layers | forward | backward | update | "
              "**epoch** | per sample | once per run: frozen layers | evaluation |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        e = r["per_epoch"]
        k = r["scaled_from_steps"]
        note = f" ({k} step{'s' * (k > 1)}, scaled)" if k else ""
        lines.append(
            f"| {r['dataset']} | {r['name']}{note} | {r['core']} | {fmt_m(e['frozen'])} | "
            f"{fmt_m(e['forward'])} | {fmt_m(e['backward'])} | {fmt_m(e['update'])} | "
            f"**{fmt_m(e['epoch'])}** | {fmt_m(r['per_sample'])} | "
            f"{fmt_m(r['frozen_outside_epochs'])} | {fmt_m(r['evaluation'])} |")
    lines += ["", "Frozen layers once per run: the cache fill (N + T samples) where the build "
              "caches the trained layers' inputs, otherwise the evaluation's passes through "
              "the frozen layers. Per sample: the epoch / N.", ""]
    for sk in res.get("not_built", []):
        lines.append(f"Not built: {sk['build']}: its cache of the trained layers' inputs "
                     f"needs {sk['cache_bytes']:,} B, over the emulated board's "
                     f"{sk['ram_bytes']:,} B of RAM.")
        lines.append("")
    pairs = [(a, b) for a in rows for b in rows
             if a["core"] == "m4f" and b["core"] == "m0plus" and a["dataset"] == b["dataset"]
             and a["name"] == b["name"]]
    if pairs:
        lines += ["## Without an FPU: M0+ code against the M4F", "",
                  "| dataset | build | phase | M4F | M0+ code | ratio |",
                  "|---|---|---|---:|---:|---:|"]
        verdicts = []
        for a, b in pairs:
            items = [(p, a["per_epoch"][p], b["per_epoch"][p])
                     for p in ("forward", "backward", "update", "epoch")]
            items.append(("evaluation", a["evaluation"], b["evaluation"]))
            if a.get("cache_fill_per_sample") and b.get("cache_fill_per_sample"):
                items.append(("cache fill per sample", a["cache_fill_per_sample"],
                              b["cache_fill_per_sample"]))
            for p, x, y in items:
                lines.append(f"| {a['dataset']} | {a['name']} | {p} | {fmt_m(x)} | "
                             f"{fmt_m(y)} | {y / x:.1f}x |")
            if a["steps"] != b["steps"]:
                verdict = ("trained for different lengths (the M0+ build a few steps, scaled): "
                           "losses not compared")
            elif (a["raw"]["head_fingerprint"], a["final_loss"]) == (
                    b["raw"]["head_fingerprint"], b["final_loss"]):
                verdict = "the same final loss (9 digits) and the same re-quantized head"
            else:
                verdict = "DIFFERENT final losses or re-quantized heads"
            verdicts.append(f"- {a['dataset']} {a['name']}: {verdict}.")
        lines += ["", "The two builds of each pair:", "", *verdicts, ""]
    over = [r for r in rows if "counter_cost" in r]
    if over:
        lines += ["## The counter's own cost", "",
                  "The same head training from the filled cache with and without per-phase "
                  "counting (three counter reads per training sample):", "",
                  "| dataset | core | counted | uncounted | cost |", "|---|---|---:|---:|---:|"]
        for r in over:
            lines.append(f"| {r['dataset']} | {r['core']} | {r['raw']['counted']:,} | "
                         f"{r['raw']['uncounted']:,} | {100 * r['counter_cost']:.2f} % |")
        lines.append("")
    lines += ["## Sizes (the whole bench program)", "",
              "| dataset | build | core | text | data | bss |", "|---|---|---|---:|---:|---:|"]
    for r in rows:
        elf = r["raw"]["elf"]
        lines.append(f"| {r['dataset']} | {r['name']} | {r['core']} | {elf['text']:,} | "
                     f"{elf['data']:,} | {elf['bss']:,} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(EXPORTS))
    ap.add_argument("--export", action="append", default=[], metavar="NAME=DIR",
                    help="use this export for dataset NAME instead of building one")
    ap.add_argument("--only", default="",
                    help="builds to run, NAME or NAME/CORE, comma-separated (default: all)")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    ap.add_argument("--work-dir", type=Path, default=ROOT / "runs" / "_bench_trainer")
    ap.add_argument("--logs", type=Path, default=None,
                    help="also write each build's bench output to this folder")
    ap.add_argument("--render", action="store_true",
                    help="only rewrite the markdown from the results JSON in --out-dir")
    args = ap.parse_args(argv)

    import datetime as _dt
    import json
    import shutil

    from tinysift.bench.progress import write_results
    from tinysift.device.icount import run_tool
    from tinysift.runs import machine_info, package_versions

    if args.render:
        path = args.out_dir / "trainer_qemu.json"
        try:  # a missing or torn file ended in a FileNotFoundError/JSONDecodeError traceback
            res = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SystemExit(f"--render rewrites the markdown of {path}, which cannot be read "
                             f"({getattr(exc, 'strerror', None) or exc}): run the bench "
                             "without --render first, or pass the --out-dir that holds "
                             "it") from None
        write_results(res, args.out_dir, "trainer_qemu", markdown)
        return 0
    datasets = [d for d in args.datasets.split(",") if d]
    for d in datasets:
        if d not in EXPORTS:
            raise SystemExit(f"unknown dataset {d!r}; known: {', '.join(EXPORTS)}")
    given = given_exports(args.export, datasets)
    only = set(filter(None, args.only.split(",")))
    known = {b.name for b in BUILDS} | {f"{b.name}/{b.core}" for b in BUILDS}
    if only - known:
        raise SystemExit(f"unknown build(s) {sorted(only - known)}; known: "
                         f"{', '.join(sorted(known))}")
    # the given exports are read before any tool runs: a bad one fails in one line, at once
    given_infos = {d: export_info(p) for d, p in given.items()}
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: run `make setup` (tools/setup.sh installs it)")
    exports = {d: given[d] if d in given else make_export(d, args.work_dir).resolve()
               for d in datasets}
    infos = {d: given_infos[d] if d in given else export_info(p) for d, p in exports.items()}
    rows, skipped = [], []
    for b in BUILDS:
        if b.dataset not in exports or (only and not {b.name, f"{b.name}/{b.core}"} & only):
            continue
        print(f"{build_key(b)} ...", flush=True)
        info = infos[b.dataset]
        need = cache_bytes(b, info)
        if need > RAM_BYTES:  # refused before building, with the numbers
            skipped.append({"build": build_key(b), "cache_bytes": need, "ram_bytes": RAM_BYTES})
            print(f"  not built: its cache needs {need:,} B, the board has {RAM_BYTES:,} B",
                  flush=True)
            continue
        rows.append(summarize(b, run_build(b, exports[b.dataset], args.logs), info))
        e = rows[-1]["per_epoch"]
        print(f"  epoch {fmt_m(e['epoch'])} ({fmt_m(rows[-1]['per_sample'])} a sample)",
              flush=True)

    def tool_version(cmd: str) -> str:
        return run_tool([cmd, "--version"]).splitlines()[0]

    res = {"benchmark": "trainer", "board": "qemu-m4 (QEMU mps2-an386, -icount)",
           "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
           "toolchain": {"gcc": tool_version("arm-none-eabi-gcc"),
                         "qemu": tool_version("qemu-system-arm")},
           "exports": {d: {**infos[d], "path": str(p.relative_to(ROOT))
                           if p.is_relative_to(ROOT) else str(p),
                           "stages": EXPORTS[d] if d not in given else "given"}
                       for d, p in exports.items()},
           "builds": rows, "not_built": skipped, "machine": machine_info(),
           "versions": package_versions(), "firmware_source": firmware_stamp("trainer_qemu")}
    write_results(res, args.out_dir, "trainer_qemu", markdown)
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
