"""The CLI: a thin layer; user errors exit 2 with one clear line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest


def tinysift(*args):
    return subprocess.run([sys.executable, "-m", "tinysift.cli.app", *args],
                          capture_output=True, text=True, timeout=600)


def test_data_list():
    r = tinysift("data", "list")
    assert r.returncode == 0
    for name in ("digits", "mnist", "fashion-mnist", "cifar10"):
        assert name in r.stdout
    assert "60000" in r.stdout and "1437" in r.stdout


def test_version_names_the_code_and_the_packages():
    """`tinysift --version`: the version, the commit and sources' hash of the code that runs
    (an editable install always says 0.1.0), and the packages results depend on."""
    from tinysift.runs import code_identity

    r = tinysift("--version")
    assert r.returncode == 0, r.stderr
    first, *rest = r.stdout.splitlines()
    assert first.startswith("tinysift 0.1.0")
    assert code_identity()["tinysift_source"][:12] in first
    if code_identity()["git"]:
        assert code_identity()["git"][:12] in first
    assert any(line.split()[0] == "tensorflow" for line in rest)
    assert any(line.split()[0] == "tflite-micro" for line in rest)


def test_data_info_fashion():
    r = tinysift("data", "info", "fashion-mnist")
    assert r.returncode == 0, r.stderr
    assert "train 60000" in r.stdout and "test 10000" in r.stdout
    assert r.stdout.count("6000") >= 10  # per-class counts


def test_data_info_names_a_class_the_test_split_lacks(tmp_path):
    """A class of one sample stays in training: `data info` says the test split cannot
    measure it (the table's 0 alone was easy to miss), in text and in --json."""
    import json

    import numpy as np

    np.savez(tmp_path / "d.npz", x=np.zeros((9, 4, 4), np.uint8), y=np.array([0] + [1] * 8))
    r = tinysift("data", "info", f"npz:{tmp_path}/d.npz")
    assert r.returncode == 0, r.stderr
    assert "warning: the test split has no sample of class(es) '0'" in r.stdout
    info = json.loads(tinysift("data", "info", f"npz:{tmp_path}/d.npz", "--json").stdout)
    assert len(info["warnings"]) == 1 and "'0'" in info["warnings"][0]
    assert json.loads(tinysift("data", "info", "digits", "--json").stdout)["warnings"] == []


def test_names_too_long_for_the_file_system_are_one_line(tmp_path):
    """A dataset name, npz:/folder: path or --out of 300 characters was "unexpected
    OSError: [Errno 36] File name too long" (exit 1); `data info ''` suggested folder:."""
    from tinysift.cli.app import main

    long = "a" * 300
    for args, words in (
            (["data", "info", long], "unknown dataset"),
            (["data", "info", f"npz:{long}"], "File name too long; pass npz:PATH"),
            (["data", "info", f"folder:{long}"], "File name too long; pass folder:PATH"),
            (["prune", "--dataset", "digits", "--keep", "0.5", "--out", str(tmp_path / long)],
             "(--out/--run: File name too long): choose another name")):
        r = tinysift(*args)
        assert r.returncode == 2 and words in " ".join(r.stderr.split()), (args, r.stderr)
        assert "unexpected" not in r.stderr
    assert main(["data", "info", ""]) == 2
    r = tinysift("data", "info", "")
    assert "folder:" not in r.stderr.split("known datasets")[0]


def test_an_empty_path_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    """`--out "$OUT"` with OUT unset wrote a run into the current folder; `--selection ''`
    read ./selection.npz."""
    from tinysift.cli.app import main

    monkeypatch.chdir(tmp_path)
    for flag, args in (("--out", ["prune", "--dataset", "digits", "--keep", "0.5", "--out",
                                  ""]),
                       ("--out", ["prune", "--dataset", "digits", "--keep", "0.5", "--out="]),
                       ("--selection", ["train", "--dataset", "digits", "--selection", "",
                                        "--out", "r"]),
                       # an unset $PORT: "cannot open : [Errno 2] ...", a results.failed.json
                       ("--port", ["device", "run", "--run", "r", "--port", ""]),
                       ("--port", ["device", "calibrate", "--board", "nucleo_f411re",
                                   "--port="])):
        assert main(args) == 2, args
        err = " ".join(capsys.readouterr().err.split())
        # leaving it out is the fix where the default is wanted (`device flash`'s port
        # auto-detection, which `--port ""` used to reach)
        assert f"{flag} is empty (an unset shell variable?)" in err
        assert "or leave the option out for its default" in err
    assert list(tmp_path.iterdir()) == []


def test_a_deleted_current_folder_is_named_not_a_bug(tmp_path, monkeypatch, capsys):
    """Run from a folder deleted since the shell entered it: every relative path (the
    default runs/NAME) failed in os.path.abspath, reported as "unexpected FileNotFoundError
    (a bug in tinysift)" (review of 12827aa). One line that says so and the fix, exit 2."""
    import os

    from tinysift.cli.app import main

    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    os.rmdir(gone)
    assert main(["prune", "--dataset", "digits", "--method", "random", "--keep", "0.5",
                 "--out", "r"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "the current folder no longer exists" in err and "cd to an existing folder" in err


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


def test_project_root_is_the_env_s_then_the_checkout_s_then_a_folder_above(tmp_path,
                                                                             monkeypatch):
    """$TINYSIFT_ROOT when set, and only a folder with both boards/ and
    firmware/platformio.ini; else the checkout the package runs from, from any current
    folder; else (an installed copy) the current folder or one above it."""
    import os
    import shutil
    from pathlib import Path

    from tinysift import paths
    from tinysift.errors import TinysiftError

    root = Path(__file__).resolve().parents[1]
    monkeypatch.delenv(paths.ROOT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert paths.project_root() == root
    assert (paths.boards_dir(), paths.firmware_dir(), paths.offline_pio()) == (
        root / "boards", root / "firmware", root / "tools" / "pio")
    other = tmp_path / "clone"
    (other / "boards").mkdir(parents=True)
    monkeypatch.setenv(paths.ROOT_ENV, str(other))
    with pytest.raises(TinysiftError, match="needs boards and firmware/platformio.ini"):
        paths.project_root()
    (other / "firmware").mkdir()
    (other / "firmware" / "platformio.ini").write_text("")
    assert paths.project_root() == other.resolve()
    monkeypatch.setenv("HOME", str(tmp_path))  # a quoted ~ reaches tinysift unexpanded
    monkeypatch.setenv(paths.ROOT_ENV, "~/clone")
    assert paths.project_root() == other.resolve()
    # an installed copy of the package, run from a folder inside the project
    site = tmp_path / "site" / "tinysift"
    site.mkdir(parents=True)
    for name in ("__init__.py", "paths.py", "errors.py"):
        shutil.copy(root / "host" / "tinysift" / name, site / name)
    env = {k: v for k, v in os.environ.items() if k != paths.ROOT_ENV}
    found = subprocess.run([sys.executable, "-c", "from tinysift.paths import project_root; "
                            "print(project_root())"], cwd=root / "boards" / "runtime",
                           env={**env, "PYTHONPATH": str(site.parent)}, capture_output=True,
                           text=True, timeout=60)
    assert found.returncode == 0 and found.stdout.strip() == str(root), found.stderr


def _run_folder(path):
    """``path`` made a run folder (its manifest.json), as `tinysift train --out` leaves it."""
    from tinysift.runs import Run

    Run(path).save()
    return path


def test_usage_errors_exit_2_without_traceback(tmp_path):
    _run_folder(tmp_path)
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


def _stop_at(monkeypatch, *targets: str, whole_call: bool = False) -> list:
    """Replace each ``module:function`` with one that records its first argument (the
    configuration a bench or pipeline step would run with), or with ``whole_call`` (a stage
    called with several arguments) its positional and keyword arguments, and stops the
    command as Ctrl-C does (exit 130): what a command would run, without running it.
    Returns the records."""
    import importlib

    seen = []

    def capture(*a, **k):
        seen.append((a, k) if whole_call else a[0])
        raise KeyboardInterrupt

    for target in targets:
        module, name = target.split(":")
        monkeypatch.setattr(importlib.import_module(module), name, capture)
    return seen


def test_ctrl_c_exits_130_with_a_message(monkeypatch, capsys, tmp_path):
    """typer turns Ctrl-C into Exit(130) and returns it: it used to end in exit 0, silently."""
    code, err = _main(monkeypatch, capsys, "tinysift.stages.prune:prune", KeyboardInterrupt(),
                      ["prune", "--dataset", "digits", "--keep", "0.1", "--out", str(tmp_path)])
    assert code == 130 and "interrupted" in err
    # a device run interrupted in a folder with an earlier complete result leaves that in
    # results.json and its own partial results in results.failed.json (tinysift.stages.
    # device.attempt): the line named results.json alone
    assert "results.failed.json where an earlier complete result stays in results.json" in (
        " ".join(err.split())), err


def test_prune_reports_the_selection_time(monkeypatch, capsys, tmp_path):
    """vq trains the proxy CNN for its hard cut at selection, not at scoring: the line said
    'scored in 0.9 s' for a 25-s run (keep 0.01 of Digits); it names both times."""
    import importlib

    from tinysift.cli import main
    from tinysift.stages.prune import PruneOutcome

    def fake(dataset, method, keep, out, **kwargs):
        return PruneOutcome(tmp_path, method, 14, 1437, [1, 2, 1, 2, 2, 2, 1, 1, 1, 1], 0.9,
                            24.6)

    monkeypatch.setattr(importlib.import_module("tinysift.stages.prune"), "prune", fake)
    assert main(["prune", "--dataset", "digits", "--keep", "0.01", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "scored in 0.9 s, selected in 24.6 s" in out, out


FLASH = ["device", "flash", "--board", "nucleo_f411re", "--run"]  # a board with a flash step


def test_compiler_output_verbatim(monkeypatch, capsys, tmp_path):
    """Paths and flags in brackets are text, not rich markup (it raised MarkupError and hid
    the compiler's output)."""
    from tinysift.errors import DeviceError

    text = ("firmware build for qemu-mps2-an386 failed:\n[/work/x/src/app.c:12]: error: "
            "expected ';' [-Werror=implicit] [bold]x[/]")
    code, err = _main(monkeypatch, capsys, "tinysift.stages.device:flash", DeviceError(text),
                      FLASH + [str(_run_folder(tmp_path))])
    assert code == 2 and text in err, err


def test_unexpected_errors_are_one_line(monkeypatch, capsys, tmp_path):
    code, err = _main(monkeypatch, capsys, "tinysift.stages.device:flash",
                      ZeroDivisionError("x"), FLASH + [str(_run_folder(tmp_path))])
    assert code == 1 and "unexpected ZeroDivisionError" in err and "Traceback" not in err
    # a bare ``assert`` (no text): its type, no dangling colon
    code, err = _main(monkeypatch, capsys, "tinysift.stages.device:flash", AssertionError(),
                      FLASH + [str(_run_folder(tmp_path))])
    assert code == 1 and "unexpected AssertionError (a bug in tinysift" in " ".join(err.split())


def test_out_of_memory_is_one_line_exit_2_not_a_bug(monkeypatch, capsys, tmp_path):
    """`engine export --count 100000000` (47.7 GiB of inputs) ended in "unexpected
    MemoryError ... (a bug in tinysift: please report it)", exit 1: the machine's limit,
    said as such with the fix, exit 2."""
    code, err = _main(monkeypatch, capsys, "tinysift.stages.device:flash",
                      MemoryError("Unable to allocate 47.7 GiB"),
                      FLASH + [str(_run_folder(tmp_path))])
    (line,) = _error_lines(err)
    assert code == 2 and "out of memory (Unable to allocate 47.7 GiB): ask for less" in line
    assert "bug" not in err


def test_tensorflow_out_of_memory_is_one_line_exit_2_not_a_bug(monkeypatch, capsys, tmp_path):
    """`train --width 100000` ran out of memory in TensorFlow: "unexpected
    ResourceExhaustedError ... a bug in tinysift", exit 1. It is the machine's limit."""
    from tinysift.bench.driver import Failure, is_bug
    from tinysift.tfcompat import tf

    oom = tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with "
                                                       "shape[3,3,100000,100000]\nmore")
    code, err = _main(monkeypatch, capsys, "tinysift.stages.device:flash", oom,
                      FLASH + [str(_run_folder(tmp_path))])
    (line,) = _error_lines(err)
    assert code == 2 and "out of memory (OOM when allocating tensor with shape[3,3,100000," \
                         "100000]): ask for less" in line and "--width" in line
    assert not is_bug(oom) and Failure(0, "m", oom).error_line().startswith("out of memory")


def test_calibrate_prints_the_current_the_profile_stores(monkeypatch, capsys, tmp_path):
    """The smallest current a profile keeps, 0.0001 mA, was printed "measured 0.000 mA"
    (three decimals) while the profile stored 0.0001."""
    from tinysift.boards import load_board
    from tinysift.cli import main

    monkeypatch.setenv("TINYSIFT_CONFIG_DIR", str(tmp_path))
    assert main(["device", "calibrate", "--board", "nucleo_f411re", "--current-ma",
                 "0.0001"]) == 0
    assert "measured 0.0001 mA" in capsys.readouterr().out
    assert load_board("nucleo_f411re").active_current_ma == 0.0001


def test_calibrate_refuses_a_current_no_board_draws_and_says_what_it_replaces(
        monkeypatch, capsys, tmp_path):
    """`--current-ma 1e9` (a reading in uA typed as mA, times 1000) went into the profile and
    every later energy estimate was off by that factor; a second calibration replaced the
    first without a word. Now: refused above 3 A; a reading far from the profile's estimate
    is said; the calibration it replaces is named."""
    from tinysift.boards import load_board
    from tinysift.cli import main

    monkeypatch.setenv("TINYSIFT_CONFIG_DIR", str(tmp_path))
    assert main(["device", "calibrate", "--board", "nucleo_f411re", "--current-ma",
                 "1e9"]) == 2
    err = capsys.readouterr().err
    assert "--current-ma 1e+09 is more than a microcontroller board draws (at most 3000 mA)" \
        in " ".join(err.split())
    assert load_board("nucleo_f411re").current_is_estimate  # nothing written
    assert main(["device", "calibrate", "--board", "nucleo_f411re", "--current-ma", "12"]) == 0
    out = capsys.readouterr().out
    assert "replaces your earlier" not in out and "check the unit" not in out
    assert main(["device", "calibrate", "--board", "nucleo_f411re", "--current-ma",
                 "2500"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "250x the profile's estimate: check the unit (mA)" in out
    assert "replaces your earlier calibration: 12.0000 mA (measured: tinysift device " \
        "calibrate (the user's meter (--current-ma))" in out
    assert load_board("nucleo_f411re").active_current_ma == 2500.0
    # a project profile with a datasheet current (not an estimate) is no earlier calibration
    assert not load_board("nucleo_l4r5zi").current_is_estimate
    assert main(["device", "calibrate", "--board", "nucleo_l4r5zi", "--current-ma", "14"]) == 0
    assert "replaces your earlier" not in capsys.readouterr().out


def test_calibrate_refuses_a_workload_length_the_firmware_refuses(monkeypatch, capsys,
                                                                   tmp_path):
    """`device calibrate --ms 0` (or above the firmware's 600,000) was sent to the board,
    which refused it once connected; with --current-ma alone it was taken without a word
    and the profile written. Now a usage error naming --ms, exit 2, no profile written."""
    from tinysift.cli import main

    monkeypatch.setenv("TINYSIFT_CONFIG_DIR", str(tmp_path))
    for ms in ("0", "-5", "600001"):
        assert main(["device", "calibrate", "--board", "nucleo_f411re", "--current-ma", "3",
                     "--ms", ms]) == 2, ms
        (line,) = _error_lines(capsys.readouterr().err)
        assert "Invalid value for '--ms'" in line, line
    # a length in range without --port: nothing runs it, it was ignored without a word
    assert main(["device", "calibrate", "--board", "nucleo_f411re", "--current-ma", "3",
                 "--ms", "600000"]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert "--ms" in line and "without --port nothing runs" in line, line
    # with the Joulescope the missing port is what it says (not the meter's reading, nor
    # the driver found missing: it was loaded first)
    for extra in ([], ["--ms", "5000"]):
        assert main(["device", "calibrate", "--board", "nucleo_f411re", "--joulescope",
                     *extra]) == 2, extra
        (line,) = _error_lines(capsys.readouterr().err)
        assert "--joulescope needs --port" in line, line
    assert not list(tmp_path.iterdir())
    assert main(["device", "calibrate", "--board", "nucleo_f411re", "--current-ma", "3"]) == 0
    assert (tmp_path / "boards" / "nucleo_f411re.toml").is_file()


def test_train_on_a_kept_set_defaults_to_the_step_rule(monkeypatch, tmp_path):
    """`prune --keep 0.1` then `train` without --epochs: the subset step rule, not 10 epochs
    of 143 samples (20 steps, accuracy near chance). `--epochs 0` asks for that rule on the
    full set too (--help: "0 = that rule"), not the full set's 10 epochs."""
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
    main(["train", "--dataset", "digits", "--epochs", "0", "--out", str(tmp_path)])
    assert seen == [None, 10, 3, None]


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


# ---- bad input: one line naming the problem, exit 2, before any stage or data --------------

# what engine check/export/run say of a file that is not a .tflite
_NOT_TFLITE = ("{tmp}/model.h5 is not a readable .tflite flatbuffer: give a full-integer int8 "
               ".tflite, converted with `tinysift quantize` (a run's model.tflite) or "
               "TensorFlow's TFLiteConverter")

# (args, a text the one line must hold). {tmp} is the test's folder, holding the files of
# _bad_files. Datasets are `nope` where the refusal must come before any data is loaded (the
# unfixed CLI said "unknown dataset" there, or ran a benchmark).
BAD_INPUT = [
    # an `or` default took 0 for "not given" and ran the default
    (["bench", "prune", "--dataset", "nope", "--seeds", "0"], "--seeds"),
    (["bench", "prune", "--dataset", "nope", "--seeds", "0", "--protocol", "equal-steps"],
     "--seeds"),
    (["bench", "device", "--dataset", "nope", "--new-per-class", "0"], "--new-per-class"),
    (["bench", "upkeep", "--dataset", "nope", "--new-per-class", "0"], "--new-per-class"),
    (["bench", "guided", "--dataset", "nope", "--seeds", "0"], "--seeds"),
    (["bench", "condense", "--dataset", "nope", "--seeds", "0"], "--seeds"),
    (["bench", "device", "--dataset", "nope", "--steps", "0"], "--steps"),
    # comma-separated counts were a bare int()
    (["bench", "condense", "--dataset", "nope", "--per-class", "abc"],
     "--per-class takes comma-separated samples per class >= 1, e.g. 5,10,20; got 'abc'"),
    (["bench", "condense", "--dataset", "nope", "--per-class", ""], "--per-class"),
    (["bench", "condense", "--dataset", "nope", "--per-class", "1,0"], "--per-class"),
    (["bench", "device", "--dataset", "nope", "--sizes", "5,x"], "--sizes"),
    # a 0 among good counts is named alone (bench device's config does not check it again)
    (["bench", "device", "--dataset", "nope", "--sizes", "5,0,-2"],
     "--sizes values must be replay samples per old class >= 1, got 0, -2 in '5,0,-2'"),
    (["bench", "upkeep", "--dataset", "nope", "--buffers", "5,,3"], "--buffers"),
    # a fraction that is no number is named with its option, before any data is loaded
    (["bench", "prune", "--dataset", "nope", "--keep", "0.5,x"],
     "--keep takes comma-separated fractions, got '0.5,x'"),
    (["bench", "guided", "--dataset", "nope", "--budgets", "half"],
     "--budgets takes comma-separated fractions, got 'half'"),
    # an empty --scenario (an unset shell variable) is refused, not read as the default
    (["bench", "upkeep", "--dataset", "nope", "--scenario", ""],
     "bench upkeep --scenario must be shift or new-classes, got ''"),
    (["run", "{tmp}/ok.toml", "--budgets", "5,x"], "--budgets"),
    # seeds numpy refuses, widths keras refuses, a variant nobody builds
    (["prune", "--dataset", "nope", "--keep", "0.1", "--seed", "-1"], "--seed"),
    (["train", "--dataset", "nope", "--seed", "-1"], "--seed"),
    (["train", "--dataset", "nope", "--seed", str(2**32)], "--seed"),
    # the CLI's seeds are the lower half of numpy's uint32, so that seed + offset stays in it
    (["train", "--dataset", "nope", "--seed", str(2**31)], "--seed"),
    (["adapt", "--dataset", "digits", "--out", "{tmp}/adapt", "--seed", "-1"], "--seed"),
    (["train", "--dataset", "nope", "--width", "0"], "--width"),
    (["train", "--dataset", "nope", "--width", "-4"], "--width"),
    (["train", "--dataset", "nope", "--variant", "bogus"], "ds-cnn, conv-maxpool, resnet8"),
    # user data files
    (["data", "info", "npz:{tmp}/empty.npz"], "x holds no images"),
    (["data", "info", "npz:{tmp}/array.npz"], "not an .npz archive"),
    # the engine's counts and input files
    (["engine", "check", "--tflite", "{tmp}/m.tflite", "--count", "0"], "--count"),
    (["engine", "check", "--tflite", "{tmp}/m.tflite", "--count", "-1"], "--count"),
    (["engine", "export", "--tflite", "{tmp}/m.tflite", "--out-dir", "{tmp}/e",
      "--count", "-1"], "--count"),
    # a count beside the inputs it does not draw (ignored without a word)
    (["engine", "check", "--tflite", "{tmp}/m.tflite", "--inputs", "{tmp}/x.npy", "--count",
      "5"], "--count 5 sets how many random inputs to draw, and --inputs"),
    (["engine", "export", "--tflite", "{tmp}/m.tflite", "--out-dir", "{tmp}/e", "--inputs",
      "{tmp}/x.npy", "--count", "5"], "give one"),
    (["engine", "check", "--tflite", "{tmp}/m.tflite", "--inputs", "{tmp}/obj.npy"],
     "not a readable .npy"),
    (["engine", "check", "--tflite", "{tmp}/m.tflite", "--inputs", "{tmp}/garbage.npz"],
     "not a readable .npy"),
    (["engine", "run", "--tflite", "{tmp}/m.tflite", "--inputs", "{tmp}/none.npy", "--out",
      "{tmp}/y.npy"], "holds no inputs (shape (0, 8, 8, 1))"),
    (["engine", "run", "--tflite", "{tmp}/m.tflite", "--inputs", "{tmp}/x.npz", "--out",
      "{tmp}/y.npy"], "is an .npz archive (arrays x), not one array"),
    (["engine", "export", "--tflite", "{tmp}/m.tflite", "--out-dir", "{tmp}/e", "--inputs",
      "{tmp}/x.npz"], "is an .npz archive (arrays x), not one array"),
    # a file that is not a .tflite (here an HDF5 Keras model): was "not a readable .tflite
    # flatbuffer (error)", without the file or what to give instead
    (["engine", "check", "--tflite", "{tmp}/model.h5"], _NOT_TFLITE),
    (["engine", "export", "--tflite", "{tmp}/model.h5", "--out-dir", "{tmp}/e"], _NOT_TFLITE),
    (["engine", "run", "--tflite", "{tmp}/model.h5", "--inputs", "{tmp}/two.npy", "--out",
      "{tmp}/e/y.npy"], _NOT_TFLITE),
    # a missing model, an output path a file or folder is in the way of (were "unexpected
    # FileNotFoundError / FileExistsError / NotADirectoryError"; a folder --out wrote
    # FOLDER.npy)
    (["engine", "export", "--tflite", "{tmp}/typo/m.tflite", "--out-dir", "{tmp}/e"],
     "{tmp}/typo/m.tflite not found"),
    (["engine", "export", "--tflite", "{tmp}/empty", "--out-dir", "{tmp}/e"],
     "--tflite {tmp}/empty is a folder: give a .tflite file"),
    (["engine", "export", "--tflite", "{tmp}/m.tflite", "--out-dir", "{tmp}/ok.toml"],
     "{tmp}/ok.toml is a file, not a folder (--out-dir)"),
    (["engine", "check", "--tflite", "{tmp}/m.tflite", "--out-dir", "{tmp}/ok.toml/e"],
     "{tmp}/ok.toml is a file, not a folder (--out-dir)"),
    (["engine", "run", "--tflite", "{tmp}/m.tflite", "--inputs", "{tmp}/x.npy", "--out",
      "{tmp}/empty"], "--out {tmp}/empty is a folder"),
    # every bench's --out-dir before any training (was an unexpected NotADirectoryError
    # after the first trainings)
    *[(["bench", bench, "--dataset", "digits", "--out-dir", "{tmp}/ok.toml/r"],
       "{tmp}/ok.toml is a file, not a folder (--out-dir)")
      for bench in ("prune", "guided", "condense", "device", "scoring", "upkeep")],
    # guided parameters of the wrong type (one was an AttributeError, one trained first)
    (["train", "--dataset", "digits", "--guided", "flow", "--budget", "0.5", "--epochs", "2",
      "--out", "{tmp}/g", "--guided-params", '{"judge": 5}'], "parameter judge takes a string"),
    (["train", "--dataset", "digits", "--guided", "vq", "--budget", "0.5", "--epochs", "2",
      "--out", "{tmp}/g", "--guided-params", '{"alpha": "x"}'], "parameter alpha takes a number"),
    # an empty --guided-params (an unset shell variable) is not "no parameters"
    (["train", "--dataset", "digits", "--guided", "flow", "--budget", "0.5", "--epochs", "2",
      "--out", "{tmp}/g", "--guided-params", ""], "--guided-params is not JSON"),
    # no calibration sample at all
    (["quantize", "--run", "{tmp}/typo", "--representative", "0"], "'--representative'"),
    # a number beyond a float's range is JSON that Python reads as inf (as Infinity)
    (["train", "--dataset", "digits", "--guided", "vq", "--budget", "0.5", "--epochs", "2",
      "--out", "{tmp}/g", "--guided-params", '{"alpha": 1e400}'],
     "--guided-params holds 1e400, beyond a float's range (it reads as infinity); give "
     "finite numbers"),
    # an integer of 5,000 digits is JSON that Python's int() refuses (its digit limit)
    (["train", "--dataset", "digits", "--guided", "vq", "--budget", "0.5", "--epochs", "2",
      "--out", "{tmp}/g", "--guided-params", '{"alpha": 1%s}' % ("0" * 5000)],
     "--guided-params holds an integer too long to read (over 4,300 digits); give numbers"),
    # pipeline files
    (["run", "{tmp}/broken.toml"], "is not valid TOML"),
    (["run", "{tmp}/broken-adapt.toml"], "is not valid TOML"),
    (["run", "{tmp}/ten.toml"], "epochs must be a whole number, got 'ten'"),
    (["run", "{tmp}/ten-adapt.toml"], "steps must be a whole number, got 'ten'"),
    (["run", "{tmp}/sizes-adapt.toml"], "sizes must be a list of whole numbers"),
    (["run", "{tmp}/seed.toml"], "seed must be a whole number in [0, 2147483647]"),
    (["run", "{tmp}/ok-adapt.toml", "--epochs", "3"], "is an adapt pipeline"),
    (["run", "{tmp}/ok-adapt.toml", "--budgets", "5"], "set steps and sizes"),
    (["run", "{tmp}/ok-adapt.toml", "--methods", "el2n"], "methods must name replay methods"),
    (["run", "{tmp}/lr.toml"], "cannot train with lr -1"),
    # refused after base training, quantization and export (proxy_epochs 0, a method's
    # unknown setting: "unexpected" exit 1), as on-device --epochs, or silently ignored
    (["run", "{tmp}/proxy.toml"], "proxy_epochs must be a whole number >= 1, got 0"),
    (["run", "{tmp}/params-typo.toml"], "method_params names 'flw', not a selection method"),
    (["run", "{tmp}/params-bad.toml"], "method_params.vq: vq has no setting bogus"),
    (["run", "{tmp}/params-nested.toml"], "method_params.flow.flow has no setting x; its"),
    (["run", "{tmp}/params-int.toml"], "method_params.vq must be a table"),
    (["run", "{tmp}/base-epochs.toml"], "base_epochs must be a whole number >= 1"),
    (["run", "{tmp}/test-samples.toml"], "test_samples must be a whole number >= 1"),
    (["run", "{tmp}/base-keep.toml"], "base_keep must be a fraction in (0, 1]"),
    (["run", "{tmp}/twice.toml"], "setting epochs is given twice ([base] and [device])"),
    (["run", "{tmp}/kind.toml"], "kind = 'selct' is not a pipeline kind"),
    (["run", "{tmp}/ok.toml", "--budgets", ""], "--budgets"),
    (["run", "{tmp}/ok.toml", "--out", "{tmp}/typo"], "unknown dataset 'nope'"),
    (["run", "{tmp}/fit-board-adapt.toml"], "fit_board: unknown board 'bogus'"),
    (["run", "{tmp}/updates-adapt.toml"], "updates must name at least one update mode"),
    # --run folders that are not run folders
    (["quantize", "--run", "{tmp}/typo"], "not a run folder: {tmp}/typo does not exist"),
    (["export", "--run", "{tmp}/typo"], "not a run folder: {tmp}/typo does not exist"),
    (["export", "--run", "{tmp}/ok.toml"], "is a file, not a folder"),
    (["device", "run", "--run", "{tmp}/empty"], "{tmp}/empty has no manifest.json"),
    (["device", "flash", "--board", "nucleo_f411re", "--run", "{tmp}/typo", "--dry-run"],
     "not a run folder: {tmp}/typo does not exist"),
    (["device", "flash", "--board", "nucleo_f411re", "--run", "{tmp}/empty"],
     "{tmp}/empty has no manifest.json"),
    # --out folders that cannot be one (were "unexpected FileExistsError / NotADirectoryError")
    (["prune", "--dataset", "digits", "--method", "random", "--keep", "0.1", "--out",
      "{tmp}/ok.toml"], "{tmp}/ok.toml is a file, not a folder (--out/--run)"),
    # the file in the way is named (was "cannot create the run folder .../run (Not a
    # directory)")
    (["train", "--dataset", "digits", "--out", "{tmp}/ok.toml/run"],
     "{tmp}/ok.toml is a file, not a folder (--out/--run)"),
    # adapt's --out: a file there was "unexpected FileExistsError" (exit 1); a scenario
    # refused (unknown dataset, classes out of range) left an empty run folder
    (["adapt", "--dataset", "nope", "--out", "{tmp}/ok.toml"],
     "{tmp}/ok.toml is a file, not a folder (--out)"),
    (["adapt", "--dataset", "nope", "--out", "{tmp}/typo"], "unknown dataset 'nope'"),
    (["adapt", "--dataset", "digits", "--old-classes", "0-20", "--out", "{tmp}/typo"],
     "old classes must be in 0..9; 10, 11, 12, 13, 14 and 6 more are not"),
    # a huge range built a list of 2e9 classes until memory ran out; "0-" was read as 0
    (["adapt", "--dataset", "digits", "--old-classes", "0-2000000000", "--out", "{tmp}/t"],
     "class 2000000000 is beyond any dataset's classes"),
    (["adapt", "--dataset", "digits", "--old-classes", "0-", "--out", "{tmp}/typo"],
     "--old-classes takes numbers and ranges like 0-7 (low-high) or 0,2,4; got '0-'"),
    (["adapt", "--dataset", "nope", "--old-classes", "7-0", "--out", "{tmp}/typo"],
     "--old-classes takes numbers and ranges like 0-7 (low-high) or 0,2,4; got '7-0'"),
    # one line for three ranges named neither the option given nor its value
    (["adapt", "--dataset", "digits", "--steps", "0", "--out", "{tmp}/typo"],
     "--steps must be >= 1, got 0"),
    (["adapt", "--dataset", "digits", "--new-per-class", "0", "--out", "{tmp}/typo"],
     "--new-per-class must be >= 1, got 0"),
    (["adapt", "--dataset", "digits", "--replay-per-class", "-1", "--out", "{tmp}/typo"],
     "--replay-per-class must be >= 0, got -1"),
    # train's random subset: the refusal advised --no-balance, an option train does not have
    (["train", "--dataset", "digits", "--keep", "5", "--out", "{tmp}/typo"],
     "--keep 5 is fewer than the 10 classes: train's random subset is class-balanced"),
    # --keep beside --condensed was ignored: the whole condensed set trained
    (["train", "--dataset", "digits", "--condensed", "{tmp}/typo", "--keep", "0.5", "--out",
      "{tmp}/typo"], "--keep does not apply to --condensed"),
    # a typo or another case of a known name was told only the list: the likely one is named
    (["prune", "--dataset", "digits", "--method", "Herding", "--keep", "0.1", "--out",
      "{tmp}/typo"], "unknown method 'Herding' (did you mean herding?)"),
    (["condense", "--dataset", "digits", "--method", "vq-rael", "--per-class", "2", "--out",
      "{tmp}/typo"], "unknown condensation method 'vq-rael' (did you mean vq-real?)"),
    (["train", "--dataset", "digits", "--guided", "infobath", "--budget", "0.5", "--out",
      "{tmp}/typo"], "unknown guided method 'infobath' (did you mean infobatch?)"),
    (["train", "--dataset", "digits", "--variant", "resnet", "--out", "{tmp}/typo"],
     "unknown model variant 'resnet' (did you mean resnet8?)"),
    (["bench", "prune", "--protocol", "equal-step"],
     "unknown --protocol 'equal-step' (did you mean equal-steps?)"),
    (["bench", "guided", "--methods", "vq,ucbb", "--seeds", "1"],
     "unknown guided method(s) ['ucbb'] (did you mean ucb?)"),
    (["adapt", "--dataset", "digits", "--replay", "Flow", "--out", "{tmp}/typo"],
     "unknown replay method 'Flow' (did you mean flow?)"),
    (["adapt", "--dataset", "digits", "--scenario", "shfit", "--out", "{tmp}/typo"],
     "unknown scenario 'shfit' (did you mean shift?)"),
    # a file at demo's --out: "the progress log's folder ... pass another --out-dir"
    (["demo", "--quick", "--out", "{tmp}/ok.toml"],
     "{tmp}/ok.toml is a file, not a folder (--out): choose another folder"),
    # a board with no firmware port: its port was opened (or `device flash` advised, which
    # refuses it)
    (["device", "run", "--run", "{tmp}/typo", "--board", "disco_f746ng", "--port",
      "/dev/ttyS0"], "--board disco_f746ng has no firmware port (its profile is for memory "
                     "plans only)"),
    # with --old-classes it was "--old-classes applies to the new-classes scenario only"
    (["adapt", "--dataset", "digits", "--scenario", "foo", "--old-classes", "0-7", "--out",
      "{tmp}/typo"], "unknown scenario 'foo'; choose one of new-classes, shift, user"),
    (["run", "{tmp}/setting-typo.toml"], "unknown pipeline settings ['epoch'] (did you mean "
                                          "epochs?)"),
    # several unknown settings: no guess (an adapt file without its kind line was told
    # "did you mean board?", a setting it had); an adapt file's settings: its kind line
    (["run", "{tmp}/settings-typo.toml"], "unknown pipeline settings ['epoch', 'foo']; known"),
    (["run", "{tmp}/no-kind-adapt.toml"], "has no kind line, so it is read as a select "
                                          "pipeline, but its settings are an adapt "
                                          "pipeline's: add kind = \"adapt\" at its top"),
]


@pytest.fixture()
def bad_files(tmp_path):
    """The malformed inputs of BAD_INPUT, in ``tmp_path``."""
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 8, 8), np.uint8), y=np.zeros(0, np.int64))
    np.save(tmp_path / "array.npy", np.zeros((3, 4)))
    (tmp_path / "array.npz").write_bytes((tmp_path / "array.npy").read_bytes())
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "garbage.npz").write_text("not numpy")
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 8, 8, 1), np.int8))
    np.save(tmp_path / "none.npy", np.zeros((0, 8, 8, 1), np.int8))
    (tmp_path / "m.tflite").write_bytes(b"never read: the input is refused first")
    (tmp_path / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(248))
    np.save(tmp_path / "two.npy", np.zeros((2, 8, 8, 1), np.int8))
    (tmp_path / "ok.toml").write_text('dataset = "nope"\n')
    (tmp_path / "broken.toml").write_text('name = "x"\nepochs = [\n')
    (tmp_path / "broken-adapt.toml").write_text('kind = "adapt"\nsteps = [\n')
    (tmp_path / "ten.toml").write_text('dataset = "nope"\nepochs = "ten"\n')
    (tmp_path / "ten-adapt.toml").write_text('kind = "adapt"\ndataset = "nope"\n'
                                             'steps = "ten"\n')
    (tmp_path / "sizes-adapt.toml").write_text('kind = "adapt"\ndataset = "nope"\n'
                                               'sizes = [5, "x"]\n')
    (tmp_path / "seed.toml").write_text('dataset = "nope"\nseed = -1\n')
    (tmp_path / "ok-adapt.toml").write_text('kind = "adapt"\ndataset = "nope"\n')
    (tmp_path / "lr.toml").write_text('dataset = "nope"\nlr = -1\n')
    for name, text in (("proxy", "proxy_epochs = 0"),
                       ("params-typo", "method_params = {flw = {dim = 8}}"),
                       ("params-bad", "[method_params.vq]\nbogus = 1"),
                       ("params-nested", "[select]\nmethod_params = {flow = {flow = {x = 1}}}"),
                       ("params-int", "method_params = {vq = 3}"),
                       ("base-epochs", "base_epochs = -1"), ("test-samples", "test_samples = 0"),
                       ("base-keep", 'base_keep = "2.0"'),
                       ("twice", "[base]\nepochs = 3\n[device]\nepochs = 5"),
                       ("kind", 'kind = "selct"'), ("setting-typo", "epoch = 3"),
                       ("settings-typo", "epoch = 3\nfoo = 1"),
                       ("no-kind-adapt", "old_classes = [0, 1]\nsizes = [5]\nsteps = 10")):
        (tmp_path / f"{name}.toml").write_text(f'dataset = "nope"\n{text}\n')
    (tmp_path / "fit-board-adapt.toml").write_text('kind = "adapt"\ndataset = "nope"\n'
                                                   'fit_board = "bogus"\n')
    (tmp_path / "updates-adapt.toml").write_text('kind = "adapt"\ndataset = "nope"\n'
                                                 'updates = []\n')
    (tmp_path / "empty").mkdir()
    return tmp_path


def _error_lines(err: str) -> list[str]:
    """The lines of stderr that state an error: tinysift's ``error: ...`` or typer's
    ``Error: ...`` (typer prints its usage and help hint above it)."""
    return [line for line in err.splitlines() if line.lower().startswith("error:")]


@pytest.mark.parametrize("args,said", BAD_INPUT,
                         ids=[" ".join(a)[:60] for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_2(args, said, bad_files, capsys, monkeypatch):
    """Plain bad input is refused with one line naming it and exit 2, never an "unexpected
    ... (a bug in tinysift)" exit 1, and before any stage ran (no folder was created)."""
    from tinysift.cli import main

    monkeypatch.chdir(bad_files)  # what an unfixed command wrote (runs/, benchmarks/) lands here
    tmp = str(bad_files)
    code = main([a.replace("{tmp}", tmp) for a in args])
    err = capsys.readouterr().err
    lines = _error_lines(err)
    assert code == 2, (code, err)
    assert len(lines) == 1 and said.replace("{tmp}", tmp) in lines[0], err
    assert "unexpected" not in err and "Traceback" not in err, err
    assert not (bad_files / "typo").exists() and not (bad_files / "e").exists()
    assert not (bad_files / "empty" / ".tinysift.lock").exists()


def test_adapt_refuses_new_data_outside_the_user_scenario(monkeypatch, capsys, tmp_path):
    """`adapt --new npz:PATH` without `--scenario user` ignored --new (the file was never
    read): the device learned the dataset's own new classes and the results looked like
    the user's. Refused in one line, exit 2, before the base model; with --scenario user it
    reaches the base model."""
    from tinysift.cli import main

    seen = _stop_at(monkeypatch, "tinysift.pipeline.adapt:prepare_base")
    new = ["--new", f"npz:{tmp_path / 'mine.npz'}", "--out", str(tmp_path / "run")]
    for scenario in (["--scenario", "new-classes"], ["--scenario", "shift"], []):
        assert main(["adapt", "--dataset", "digits", *scenario, *new]) == 2, scenario
        (line,) = _error_lines(capsys.readouterr().err)
        assert "--new is the user scenario's data" in line and "add --scenario user" in line
    assert not seen and not (tmp_path / "run").exists()
    assert main(["adapt", "--dataset", "digits", "--scenario", "user", *new]) == 130
    assert seen[0].new == f"npz:{tmp_path / 'mine.npz'}"


def test_device_run_refuses_a_joulescope_cap_without_the_joulescope(monkeypatch, capsys,
                                                                   tmp_path):
    """`device run --joulescope-max-s S` without `--joulescope` ignored S (a negative one too):
    the run went on with estimated energy. Refused in one line, exit 2, before the session;
    with --joulescope the cap reaches the monitor."""
    import sys
    import types

    from tinysift.cli import main

    seen = _stop_at(monkeypatch, "tinysift.stages.device:run_on_device")
    run = str(_run_folder(tmp_path / "run"))
    for cap in ("300", "-5"):
        assert main(["device", "run", "--run", run, "--joulescope-max-s", cap]) == 2, cap
        (line,) = _error_lines(capsys.readouterr().err)
        assert "--joulescope-max-s" in line and "add --joulescope" in line, line
    assert not seen
    # a stand-in driver module: JoulescopeMonitor imports it when constructed
    monkeypatch.setitem(sys.modules, "joulescope", types.ModuleType("joulescope"))
    monitors = []

    def capture(*args, monitor=None, **kwargs):
        monitors.append(monitor)
        raise KeyboardInterrupt

    monkeypatch.setattr("tinysift.stages.device.run_on_device", capture)
    assert main(["device", "run", "--run", run, "--joulescope", "--joulescope-max-s",
                 "300", "--port", "/dev/ttyACM0", "--board", "nucleo_f411re"]) == 130
    assert monitors[0].max_s == 300


def test_device_run_trains_what_the_device_can_and_refuses_a_joulescope_on_qemu(
        monkeypatch, capsys, tmp_path):
    """`device run` sends the firmware's update modes, steps, schedule and balanced loss (a
    user's own run could train only the head, for epochs: update=last-block and bias were
    reachable through `adapt` and `bench device` alone); --epochs with --steps is refused, and
    so is --joulescope on the emulated board (it measured nothing; the run kept its
    estimates)."""
    from tinysift.cli import main

    run = str(_run_folder(tmp_path / "run"))
    params = []

    def capture(*args, **kwargs):
        params.append(kwargs["params"])
        raise KeyboardInterrupt

    monkeypatch.setattr("tinysift.stages.device.run_on_device", capture)
    assert main(["device", "run", "--run", run, "--update", "last-block", "--steps", "40",
                 "--schedule", "cosine", "--balance"]) == 130
    sent = params[0]
    assert (sent.update, sent.steps, sent.schedule, sent.balance) == ("last-block", 40,
                                                                      "cosine", True)
    assert sent.command().startswith("train steps=40 ")
    assert "update=last-block schedule=cosine balance=1" in sent.command()
    assert main(["device", "run", "--run", run]) == 130  # the defaults: 5 epochs, head
    assert params[1].command() == ("train epochs=5 lr=0.05 momentum=0.9 batch=32 seed=1 "
                                   "init=export")
    for args, said in ((["--epochs", "3", "--steps", "40"], "give one"),
                       (["--joulescope"], "--board qemu-mps2-an386 is emulated"),
                       # a real board lacks only its port (the line said "emulated")
                       (["--joulescope", "--board", "nucleo_f446re"], "pass the board's "
                                                                      "serial port (--port")):
        assert main(["device", "run", "--run", run, *args]) == 2, args
        (line,) = _error_lines(capsys.readouterr().err)
        assert said in line, line
        assert "emulated" not in line or "qemu" in line, line
    assert len(params) == 2


def test_device_run_prints_paths_and_device_text_as_written(tmp_path, capsys):
    """rich read `[...]` in a run folder's path or in a device's record as markup: the
    path `runs[bold]/r` was printed as `runs/r`, and a phase named `[/x]` (a CRC-valid record
    of a firmware that disagrees on TSP/1) ended a finished run in 'unexpected MarkupError'
    (exit 1)."""
    from fake_device import FakeDevice, fake_run
    from tinysift.cli import main

    class Device(FakeDevice):
        def send(self, payload: str) -> None:
            super().send(payload.replace("name=features", "name=[/x]"))

    run = fake_run(tmp_path / "runs[bold]" / "r[/y]", board="qemu-mps2-an386")
    dev = Device()
    try:
        assert main(["device", "run", "--run", str(run), "--port", dev.url, "--epochs", "2",
                     "--timeout", "3"]) == 0
    finally:
        dev.close()
    out = capsys.readouterr().out
    assert f"-> {run / 'device' / 'results.json'}" in out
    assert "│ [/x] " in out


def test_boards_prints_a_profiles_text_as_written(tmp_path, monkeypatch, capsys):
    """A user profile's `core = "cortex-m4 [r0p1]"` was printed by `tinysift boards` as
    "cortex-m4 " (rich markup), and "[/r0p1]" ended it in 'unexpected MarkupError'."""
    from tinysift.cli import main

    monkeypatch.setenv("TINYSIFT_CONFIG_DIR", str(tmp_path))
    (tmp_path / "boards").mkdir()
    for core in ("cortex-m4 [r0p1]", "cortex-m4 [/r0p1]"):
        (tmp_path / "boards" / "nucleo_f411re.toml").write_text(f'core = "{core}"\n')
        assert main(["boards"]) == 0
        assert f"│ {core} │" in capsys.readouterr().out


def test_every_command_summary_is_one_line():
    """A group's --help lists each command with the first paragraph of its docstring, line
    breaks kept: a summary wrapped in the source read "... and the" / "emulated boards." in
    `tinysift device --help`. Each summary is one line; details go in a later paragraph."""
    from typer.main import get_command

    from tinysift.cli.app import app

    def summaries(cmd, path):
        for name, sub in getattr(cmd, "commands", {}).items():
            yield [*path, name], (sub.help or "").strip().split("\n\n")[0]
            yield from summaries(sub, [*path, name])

    wrapped = [(" ".join(path), first) for path, first in summaries(get_command(app), [])
               if "\n" in first]
    assert not wrapped, wrapped


def test_no_option_help_is_swallowed_as_markup():
    """--help renders option help as rich markup, where ``[word ...]`` is a style tag and
    vanishes: `device run --help` showed no default for --epochs ("[default: 5, or
    --steps]" in its help). No option's help holds such a tag."""
    import re

    from typer.main import get_command

    from tinysift.cli.app import app

    tag = re.compile(r"(?<!\\)\[[a-z#/@][^\[]*?\]")  # rich.markup's tag, unescaped

    def swallowed(cmd, path):
        for param in getattr(cmd, "params", []):
            if tag.search(getattr(param, "help", None) or ""):
                yield " ".join(path), param.name, param.help
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from swallowed(sub, [*path, name])

    found = list(swallowed(get_command(app), []))
    assert not found, found


def test_no_flag_is_shown_as_taking_a_value(capsys):
    """typer 0.29 prints a flag's type after it in --help (`--no-balance <bool>`, `--help
    <bool>`), as if the flag took a value: the first screen a newcomer reads showed it
    (pyproject keeps typer below 0.29). No command's help shows a flag with a type."""
    from typer.main import get_command

    from tinysift.cli import main
    from tinysift.cli.app import app

    def paths(cmd, path):
        yield path
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from paths(sub, [*path, name])

    shown = []
    for path in paths(get_command(app), []):
        assert main([*path, "--help"]) == 0, path
        if "<bool>" in capsys.readouterr().out:
            shown.append(" ".join(path))
    assert not shown, shown


def test_bench_defaults_apply_only_when_not_given(monkeypatch):
    """`bench prune` without --seeds runs 3 seeds (equal-steps: 5), `bench device` without
    --new-per-class 100 (shift: 30); a given value is used as given."""
    from tinysift.cli import main

    seen = _stop_at(monkeypatch, "tinysift.bench.prune:bench_prune",
                    "tinysift.bench.device:bench_device")
    for args in (["bench", "prune"], ["bench", "prune", "--protocol", "equal-steps"],
                 ["bench", "prune", "--seeds", "1"], ["bench", "device"],
                 ["bench", "device", "--scenario", "shift"],
                 ["bench", "device", "--new-per-class", "7", "--sizes", "3,4"]):
        assert main(args) == 130, args
    assert [c.seeds for c in seen[:3]] == [3, 5, 1]
    assert [c.new_per_class for c in seen[3:]] == [100, 30, 7] and seen[5].sizes == (3, 4)


def test_bench_quick_refuses_the_options_it_would_ignore(monkeypatch, capsys):
    """`--quick` runs its own digits configuration: --dataset, --keep, --seeds (and the
    like) given with it were silently ignored; now refused in one line, exit 2, before any
    bench runs. Without them, --quick runs as before."""
    from tinysift.cli import main

    seen = _stop_at(monkeypatch, "tinysift.bench.prune:bench_prune",
                    "tinysift.bench.guided:bench_guided",
                    "tinysift.bench.condense:bench_condense")
    for args, named in ((["prune", "--dataset", "mnist", "--keep", "0.3"], "--dataset, --keep"),
                        (["prune", "--seeds", "3"], "--seeds"),
                        (["guided", "--budgets", "0.3", "--epochs", "5"], "--budgets, --epochs"),
                        (["guided", "--keep-steps"], "--keep-steps"),
                        (["condense", "--per-class", "10", "--dataset", "mnist"],
                         "--dataset, --per-class")):
        assert main(["bench", *args, "--quick"]) == 2, args
        (line,) = _error_lines(capsys.readouterr().err)
        assert f"would ignore {named}: drop" in line, line
    assert not seen
    for bench in ("prune", "guided", "condense"):
        assert main(["bench", bench, "--quick"]) == 130
    assert [c.dataset for c in seen] == ["digits"] * 3 and all(c.quick for c in seen)
    assert main(["bench", "guided", "--seeds", "2", "--epochs", "3"]) == 130  # not quick
    assert (seen[-1].dataset, seen[-1].seeds, seen[-1].epochs, seen[-1].batch,
            seen[-1].budgets) == ("fashion-mnist", 2, 3, 128, (0.3, 0.5, 0.7))


def test_device_benches_quick_refuse_the_options_they_would_ignore(monkeypatch, capsys):
    """`bench device --quick` and `bench upkeep --quick` run their own digits configuration:
    --scenario, --seeds, --methods, --buffers (and the like) given with them were silently
    ignored (the README even showed `bench upkeep --scenario shift --seeds 3 [--quick]`);
    now refused in one line, exit 2, before any bench runs. --board they take. Without
    --quick, a given option is used and the rest keep their defaults."""
    from tinysift.cli import main

    seen = _stop_at(monkeypatch, "tinysift.bench.device:bench_device",
                    "tinysift.bench.upkeep:bench_upkeep")
    for args, named in ((["device", "--scenario", "shift", "--seeds", "5"],
                         "--scenario, --seeds"),
                        (["device", "--methods", "vq", "--steps", "10"], "--methods, --steps"),
                        (["upkeep", "--scenario", "shift", "--seeds", "3"],
                         "--scenario, --seeds"),
                        (["upkeep", "--buffers", "5", "--replay", "vq"], "--buffers, --replay"),
                        # a given 0 is given (`not in (None, False)` took it for False)
                        (["upkeep", "--replay-per-class", "0"], "--replay-per-class")):
        assert main(["bench", *args, "--quick"]) == 2, args
        (line,) = _error_lines(capsys.readouterr().err)
        assert f"would ignore {named}: drop" in line, line
    assert not seen
    assert main(["bench", "device", "--quick", "--board", "qemu-mps2-an500"]) == 130
    assert main(["bench", "upkeep", "--quick", "--board", "qemu-mps2-an500"]) == 130
    assert [(c.dataset, c.board) for c in (seen[0], seen[1].upkeep)] == [
        ("digits", "qemu-mps2-an500")] * 2
    assert seen[0].quick and seen[1].quick
    assert main(["bench", "device", "--seeds", "2", "--methods", "vq"]) == 130  # not quick
    assert (seen[-1].dataset, seen[-1].seeds, seen[-1].methods, seen[-1].sizes,
            seen[-1].updates, seen[-1].steps, seen[-1].board) == (
        "fashion-mnist", 2, ("vq",), (5, 10, 20), ("head",), 300, "qemu-mps2-an386")
    assert main(["bench", "upkeep", "--seeds", "2"]) == 130
    up = seen[-1].upkeep
    assert (seen[-1].seeds, up.scenario, up.dataset, up.buffers, up.replay,
            up.replay_per_class, up.steps, up.base_epochs) == (
        2, "shift", "mnist", (5, 10), "random", 10, 300, 10)


def test_guided_params_of_the_right_type_pass():
    """The type check takes what the methods' defaults allow: a whole number for a float,
    null where the default is None, numpy scalars from a caller."""
    from tinysift.guided import make_sampler

    s = make_sampler("flow", alpha=2, judge="knn", judge_dim=None, rejudge=False,
                     per_code=np.int64(20), keep_hard=np.float32(0.25))
    assert s.alpha == 2 and s.judge == "knn" and s.per_code == 20
    assert make_sampler("ucb", c=0).c == 0


def test_one_type_check_for_settings_and_guided_params():
    """Pipeline settings and guided parameters share one check (tinysift.params): a bool is
    never a number, a whole number is a float's value, numpy scalars pass, lists and
    literals are checked item by item."""
    from typing import Literal

    from tinysift.params import describe_annotation, value_fits

    assert value_fits(3, float) and value_fits(np.int64(3), int) and value_fits(None, int | None)
    assert not value_fits(True, int) and not value_fits(np.bool_(True), float)
    assert not value_fits(1.5, int) and not value_fits("1", float) and value_fits(True, bool)
    assert value_fits([1, 2.5], list[float]) and not value_fits([1, "x"], list[float])
    assert value_fits("a", Literal["a", "b"]) and not value_fits("c", Literal["a", "b"])
    assert describe_annotation(int | None) == "a whole number"
    assert describe_annotation(list[int]) == "a list of whole numbers"
    # a Python bool is a Real too: `lr = true` in a pipeline file read as lr 1.0
    assert not value_fits(True, float) and not value_fits(False, int | float)
    # a flag's value read back from numpy (np.bool_ is no subclass of bool) is a bool
    assert value_fits(np.bool_(False), bool) and value_fits(np.bool_(True), bool | None)


def test_plain_params_leave_out_the_seed_and_working_state():
    """What a cache key or results record compares: the constructor's parameters without the
    seed (runs of seeds 3 and 4 are one configuration), the fitted ``x_`` and private ``_x``
    attributes (a condenser's working arrays are not JSON; DM keeps ``_synth``)."""
    from tinysift.params import Parameterized
    from tinysift.selection import make_method

    assert "seed" not in make_method("random", seed=3).plain_params()
    assert make_method("el2n", seed=3).plain_params() == make_method("el2n", seed=4).plain_params()

    class Scorer(Parameterized):
        def __init__(self, bins: int = 4, seed: int = 0):
            self.bins, self.seed = bins, seed
            self._work = np.zeros(3)  # working state: not a parameter, not JSON
            self.scores_ = np.ones(3)  # fitted

    assert Scorer(bins=5, seed=9).plain_params() == {"bins": 5}
    assert Scorer(bins=5, seed=9).get_params() == {"bins": 5, "seed": 9}


def test_one_whole_number_check_for_counts():
    """Counts (epochs, batches, bins, neighbours, codewords, classes) share one check: numpy
    integers pass; a bool, a float (whole or not), a string and a count below the least do
    not."""
    from tinysift.params import is_whole

    assert is_whole(3) and is_whole(np.int64(3), 3) and is_whole(0, 0) and is_whole(-2)
    assert not is_whole(True) and not is_whole(np.bool_(True)) and not is_whole(2.0)
    assert not is_whole(np.float32(2)) and not is_whole("2") and not is_whole(None)
    assert not is_whole(2, 3) and not is_whole(np.uint8(0), 1)


def test_pipeline_settings_are_typed():
    """TOML values are checked against the settings' types; a number is a base_keep's text,
    a whole number a float setting's value; the shipped pipelines load."""
    from tinysift.pipeline.config import PipelineConfig

    cfg = PipelineConfig().override(base_keep=0.2, lr=1)
    assert cfg.base_keep == "0.2" and cfg.lr == 1.0 and isinstance(cfg.lr, float)
    from tinysift.errors import TinysiftError

    for bad in ({"methods": "vq"}, {"budgets": [50, 1.5]}, {"epochs": True},
                {"method_params": []}, {"name": 3}):
        with pytest.raises(TinysiftError, match=f"pipeline setting {next(iter(bad))} must be"):
            PipelineConfig().override(**bad)


def test_adapt_pipeline_ranges_are_refused_before_the_base_model():
    """A pipeline file reaches the adaptation settings without the CLI's ranges: 0 test
    samples a class was refused after the base model trained ("keep 0 is fewer than the
    classes"), 0 base epochs and no old classes likewise late."""
    from tinysift.bench.adapt_demo import AdaptDemoConfig
    from tinysift.errors import TinysiftError

    for bad, words in (({"test_per_class": 0}, "test_per_class and base_epochs must be >= 1"),
                       ({"base_epochs": 0}, "test_per_class and base_epochs must be >= 1"),
                       ({"old_classes": []}, "old_classes must name the classes")):
        with pytest.raises(TinysiftError, match=words):
            AdaptDemoConfig.quick().override(**bad).validate()
    AdaptDemoConfig.quick().validate()


def test_model_shape_is_a_tinysift_error():
    from tinysift.errors import TinysiftError
    from tinysift.models.cnn import ModelConfig

    with pytest.raises(TinysiftError, match="choose one of ds-cnn, conv-maxpool, resnet8"):
        ModelConfig(variant="bogus")
    with pytest.raises(TinysiftError, match="width must be a whole number"):
        ModelConfig(width=0)
    assert ModelConfig(width=np.int64(8)).width == 8


def test_prune_no_balance_is_one_flag(monkeypatch, capsys):
    """`--no-balance` is a plain flag: its help showed `--no-balance --no-no-balance`, and
    `--no-no-balance` was accepted. Given, the prune stage gets balance=False."""
    import importlib

    from tinysift.cli import main

    assert main(["prune", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--no-balance" in out and "no-no-balance" not in out, out
    seen = []

    def capture(*a, **k):
        seen.append(k["balance"])
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module("tinysift.stages.prune"), "prune", capture)
    for extra, balance in (([], True), (["--no-balance"], False)):
        assert main(["prune", "--dataset", "digits", "--keep", "0.1", *extra]) == 130
        assert seen[-1] is balance
    assert main(["prune", "--dataset", "digits", "--keep", "0.1", "--no-no-balance"]) == 2


def test_readme_cli_tour_commands_parse(capsys):
    """Every command of the README's CLI tour names a command and options that exist (its
    optional parts in brackets included): checked with --help, which parses the options and
    runs nothing. A renamed or dropped option fails here, not in a newcomer's shell."""
    import re
    import shlex
    from pathlib import Path

    from tinysift.cli import main

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    tour = readme.split("## CLI tour", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands, pending = [], ""
    for raw in tour.splitlines():
        line = pending + raw.split("#", 1)[0].strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if line.startswith("tinysift ") and "..." not in line:
            line = re.sub(r"\[([^\]]*)\]", r"\1", line)  # optional parts: given
            line = re.sub(r"(\S+)\|\S+", r"\1", line)  # alternatives: the first
            commands.append(shlex.split(line)[1:])
    assert len(commands) > 30, commands
    for argv in commands:
        assert main([*argv, "--help"]) == 0, (argv, capsys.readouterr().err)
    capsys.readouterr()


def test_user_text_in_the_output_is_not_rich_markup(tmp_path, capfd):
    """Class names and paths are printed as they are: "[/]" in one was an unexpected
    MarkupError (exit 1, after a prune or training had finished) and "[v2]" vanished from a
    path. In this process (a new one per command imported TensorFlow eight times: a minute);
    the subprocess path of the CLI is held by the tests above."""
    from tinysift.cli.app import main

    def cli(*args: str) -> tuple[str, str]:
        capfd.readouterr()
        code = main(list(args))
        out, err = capfd.readouterr()
        assert code == 0, (args, out, err)
        return out, err

    folder = tmp_path / "set[v2]"
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.savez(folder / "d.npz", x=rng.integers(0, 255, (30, 4, 4), dtype=np.uint8),
             y=np.arange(30) % 3, class_names=np.array(["[/]", "[red]b", "c[/x]"]))
    data = f"npz:{folder}/d.npz"
    out, _ = cli("data", "info", data)
    assert data in out
    for name in ("[/]", "[red]b", "c[/x]"):
        assert name in out
    for args, made in ((["prune", "--method", "random", "--keep", "6"], "selection.npz"),
                       (["condense", "--method", "random", "--per-class", "1"],
                        "condensed.npz"),
                       (["train", "--epochs", "1"], "model.keras")):
        run = tmp_path / f"{args[0]}[/]"
        out, _ = cli(args[0], "--dataset", data, *args[1:], "--out", str(run))
        assert f"-> {run}/{made}" in out
    cli("quantize", "--run", str(run))
    # QAT trains on, so its "drop" is from the model before QAT (digits showed "-30 pt")
    out, err = cli("quantize", "--run", str(run), "--qat")
    assert "qat: float (as trained, before QAT) " in out
    assert "E0000" not in err  # TensorFlow's line about Keras' numpy adapter
    out, _ = cli("export", "--run", str(run), "--test-samples", "3")
    assert f"-> {run}/export" in out


def test_pipeline_progress_lines_are_not_rich_markup(monkeypatch, capsys, tmp_path):
    """`adapt`, `demo`, `run` and the device benches handed their progress lines, which name
    the user's folders and data, to rich as markup: a folder with `[/]` in its name ended a
    finished run in an unexpected MarkupError and `[v2]` vanished. The export line too."""
    import tinysift.pipeline.adapt
    from tinysift.cli.app import main

    folder = f"{tmp_path}/runs[v2]/[/]a"

    def fake_adapt(cfg, log):
        log(f"base model -> {folder}")
        return {"label": "vq [x]", "device": {"acc": {"all": 0.5}, "energy_mj": 1.0},
                "host_joint": {"all": 0.4}}

    monkeypatch.setattr(tinysift.pipeline.adapt, "run_adapt", fake_adapt)
    assert main(["adapt", "--out", folder]) == 0
    out = capsys.readouterr().out
    assert f"base model -> {folder}" in out and "device (vq [x]): old" in out, out


def test_device_results_of_a_steps_run_say_steps_and_windows(capsys):
    """With --steps the device reports per window of ceil(N / B) steps and `samples` is the
    window's steps x batch: the summary said '4 epochs on 160 samples' for 20 steps on 144."""
    from tinysift.cli.device_cmd import print_results
    from tinysift.device.results import DeviceResults, EpochResult

    windows = [EpochResult(epoch=i + 1, loss=1.0 - i / 10, train_acc=1.0, cycles=10,
                           seconds=1.0, energy_mj=0.5) for i in range(4)]
    res = DeviceResults(board="qemu-mps2-an386", clock_hz=25_000_000, params={"steps": 20},
                        energy_model={}, started="then", status="complete", epochs=windows,
                        samples=160)
    print_results(res)
    out = " ".join(capsys.readouterr().out.split())
    assert "20 steps (4 windows of 160 sample-passes): loss 1.0000 -> 0.7000; 0.5000 " \
           "mJ/window" in out and "epochs on" not in out
    res.params, res.samples = {"epochs": 4}, 144
    print_results(res)
    assert "4 epochs on 144 samples: loss 1.0000 -> 0.7000; 0.5000 mJ/epoch" in " ".join(
        capsys.readouterr().out.split())
    res.epochs = windows[:1]  # "1 epochs"
    print_results(res)
    assert "1 epoch on 144 samples: loss 1.0000 -> 1.0000" in " ".join(
        capsys.readouterr().out.split())


def test_command_help_paragraphs_are_one_line_each():
    """typer keeps the line breaks of a help's later paragraphs, which an 80-column terminal
    then broke again mid-line; every command's help is its docstring reflowed."""
    from tinysift.cli.app import app

    def commands(typer_app):
        yield from typer_app.registered_commands
        for group in typer_app.registered_groups:
            yield from commands(group.typer_instance)

    helps = [info.help for info in commands(app) if info.callback.__doc__]
    assert len(helps) > 20 and all(helps)
    assert all("\n" not in p for h in helps for p in h.split("\n\n"))
    assert any("\n\n" in h for h in helps)  # paragraphs stay apart


def test_usage_lines_name_the_tinysift_command():
    """Under `python -m tinysift` every "Usage:" line read `python -m tinysift.tinysift
    adapt`, a module that does not exist: the command is `tinysift`, however it started."""
    import os
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "host")}
    for args in (["adapt", "--help"], ["engine", "check", "--bogus"]):
        r = subprocess.run([sys.executable, "-m", "tinysift", *args], env=env,
                           capture_output=True, text=True, timeout=120)
        assert f"Usage: tinysift {' '.join(args[:-1])} [OPTIONS]" in r.stdout + r.stderr, r
        assert "python -m" not in r.stdout + r.stderr


def test_every_option_says_what_it_is():
    """`--seed` of adapt, engine check/export, prune, train, quantize... had no help text
    (demo's: "default 0"): its line in --help was a range and a default, nothing about what
    it seeds."""
    import typer.main

    from tinysift.cli.app import app

    def bare(command, path=()):
        for name, sub in getattr(command, "commands", {}).items():
            yield from bare(sub, (*path, name))
        # (demo's --seed said "default 0" alone: a default, not what the option is)
        yield from (f"{' '.join(path)} {p.opts[0]}" for p in command.params
                    if p.name != "help" and (not getattr(p, "help", None)
                                             or p.help.startswith("default ")))

    assert list(bare(typer.main.get_command(app))) == []


def test_export_of_a_folder_not_trained_names_the_train_to_run(tmp_path, capsys):
    """`export` of a prune folder said "model.tflite not found; run tinysift quantize", and
    that quantize then "has no train stage yet; run tinysift train": export names the train
    (on the folder's selection) and the quantize after it at once."""
    from tinysift.cli import main
    from tinysift.stages.prune import prune

    prune("digits", "random", 0.2, tmp_path / "p", seed=0)
    capsys.readouterr()
    assert main(["export", "--run", str(tmp_path / "p")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert (f"has no train stage yet; run `tinysift train --dataset digits --selection "
            f"{tmp_path}/p/selection.npz --out {tmp_path}/p` first, then `tinysift quantize "
            f"--run {tmp_path}/p`: export reads its model.tflite") in err, err
    # and `device run` of it was told to export, which then refused it
    assert main(["device", "run", "--run", str(tmp_path / "p")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert (f"has no train stage yet; run `tinysift train --dataset digits --selection "
            f"{tmp_path}/p/selection.npz --out {tmp_path}/p` first, then `tinysift quantize "
            f"--run {tmp_path}/p` and `tinysift export --run {tmp_path}/p`") in err, err


def test_an_npz_as_inputs_suggests_its_images(tmp_path, monkeypatch, digits_run):
    """`--inputs RUN/trainset.npz` (arrays indices, y, x) suggested
    `np.load('trainset.npz')['indices']`, the first array, as the inputs; the images are x.
    Uint8 pixels, saved as suggested, were refused next ("the model takes int8 inputs; got
    uint8"): with the model, the suggestion makes them its int8 inputs by its own input scale
    and zero point, which the engine takes. An archive whose array cannot be loaded (objects)
    gets the plain hint (its dtype was an unexpected ValueError, exit 1)."""
    import re

    from tinysift.cli.checks import load_array
    from tinysift.errors import TinysiftError
    from tinysift.export.tflite_reader import parse_tflite
    from tinysift.quantize.tflm import quantize_images
    from tinysift.stages.export import check_inputs

    tflite = digits_run / "model.tflite"
    parsed = parse_tflite(tflite.read_bytes())
    pixels = np.arange(3 * 64).reshape(3, 8, 8, 1).astype(np.uint8)
    np.savez(tmp_path / "trainset.npz", indices=np.arange(3), y=np.zeros(3, np.int64),
             x=pixels)
    np.savez(tmp_path / "other.npz", a=np.zeros(3), b=np.zeros(3))
    np.savez(tmp_path / "objects.npz", x=np.array(["a", None], dtype=object))
    for name, pick in (("other.npz", "a"), ("objects.npz", "x"), ("trainset.npz", "x")):
        with pytest.raises(TinysiftError) as said:
            load_array(tmp_path / name, "--inputs", None if name == "trainset.npz" else tflite)
        assert f"e.g. np.save('inputs.npy', np.load('{name}')['{pick}'])" in str(said.value)
    with pytest.raises(TinysiftError) as said:
        load_array(tmp_path / "trainset.npz", "--inputs", tflite)
    assert "the uint8 pixels as this model's int8 inputs" in str(said.value)
    monkeypatch.chdir(tmp_path)
    exec(re.search(r"e\.g\. (np\.save\(.*\)\)) \(", str(said.value))[1],
         {"np": np, "quantize_images": quantize_images})
    saved = load_array(tmp_path / "inputs.npy", "--inputs")
    assert np.array_equal(saved, quantize_images(pixels, parsed.input.scale,
                                                 parsed.input.zero_point))
    assert check_inputs(parsed, saved).dtype == np.int8  # taken, not refused
    # an archive of no arrays says so, and suggests no array to take from it
    np.savez(tmp_path / "nothing.npz")
    with pytest.raises(TinysiftError) as said:
        load_array(tmp_path / "nothing.npz", "--inputs")
    assert "is an .npz archive (no arrays), not one array; give a .npy" in str(said.value)
    assert "np.load" not in str(said.value)


def test_inputs_of_one_number_and_the_random_count(tmp_path):
    """`--inputs` holding one number (a 0-d array, np.save(path, 3.0)) is refused like an
    empty one, not a TypeError from len() ("unexpected", exit 1), a missing file as not
    found, complex values by their type; ``--count`` alone is the number of random inputs
    drawn, and without it the default."""
    from tinysift.cli.checks import load_array, random_count
    from tinysift.errors import TinysiftError

    np.save(tmp_path / "one.npy", np.float32(3.0))
    with pytest.raises(TinysiftError, match=r"one\.npy holds no inputs \(shape \(\)\)"):
        load_array(tmp_path / "one.npy", "--inputs")
    with pytest.raises(TinysiftError, match=r"typo\.npy: file not found; give a \.npy"):
        load_array(tmp_path / "typo.npy", "--inputs")
    # complex numbers are numbers, but no model's input
    np.save(tmp_path / "complex.npy", np.zeros((2, 8, 8, 1), np.complex64))
    with pytest.raises(TinysiftError, match=r"holds complex64 values of shape \(2, 8, 8, 1\)"):
        load_array(tmp_path / "complex.npy", "--inputs")
    # pickled objects: numpy's reason is said, not only that the file is unreadable
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(TinysiftError) as said:
        load_array(tmp_path / "objects.npy", "--inputs")
    assert ("objects.npy is not a readable .npy (ValueError: Object arrays cannot be loaded "
            "when allow_pickle=False); give a .npy") in str(said.value)
    assert random_count(5, None) == 5 and random_count(None, None) == 200
    assert random_count(None, tmp_path / "one.npy", default=7) == 7


def test_python_dash_m_runs_the_cli(tmp_path):
    """`python -m tinysift` failed ("No module named tinysift.__main__"): the command works
    only where the venv's scripts are on PATH. Now it is the same CLI, exit statuses too."""
    import json
    import os
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "host")}
    ok = subprocess.run([sys.executable, "-m", "tinysift", "data", "list"], env=env,
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "digits" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "tinysift", "data", "info", "digitz"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "digits" in bad.stderr
    # a run folder records the command as `tinysift ...` (the rerun hints read it), not the
    # path of __main__.py, which they skipped
    out = tmp_path / "p"
    made = subprocess.run([sys.executable, "-m", "tinysift", "prune", "--dataset", "digits",
                           "--method", "random", "--keep", "0.1", "--out", str(out)],
                          env={**env, "TINYSIFT_CONFIG_DIR": str(tmp_path / "cfg")},
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    argv = json.loads((out / "manifest.json").read_text())["commands"][-1]["argv"]
    assert argv[:2] == ["tinysift", "prune"]


def test_bench_options_reach_the_bench_configuration(monkeypatch, capsys, tmp_path):
    """Each `bench prune/guided/condense/device` option lands in the configuration the bench
    runs with, and a default is the one its --help names (a flag dropped on the way was run
    as its default without a word). Values expected from the help texts."""
    import importlib

    from tinysift.cli import main

    seen = _stop_at(monkeypatch, "tinysift.bench.prune:bench_prune",
                    "tinysift.bench.guided:bench_guided",
                    "tinysift.bench.condense:bench_condense",
                    "tinysift.bench.device:bench_device")
    out = tmp_path / "r"

    def config(*args: str):
        assert main(["bench", *args, "--out-dir", str(out)]) == 130, (args, capsys.readouterr())
        return seen[-1]

    c = config("prune", "--quick", "--label-noise", "0.2", "--protocol", "equal-steps")
    assert (c.dataset, c.keeps, c.seeds, c.label_noise, c.protocol) == (
        "digits", (0.1,), 1, 0.2, "equal-steps")
    assert c.methods == ("random", "ccs", "d2", "moderate", "herding", "vq", "flow")
    c = config("prune")
    assert (c.dataset, c.keeps, c.seeds, c.protocol) == (
        "fashion-mnist", (0.5, 0.3, 0.1, 0.03, 0.01), 3, "proportional")
    assert len(c.methods) == 13 and c.progress_dir == out / "progress"
    c = config("prune", "--protocol", "equal-steps", "--label-noise", "0.1")
    assert (c.keeps, c.seeds, c.label_noise, c.protocol) == (
        (0.1, 0.03, 0.01), 5, 0.1, "equal-steps")
    assert c.methods == ("random", "ccs", "d2", "moderate", "herding", "vq", "flow")
    c = config("prune", "--keep", "1,0.25", "--methods", "random,vq", "--dataset", "mnist")
    assert (c.keeps, c.methods, c.dataset) == ((1.0, 0.25), ("random", "vq"), "mnist")

    c = config("guided", "--quick", "--methods", "vq", "--label-noise", "0.3",
               "--method-params", '{"vq": {"alpha": 2}}')
    assert (c.dataset, c.budgets, c.methods, c.seeds, c.epochs, c.label_noise) == (
        "digits", (0.5,), ("vq",), 1, 20, 0.3)
    assert c.method_params == {"vq": {"alpha": 2}}
    c = config("guided", "--methods", "vq,flow", "--rerun", "full,vq", "--keep-steps",
               "--batch", "64", "--label-noise", "0.1", "--method-params",
               '{"flow": {"judge": "knn"}}')
    assert (c.methods, c.rerun, c.keep_steps, c.batch, c.label_noise) == (
        ("vq", "flow"), ("full", "vq"), True, 64, 0.1)
    assert c.method_params == {"flow": {"judge": "knn"}}
    assert config("guided").method_params == {}

    c = config("condense", "--quick", "--methods", "random")
    assert (c.dataset, c.per_class, c.methods, c.seeds) == ("digits", (1, 5), ("random",), 1)
    c = config("condense", "--per-class", "2,4", "--seeds", "2", "--methods", "dm")
    assert (c.dataset, c.per_class, c.methods, c.seeds) == ("fashion-mnist", (2, 4), ("dm",), 2)

    c = config("device", "--quick")
    assert (c.dataset, c.scenario, c.seeds, c.sizes, c.updates) == (
        "digits", "new-classes", 1, (5,), ("head",))
    c = config("device", "--scenario", "shift", "--test-per-class", "7", "--board",
               "qemu-mps2-an500", "--updates", "head,bias", "--sizes", "3")
    assert (c.scenario, c.dataset, c.old_classes, c.new_per_class, c.test_per_class) == (
        "shift", "mnist", tuple(range(10)), 30, 7)
    assert (c.board, c.updates, c.sizes) == ("qemu-mps2-an500", ("head", "bias"), (3,))
    c = config("device")
    assert (c.scenario, c.dataset, c.old_classes, c.test_per_class, c.progress_dir) == (
        "new-classes", "fashion-mnist", tuple(range(8)), 100, out / "progress")

    scoring = []
    monkeypatch.setattr(importlib.import_module("tinysift.bench.scoring"), "bench_scoring",
                        lambda *a, **k: scoring.append((a, k)) or {"methods": {}})
    assert main(["bench", "scoring", "--dataset", "digits", "--methods", "flow",
                 "--out-dir", str(out)]) == 0
    assert scoring == [(("digits", ("flow",)), {"out_dir": out})]


def test_bench_values_out_of_range_are_refused_before_the_bench(monkeypatch, capsys):
    """A fraction outside (0, 1], a protocol, an executor or --method-params the bench does
    not take: one line, exit 2, and the bench never starts."""
    from tinysift.cli import main

    seen = _stop_at(monkeypatch, "tinysift.bench.prune:bench_prune",
                    "tinysift.bench.guided:bench_guided",
                    "tinysift.bench.device:bench_device")
    for args, said in (
            (["prune", "--keep", "0.5,0"], "--keep values must be fractions in (0, 1], got [0.0]"),
            (["prune", "--keep", "1.5"], "--keep values must be fractions in (0, 1], got [1.5]"),
            (["guided", "--budgets", "0,0.5"], "--budgets values must be fractions in (0, 1]"),
            (["prune", "--protocol", "equal"], "unknown --protocol 'equal' (did you mean "
             "equal-steps?); choose one of proportional, equal-steps"),
            (["guided", "--methods", "vq", "--method-params", '{"flow": {}}'],
             "--method-params names 'flow', which this bench does not run (its methods: vq)"),
            (["guided", "--method-params", '{"vq": 3}'],
             "--method-params: 'vq' takes a JSON object of its parameters"),
            (["device", "--executor", "local:2"], "bench device runs only serially"),
            (["device", "--quick", "--test-per-class", "5"], "would ignore --test-per-class")):
        assert main(["bench", *args, "--out-dir", "/nonexistent/never"]) == 2, args
        (line,) = _error_lines(capsys.readouterr().err)
        assert said in line, (args, line)
    assert not seen


def test_device_run_passes_every_option_to_the_session(monkeypatch, tmp_path):
    """`device run` hands the session what it was given: the board and port, the device's
    learning rate, batch and seed, --db, --on-reset, --timeout; --epochs 0 is the
    evaluation alone (its help), not the default 5 (a flag dropped on the way ran the
    default without a word)."""
    from pathlib import Path

    from tinysift.cli import main

    run = _run_folder(tmp_path / "run")
    calls = []

    def capture(*args, **kwargs):
        calls.append((args, kwargs))
        raise KeyboardInterrupt

    monkeypatch.setattr("tinysift.stages.device.run_on_device", capture)
    assert main(["device", "run", "--run", str(run), "--board", "nucleo_f411re", "--port",
                 "/dev/ttyACM7", "--epochs", "0", "--lr", "0.01", "--batch", "8", "--seed",
                 "7", "--db", "--on-reset", "stop", "--timeout", "5"]) == 130
    (args, kwargs), = calls
    assert args == (Path(run), "nucleo_f411re")
    assert (kwargs["port"], kwargs["use_db"], kwargs["on_reset"], kwargs["timeout"]) == (
        "/dev/ttyACM7", True, "stop", 5.0)
    p = kwargs["params"]
    assert (p.epochs, p.lr, p.batch, p.seed, p.steps) == (0, 0.01, 8, 7, None)


def test_device_flash_dry_run_uses_the_probe_it_is_given(capsys):
    """`device flash --probe pyocd --dry-run` prints pyOCD's command, not openocd's (the
    default): the option reaches the flash steps."""
    from tinysift.cli import main

    assert main(["device", "flash", "--board", "nucleo_f411re", "--dry-run"]) == 0
    assert "openocd " in capsys.readouterr().out
    assert main(["device", "flash", "--board", "nucleo_f411re", "--probe", "pyocd",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "pyocd " in out and "openocd" not in out, out


def test_device_flash_dry_run_checks_the_run_and_names_the_upload_port(tmp_path, capsys):
    """`device flash --dry-run --run RUN` refuses a run without its export (what the build
    would need), and a board PlatformIO uploads (nano33ble) gets the --port it was given."""
    from tinysift.cli import main

    run = _run_folder(tmp_path / "run")
    assert main(["device", "flash", "--board", "nucleo_f411re", "--run", str(run),
                 "--dry-run"]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    # (a run of no stage at all: the train first, then quantize and export)
    assert (f"{run} has no train stage yet; run `tinysift train --dataset D --out {run}` "
            f"first, then `tinysift quantize --run {run}` and `tinysift export --run {run}`"
            in line), line
    assert main(["device", "flash", "--board", "nano33ble", "--port", "/dev/ttyACM3",
                 "--dry-run"]) == 0
    assert "-e nano33ble -t upload --upload-port /dev/ttyACM3" in capsys.readouterr().out


def test_device_list_names_only_the_emulated_boards_as_emulated(capsys):
    """`device list --json` lists under "emulated" the QEMU boards (each with its machine),
    not every profile."""
    import json

    from tinysift.boards import list_boards
    from tinysift.cli import main

    assert main(["device", "list", "--json"]) == 0
    emulated = json.loads(capsys.readouterr().out)["emulated"]
    qemu = sorted(b.name for b in list_boards() if b.name.startswith("qemu-"))
    assert sorted(e["name"] for e in emulated) == qemu and len(qemu) >= 3
    assert all(e["qemu_machine"] for e in emulated)


def test_engine_commands_pass_their_options_on(monkeypatch, tmp_path):
    """`engine check/export/run` hand the engine what they were given: --count, --seed,
    --board, --out-dir, --inputs' array and --dsp (a flag dropped on the way ran the engine
    with its defaults). The engine itself is stopped (it compiles with gcc: seconds a call);
    tests/test_engine_check.py runs it for real."""
    import importlib

    from tinysift.cli import main

    tflite = tmp_path / "m.tflite"
    tflite.write_bytes(b"not read: the engine is stopped")
    x = np.arange(2 * 4, dtype=np.int8).reshape(2, 4)
    np.save(tmp_path / "x.npy", x)
    calls = []
    for target in ("tinysift.stages.engine:check_tflite", "tinysift.stages.export:export_tflite",
                   "tinysift.stages.engine:run_tflite"):
        module, name = target.split(":")

        def capture(*args, _name=name, **kwargs):
            calls.append((_name, args, kwargs))
            raise KeyboardInterrupt

        monkeypatch.setattr(importlib.import_module(module), name, capture)

    def engine(*args: str) -> tuple[str, tuple, dict]:
        assert main(["engine", *args, "--tflite", str(tflite)]) == 130, args
        return calls[-1]

    name, args, k = engine("check", "--count", "7", "--seed", "3", "--board",
                           "nucleo_f411re", "--out-dir", str(tmp_path / "o"))
    assert (name, args) == ("check_tflite", (tflite,))
    assert (k["count"], k["seed"], k["board"], k["out_dir"], k["inputs"]) == (
        7, 3, "nucleo_f411re", tmp_path / "o", None)
    _, _, k = engine("check", "--inputs", str(tmp_path / "x.npy"))
    assert np.array_equal(k["inputs"], x) and (k["seed"], k["board"], k["out_dir"]) == (
        0, None, None)
    name, args, k = engine("export", "--out-dir", str(tmp_path / "e"), "--count", "5",
                           "--seed", "4", "--board", "nano33ble")
    assert (name, args) == ("export_tflite", (tflite, tmp_path / "e"))
    assert (k["count"], k["seed"], k["board"], k["inputs"]) == (5, 4, "nano33ble", None)
    _, _, k = engine("export", "--out-dir", str(tmp_path / "e"), "--inputs",
                     str(tmp_path / "x.npy"))
    assert np.array_equal(k["inputs"], x) and k["count"] == 200  # the help's default
    for extra, dsp in (([], False), (["--dsp"], True)):
        name, args, k = engine("run", "--inputs", str(tmp_path / "x.npy"), "--out",
                               str(tmp_path / "y.npy"), *extra)
        assert (name, args[0], k["dsp"]) == ("run_tflite", tflite, dsp)
        assert np.array_equal(args[1], x)


def test_engine_check_that_is_not_ok_exits_1(monkeypatch, tmp_path, capsys):
    """`engine check` exits 1 when the engine's outputs are not all TFLM's (its help: 0 when
    all are, 1 when not), --json saying ok false; a check of no kernel is not ok. The check's
    result is given (the real one compiles with gcc)."""
    import json

    from tinysift.cli import main
    from tinysift.stages.engine import EngineCheck

    tflite = tmp_path / "m.tflite"
    result = EngineCheck(tflite=tflite, inputs=0, layers=[], arena_bytes=0,
                         tflm_arena_head=None)
    monkeypatch.setattr("tinysift.stages.engine.check_tflite", lambda *a, **k: result)
    assert main(["engine", "check", "--tflite", str(tflite), "--json"]) == 1
    said = json.loads(capsys.readouterr().out)
    assert said["ok"] is False and said["fits"] is None


def test_quantize_and_export_pass_their_options_to_the_stage(monkeypatch, tmp_path):
    """`quantize` and `export` hand their stage what they were given (--qat, the
    representative count, the seed; the board, --fit, --test-samples, --db-capacity,
    --head-only as backbone_training false), and the helps' defaults otherwise."""
    import importlib

    from tinysift.cli import main

    run = _run_folder(tmp_path / "run")
    calls = []
    for target in ("tinysift.stages.quantize:quantize", "tinysift.stages.export:export"):
        module, name = target.split(":")

        def capture(*args, **kwargs):
            calls.append((args, kwargs))
            raise KeyboardInterrupt

        monkeypatch.setattr(importlib.import_module(module), name, capture)
    for args, expected in (
            (["quantize"], dict(qat=False, representative=500, seed=0)),
            (["quantize", "--qat", "--representative", "64", "--seed", "9"],
             dict(qat=True, representative=64, seed=9)),
            (["export"], dict(board="qemu-mps2-an386", fit=False, test_samples=200,
                              db_capacity=None, seed=0, backbone_training=True)),
            (["export", "--board", "nucleo_f411re", "--fit", "--test-samples", "50",
              "--db-capacity", "300", "--seed", "5", "--head-only"],
             dict(board="nucleo_f411re", fit=True, test_samples=50, db_capacity=300, seed=5,
                  backbone_training=False))):
        assert main([*args, "--run", str(run)]) == 130, args
        assert calls[-1] == ((run,), expected), args


def test_the_memory_plan_prints_both_memories_and_an_unknown_boards_uncounted_lines(capsys):
    """`print_plan` shows the flash and the RAM rows, each with its total over its capacity;
    a plan of a board no profile names still lists its not-counted lines."""
    from tinysift.cli.quantize_cmd import plan_caveats, print_plan

    assert plan_caveats({"board": "no-such-board", "not_counted": {"x": 5}}) == [
        "not counted: x (5 B)"]
    print_plan({"board": "qemu-mps2-an386", "flash": {"weights": 1000}, "ram": {"arena": 2048},
                "flash_total": 1000, "flash_capacity": 4096, "ram_total": 2048,
                "ram_capacity": 8192})
    out = capsys.readouterr().out
    assert "weights" in out and "arena" in out and "2,048 / 8,192" in out, out
    assert "1,000 / 4,096" in out, out


def test_demo_and_run_overrides_reach_the_pipeline(monkeypatch, tmp_path):
    """`demo` and `run PIPELINE` hand the pipeline the file's settings with each flag given
    on top (--out, --dataset, --board, --epochs, --seed, --budgets, --methods), and
    `demo --quick` its digits configuration; an empty --methods is refused."""
    from pathlib import Path

    from tinysift.cli import main

    pipelines = Path(__file__).resolve().parents[1] / "pipelines"
    seen = _stop_at(monkeypatch, "tinysift.bench.adapt_demo:run_adapt_demo",
                    "tinysift.pipeline.run:run_pipeline")
    assert main(["demo"]) == 130 and main(["demo", "--quick"]) == 130
    assert (seen[0].dataset, seen[0].out, seen[0].seed) == ("fashion-mnist", "runs/demo", 0)
    assert (seen[1].dataset, seen[1].out) == ("digits", "runs/demo-quick")
    assert main(["demo", "--quick", "--out", str(tmp_path / "d"), "--board",
                 "qemu-mps2-an500", "--seed", "3"]) == 130
    assert (seen[2].out, seen[2].board, seen[2].seed) == (
        str(tmp_path / "d"), "qemu-mps2-an500", 3)
    assert main(["run", str(pipelines / "demo.toml"), "--dataset", "digits", "--methods",
                 "random,vq", "--seed", "2"]) == 130
    assert (seen[3].dataset, seen[3].methods, seen[3].seed) == ("digits", ["random", "vq"], 2)
    assert main(["run", str(pipelines / "select.toml"), "--out", str(tmp_path / "s"), "--dataset",
                 "digits", "--board", "qemu-mps2-an500", "--epochs", "4", "--seed", "6",
                 "--budgets", "20,40", "--methods", "random,herding"]) == 130
    c = seen[4]
    assert (c.out, c.dataset, c.board, c.epochs, c.seed, c.budgets, c.methods) == (
        str(tmp_path / "s"), "digits", "qemu-mps2-an500", 4, 6, [20, 40], ["random", "herding"])
    # an empty --methods (an unset shell variable) is refused, not read as the file's
    assert main(["run", str(pipelines / "demo.toml"), "--methods", ""]) == 2
    assert len(seen) == 5


def test_train_hands_the_stage_every_option_and_the_helps_defaults(monkeypatch, tmp_path):
    """`train` passes each flag to the stage under its own name (--selection and --condensed
    not swapped), --guided-params as a dict, --epochs 0 as the step rule (None), and
    without flags the defaults --help states: runs/train-<dataset>, width 16, ds-cnn,
    batch 128, no label noise, no keep-steps, seed 0, 10 epochs on the full set."""
    from pathlib import Path

    from tinysift.cli import main

    calls = _stop_at(monkeypatch, "tinysift.stages.train:train", whole_call=True)
    assert main(["train", "--dataset", "digits"]) == 130
    assert calls[-1] == (("digits", Path("runs/train-digits")), dict(
        keep=None, selection=None, condensed=None, epochs=10, seed=0, width=16,
        variant="ds-cnn", guided=None, budget=None, label_noise=0.0, guided_params=None,
        keep_steps=False, batch=128))
    # a path's separators never reach the default folder's name
    assert main(["train", "--dataset", "npz:a/b.npz"]) == 130
    assert calls[-1][0] == ("npz:a/b.npz", Path("runs/train-npz_a_b.npz"))
    assert main(["train", "--dataset", "digits", "--out", str(tmp_path / "r"), "--keep", "50",
                 "--selection", str(tmp_path / "s.npz"), "--condensed",
                 str(tmp_path / "c.npz"), "--epochs", "0", "--seed", "7", "--width", "8",
                 "--variant", "resnet8", "--guided", "flow", "--budget", "0.4",
                 "--guided-params", '{"judge": "knn"}', "--keep-steps", "--batch", "32",
                 "--label-noise", "0.2"]) == 130
    assert calls[-1] == (("digits", tmp_path / "r"), dict(
        keep="50", selection=tmp_path / "s.npz", condensed=tmp_path / "c.npz", epochs=None,
        seed=7, width=8, variant="resnet8", guided="flow", budget=0.4, label_noise=0.2,
        guided_params={"judge": "knn"}, keep_steps=True, batch=32))
    # a condensed set alone is a subset too: the step rule, not 10 epochs of 100 samples
    assert main(["train", "--dataset", "digits", "--condensed", str(tmp_path / "c.npz")]) == 130
    assert main(["train", "--dataset", "digits", "--selection", str(tmp_path / "s.npz")]) == 130
    assert [k["epochs"] for _, k in calls[-2:]] == [None, None]
    # the top of --seed's range, 2**31 - 1, is a seed like any other (2**31 is refused)
    assert main(["train", "--dataset", "digits", "--seed", str(2**31 - 1)]) == 130
    assert calls[-1][1]["seed"] == 2**31 - 1


def test_train_prints_its_outcome_and_warnings_as_text(monkeypatch, tmp_path, capsys):
    """`train`'s two result lines name the samples, seconds, steps, the cached tag, the
    accuracy, size and model path (a folder with brackets in its name printed as is), and
    every warning of the stage goes to stderr, one `warning:` line each. (The stage is
    replaced by one returning a known outcome: the lines' content, not training, is held.)"""
    import importlib

    from tinysift.cli import main
    from tinysift.stages.train import TrainOutcome

    run = tmp_path / "r[v2]"

    def fake(*a, **k):
        return TrainOutcome(run, 0.91236, 143, 2.34, 500, 1234, 5678, skipped=True,
                            warnings=["first [bold]one[/]", "second"])

    monkeypatch.setattr(importlib.import_module("tinysift.stages.train"), "train", fake)
    assert main(["train", "--dataset", "digits", "--out", str(run)]) == 0
    captured = capsys.readouterr()
    out = " ".join(captured.out.split())
    assert "trained on 143 samples in 2.3 s (500 steps) (cached: inputs unchanged)" in out, out
    assert (f"test accuracy 0.9124 params 1234 MACs/sample 5678 -> {run}/model.keras"
            in out), out
    assert "warning" not in captured.out
    assert [line for line in captured.err.splitlines() if line.startswith("warning:")] == [
        "warning: first [bold]one[/]", "warning: second"], captured.err


def test_prune_and_condense_hand_the_stage_every_option(monkeypatch, tmp_path):
    """`prune` and `condense` pass dataset, method, budget, folder, seed (and prune's label
    noise and --no-balance) to the stage; their defaults are --help's: vq, seed 0, balanced,
    no noise, runs/prune-<dataset>-<method>-<keep> and runs/condense-<dataset>-<method>-<K>."""
    from pathlib import Path

    from tinysift.cli import main

    pruned = _stop_at(monkeypatch, "tinysift.stages.prune:prune", whole_call=True)
    assert main(["prune", "--dataset", "digits", "--keep", "0.1"]) == 130
    assert pruned[-1] == (("digits", "vq", "0.1", Path("runs/prune-digits-vq-0.1")),
                          dict(seed=0, label_noise=0.0, balance=True))
    assert main(["prune", "--dataset", "npz:x/d.npz", "--method", "el2n", "--keep", "20",
                 "--out", str(tmp_path / "p"), "--seed", "4", "--label-noise", "0.3",
                 "--no-balance"]) == 130
    assert pruned[-1] == (("npz:x/d.npz", "el2n", "20", tmp_path / "p"),
                          dict(seed=4, label_noise=0.3, balance=False))
    assert main(["prune", "--dataset", "npz:x/d.npz", "--method", "random", "--keep", "5"]) == 130
    assert pruned[-1][0][3] == Path("runs/prune-npz_x_d.npz-random-5")
    condensed = _stop_at(monkeypatch, "tinysift.stages.condense:condense", whole_call=True)
    assert main(["condense", "--dataset", "digits", "--per-class", "3"]) == 130
    assert condensed[-1] == (("digits", "vq", 3, Path("runs/condense-digits-vq-3")),
                             dict(seed=0))
    assert main(["condense", "--dataset", "folder:x/y", "--method", "herding", "--per-class",
                 "2", "--out", str(tmp_path / "c"), "--seed", "5"]) == 130
    assert condensed[-1] == (("folder:x/y", "herding", 2, tmp_path / "c"), dict(seed=5))
    assert main(["condense", "--dataset", "folder:x/y", "--method", "dm", "--per-class",
                 "2"]) == 130
    assert condensed[-1][0][3] == Path("runs/condense-folder_x_y-dm-2")


def test_adapt_hands_the_pipeline_every_option_and_the_helps_defaults(monkeypatch, tmp_path,
                                                                     capsys):
    """`adapt` builds its configuration from every flag (none dropped or swapped: two
    per-class counts, two strings of methods), and without flags from --help's defaults:
    new-classes on fashion-mnist, old classes 0-7, 100 new and 20 vq replay samples per
    class, head, qemu-mps2-an386, 300 steps, lr 0.05, cosine, seed 0, runs/adapt.
    --old-classes outside new-classes is refused before the pipeline."""
    from dataclasses import asdict

    from tinysift.cli import main

    seen = _stop_at(monkeypatch, "tinysift.pipeline.adapt:run_adapt")
    mine = {"momentum": 0.9, "batch": 32, "balance": True, "base_epochs": 10,
            "test_per_class": 30, "replay_params": {}}  # not options: AdaptConfig's own
    assert main(["adapt"]) == 130
    assert asdict(seen[-1]) == dict(
        scenario="new-classes", dataset="fashion-mnist", old_classes=tuple(range(8)), new=None,
        new_per_class=100, replay="vq", replay_per_class=20, update="head",
        board="qemu-mps2-an386", steps=300, lr=0.05, schedule="cosine", seed=0,
        out="runs/adapt", **mine)
    assert main(["adapt", "--dataset", "digits", "--old-classes", "0,2,4-6",
                 "--new-per-class", "7", "--replay", "herding", "--replay-per-class", "3",
                 "--update", "last-block", "--board", "qemu-mps2-an500", "--steps", "40",
                 "--lr", "0.2", "--schedule", "step", "--seed", "9", "--out",
                 str(tmp_path / "a")]) == 130
    assert asdict(seen[-1]) == dict(
        scenario="new-classes", dataset="digits", old_classes=(0, 2, 4, 5, 6), new=None,
        new_per_class=7, replay="herding", replay_per_class=3, update="last-block",
        board="qemu-mps2-an500", steps=40, lr=0.2, schedule="step", seed=9,
        out=str(tmp_path / "a"), **mine)
    assert main(["adapt", "--scenario", "shift", "--dataset", "mnist"]) == 130
    assert (seen[-1].scenario, seen[-1].dataset) == ("shift", "mnist")
    for scenario in ("shift", "user"):
        assert main(["adapt", "--scenario", scenario, "--old-classes", "0-7"]) == 2
        (line,) = _error_lines(capsys.readouterr().err)
        assert "--old-classes applies to the new-classes scenario only" in line, line
        assert "drop --old-classes" in line, line
    assert len(seen) == 3


def test_old_classes_ranges_lists_and_the_largest_class():
    """--old-classes: single numbers, low-high ranges (both ends in), lists of both, a range
    of one; class 9999 (MAX_CLASS) is taken before the dataset is read, 10000 refused, and
    a range whose high end is below its low end refused."""
    from tinysift.cli.adapt_cmd import MAX_CLASS, _classes
    from tinysift.errors import BudgetError

    assert _classes("0-7") == (0, 1, 2, 3, 4, 5, 6, 7)
    assert _classes("3") == (3,) and _classes("5-5") == (5,)
    assert _classes("9,1-2,4") == (1, 2, 4, 9)
    assert MAX_CLASS == 9999 and _classes("9999") == (9999,)
    with pytest.raises(BudgetError, match="class 10000 is beyond any dataset's classes"):
        _classes("9998-10000")
    with pytest.raises(BudgetError, match="takes numbers and ranges like 0-7"):
        _classes("3-2")  # high below low by one names no class either


def test_adapt_prints_old_new_and_all_of_device_and_host(monkeypatch, capsys):
    """`adapt`'s result line: the device's old/new/all accuracy (3 decimals, '-' for a split
    the scenario has not, 0.000 for one it has and got all wrong), the host joint model's,
    and the estimated energy. (The pipeline is
    replaced by one returning a known result: a real adaptation takes minutes.)"""
    import importlib

    from tinysift.cli import main

    def fake(cfg, log):
        log("base model ready")
        return {"label": "head, vq 20/class", "device": {
            "acc": {"old": 0.81234, "new": None, "all": 0.7}, "energy_mj": 12.34},
            "host_joint": {"old": 0.9, "new": 0.0, "all": 0.88}}

    monkeypatch.setattr(importlib.import_module("tinysift.pipeline.adapt"), "run_adapt", fake)
    assert main(["adapt", "--dataset", "digits"]) == 0
    out = capsys.readouterr().out
    assert "base model ready" in out
    assert ("device (head, vq 20/class): old 0.812  new -  all 0.700;  host joint model: "
            "old 0.900  new 0.000  all 0.880;  12.3 mJ (estimated)") in out, out


def test_bench_upkeep_hands_the_bench_every_option(monkeypatch, tmp_path):
    """`bench upkeep` without --quick builds its configuration from every flag (none dropped
    or swapped; --updates split on commas), its progress beside the results; the scenario's
    base dataset and old classes default as --help says (shift: mnist, every class; new-
    classes: fashion-mnist, 0-7); --quick runs --help's digits, new-classes, 1 seed,
    buffer 5, head, into --out-dir."""
    from tinysift.cli import main
    from tinysift.pipeline.upkeep import EVERY

    seen = _stop_at(monkeypatch, "tinysift.bench.upkeep:bench_upkeep")
    out = tmp_path / "o"
    assert main(["bench", "upkeep", "--scenario", "new-classes", "--dataset", "digits",
                 "--seeds", "2", "--buffers", "3,7", "--updates", "head,bias",
                 "--vq-per-class", "6", "--replay", "herding", "--replay-per-class", "4",
                 "--new-per-class", "9", "--steps", "50", "--base-epochs", "5", "--board",
                 "qemu-mps2-an500", "--out-dir", str(out)]) == 130
    cfg, up = seen[-1], seen[-1].upkeep
    # a given 0 (no exported replay set) is given, not the default 10
    assert main(["bench", "upkeep", "--replay-per-class", "0"]) == 130
    assert seen[-1].upkeep.replay_per_class == 0
    assert (cfg.seeds, cfg.out_dir, cfg.progress_dir, cfg.quick) == (
        2, out, out / "progress", False)
    assert (up.scenario, up.dataset, up.old_classes, up.new_per_class, up.replay,
            up.replay_per_class, up.buffers, up.updates, up.vq_per_class, up.steps,
            up.base_epochs, up.board) == (
        "new-classes", "digits", tuple(range(8)), 9, "herding", 4, (3, 7), ("head", "bias"),
        6, 50, 5, "qemu-mps2-an500")
    assert main(["bench", "upkeep", "--scenario", "new-classes"]) == 130
    up = seen[-1].upkeep
    assert (up.dataset, up.old_classes, up.new_per_class, up.vq_per_class, up.updates) == (
        "fashion-mnist", tuple(range(8)), EVERY, 4, ("head",))
    assert main(["bench", "upkeep"]) == 130
    assert (seen[-1].upkeep.scenario, seen[-1].upkeep.dataset,
            seen[-1].upkeep.old_classes) == ("shift", "mnist", tuple(range(10)))
    assert main(["bench", "upkeep", "--quick", "--out-dir", str(out)]) == 130
    cfg, up = seen[-1], seen[-1].upkeep
    assert (cfg.quick, cfg.seeds, cfg.out_dir, up.dataset, up.scenario, up.old_classes,
            up.buffers, up.updates) == (True, 1, out, "digits", "new-classes",
                                        tuple(range(8)), (5,), ("head",))


def _npz_with_splits(path) -> str:
    """A user dataset of 3 classes with its own test split: train counts 3, 2, 1 and test
    counts 1, 2, 0 (class 2 has no test sample)."""
    np.savez(path, x=np.zeros((6, 4, 4), np.uint8), y=np.array([0, 0, 0, 1, 1, 2]),
             x_test=np.zeros((3, 4, 4), np.uint8), y_test=np.array([0, 1, 1]))
    return f"npz:{path}"


def test_data_info_counts_each_split_per_class(tmp_path, capsys):
    """`data info` (text and --json): the train and test sizes, the image shape, the number
    of classes and each class's train and test counts, not swapped; --json's record has
    every field."""
    import json

    from tinysift.cli import main

    name = _npz_with_splits(tmp_path / "d.npz")
    assert main(["data", "info", name, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info) == {"name", "source", "train", "test", "shape", "num_classes",
                         "content_hash", "classes", "warnings"}
    assert (info["train"], info["test"], info["shape"], info["num_classes"]) == (
        6, 3, [4, 4, 1], 3)
    assert [(c["index"], c["train"], c["test"]) for c in info["classes"]] == [
        (0, 3, 1), (1, 2, 2), (2, 1, 0)]
    assert len(info["content_hash"]) > 8 and len(info["warnings"]) == 1
    assert main(["data", "info", name]) == 0
    out = capsys.readouterr().out
    assert "train 6  test 3  image 4x4x1 uint8  classes 3  hash " + info["content_hash"] in out
    rows = [[cell.strip() for cell in line.strip("│┃ ").split("│")]
            for line in out.splitlines() if line.count("│") >= 3]
    assert [row[0::2] + row[3:4] for row in rows] == [["0", "3", "1"], ["1", "2", "2"],
                                                      ["2", "1", "0"]], out


def test_data_list_json_has_every_field(capsys):
    """`data list --json`: each dataset's name, description, shape, split sizes,
    availability and how to get it; the digits are here, 1437 train and 360 test."""
    import json

    from tinysift.cli import main

    assert main(["data", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert all(set(d) == {"name", "description", "shape", "train", "test", "available",
                          "install_hint"} for d in listed)
    digits = next(d for d in listed if d["name"] == "digits")
    assert (digits["shape"], digits["train"], digits["test"], digits["available"]) == (
        [8, 8, 1], 1437, 360, True)
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "npz:PATH" in out and "folder:PATH" in out and "360" in out


def test_the_one_error_path_maps_each_end_to_its_exit_status(monkeypatch, capsys, tmp_path):
    """main(): a signal's Terminated is 128 + N with a line naming the signal; a stage's own
    typer.Exit or SystemExit keeps its code; click's Abort is 130; a FileNotFoundError in an
    existing folder is a bug (exit 1, not the deleted-folder line); TINYSIFT_TRACEBACK=1
    lets the error through with its traceback."""
    import click

    from tinysift.errors import Terminated

    args = ["prune", "--dataset", "digits", "--keep", "0.1", "--out", str(tmp_path)]
    stage = "tinysift.stages.prune:prune"
    code, err = _main(monkeypatch, capsys, stage, Terminated(15), args)
    assert code == 143 and "stopped by signal 15: finished stages are saved" in err, err
    code, err = _main(monkeypatch, capsys, stage, typer_exit(3), args)
    assert code == 3, err
    code, err = _main(monkeypatch, capsys, stage, SystemExit(4), args)
    assert code == 4, err
    code, err = _main(monkeypatch, capsys, stage, click.exceptions.Abort(), args)
    assert code == 130 and "aborted" in err, err
    code, err = _main(monkeypatch, capsys, stage, FileNotFoundError("x.npz"), args)
    assert code == 1 and "unexpected FileNotFoundError: x.npz" in err, err
    assert "current folder" not in err
    monkeypatch.setenv("TINYSIFT_TRACEBACK", "1")
    with pytest.raises(ZeroDivisionError):
        _main(monkeypatch, capsys, stage, ZeroDivisionError("y"), args)


def typer_exit(code: int) -> BaseException:
    """A ``typer.Exit`` with ``code`` (what a command raises to end with that status)."""
    import typer

    return typer.Exit(code)


def test_sigterm_unwinds_as_an_exit_status_and_the_handlers_are_restored(monkeypatch, capsys,
                                                                         tmp_path):
    """A real SIGTERM (or SIGHUP) to the process during a command ends it with 128 + N and the
    interrupted line (every `finally` ran), and main() leaves the signal handlers as it
    found them; a flag given without its value is click's usage error (exit 2)."""
    import importlib
    import os
    import signal

    from tinysift.cli import main

    def terminated(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the command")

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    monkeypatch.setattr(importlib.import_module("tinysift.stages.prune"), "prune", terminated)
    assert main(["prune", "--dataset", "digits", "--keep", "0.1", "--out",
                 str(tmp_path)]) == 128 + signal.SIGTERM
    assert "stopped by signal 15" in capsys.readouterr().err
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)) == before

    def hung_up(*a, **k):  # the terminal closed: SIGHUP unwinds the same way
        os.kill(os.getpid(), signal.SIGHUP)
        raise AssertionError("SIGHUP did not stop the command")

    monkeypatch.setattr(importlib.import_module("tinysift.stages.prune"), "prune", hung_up)
    assert main(["prune", "--dataset", "digits", "--keep", "0.1", "--out",
                 str(tmp_path)]) == 128 + signal.SIGHUP
    assert "stopped by signal 1" in capsys.readouterr().err
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)) == before
    assert main(["prune", "--dataset", "digits", "--keep", "0.1", "--out"]) == 2
    assert "requires an argument" in capsys.readouterr().err


def test_command_helps_are_one_line_per_paragraph():
    """Each command's help, top-level and in groups, is its docstring with every paragraph
    joined into one line (typer kept the breaks, which wrapped raggedly)."""
    from tinysift.cli.app import app

    def helps(typer_app):
        yield from typer_app.registered_commands
        for group in typer_app.registered_groups:
            yield from helps(group.typer_instance)

    by_name = {info.name: info.help for info in helps(app)}
    assert by_name["adapt"] == (
        "The device learns a new task and keeps the old one with a replay set.\n\nTrains a "
        "base model on the old task, chooses a replay set, and lets the device learn the new "
        "task with it; prints old/new/all accuracy against the host's joint model.")
    assert by_name["upkeep"].split("\n\n")[1] == (
        "Stream every new sample, keep a buffer by reservoir sampling or by VQ coverage, "
        "train on it plus the exported replay set.")


def test_console_lines_and_json_are_plain(capsys):
    """say() prints the user's text as is (brackets are not markup); print_json writes plain
    JSON with 2-space indents, paths as strings."""
    from pathlib import Path

    from tinysift.cli.app_console import print_json, say

    say("run [v2] in [bold]x[/]")
    print_json({"run": Path("/a/b"), "n": [1]})
    assert capsys.readouterr().out == (
        'run [v2] in [bold]x[/]\n{\n  "run": "/a/b",\n  "n": [\n    1\n  ]\n}\n')


def test_prune_and_condense_say_what_they_kept_and_when_cached(tmp_path, capsys):
    """Real random prune and condense of the digits: prune's line is the count, the share
    of the 1437 samples (20 -> 1.39 %), 2 per class and the selection's path (brackets in
    it printed as is); condense's the samples made, per class and the set's path; each
    says (cached) when run again on the same inputs."""
    from tinysift.cli import main

    run = tmp_path / "p[v2]"
    args = ["prune", "--dataset", "digits", "--method", "random", "--keep", "20", "--out",
            str(run)]
    assert main(args) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "random: kept 20 of 1437 (1.39%), scored in " in out, out
    assert f"per class: {[2] * 10} -> {run}/selection.npz" in out, out
    assert "(cached)" not in out
    assert main(args) == 0
    assert "s (cached)" in capsys.readouterr().out
    run = tmp_path / "c[v2]"
    args = ["condense", "--dataset", "digits", "--method", "random", "--per-class", "2",
            "--out", str(run)]
    assert main(args) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith("random: 20 samples (2 per class) in ") and out.endswith(
        f"s -> {run}/condensed.npz"), out
    assert main(args) == 0
    assert capsys.readouterr().out.split()[-1] == "(cached)"


def test_bench_upkeep_names_its_two_scenarios(monkeypatch, capsys):
    """`bench upkeep --scenario user` (and `bench device`'s) was told "the user scenario needs
    --new npz:PATH", an option these benches have not; an unknown scenario was offered
    "user". Both are refused in one line that names shift and new-classes and where the user
    scenario is, exit 2, before the bench."""
    from tinysift.cli import main

    seen = _stop_at(monkeypatch, "tinysift.bench.upkeep:bench_upkeep",
                    "tinysift.bench.device:bench_device")
    for command, scenario in (("upkeep", "user"), ("upkeep", "bogus"), ("device", "user"),
                              ("device", "bogus")):
        assert main(["bench", command, "--scenario", scenario]) == 2, (command, scenario)
        (line,) = _error_lines(capsys.readouterr().err)
        assert (f"bench {command} --scenario must be shift or new-classes, got '{scenario}'"
                in line), line
        assert "tinysift adapt --scenario user --new PATH" in line and "needs --new" not in line
    assert not seen


def test_data_info_downloads_only_when_asked(monkeypatch):
    """`data info` hands --download to the loader (default: no download, as --help says).
    The loader is replaced by a recorder: a real Keras download cannot run offline here."""
    from tinysift.cli import main

    calls = _stop_at(monkeypatch, "tinysift.data:load_dataset", whole_call=True)
    assert main(["data", "info", "cifar10"]) == 130
    assert main(["data", "info", "cifar10", "--download"]) == 130
    assert calls == [(("cifar10",), {"allow_download": False}),
                     (("cifar10",), {"allow_download": True})]


def test_ctrl_c_outside_the_command_is_130_too(monkeypatch, capsys):
    """typer turns a Ctrl-C inside a command into 130; one that lands outside it (before the
    command starts) reaches main()'s own handler: 130 and the interrupted line, not 1. (The
    Ctrl-C is raised from the argument check: its real timing cannot be hit on purpose.)"""
    import importlib

    app_module = importlib.import_module("tinysift.cli.app")

    def ctrl_c(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(app_module, "_refuse_empty_paths", ctrl_c)
    assert app_module.main(["data", "list"]) == 130
    assert "interrupted (Ctrl-C): finished stages are saved" in capsys.readouterr().err


def test_every_location_option_refuses_an_empty_value_and_usage_names_tinysift(capsys):
    """--out-dir and --inputs are places too: `--out-dir ""` and `--inputs ""` are refused
    like --out; a usage error names the command `tinysift`, not the program that runs
    main() (pytest here, `python -m tinysift.cli.app` in a shell)."""
    from tinysift.cli import main

    for args in (["bench", "prune", "--out-dir", ""],
                 ["engine", "export", "--run", "r", "--inputs", ""]):
        assert main(args) == 2, args
        assert f"{args[-2]} is empty (an unset shell variable?)" in " ".join(
            capsys.readouterr().err.split()), args
    assert main(["prune", "--dataset", "digits"]) == 2
    assert "Usage: tinysift prune [OPTIONS]" in capsys.readouterr().err


def _table_rows(out: str) -> dict[str, list[str]]:
    """The body rows of the rich tables in ``out``, by their first cell: each row's cells,
    stripped (header and border lines left out)."""
    rows = {}
    for line in out.splitlines():
        if line.strip().startswith("│"):
            cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
            rows[cells[0]] = cells
    return rows


def test_boards_says_each_profiles_current_memory_port_and_where_it_runs(tmp_path,
                                                                         monkeypatch, capsys):
    """`tinysift boards`: a current the profile estimates is marked (est.), a datasheet's is
    bare and the user's calibration is (measured); RAM and flash in KB; the port; where the
    board is built and run. --json has the same support, its text and whether the user's
    profile applies."""
    import json

    from tinysift.cli import main

    monkeypatch.setenv("TINYSIFT_CONFIG_DIR", str(tmp_path))
    assert main(["boards"]) == 0
    rows = _table_rows(capsys.readouterr().out)
    assert rows["nucleo_f411re"][2:6] == ["100 MHz", "128 KB", "512 KB", "10 mA (est.)"]
    assert rows["nucleo_f411re"][8:] == ["stm32f4", "built here, not run (no board on these "
                                                    "machines)"]
    assert rows["nucleo_l4r5zi"][5] == "13.2 mA"  # the datasheet's figure
    assert rows["qemu-mps2-an386"][9] == "built and run here (emulated)"
    assert rows["nano33ble"][8:] == ["arduino", "needs internet (stock PlatformIO); not built "
                                                "here"]
    assert main(["device", "calibrate", "--board", "nucleo_f411re", "--current-ma", "12"]) == 0
    capsys.readouterr()
    assert main(["boards"]) == 0
    assert _table_rows(capsys.readouterr().out)["nucleo_f411re"][5] == "12 mA (measured)"
    assert main(["boards", "--json"]) == 0
    boards = {b["name"]: b for b in json.loads(capsys.readouterr().out)}
    assert [(boards[name]["support"], boards[name]["support_text"],
             boards[name]["user_profile"]) for name in ("nucleo_f411re", "qemu-mps2-an386")] == [
        ("build-here", "built here, not run (no board on these machines)", True),
        ("run-here", "built and run here (emulated)", False)]


def test_quantize_and_export_print_what_their_stage_did(monkeypatch, tmp_path, capsys):
    """`quantize` prints the mode, the float (QAT's: the model's before QAT) and int8
    accuracies, the drop in points with its sign, the arena and .tflite sizes, and (cached);
    `export` the memory plan and what it leaves out, the samples exported and where, and
    only where they apply a test split smaller than a --test-samples given (not the default),
    the head-only firmware, what --fit dropped and (cached). (The stages are replaced by ones
    returning known outcomes: the lines, not the stages, are held here.)"""
    import importlib

    from tinysift.cli import main
    from tinysift.stages.export import ExportOutcome
    from tinysift.stages.quantize import QuantizeOutcome

    run = _run_folder(tmp_path / "run")
    quantized = [QuantizeOutcome(run, "qat", 0.95, 0.9412, 0.0088, 12345, 23456, skipped=True),
                 QuantizeOutcome(run, "ptq", 0.9, 0.9028, -0.0028, 100, 200)]
    monkeypatch.setattr(importlib.import_module("tinysift.stages.quantize"), "quantize",
                        lambda *a, **k: quantized.pop(0))
    assert main(["quantize", "--run", str(run), "--qat"]) == 0
    assert " ".join(capsys.readouterr().out.split()) == (
        "qat: float (as trained, before QAT) 0.9500 int8 (TFLM) 0.9412 drop +0.88 pt TFLM "
        "arena 12345 B .tflite 23456 B (cached)")
    assert main(["quantize", "--run", str(run)]) == 0
    assert " ".join(capsys.readouterr().out.split()) == (
        "ptq: float 0.9000 int8 (TFLM) 0.9028 drop -0.28 pt TFLM arena 100 B .tflite 200 B")
    plan = {"board": "qemu-mps2-an386", "flash": {"weights": 1200, "code": 3000},
            "ram": {"arena": 2048}, "flash_total": 4200, "flash_capacity": 8192,
            "ram_total": 2048, "ram_capacity": 8192,
            "not_counted": {"raw .tflite (optional)": 1234}}
    fitted = {"seed": 3, "kept": 143, "exported": 100, "dropped": 43}
    exported = [ExportOutcome(run / "export", 100, 50, plan, "h", skipped=True, fit=fitted),
                ExportOutcome(run / "export", 100, 50, plan, "h", fit=fitted),
                ExportOutcome(run / "export", 143, 50, plan, "h")]
    monkeypatch.setattr(importlib.import_module("tinysift.stages.export"), "export",
                        lambda *a, **k: exported.pop(0))
    from tinysift.runs import Run

    selected = Run(run)
    selected.manifest.setdefault("stages", {})["train"] = {"params": {"source": "selection:vq"}}
    selected.save()
    assert main(["export", "--run", str(run), "--test-samples", "80", "--head-only", "--fit",
                 "--seed", "3"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "memory plan on qemu-mps2-an386" in out and "4,200 / 8,192" in out, out
    assert "│ weights │ 1,200 │" in out, out
    assert "not counted: raw .tflite (optional) (1,234 B)" in out, out
    assert f"exported 100 training + 50 test samples -> {run / 'export'} (cached)" in out, out
    assert "--test-samples 80: the run's test split has 50 samples, all of them exported" in out
    assert "head-only: its firmware trains update=head only" in out
    assert ("--fit: a class-balanced random subset (seed 3) of the 143 kept samples, not the "
            "selection's first 100 (43 dropped; export.json `fit` lists the positions); for a "
            "selection-ordered set, prune again with --keep 100") in out, out
    # a run trained on its full set has no selection to speak of (it was told of one)
    selected.manifest["stages"]["train"]["params"]["source"] = "full"
    selected.save()
    assert main(["export", "--run", str(run), "--fit", "--seed", "3"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert ("--fit: a class-balanced random subset (seed 3) of the 143 training samples, 100 "
            "kept (43 dropped; export.json `fit` lists the positions); to choose which, prune "
            "with --keep 100 and train on its selection") in out and "selection's" not in out
    assert main(["export", "--run", str(run), "--test-samples", "50"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "memory plan on qemu-mps2-an386" in out and out.endswith(
        f"exported 143 training + 50 test samples -> {run / 'export'}"), out
    # the default of 200, not asked for, is not a warning when the split is smaller
    exported.append(ExportOutcome(run / "export", 143, 50, plan, "h"))
    assert main(["export", "--run", str(run)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--test-samples" not in out and out.endswith(
        f"exported 143 training + 50 test samples -> {run / 'export'}"), out


def test_data_list_says_what_is_available_here_and_how_to_get_the_rest(tmp_path, monkeypatch,
                                                                       capsys):
    """`data list`: with an empty Keras cache, cifar10 (online only) is not available here,
    in --json and in its table row (no, and how to get it); the digits are; each row has the
    image shape and the train and test sizes in that order. `data info --json` counts the
    digits' classes (10), not a split's samples."""
    import json

    from tinysift.cli import main

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert main(["data", "list", "--json"]) == 0
    listed = {d["name"]: d for d in json.loads(capsys.readouterr().out)}
    assert (listed["cifar10"]["available"], listed["digits"]["available"]) == (False, True)
    assert main(["data", "list"]) == 0
    rows = _table_rows(capsys.readouterr().out)
    assert rows["digits"] == ["digits", "8x8x1", "1437", "360", "yes", "always available"]
    assert rows["cifar10"] == ["cifar10", "32x32x3", "50000", "10000", "no",
                               "needs internet: downloaded by Keras on first use"]
    assert main(["data", "info", "digits", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["train"], info["test"], info["num_classes"]) == (1437, 360, 10)


def test_a_folder_that_is_no_run_names_the_option_and_how_to_make_one(tmp_path):
    """A --run that is not a run folder names the option it came from and the command that
    makes a run there (a missing folder, one without manifest.json); a `tinysift adapt` or
    pipeline folder names its base run, the folder to pass, and so does a folder inside a
    run (export/, device/); a run folder is taken as is."""
    from tinysift.cli.checks import require_run
    from tinysift.errors import TinysiftError

    missing, empty, adapt = tmp_path / "typo", tmp_path / "empty", tmp_path / "adapt"
    empty.mkdir()
    base = _run_folder(adapt / "base")
    export = base / "export"
    export.mkdir()
    for folder, said in (
            (missing, f"{missing} does not exist (--base); create it with `tinysift train "
                      f"--dataset D --out {missing}` (then quantize, export)"),
            (empty, f"{empty} has no manifest.json (--base); create it with `tinysift train "
                    f"--dataset D --out {empty}` (then quantize, export)"),
            (adapt, f"{adapt} is the folder of `tinysift adapt` (or of a pipeline), whose base "
                    f"model is the run folder {base}: pass --base {base}"),
            # RUN/export was told to `tinysift train --out RUN/export`: a run inside a run
            (export, f"{export} is the export/ folder inside the run folder {base}: pass "
                     f"--base {base}")):
        with pytest.raises(TinysiftError) as refused:
            require_run(folder, "--base")
        assert str(refused.value) == f"not a run folder: {said}"
    assert require_run(base) == base


def test_the_memory_plan_prints_the_boards_name_as_written(capsys):
    """A board's name is a profile's text (a user's profile may say `name = "lab f411
    [rev c]"`): the memory plan's title read it as rich markup, so `[rev c]` vanished and a
    `[/x]` in it ended a finished export in an unexpected MarkupError (exit 1)."""
    from tinysift.cli.quantize_cmd import print_plan

    for name in ("lab f411 [rev c]", "lab [/x]"):
        print_plan({"board": name, "flash": {"weights": 1000}, "ram": {"arena": 2048},
                    "flash_total": 1000, "flash_capacity": 4096, "ram_total": 2048,
                    "ram_capacity": 8192})
        assert f"memory plan on {name}" in capsys.readouterr().out


def test_a_run_or_inputs_the_file_system_cannot_name_is_one_line(tmp_path, capsys):
    """`quantize --run` or `engine check --inputs` given a name of 300 characters ended in
    "unexpected OSError: [Errno 36] File name too long (a bug in tinysift)", exit 1, where
    --out and npz: say so in one line: these too now, naming the option, exit 2."""
    from tinysift.cli import main

    long = tmp_path / ("a" * 300)
    for args, said in (
            (["quantize", "--run", str(long)],
             f"not a run folder: {long} (--run: File name too long); pass the folder"),
            (["device", "flash", "--board", "nucleo_f411re", "--run", str(long), "--dry-run"],
             f"not a run folder: {long} (--run: File name too long)"),
            (["engine", "check", "--tflite", str(tmp_path / "m.tflite"), "--inputs",
              f"{long}.npy"], f"--inputs {long}.npy: File name too long; give a .npy")):
        assert main(args) == 2, args
        err = capsys.readouterr().err
        (line,) = _error_lines(err)
        assert said in line and "unexpected" not in err, err


def test_every_quick_bench_refuses_each_option_it_would_ignore(monkeypatch, capsys):
    """Each option a bench's --quick configuration would replace is refused with --quick
    alone, named, with "drop it" (and "drop them" for two): the tests named some of them,
    and an option left out of the check would run as --quick's own value without a word
    (bench guided --quick --seeds 3, bench device --quick --sizes 20, bench upkeep --quick
    --steps 50, ...)."""
    from tinysift.cli import main

    seen = _stop_at(monkeypatch, "tinysift.bench.prune:bench_prune",
                    "tinysift.bench.guided:bench_guided",
                    "tinysift.bench.condense:bench_condense",
                    "tinysift.bench.device:bench_device",
                    "tinysift.bench.upkeep:bench_upkeep")
    ignored = {
        "prune": [("--dataset", "mnist"), ("--keep", "0.3"), ("--seeds", "2")],
        "guided": [("--dataset", "mnist"), ("--budgets", "0.3"), ("--seeds", "2"),
                   ("--epochs", "5"), ("--rerun", "vq"), ("--keep-steps", None),
                   ("--batch", "64")],
        "condense": [("--dataset", "mnist"), ("--per-class", "10"), ("--seeds", "2")],
        "device": [("--scenario", "shift"), ("--dataset", "mnist"), ("--seeds", "2"),
                   ("--methods", "vq"), ("--sizes", "20"), ("--updates", "bias"),
                   ("--steps", "50"), ("--new-per-class", "50"), ("--test-per-class", "50")],
        "upkeep": [("--scenario", "shift"), ("--dataset", "mnist"), ("--seeds", "2"),
                   ("--buffers", "20"), ("--updates", "bias"), ("--vq-per-class", "8"),
                   ("--replay", "vq"), ("--replay-per-class", "20"), ("--new-per-class", "50"),
                   ("--steps", "50"), ("--base-epochs", "3")]}
    for bench, options in ignored.items():
        for flag, value in options:
            given = [flag] if value is None else [flag, value]
            assert main(["bench", bench, "--quick", *given]) == 2, (bench, flag)
            (line,) = _error_lines(capsys.readouterr().err)
            assert f"would ignore {flag}: drop it or --quick" in line, (bench, line)
    assert main(["bench", "device", "--quick", "--sizes", "20", "--steps", "50"]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert "would ignore --sizes, --steps: drop them or --quick" in line, line
    assert not seen


def test_bench_guided_and_condense_defaults_are_their_helps(monkeypatch, capsys, tmp_path):
    """`bench guided` without options runs what --help says: Fashion-MNIST, budgets 0.3, 0.5,
    0.7, 5 seeds, 10 epochs, batch 128, nothing rerun, no --keep-steps, no parameters;
    `bench condense` 1, 10 and 50 per class, 3 seeds; a given `bench device --steps` and
    --dataset reach its configuration (a default changed, or a flag dropped, would run other
    benches than the committed ones without a word)."""
    from tinysift.cli import main

    seen = _stop_at(monkeypatch, "tinysift.bench.guided:bench_guided",
                    "tinysift.bench.condense:bench_condense",
                    "tinysift.bench.device:bench_device")
    out = ["--out-dir", str(tmp_path)]
    assert main(["bench", "guided", *out]) == 130
    c = seen[-1]
    assert (c.dataset, c.budgets, c.seeds, c.epochs, c.batch, c.rerun, c.keep_steps,
            c.method_params) == ("fashion-mnist", (0.3, 0.5, 0.7), 5, 10, 128, (), False, {})
    assert main(["bench", "condense", *out]) == 130
    assert (seen[-1].dataset, seen[-1].per_class, seen[-1].seeds) == (
        "fashion-mnist", (1, 10, 50), 3)
    assert main(["bench", "device", "--steps", "40", "--dataset", "mnist", *out]) == 130
    assert (seen[-1].steps, seen[-1].dataset) == (40, "mnist")


def test_guided_method_params_need_their_own_results_folder(monkeypatch, capsys, tmp_path):
    """`bench guided --method-params` in the default --out-dir (benchmarks/results, however
    it is spelled) is refused before the bench with the folder to give instead: its tables
    would replace those of the methods' defaults. Parameters that change nothing (an empty
    object) write the default tables, and are taken there."""
    from tinysift.cli import main

    seen = _stop_at(monkeypatch, "tinysift.bench.guided:bench_guided")
    monkeypatch.chdir(tmp_path)
    params = ["--methods", "vq", "--method-params", '{"vq": {"alpha": 2}}']
    for out in ([], ["--out-dir", "./benchmarks/results"]):
        assert main(["bench", "guided", *params, *out]) == 2, out
        (line,) = _error_lines(capsys.readouterr().err)
        assert ("--method-params with the default --out-dir would write its tables over "
                "those of the methods' defaults in") in line, line
        assert "give it a folder of its own, e.g. --out-dir" in line and "guided_params" in line
    assert not seen
    assert main(["bench", "guided", "--methods", "vq", "--method-params", '{"vq": {}}']) == 130
    assert seen[-1].method_params == {"vq": {}}


def test_bench_trainings_run_on_the_executor_given(monkeypatch, tmp_path):
    """`bench prune/guided/condense --executor local:2` hand the spec to the executor that
    runs their trainings (a spec dropped on the way would run them serially without a
    word)."""
    from tinysift.cli import main

    specs = _stop_at(monkeypatch, "tinysift.bench.executor:open_executor")
    for bench in ("prune", "guided", "condense"):
        assert main(["bench", bench, "--quick", "--executor", "local:2", "--out-dir",
                     str(tmp_path)]) == 130, bench
    assert specs == ["local:2"] * 3


def test_benches_say_what_they_measured_and_where_they_wrote(monkeypatch, capsys, tmp_path):
    """`bench scoring` prints each method's time beside its target, and `bench upkeep`
    names the results files it wrote (its stem: the scenario's) and how long it took."""
    from tinysift.cli import main

    monkeypatch.setattr("tinysift.bench.scoring.bench_scoring", lambda *a, **k: {
        "methods": {"vq": {"seconds": 41.26, "target_seconds": 60},
                    "flow": {"seconds": 312.0, "target_seconds": 300}}})
    assert main(["bench", "scoring", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "vq: 41.3 s (target 60 s)" in out and "flow: 312.0 s (target 300 s)" in out, out
    configs = []

    def upkeep(cfg, log):
        configs.append(cfg)
        return {"wall_seconds": 90.0}

    monkeypatch.setattr("tinysift.bench.upkeep.bench_upkeep", upkeep)
    assert main(["bench", "upkeep", "--out-dir", str(tmp_path)]) == 0
    assert f"wrote {tmp_path}/{configs[0].stem()}.* (1.5 min)" in capsys.readouterr().out


def test_run_of_an_adapt_pipeline_takes_the_out_and_board_given(monkeypatch, tmp_path):
    """`tinysift run ADAPT.toml --out --board` run there and on that board (the demo's
    override was checked for its dataset, methods and seed alone)."""
    from pathlib import Path

    from tinysift.cli import main

    demo = Path(__file__).resolve().parents[1] / "pipelines" / "demo.toml"
    seen = _stop_at(monkeypatch, "tinysift.bench.adapt_demo:run_adapt_demo")
    assert main(["run", str(demo), "--out", str(tmp_path / "a"), "--board",
                 "qemu-mps2-an500"]) == 130
    assert (seen[0].out, seen[0].board) == (str(tmp_path / "a"), "qemu-mps2-an500")


def test_demo_and_run_print_the_table_headline_and_report(monkeypatch, capsys, tmp_path):
    """`demo` and `run PIPELINE` end with the results table, the headline and where the
    report and summary are (the pipeline's summary is given: the real one trains)."""
    from pathlib import Path

    from tinysift.cli import main

    point = {"method": "vq", "size": 10, "update": "head", "acc_mean": 0.8123,
             "acc_old": 0.7, "acc_new": 0.95, "energy_mj": 40.04}
    adapt = {"results": {"points": {"vq:10:head": point}}, "headline": "Best replay: vq.",
             "config": {"board": "qemu-mps2-an386", "fit_board": "nano33ble"},
             "plans": {"boards": {}}, "wall_seconds": 61.4}
    monkeypatch.setattr("tinysift.bench.adapt_demo.run_adapt_demo", lambda cfg, log: adapt)
    assert main(["demo", "--quick", "--out", str(tmp_path / "d")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "│ vq │ 10 │ head │ 0.812 │ 0.700 │ 0.950 │ 40.0 │ - │ - │" in out, out
    assert "Best replay: vq." in out
    assert f"report: {tmp_path}/d/report.html summary: {tmp_path}/d/summary.json (61 s)" in out
    row = {"method": "random", "samples": 150, "acc_before": 0.5, "acc_after": 0.8,
           "int8_acc_after": 0.79, "cycles_per_epoch": 30_000, "energy_mj_per_epoch": 0.3,
           "energy_mj_total": 1.5, "seconds_per_epoch": 0.0123}
    select = {"dataset": "digits", "board": "qemu-mps2-an386", "epochs": 4, "rows": [row],
              "headline": "random at 150 & up", "wall_seconds": 12.6}
    monkeypatch.setattr("tinysift.pipeline.run.run_pipeline", lambda cfg, log: select)
    pipeline = Path(__file__).resolve().parents[1] / "pipelines" / "select.toml"
    assert main(["run", str(pipeline), "--out", str(tmp_path / "s")]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "digits on qemu-mps2-an386: on-device fine-tuning, 4 epochs (energy estimated)" in out
    assert ("│ random │ 150 │ 0.500 │ 0.800 │ 0.790 │ 30,000 │ 0.300 │ 1.500 │ 12.3 │"
            in out), out
    # the total is many epochs' worth after one: the backbone's pass is said to be in it
    assert ("mJ fine-tune: the whole bill, the backbone's one pass over the samples (features "
            "cached) and every epoch of the head") in out, out
    assert "random at 150 & up" in out
    assert f"report: {tmp_path}/s/report.html summary: {tmp_path}/s/summary.json (13 s)" in out


def test_engine_check_reports_each_kernel_and_a_board_it_does_not_fit(monkeypatch, tmp_path,
                                                                     capsys):
    """`engine check` prints each kernel's count of outputs identical to TFLM with its
    verdict and first failures, and the fit problem under the memory plan; it exits 1 on a
    mismatch (before the fit's 2), and 2 with the fit problem as its error line when every
    output is identical on a board the model does not fit (--json says fits false). The
    check's result is given (the real one compiles with gcc)."""
    import json

    from tinysift.cli import main
    from tinysift.stages.engine import EngineCheck

    tflite = tmp_path / "m.tflite"

    def kernel(equal: int) -> dict:
        return {"ok": equal == 5, "equal": equal, "inputs": 5, "first_layer": [],
                "failures": [] if equal == 5 else ["input 3: output 2 differs by 1"]}

    problem = "the RAM plan needs 9,000 B of nucleo_f411re's 8,192 B: use a bigger board"
    plan = {"board": "nucleo_f411re", "flash": {"weights": 1000}, "ram": {"arena": 9000},
            "flash_total": 1000, "flash_capacity": 4096, "ram_total": 9000,
            "ram_capacity": 8192, "fits": False}
    result = EngineCheck(tflite=tflite, inputs=5, layers=["0 CONV_2D"], arena_bytes=9000,
                         tflm_arena_head=8800, results={"scalar": kernel(5), "dsp": kernel(4)},
                         plan=plan, fit_problem=problem)
    monkeypatch.setattr("tinysift.stages.engine.check_tflite", lambda *a, **k: result)
    check = ["engine", "check", "--tflite", str(tflite), "--board", "nucleo_f411re"]
    assert main(check) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "scalar kernels: 5/5 outputs identical to TFLM: all identical" in out, out
    assert ("dsp kernels: 4/5 outputs identical to TFLM: MISMATCH input 3: output 2 differs "
            "by 1") in out, out
    assert problem in out
    result.results["dsp"] = kernel(5)
    assert main(check) == 2
    said = capsys.readouterr()
    assert "dsp kernels: 5/5 outputs identical to TFLM: all identical" in " ".join(
        said.out.split())
    (line,) = _error_lines(said.err)
    assert problem in line, line
    assert main([*check, "--json"]) == 2
    reported = json.loads(capsys.readouterr().out)
    assert (reported["ok"], reported["fits"], reported["fit_problem"]) == (True, False, problem)


def test_engine_run_writes_its_outputs_as_npy_and_never_over_its_inputs(monkeypatch, tmp_path,
                                                                       capsys):
    """`engine run --out` writes the outputs as .npy (the suffix added where it is not
    given, and said), its folder made; an --out that names the --inputs file (with or
    without .npy) is refused and the inputs kept, and a file in the way of --out's folder is
    refused before the engine runs. The engine is given (the real one compiles with gcc)."""
    from tinysift.cli import main

    x = np.zeros((2, 8, 8, 1), np.int8)
    np.save(tmp_path / "x.npy", x)
    tflite = tmp_path / "m.tflite"
    tflite.write_bytes(b"not read: the engine is given")
    ran = []

    def engine(path, inputs, dsp=False):
        ran.append(path)
        return np.arange(20, dtype=np.int8).reshape(2, 10)

    monkeypatch.setattr("tinysift.stages.engine.run_tflite", engine)
    run = ["engine", "run", "--tflite", str(tflite), "--inputs", str(tmp_path / "x.npy")]
    assert main([*run, "--out", str(tmp_path / "new" / "y")]) == 0
    assert np.array_equal(np.load(tmp_path / "new" / "y.npy"), np.arange(20).reshape(2, 10))
    assert f"2 outputs of 10 int8 -> {tmp_path}/new/y.npy" in capsys.readouterr().out
    for out in ("x", "x.npy"):
        assert main([*run, "--out", str(tmp_path / out)]) == 2, out
        (line,) = _error_lines(capsys.readouterr().err)
        assert (f"--out {tmp_path}/x.npy is the --inputs file: writing the outputs there "
                f"would replace it; give another file, e.g. {tmp_path}/x_outputs.npy") in line
    assert np.array_equal(np.load(tmp_path / "x.npy"), x)
    assert main([*run, "--out", str(tmp_path / "x.npy" / "y.npy")]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert f"{tmp_path}/x.npy is a file, not a folder (--out)" in line, line
    assert len(ran) == 1


def test_device_results_name_the_counter_rate_accuracies_and_warnings(capsys):
    """The device's table names a counter that runs at its own rate (a Pico's 1 MHz timer,
    not the clock), each phase as written; below it the accuracies before and after, why a
    power monitor's energy was not used and the clock the firmware disagrees on."""
    from tinysift.cli.device_cmd import print_results
    from tinysift.device.results import DeviceResults, PhaseResult

    res = DeviceResults(board="pico", clock_hz=133_000_000, counter="timer",
                        counter_hz=1_000_000, params={"epochs": 1}, energy_model={},
                        started="then", status="complete",
                        phases={"[train]": PhaseResult(cycles=1_234_567, seconds=1.2345,
                                                       energy_mj=0.5)},
                        test_acc_before=0.25, test_acc_after=0.75, test_int8_acc_after=0.7,
                        events=[{"monitor": "no [samples] captured"},
                                {"clock_differs": {"device_hz": 1_000_000,
                                                   "profile_hz": 2_000_000}}])
    print_results(res)
    out = " ".join(capsys.readouterr().out.split())
    assert "pico (timer counter at 1 MHz, 133 MHz) - complete" in out, out
    assert "│ [train] │ 1,234,567 │ 1234.5 │ 0.5000 │ estimated │" in out, out
    assert "test accuracy before 0.25 after 0.75 (int8 head 0.7)" in out
    assert "power monitor: no [samples] captured" in out
    assert ("warning: the firmware reports its timer counter at 1 MHz, the board profile says "
            "2 MHz") in out
    res.counter, res.counter_hz, res.events = "dwt", None, []
    print_results(res)
    out = " ".join(capsys.readouterr().out.split())
    assert "pico (dwt counter, 133 MHz) - complete" in out and "warning" not in out, out


def test_device_run_prints_each_epoch_or_window_as_the_device_reports_it(tmp_path, capsys):
    """`device run` prints the device's progress per epoch, and per window of steps with
    --steps (the device reports a window of ceil(N / B) steps, not an epoch)."""
    from fake_device import FakeDevice, fake_run
    from tinysift.cli import main

    run = fake_run(tmp_path / "r", board="qemu-mps2-an386")
    for length, word in ((["--epochs", "2"], "epoch"), (["--steps", "3"], "window")):
        dev = FakeDevice()
        try:
            assert main(["device", "run", "--run", str(run), "--port", dev.url, *length,
                         "--timeout", "3"]) == 0
        finally:
            dev.close()
        out = capsys.readouterr().out
        assert f"  {word} 1: loss " in out, out


def test_calibrate_names_its_profile_and_times_the_joulescope_by_the_workload(
        monkeypatch, capsys, tmp_path):
    """`device calibrate` names the profile it wrote; with the Joulescope the capture lasts
    the workload's --ms (default 2,000) plus 2 s (a capture of the default length would cut
    a longer workload short). The Joulescope's driver is replaced: none is attached here."""
    from tinysift.cli import main

    monkeypatch.setenv("TINYSIFT_CONFIG_DIR", str(tmp_path))
    assert main(["device", "calibrate", "--board", "nucleo_f411re", "--current-ma", "12"]) == 0
    assert (f"-> {tmp_path}/boards/nucleo_f411re.toml (used by every later run on "
            "nucleo_f411re)") in " ".join(capsys.readouterr().out.split())
    monitors = _stop_at(monkeypatch, "tinysift.device.energy:JoulescopeMonitor",
                        whole_call=True)
    for ms, seconds in (([], 4.0), (["--ms", "5000"], 7.0)):
        assert main(["device", "calibrate", "--board", "nucleo_f411re", "--joulescope",
                     "--port", "/dev/ttyACM0", *ms]) == 130, ms
        assert monitors[-1] == ((), {"duration_s": seconds}), ms


def test_device_list_says_no_serial_port_is_plugged(monkeypatch, capsys):
    """`device list` without a serial port lists the emulated boards with the --board to
    give, and says how to plug a board in (the OS's port list is given empty)."""
    from tinysift.cli import main

    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: [])
    assert main(["device", "list"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "│ emulated │ qemu-mps2-an386 │ - │ QEMU mps2-an386, env " in out, out
    assert "│ --board qemu-mps2-an386 │" in out
    assert "no serial ports: plug a board in over USB" in out


def test_device_flash_dry_run_plans_an_export_made_for_another_board(tmp_path, capsys):
    """`device flash --dry-run --run RUN` on another board than the export's plans the export
    on that board before it prints any command, as a flash would before its build: here that
    plan needs the run's quantized model, which the run lacks, and the line says how to make
    it (without the check a dry run would print the commands of a flash that is refused)."""
    from fake_device import fake_run
    from tinysift.cli import main

    run = fake_run(tmp_path / "r")  # exported for qemu-mps2-an386, without model.tflite
    assert main(["device", "flash", "--board", "nucleo_f411re", "--run", str(run),
                 "--dry-run"]) == 2
    captured = capsys.readouterr()
    (line,) = _error_lines(captured.err)
    assert (f"{run}/model.tflite not found: the memory plan needs the quantized model; run "
            f"`tinysift quantize --run {run}` first") in line, line
    assert "openocd" not in captured.out


def test_device_run_refuses_a_joulescope_on_qemu_with_a_port_too(monkeypatch, capsys,
                                                                tmp_path):
    """`device run --joulescope --port P` on the emulated board is refused as emulated
    before the Joulescope's driver loads: a port does not make QEMU's energy measurable, and
    the user is told so, not that the driver is missing."""
    from tinysift.cli import main

    seen = _stop_at(monkeypatch, "tinysift.stages.device:run_on_device")
    run = str(_run_folder(tmp_path / "run"))
    assert main(["device", "run", "--run", run, "--joulescope", "--port", "/dev/ttyACM0"]) == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert "--board qemu-mps2-an386 is emulated" in line, line
    assert not seen
