"""tools/replay_study.py: its results file records the code version, the machine and the
hashes of the device bench's files it read; bad arguments end in one clear error."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from tools_needed import load_tool

ROOT = Path(__file__).resolve().parents[1]
STEM = "device_new-classes_fashion-mnist"


def _study():
    return load_tool("replay_study")


def test_results_record_versions_machine_and_input_hashes(tmp_path, monkeypatch):
    import tinysift.data
    from tinysift.runs import file_hash

    study = _study()
    work = tmp_path / "runs" / "_bench_device" / f"{STEM}-s0"
    (work / "base").mkdir(parents=True)
    (work / "scenario.npz").write_bytes(b"scenario")
    (work / "base" / "model.keras").write_bytes(b"model")

    def fake_seed(stem, seed, sizes, methods, *_args):
        return [{"seed": seed, "method": m, "draw": 0, "size": s, "fit_seconds": 0.0,
                 "val": 0.5, "test": 0.5 + 0.01 * (m == "vq"), "test_old": 0.5,
                 "test_new": 0.5} for m in methods for s in sizes]

    monkeypatch.setattr(study, "ROOT", tmp_path)
    monkeypatch.setattr(study, "study_seed", fake_seed)
    monkeypatch.setattr(tinysift.data, "load_dataset",
                        lambda name: types.SimpleNamespace(content_hash="fmnist-hash"))
    study.main(["--seeds", "0", "--sizes", "5", "--methods", "random,vq",
                "--out-dir", str(tmp_path / "out")])
    res = json.loads((tmp_path / "out" / "replay_study_fashion-mnist.json").read_text())
    assert res["summary"]["vq"]["5"]["seeds_above_random"] == 1
    assert res["versions"]["tinysift_source"] and "git" in res["versions"]
    assert {"platform", "cpus", "cpu_model"} <= set(res["machine"])
    assert res["data_hash"] == "fmnist-hash"
    assert res["inputs"] == {"0": {"scenario": file_hash(work / "scenario.npz"),
                                   "base_model": file_hash(work / "base" / "model.keras")}}


@pytest.mark.parametrize("args, message", [
    (["--seeds", "0,x"], "'0,x' is not a list of integers"),
    (["--methods", "random,vqq"], "--methods: unknown 'vqq'"),
    (["--methods", "vq"], "--methods must include random"),
    (["--sizes", "0,5"], "'0,5': every value must be >= 1, got 0"),
    (["--seeds", "-1"], "'-1': every value must be >= 0, got -1"),
    (["--order-seeds", "0"], "0: give at least 1"),
    (["--random-draws", "x"], "'x' is not a whole number"),
])
def test_bad_arguments_end_in_one_clear_error(capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        _study().main(args)
    assert exc.value.code == 2 and message in capsys.readouterr().err
