"""The benches' progress log (tinysift.bench.progress.ProgressLog): resume by key, torn
lines, and the stamp that makes device points rerun when the firmware changed."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_blank_lines_in_a_log_are_no_skipped_records(tmp_path):
    """A blank line (a hand edit's) is no record and no torn one: the resume line does not
    say lines were skipped, whose trainings would run again."""
    log = ProgressLog({"a": 1}, tmp_path, "bench")
    log.add(0, "vq", "0.1", acc=0.5)
    log.path.write_text(log.path.read_text() + "\n  \n")
    log.add(1, "vq", "0.1", acc=0.6)
    again = ProgressLog({"a": 1}, tmp_path, "bench")
    assert again.unreadable == 0
    assert again.resuming() == f"resuming: 2 trainings already in {again.path}"


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


def test_a_rerun_forgets_the_seeds_it_runs_only(tmp_path):
    """`--rerun vq --seeds 1` forgot every seed's vq: a later `--seeds 2` trained seed 1's
    vq again. A marker of before seeds were recorded still covers every seed."""
    import json

    log = ProgressLog({"a": 1}, tmp_path, "bench", point="budget")
    for seed in (0, 1):
        log.add(seed, "vq", "0.5", acc=0.7)
    assert ProgressLog({"a": 1}, tmp_path, "bench", point="budget").forget(("vq",), 1) == 1
    after = ProgressLog({"a": 1}, tmp_path, "bench", point="budget")
    assert after.get(0, "vq", "0.5") is None and after.get(1, "vq", "0.5")["acc"] == 0.7
    with open(log.path, "a") as f:
        f.write(json.dumps({"forget": ["vq"]}) + "\n")  # an unscoped marker of an older run
    assert ProgressLog({"a": 1}, tmp_path, "bench", point="budget").get(1, "vq", "0.5") is None


def test_guided_bench_stamps_every_methods_parameters():
    from tinysift.bench.guided import GuidedBenchConfig, bench_sampler_params

    cfg = GuidedBenchConfig(dataset="digits", methods=("rs2", "vq"),
                            method_params={"vq": {"alpha": 0.5}})
    params = bench_sampler_params(cfg)
    assert set(params) == {"full", "rs2", "vq"} and "seed" not in params["vq"]
    assert params["vq"]["alpha"] == 0.5 and params["vq"]["per_code"] == 50  # a default


def test_guided_bench_trains_each_method_with_its_given_parameters(tmp_path, monkeypatch):
    """`bench guided --method-params`: the trainings themselves run with them (not only the
    stamp), the recipe line says so, and the bench logs apart from one at the defaults."""
    import tinysift.guided.loop as loop
    from tinysift.bench.guided import GuidedBenchConfig, bench_guided

    trained, real = [], loop.train_guided

    def train_guided(x, y, num_classes, sampler, *args, **kwargs):
        trained.append((sampler.name, sampler.params()))
        return real(x, y, num_classes, sampler, *args, **kwargs)

    monkeypatch.setattr(loop, "train_guided", train_guided)
    where = {"out_dir": tmp_path, "progress_dir": tmp_path / "progress"}
    cfg = GuidedBenchConfig(dataset="digits", budgets=(0.5,), methods=("flow",), seeds=1,
                            epochs=4, method_params={"flow": {"judge": "knn"}}, **where)
    res = bench_guided(cfg)
    assert [(name, p.get("judge")) for name, p in trained] == [("full-cut", None),
                                                                ("flow", "knn")]
    assert res["method_params"]["flow"]["judge"] == "knn"
    assert "flow with judge=knn" in res["recipe"]
    assert "flow with judge=knn" in (tmp_path / "guided_digits.md").read_text()
    defaults = GuidedBenchConfig(dataset="digits", budgets=(0.5,), methods=("flow",), seeds=1,
                                 epochs=4, **where)
    assert " with " not in defaults.recipe()
    # a default given explicitly is not named as a change
    assert " with " not in GuidedBenchConfig(
        methods=("flow",), method_params={"flow": {"judge": "none"}}).recipe()
    import pytest

    from tinysift.errors import BudgetError

    with pytest.raises(BudgetError, match=r"another configuration of this bench \(method_params"):
        bench_guided(defaults)  # its table would replace the first bench's
    assert len(trained) == 2
    defaults.out_dir = tmp_path / "defaults"
    bench_guided(defaults)  # nothing of the first bench counts: both train again
    # (flow at its defaults leaves the judge out of its stamp, as before the judge existed)
    assert [(name, p.get("judge")) for name, p in trained[2:]] == [("full-cut", None),
                                                                   ("flow", None)]
    # the first bench again: every record it logged holds the fields the bench reads
    # (RECORD_FIELDS), so nothing trains again
    assert bench_guided(cfg)["methods"] == res["methods"]
    assert len(trained) == 4


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


def test_guided_curves_logged_before_params_count_and_others_fill_only_a_gap(
        tmp_path: Path) -> None:
    """A curve logged before curves carried parameters counts as the log's own: a later
    curve of other parameters does not replace it. Where only a curve of other parameters
    was logged, that last one is the training's curve."""
    from tinysift.bench.guided import _append_curve, _curves_path, _load_curves
    from tinysift.bench.progress import append_json_line

    epochs = [{"spent": 50, "curve_acc": 0.9, "samples": 50}]
    log = ProgressLog({"a": 1}, tmp_path, "bench", point="budget",
                      method_params={"flow": {"judge": "none"}})
    append_json_line(_curves_path(log), {"seed": 0, "method": "flow", "budget": "0.5",
                                         "points": [[0.5, 0.6]], "sizes": [50]})
    other = ProgressLog({"a": 1}, tmp_path, "bench", point="budget",
                        method_params={"flow": {"judge": "knn"}})
    for seed in (0, 1):
        _append_curve(other, seed, "flow", "0.5", epochs, 100)
    assert _load_curves(log) == {(0, "flow", "0.5"): [[0.5, 0.6]],
                                 (1, "flow", "0.5"): [[0.5, 0.9]]}


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


def test_new_records_name_their_code_and_machine_and_results_count_them(tmp_path):
    """Every new record carries the tinysift sources' hash, the git commit and the machine,
    outside the key (the log a bench resumes is the same file); the rows behind a results
    file are counted per (source, commit, machine), records from before the stamp as
    "unrecorded", and a table says so in one line when it mixes several."""
    from tinysift.bench.progress import ProgressLog, code_and_machine
    from tinysift.bench.report import origins_lines

    log = ProgressLog({"a": 1}, tmp_path, "bench", point="keep")
    old = {"seed": 0, "method": "random", "keep": "0.1", "acc": 0.5}  # a committed record
    log.path.write_text(json.dumps(old) + "\n")
    again = ProgressLog({"a": 1}, tmp_path, "bench", point="keep")
    assert again.path == log.path and again.get(0, "random", "0.1")["acc"] == 0.5
    again.add(1, "random", "0.1", acc=0.6)
    again.add(2, "random", "0.1", acc=0.7)
    new = json.loads(log.path.read_text().splitlines()[-1])
    here = code_and_machine()
    assert {k: new[k] for k in here} == here and here["tinysift_source"] and here["machine"]
    rows = [again.get(s, "random", "0.1") for s in range(3)]
    sets = again.provenance(3, rows)["origins"]
    assert sets == [{**here, "rows": 2}, {"tinysift_source": "unrecorded", "git": "unrecorded",
                                          "machine": "unrecorded", "rows": 1}]
    (line,) = [x for x in origins_lines({"origins": sets}) if x]
    assert line.startswith("Rows from 2 code versions or machines") and "1 from unrecorded" in line
    assert origins_lines({"origins": sets[:1]}) == [] and origins_lines({}) == []


def test_a_cluster_record_names_the_worker_s_machine():
    from tinysift.bench.driver import worker_fields
    from tinysift.bench.executor import TaskDone
    from tinysift.bench.progress import machine_label

    facts = {"hostname": "w1", "cpu_model": "EPYC", "cpus": 8, "tf_threads": 8}

    class Cluster:
        remote = True
        workers = {"tcp://10.0.0.2:1234": facts}

    assert worker_fields(Cluster(), TaskDone(None, "w1")) == {
        "worker": "w1", "machine": machine_label(facts)}
    assert "w1 (EPYC, 8 CPUs)" == machine_label(facts)
    # a worker that joined later (unknown at the connection) sent its facts with the task
    late = {"hostname": "w2", "cpu_model": "Xeon", "cpus": 4, "tf_threads": 4}
    assert worker_fields(Cluster(), TaskDone(None, "w2", late))["machine"] == "w2 (Xeon, 4 CPUs)"
    # serial records keep the fields they always had: the log stamps this machine
    from tinysift.bench.executor import SerialExecutor

    assert worker_fields(SerialExecutor(), TaskDone(None, "here")) == {}


def test_a_cluster_record_names_its_worker_s_host_without_facts_and_prefers_the_task_s_own():
    """A cluster record's machine comes from the facts the task's worker sent, before those
    of a worker of that host name seen at the connection; with neither, it still names the
    worker's host."""
    from tinysift.bench.driver import worker_fields
    from tinysift.bench.executor import TaskDone

    class Cluster:
        remote = True
        workers = {"tcp://10.0.0.2:1234": {"hostname": "w1", "cpu_model": "EPYC", "cpus": 8}}

    assert worker_fields(Cluster(), TaskDone(None, "w3")) == {
        "worker": "w3", "machine": "w3 (?, ? CPUs)"}
    restarted = {"hostname": "w1", "cpu_model": "EPYC", "cpus": 16}
    assert worker_fields(Cluster(), TaskDone(None, "w1", restarted))["machine"] == (
        "w1 (EPYC, 16 CPUs)")


def _committed_condense_log(**cfg_options):
    from pathlib import Path

    from tinysift.bench.condense import CondenseBenchConfig, _progress_log

    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    res = json.loads((results / "condense_fashion-mnist.json").read_text())
    cfg = CondenseBenchConfig(dataset="fashion-mnist", progress_dir=results / "progress",
                              **cfg_options)
    return res, _progress_log(cfg, res["data_hash"], "condense_fashion-mnist")


def test_condense_log_counts_the_committed_rows_and_reruns_a_changed_condenser(monkeypatch):
    """The condense bench stamps each condenser's parameters (defaults included): its
    committed log, written before records carried them, still resumes whole (its records
    ran with today's defaults, UNSTAMPED_PARAMS), and a changed default reruns that
    condenser's points only (it silently reused them)."""
    from tinysift.bench.progress import WALL
    from tinysift.condensation.methods.flow import FlowCondenser

    res, log = _committed_condense_log()
    assert log.path.name == res["progress_log"] and log.stale == 0
    trainings = [k for k in log.done if k[1] != WALL]
    assert len(trainings) == 3 * (1 + 6 * 3)  # 3 seeds: full data, 6 methods x 3 K
    defaults = FlowCondenser.__init__.__defaults__
    monkeypatch.setattr(FlowCondenser.__init__, "__defaults__",
                        (defaults[0], defaults[1], 0.5, defaults[3]))  # temperature 0.5
    _, changed = _committed_condense_log()
    assert changed.path == log.path and changed.stale == 3 * 3  # flow's 3 K x 3 seeds
    assert all(changed.get(s, "flow", k) is None for s in range(3) for k in ("1", "10", "50"))
    assert changed.get(0, "vq", "10") == log.get(0, "vq", "10")


def test_a_torn_curve_line_does_not_swallow_the_next_curve(tmp_path):
    """The guided bench's curves file is repaired like the progress log: a kill mid-line
    left it unterminated, the next curve was appended onto it and lost with it."""
    from tinysift.bench.guided import _append_curve, _curves_path, _load_curves

    log = ProgressLog({"a": 1}, tmp_path, "bench", point="budget")
    epochs = [{"spent": 50, "curve_acc": 0.7, "samples": 50}]
    _append_curve(log, 0, "rs2", "0.5", epochs, 100)
    path = _curves_path(log)
    path.write_text(path.read_text() + '{"seed": 1, "meth')  # killed mid-line
    assert set(_load_curves(log)) == {(0, "rs2", "0.5")}  # as the bench does on start
    _append_curve(log, 1, "rs2", "0.5", epochs, 100)
    assert set(_load_curves(log)) == {(0, "rs2", "0.5"), (1, "rs2", "0.5")}


def _two_timed_seeds(tmp_path, method: str) -> ProgressLog:
    """A log of two complete seeds, each run in one go (full and ``method`` at 0.5, and the
    seed's wall time), read back as a rerun reads it."""
    log = ProgressLog({"a": 1}, tmp_path, "bench", point="budget")
    for seed in (0, 1):
        log.add(seed, "full", "1", acc=0.8)
        log.add(seed, method, "0.5", acc=0.7)
        log.add_seed_wall(seed, 60.0)
    return ProgressLog({"a": 1}, tmp_path, "bench", point="budget")


def test_a_seed_all_of_whose_trainings_rerun_gets_a_wall_time_again(tmp_path):
    """`--rerun` of every method of a seed (or all their parameters changed): its old wall
    time no longer describes anything, and the seed, run in one go again, is timed again
    (its old wall record kept it from counting as fresh)."""
    again = _two_timed_seeds(tmp_path, "flow")
    assert not again.is_fresh(0)
    again.forget(("full", "flow"))
    assert again.is_fresh(0) and again.is_fresh(1)
    again.add(0, "full", "1", acc=0.81)
    assert not again.is_fresh(0)
    again.add(0, "flow", "0.5", acc=0.71)
    again.add_seed_wall(0, 50.0)
    assert ProgressLog({"a": 1}, tmp_path, "bench", point="budget").seed_walls(1) == [50.0]


def test_budgets_that_share_a_label_are_refused(tmp_path, monkeypatch):
    """A keep or budget is logged and reported as f"{v:g}": two that print alike would
    share one record (the second reusing the first's training)."""
    import pytest

    import tinysift.data
    from tinysift.bench.guided import GuidedBenchConfig, bench_guided
    from tinysift.bench.progress import point_labels
    from tinysift.bench.prune import PruneBenchConfig, bench_prune
    from tinysift.errors import BudgetError

    def no_data(*a, **k):
        raise AssertionError("the budgets were not checked before the data was loaded")

    monkeypatch.setattr(tinysift.data, "load_dataset", no_data)

    assert point_labels((1.0, 0.5, 0.03), "--keep") == ["1", "0.5", "0.03"]
    with pytest.raises(BudgetError, match=r"--keep .*are all 0\.1 "):
        bench_prune(PruneBenchConfig(dataset="digits", keeps=(0.1, 0.1000001, 0.5),
                                     progress_dir=tmp_path, out_dir=tmp_path))
    with pytest.raises(BudgetError, match=r"--budgets .*are all 0\.5 "):
        bench_guided(GuidedBenchConfig(dataset="digits", budgets=(0.5, 0.5),
                                       progress_dir=tmp_path, out_dir=tmp_path))
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_progress_lines_are_not_wrapped_when_piped(capsys):
    """The benches printed their progress on a rich Console of their own, which wraps at 80
    columns when stderr is a pipe or a file (`bench prune ... 2> log`: a line's last "s" on a
    line of its own); every console is now tinysift.progress.make_console, unwrapped there."""
    import ast
    from pathlib import Path

    from tinysift.progress import make_console

    line = "seed 0: forgetting keep 0.1   (  144): acc 0.7528  score    6.0 s  train   2.0 s"
    make_console(stderr=True).print(line * 3)
    assert capsys.readouterr().err == line * 3 + "\n"
    package = Path(__file__).resolve().parents[1] / "host" / "tinysift"
    made = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "Console"):
                made.append(f"{path.relative_to(package)}:{node.lineno}")
    assert made == ["progress.py:" + str(next(
        i for i, text in enumerate((package / "progress.py").read_text().splitlines(), 1)
        if "return Console(" in text))], made


def _device_rows(log, points, seeds, acc) -> None:
    """One record per (seed, method, point) of an on-device bench's log, as the bench adds
    them (a shift scenario's acc_old is the bench's placeholder 0.0)."""
    from tinysift.bench.upkeep import FIELDS

    for s in seeds:
        for method, at in points:
            log.add(s, method, at, acc=acc(s, method), acc_old=0.0, acc_new=acc(s, method),
                    **{f: 1.0 for f in FIELDS if f not in ("acc_old", "acc_new")},
                    cycles=5.0, ram_plan=1000, select_seconds=0.1,
                    **({"coverage_rules": 3} if method == "coverage" else {}))


def test_upkeep_shift_results_hold_no_placeholder_old_accuracy_and_name_their_rows(tmp_path):
    """bench upkeep's shift scenario tests the new domain only: its results reported the
    logs' placeholder 0.0 as the old accuracy of every point, and coverage's difference to
    reservoir there as 0.00 ± 0.00 (bench device's results hold None). Its results now also
    name their log and the code versions and machines of their rows, as the host benches'."""
    from tinysift.bench.report import origins_lines
    from tinysift.bench.upkeep import UpkeepBenchConfig, _results, point_key
    from tinysift.bench.upkeep_report import upkeep_markdown
    from tinysift.pipeline.upkeep import UpkeepConfig, points

    up = UpkeepConfig(scenario="shift", dataset="mnist", buffers=(5,))
    log = ProgressLog({"bench": "upkeep"}, tmp_path, "upkeep_shift_mnist", point="point")
    keys = [point_key(*p) for p in points(up)]
    _device_rows(log, keys, [0], lambda s, m: 0.8 + 0.01 * (m == "coverage"))
    log.origin = {**log.origin, "machine": "another (CPU, 4 CPUs)"}  # a resumed bench
    _device_rows(log, keys, [1], lambda s, m: 0.7 + 0.03 * (m == "coverage"))
    res = _results(UpkeepBenchConfig(up, seeds=2), log, 2, 60.0)
    cov = res["points"]["coverage:5:head"]
    assert cov["acc_old"] is None and cov["old_runs"] is None
    assert "old_vs_reservoir" not in cov and cov["vs_reservoir"]["n"] == 2
    assert abs(cov["vs_reservoir"]["mean"] - 0.02) < 1e-9
    assert all(p["acc_old"] is None for p in res["points"].values())
    assert res["seed_values"] == [0, 1] and res["progress_log"] == log.path.name
    assert sorted(o["rows"] for o in res["origins"]) == [3, 3] and "data_hash" not in res
    md = upkeep_markdown(res)
    assert "| 5 | coverage | 0.7700 ± 0.0400 | +2.00 ± 12.71 |" in md
    assert [x for x in origins_lines(res) if x][0] in md


def test_upkeep_user_results_render_without_an_old_task(tmp_path):
    """The user scenario tests the new task only, as shift: its results hold no old accuracy
    (None), and the markdown table formatted that None as a number (TypeError) because it
    dropped the old/new columns for shift alone."""
    from tinysift.bench.upkeep import UpkeepBenchConfig, _results, point_key
    from tinysift.bench.upkeep_report import upkeep_markdown
    from tinysift.pipeline.upkeep import UpkeepConfig, points

    up = UpkeepConfig(scenario="user", dataset="digits", new="npz:mine.npz", buffers=(5,))
    log = ProgressLog({"bench": "upkeep"}, tmp_path, "upkeep_user_digits", point="point")
    _device_rows(log, [point_key(*p) for p in points(up)], [0],
                 lambda s, m: 0.6 + 0.1 * (m == "coverage"))
    res = _results(UpkeepBenchConfig(up, seeds=1), log, 1, 1.0)
    assert all(p["acc_old"] is None for p in res["points"].values())
    md = upkeep_markdown(res)
    assert "| 5 | coverage | 0.7000 | +10.00 |" in md and " old | new |" not in md


def test_device_user_results_render_without_an_old_task(tmp_path):
    """Results of the user scenario (new task only, as shift: NEW_TASK_ONLY) hold no old
    accuracy; the device table leaves its old columns empty as for shift, where it formatted
    None as a number."""
    from tinysift.bench.device import DeviceBenchConfig, _results
    from tinysift.bench.device_report import device_markdown

    cfg = DeviceBenchConfig(scenario="user", dataset="digits", methods=("random",),
                            sizes=(10,), updates=("head",), seeds=1)
    log = ProgressLog({"bench": "device"}, tmp_path, "device_user_digits", point="point")
    _device_rows(log, [("joint", "host"), ("none", "0:head"), ("random", "10:head")], [0],
                 lambda s, m: 0.9)
    res = _results(cfg, log, [0], {"ram_total": 1}, {"head": 1}, 60.0)
    assert all(p["acc_old"] is None for p in res["points"].values())
    md = device_markdown(res)
    assert "| random | 10 | 0.9000 | - | " in md and "old domain is not tested" in md


def test_device_results_name_their_log_and_rows_keeping_their_seed_values(tmp_path):
    from tinysift.bench.device import DeviceBenchConfig, _results
    from tinysift.bench.device_report import device_markdown

    cfg = DeviceBenchConfig(scenario="shift", dataset="mnist", methods=("random",),
                            sizes=(10,), updates=("head",), seeds=2, first_seed=3)
    log = ProgressLog({"bench": "device"}, tmp_path, "device_shift_mnist", point="point")
    _device_rows(log, [("joint", "host"), ("none", "0:head"), ("random", "10:head")], [3],
                 lambda s, m: 0.9)
    log.origin = {**log.origin, "git": "0" * 40}  # a resumed bench, other code
    _device_rows(log, [("joint", "host"), ("none", "0:head"), ("random", "10:head")], [4],
                 lambda s, m: 0.8)
    res = _results(cfg, log, [3, 4], {"ram_total": 1}, {"head": 1}, 60.0)
    assert res["seed_values"] == [3, 4] and res["progress_log"] == log.path.name
    assert sorted(o["rows"] for o in res["origins"]) == [3, 3] and "data_hash" not in res
    assert "Rows from 2 code versions or machines" in device_markdown(res)


def test_a_method_size_or_mode_given_twice_is_refused_before_any_work(tmp_path, monkeypatch):
    """`--methods random,random` (or a K, size or update mode twice) submitted its points
    twice: the condense and guided benches trained and logged each twice, bench device ran
    each row of a doubled mode twice on the board, and every bench counted the rows twice."""
    import pytest

    import tinysift.bench.upkeep
    import tinysift.data
    import tinysift.pipeline.adapt
    from tinysift.bench.condense import CondenseBenchConfig, bench_condense
    from tinysift.bench.device import DeviceBenchConfig, bench_device
    from tinysift.bench.guided import GuidedBenchConfig, bench_guided
    from tinysift.bench.progress import distinct
    from tinysift.bench.prune import PruneBenchConfig, bench_prune
    from tinysift.bench.upkeep import UpkeepBenchConfig, bench_upkeep
    from tinysift.errors import BudgetError
    from tinysift.pipeline.upkeep import UpkeepConfig

    def no_work(*a, **k):
        raise AssertionError("the lists were not checked before the work began")

    monkeypatch.setattr(tinysift.data, "load_dataset", no_work)
    monkeypatch.setattr(tinysift.pipeline.adapt, "prepare_base", no_work)
    monkeypatch.setattr(tinysift.bench.upkeep, "prepare", no_work)
    distinct(("random", "vq"), "--methods")
    where = {"progress_dir": tmp_path, "out_dir": tmp_path}
    with pytest.raises(BudgetError, match=r"--methods random,vq,random names random more "):
        bench_condense(CondenseBenchConfig(dataset="digits", methods=("random", "vq", "random"),
                                           **where))
    with pytest.raises(BudgetError, match=r"--per-class 1,5,1 names 1 more than once"):
        bench_condense(CondenseBenchConfig(dataset="digits", per_class=(1, 5, 1), **where))
    with pytest.raises(BudgetError, match=r"--methods rs2,rs2 names rs2"):
        bench_guided(GuidedBenchConfig(dataset="digits", methods=("rs2", "rs2"), **where))
    with pytest.raises(BudgetError, match=r"--methods vq,vq names vq"):
        bench_prune(PruneBenchConfig(dataset="digits", methods=("vq", "vq"), **where))
    with pytest.raises(BudgetError, match=r"--updates head,head names head"):
        bench_device(DeviceBenchConfig(dataset="digits", updates=("head", "head"),
                                       progress_dir=tmp_path, out_dir=tmp_path,
                                       work_dir=tmp_path), log=lambda _: None)
    with pytest.raises(BudgetError, match=r"--buffers 5,10,5 names 5 more than once"):
        bench_upkeep(UpkeepBenchConfig(UpkeepConfig(buffers=(5, 10, 5)), progress_dir=tmp_path,
                                       out_dir=tmp_path, work_dir=tmp_path), log=lambda _: None)
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_paired_difference_is_a_t_interval_over_seed_pairs_and_refuses_unpaired_lists():
    """The 95% interval is t(0.975, n-1) x sd(ddof 1) / sqrt(n) of the per-seed differences;
    one seed has none; lists of different lengths were broadcast (one seed paired with every
    seed of the other list: a 3-seed interval out of one seed's measurement)."""
    import math

    import pytest

    from tinysift.bench.stats import diff_cell, paired_difference

    p = paired_difference([0.81, 0.72, 0.93], [0.80, 0.70, 0.90])
    assert p["n"] == 3 and math.isclose(p["mean"], 0.02)
    assert math.isclose(p["half_width"], 4.302652729911275 * 0.01 / math.sqrt(3))
    assert not p["significant"] and diff_cell(p) == "+2.00 ± 2.48"  # the interval holds 0
    p = paired_difference([0.81, 0.72, 0.93], [0.78, 0.70, 0.89])
    assert p["significant"] and diff_cell(p) == "**+3.00 ± 2.48**"
    one = paired_difference([0.8], [0.7])
    assert one["n"] == 1 and one["half_width"] is None and not one["significant"]
    assert diff_cell(one) == "+10.00"
    with pytest.raises(ValueError, match="one value per seed.*got 1 and 3"):
        paired_difference([0.8], [0.7, 0.75, 0.9])


def test_paired_difference_is_significant_either_way_and_never_for_no_difference():
    """A method worse than the other on every seed is as significant as one better (the
    interval excludes 0 below it), and two identical result lists differ by nothing: an
    interval of width 0 around 0 holds 0, it is no significant difference."""
    from tinysift.bench.stats import diff_cell, paired_difference

    worse = paired_difference([0.78, 0.70, 0.89], [0.81, 0.72, 0.93])
    assert worse["mean"] < 0 and worse["significant"]
    assert diff_cell(worse) == "**-3.00 ± 2.48**"
    same = paired_difference([0.8, 0.7, 0.9], [0.8, 0.7, 0.9])
    assert same["mean"] == 0 and same["half_width"] == 0 and not same["significant"]
    assert diff_cell(same) == "+0.00 ± 0.00"


def test_summarize_means_each_time_over_seeds_and_logs_counts_as_integers(tmp_path):
    """A results row's seconds are means over the seeds (not sums), its std the population
    std, and a logged kept count stays an integer (tables print 144, not 144.0)."""
    from tinysift.bench.progress import summarize

    log = ProgressLog({"k": 1}, tmp_path, "t")
    rows = [log.add(s, "vq", "0.1", acc=a, score_seconds=t, count=144)
            for s, (a, t) in enumerate(((0.8, 1.0), (0.9, 3.0)))]
    assert isinstance(rows[0]["count"], int)
    assert isinstance(json.loads(log.path.read_text().splitlines()[0])["count"], int)
    out = summarize(rows, ("score_seconds",), count=True)
    assert out["score_seconds"] == 2.0 and out["count"] == 144
    assert abs(out["acc_mean"] - 0.85) < 1e-12 and abs(out["acc_std"] - 0.05) < 1e-12
    # the mean of three seeds, not their median (0.8 and 0.9 have the same of both)
    three = summarize([{"acc": a} for a in (0.5, 0.9, 1.0)], ())
    assert abs(three["acc_mean"] - 0.8) < 1e-12 and three["runs"] == [0.5, 0.9, 1.0]


def test_an_upkeep_config_without_policies_or_update_modes_is_refused():
    """Built from code, UpkeepConfig(policies=()) ran only the whole-stream point and
    updates=() no point at all (the CLI cannot give either); both are refused when made,
    and so is a bench config's replace() of them."""
    import dataclasses

    import pytest

    from tinysift.errors import BudgetError
    from tinysift.pipeline.upkeep import UpkeepConfig

    with pytest.raises(BudgetError, match=r"policies=\(\)\) runs no policy: give one or more "
                                          r"of reservoir, coverage"):
        UpkeepConfig(policies=())
    with pytest.raises(BudgetError, match=r"updates=\(\)\) runs no update mode: give one or "
                                          r"more of head"):
        UpkeepConfig(updates=())
    with pytest.raises(BudgetError, match="runs no update mode"):
        dataclasses.replace(UpkeepConfig(), updates=())
    assert UpkeepConfig(policies=("coverage",), updates=("bias",)).policies == ("coverage",)


def test_an_upkeep_config_refuses_an_unknown_policy_an_empty_buffer_or_a_codebook_size():
    """validate() runs before the base model is trained: an unknown policy, a buffer of 0
    per class or no buffer size at all, and codebooks outside the device's 1..255 codewords
    per class are refused naming the option; the edges 1 and 255 pass."""
    import pytest

    from tinysift.errors import BudgetError
    from tinysift.pipeline.upkeep import UpkeepConfig

    for config, words in [(UpkeepConfig(policies=("fifo", "coverage")),
                           r"unknown policy 'fifo'; choose from reservoir, coverage"),
                          (UpkeepConfig(buffers=(5, 0)), "--buffers must be positive"),
                          # none at all (from code): min()'s ValueError without the check
                          (UpkeepConfig(buffers=()), "--buffers must be positive"),
                          (UpkeepConfig(vq_per_class=0), r"--vq-per-class must be in 1\.\.255"),
                          (UpkeepConfig(vq_per_class=256), r"--vq-per-class must be in 1\.\.255")]:
        with pytest.raises(BudgetError, match=words):
            config.validate()
    for config in (UpkeepConfig(buffers=(1,), vq_per_class=1),
                   UpkeepConfig(buffers=(1,), vq_per_class=255)):
        config.validate()


def test_a_seeds_wall_time_is_no_training_of_it(tmp_path):
    """The `_wall` record is the seed's time, not a training: a seed whose trainings were
    all forgotten is not "logged" (say_later_seeds would name it) and is fresh, and the wall
    record is never a row the results leave out, whether or not the bench asked for it."""
    log = ProgressLog({"a": 1}, tmp_path, "bench", point="budget")
    log.add(0, "vq", "0.5", acc=0.7)
    log.add_seed_wall(0, 60.0)
    log.add(1, "vq", "0.5", acc=0.7)
    log.add_seed_wall(1, 60.0)
    assert log.seeds_logged() == [0, 1]
    assert log.forget(("vq",), 1) == 1  # seed 0's training only; its wall record stays
    assert log.seeds_logged() == [1] and log.is_fresh(0) and not log.is_fresh(1)
    again = ProgressLog({"a": 1}, tmp_path, "bench", point="budget")
    again.get(1, "vq", "0.3")  # a bench of other budgets: seed 1's wall is never asked
    assert again.unreported([1]) == [("vq", "0.5")]
    assert again.get(1, "vq", "0.5")["acc"] == 0.7 and again.unreported([1]) == []


def test_a_resumed_bench_counts_its_trainings_not_its_seeds_wall_times(tmp_path: Path) -> None:
    """The resume line says how many trainings the log already holds: a seed's wall time
    (the `_wall` record of a seed run in one go) is no training: two complete seeds of two
    trainings each said "resuming: 6 trainings", a rerun of one "3"; a log of wall times
    alone says nothing."""
    again = _two_timed_seeds(tmp_path, "vq")
    assert again.resuming() == f"resuming: 4 trainings already in {again.path}"
    walls = ProgressLog({"a": 1}, tmp_path / "walls", "bench", point="budget")
    walls.add_seed_wall(0, 60.0)  # a log of wall times alone holds nothing to resume
    assert ProgressLog({"a": 1}, tmp_path / "walls", "bench", point="budget").resuming() is None


def test_a_name_given_three_times_is_named_once_with_the_fix() -> None:
    """`--methods vq,rs2,vq,vq`: the refusal names vq once (not once per repeat) and ends
    with what to do."""
    import pytest

    from tinysift.bench.progress import distinct
    from tinysift.errors import BudgetError

    with pytest.raises(BudgetError) as err:
        distinct(("vq", "rs2", "vq", "vq"), "--methods")
    assert str(err.value) == "--methods vq,rs2,vq,vq names vq more than once: give each once"


def test_a_machine_without_a_cpu_model_is_named_by_its_processor() -> None:
    """A record's machine names the CPU model, or the processor where the machine has no
    model name (not Linux: machine_info's cpu_model is empty), or "?" with neither."""
    from tinysift.bench.progress import machine_label

    assert machine_label({"hostname": "mac", "cpu_model": "", "processor": "arm",
                          "cpus": 8}) == "mac (arm, 8 CPUs)"
    assert machine_label({}) == "? (?, ? CPUs)"


def test_a_machine_label_names_the_cpu_family_where_recorded() -> None:
    """Two generations of a virtual machine's CPU can share the model name "AMD EPYC" and
    still train to different last digits: a record that holds the family names it, so that
    a resumed bench's rows from the two are told apart; records without one read as before."""
    from tinysift.bench.progress import machine_label

    zen5 = {"hostname": "vm", "cpu_model": "AMD EPYC", "cpus": 2,
            "cpu_family": "AuthenticAMD family 26 model 2 stepping 1"}
    assert machine_label(zen5) == "vm (AMD EPYC, AuthenticAMD family 26 model 2 stepping 1, 2 CPUs)"
    older = {**zen5, "cpu_family": "AuthenticAMD family 25 model 17 stepping 1"}
    assert machine_label(older) != machine_label(zen5)
    assert machine_label({**zen5, "cpu_family": ""}) == "vm (AMD EPYC, 2 CPUs)"


def test_a_record_s_numpy_numbers_are_logged_as_plain_numbers(tmp_path: Path) -> None:
    """A training's numbers come from numpy (an accuracy as float32, a count as int64):
    the record holds them as JSON numbers (json cannot write a float32) and a text value
    as it is."""
    import numpy as np

    log = ProgressLog({"a": 1}, tmp_path, "bench")
    rec = log.add(0, "vq", "0.1", acc=np.float32(0.75), count=np.int64(144), note="pixels")
    line = json.loads(log.path.read_text().splitlines()[0])
    assert (line["acc"], line["count"], line["note"]) == (0.75, 144, "pixels")
    assert type(rec["acc"]) is float and type(rec["count"]) is int


def test_a_results_record_holds_the_done_seeds_walls_and_a_json_ready_config(
        tmp_path: Path) -> None:
    """Every results file records its config as JSON (paths as text), the seeds done and
    planned, and a wall time for each seed done only (a bench of 3 seeds written after 2)."""
    from tinysift.bench.guided import GuidedBenchConfig
    from tinysift.bench.progress import config_dict, run_record

    cfg = GuidedBenchConfig(dataset="digits", seeds=3, out_dir=tmp_path / "out",
                            progress_dir=None)
    assert config_dict(cfg)["out_dir"] == str(tmp_path / "out")
    assert config_dict(cfg)["progress_dir"] is None
    log = ProgressLog({"a": 1}, tmp_path, "bench", point="budget")
    for seed in (0, 1):
        log.add(seed, "full", "1", acc=0.8)
        log.add_seed_wall(seed, 10.0 + seed)
    record = run_record(cfg, 2, log, 30.0)
    assert (record["seeds"], record["seeds_planned"], record["wall_seconds"]) == (2, 3, 30.0)
    assert record["seed_wall_seconds"] == [10.0, 11.0]
    assert json.loads(json.dumps(record))["config"]["out_dir"] == str(tmp_path / "out")


def test_results_are_written_as_json_markdown_and_a_plot_when_the_bench_has_one(
        tmp_path: Path) -> None:
    """write_results writes STEM.json, STEM.md from the results, and STEM.png only for a
    bench with a plot."""
    from tinysift.bench.progress import write_results

    def table(results: dict) -> str:
        return f"| acc | {results['acc']} |\n"

    def plot(results: dict, path: Path) -> None:
        path.write_bytes(b"png")

    write_results({"acc": 0.5}, tmp_path, "plotted", table, plot)
    write_results({"acc": 0.5}, tmp_path, "plain", table)
    assert json.loads((tmp_path / "plotted.json").read_text()) == {"acc": 0.5}
    assert (tmp_path / "plotted.md").read_text() == "| acc | 0.5 |\n"
    assert (tmp_path / "plotted.png").read_bytes() == b"png"
    assert sorted(p.name for p in tmp_path.glob("plain*")) == ["plain.json", "plain.md"]
