"""The benchmark drivers in --quick mode (digits): results files, not timed tests."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_prune_quick_writes_results(tmp_path):
    r = subprocess.run([sys.executable, "-m", "tinysift.cli.app", "bench", "prune", "--quick",
                        "--out-dir", str(tmp_path)], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "prune_digits_quick.json").read_text())
    assert res["keep"] == [0.3, 0.1] and res["seeds"] == 1
    assert set(res["methods"]) == {"random", "el2n", "grand", "forgetting", "aum", "ccs",
                                   "moderate", "herding", "kcenter", "prototypes", "d2", "vq",
                                   "flow"}
    for per in res["methods"].values():
        for v in per.values():
            assert 0.1 < v["acc_mean"] <= 1.0 and v["train_seconds"] > 0
    # Cost accounting: methods built on the proxy CNN are charged its training time.
    assert res["methods"]["el2n"]["0.1"]["score_seconds"] > res["methods"]["random"]["0.1"][
        "score_seconds"]
    assert res["versions"]["tensorflow"] and res["machine"]["cpus"]
    md = (tmp_path / "prune_digits_quick.md").read_text()
    assert "| vq |" in md and "ratio" in md
    assert (tmp_path / "prune_digits_quick.png").stat().st_size > 10_000
