"""tools/full_data_table.py: the README's full-data table is the train and quantize stages'
own numbers, written as a results file; a rerun reuses the run folders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tools_needed import load_tool

ROOT = Path(__file__).resolve().parents[1]


def _run(tmp_path: Path) -> dict:
    cmd = [sys.executable, str(ROOT / "tools" / "full_data_table.py"), "--datasets", "digits",
           "--out-dir", str(tmp_path), "--work-dir", str(tmp_path / "runs")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((tmp_path / "full_data.json").read_text())


def test_table_records_the_stages_results(tmp_path):
    res = _run(tmp_path)
    row = res["datasets"]["digits"]
    manifest = json.loads((tmp_path / "runs" / "digits-seed0" / "manifest.json").read_text())
    assert 0.9 < row["test_acc"] <= 1 and 0.9 < row["int8_acc"] <= 1
    assert abs(row["drop"] - (row["test_acc"] - row["int8_acc"])) < 1e-9
    assert row["epochs"] == 30 and row["seconds"] > 0 and len(row["dataset_hash"]) >= 16
    assert res["seed"] == 0 and "tensorflow" in res["versions"]
    # the row as the README prints it: accuracies to 4 decimals, the drop in points, bytes
    # with thousands separators
    assert (f"| digits | 30 | {row['test_acc']:.4f} | {row['seconds']:.1f} s | "
            f"{row['int8_acc']:.4f} | {100 * row['drop']:.2f} pt | {row['tflite_bytes']:,} |"
            ) in (tmp_path / "full_data.md").read_text()
    assert "--seed 0` then `tinysift quantize`" in (tmp_path / "full_data.md").read_text()
    assert manifest["seed"] == 0  # a real run folder, as `tinysift train` writes it
    # the code and machine that trained the row: the run folder's, which a rerun reuses
    trained = manifest["stages"]["train"]
    assert row["trained_with"]["git"] == trained["versions"]["git"]
    assert row["trained_with"]["tinysift_source"] == trained["versions"]["tinysift_source"]
    assert "Trained by other code" not in (tmp_path / "full_data.md").read_text()
    assert _run(tmp_path)["datasets"]["digits"] == row  # rerun: the same, from the stages
    # a folder trained by other code: the table says so
    manifest["stages"]["train"]["versions"]["git"] = "0123456789abcdef"
    # and a quantize record with a drop (digits' is often 0, where a cell of the drop or of
    # the int8 accuracy printing the wrong number would not show): its numbers are printed
    manifest["stages"]["quantize"]["results"] |= {"int8_acc": 0.8125, "drop": 0.0125}
    (tmp_path / "runs" / "digits-seed0" / "manifest.json").write_text(json.dumps(manifest))
    assert _run(tmp_path)["datasets"]["digits"]["trained_with"]["git"] == "0123456789abcdef"
    assert (f"| {row['seconds']:.1f} s | 0.8125 | 1.25 pt | {row['tflite_bytes']:,} |"
            in (tmp_path / "full_data.md").read_text())
    assert "Trained by other code or on another machine (reused run folders): digits (git " \
           "0123456789, source " in (tmp_path / "full_data.md").read_text()


def test_an_unknown_dataset_is_refused_before_any_training(tmp_path, monkeypatch):
    """`--datasets digits,nosuch` named the bad one only after digits had trained."""
    import importlib

    import pytest

    def no_training(*args, **kwargs):
        raise AssertionError("trained before the datasets were checked")

    monkeypatch.setattr(importlib.import_module("tinysift.stages.train"), "train", no_training)
    fdt = load_tool("full_data_table")
    with pytest.raises(SystemExit) as exc:
        fdt.main(["--datasets", "digits,nosuch", "--out-dir", str(tmp_path),
                  "--work-dir", str(tmp_path / "runs")])
    assert str(exc.value.code) == ("unknown dataset 'nosuch'; known: digits, mnist, "
                                   "fashion-mnist")
    assert not (tmp_path / "full_data.json").exists()
