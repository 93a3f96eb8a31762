"""On-device adaptation: scenarios, replay selection, refusals (digits; the device runs are
in tests/test_bench.py and tests/test_demo.py)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tinysift.data import scenarios
from tinysift.errors import DatasetError


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tinysift.cli.app", *args],
                          capture_output=True, text=True, timeout=900, cwd=cwd)


def test_new_classes_splits_are_disjoint_and_sized():
    scn = scenarios.new_classes("digits", old_classes=range(8), new_per_class=20, seed=3)
    assert set(np.unique(scn.y_old)) == set(range(8))
    assert set(np.unique(scn.y_new)) == {8, 9} and len(scn.y_new) == 40
    assert set(np.unique(scn.y_test_new)) == {8, 9}
    assert scn.num_classes == 10 and scn.input_shape == (8, 8, 1)
    again = scenarios.new_classes("digits", old_classes=range(8), new_per_class=20, seed=3)
    assert np.array_equal(again.x_new, scn.x_new)  # seeded


def test_shift_upsamples_digits_into_mnist_layout():
    img = np.zeros((1, 8, 8, 1), np.uint8)
    img[0, 2:6, 3:5, 0] = 16
    up = scenarios.upsample_digits(img)
    assert up.shape == (1, 28, 28, 1) and up.max() == 255
    ys, xs = np.nonzero(up[0, :, :, 0])
    assert 4 <= ys.min() and ys.max() < 24 and 4 <= xs.min() and xs.max() < 24  # 20x20 box


def test_user_data_with_wrong_shape_or_labels_is_refused(write_npz, tmp_path):
    rng = np.random.default_rng(0)
    bad_shape = write_npz("shape.npz", x=rng.integers(0, 255, (40, 28, 28), np.uint8),
                          y=np.repeat(np.arange(4), 10))
    with pytest.raises(DatasetError, match="28x28x1 but the base model's input is 8x8x1"):
        scenarios.user("digits", bad_shape)
    r = cli("adapt", "--scenario", "user", "--dataset", "digits", "--new", bad_shape,
            "--out", str(tmp_path / "a"))
    assert r.returncode == 2 and "resize the new data" in " ".join(r.stderr.split())
    bad_labels = write_npz("labels.npz", x=rng.integers(0, 16, (40, 8, 8), np.uint8),
                           y=np.repeat([1, 12], 20))
    with pytest.raises(DatasetError, match=r"labels \[12\] are not classes of the model"):
        scenarios.user("digits", bad_labels)


def test_bad_options_are_one_line_exit_2(tmp_path):
    for args, words in [
        (("adapt", "--scenario", "bogus"), "unknown scenario 'bogus'"),
        (("adapt", "--update", "all"), "--update must be one of head, bias, last-block"),
        (("adapt", "--old-classes", "a-b"), "--old-classes takes numbers and ranges"),
        (("adapt", "--scenario", "user", "--dataset", "digits"), "needs --new"),
        # the device's ranges, before the base model is trained (was after 33 s on Digits)
        (("adapt", "--dataset", "digits", "--lr", "0"), "cannot train with lr 0"),
    ]:
        r = cli(*args, "--out", str(tmp_path / "x"))
        assert r.returncode == 2, (args, r.stderr)
        assert words in " ".join(r.stderr.split()), (args, r.stderr)
        assert "Traceback" not in r.stderr
        assert not (tmp_path / "x" / "base").exists(), args  # refused before any training


def test_replay_that_does_not_fit_is_refused_before_building(tmp_path):
    """nano33ble (256 KB RAM): 200 Fashion-MNIST-size new samples in RAM with last-block's
    buffers does not fit; the refusal names the numbers and a replay size (or the mode)
    that does, and nothing is built."""
    from tinysift.errors import FitError
    from tinysift.pipeline.adapt import AdaptConfig, check_adaptation_fits, prepare_base

    cfg = AdaptConfig(dataset="digits", new_per_class=30, replay="random",
                      replay_per_class=1000, update="last-block", board="nano33ble",
                      base_epochs=2, out=str(tmp_path / "run"))
    _, parts, _, base = prepare_base(cfg, log=lambda *_: None)
    check_adaptation_fits(cfg, base, 8 * 5, 60, 300, 8)  # a small set fits
    with pytest.raises(FitError, match=r"nano33ble: a replay set of 8000 samples plus 60 new "
                                       r"samples with update=last-block needs .* RAM, "
                                       r"board has .* \(over by .*\); "
                                       r"use --replay-per-class \d+ or fewer"):
        check_adaptation_fits(cfg, base, 8 * 1000, 60, 300, 8)
    with pytest.raises(FitError, match="fewer --new-per-class samples or update=head"):
        check_adaptation_fits(cfg, base, 8 * 5, 20000, 300, 8)
    assert not (tmp_path / "run" / "base" / "device").exists()
