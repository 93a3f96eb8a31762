"""tools/pick_profile.py: the picks' difficulty percentiles and appearance coverage are what
their definitions say on data whose answers are known, and a real run on digits describes
random and CCS as they are built (CCS's 30 % cut: no pick above the class's 70th percentile)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tools_needed import load_tool

ROOT = Path(__file__).resolve().parents[1]


def test_difficulty_percentiles_are_per_class():
    profile = load_tool("pick_profile").difficulty_profile
    # class 0's hardness 0..9, class 1's 100..109: the same ranks, different scales
    hard = np.concatenate([np.arange(10.0), 100 + np.arange(10.0)])
    y = np.repeat([0, 1], 10)
    got = profile(hard, y, np.array([0, 5, 9, 10, 15, 19]))  # ranks 0, 5, 9 in each class
    assert np.isclose(got["percentile_mean"], np.mean([0.0, 0.5, 0.9]))
    assert got["below_median"] == 1 / 3 and got["median_to_p70"] == 1 / 3
    assert got["above_p70"] == 1 / 3
    # rank 7 of 10 is the 70th percentile itself: above p70 (the part CCS's cut drops)
    got = profile(hard, y, np.array([6, 7, 17]))
    assert got["median_to_p70"] == 1 / 3 and got["above_p70"] == 2 / 3


def test_coverage_is_the_distance_to_the_nearest_pick_of_the_own_class():
    cover = load_tool("pick_profile").coverage
    z = np.array([[0.0, 0], [1, 0], [3, 0], [0, 3], [0, 9]])
    y = np.array([0, 0, 0, 1, 1])
    # class 0 picks x=0 (distances 0, 1, 3), class 1 picks (0, 9) (distances 6, 0); the
    # class-1 point (0, 3) is nearer class 0's pick (3) but is measured to its own class's
    got = cover(z, y, np.array([0, 4]), chunk=2)
    assert np.isclose(got["nearest_pick_mean"], (0 + 1 + 3 + 6 + 0) / 5)
    assert np.isclose(got["nearest_pick_p90"], np.quantile([0, 1, 3, 6, 0], 0.9))


def test_a_pick_is_at_distance_zero_from_itself_not_nan():
    """|a|^2 - 2 a.a + |a|^2 rounds a little below 0 for some vectors (about one in twenty
    of these): the distance of a pick to itself is then 0, never the root of a negative."""
    cover = load_tool("pick_profile").coverage
    z = np.random.default_rng(0).normal(size=(200, 32)) * 300
    y = np.arange(200)  # every sample its own class and its own pick
    got = cover(z, y, np.arange(200))
    assert np.isfinite(got["nearest_pick_mean"]) and got["nearest_pick_mean"] < 1e-3


def test_a_run_on_digits_describes_random_and_ccs(tmp_path):
    cmd = [sys.executable, str(ROOT / "tools" / "pick_profile.py"), "--dataset", "digits",
           "--val", "300", "--keeps", "0.05,0.1", "--seeds", "1", "--only", "random;ccs",
           "--out-dir", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    res = json.loads((tmp_path / "pick_profile_digits.json").read_text())
    rnd, ccs = res["rows"]["random@0.1"], res["rows"]["ccs@0.1"]
    assert rnd["count"] == ccs["count"] > 0
    assert ccs["above_p70"] == 0.0 < rnd["above_p70"]  # CCS cuts the hardest 30 % first
    # the table's rows: the larger keep first, the variants by name within a keep
    rows = [r.split(" | ")[:2] for r in (tmp_path / "pick_profile_digits.md").read_text()
            .splitlines() if r.startswith(("| ccs", "| random"))]
    assert rows == [["| ccs", "0.1"], ["| random", "0.1"], ["| ccs", "0.05"],
                    ["| random", "0.05"]]


@pytest.mark.parametrize("only, said", [(";", "--only: no variant named"),
                                        ("random;hreding", "--only: unknown variant(s) 'hreding'")])
def test_an_empty_only_or_an_unknown_variant_is_refused_before_any_work(only, said, tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "pick_profile.py"), "--only",
                           only, "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert said in done.stderr
    assert not list(tmp_path.iterdir())
