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


def test_usage_errors_exit_2_without_traceback(tmp_path):
    for args, said in ((["bogus"], "No such command"),
                       (["train", "--dataset", "digits", "--bogus-flag"], "No such option"),
                       (["train", "--dataset", "digits", "--epochs", "abc"], "--epochs"),
                       (["prune", "--dataset", "digits"], "--keep"),
                       (["device", "run", "--run", str(tmp_path), "--on-reset", "bogus"],
                        "--on-reset must be one of retry, stop"),
                       (["train", "--dataset", "digits", "--epochs", "-1"],
                        "--epochs must be a whole number >= 0")):
        r = tinysift(*args)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert said in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


def _main(monkeypatch, capsys, target: str, exc: BaseException, args: list[str]):
    """Run the CLI in-process with ``target`` (module:function) raising ``exc``."""
    import importlib

    from tinysift.cli import main

    module, name = target.split(":")

    def boom(*a, **k):
        raise exc

    monkeypatch.setattr(importlib.import_module(module), name, boom)
    code = main(args)
    return code, capsys.readouterr().err


def test_ctrl_c_exits_130_with_a_message(monkeypatch, capsys, tmp_path):
    """typer turns Ctrl-C into Exit(130) and returns it: it used to end in exit 0, silently."""
    code, err = _main(monkeypatch, capsys, "tinysift.stages.prune:prune", KeyboardInterrupt(),
                      ["prune", "--dataset", "digits", "--keep", "0.1", "--out", str(tmp_path)])
    assert code == 130 and "interrupted" in err


FLASH = ["device", "flash", "--board", "nucleo_f411re", "--run"]  # a board with a flash step


def test_compiler_output_verbatim(monkeypatch, capsys, tmp_path):
    """Paths and flags in brackets are text, not rich markup (it raised MarkupError and hid
    the compiler's output)."""
    from tinysift.errors import DeviceError

    text = ("firmware build for qemu-mps2-an386 failed:\n[/work/x/src/app.c:12]: error: "
            "expected ';' [-Werror=implicit] [bold]x[/]")
    code, err = _main(monkeypatch, capsys, "tinysift.stages.device:flash", DeviceError(text),
                      FLASH + [str(tmp_path)])
    assert code == 2 and text in err, err


def test_unexpected_errors_are_one_line(monkeypatch, capsys, tmp_path):
    code, err = _main(monkeypatch, capsys, "tinysift.stages.device:flash",
                      ZeroDivisionError("x"), FLASH + [str(tmp_path)])
    assert code == 1 and "unexpected ZeroDivisionError" in err and "Traceback" not in err


def test_train_on_a_kept_set_defaults_to_the_step_rule(monkeypatch, tmp_path):
    """`prune --keep 0.1` then `train` without --epochs: the subset step rule, not 10 epochs
    of 143 samples (20 steps, accuracy near chance)."""
    import importlib

    from tinysift.cli import main

    train_mod = importlib.import_module("tinysift.stages.train")
    seen = []

    def fake_train(*a, **k):
        seen.append(k["epochs"])
        raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "train", fake_train)
    main(["train", "--dataset", "digits", "--keep", "0.1", "--out", str(tmp_path)])
    main(["train", "--dataset", "digits", "--out", str(tmp_path)])
    main(["train", "--dataset", "digits", "--keep", "0.1", "--epochs", "3", "--out",
          str(tmp_path)])
    assert seen == [None, 10, 3]


def test_corrupt_selection_is_one_clear_line(tmp_path):
    bad = tmp_path / "selection.npz"
    bad.write_text("not a zip")
    r = tinysift("train", "--dataset", "digits", "--selection", str(bad), "--out",
                 str(tmp_path / "r"))
    assert r.returncode == 2 and "not a readable selection" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_plan_caveats_name_what_the_plan_leaves_out():
    """`tinysift export` prints, under the memory plan, its not-counted lines and, for a board
    built with a stock framework (nano33ble: Arduino), that the framework's own memory is
    not in the plan; the project's own runtimes (QEMU, STM32) get no such line."""
    from tinysift.cli.quantize_cmd import plan_caveats

    got = plan_caveats({"board": "nano33ble", "not_counted": {"raw .tflite (optional)": 1234}})
    assert got[0] == "not counted: raw .tflite (optional) (1,234 B)"
    assert len(got) == 2 and "port arduino" in got[1] and "framework's own RAM" in got[1]
    for board in ("qemu-mps2-an386", "qemu-netduinoplus2", "nucleo_f411re"):
        assert plan_caveats({"board": board}) == []
    assert plan_caveats({"board": "no-such-board"}) == []
