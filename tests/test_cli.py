"""The CLI: a thin layer; user errors exit 2 with one clear line."""

from __future__ import annotations

import subprocess
import sys


def tinysift(*args):
    return subprocess.run([sys.executable, "-m", "tinysift.cli.app", *args],
                          capture_output=True, text=True, timeout=600)


def test_data_list():
    r = tinysift("data", "list")
    assert r.returncode == 0
    for name in ("digits", "mnist", "fashion-mnist", "cifar10"):
        assert name in r.stdout
    assert "60000" in r.stdout and "1437" in r.stdout


def test_data_info_fashion():
    r = tinysift("data", "info", "fashion-mnist")
    assert r.returncode == 0, r.stderr
    assert "train 60000" in r.stdout and "test 10000" in r.stdout
    assert r.stdout.count("6000") >= 10  # per-class counts


def test_unknown_dataset_exit_2():
    r = tinysift("data", "info", "nope")
    assert r.returncode == 2
    assert "known datasets" in r.stderr.replace("\n", " ")
