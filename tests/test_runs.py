"""Run folders: atomic writes, manifest, stage caching."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tinysift.runs import Run, atomic_write_json


def test_manifest_records_versions_and_stages(tmp_path):
    run = Run(tmp_path / "r")
    with run.stage("demo", {"a": 1}, {"data": "abc"}, seed=7) as rec:
        (run / "out.txt").write_text("x")
        rec["outputs"].append("out.txt")
        rec["results"]["n"] = 3
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert m["versions"]["tensorflow"].startswith("2.21")
    assert m["stages"]["demo"]["status"] == "done"
    assert m["stages"]["demo"]["seed"] == 7
    # each stage records what it ran with, the code included (not only the folder's first)
    stage = m["stages"]["demo"]
    assert stage["versions"]["numpy"] == np.__version__
    assert len(stage["versions"]["tinysift_source"]) == 16
    assert stage["machine"]["cpus"] and "cpu_model" in stage["machine"]
    assert stage["finished"] >= stage["started"]  # which of two sets came last (train hint)
    key = m["stages"]["demo"]["key"]
    assert Run(tmp_path / "r").is_fresh("demo", key)
    (run / "out.txt").write_text("changed")
    assert not Run(tmp_path / "r").is_fresh("demo", key)
    (run / "out.txt").unlink()  # an output deleted: run again, not a FileNotFoundError
    assert not Run(tmp_path / "r").is_fresh("demo", key)


def test_failed_stage_is_not_fresh(tmp_path):
    run = Run(tmp_path)
    with pytest.raises(RuntimeError), run.stage("s", {}, {}):
        raise RuntimeError("boom")
    assert run.stage_info("s")["status"].startswith("failed")
    assert not run.is_fresh("s", run.stage_info("s")["key"])


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    """A write that dies after its bytes are on disk but before they are in place (here:
    fsync fails) leaves the old file whole and no temporary file; while it is in flight, the
    target still holds the old content."""
    import os

    from tinysift import runs

    target = tmp_path / "f.json"
    atomic_write_json(target, {"ok": 1})
    seen = []

    def failing_fsync(fd):
        seen.append((json.loads(target.read_text()), os.fstat(fd).st_size,
                     sorted(p.name for p in tmp_path.iterdir())))
        raise OSError("disk gone")

    monkeypatch.setattr(runs.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk gone"):
        atomic_write_json(target, {"new": "x" * 10_000})
    (old, written, names), = seen
    assert old == {"ok": 1} and written > 10_000  # the new bytes were in another file
    assert len(names) == 2 and "f.json" in names
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def _holder(folder):
    """Another process holding ``folder``'s lock until killed."""
    import subprocess
    import sys
    import time

    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom tinysift.runs import run_lock\n"
         "with run_lock(sys.argv[1], 'holding'):\n    print('held', flush=True)\n"
         "    time.sleep(120)\n", str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    time.sleep(0.05)
    return proc


def test_second_writer_refused_naming_the_holder(tmp_path):
    """One writer per run folder: a second process is refused with the holder's pid and
    command; the lock goes with the holder, even when it is killed."""
    import signal

    from tinysift.errors import RunBusy
    from tinysift.runs import run_lock

    proc = _holder(tmp_path / "r")
    try:
        with pytest.raises(RunBusy, match=f"pid {proc.pid} .*holding since"), \
                run_lock(tmp_path / "r", "test"):
            pass
        # every writing stage takes it: a firmware build in the same folder is refused too
        from fake_device import fake_run
        from tinysift.stages.device import flash

        with pytest.raises(RunBusy, match=f"pid {proc.pid}"):
            flash(tmp_path / "r", "qemu-mps2-an386")
        fake_run(tmp_path / "other")  # another folder is free
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with run_lock(tmp_path / "r", "test"), run_lock(tmp_path / "r", "re-entrant"):
        pass


def test_a_forked_child_does_not_keep_a_killed_holders_lock(tmp_path):
    """An flock belongs to the open file, which a forked child shares: a holder killed while
    a child it forked still ran (TFLM's arena search forks) left its run folder and results
    file locked until the orphan ended. Children drop their copies at the fork, so the lock
    goes with the holder; the parent's own lock stays held meanwhile."""
    import os
    import signal
    import subprocess
    import sys

    from tinysift.errors import RunBusy
    from tinysift.runs import file_lock, run_lock

    results = tmp_path / "results.lock"
    script = (
        "import os, sys, time\nfrom tinysift.runs import file_lock, run_lock\n"
        "with run_lock(sys.argv[1], 'holding'), file_lock(sys.argv[2], 'holding', str, str):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n        os.write(1, b'child\\n')\n        time.sleep(120)\n"
        "        os._exit(0)\n"
        "    os.write(1, b'%d\\n' % pid)\n    time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "r"), str(results)],
                            stdout=subprocess.PIPE, text=True)
    # both lines (one write(2) each, so they cannot interleave), in either order: the child
    # writes once its fork hooks have run; under load it may not have run at all when the
    # holder is killed, and so still hold the lock (the test failed 6 times in 47)
    lines = sorted(proc.stdout.readline().strip() for _ in range(2))
    assert lines[1] == "child", lines
    child = int(lines[0])
    try:
        with pytest.raises(RunBusy), run_lock(tmp_path / "r", "test"):
            pass  # the holder, alive, still holds it with its child forked
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        os.kill(child, 0)  # the orphan still runs
        with run_lock(tmp_path / "r", "test"), file_lock(results, "test", str, str):
            pass
    finally:
        proc.kill()
        proc.wait()
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_read_only_run_folder_is_one_clear_error(tmp_path, monkeypatch):
    """A run folder on a read-only file system (a mounted backup, a CI cache) was an
    "unexpected OSError" (exit status 1) on every command, a cached export too: the lock
    file cannot be made. Root writes through permissions, so the file system's refusal is
    stood in for at the lock's os.open."""
    import errno
    import os

    from tinysift import runs
    from tinysift.errors import TinysiftError

    real_open = os.open

    def read_only(path, *args, **kwargs):
        if str(path).endswith(runs.LOCK_FILE):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, *args, **kwargs)

    (tmp_path / "r").mkdir()
    monkeypatch.setattr(runs.os, "open", read_only)
    with pytest.raises(TinysiftError, match=r"cannot write in the run folder .*r \(Read-only "
                                            r"file system\).*copy it somewhere writable"), \
            runs.run_lock(tmp_path / "r", "test"):
        pass


def test_cached_device_result_is_rerun_after_the_export_or_firmware_changes(tmp_path,
                                                                         monkeypatch):
    """A finished device result is reused only for the same parameters, export and firmware
    sources: the upkeep bench once read back results of the previous replay rules after
    ts_replay.c changed, because only the parameters were compared."""
    import tinysift.device.build as build
    from tinysift.boards import DEFAULT_BOARD, load_board
    from tinysift.device.results import DeviceResults
    from tinysift.device.session import TrainParams
    from tinysift.stages.device import RESULTS, build_identity, cached_results, session_set

    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    (run / "export" / "ts_export_model.c").write_text("const int a = 1;\n")
    params = TrainParams(epochs=2)
    res = DeviceResults(board=DEFAULT_BOARD, clock_hz=1, params=vars(params), energy_model={},
                        started="now", status="complete",
                        build=build_identity(run, load_board(DEFAULT_BOARD)),
                        train_set_hash=session_set(run, None, False, "ram")[1])
    (run / "device" / "x").mkdir(parents=True)
    atomic_write_json(run / "device" / "x" / RESULTS, res.to_dict())
    assert cached_results(run, "x", params, DEFAULT_BOARD) is not None
    assert cached_results(run, "x", TrainParams(epochs=3), DEFAULT_BOARD) is None
    real = build.firmware_source_hash()
    monkeypatch.setattr(build, "firmware_source_hash", lambda: real + "0")  # a source edited
    assert cached_results(run, "x", params, DEFAULT_BOARD) is None
    monkeypatch.setattr(build, "firmware_source_hash", lambda: real)
    assert cached_results(run, "x", params, DEFAULT_BOARD) is not None
    (run / "export" / "ts_export_model.c").write_text("const int a = 2;\n")  # re-exported
    assert cached_results(run, "x", params, DEFAULT_BOARD) is None


def test_module_source_hash_counts_only_the_named_code(tmp_path, monkeypatch):
    """The code in a stage's key: every source of a named package or module, read when
    asked; an edit there changes it, an edit elsewhere does not; an unknown name is a bug in
    the stage's list, not a silent empty hash (tests/test_export.py runs the export stage
    with an edited copy of the package)."""
    import importlib
    import sys

    from tinysift.runs import module_source_hash

    pkg = tmp_path / "tspkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "math.py").write_text("def f(x):\n    return x + 1\n")
    (pkg / "other.py").write_text("Y = 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    try:
        names = ("tspkg.sub", "tspkg.other")
        first = module_source_hash(names)
        assert len(first) == 16 and module_source_hash(names) == first
        (pkg / "__init__.py").write_text("Z = 3\n")  # outside the named code: kept
        assert module_source_hash(names) == first
        (pkg / "sub" / "math.py").write_text("def f(x):\n    return x + 2\n")
        edited = module_source_hash(names)
        assert edited != first
        (pkg / "sub" / "new.py").write_text("")  # a module added to a named package counts
        added = module_source_hash(names)
        assert added not in (first, edited)
        (pkg / "sub" / "deep").mkdir()  # and one in a package inside it
        (pkg / "sub" / "deep" / "k.py").write_text("K = 1\n")
        assert module_source_hash(names) not in (first, edited, added)
        with pytest.raises(ModuleNotFoundError, match="tspkg.absent"):
            module_source_hash(("tspkg.absent",))
    finally:
        for name in [m for m in sys.modules if m == "tspkg" or m.startswith("tspkg.")]:
            del sys.modules[name]


def test_a_refused_command_leaves_no_empty_run_folder(tmp_path):
    """`train --epochs -1 --out new` was refused after the run lock had made the folder: an
    empty folder with a lock file stayed. A folder the lock made and nothing wrote into goes
    with the lock; a folder that was there, or got files, stays."""
    from tinysift.errors import BudgetError
    from tinysift.runs import LOCK_FILE, run_lock
    from tinysift.stages.train import train

    with pytest.raises(BudgetError, match="--epochs"):
        train("digits", tmp_path / "new", epochs=-1, progress=False)
    with pytest.raises(BudgetError, match="--epochs"):  # True was taken as 1 epoch
        train("digits", tmp_path / "new", epochs=True, progress=False)
    assert not (tmp_path / "new").exists()
    # nor the folders made above it (runs/ of the default runs/<name> stayed, empty)
    with pytest.raises(BudgetError, match="--epochs"):
        train("digits", tmp_path / "runs" / "deep" / "new", epochs=-1, progress=False)
    assert not (tmp_path / "runs").exists()
    (tmp_path / "runs" / "other").mkdir(parents=True)  # a folder with another run stays
    with pytest.raises(BudgetError, match="--epochs"):
        train("digits", tmp_path / "runs" / "deep" / "new", epochs=-1, progress=False)
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["other"]
    # an existing empty folder reached through a `..` is the user's: it stays
    (tmp_path / "mine").mkdir()
    with pytest.raises(BudgetError, match="--epochs"):
        train("digits", tmp_path / "gone" / ".." / "mine" / "new", epochs=-1, progress=False)
    assert (tmp_path / "mine").is_dir() and not (tmp_path / "mine" / "new").exists()
    with run_lock(tmp_path / "kept"):
        (tmp_path / "kept" / "file").write_text("x")
    # the files stay; the lock file only with a run in the folder (a manifest)
    assert (tmp_path / "kept" / "file").exists() and not (tmp_path / "kept" / LOCK_FILE).exists()
    with run_lock(tmp_path / "kept"):
        (tmp_path / "kept" / "manifest.json").write_text("{}")
    assert (tmp_path / "kept" / LOCK_FILE).exists()
    (tmp_path / "there").mkdir()
    with run_lock(tmp_path / "there"):
        pass
    assert (tmp_path / "there").is_dir() and not list((tmp_path / "there").iterdir())


def test_a_run_folder_is_made_though_another_run_removes_the_empty_runs_folder(
        tmp_path, monkeypatch):
    """Two tinysift processes: this one makes runs/ then runs/mine; the other, refused,
    removes the empty runs/ it had made in between (run_lock's tidy). The second mkdir
    failed with FileNotFoundError (an "unexpected" error); the folder is made again.
    The other process is played by removing runs/ right after it is made (the window is
    two system calls wide, too narrow to hit with a real second process in a test)."""
    import os

    from tinysift.errors import TinysiftError
    from tinysift.runs import run_lock

    real_mkdir = os.mkdir
    removals = {"left": 1}

    def mkdir_then_removed(path, *args, **kwargs):
        real_mkdir(path, *args, **kwargs)
        if os.path.basename(os.fspath(path)) == "runs" and removals["left"]:
            removals["left"] -= 1
            os.rmdir(path)  # the other process's tidy

    monkeypatch.setattr(os, "mkdir", mkdir_then_removed)
    with run_lock(tmp_path / "runs" / "mine"):
        (tmp_path / "runs" / "mine" / "manifest.json").write_text("{}")
    assert removals["left"] == 0
    assert (tmp_path / "runs" / "mine" / "manifest.json").exists()
    # a parent that never stays: one clear error, not an endless loop
    removals["left"] = 10**6
    with pytest.raises(TinysiftError, match="kept vanishing"):
        with run_lock(tmp_path / "elsewhere" / "runs" / "again"):
            pass


def test_a_damaged_manifest_is_one_clear_error(tmp_path, capsys):
    """A manifest.json that is not UTF-8 text, is a folder, or holds a stage, dataset or
    command list of the wrong type (a hand edit) stopped every stage with "unexpected
    UnicodeDecodeError / IsADirectoryError / AttributeError (a bug in tinysift)"; now one
    TinysiftError naming the file and the fix (exit 2), the file left as it was."""
    from tinysift.cli import main
    from tinysift.errors import TinysiftError

    damaged = {"binary": b"\xff\xfe\x00garbage",
               "stage": b'{"tinysift_run": 1, "stages": {"train": "x"}}',
               "dataset": b'{"tinysift_run": 1, "stages": {}, "dataset": "digits"}',
               "commands": b'{"tinysift_run": 1, "stages": {}, "commands": 5}',
               # nested entries of the wrong type or missing (were AttributeError, KeyError,
               # TypeError, ValueError on `export`)
               "command": b'{"tinysift_run": 1, "stages": {}, "commands": [5]}',
               "argv": b'{"tinysift_run": 1, "stages": {}, "commands": [{"argv": 5}]}',
               "name": b'{"tinysift_run": 1, "stages": {}, "dataset": {"name": 5, "hash": "h"}}',
               "no_name": b'{"tinysift_run": 1, "stages": {}, "dataset": {"hash": "h"}}',
               "no_hash": b'{"tinysift_run": 1, "stages": {}, "dataset": {"name": "d"}}',
               "noise": b'{"tinysift_run": 1, "stages": {}, "dataset": {"name": "d", "hash": '
                        b'"h", "label_noise": "abc"}}',
               "outputs": b'{"tinysift_run": 1, "stages": {"train": {"outputs": []}}}',
               "params": b'{"tinysift_run": 1, "stages": {"train": {"params": "x"}}}',
               "results": b'{"tinysift_run": 1, "stages": {"train": {"results": "x"}}}',
               "set_file": b'{"tinysift_run": 1, "stages": {"train": {"results": {"set_file": '
                           b'{"path": 5}}}}}'}
    for name, data in damaged.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_bytes(data)
        with pytest.raises(TinysiftError, match=f"{name}/manifest.json is (not valid|damaged)"):
            Run(tmp_path / name)
        assert main(["quantize", "--run", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert "manifest.json" in err and "unexpected" not in err, err
        assert (tmp_path / name / "manifest.json").read_bytes() == data
    (tmp_path / "folder" / "manifest.json").mkdir(parents=True)
    with pytest.raises(TinysiftError, match="folder/manifest.json cannot be read"):
        Run(tmp_path / "folder")


def test_a_folder_of_someone_elses_files_is_not_taken_over(tmp_path):
    """`train --out userdir` on a folder holding the user's own model.keras (no manifest)
    overwrote it; a folder with other files only (a selection the user made for it, the
    adapt base's old.npz) is still a fine run folder, except for the stage that would
    overwrite that selection."""
    from tinysift.cli import main
    from tinysift.errors import TinysiftError

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "model.keras").write_text("my precious model")
    (tmp_path / "mine" / "trainset.npz").write_text("x")
    with pytest.raises(TinysiftError, match=r"holds model.keras, trainset.npz but no "
                                            r"manifest.json: not a tinysift run folder"):
        Run(tmp_path / "mine")
    assert main(["train", "--dataset", "digits", "--epochs", "1", "--out",
                 str(tmp_path / "mine")]) == 2
    # left as it was: the user's files, and no lock file of ours
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["model.keras",
                                                                     "trainset.npz"]
    assert (tmp_path / "mine" / "model.keras").read_text() == "my precious model"
    # a set of `tinysift run`'s (OUT/select/vq-600/selection.npz) trains in its folder
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "selection.npz").write_text("x")
    (tmp_path / "other" / "old.npz").write_text("x")
    Run(tmp_path / "other")
    # ... but `prune --out` there overwrote the user's own selection.npz: its stage
    # protects what it writes (condense: condensed.npz)
    with pytest.raises(TinysiftError, match=r"holds selection.npz but no manifest.json"):
        Run(tmp_path / "other", writes=("selection.npz",))
    assert main(["prune", "--dataset", "digits", "--method", "random", "--keep", "20",
                 "--out", str(tmp_path / "other")]) == 2
    assert (tmp_path / "other" / "selection.npz").read_text() == "x"
    (tmp_path / "other" / "condensed.npz").write_text("y")
    assert main(["condense", "--dataset", "digits", "--method", "random", "--per-class",
                 "1", "--out", str(tmp_path / "other")]) == 2
    assert (tmp_path / "other" / "condensed.npz").read_text() == "y"


def test_the_advice_for_a_damaged_manifest_is_followed_without_a_second_refusal(tmp_path):
    """A damaged manifest said "move it away to start afresh"; in a folder of models the next
    command then refused the folder as someone else's. The advice is another folder (or all
    of this one's files moved away), which works."""
    from tinysift.errors import TinysiftError

    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "manifest.json").write_text("{torn")
    (tmp_path / "r" / "model.keras").write_text("x")
    with pytest.raises(TinysiftError, match=r"start afresh in another folder .*or move every "
                                            r"file of this one away") as err:
        Run(tmp_path / "r")
    assert "move it away" not in str(err.value)


def test_artifacts_are_ordinary_readable_files(tmp_path):
    """Atomic writes go through mkstemp, which creates 0600: every artifact is made 0644,
    as a plain open() would (a run folder shared with a colleague or a CI job is readable)."""
    path = atomic_write_json(tmp_path / "r" / "x.json", {"a": 1})
    assert path.stat().st_mode & 0o777 == 0o644


def test_stage_keys_do_not_depend_on_the_order_of_parameters():
    """A stage is fresh again for the same parameters given in another order (a settings
    table, a CLI building its dict differently): keys hash the JSON with sorted keys."""
    from tinysift.runs import json_hash, stage_key

    assert json_hash({"a": 1, "b": [2, 3]}) == json_hash({"b": [2, 3], "a": 1})
    assert stage_key({"keep": 0.1, "method": "vq"}, {"data": "h", "model": "m"}) == \
        stage_key({"method": "vq", "keep": 0.1}, {"model": "m", "data": "h"})


def test_label_noise_tells_datasets_apart_and_a_noisy_run_resumes(tmp_path):
    """Records of the same content hash differ by their label noise (noise too small to
    flip a label leaves the hash unchanged); a record without one has none; and a stage of
    the folder's own noisy dataset is not refused."""
    from tinysift.errors import StageError
    from tinysift.runs import same_dataset

    assert same_dataset({"hash": "h"}, {"hash": "h", "label_noise": 0.0})
    assert not same_dataset({"hash": "h", "label_noise": 0.2}, {"hash": "h"})
    assert not same_dataset({"hash": "h", "label_noise": 0.2}, {"hash": "g", "label_noise": 0.2})
    run = Run(tmp_path / "r")
    run.set("dataset", {"name": "digits", "hash": "h", "label_noise": 0.2, "noise_seed": 3})
    run.refuse_other_dataset("digits", "h", label_noise=0.2, noise_seed=3)  # its own: fine
    with pytest.raises(StageError, match="label noise 0.2"):
        run.refuse_other_dataset("digits", "h", label_noise=0.0)


def test_one_dataset_rule_lets_only_train_retrain_its_source_changed_in_place(tmp_path):
    """One rule for every stage: another source, other noise or another noise draw is
    refused; the folder's own source with new content (a user's file fixed, an adapt run's
    scenario rewritten) is refused to prune and condense (their set would no longer match
    its model) and taken by train (``same_source_may_change``), whose key holds the hash."""
    from tinysift.errors import StageError

    run = Run(tmp_path / "r")
    run.set("dataset", {"name": "npz:d.npz", "hash": "h", "label_noise": 0.0})
    run.refuse_other_dataset("npz:d.npz", "h")  # its own, either way
    run.refuse_other_dataset("npz:d.npz", "h", same_source_may_change=True)
    run.refuse_other_dataset("npz:d.npz", "g", same_source_may_change=True)  # changed in place
    with pytest.raises(StageError, match=r"holds a run on npz:d.npz \(hash h, label noise 0\)"):
        run.refuse_other_dataset("npz:d.npz", "g")
    for other in ({"name": "digits"}, {"label_noise": 0.2, "noise_seed": 0}):
        with pytest.raises(StageError, match="use another folder"):
            run.refuse_other_dataset(**{"name": "npz:d.npz", "content_hash": "g", **other},
                                     same_source_may_change=True)
    run.set("dataset", {"name": "digits", "hash": "h", "label_noise": 0.2, "noise_seed": 3})
    for may_change in (False, True):
        with pytest.raises(StageError, match="drawn with seed 3; seed 4 draws other noisy"):
            run.refuse_other_dataset("digits", "g", 0.2, noise_seed=4,
                                     same_source_may_change=may_change)


def test_one_output_folder_rule_checks_or_creates(tmp_path):
    """Run folders (made at once) and the engine's output folders (made once the work is
    done) share one check: a file at the folder or above it is refused naming that file
    and the option (it was "cannot create the run folder X/run (Not a directory)" for a run
    folder under a file); without ``create`` nothing is made."""
    from tinysift.errors import TinysiftError
    from tinysift.runs import out_folder

    assert out_folder(tmp_path / "a" / "b", "--out-dir", create=False) == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()
    assert out_folder(tmp_path / "a" / "b", "--out/--run", create=True).is_dir()
    (tmp_path / "f").write_text("x")
    for folder in (tmp_path / "f", tmp_path / "f" / "run" / "x"):
        for create, flag in ((False, "--out-dir"), (True, "--out/--run")):
            said = f"{tmp_path / 'f'} is a file, not a folder ({flag}): choose another"
            with pytest.raises(TinysiftError, match=f"^{re.escape(said)}"):
                out_folder(folder, flag, create=create)
    with pytest.raises(TinysiftError, match="is a file, not a folder"):
        Run(tmp_path / "f" / "run")


def test_the_lock_is_the_paths_own_file_and_a_moved_folder_releases_cleanly(tmp_path,
                                                                          monkeypatch):
    """A holder deletes the lock file of a folder without a manifest as it leaves; a process
    that had opened the file before then locked the deleted file while the next one locked a
    new file: two writers. The lock is taken on the path's own file (opened again if not).
    And a folder moved while locked made the release an unexpected FileNotFoundError."""
    import os
    import shutil

    from tinysift import runs

    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("x")
    with runs.run_lock(folder):
        stale = os.open(folder / runs.LOCK_FILE, os.O_RDWR)  # opened while held
    assert not (folder / runs.LOCK_FILE).exists()  # removed: not a run folder
    real_open, calls = os.open, []

    def first_stale(path, *args, **kwargs):
        calls.append(path)
        return stale if len(calls) == 1 else real_open(path, *args, **kwargs)

    monkeypatch.setattr(runs.os, "open", first_stale)
    with runs.run_lock(folder):
        fd = runs._held[str(folder.resolve())][0]
        assert fd != stale and len(calls) == 2
        assert os.path.samestat(os.fstat(fd), os.stat(folder / runs.LOCK_FILE))
    monkeypatch.setattr(runs.os, "open", real_open)
    with runs.run_lock(folder):
        (folder / "manifest.json").write_text("{}")
        shutil.move(folder, tmp_path / "moved")
    assert (tmp_path / "moved" / runs.LOCK_FILE).exists()


def test_a_stage_record_holds_its_key_inputs_results_and_every_output(tmp_path):
    """A stage is fresh for the key its caller computes (``stage_key(params, inputs)``, as
    the stages do), not for another key; every output's hash is checked, not only the
    first; the record keeps the inputs, the results and the timing it ran with."""
    from tinysift.runs import file_hash, stage_key

    run = Run(tmp_path / "r")
    params, inputs = {"keep": 10}, {"data": "h1"}
    with run.stage("prune", params, inputs) as rec:
        (run / "a.txt").write_text("a")
        (run / "b.txt").write_text("b")
        rec["outputs"] += ["a.txt", "b.txt"]
        rec["results"]["kept"] = 10
    key = stage_key(params, inputs)
    again = Run(tmp_path / "r")
    assert again.is_fresh("prune", key)
    assert not again.is_fresh("prune", stage_key(params, {"data": "h2"}))  # other data
    assert not again.is_fresh("prune", stage_key({"keep": 11}, inputs))
    info = json.loads((tmp_path / "r" / "manifest.json").read_text())["stages"]["prune"]
    assert info["inputs"] == inputs and info["params"] == params
    assert info["results"] == {"kept": 10}
    assert info["outputs"] == {"a.txt": file_hash(run / "a.txt"),
                               "b.txt": file_hash(run / "b.txt")}
    assert isinstance(info["seconds"], float) and info["seconds"] >= 0
    (run / "b.txt").write_text("changed")  # the second output only
    assert not Run(tmp_path / "r").is_fresh("prune", key)


def test_a_stage_killed_midway_is_running_on_disk_and_a_failure_is_saved(tmp_path):
    """While a stage runs the manifest on disk says so (a run killed then is not taken as
    done: it runs again); a stage that raises, a Ctrl-C (KeyboardInterrupt) included, is
    saved as ``failed: <exception type>``."""
    from tinysift.runs import stage_key

    run = Run(tmp_path / "r")
    with run.stage("train", {"epochs": 1}, {"data": "h"}):
        (run / "model.keras").write_text("half written")
        on_disk = json.loads((tmp_path / "r" / "manifest.json").read_text())
        assert on_disk["stages"]["train"]["status"] == "running"
        # what a resumed run sees if this process were killed here
        assert not Run(tmp_path / "r").is_fresh("train", stage_key({"epochs": 1}, {"data": "h"}))
    for exc, name in ((RuntimeError("boom"), "RuntimeError"),
                      (KeyboardInterrupt(), "KeyboardInterrupt")):
        with pytest.raises(type(exc)), run.stage("quantize", {}, {}):
            raise exc
        on_disk = json.loads((tmp_path / "r" / "manifest.json").read_text())
        assert on_disk["stages"]["quantize"]["status"] == f"failed: {name}"


def test_record_command_saves_the_argv_it_is_given(tmp_path):
    """The command is recorded as given (an empty argv too, not the test runner's) and is
    on disk at once."""
    run = Run(tmp_path / "r")
    run.record_command(["tinysift", "train", "--epochs", "3"])
    run.record_command([])
    on_disk = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert [c["argv"] for c in on_disk["commands"]] == [["tinysift", "train", "--epochs", "3"],
                                                        []]


def test_someone_elses_manifest_and_more_damaged_entries_are_refused(tmp_path):
    """A manifest.json without ``tinysift_run`` or whose stages are not a table is someone
    else's; entries of the wrong type (a bool for a count, a string seed, a stage's status
    or inputs, its results' dataset record) are damage; a folder without a manifest holding
    guided.json or an export/ is someone's own."""
    from tinysift.errors import TinysiftError

    foreign = {"other": {"name": "x", "stages": {}},
               "stages_list": {"tinysift_run": 1, "stages": []}}
    damaged = {"bool_count": {"dataset": {"name": "d", "hash": "h", "train": True}},
               "seed_str": {"dataset": {"name": "d", "hash": "h", "noise_seed": "3"}},
               "status": {"stages": {"train": {"status": 5}}},
               "inputs": {"stages": {"train": {"inputs": []}}},
               "res_dataset": {"stages": {"train": {"results": {"dataset": "digits"}}}},
               "res_dataset_hash": {"stages": {"train": {"results": {"dataset": {"hash": 5}}}}}}
    for name, manifest in {**foreign, **{k: {"tinysift_run": 1, "stages": {}, **v}
                                         for k, v in damaged.items()}}.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps(manifest))
        said = "is not a tinysift run folder" if name in foreign else "manifest.json is damaged"
        with pytest.raises(TinysiftError, match=said):
            Run(tmp_path / name)
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "guided.json").write_text("{}")
    (tmp_path / "e" / "export").mkdir(parents=True)
    for name, held in (("g", "guided.json"), ("e", "export")):
        with pytest.raises(TinysiftError, match=f"holds {held} but no manifest.json"):
            Run(tmp_path / name)


def test_noise_seeds_matter_only_under_noise_and_only_when_recorded(tmp_path):
    """Another noise seed is another draw only under label noise and only against a
    recorded seed: train takes its own source changed in place without noise whatever the
    seed, and with noise when the record has no seed (nothing to tell the draws apart)."""
    run = Run(tmp_path / "r")
    run.set("dataset", {"name": "npz:d.npz", "hash": "h", "label_noise": 0.0, "noise_seed": 1})
    run.refuse_other_dataset("npz:d.npz", "g", 0.0, noise_seed=2, same_source_may_change=True)
    run.set("dataset", {"name": "npz:d.npz", "hash": "h", "label_noise": 0.2})
    run.refuse_other_dataset("npz:d.npz", "g", 0.2, noise_seed=2, same_source_may_change=True)


def test_json_artifacts_take_numpy_values_and_paths(tmp_path):
    """Stage results hold numpy scalars, arrays and paths: written as plain JSON values."""
    from pathlib import Path

    atomic_write_json(tmp_path / "x.json", {"n": np.int64(3), "f": np.float32(0.5),
                                            "a": np.arange(3), "p": Path("a/b")})
    assert json.loads((tmp_path / "x.json").read_text()) == {"n": 3, "f": 0.5, "a": [0, 1, 2],
                                                             "p": "a/b"}


def test_module_source_hash_counts_a_renamed_module(tmp_path, monkeypatch):
    """A module renamed inside a named package is other code (its imports change), though
    every file's bytes are the same."""
    import importlib
    import sys

    from tinysift.runs import module_source_hash

    pkg = tmp_path / "tsren"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    try:
        first = module_source_hash(("tsren",))
        (pkg / "a.py").rename(pkg / "b.py")
        assert module_source_hash(("tsren",)) != first
    finally:
        for name in [m for m in sys.modules if m == "tsren" or m.startswith("tsren.")]:
            del sys.modules[name]


def test_a_killed_holders_longer_record_does_not_garble_the_next_holders(tmp_path):
    """A holder killed while it held the lock leaves its record in the lock file (no tidy
    runs); the next holder replaces it whole, so a third process is told the live holder's
    pid, not a "pid ?" from a garbled record. And a released run folder's lock file names
    no holder."""
    import signal

    from tinysift.errors import RunBusy
    from tinysift.runs import LOCK_FILE, MANIFEST, run_lock

    folder = tmp_path / "r"
    folder.mkdir()
    (folder / MANIFEST).write_text("{}")
    (folder / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "gone",
                                                "command": "x" * 5000, "what": "train"}))
    proc = _holder(folder)
    try:
        with pytest.raises(RunBusy, match=f"pid {proc.pid} "), run_lock(folder, "test"):
            pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with run_lock(folder, "test"):
        assert json.loads((folder / LOCK_FILE).read_text())["what"] == "test"
    assert (folder / LOCK_FILE).read_text() == ""


def test_a_lock_file_of_another_shape_is_still_a_clear_refusal(tmp_path):
    """A lock held by a process whose file holds JSON that is not a record (another program,
    an old format) is refused like any other, with unknown fields, not an AttributeError;
    the refusal leaves no file descriptor open (a retrying caller would run out of them)."""
    import os
    import subprocess
    import sys

    from tinysift.errors import RunBusy
    from tinysift.runs import LOCK_FILE, run_lock

    folder = tmp_path / "r"
    folder.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nos.write(fd, b'[1, 2]')\n"
         "print('held', flush=True)\ntime.sleep(120)\n", str(folder / LOCK_FILE)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        fds = len(os.listdir("/proc/self/fd"))
        with pytest.raises(RunBusy, match=r"in use by another tinysift process \(pid \? on \?"), \
                run_lock(folder, "test"):
            pass
        assert len(os.listdir("/proc/self/fd")) == fds  # the refused open is closed
    finally:
        proc.kill()
        proc.wait()


def test_file_lock_removes_its_file_on_release_and_stays_held_when_nested(tmp_path):
    """file_lock's file is made for it and removed on release (the last hold's); while held,
    the file names this process."""
    import os

    from tinysift.runs import file_lock

    path = tmp_path / "results.lock"
    with file_lock(path, "bench", str, str):
        with file_lock(path, "bench again", str, str):
            pass
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists()


def test_locks_run_checks_the_arguments_before_the_folder_is_made(tmp_path):
    """``locks_run``'s ``before`` sees the call's arguments by name and runs before the lock
    makes the folder: its refusal leaves no folder behind; the function runs under the lock."""
    from tinysift import runs
    from tinysift.errors import TinysiftError

    seen = []

    def refuse_small(arguments: dict) -> None:
        seen.append(dict(arguments))
        if arguments["n"] < 1:
            raise TinysiftError("n must be at least 1")

    @runs.locks_run("out", before=refuse_small)
    def stage(out, n=1):
        return str(runs.Path(out).resolve()) in runs._held

    with pytest.raises(TinysiftError, match="at least 1"):
        stage(tmp_path / "new", n=0)
    assert not (tmp_path / "new").exists()
    assert seen == [{"out": tmp_path / "new", "n": 0}]
    assert stage(tmp_path / "new", n=2) is True


def test_file_hash_reads_the_whole_file(tmp_path):
    """An output changed past its first MiB (a model's last weights) is another hash: the
    stage is not taken as fresh."""
    data = bytearray(3 << 20)
    (tmp_path / "big.bin").write_bytes(bytes(data))
    run = Run(tmp_path)
    with run.stage("s", {}, {}) as rec:
        rec["outputs"].append("big.bin")
    data[-1] = 1
    (tmp_path / "big.bin").write_bytes(bytes(data))
    assert not Run(tmp_path).is_fresh("s", run.stage_info("s")["key"])


def test_stage_keys_take_paths_in_parameters():
    """A parameter holding a Path (a --set file) keys by its text: two paths, two keys."""
    from pathlib import Path

    from tinysift.runs import stage_key

    assert stage_key({"set": Path("a.npz")}, None) == stage_key({"set": Path("a.npz")}, {})
    assert stage_key({"set": Path("a.npz")}, None) != stage_key({"set": Path("b.npz")}, None)


def test_a_set_file_record_without_a_string_hash_is_damage(tmp_path):
    """A stage's ``results.set_file.hash`` that is not a string is a hand edit."""
    from tinysift.errors import TinysiftError

    (tmp_path / "manifest.json").write_text(json.dumps(
        {"tinysift_run": 1, "stages": {"train": {"results": {"set_file": {"path": "s.npz",
                                                                          "hash": 5}}}}}))
    with pytest.raises(TinysiftError, match=r"results.set_file.hash.*is damaged|is damaged "
                                            r"\(stage 'train' results.set_file.hash"):
        Run(tmp_path)


def test_a_record_without_label_noise_has_none(tmp_path):
    """A dataset record without ``label_noise`` (an older manifest) has none: train takes its
    own source changed in place without noise."""
    run = Run(tmp_path / "r")
    run.set("dataset", {"name": "npz:d.npz", "hash": "h"})
    run.refuse_other_dataset("npz:d.npz", "g", same_source_may_change=True)


def test_the_lock_is_one_however_the_folder_is_spelled(tmp_path):
    """Re-entrant within a process whatever the spelling (relative parts, `..`): the same
    folder (or lock file) is not a second holder refusing this process itself."""
    from tinysift.runs import LOCK_FILE, file_lock, run_lock

    (tmp_path / "x").mkdir()
    with run_lock(tmp_path / "r", "outer"), run_lock(tmp_path / "x" / ".." / "r", "inner"):
        (tmp_path / "r" / "manifest.json").write_text("{}")
    # a folder this call made, with a run in it: the lock file stays
    assert (tmp_path / "r" / LOCK_FILE).exists()
    with file_lock(tmp_path / "l.lock", "outer", str, str), \
            file_lock(tmp_path / "x" / ".." / "l.lock", "inner", str, str):
        pass
    assert not (tmp_path / "l.lock").exists()


def test_a_forked_child_does_not_think_it_holds_its_parents_lock(tmp_path):
    """A child forked while its parent holds a run folder's lock does not hold it: taking
    the lock there is refused while the parent holds it."""
    import subprocess
    import sys

    script = ("import os, sys\nfrom tinysift.errors import RunBusy\n"
              "from tinysift.runs import run_lock\n"
              "with run_lock(sys.argv[1], 'parent'):\n"
              "    pid = os.fork()\n"
              "    if pid == 0:\n"
              "        try:\n"
              "            with run_lock(sys.argv[1], 'child'):\n"
              "                os._exit(3)\n"
              "        except RunBusy:\n"
              "            os._exit(0)\n"
              "    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "r")],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "0", out.stderr


def test_unusable_output_folder_names_are_one_clear_error(tmp_path):
    """A name over 255 bytes (an exists() that raises) and a folder the system will not make
    (sysfs refuses even root) are one TinysiftError naming the option, for the run lock too,
    not an unexpected OSError."""
    from pathlib import Path

    from tinysift.errors import TinysiftError
    from tinysift.runs import out_folder, run_lock

    long = tmp_path / ("x" * 300) / "run"
    for create in (False, True):
        with pytest.raises(TinysiftError, match=r"cannot be a folder \(--out-dir: File name too "
                                                r"long\): choose another name"):
            out_folder(long, "--out-dir", create=create)
    with pytest.raises(TinysiftError, match="cannot be a folder"), run_lock(long):
        pass
    if not Path("/sys/kernel").is_dir():
        pytest.skip("no sysfs here")
    with pytest.raises(TinysiftError, match=r"cannot create the folder /sys/tinysift-audit/run "
                                            r"\(--out/--run: Operation not permitted\)"):
        out_folder(Path("/sys/tinysift-audit/run"), "--out/--run", create=True)


def test_a_manifest_with_invalid_utf8_inside_is_not_valid_json(tmp_path):
    """Bytes that are not UTF-8 inside otherwise JSON-looking text (a torn copy) are the
    "not valid JSON" refusal, not an unexpected UnicodeDecodeError."""
    from tinysift.errors import TinysiftError

    (tmp_path / "manifest.json").write_bytes(b'{"tinysift_run": 1, "x": "\xff\xfe"}')
    with pytest.raises(TinysiftError, match="manifest.json is not valid JSON"):
        Run(tmp_path)


def test_module_source_hash_refuses_a_folder_without_sources(tmp_path, monkeypatch):
    """A named package that is only a folder (a namespace package: no ``__init__.py``, no
    origin) is a wrong name in the stage's list: ModuleNotFoundError, not a TypeError."""
    import importlib

    from tinysift.runs import module_source_hash

    (tmp_path / "tsnamespace").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    with pytest.raises(ModuleNotFoundError, match="tsnamespace"):
        module_source_hash(("tsnamespace",))


def test_a_stage_records_the_commit_and_the_cpu_it_ran_on(tmp_path):
    """The versions name the checkout's full commit (as git tells it) and the machine the
    CPU's model name (as /proc/cpuinfo tells it)."""
    import subprocess
    from pathlib import Path

    import tinysift

    run = Run(tmp_path / "r")
    with run.stage("s", {}, {}):
        pass
    info = run.stage_info("s")
    head = subprocess.run(["git", "-C", str(Path(tinysift.__file__).parent), "rev-parse",
                           "HEAD"], capture_output=True, text=True).stdout.strip()
    assert info["versions"]["git"] == head
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.partition(":")[2].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        assert info["machine"]["cpu_model"] == (names[0] if names else "")
        first = cpuinfo.read_text().split("\n\n")[0]
        family = re.search(r"^cpu family\s*:\s*(\d+)$", first, re.M)
        if family:  # x86: the generation, which the model name may not tell
            model = re.search(r"^model\s*:\s*(\d+)$", first, re.M).group(1)
            assert f"family {family.group(1)} model {model} " in info["machine"]["cpu_family"]
        else:
            assert "cpu_family" in info["machine"]


def test_the_cpu_family_reads_an_arm_or_an_x86_cpuinfo(monkeypatch):
    """The family line is built from the fields each architecture's /proc/cpuinfo has, and
    is empty where there is none (not Linux)."""
    import tinysift.runs as runs

    monkeypatch.setattr(runs, "_cpuinfo", lambda: {
        "processor": "0", "CPU implementer": "0x41", "CPU part": "0xd0c",
        "CPU revision": "1"})
    assert runs._cpu_family() == "implementer 0x41 part 0xd0c revision 1"
    monkeypatch.setattr(runs, "_cpuinfo", lambda: {
        "vendor_id": "GenuineIntel", "cpu family": "6", "model": "143",
        "model name": "Intel(R) Xeon(R) Processor", "stepping": "8"})
    assert runs._cpu_family() == "GenuineIntel family 6 model 143 stepping 8"
    monkeypatch.setattr(runs, "_cpuinfo", dict)
    assert runs._cpu_family() == "" and runs._cpu_model() == ""


def test_a_null_command_list_or_stage_table_is_damage(tmp_path):
    """tinysift never writes null for the command list or a stage's params, inputs, outputs,
    results or status: a hand edit to null passed the damage check, and the next command
    stopped on an AttributeError (record_command's append, is_fresh's outputs, the checks'
    results). Now the damaged-manifest refusal; a missing entry is still fine."""
    from tinysift.errors import TinysiftError

    damaged = {"commands": {"commands": None},
               **{field: {"stages": {"train": {"status": "done", "key": "k", field: None}}}
                  for field in ("params", "inputs", "outputs", "results", "status")}}
    for name, extra in damaged.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(
            json.dumps({"tinysift_run": 1, "stages": {}, **extra}))
        with pytest.raises(TinysiftError, match=f"{name}/manifest.json is damaged"):
            Run(tmp_path / name)
    (tmp_path / "missing" / "manifest.json").parent.mkdir()
    (tmp_path / "missing" / "manifest.json").write_text(
        json.dumps({"tinysift_run": 1, "stages": {"train": {"status": "running", "key": "k"}}}))
    run = Run(tmp_path / "missing")
    run.record_command(["tinysift", "train"])
    assert not run.is_fresh("train", "k")
