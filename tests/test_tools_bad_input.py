"""The tools/ scripts without a test file of their own: bad input ends in one clear error
naming the problem, before any training or build starts, never in a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools_needed import load_tool

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str):
    return load_tool(name)


def _no_work(*args, **kwargs):
    raise AssertionError("work started before the arguments were checked")


def test_firmware_size_table_refuses_an_unknown_board_before_any_build(tmp_path, monkeypatch):
    fst = _tool("firmware_size_table")
    monkeypatch.setattr(fst, "make_export", _no_work)
    with pytest.raises(SystemExit) as exc:
        fst.main(["--boards", "qemu-mps2-an386,nosuch", "--out-dir", str(tmp_path),
                  "--work-dir", str(tmp_path)])
    assert str(exc.value.code).startswith("--boards: unknown board 'nosuch'; known boards: ")


def test_density_holdout_refuses_a_bad_dataset_or_seed_count_first(tmp_path, monkeypatch,
                                                                   capsys):
    dh = _tool("density_holdout")
    monkeypatch.setattr(dh, "warm_up_embeddings", _no_work)
    with pytest.raises(SystemExit) as exc:
        dh.main(["--datasets", "digits,nosuch", "--out-dir", str(tmp_path)])
    assert str(exc.value.code) == "unknown dataset 'nosuch'; known: digits, fashion-mnist, mnist"
    with pytest.raises(SystemExit) as exc:
        dh.main(["--seeds", "0", "--out-dir", str(tmp_path)])
    assert exc.value.code == 2 and "--seeds 0: give at least 1" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_device_determinism_refuses_a_run_without_an_export(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        _tool("device_determinism").main([str(tmp_path), "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"{tmp_path} has no export (no export/export.json)" in err


def test_make_rgb32_refuses_a_count_below_one(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        _tool("make_rgb32").main(["--train", "-1", "--out", str(tmp_path / "x.npz")])
    assert exc.value.code == 2 and "--train -1: give at least 1 image" in capsys.readouterr().err


def test_test_durations_names_a_log_it_cannot_read(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "test_durations.py"),
                           str(tmp_path / "missing.log")], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"cannot read {tmp_path / 'missing.log'} (No such file or directory)" in done.stderr
