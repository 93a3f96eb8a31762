"""tools/bench_kernels.py: its results file records the code version and the machine beside
the toolchain, its table names the flags the JSON records, and a wrong --export is refused
with one line (not a compiler error's traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools_needed import load_tool

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _bench():
    return load_tool("bench_kernels")


def test_results_record_versions_and_machine(tmp_path, monkeypatch):
    bench = _bench()
    committed = json.loads((RESULTS / "kernels_qemu-m4.json").read_text())
    parsed = {"info": {k: committed["run"][k] for k in committed["run"] if k != "qemu_args"},
              "cases": committed["cases"], "layers": [], "model": None}
    elf = {"text": 1, "data": 2, "bss": 3}
    monkeypatch.setattr(bench.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(bench, "build", lambda *a, **k: tmp_path / "x.elf")
    monkeypatch.setattr(bench, "run_qemu", lambda elf: "")
    monkeypatch.setattr(bench, "parse", lambda out: parsed)
    monkeypatch.setattr(bench, "size_of", lambda path: elf)
    monkeypatch.setattr(bench, "run_tool", lambda cmd: "tool 1.0\n")
    res = bench.main(["--out", str(tmp_path)])
    written = json.loads((tmp_path / "kernels_qemu-m4.json").read_text())
    assert written["versions"]["tinysift_source"] and "git" in written["versions"]
    assert {"platform", "cpus", "cpu_model"} <= set(written["machine"])
    assert written["versions"] == res["versions"]


def test_table_names_the_flags_the_results_record():
    bench = _bench()
    res = json.loads((RESULTS / "kernels_qemu-m4.json").read_text())
    assert bench.markdown(res) == (RESULTS / "kernels_qemu-m4.md").read_text()
    res["toolchain"]["cflags"] = [*res["toolchain"]["cflags"][:4], "-std=c11", "-O3"]
    assert "-mfloat-abi=hard -std=c11 -O3`" in bench.markdown(res)


def test_an_export_folder_without_an_export_is_refused(tmp_path, monkeypatch):
    bench = _bench()
    monkeypatch.setattr(bench.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    with pytest.raises(SystemExit) as exc:
        bench.main(["--export", str(tmp_path), "--out", str(tmp_path)])
    assert "not an export folder (no ts_export.h)" in str(exc.value.code)
