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


def test_tables_keep_full_names_when_piped():
    """Not a terminal: rich must not cut names to COLUMNS (grep must find them)."""
    import os

    r = subprocess.run([sys.executable, "-m", "tinysift.cli.app", "boards"],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, COLUMNS="80"))
    assert r.returncode == 0, r.stderr
    for name in ("qemu-mps2-an386", "qemu-mps2-an500", "nucleo_l4r5zi", "disco_f746ng"):
        assert name in r.stdout, r.stdout


def test_json_outputs_parse():
    import json

    boards = json.loads(tinysift("boards", "--json").stdout)
    assert {b["name"] for b in boards} >= {"qemu-mps2-an386", "nano33ble"}
    assert all(isinstance(b["ram_bytes"], int) for b in boards)
    datasets = json.loads(tinysift("data", "list", "--json").stdout)
    digits = next(d for d in datasets if d["name"] == "digits")
    assert digits["train"] == 1437 and digits["available"] is True
    info = json.loads(tinysift("data", "info", "digits", "--json").stdout)
    assert info["train"] == 1437 and sum(c["train"] for c in info["classes"]) == 1437
    devices = json.loads(tinysift("device", "list", "--json").stdout)
    assert "qemu-mps2-an386" in {d["name"] for d in devices["emulated"]}


def test_project_root_missing_is_one_clear_line(tmp_path):
    """An installed copy without the project folder says what it needs."""
    import os

    r = subprocess.run([sys.executable, "-m", "tinysift.cli.app", "boards"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env=dict(os.environ, TINYSIFT_ROOT=str(tmp_path)))
    assert r.returncode == 2
    assert "TINYSIFT_ROOT" in r.stderr and "not a tinysift project folder" in r.stderr
    assert "Traceback" not in r.stderr
