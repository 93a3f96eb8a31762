"""Run fuzzing campaigns of the device side and write their results file.

    .venv/bin/python tools/fuzz_campaign.py [--targets protocol,model,model-dsp,app]
        [--seconds 600 | --runs 1000000] [--out-dir benchmarks/results]

Each target runs through ``tools/fuzz.sh`` (libFuzzer + ASan + UBSan; harnesses in
firmware/test/fuzz/) in its own fresh working folder, one after the other. The figures come
from libFuzzer's own final lines (``Done N runs in S second(s)``, ``stat::*``, the ``DONE``
status line); the results file records the commit, the machine, clang's version and each
target's exit status and artifacts (crash-/leak-/timeout- files, kept in the work folder).
Writes ``fuzz.json`` and ``fuzz.md`` in ``--out-dir``; exit status 1 when any target crashed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _args import at_least

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))

TARGETS = {
    "protocol": "TSP/1 framer, command parser, number parsers, db decoder, record writer",
    "model": "engine model validation: corrupted layer tables through `ts_model_check`, the "
             "executor, the trainer's sizes; malformed `.tflite`",
    "model-dsp": "the same with `TS_USE_DSP=1`: the DSP kernels and their scratch, checked "
                 "against the scalar kernels",
    "app": "the firmware app: command dispatch, `db load` / `db stream` state machines, every "
           "command, with a real export",
}
ARTIFACTS = ("crash-", "leak-", "timeout-", "oom-")


def parse_log(log: str) -> dict:
    """The campaign's figures from libFuzzer's output (``-print_final_stats=1``).

    Raises ValueError when the log has no ``Done N runs`` line (the fuzzer did not finish:
    a build failure or a crash before the end)."""
    done = re.search(r"^Done (\d+) runs in (\d+) second", log, re.M)
    if done is None:
        raise ValueError("libFuzzer's log has no 'Done N runs in S second(s)' line")
    stats = {k: int(v) for k, v in re.findall(r"^stat::(\w+):\s+(\d+)", log, re.M)}
    status = re.findall(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/", log, re.M)
    out = {"executions": int(done[1]), "seconds": int(done[2]),
           "exec_per_s": stats.get("average_exec_per_sec"),
           "new_units": stats.get("new_units_added"),
           "peak_rss_mb": stats.get("peak_rss_mb")}
    if status:
        _, cov, ft, corp = status[-1]
        out.update(coverage=int(cov), features=int(ft), corpus=int(corp))
    return out


def run_target(target: str, limit: list[str], work: Path) -> dict:
    """One campaign of ``target`` in a fresh ``work`` folder (its corpus starts from the
    committed seeds only, so campaigns are comparable)."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    env = dict(os.environ, FUZZ_OUT=str(work))
    cmd = [str(ROOT / "tools" / "fuzz.sh"), target]
    if limit[0] == "runs":
        env["FUZZ_RUNS"] = limit[1]
    else:
        cmd.append(limit[1])
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    log = res.stdout + res.stderr
    (work / "fuzz.log").write_text(log)
    artifacts = sorted(p.name for p in work.iterdir() if p.name.startswith(ARTIFACTS))
    row = {"target": target, "what": TARGETS[target], "exit_status": res.returncode,
           "artifacts": artifacts, "wall_seconds": round(wall, 1), "log": str(work / "fuzz.log")}
    try:
        row.update(parse_log(log))
    except ValueError as exc:
        row["error"] = f"{exc}; see {work / 'fuzz.log'}"
    return row


def _clang_version() -> str:
    try:
        out = subprocess.run([os.environ.get("CC_FUZZ", "clang"), "--version"],
                             capture_output=True, text=True).stdout
    except OSError:
        return "missing"
    return out.splitlines()[0] if out else "unknown"


def render(res: dict) -> str:
    lim = res["limit"]
    lines = [
        "# Fuzzing the device side",
        "",
        "libFuzzer + ASan + UBSan (`-fno-sanitize-recover=all`), built by `tools/fuzz.sh "
        "TARGET` (harnesses in `firmware/test/fuzz/`, docs/protocol.md \"Testing\"). Written by "
        "`tools/fuzz_campaign.py`; each target from the committed seeds in a fresh corpus, one "
        f"worker, {lim[1]} {'executions' if lim[0] == 'runs' else 's'} per target.",
        f"Commit {res['versions'].get('git', '?')}, started {res['written']}, {res['clang']}, "
        f"{res['machine']['cpu_model']} ({res['machine']['cpus']} CPUs).",
        "A crash, a sanitizer report or a violated harness property stops a target with exit "
        "status != 0 and leaves its input as an artifact.",
        "",
        "| target | what it fuzzes | executions | seconds | exec/s | coverage (cov / ft) "
        "| corpus | exit | artifacts |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["targets"]:
        if "error" in r:
            lines.append(f"| {r['target']} | {r['what']} | - | - | - | - | - | "
                         f"{r['exit_status']} | {r['error']} |")
            continue
        cov = f"{r.get('coverage', '-')} / {r.get('features', '-')}"
        arts = ", ".join(r["artifacts"]) or "none"
        lines.append(f"| {r['target']} | {r['what']} | {r['executions']:,} | {r['seconds']} "
                     f"| {r['exec_per_s']:,} | {cov} | {r.get('corpus', '-')} "
                     f"| {r['exit_status']} | {arts} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default=",".join(TARGETS))
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--seconds", type=at_least(1), help="seconds per target (default 600)")
    group.add_argument("--runs", type=at_least(1), help="executions per target")
    ap.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--work-dir", default=str(ROOT / "build" / "fuzz_campaign"))
    a = ap.parse_args(argv)
    targets = [t for t in a.targets.split(",") if t]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        ap.error(f"--targets: unknown {', '.join(map(repr, unknown)) or 'empty list'}; "
                 f"choose from {', '.join(TARGETS)}")
    limit = ["runs", str(a.runs)] if a.runs else ["seconds", str(a.seconds or 600)]

    from tinysift.runs import atomic_write_json, atomic_write_text, machine_info, package_versions

    # recorded before the runs: fuzz.sh builds the working tree as it is when a target starts
    provenance = {"written": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  "clang": _clang_version(), "machine": machine_info(),
                  "versions": package_versions()}
    rows = []
    for target in targets:
        print(f"[fuzz_campaign] {target}: {limit[1]} {limit[0]}", flush=True)
        row = run_target(target, limit, Path(a.work_dir) / target)
        rows.append(row)
        print(f"[fuzz_campaign] {target}: exit {row['exit_status']}, "
              f"{row.get('executions', '?')} executions, artifacts "
              f"{', '.join(row['artifacts']) or 'none'}", flush=True)
    res = {"tool": "tools/fuzz_campaign.py", "limit": limit, "targets": rows, **provenance}
    out = Path(a.out_dir)
    atomic_write_json(out / "fuzz.json", res)
    atomic_write_text(out / "fuzz.md", render(res))
    print(f"[fuzz_campaign] wrote {out / 'fuzz.json'} and {out / 'fuzz.md'}")
    failed = [r["target"] for r in rows if r["exit_status"] != 0 or r["artifacts"]
              or "error" in r]
    if failed:
        print(f"[fuzz_campaign] FAILED: {', '.join(failed)} (inputs and logs under "
              f"{a.work_dir})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
