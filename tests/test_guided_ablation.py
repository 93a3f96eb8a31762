"""tools/guided_ablation.py: variants scored on a validation split cut from the training data
(never the test split), results files written, a rerun resumes from the progress log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(out: Path, *extra: str) -> str:
    cmd = [sys.executable, str(ROOT / "tools" / "guided_ablation.py"), "--dataset", "digits",
           "--budget", "0.5", "--seeds", "1", "--epochs", "30", "--val", "300",
           "--only", "rs2,vq class_beta=0 (class shares kept)", "--out-dir", str(out), *extra]
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
    # --render rewrites the files from the log and keeps the training run's machine and time
    elsewhere = {**res["machine"], "hostname": "elsewhere"}
    res["machine"], res["wall_seconds"] = elsewhere, 1234.5
    (tmp_path / "ablation_guided_digits.json").write_text(json.dumps(res))
    assert "[seed 0]" not in _run(tmp_path, "--render", "--only", "")
    again = json.loads((tmp_path / "ablation_guided_digits.json").read_text())
    assert again["machine"] == elsewhere and again["wall_seconds"] == 1234.5
    assert again["variants"]["rs2"]["runs"] == res["variants"]["rs2"]["runs"]


def test_results_record_seeds_data_and_the_rows_origins(tmp_path):
    """Rows are resumed from the progress log whatever code logged them: the results file
    names the code versions and machines behind its rows, and the table says when they mix
    (the file's own "machine" and "versions" are only the last invocation's)."""
    _run(tmp_path, "--epochs", "2", "--only", "rs2,full-cut")
    res = json.loads((tmp_path / "ablation_guided_digits.json").read_text())
    assert res["seed_values"] == [0] and len(res["data_hash"]) >= 16
    [origin] = res["origins"]
    assert origin["rows"] == 2 and origin["tinysift_source"] == res["versions"]["tinysift_source"]
    [log] = (tmp_path / "progress").glob("ablation_guided_digits_*.jsonl")
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    for rec in recs:
        if rec.get("method") == "rs2":
            rec["tinysift_source"], rec["git"] = "0ld50urce", "0123456789abcdef"
    log.write_text("".join(json.dumps(rec) + "\n" for rec in recs))
    _run(tmp_path, "--epochs", "2", "--render", "--only", "")
    res = json.loads((tmp_path / "ablation_guided_digits.json").read_text())
    assert sorted(o["tinysift_source"] for o in res["origins"]) == sorted(
        ["0ld50urce", origin["tinysift_source"]])
    assert "Rows from 2 code versions or machines" in (
        tmp_path / "ablation_guided_digits.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["--only", "rs2,vq beta=3"], "--only: unknown variant(s) 'vq beta=3'"),
    (["--dataset", "nosuch"], "unknown dataset 'nosuch'"),
])
def test_bad_arguments_end_in_one_clear_error(tmp_path, args, message):
    cmd = [sys.executable, str(ROOT / "tools" / "guided_ablation.py"), "--out-dir",
           str(tmp_path), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode != 0 and message in done.stderr
    assert "Traceback" not in done.stderr and not list(tmp_path.glob("*.json"))


def test_vq_ucb_variant_keeps_the_highest_loss_bound_first_inside_a_codeword():
    sys.path.insert(0, str(ROOT / "tools"))
    import numpy as np
    from guided_ablation import vq_ucb_sampler

    from tinysift.guided.base import TrainingState
    from tinysift.guided.ledger import CostLedger

    y = np.repeat(np.arange(2), 50)
    st = TrainingState(x=np.zeros((100, 2, 2, 1), np.uint8), y=y, num_classes=2, epochs=4,
                       budget=0.5, ledger=CostLedger(200), rng=np.random.default_rng(0),
                       feature_dim=8)
    s = vq_ucb_sampler(0, c=1.0, decay=0.5)
    assert s.params()["c"] == 1.0 and s.params()["per_code"] == 50  # vq's parameters, stamped
    s.begin(st)
    assert np.isinf(s.priority(st)).all()  # never trained: first
    half = np.arange(50)
    for epoch, loss in enumerate((np.linspace(0, 1, 50), np.full(50, 0.5))):
        st.epoch = epoch
        st.record(half, loss.astype(np.float32), np.ones(50, np.float32),
                  np.zeros((50, 8), np.float32), np.zeros(50, np.int64))
        s.end_epoch(st)
    prio = s.priority(st)
    # EMA mean 0.5 * l + 0.25, deviation |l - 0.5| / sqrt(2): the bound grows with |l - 0.5|.
    l0 = np.linspace(0, 1, 50)
    assert np.allclose(prio[:50], 0.5 * l0 + 0.25 + np.sqrt(0.5 * (0.5 - l0) ** 2), atol=1e-6)
    assert np.isinf(prio[50:]).all()


def test_relabel_variant_trains_corrected_labels_and_scores_them(tmp_path):
    """`flow relabel` (label correction instead of dropping) on noisy digits: it corrects
    labels, mostly flipped ones, mostly to the true class, and the table says how many."""
    cmd = [sys.executable, str(ROOT / "tools" / "guided_ablation.py"), "--dataset", "digits",
           "--budget", "0.5", "--seeds", "1", "--epochs", "30", "--val", "300",
           "--label-noise", "0.2", "--only", "flow relabel,flow relabel batch=64",
           "--out-dir", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((tmp_path / "ablation_guided_digits_noise0.2.json").read_text())[
        "variants"]
    # the second variant of a seed sees the same noisy labels: the first one's corrections
    # stay in its own training (they leaked into the next variant's labels once)
    assert rows["flow relabel"]["flipped"] == rows["flow relabel batch=64"]["flipped"]
    row = rows["flow relabel"]
    assert row["relabeled"] > 20, row
    assert row["relabeled_flipped"] > 0.8 * row["relabeled"], row
    assert row["relabeled_true"] > 0.5 * row["relabeled"], row
    md = (tmp_path / "ablation_guided_digits_noise0.2.md").read_text()
    assert f"relabelled {row['relabeled']:.0f} (" in md


def test_results_of_another_configuration_are_not_replaced(tmp_path):
    """`--render --budget 0.3` beside the committed budget-0.5 table (of another log) wrote
    an empty table over it; refused before anything is trained or written, as a bench's."""
    path = tmp_path / "ablation_guided_digits.json"
    theirs = {"progress_log": "ablation_guided_digits_0123456789ab.jsonl", "budget": 0.5}
    path.write_text(json.dumps(theirs))
    cmd = [sys.executable, str(ROOT / "tools" / "guided_ablation.py"), "--dataset", "digits",
           "--budget", "0.3", "--val", "300", "--render", "--out-dir", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "holds the results of another configuration" in done.stderr
    assert "pass another --out-dir" in done.stderr
    assert json.loads(path.read_text()) == theirs


def test_fewer_seeds_than_the_log_holds_are_said(tmp_path):
    """`--seeds 1` beside a 2-seed table rewrote it with one seed without a word; said now
    with the option that reports the others again, as the benches say it."""
    _run(tmp_path, "--epochs", "1", "--only", "rs2", "--seeds", "2")
    cmd = [sys.executable, str(ROOT / "tools" / "guided_ablation.py"), "--dataset", "digits",
           "--budget", "0.5", "--seeds", "1", "--epochs", "1", "--val", "300", "--render",
           "--out-dir", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "also holds trainings of seed 1" in done.stderr and "--seeds 2" in done.stderr


@pytest.mark.parametrize("text", ["{torn", "[1, 2]"])
def test_render_rewrites_a_torn_results_file_from_the_log(tmp_path, text):
    """`--render` read the machine and time of the results it rewrites and ended in a
    JSONDecodeError (AttributeError) traceback on a torn (or edited) file; now rewritten from
    the log, this machine named."""
    (tmp_path / "ablation_guided_digits.json").write_text(text)
    cmd = [sys.executable, str(ROOT / "tools" / "guided_ablation.py"), "--dataset", "digits",
           "--val", "300", "--render", "--out-dir", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    res = json.loads((tmp_path / "ablation_guided_digits.json").read_text())
    assert res["variants"] == {} and res["machine"]["cpus"] >= 1
