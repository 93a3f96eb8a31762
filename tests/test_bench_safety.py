"""A bench never mixes, replaces or drops results silently: logs of other data or recipes,
results of another configuration, rows the command leaves out, lines that are not records;
and its options are refused before any training when every task would fail."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tinysift.bench.progress import (
    ProgressLog,
    check_results_owner,
    user_data_key,
)
from tinysift.errors import TinysiftError


@pytest.mark.parametrize("line", ["42", "[1, 2]", "null", "{}", '{"seed": 0}',
                                  '{"seed": "0", "method": "vq", "keep": "0.1"}',
                                  '{"seed": true, "method": "vq", "keep": "0.1"}',
                                  '{"seed": true, "method": "vq", "keep": "0.1", "acc": 0.5}',
                                  "<<<<<<< HEAD"])
def test_a_line_that_is_not_a_record_is_skipped_and_said(tmp_path, line):
    """Valid JSON that is not a record (and a merge marker) ended the bench with a bare
    TypeError/KeyError; now skipped, counted, and its training runs again."""
    log = ProgressLog({"a": 1}, tmp_path, "bench")
    log.add(0, "vq", "0.1", acc=0.5)
    log.path.write_text(log.path.read_text() + line + "\n")
    log.add(1, "vq", "0.1", acc=0.6)  # appended after the bad line
    again = ProgressLog({"a": 1}, tmp_path, "bench")
    assert again.unreadable == 1 and len(again.done) == 2
    assert "1 line(s) of it are not progress records" in again.resuming()
    assert ProgressLog({"a": 2}, tmp_path, "bench").resuming() is None
    # a log of nothing but such lines: no training counts, and the skip is still said
    again.path.write_text(line + "\n")
    only = ProgressLog({"a": 1}, tmp_path, "bench")
    assert not only.done and "1 line(s) of it are not progress records" in only.resuming()


def test_rows_the_command_leaves_out_are_named(tmp_path, capsys):
    """A rerun with fewer keeps or methods rewrote the results without those rows, silently;
    the log still holds them, and the bench says so and how to report them."""
    from tinysift.bench.driver import say_unreported

    log = ProgressLog({"a": 1}, tmp_path, "bench")
    for method in ("random", "vq"):
        for keep in ("0.1", "0.3"):
            log.add(0, method, keep, acc=0.5)
    log.add(3, "vq", "0.01", acc=0.5)  # a later seed: say_later_seeds' business
    again = ProgressLog({"a": 1}, tmp_path, "bench")
    say_unreported(again, [0])
    assert capsys.readouterr().err == ""  # nothing asked yet: nothing to compare with
    for method in ("random", "vq"):
        again.get(0, method, "0.3")
    assert again.unreported([0]) == [("random", "0.1"), ("vq", "0.1")]
    say_unreported(again, [0])
    err = capsys.readouterr().err
    assert "leave out: random keep 0.1, vq keep 0.1" in err and "0.01" not in err
    # more than six rows: the first six named, the rest counted
    for i in range(5):
        again.add(0, f"m{i}", "0.5", acc=0.5)
    say_unreported(again, [0])
    assert ("leave out: m0 keep 0.5, m1 keep 0.5, m2 keep 0.5, m3 keep 0.5, m4 keep 0.5, "
            "random keep 0.1 and 1 more; name those") in capsys.readouterr().err


def test_exactly_six_rows_left_out_are_all_named_and_none_counted(tmp_path, capsys):
    """Six rows the command leaves out are named, all six, with no "and 0 more" after them
    (only a seventh and later are counted)."""
    from tinysift.bench.driver import say_unreported

    log = ProgressLog({"a": 1}, tmp_path, "bench")
    for i in range(6):
        log.add(0, f"m{i}", "0.5", acc=0.5)
    log.get(0, "vq", "0.1")  # the bench asked for another method
    say_unreported(log, [0])
    err = " ".join(capsys.readouterr().err.split())
    assert ("leave out: m0 keep 0.5, m1 keep 0.5, m2 keep 0.5, m3 keep 0.5, m4 keep 0.5, "
            "m5 keep 0.5; name those") in err


def _results(path: Path, log_name: str, **fields) -> None:
    path.write_text(json.dumps({"progress_log": log_name, **fields}))


def test_results_of_another_configuration_are_not_replaced(tmp_path):
    """A bench of another recipe wrote its table over the folder's, which the docs then
    printed under the committed command; now refused before any training, naming what
    differs; the same configuration, a --quick run and an unreadable file go on."""
    log = ProgressLog({"epochs": 3, "data": "h1"}, tmp_path / "progress", "guided_digits")
    check_results_owner(log, tmp_path, "guided_digits")  # no results yet
    _results(tmp_path / "guided_digits.json", log.path.name)
    check_results_owner(log, tmp_path, "guided_digits")  # its own
    _results(tmp_path / "guided_digits.json", "guided_digits_0123456789ab.jsonl",
             config={"epochs": 20}, data_hash="h0")
    with pytest.raises(TinysiftError, match=r"another configuration of this bench \(epochs "
                       r"20 -> 3; the data's contents\).*pass another --out-dir"):
        check_results_owner(log, tmp_path, "guided_digits")
    check_results_owner(ProgressLog({"epochs": 3}, None, "guided_digits"), tmp_path,
                        "guided_digits")  # --quick: no log to tell
    (tmp_path / "guided_digits.json").write_text("{torn")
    check_results_owner(log, tmp_path, "guided_digits")


def test_results_without_a_log_are_no_obstacle_and_only_changed_options_are_named(tmp_path):
    """Results a --quick run wrote (no progress log) are rewritten without a word; results
    of another log name the options that differ, not every option both configurations
    hold."""
    log = ProgressLog({"epochs": 3, "seeds": 5, "data": "h1"}, tmp_path / "progress",
                      "guided_digits")
    for theirs in (None, 42):
        _results(tmp_path / "guided_digits.json", theirs,
                 config={"epochs": 20, "seeds": 5, "quick": True})
        check_results_owner(log, tmp_path, "guided_digits")
    _results(tmp_path / "guided_digits.json", "guided_digits_0123456789ab.jsonl",
             config={"epochs": 20, "seeds": 5})
    with pytest.raises(TinysiftError, match=r"another configuration of this bench \(epochs "
                       r"20 -> 3\), logged in") as err:
        check_results_owner(log, tmp_path, "guided_digits")
    assert "seeds" not in str(err.value)  # nor the data: results without its hash say none


def test_results_written_before_files_named_their_log_are_not_replaced_by_another_recipe(
        tmp_path):
    """The committed results predate the results' "progress_log": a bench of another recipe
    (``bench guided --epochs 2`` beside a 20-epoch table) replaced them without a word. Their
    config tells: refused naming what differs; the same configuration goes on (rewritten
    from its log)."""
    log = ProgressLog({"dataset": "digits", "epochs": 2, "quick": False, "data": "h1"},
                      tmp_path / "progress", "guided_digits")
    path = tmp_path / "guided_digits.json"
    path.write_text(json.dumps({"seeds": 3, "config": {"dataset": "digits", "epochs": 20,
                                                       "seeds": 3, "quick": False}}))
    with pytest.raises(TinysiftError, match=r"another configuration of this bench \(epochs "
                       r"20 -> 2\), written before results named their progress log; this "
                       r"run would replace them: pass another --out-dir"):
        check_results_owner(log, tmp_path, "guided_digits")
    path.write_text(json.dumps({"seeds": 3, "config": {"dataset": "digits", "epochs": 2,
                                                       "seeds": 3, "quick": False}}))
    check_results_owner(log, tmp_path, "guided_digits")  # the same configuration


def test_a_legacy_condense_table_of_other_ks_is_not_another_configuration(tmp_path):
    """`bench condense` pins ``per_class`` in its log's key at the default (1, 10, 50)
    whatever the command's, so adding a K reuses the log: a table written before results
    named their log, of Ks 1 and 10, was refused for `--per-class 1,10` itself as
    "per_class [1, 10] -> (1, 10, 50)", a configuration nobody asked for. The point is no
    configuration; another recipe still is, and so is a legacy table's K the command leaves
    out (its numbers are in no log; review of d2ecbd9)."""
    key = {"dataset": "digits", "epochs": 20, "per_class": (1, 10, 50), "data": "h1"}
    log = ProgressLog(key, tmp_path / "progress", "condense_digits", point="per_class",
                      points=(1, 10))
    path = tmp_path / "condense_digits.json"
    path.write_text(json.dumps({"config": {"dataset": "digits", "epochs": 20,
                                           "per_class": [1, 10]}}))
    check_results_owner(log, tmp_path, "condense_digits")
    # a K of the legacy table the command leaves out: its numbers are in no log, refused
    fewer = ProgressLog(key, tmp_path / "progress", "condense_digits", point="per_class",
                        points=(5,))
    with pytest.raises(TinysiftError, match=r"\(per_class \[1, 10\] -> \[5\]\), written "
                                            r"before results named their progress log"):
        check_results_owner(fewer, tmp_path, "condense_digits")
    # one of its Ks left out is enough, though the command keeps the other
    other = ProgressLog(key, tmp_path / "progress", "condense_digits", point="per_class",
                        points=(1, 5))
    with pytest.raises(TinysiftError, match=r"\(per_class \[1, 10\] -> \[1, 5\]\)"):
        check_results_owner(other, tmp_path, "condense_digits")
    # a table that names its log keeps its trainings there: a subset of Ks is no obstacle
    _results(path, fewer.path.name, config={"per_class": [1, 10]})
    check_results_owner(fewer, tmp_path, "condense_digits")
    path.write_text(json.dumps({"config": {"dataset": "digits", "epochs": 5,
                                           "per_class": [1, 10]}}))
    with pytest.raises(TinysiftError, match=r"another configuration of this bench \(epochs "
                                            r"5 -> 20\), written before"):
        check_results_owner(log, tmp_path, "condense_digits")


def test_results_before_the_replay_rule_named_its_later_params_are_its_own_commands(tmp_path):
    """The committed `bench device --scenario new-classes` results recorded vq's replay rule
    as {per_codeword, window}; the key now also names within, hard_cut and hard_above
    (pinned at what it ran with): their own command was refused as another configuration.
    A changed entry, or a method added, is still refused."""
    rule = {"per_codeword": 1, "window": 0.01}
    pinned = {**rule, "within": "window", "hard_cut": None, "hard_above": 0.5}
    path = tmp_path / "device_new-classes_fashion-mnist.json"
    path.write_text(json.dumps({"config": {"seeds": 5, "replay_params": {"vq": rule}}}))
    log = ProgressLog({"replay_params": {"vq": pinned}}, tmp_path / "progress",
                      "device_new-classes_fashion-mnist")
    check_results_owner(log, tmp_path, "device_new-classes_fashion-mnist")
    for params in ({"vq": {**pinned, "window": 0.02}}, {"vq": pinned, "flow": {}}):
        log = ProgressLog({"replay_params": params}, tmp_path / "progress",
                          "device_new-classes_fashion-mnist")
        with pytest.raises(TinysiftError, match=r"another configuration of this bench "
                                                r"\(replay_params .*written before"):
            check_results_owner(log, tmp_path, "device_new-classes_fashion-mnist")
    # results that name another log are refused whatever; the message names the extended
    # table as what differs (the pinned entries are no change only for unnamed results)
    _results(path, "device_new-classes_fashion-mnist_0123456789ab.jsonl",
             config={"seeds": 5, "replay_params": {"vq": rule}})
    log = ProgressLog({"replay_params": {"vq": pinned}}, tmp_path / "progress",
                      "device_new-classes_fashion-mnist")
    with pytest.raises(TinysiftError, match=r"another configuration of this bench "
                                            r"\(replay_params .*\), logged in"):
        check_results_owner(log, tmp_path, "device_new-classes_fashion-mnist")


def test_a_results_file_that_is_no_object_is_no_obstacle(tmp_path):
    """A results file holding a JSON list (a hand edit) is rewritten from the log like an
    unreadable one, also by a run whose key holds an option away from its default."""
    log = ProgressLog({"batch": 64}, tmp_path / "progress", "guided_digits",
                      key_defaults={"batch": 128})
    for text in ("[1, 2]", "42", "null"):
        (tmp_path / "guided_digits.json").write_text(text)
        check_results_owner(log, tmp_path, "guided_digits")


def test_the_users_data_is_in_the_device_logs_key(tmp_path):
    """`bench upkeep`/`bench device` keyed their log by the dataset's name: a rerun after
    the user's file changed reported the old file's numbers, and one with more points mixed
    both files in one table. A registry name adds nothing (the committed logs' keys)."""
    path = tmp_path / "u.npz"
    np.savez(path, x=np.zeros((4, 8, 8), np.uint8), y=np.arange(4))
    first = user_data_key({"dataset": f"npz:{path}", "new": None})
    assert set(first["data"]) == {"dataset"}
    assert user_data_key({"dataset": f"npz:{path}"}) == first
    # a size suffix (@4x4) is the dataset's spec, not its path: the file's bytes, as above
    assert user_data_key({"dataset": f"npz:{path}@4x4"}) == first
    np.savez(path, x=np.ones((4, 8, 8), np.uint8), y=np.arange(4))
    assert user_data_key({"dataset": f"npz:{path}"}) != first
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    (tmp_path / "imgs" / "a" / "1.png").write_bytes(b"png")
    folder = user_data_key({"new": f"folder:{tmp_path}/imgs"})
    (tmp_path / "imgs" / "a" / "1.png").write_bytes(b"png2")
    assert user_data_key({"new": f"folder:{tmp_path}/imgs"}) != folder
    # the same bytes under another class's folder: another label, so another key
    (tmp_path / "imgs" / "a" / "1.png").write_bytes(b"png")
    folder = user_data_key({"new": f"folder:{tmp_path}/imgs"})
    (tmp_path / "imgs" / "b").mkdir()
    (tmp_path / "imgs" / "a" / "1.png").rename(tmp_path / "imgs" / "b" / "1.png")
    assert user_data_key({"new": f"folder:{tmp_path}/imgs"}) != folder
    # the same files moved to another folder: the same data, its log resumes
    folder = user_data_key({"new": f"folder:{tmp_path}/imgs"})
    (tmp_path / "imgs").rename(tmp_path / "moved")
    assert user_data_key({"new": f"folder:{tmp_path}/moved"}) == folder
    assert user_data_key({"dataset": "fashion-mnist", "new": None}) == {}
    # a name the system refuses (too long): left to the loader to say, not a crash here
    assert user_data_key({"dataset": f"npz:{tmp_path}/{'x' * 300}.npz"}) == {}


def test_a_long_dataset_path_makes_a_short_distinct_slug():
    """A progress log named after a 300-character npz: path was "File name too long"."""
    from tinysift.data import dataset_slug

    assert dataset_slug("npz:/data/d.npz") == "npz__data_d.npz"
    a, b = dataset_slug("npz:/" + "a" * 300 + "1.npz"), dataset_slug("npz:/" + "a" * 300)
    assert a != b and len(a.encode()) <= 80 and "/" not in a
    # SLUG_LIMIT (80 bytes) is the longest kept whole; one byte more is cut, with a hash
    whole = "npz:" + "d" * 76
    assert dataset_slug(whole) == "npz_" + "d" * 76
    cut = dataset_slug(whole + "d")
    assert len(cut.encode()) == 80 and cut.startswith("npz_" + "d" * 65 + "-")


def test_condense_logs_every_per_class_list_in_one_log(tmp_path):
    """`--per-class 1` then `1,2` started a new log and retrained everything; the key keeps
    the default K list, so the committed log's name is unchanged."""
    from tinysift.bench.condense import CondenseBenchConfig, _progress_log

    logs = {_progress_log(CondenseBenchConfig(per_class=k, progress_dir=tmp_path), "h",
                          "condense_x").path for k in ((1,), (1, 2), (1, 10, 50))}
    assert len(logs) == 1


def test_duplicate_json_keys_are_refused():
    """'{"flow": {"judge": "knn"}, "flow": {}}' ran flow with its defaults, silently."""
    from tinysift.cli.checks import json_object

    with pytest.raises(TinysiftError, match="names 'flow' twice"):
        json_object("--method-params", '{"flow": {"judge": "knn"}, "flow": {}}')
    with pytest.raises(TinysiftError, match="names 'judge' twice"):
        json_object("--method-params", '{"flow": {"judge": "knn", "judge": "flow"}}')
    assert json_object("--method-params", '{"flow": {"judge": "knn"}}') == {
        "flow": {"judge": "knn"}}
    # JSON that is not an object (a list, a number) is named, with an example of one
    for text, kind in (('[{"judge": "knn"}]', "list"), ("3", "int")):
        with pytest.raises(TinysiftError, match=f"--method-params must be a JSON object such "
                                                f"as '{{\"judge\": \"knn\"}}', got {kind}$"):
            json_object("--method-params", text)
    assert json_object("--method-params", None) is None
    # where the text stops being JSON: character 1 of '{judge' (the key needs quotes)
    with pytest.raises(TinysiftError, match=r"--guided-params is not JSON \(Expecting property "
                                            r"name enclosed in double quotes at character 1\)"):
        json_object("--guided-params", "{judge")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_options_refuse_nan_and_infinity(constant):
    """Python's json reads NaN and Infinity: '{"c": NaN}' trained ucb on a NaN bound and
    '{"alpha": Infinity}' vq, silently."""
    from tinysift.cli.checks import json_object

    with pytest.raises(TinysiftError, match=f"--guided-params holds {constant}, which is not "
                                            "a JSON number; give finite numbers"):
        json_object("--guided-params", f'{{"c": {constant}}}')
    with pytest.raises(TinysiftError, match=f"--method-params holds {constant}"):
        json_object("--method-params", f'{{"ucb": {{"c": [1, {constant}]}}}}')


def test_executor_spec_empty_or_too_many_workers():
    import os

    from tinysift.bench.executor import MAX_WORKERS_PER_CPU, parse_spec
    from tinysift.errors import ClusterError

    with pytest.raises(ClusterError, match="--executor is empty"):
        parse_spec("")
    with pytest.raises(ClusterError, match="unknown --executor 'serial:4'"):
        parse_spec("serial:4")  # not run serially, silently, as if 4 workers ran it
    with pytest.raises(ClusterError, match="give at most"):
        parse_spec(f"local:{MAX_WORKERS_PER_CPU * len(os.sched_getaffinity(0)) + 1}")
    assert parse_spec("local:1") == ("local", "1") and parse_spec(None) == ("serial", "")


def test_executor_spec_takes_every_worker_it_allows_and_refuses_what_is_no_count():
    """``local:N`` takes up to MAX_WORKERS_PER_CPU workers per CPU it may use, the largest
    included; an N that is no whole number ("²" too, a digit to str.isdigit), and a value of
    spaces only (an unset variable quoted), are refused in a line saying what to give, not
    taken or failed on as a bug."""
    import os

    from tinysift.bench.executor import MAX_WORKERS_PER_CPU, parse_spec
    from tinysift.errors import ClusterError

    most = MAX_WORKERS_PER_CPU * len(os.sched_getaffinity(0))
    assert parse_spec(f"local:{most}") == ("local", str(most))
    assert parse_spec("local") == ("local", "")
    for count in ("two", "-1", "1.5", "²"):
        with pytest.raises(ClusterError, match="local:N takes a number of workers >= 1"):
            parse_spec(f"local:{count}")
    with pytest.raises(ClusterError, match="--executor is empty"):
        parse_spec("  ")


def test_local_workers_follow_the_cpus_the_process_may_use():
    """In a process held to one CPU (a container's or a job's cpuset), ``local`` starts one
    worker and ``local:N`` allows MAX_WORKERS_PER_CPU of them, not as many as the machine's
    CPUs (each worker runs its own TensorFlow: a cpuset of 1 on 64 cores got 64)."""
    import os
    import subprocess
    import sys

    script = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
              "from tinysift.bench.executor import MAX_WORKERS_PER_CPU as M, parse_spec, "
              "tf_intra_threads, usable_cpus; from tinysift.errors import ClusterError\n"
              "print(usable_cpus(), tf_intra_threads(), parse_spec(f'local:{M}')[1])\n"
              "try:\n    parse_spec(f'local:{M + 1}')\nexcept ClusterError as e:\n"
              "    print(e)")
    env = {k: v for k, v in os.environ.items() if k != "TF_NUM_INTRAOP_THREADS"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    from tinysift.bench.executor import MAX_WORKERS_PER_CPU

    first, refusal = done.stdout.splitlines()
    assert first == f"1 1 {MAX_WORKERS_PER_CPU}"
    assert refusal.startswith(f"--executor local:{MAX_WORKERS_PER_CPU + 1}: this process may "
                              "use 1 CPU and each worker") and "give at most" in refusal


@pytest.mark.parametrize("options, words", [
    ({"label_noise": 1.5}, "label noise fraction must be in"),
    ({"label_noise": float("nan")}, "label noise fraction must be in"),
    ({"budgets": (1e-9,)}, "nothing would train")])
def test_guided_bench_refuses_what_every_task_would_fail_on_before_training(
        tmp_path, monkeypatch, options, words):
    """Each task failed alone, after the full-data training, and the bench said "rerun to
    train only the failed ones", which failed again."""
    import tinysift.bench.driver
    from tinysift.bench.guided import GuidedBenchConfig, bench_guided

    def no_training(*a, **k):
        raise AssertionError("trained before refusing")

    monkeypatch.setattr(tinysift.bench.driver, "run_seeds", no_training)
    cfg = GuidedBenchConfig(**{"dataset": "digits", "budgets": (0.5,), "methods": ("rs2",),
                               "seeds": 1, "out_dir": tmp_path,
                               "progress_dir": tmp_path / "p", **options})
    with pytest.raises(TinysiftError, match=words):
        bench_guided(cfg)


def test_scoring_bench_names_its_files_by_slug_and_checks_methods_first(tmp_path, monkeypatch):
    """`--dataset npz:/a/b.npz` wrote into nested folders (a `..` outside --out-dir); a
    misspelt method failed after the others' fits; a repeated one was scored twice."""
    from tinysift.bench.scoring import bench_scoring
    from tinysift.data import dataset_slug, load_dataset

    d = load_dataset("digits")
    path = tmp_path / "d.npz"
    np.savez(path, x=d.x_train[:300], y=d.y_train[:300])
    with pytest.raises(TinysiftError, match="unknown"):
        bench_scoring(f"npz:{path}", ("random", "nope"), out_dir=tmp_path / "out")
    with pytest.raises(TinysiftError, match="more than once"):
        bench_scoring(f"npz:{path}", ("random", "random"), out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    res = bench_scoring(f"npz:{path}", ("random",), out_dir=tmp_path / "out")
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == [f"scoring_{dataset_slug(f'npz:{path}')}.{e}" for e in ("json", "md")]
    assert files[0].startswith("scoring_npz__")  # one file name, no nested folders
    assert res["data_hash"] and res["written"] and res["methods"]["random"]["meets_target"] is None
    assert "| - | - |" in (tmp_path / "out" / files[1]).read_text()


def test_a_pipelines_folder_follows_its_file_a_benchs_refuses_another_configuration(
        tmp_path, monkeypatch):
    """`bench device` refuses a folder whose results came from another configuration; an
    adapt pipeline's run folder (the demo's) follows its file: edited and rerun, it runs the
    new settings instead of asking for another folder."""
    import tinysift.bench.driver as driver
    from tinysift.bench.device import DeviceBenchConfig, bench_device

    class Started(Exception):
        pass

    def started(*a, **k):
        raise Started

    monkeypatch.setattr(driver, "say_later_seeds", started)  # the first step after the check
    _results(tmp_path / "device_new-classes_digits.json", "device_new-classes_digits_0.jsonl")
    where = {"dataset": "digits", "methods": ("random",), "sizes": (5,), "seeds": 1,
             "out_dir": tmp_path, "progress_dir": tmp_path / "p", "work_dir": tmp_path / "w"}
    with pytest.raises(TinysiftError, match="another configuration of this bench"):
        bench_device(DeviceBenchConfig(**where))
    with pytest.raises(Started):
        bench_device(DeviceBenchConfig(**where), pipeline_folder=True)


_HOLD_RESULTS = ("import sys, time\n"
                 "from tinysift.bench.progress import ProgressLog, results_claim\n"
                 "with results_claim(ProgressLog({}, None, sys.argv[2]), sys.argv[1], "
                 "sys.argv[2]):\n"
                 "    print('held', flush=True)\n"
                 "    time.sleep(120)\n")


@pytest.mark.parametrize("bench", ["prune", "guided", "condense", "scoring"])
def test_a_second_bench_on_the_same_results_is_refused(tmp_path, monkeypatch, bench):
    """Two benches writing one results file (the command run twice, or another recipe
    started before the first wrote its results, which the owner check then missed) both
    appended to one log, trained every point twice, and the last to finish replaced the
    other's table (two scoring benches timed each other); now the second is refused before
    any training, naming the first."""
    import contextlib
    import subprocess
    import sys

    import tinysift.bench.driver
    from tinysift.bench.condense import CondenseBenchConfig, bench_condense
    from tinysift.bench.guided import GuidedBenchConfig, bench_guided
    from tinysift.bench.prune import PruneBenchConfig, bench_prune
    from tinysift.bench.scoring import bench_scoring
    from tinysift.errors import RunBusy

    def no_training(*a, **k):
        raise AssertionError("trained beside another bench")

    monkeypatch.setattr(tinysift.bench.driver, "run_seeds", no_training)
    common = {"dataset": "digits", "seeds": 1, "out_dir": tmp_path,
              "progress_dir": tmp_path / "p"}
    run = {"prune": lambda: bench_prune(PruneBenchConfig(keeps=(0.1,), methods=("random",),
                                                         cache_dir=None, **common)),
           "guided": lambda: bench_guided(GuidedBenchConfig(budgets=(0.5,), methods=("rs2",),
                                                            **common)),
           "condense": lambda: bench_condense(CondenseBenchConfig(per_class=(1,),
                                                                  methods=("random",),
                                                                  **common)),
           "scoring": lambda: bench_scoring("digits", ("random",), out_dir=tmp_path)}[bench]
    stem = f"{bench}_digits"
    proc = subprocess.Popen([sys.executable, "-c", _HOLD_RESULTS, str(tmp_path), stem],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(RunBusy, match=rf"{stem}\.json is being written by another "
                           rf"tinysift bench \(pid {proc.pid} .*pass another --out-dir"):
            run()
    finally:
        proc.kill()
        proc.wait()
    assert not (tmp_path / "p").exists()  # nothing logged
    # A killed holder leaves its lock file; the next bench takes it and removes it.
    assert (tmp_path / f".{stem}.lock").exists()
    with contextlib.suppress(AssertionError):  # "trained beside": past the claim
        run()
    assert not (tmp_path / f".{stem}.lock").exists()


@pytest.mark.parametrize("values", ['"score_seconds": 0.1', '"acc": "0.84"', '"acc": null',
                                    '"acc": NaN', '"acc": true'])
def test_a_record_without_a_numeric_accuracy_is_skipped_and_said(tmp_path, values):
    """A record edited by hand to lose its accuracy (or hold one that is not a number) ended
    the bench writing its results with "unexpected KeyError: 'acc'" (a bug in tinysift), or
    NaN went into them; now skipped and said as an edited line: its training runs again."""
    log = ProgressLog({"a": 1}, tmp_path, "bench")
    log.add(0, "vq", "0.1", acc=0.5)
    log.add_seed_wall(0, 3.0)
    log.path.write_text(log.path.read_text()
                        + f'{{"seed": 1, "method": "vq", "keep": "0.1", {values}}}\n')
    again = ProgressLog({"a": 1}, tmp_path, "bench")
    assert again.get(1, "vq", "0.1") is None and again.get(0, "vq", "0.1")["acc"] == 0.5
    assert again.seed_walls(1) == [3.0]  # a wall time has seconds, not an accuracy
    assert again.unreadable == 1 and "1 line(s) of it are not progress records" in (
        again.resuming())


@pytest.mark.parametrize("values", ['"acc": 0.5', '"acc": 0.5, "count": "12"',
                                    '"acc": 0.5, "count": null'])
def test_a_record_without_a_field_of_its_bench_is_skipped_and_said(tmp_path, values):
    """A record edited to lose another field its bench reads than the accuracy (prune's
    ``count``) ended the bench with a bare KeyError; each bench states its fields now, and
    such a record is skipped and said like one without an accuracy; a reference row checks
    its own (fewer) fields."""
    def log_of():
        return ProgressLog({"a": 1}, tmp_path, "bench", fields=("acc", "count"),
                           fields_by_method={"joint": ("acc",)})

    log = log_of()
    log.add(0, "vq", "0.1", acc=0.5, count=12)
    log.add(0, "joint", "0.1", acc=0.7)
    log.path.write_text(log.path.read_text()
                        + f'{{"seed": 1, "method": "vq", "keep": "0.1", {values}}}\n')
    again = log_of()
    assert again.get(1, "vq", "0.1") is None and again.get(0, "vq", "0.1")["count"] == 12
    assert again.get(0, "joint", "0.1")["acc"] == 0.7
    assert again.unreadable == 1 and "1 line(s) of it are not progress records" in (
        again.resuming())


def _committed_schemas() -> dict[str, tuple]:
    """Per results-stem prefix, its bench's record fields and per-method ones."""
    import sys

    from tinysift.bench import condense, device, guided, prune, upkeep

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import guided_ablation
    import selection_ablation

    return {"prune_": (prune.RECORD_FIELDS, {}), "guided_": (guided.RECORD_FIELDS, {}),
            "condense_": (condense.RECORD_FIELDS, {}), "upkeep_": (upkeep.RECORD_FIELDS, {}),
            "device_": (device.RECORD_FIELDS, device.REFERENCE_FIELDS),
            "ablation_guided_": (guided_ablation.RECORD_FIELDS, {}),
            "ablation_selection_": (selection_ablation.RECORD_FIELDS, {})}


def test_every_committed_progress_record_holds_its_bench_fields():
    """The benches' record fields must not orphan a committed training: every record of every
    committed progress log (each study's too) reads as done under its bench's fields, so a
    resumed bench or a rerun of one method never retrains the rest."""
    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    schemas = _committed_schemas()
    logs = [p for p in results.rglob("*.jsonl") if not p.name.endswith(".curves.jsonl")]
    assert len(logs) > 40
    for path in logs:
        fields, by_method = next(v for k, v in schemas.items() if path.name.startswith(k))
        log = ProgressLog({}, None, "x", fields=fields, fields_by_method=by_method)
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        bad = [r for r in records if "forget" not in r and not log.holds_fields(r)]
        assert not bad, f"{path.relative_to(results)}: {len(bad)} records, e.g. {bad[0]}"


def test_a_file_where_the_progress_folder_goes_is_refused_before_any_training(tmp_path):
    """A file named progress/ in the results folder ended the bench with "unexpected
    FileExistsError" (a bug in tinysift) after its first training; refused before any."""
    (tmp_path / "progress").write_text("mine")
    with pytest.raises(TinysiftError, match=r"progress is a file, not a folder \(the progress "
                       r"log's folder\): move it away, or pass another --out-dir"):
        ProgressLog({"a": 1}, tmp_path / "progress", "bench")
    assert (tmp_path / "progress").read_text() == "mine"


@pytest.mark.parametrize(("dropped", "named"), [
    (("flow",), "flow"),
    (("flow", "vq"), "flow, vq"),  # every dropped method named, and kept by the command
])
def test_a_scoring_run_of_fewer_methods_does_not_drop_the_others_timings(tmp_path, dropped,
                                                                         named):
    """The scoring bench keeps no log: `--methods vq` beside the committed vq and flow
    timings replaced them without flow's, without a word; refused before any timing, naming
    every method it would drop and the command that keeps them. The same methods (or more)
    time them again."""
    from tinysift.bench.scoring import bench_scoring

    out = tmp_path / "out"
    out.mkdir()
    seconds = {"random": 0.1, "flow": 200.0, "vq": 9.0}
    theirs = {"dataset": "digits",
              "methods": {m: {"seconds": seconds[m]} for m in ("random", *dropped)}}
    (out / "scoring_digits.json").write_text(json.dumps(theirs))
    with pytest.raises(TinysiftError, match=rf"holds the timings of {named}, which this run "
                       rf"\(--methods random\) would drop: time them again too \(--methods "
                       rf"random,{','.join(dropped)}\), or pass another --out-dir"):
        bench_scoring("digits", ("random",), out_dir=out)
    assert json.loads((out / "scoring_digits.json").read_text()) == theirs
    for method in dropped:
        theirs["methods"].pop(method)
    (out / "scoring_digits.json").write_text(json.dumps(theirs))
    assert list(bench_scoring("digits", ("random",), out_dir=out)["methods"]) == ["random"]


def test_a_scoring_run_records_each_methods_split_times_count_and_target(tmp_path):
    """Each method's row: its total is its fit plus its selection, the kept count is keep's
    rule (round(keep x N), N the training split), vq is judged against its 60-s target (met:
    "yes" in the table) and a method without a target is not judged; the run's keep, seed
    and sample count are recorded. Each method's context is its own (nothing shared): the
    method timed after vq lists no shared work of vq's."""
    from tinysift.bench.scoring import bench_scoring
    from tinysift.data import dataset_slug, load_dataset

    d = load_dataset("digits")
    path = tmp_path / "d.npz"
    np.savez(path, x=d.x_train[:400], y=d.y_train[:400], x_test=d.x_test[:50],
             y_test=d.y_test[:50])
    out = tmp_path / "out"
    out.mkdir()
    (out / f"scoring_{dataset_slug(f'npz:{path}')}.json").write_text("{torn")
    res = bench_scoring(f"npz:{path}", ("vq", "random"), keep=0.1, seed=3, out_dir=out)
    assert (res["samples"], res["keep"], res["seed"]) == (400, 0.1, 3)
    for name, row in res["methods"].items():
        assert row["seconds"] == pytest.approx(row["fit_seconds"] + row["select_seconds"])
        assert row["fit_seconds"] > 0 and row["kept"] == 40, name
    vq, rnd = res["methods"]["vq"], res["methods"]["random"]
    assert vq["target_seconds"] == 60.0 and vq["meets_target"] is True
    assert rnd["target_seconds"] is None and rnd["meets_target"] is None
    assert vq["shared_work_seconds"] and rnd["shared_work_seconds"] == {}
    assert all("-s3-" in item for item in vq["shared_work_seconds"])  # the run's seed's
    assert res["data_hash"] == load_dataset(f"npz:{path}").content_hash
    (saved,) = out.glob("scoring_*.json")  # the torn file was no obstacle: rewritten
    assert json.loads(saved.read_text())["methods"]["vq"]["kept"] == 40
    rows = saved.with_suffix(".md").read_text().splitlines()
    assert "| 60.0 | yes |" in next(r for r in rows if r.startswith("| vq |"))
    assert next(r for r in rows if r.startswith("| random |")).endswith("| - | - |")


def test_the_scoring_targets_are_those_the_committed_results_were_judged_by():
    """The committed scoring table judges vq against 60 s and flow against 300 s; a changed
    target would judge a rerun by another rule than the committed results."""
    from tinysift.bench.scoring import TARGETS_SECONDS

    committed = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results"
                            / "scoring_mnist.json").read_text())
    assert TARGETS_SECONDS == {m: r["target_seconds"] for m, r in committed["methods"].items()}
    assert TARGETS_SECONDS == {"vq": 60.0, "flow": 300.0}
    for row in committed["methods"].values():  # met: within the target, as the bench judges
        assert row["meets_target"] == (row["seconds"] <= row["target_seconds"])


def test_a_guided_option_added_later_is_compared_with_the_default_its_results_ran_with(
        tmp_path):
    """The committed guided results predate --batch and --keep-steps (their config has
    neither; the key leaves both out at their defaults): `--batch 64` replaced them without
    a word, as the README says it does not. Compared with the defaults they ran with now."""
    from tinysift.bench.guided import GuidedBenchConfig, _progress_log

    (tmp_path / "guided_digits.json").write_text(json.dumps({"seeds": 3, "config": {
        "dataset": "digits", "epochs": 10, "label_noise": 0.0, "quick": False,
        "method_params": {}}}))
    for option, said in ((dict(batch=64), "batch 128 -> 64"),
                         (dict(keep_steps=True), "keep_steps False -> True")):
        cfg = GuidedBenchConfig(dataset="digits", progress_dir=tmp_path / "progress",
                                **option)
        with pytest.raises(TinysiftError, match=rf"another configuration of this bench "
                                                rf"\({said}\), written before"):
            check_results_owner(_progress_log(cfg, "h", "guided_digits"), tmp_path,
                                "guided_digits")
    cfg = GuidedBenchConfig(dataset="digits", progress_dir=tmp_path / "progress")
    check_results_owner(_progress_log(cfg, "h", "guided_digits"), tmp_path, "guided_digits")
    # results that ran with --batch 64 are not replaced by a run at the default batch either
    # (the key leaves the default out: only its key_defaults says what it runs with)
    (tmp_path / "guided_digits.json").write_text(json.dumps({"seeds": 3, "config": {
        "dataset": "digits", "epochs": 10, "label_noise": 0.0, "quick": False,
        "method_params": {}, "batch": 64}}))
    with pytest.raises(TinysiftError, match=r"another configuration of this bench "
                                            r"\(batch 64 -> 128\), written before"):
        check_results_owner(_progress_log(cfg, "h", "guided_digits"), tmp_path,
                            "guided_digits")
