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
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "error: argument --seeds: 0: give at least 1" in err, err
    assert not list(tmp_path.iterdir())


def test_device_determinism_refuses_a_run_without_an_export(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        _tool("device_determinism").main([str(tmp_path), "--out-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"{tmp_path} has no export (no export/export.json)" in err


@pytest.mark.parametrize("args, said", [
    (["--train", "-1"], "argument --train: -1: give at least 1 image"),
    (["--test", "0"], "argument --test: 0: give at least 1 image"),
    (["--test", "1e3"], "argument --test: '1e3' is not a whole number"),
])
def test_make_rgb32_refuses_a_count_below_one(tmp_path, capsys, args, said):
    with pytest.raises(SystemExit) as exc:
        _tool("make_rgb32").main([*args, "--out", str(tmp_path / "x.npz")])
    assert exc.value.code == 2 and said in capsys.readouterr().err


@pytest.mark.parametrize("tool, args, said", [
    ("make_rgb32", ["--train", "0"], "argument --train: 0: give at least 1 image"),
    ("density_holdout", ["--seeds", "-2"], "argument --seeds: -2: give at least 1"),
    ("replay_study", ["--sizes", "5,0"],
     "argument --sizes: '5,0': every value must be >= 1, got 0"),
    ("fuzz_campaign", ["--runs", "0"], "argument --runs: 0: give at least 1"),
])
def test_tools_run_as_scripts_check_their_arguments_with_the_shared_types(tool, args, said):
    """Run as a script (its folder first on sys.path), a tool finds tools/_args.py, whose
    argparse types refuse a bad count in one line with exit 2 while the arguments are
    parsed, before any import of tinysift or TensorFlow."""
    done = subprocess.run([sys.executable, str(ROOT / "tools" / f"{tool}.py"), *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines()[-1].endswith(said), done.stderr


def test_test_durations_names_a_log_it_cannot_read(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "test_durations.py"),
                           str(tmp_path / "missing.log")], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"cannot read {tmp_path / 'missing.log'} (No such file or directory)" in done.stderr


@pytest.mark.parametrize("tool, args, said", [
    ("guided_ablation", ["--seeds", "0"], "argument --seeds: 0: give at least 1"),
    ("guided_ablation", ["--epochs", "0"], "argument --epochs: 0: give at least 1"),
    ("guided_ablation", ["--val", "-5"], "argument --val: -5: give at least 1"),
    # a budget out of (0, 1] trained every variant and wrote them over the committed table
    ("guided_ablation", ["--budget", "0"], "argument --budget: 0: give a fraction in (0, 1]"),
    ("guided_ablation", ["--budget", "nan"],
     "argument --budget: nan: give a fraction in (0, 1]"),
    ("guided_ablation", ["--budget", "1.5"],
     "argument --budget: 1.5: give a fraction in (0, 1]"),
    ("selection_ablation", ["--seeds", "0"], "argument --seeds: 0: give at least 1"),
    ("selection_ablation", ["--val", "0"], "argument --val: 0: give at least 1"),
    ("selection_ablation", ["--seeds", "two"], "argument --seeds: 'two' is not a whole number"),
])
def test_the_ablation_tools_refuse_counts_below_one(tool, args, said, tmp_path, capsys):
    """`--seeds 0` ran no seed and wrote results of it (selection_ablation: a table of nan
    rows, by default over the committed one), `--epochs 0` and `--val 0` were refused only
    after the dataset was loaded (the latter naming --no-balance, an option these tools
    lack), a --budget out of (0, 1] trained every variant to a meaningless budget: refused
    while the arguments are parsed, before any dataset or results folder is touched."""
    with pytest.raises(SystemExit) as exc:
        _tool(tool).main([*args, "--dataset", "nosuch", "--out-dir", str(tmp_path)])
    assert exc.value.code == 2 and said in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("tool,stem", [("guided_ablation", "ablation_guided_digits"),
                                       ("selection_ablation", "ablation_selection_digits")])
def test_an_ablation_tool_refuses_results_another_run_is_writing(tmp_path, monkeypatch, tool,
                                                                 stem):
    """The ablation tools took no results lock (the benches do): two runs on one results
    file trained every variant twice into one log and the last replaced the other's table.
    The second is refused before any data is loaded, naming the first."""
    from tinysift.bench.progress import results_claim

    mod = _tool(tool)
    monkeypatch.setattr(mod, "_ablate", _no_work)
    with results_claim(None, tmp_path, stem):  # held here, as by another process's run
        # a lock is per process and re-entrant: the second run must be another process
        cmd = [sys.executable, str(ROOT / "tools" / f"{tool}.py"), "--dataset", "digits",
               "--out-dir", str(tmp_path)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"{stem}.json is being written by another tinysift bench" in done.stderr
    assert "one bench per results file" in done.stderr
    # free again: the run goes on (here into the stand-in, which fails the test if reached
    # while the lock is held)
    with pytest.raises(AssertionError, match="work started"):
        mod.main(["--dataset", "digits", "--out-dir", str(tmp_path)])


@pytest.mark.parametrize("text", [None, "{torn"])
def test_trainer_table_render_names_a_results_file_it_cannot_read(tmp_path, text):
    """`tools/trainer_table.py --render` without its results JSON (or with a torn one) ended
    in a FileNotFoundError (JSONDecodeError) traceback; now one line naming the file."""
    if text is not None:
        (tmp_path / "trainer_qemu.json").write_text(text)
    with pytest.raises(SystemExit) as exc:
        _tool("trainer_table").main(["--render", "--out-dir", str(tmp_path)])
    assert str(exc.value.code).startswith(
        f"--render rewrites the markdown of {tmp_path / 'trainer_qemu.json'}, which cannot be "
        "read (")
    assert "run the bench without --render first" in str(exc.value.code)


def _refusal(parse, text: str) -> str:
    """The message ``parse(text)`` refuses ``text`` with (fails if it accepts it)."""
    import argparse

    with pytest.raises(argparse.ArgumentTypeError) as exc:
        parse(text)
    return str(exc.value)


def test_shared_argument_types_take_their_bounds_and_refuse_past_them():
    """tools/_args.py by its docstrings: at_least and int_list take ``least`` itself,
    fraction takes 1 (the whole recipe) and refuses 0 and nan, positive_list takes ``most``
    itself and refuses 0, a negative, nan and anything past ``most``, naming every bad
    value and the bound's unit."""
    args = _tool("_args")
    assert args.at_least(1)("1") == 1
    assert _refusal(args.at_least(2, "image"), "1") == "1: give at least 2 image"
    assert args.fraction("1") == 1.0 and args.fraction("0.5") == 0.5
    assert _refusal(args.fraction, "1.0001") == "1.0001: give a fraction in (0, 1]"
    assert args.int_list()("0,3") == [0, 3]
    assert args.int_list(least=2)("2,5") == [2, 5]
    assert _refusal(args.int_list(least=2), "1,5,0") \
        == "'1,5,0': every value must be >= 2, got 1, 0"
    keeps = args.positive_list("keep", most=1, unit="a fraction")
    assert keeps("0.01,1") == [0.01, 1.0]
    for text in ("0,0.5", "-0.1", "nan"):
        assert _refusal(keeps, text) == f"{text!r}: every keep must be above 0"
    assert _refusal(keeps, "0.5,1.5") == "'0.5,1.5': every keep must be at most 1 (a fraction)"
    assert _refusal(args.positive_list("size", most=0), "0.5") \
        == "'0.5': every size must be at most 0"
    assert args.positive_list()("1e9") == [1e9]


def test_test_durations_adds_each_files_setup_call_and_teardown(tmp_path):
    """file_seconds sums a file's setup, call and teardown lines by the file's name (its
    folder dropped), rounds, leaves out files under 1 s and lists the longest first; a
    line that only mentions a duration is not counted. Run as a script (a copy under
    tmp_path, so that it writes that copy's tests/file_durations.json, never the tree's), it
    writes them, and refuses two logs or a log without --durations lines with exit 2 and
    nothing written; -h and --help print its use."""
    import json
    import shutil

    tool = _tool("test_durations")
    log = "\n".join([
        "============ slowest durations ============",
        "3.40s call     tests/test_a.py::test_one",
        "0.30s setup    tests/test_a.py::test_one",
        "0.90s teardown tests/test_a.py::test_one",
        "5.60s call     tests/test_b.py::test_two[x]",
        "0.90s call     tests/test_c.py::test_three",
        "0.20s call     tests/test_d.py::test_four",
        "0.40s setup    tests/test_d.py::test_four",
        "(12.00s call   tests/test_e.py::test_quoted)",
    ])
    seconds = tool.file_seconds(log)
    assert seconds == {"test_b.py": 6, "test_a.py": 5}
    assert list(seconds) == ["test_b.py", "test_a.py"]
    assert tool.file_seconds("1.00s call     tests/test_c.py::t") == {"test_c.py": 1}

    (tmp_path / "tools").mkdir()
    (tmp_path / "tests").mkdir()
    script = tmp_path / "tools" / "test_durations.py"
    shutil.copy(ROOT / "tools" / "test_durations.py", script)
    out = tmp_path / "tests" / "file_durations.json"
    (tmp_path / "d.log").write_text(log + "\n")
    (tmp_path / "quiet.log").write_text("12 passed in 3.00s\n")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(script), *args], capture_output=True,
                              text=True, timeout=60)

    done = run(str(tmp_path / "d.log"), str(tmp_path / "d.log"))
    assert done.returncode == 2 and "Write tests/file_durations.json" in done.stderr
    done = run(str(tmp_path / "quiet.log"))
    assert done.returncode == 2 and "has no --durations lines" in done.stderr
    for ask in ("-h", "--help"):  # read as a log's name: "cannot read --help"
        done = run(ask)
        assert done.returncode == 0 and "Write tests/file_durations.json" in done.stdout
    assert not out.exists()
    done = run(str(tmp_path / "d.log"))
    assert done.returncode == 0 and "(2 files, 11 s in all)" in done.stdout
    assert json.loads(out.read_text()) == {"test_b.py": 6, "test_a.py": 5}
