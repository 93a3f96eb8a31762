"""tools/bench_mlperf.py: its results file records the models' seed and each .tflite's hash
(the models are generated: trained briefly on stand-in data), and its table is what the
current code renders from the committed JSON."""

from __future__ import annotations

import importlib
import json
import types
from pathlib import Path

from tools_needed import load_tool

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _bench():
    return load_tool("bench_mlperf")


def test_committed_table_rerenders_identical():
    res = json.loads((RESULTS / "mlperf_tiny_qemu-m4.json").read_text())
    assert _bench().markdown(res) == (RESULTS / "mlperf_tiny_qemu-m4.md").read_text()


def test_results_record_the_seed_and_the_models_hashes(tmp_path, monkeypatch):
    from tinysift.runs import file_hash

    bench = _bench()
    seeds = []

    def fake_model(name, seed=0):
        seeds.append(seed)
        return b"tflite " + name.encode()

    plan = {"flash_total": 1, "flash": {}, "ram_total": 2, "ram": {}}
    check = types.SimpleNamespace(ok=True, plan=plan, export_dir=tmp_path, arena_bytes=3,
                                  tflm_arena_head=4,
                                  results={k: {"equal": 20, "inputs": 20}
                                           for k in ("scalar", "dsp")})
    monkeypatch.setattr(importlib.import_module("tinysift.quantize.convert"),
                        "mlperf_tiny_int8", fake_model)
    monkeypatch.setattr(importlib.import_module("tinysift.stages.engine"), "check_tflite",
                        lambda *a, **k: check)
    monkeypatch.setattr(importlib.import_module("tinysift.device.icount"),
                        "invoke_instructions",
                        lambda *a: {"instructions": 1000, "macs": 500, "stack": 8,
                                    "scratch": 0})
    monkeypatch.setattr(importlib.import_module("tinysift.device.icount"), "run_tool",
                        lambda cmd: "tool 1.0\n")
    monkeypatch.setattr(bench.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    res = bench.main(["--models", "ds_cnn", "--out", str(tmp_path / "out")])
    written = json.loads((tmp_path / "out" / "mlperf_tiny_qemu-m4.json").read_text())
    assert written == json.loads(json.dumps(res))
    assert written["seed"] == 0 and seeds == [0]
    (tmp_path / "check.tflite").write_bytes(b"tflite ds_cnn")
    assert written["models"][0]["tflite_hash"] == file_hash(tmp_path / "check.tflite")
