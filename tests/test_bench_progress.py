"""The benches' progress log (tinysift.bench.progress.ProgressLog): resume by key, torn
lines, and the stamp that makes device points rerun when the firmware changed."""

from __future__ import annotations

import json

from tinysift.bench.progress import ProgressLog


def test_resume_and_torn_line(tmp_path):
    log = ProgressLog({"a": 1}, tmp_path, "bench", point="point")
    log.add(0, "random", "10", acc=0.5)
    log.path.write_text(log.path.read_text() + '{"seed": 0, "meth')  # killed mid-line
    again = ProgressLog({"a": 1}, tmp_path, "bench", point="point")
    assert again.get(0, "random", "10")["acc"] == 0.5
    again.add(1, "random", "10", acc=0.6)
    assert ProgressLog({"a": 1}, tmp_path, "bench", point="point").get(1, "random", "10")
    # another configuration: another file, nothing done
    assert ProgressLog({"a": 2}, tmp_path, "bench", point="point").get(0, "random", "10") is None


def test_stamp_reruns_records_of_another_firmware(tmp_path):
    old = ProgressLog({"a": 1}, tmp_path, "bench", point="point", stamp={"firmware": "f1"})
    old.add(0, "random", "10:head", acc=0.5, energy_mj=200.0)
    rec = json.loads(old.path.read_text().splitlines()[0])
    assert rec["firmware"] == "f1" and rec["energy_mj"] == 200.0
    same = ProgressLog({"a": 1}, tmp_path, "bench", point="point", stamp={"firmware": "f1"})
    assert same.get(0, "random", "10:head")["acc"] == 0.5 and same.stale == 0
    # a changed firmware: the same file (the configuration is the same), the point not done
    new = ProgressLog({"a": 1}, tmp_path, "bench", point="point", stamp={"firmware": "f2"})
    assert new.path == old.path and new.get(0, "random", "10:head") is None
    assert new.stale == 1
    new.add(0, "random", "10:head", acc=0.5, energy_mj=150.0)
    # the rerun's record wins for f2, the old one still counts for f1
    assert ProgressLog({"a": 1}, tmp_path, "bench", point="point",
                       stamp={"firmware": "f2"}).get(0, "random", "10:head")["energy_mj"] == 150
    assert ProgressLog({"a": 1}, tmp_path, "bench", point="point",
                       stamp={"firmware": "f1"}).get(0, "random", "10:head")["energy_mj"] == 200
    # records written before stamps existed count as not done
    plain = ProgressLog({"b": 1}, tmp_path, "bench", point="point")
    plain.add(0, "random", "5:head", acc=0.1)
    assert ProgressLog({"b": 1}, tmp_path, "bench", point="point",
                       stamp={"firmware": "f1"}).get(0, "random", "5:head") is None


def test_changed_method_defaults_rerun_that_method_only(tmp_path):
    params = {"rs2": {}, "vq": {"alpha": 1.0, "dims": (16, 8)}}
    log = ProgressLog({"a": 1}, tmp_path, "bench", point="budget", method_params=params)
    log.add(0, "rs2", "0.5", acc=0.8)
    log.add(0, "vq", "0.5", acc=0.9)
    log.add(0, "_wall", "seed", seconds=3.0)  # not a method: no params
    again = ProgressLog({"a": 1}, tmp_path, "bench", point="budget", method_params=params)
    assert again.get(0, "vq", "0.5")["params"] == {"alpha": 1.0, "dims": [16, 8]}
    assert again.get(0, "_wall", "seed") and again.stale == 0  # the tuple survived JSON
    changed = ProgressLog({"a": 1}, tmp_path, "bench", point="budget",
                          method_params={**params, "vq": {"alpha": 0.5, "dims": (16, 8)}})
    assert changed.path == log.path and changed.stale == 1
    assert changed.get(0, "vq", "0.5") is None and changed.get(0, "rs2", "0.5")["acc"] == 0.8


def test_a_seeds_wall_time_stops_counting_once_a_training_is_logged_after_it(tmp_path):
    """A seed's wall time describes the trainings it ran in one go: a method rerun since
    (a changed default, --rerun) makes it describe records no longer shown, so it goes."""
    params = {"flow": {"rule": "old"}}
    log = ProgressLog({"a": 1}, tmp_path, "bench", point="budget", method_params=params)
    for seed in (0, 1):
        log.add(seed, "flow", "0.5", acc=0.8)
        log.add_seed_wall(seed, 60.0)
    assert log.seed_walls(2) == [60.0, 60.0]
    changed = ProgressLog({"a": 1}, tmp_path, "bench", point="budget",
                          method_params={"flow": {"rule": "new"}})
    assert changed.seed_walls(2) == [60.0, 60.0]  # nothing rerun yet
    changed.add(0, "flow", "0.5", acc=0.81)  # seed 0's flow reruns
    assert changed.seed_walls(2) == [None, 60.0]
    reread = ProgressLog({"a": 1}, tmp_path, "bench", point="budget",
                         method_params={"flow": {"rule": "new"}})
    assert reread.seed_walls(2) == [None, 60.0] and reread.get(0, "flow", "0.5")["acc"] == 0.81
    assert changed.stale == 2 and reread.stale == 1  # seed 0's old record was trained again


def test_forgotten_methods_train_again_and_their_new_records_win(tmp_path):
    """`bench guided --rerun full`: the method's logged trainings no longer count, the file
    keeps them, and the record appended by the rerun is the one a later read sees."""
    log = ProgressLog({"a": 1}, tmp_path, "bench", point="budget")
    log.add(0, "full", "1", acc=0.80)
    log.add(0, "flow", "0.5", acc=0.81)
    again = ProgressLog({"a": 1}, tmp_path, "bench", point="budget")
    assert again.forget(("full",)) == 1
    assert again.get(0, "full", "1") is None and again.get(0, "flow", "0.5")["acc"] == 0.81
    again.add(0, "full", "1", acc=0.79)
    lines = log.path.read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["acc"] == 0.80  # nothing lost
    assert ProgressLog({"a": 1}, tmp_path, "bench", point="budget").get(0, "full", "1")[
        "acc"] == 0.79


def test_a_rerun_killed_halfway_resumes_without_forgetting_again(tmp_path):
    """`--rerun flow` killed after one of its two points: opening the log again (the
    command without --rerun) counts the point the rerun wrote, and not the older record of
    the point it had not reached yet, which trains again; other methods keep theirs."""
    log = ProgressLog({"a": 1}, tmp_path, "bench", point="budget")
    for at, acc in (("0.3", 0.70), ("0.5", 0.71)):
        log.add(0, "flow", at, acc=acc)
    log.add(0, "rs2", "0.5", acc=0.60)
    rerun = ProgressLog({"a": 1}, tmp_path, "bench", point="budget")
    assert rerun.forget(("flow",)) == 2
    rerun.add(0, "flow", "0.3", acc=0.72)  # then the kill
    resumed = ProgressLog({"a": 1}, tmp_path, "bench", point="budget")
    assert resumed.get(0, "flow", "0.3")["acc"] == 0.72
    assert resumed.get(0, "flow", "0.5") is None  # the old 0.71 no longer counts
    assert resumed.get(0, "rs2", "0.5")["acc"] == 0.60


def test_guided_bench_stamps_every_methods_parameters():
    from tinysift.bench.guided import GuidedBenchConfig, bench_sampler_params

    cfg = GuidedBenchConfig(dataset="digits", methods=("rs2", "vq"),
                            method_params={"vq": {"alpha": 0.5}})
    params = bench_sampler_params(cfg)
    assert set(params) == {"full", "rs2", "vq"} and "seed" not in params["vq"]
    assert params["vq"]["alpha"] == 0.5 and params["vq"]["per_code"] == 50  # a default


def test_guided_curves_follow_the_records_whose_parameters_count(tmp_path):
    """A curve logged with other parameters does not replace the curve of the parameters the
    log counts (a default set back: the earlier records and their curves count again)."""
    from tinysift.bench.guided import _append_curve, _load_curves

    epochs = [{"spent": 50, "curve_acc": 0.7, "samples": 50}]
    now = {"flow": {"judge": "none"}}
    log = ProgressLog({"a": 1}, tmp_path, "bench", point="budget", method_params=now)
    _append_curve(log, 0, "flow", "0.5", epochs, 100)
    other = ProgressLog({"a": 1}, tmp_path, "bench", point="budget",
                        method_params={"flow": {"judge": "knn"}})
    _append_curve(other, 0, "flow", "0.5", [{**epochs[0], "curve_acc": 0.9}], 100)
    assert _load_curves(log)[(0, "flow", "0.5")] == [[0.5, 0.7]]
    assert _load_curves(other)[(0, "flow", "0.5")] == [[0.5, 0.9]]


def test_guided_bench_keeps_the_committed_logs_keys_and_separates_the_batch_options(tmp_path):
    """`--keep-steps` and `--batch` came after the committed guided benches: at their
    defaults the bench finds its committed log (the key is what it was); set, they log apart."""
    from pathlib import Path

    from tinysift.bench.guided import GuidedBenchConfig, _progress_log
    from tinysift.data import load_dataset

    committed = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "progress"
    data_hash = load_dataset("digits").content_hash

    def log(directory, **options):
        cfg = GuidedBenchConfig(dataset="digits", epochs=20, progress_dir=directory, **options)
        return _progress_log(cfg, data_hash, "guided_digits")

    default = log(committed)
    assert default.path.exists() and len(default.done) > 0
    paths = {log(tmp_path, **options).path.name
             for options in ({}, {"keep_steps": True}, {"batch": 64},
                             {"batch": 64, "keep_steps": True})}
    assert len(paths) == 4 and default.path.name in paths
