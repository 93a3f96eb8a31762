"""tools/guided_ablation.py: variants scored on a validation split cut from the training data
(never the test split), results files written, a rerun resumes from the progress log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(out: Path) -> str:
    cmd = [sys.executable, str(ROOT / "tools" / "guided_ablation.py"), "--dataset", "digits",
           "--budget", "0.5", "--seeds", "1", "--epochs", "30", "--val", "300",
           "--only", "rs2,vq class_beta=0 (class shares kept)", "--out-dir", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_ablation_scores_on_validation_and_resumes(tmp_path):
    first = _run(tmp_path)
    assert first.count("[seed 0]") == 2
    res = json.loads((tmp_path / "ablation_guided_digits.json").read_text())
    assert set(res["variants"]) == {"rs2", "vq class_beta=0 (class shares kept)"}
    vq = res["variants"]["vq class_beta=0 (class shares kept)"]
    assert vq["params"] == {"class_beta": 0.0} and "vs_baseline" in vq
    assert res["validation_samples"] == 300 and 0.5 < res["variants"]["rs2"]["acc_mean"] <= 1
    assert abs(vq["spent"] - 0.5) < 0.05  # the budget held
    assert "| rs2 |" in (tmp_path / "ablation_guided_digits.md").read_text()
    assert "[seed 0]" not in _run(tmp_path)  # resumed: nothing trained again
