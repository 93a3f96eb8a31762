"""tools/selection_ablation.py: results files that say which seeds, data, code versions and
machines their rows come from; bad arguments end in one clear line, not a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "tools" / "selection_ablation.py"), "--dataset", "digits",
           "--val", "300", "--keeps", "0.1", "--seeds", "1", "--only", "random;herding",
           "--out-dir", str(out), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)


def test_results_record_seeds_data_and_the_rows_origins(tmp_path):
    """Rows are resumed from the progress log whatever code logged them: the results file
    names the code versions and machines behind its rows, and the table says when they mix
    (the file's own "machine" and "versions" are only the last invocation's)."""
    done = _run(tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    res = json.loads((tmp_path / "ablation_selection_digits.json").read_text())
    assert res["seed_values"] == [0] and len(res["data_hash"]) >= 16
    [origin] = res["origins"]
    assert origin["rows"] == 2 and origin["tinysift_source"] == res["versions"]["tinysift_source"]
    # One of the two rows logged by other code: the resumed table says so.
    [log] = (tmp_path / "progress").glob("ablation_selection_digits_*.jsonl")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    for rec in lines:
        if rec.get("method") == "random":
            rec["tinysift_source"], rec["git"] = "0ld50urce", "0123456789abcdef"
    log.write_text("".join(json.dumps(rec) + "\n" for rec in lines))
    again = _run(tmp_path)
    assert again.returncode == 0 and "[seed 0]" not in again.stdout  # nothing trained
    res = json.loads((tmp_path / "ablation_selection_digits.json").read_text())
    assert sorted(o["tinysift_source"] for o in res["origins"]) == sorted(
        ["0ld50urce", origin["tinysift_source"]])
    assert "Rows from 2 code versions or machines" in (
        tmp_path / "ablation_selection_digits.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["--keeps", "0.1,x"], "--keeps: '0.1,x' is not a list of numbers"),
    (["--keeps", "0.1,0"], "--keeps: '0.1,0': every keep must be above 0"),
    (["--keeps", "nan"], "--keeps: 'nan': every keep must be above 0"),  # passed `k <= 0`
    # refused by resolve_keep only after the 0.1 point trained
    (["--keeps", "0.1,1.5"], "--keeps: '0.1,1.5': every keep must be at most 1 (a fraction "
                             "of the training split)"),
    (["--only", "random;hreding"], "--only: unknown variant(s) 'hreding'"),
    (["--dataset", "nosuch"], "unknown dataset 'nosuch'"),
])
def test_bad_arguments_end_in_one_clear_error(tmp_path, args, message):
    done = _run(tmp_path, *args)
    assert done.returncode != 0 and message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "ablation_selection_digits.json").exists()
    assert not (tmp_path / "progress").exists()  # nothing trained


def test_results_of_another_configuration_are_not_replaced(tmp_path):
    """A run of another --val (another log) wrote its table over the folder's without a
    word; refused before any training, as a bench's."""
    path = tmp_path / "ablation_selection_digits.json"
    theirs = {"progress_log": "ablation_selection_digits_0123456789ab.jsonl", "seeds": 3}
    path.write_text(json.dumps(theirs))
    done = _run(tmp_path, "--only", "random")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "holds the results of another configuration" in done.stderr
    assert "[seed 0]" not in done.stdout  # nothing trained
    assert json.loads(path.read_text()) == theirs


def test_fewer_seeds_than_the_log_holds_are_said(tmp_path):
    """`--seeds 1` beside a 2-seed table rewrote it with one seed without a word; said now
    with the option that reports the others again, as the benches say it."""
    assert _run(tmp_path, "--only", "random", "--seeds", "2").returncode == 0
    done = _run(tmp_path, "--only", "random")
    assert done.returncode == 0 and "[seed" not in done.stdout  # nothing trained
    assert "also holds trainings of seed 1" in done.stderr and "--seeds 2" in done.stderr
