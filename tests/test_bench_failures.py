"""A bench task that fails does not end the bench: the other tasks run on and are logged, the
bench ends with one error naming the failed tasks (exit status 2, or 1 for an unexpected
error: a bug), and a rerun trains only those. Real trainings of a --quick-sized prune bench
on digits; the failing task is a user's plug-in method (tinysift.selection.register)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tinysift.errors import TasksFailed, TasksFailedBug

PLUGIN = '''
import os
import sys

import numpy as np

from tinysift.cli.app import main
from tinysift.errors import TinysiftError
from tinysift.selection import PruningMethod, register


@register
class Boom(PruningMethod):
    """A plug-in method failing as $BOOM says: a clean error, or a bug."""

    name = "boom"

    def _fit(self, context):
        if os.environ.get("BOOM") == "error":
            raise TinysiftError("boom cannot score these samples")
        if os.environ.get("BOOM") == "bug":
            raise ValueError("boom's bug")
        return np.random.default_rng(self.seed).random(context.num_samples)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''


def _rows(progress) -> list[tuple]:
    (log,) = progress.glob("prune_digits_*.jsonl")
    return [(r["seed"], r["method"], r["keep"]) for r in map(json.loads, log.read_text()
                                                            .splitlines())
            if r["method"] != "_wall"]


def test_a_failed_task_is_listed_the_others_run_on_and_a_rerun_trains_only_it(tmp_path):
    script = tmp_path / "bench_plugin.py"
    script.write_text(PLUGIN)
    out = tmp_path / "out"
    # boom first: random's trainings come after its failure
    args = [sys.executable, str(script), "bench", "prune", "--dataset", "digits", "--keep",
            "0.1", "--seeds", "1", "--methods", "boom,random", "--out-dir", str(out)]
    env = {k: v for k, v in os.environ.items() if k != "TINYSIFT_TRACEBACK"}

    def bench(boom: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path,
                              env={**env, "BOOM": boom})

    r = bench("error")
    err = " ".join(r.stderr.split())
    assert r.returncode == 2, r.stderr[-3000:]
    assert "[seed 0] boom keep 0.1 FAILED: boom cannot score these samples" in err
    assert ("error: 1 task failed: seed 0 boom keep 0.1 (boom cannot score these samples). "
            "no results files written") in err
    assert "rerun the same command to train only the failed ones" in err
    assert "Traceback" not in r.stderr
    # the tasks after the failed one trained and were logged
    assert _rows(out / "progress") == [(0, "full", "1"), (0, "random", "0.1")]
    assert not (out / "prune_digits.json").exists()  # seed 0 is not complete

    # an unexpected error: reported as a bug (exit 1); nothing else trains again
    r = bench("bug")
    err = " ".join(r.stderr.split())
    assert r.returncode == 1, r.stderr[-3000:]
    assert "resuming: 2 trainings already" in err
    assert "seed 0 boom keep 0.1 (unexpected ValueError: boom's bug)" in err
    assert "a bug in tinysift" in err
    assert _rows(out / "progress") == [(0, "full", "1"), (0, "random", "0.1")]

    r = bench("")  # fixed: only the failed task trains
    assert r.returncode == 0, r.stderr[-3000:]
    assert _rows(out / "progress") == [(0, "full", "1"), (0, "random", "0.1"),
                                       (0, "boom", "0.1")]
    res = json.loads((out / "prune_digits.json").read_text())
    assert set(res["methods"]) == {"boom", "random"} and res["seeds"] == 1


def test_bad_keeps_and_per_class_are_refused_before_any_training(tmp_path):
    """From code, a keep out of (0, 1] (or a count above the training set) and a K below 1
    failed inside every method's task, after the full-data training; now they are refused
    first (the CLI refused them already)."""
    import pytest

    from tinysift.bench.condense import CondenseBenchConfig, bench_condense
    from tinysift.bench.prune import PruneBenchConfig, bench_prune
    from tinysift.errors import BudgetError, TinysiftError

    for keeps in ((0.1, 1.5), (5000,)):
        cfg = PruneBenchConfig(dataset="digits", keeps=keeps, methods=("random",), seeds=1,
                               out_dir=tmp_path / "out", cache_dir=None,
                               progress_dir=tmp_path / "progress")
        with pytest.raises(BudgetError, match="keep"):
            bench_prune(cfg, progress=False)
        assert not (tmp_path / "progress").exists()  # nothing trained
    cfg = CondenseBenchConfig(dataset="digits", per_class=(0, 2), methods=("random",),
                              seeds=1, out_dir=tmp_path / "out",
                              progress_dir=tmp_path / "progress")
    with pytest.raises(TinysiftError, match="--per-class takes samples per class >= 1"):
        bench_condense(cfg)
    assert not (tmp_path / "progress").exists()  # nothing trained


def test_condense_results_record_their_config(tmp_path):
    """Like prune and guided results, a condense results file holds its configuration (the
    recipe text held only part of it)."""
    from tinysift.bench.condense import CondenseBenchConfig, bench_condense

    cfg = CondenseBenchConfig(dataset="digits", per_class=(1,), methods=("random",), seeds=1,
                              min_steps=20, subset_epochs=1, out_dir=tmp_path / "out",
                              progress_dir=None)
    bench_condense(cfg)
    saved = json.loads((tmp_path / "out" / "condense_digits.json").read_text())
    assert saved["config"]["min_steps"] == 20 and saved["config"]["per_class"] == [1]
    assert saved["config"]["methods"] == ["random"] and saved["config"]["progress_dir"] is None


def _boom(kind: str) -> dict:
    """A task's work: ``ok`` gives a row, else it raises as ``kind`` says."""
    if kind == "oom":
        raise MemoryError("Unable to allocate 9.3 GiB for an array")
    if kind == "bug":
        raise ValueError("a bug")
    return {"acc": 0.5}


def _row(scores: dict) -> dict:
    """A training's work on a shared task's result (its scores)."""
    return {"acc": scores["acc"]}


def _serial_bench(tmp_path, kinds: list[str]):
    """run_seeds over one task a seed (``kinds[seed]``), serially, on a real progress log."""
    from tinysift.bench.driver import run_seeds
    from tinysift.bench.executor import SerialExecutor
    from tinysift.bench.progress import ProgressLog

    ex, log, written = SerialExecutor(), ProgressLog({"bench": "t"}, tmp_path, "t"), []

    def submit(seed: int) -> list:
        return [(ex.submit(_boom, kinds[seed]),
                 lambda done, s=seed: log.add(s, "m", "1", **done.value), "m")]

    def bench() -> None:
        run_seeds(ex, log, len(kinds), submit, lambda n, wall: {"seeds": n}, written.append,
                  say=lambda _: None)
    return bench, log, written


def test_a_task_out_of_memory_is_no_bug(tmp_path):
    """The CLI reports out of memory as the machine's limit (exit status 2), not as a bug; a
    bench task that ran out of memory made the bench's closing error a TasksFailedBug: "a
    bug in tinysift" (exit status 1)."""
    bench, _log, _ = _serial_bench(tmp_path / "oom", ["oom", "ok"])
    with pytest.raises(TasksFailed, match=r"seed 0 m \(out of memory \(Unable to allocate"):
        bench()
    bench, _log, _ = _serial_bench(tmp_path / "bug", ["oom", "bug"])
    with pytest.raises(TasksFailedBug, match="unexpected ValueError: a bug"):
        bench()


def test_a_seed_after_a_failed_one_keeps_its_wall_time(tmp_path):
    """A seed whose tasks all ran in one serial go has its wall time logged; after a failed
    seed, the later ones (run in one go) had none: it was logged only once the seeds before
    them were complete, and on the rerun they are no longer fresh."""
    bench, log, written = _serial_bench(tmp_path, ["oom", "ok", "ok"])
    with pytest.raises(TasksFailed):
        bench()
    walls = log.seed_walls(3)
    assert walls[0] is None and walls[1] is not None and walls[2] is not None
    assert written == []  # seed 0 is not complete: no results file claims seeds 1 and 2


def test_fewer_seeds_than_the_log_holds_are_said(tmp_path):
    """A bench run with fewer seeds than its folder's results rewrote them with fewer,
    silently (ten seeds of trainings were still in the log, but nothing said so): the run
    now names the log's later seeds and the --seeds that reports them without training."""
    from tinysift.bench.driver import run_seeds, say_later_seeds, seed_list
    from tinysift.bench.executor import SerialExecutor
    from tinysift.bench.progress import ProgressLog

    def run(seeds: int, kind: str = "ok", folder=tmp_path) -> tuple[list, list]:
        ex, log, said, written = SerialExecutor(), ProgressLog({"b": 1}, folder, "t"), [], []

        def submit(seed: int) -> list:
            if log.get(seed, "m", "1"):
                return []
            return [(ex.submit(_boom, kind),
                     lambda done, s=seed: log.add(s, "m", "1", **done.value), "m")]
        try:
            run_seeds(ex, log, seeds, submit, lambda n, wall: {"seeds": n}, written.append,
                      say=lambda line: said.append((line, len(written))))
        except Exception as exc:  # noqa: BLE001 - the failure case below
            said.append((type(exc).__name__, len(written)))
        return [line for line, _ in said], [at for _, at in said] if kind != "ok" else written

    assert run(5) == ([], [{"seeds": n} for n in range(1, 6)])
    said, written = run(3)
    assert written[-1] == {"seeds": 3}
    assert len(said) == 1 and said[0].startswith("the progress log t_")
    assert "also holds trainings of seeds 3-4: these results report seeds 0-2 only; " \
           "--seeds 5 reports those too" in said[0]
    assert "seed 0 only" in run(1)[0][0]
    assert run(5)[0] == []
    assert seed_list([4]) == "seed 4" and seed_list([3, 5, 8]) == "seeds 3, 5, 8"
    # said before the results are rewritten, and again after trainings (their lines push
    # the first notice away), a failed one too: seeds 3-4 logged, seeds 0-2 to train
    later = tmp_path / "later"
    for seed in (3, 4):
        ProgressLog({"b": 1}, later, "t").add(seed, "m", "1", acc=0.5)
    said, written = run(3, folder=later)
    assert len(said) == 2 and all("seeds 3-4" in line for line in said)
    assert written == [{"seeds": n} for n in range(1, 4)]
    said, at = run(3, kind="oom", folder=tmp_path / "failing")
    assert len(said) == 3 + 1 and said[-1] == "TasksFailed"  # no later seeds: no notice
    assert not any("also holds" in line for line in said)
    for seed in (3, 4):
        ProgressLog({"b": 1}, tmp_path / "failing", "t").add(seed, "m", "1", acc=0.5)
    said, at = run(3, kind="oom", folder=tmp_path / "failing")
    assert "seeds 3-4" in said[0] and at[0] == 0  # before any results file is written
    assert "seeds 3-4" in said[-2] and said[-1] == "TasksFailed"
    # the device bench from a first seed (the demo's --seed 3): no --seeds that would say it
    said = []
    say_later_seeds(ProgressLog({"b": 1}, tmp_path, "t"), [3], said.append)
    assert said == [said[0]] and said[0].endswith("holds trainings of seed 4: these results "
                                                  "report seed 3 only")


def test_serial_benches_say_the_later_seeds_at_the_end_when_they_ran_tasks(tmp_path):
    """The device and upkeep benches said the log's later seeds only after a clean finish
    (a failed task raised first): the notice now comes at the end whenever tasks ran,
    before the failure's error, and not twice when nothing ran."""
    from tinysift.bench.driver import SerialTasks
    from tinysift.bench.progress import ProgressLog

    log = ProgressLog({"b": 1}, tmp_path, "t")
    log.add(4, "m", "1", acc=0.5)
    said: list[str] = []
    idle = SerialTasks(say=said.append)
    idle.finish(log, 2, 2, reported=[0, 1])
    assert said == []  # nothing ran: the start's notice is enough
    tasks = SerialTasks(say=said.append)
    assert tasks.run(0, "m", _boom, "ok") == {"acc": 0.5}
    assert tasks.run(1, "m", _boom, "oom") is None and tasks.ran == 2
    with pytest.raises(TasksFailed):
        tasks.finish(log, 1, 2, reported=[0, 1])
    assert "also holds trainings of seed 4: these results report seeds 0-1 only" in said[-1]


def test_the_closing_error_groups_tasks_by_error_and_says_what_was_written(tmp_path):
    """The error a bench with failed tasks ends with: the tasks that failed with one error
    grouped under its first line, eight errors listed and the rest counted, what the results
    files hold, and a bug (not a TinysiftError) said with its type and kept as the cause."""
    from tinysift.bench.driver import Failure, failed_tasks
    from tinysift.bench.progress import ProgressLog
    from tinysift.errors import TinysiftError

    log = ProgressLog({"b": 1}, tmp_path, "t")
    clean = TinysiftError("no samples left\n(a second line)")
    one = failed_tasks([Failure(0, "vq keep 0.1", clean)], log, 0, 2)
    assert type(one) is TasksFailed
    assert str(one).startswith("1 task failed: seed 0 vq keep 0.1 (no samples left). no "
                               "results files written")
    both = failed_tasks([Failure(0, "vq keep 0.1", clean), Failure(1, "vq keep 0.1", clean)],
                        log, 1, 2)
    assert str(both).startswith("2 tasks failed: seed 0 vq keep 0.1, seed 1 vq keep 0.1 (no "
                                "samples left). results files written for the first 1 of 2 "
                                "seeds")
    bugs = [Failure(0, f"m{i}", ValueError(f"bug {i}")) for i in range(10)]
    error = failed_tasks(bugs, log, 0, 1)
    assert type(error) is TasksFailedBug and error.__cause__ is bugs[0].error
    assert ("seed 0 m7 (unexpected ValueError: bug 7); 2 more errors (said above as they "
            "failed)") in str(error)


def test_a_serial_bench_stops_at_a_device_that_is_unavailable_and_says_each_failure(tmp_path):
    """A device bench's run that fails is said as it fails and the bench goes on; one every
    other run would repeat (the emulator does not start) ends it at once; at the end, the
    logged rows the bench left out are named."""
    from tinysift.bench.driver import SerialTasks
    from tinysift.bench.progress import ProgressLog
    from tinysift.errors import DeviceUnavailable

    log = ProgressLog({"b": 1}, tmp_path, "t")
    log.add(0, "old", "1", acc=0.5)  # a method this run does not report
    said: list[str] = []
    tasks = SerialTasks(say=said.append)
    log.get(0, "m", "1")
    assert tasks.run(0, "m", _boom, "oom") is None
    assert said == ["[seed 0] m FAILED: out of memory (Unable to allocate 9.3 GiB for an "
                    "array)"]

    def unavailable() -> None:
        raise DeviceUnavailable("qemu-system-arm is not installed")
    with pytest.raises(DeviceUnavailable):
        tasks.run(0, "m", unavailable)
    with pytest.raises(TasksFailed):
        tasks.finish(log, 0, 1, reported=[0])
    assert "also holds trainings these results leave out: old keep 1" in said[-1]


def test_a_seed_resumed_or_with_a_failed_task_gets_no_wall_time(tmp_path):
    """A seed's wall time is logged only when all its tasks ran, and succeeded, in one go: a
    seed resumed half-way, or one whose first task failed before its last succeeded, would
    report the time of part of its work."""
    from tinysift.bench.driver import run_seeds
    from tinysift.bench.executor import SerialExecutor
    from tinysift.bench.progress import ProgressLog

    ex, log = SerialExecutor(), ProgressLog({"b": 1}, tmp_path, "t")
    log.add(0, "a", "1", acc=0.5)  # seed 0 resumes: its "a" is logged

    def submit(seed: int) -> list:
        kinds = {"b": "bug" if seed == 1 else "ok", "a": "ok"}  # seed 1: b fails first
        return [(ex.submit(_boom, kind), lambda done, s=seed, m=method: log.add(
                    s, m, "1", **done.value), method)
                for method, kind in kinds.items() if log.get(seed, method, "1") is None]

    with pytest.raises(TasksFailedBug):
        run_seeds(ex, log, 3, submit, lambda n, wall: {"seeds": n}, lambda res: None,
                  say=lambda _: None)
    walls = ProgressLog({"b": 1}, tmp_path, "t").seed_walls(3)
    assert walls[0] is None and walls[1] is None and walls[2] is not None


def test_a_failed_shared_task_is_named_by_the_tasks_that_need_it(tmp_path):
    """A shared (scoring) task that fails fails the trainings that need it, which are said
    and listed; it is listed itself (as "a scoring task") only where no training of its seed
    names the failure, and never said on its own."""
    from tinysift.bench.driver import run_seeds
    from tinysift.bench.executor import SerialExecutor
    from tinysift.bench.progress import ProgressLog

    ex, log, said = SerialExecutor(), ProgressLog({"b": 1}, tmp_path, "t"), []

    def submit(seed: int) -> list:
        shared = ex.submit(_boom, "bug")
        tasks = [(shared, None)]
        if seed == 0:  # seed 0's training needs the scores; seed 1's does not
            tasks.append((ex.submit(_row, shared), lambda done: log.add(0, "vq", "1",
                                                                        **done.value),
                          "vq keep 1"))
        else:
            tasks.append((ex.submit(_boom, "ok"), lambda done: log.add(1, "random", "1",
                                                                       **done.value),
                          "random keep 1"))
        return tasks

    with pytest.raises(TasksFailedBug) as error:
        run_seeds(ex, log, 2, submit, lambda n, wall: {"seeds": n}, lambda res: None,
                  say=said.append)
    assert str(error.value).startswith("2 tasks failed: seed 0 vq keep 1, seed 1 a scoring "
                                       "task (unexpected ValueError: a bug).")
    assert said == ["[seed 0] vq keep 1 FAILED: unexpected ValueError: a bug"]
    assert log.get(1, "random", "1") is not None  # the other task ran on


def test_a_seeds_wall_time_covers_all_its_tasks_and_none_when_a_later_task_fails(tmp_path):
    """A seed's wall time runs from its first task to its last (it was reset at each task,
    timing the last only), and a seed whose first task succeeded but a later one failed has
    none: its time after the first task described part of its work."""
    from tinysift.bench.driver import run_seeds
    from tinysift.bench.executor import SerialExecutor
    from tinysift.bench.progress import ProgressLog

    ex, log = SerialExecutor(), ProgressLog({"b": 1}, tmp_path, "t")

    def slow(kind: str) -> dict:
        time.sleep(0.1)
        return _boom(kind)

    def submit(seed: int) -> list:
        kinds = {"a": "ok", "b": "bug" if seed == 1 else "ok"}  # seed 1: b fails last
        return [(ex.submit(slow if method == "a" else _boom, kind),
                 lambda done, m=method: log.add(seed, m, "1", **done.value), method)
                for method, kind in kinds.items()]

    with pytest.raises(TasksFailedBug):
        run_seeds(ex, log, 2, submit, lambda n, wall: {"seeds": n}, lambda res: None,
                  say=lambda _: None)
    walls = ProgressLog({"b": 1}, tmp_path, "t").seed_walls(2)
    assert walls[0] is not None and walls[0] >= 0.1 and walls[1] is None


def test_a_bench_with_every_training_logged_returns_its_results_and_names_the_rows_left_out(
        tmp_path):
    """A rerun that trains nothing (every asked training is in the log) still writes and
    returns its results, and names the logged rows it leaves out: said before the results
    are rewritten, the only notice when no training's lines push it away."""
    from tinysift.bench.driver import run_seeds
    from tinysift.bench.executor import SerialExecutor
    from tinysift.bench.progress import ProgressLog

    log = ProgressLog({"b": 1}, tmp_path, "t")
    log.add(0, "m", "1", acc=0.5)
    log.add(0, "old", "1", acc=0.5)  # a method this run does not report
    again, said, written = ProgressLog({"b": 1}, tmp_path, "t"), [], []

    def submit(seed: int) -> list:
        assert again.get(seed, "m", "1") is not None
        return []

    results = run_seeds(SerialExecutor(), again, 1, submit, lambda n, wall: {"seeds": n},
                        written.append, say=said.append)
    assert results == {"seeds": 1} and written == [results]
    assert len(said) == 1 and "leave out: old keep 1; name those methods" in said[0]


def test_a_serial_bench_that_ran_nothing_names_the_rows_left_out_and_says_what_it_wrote(
        tmp_path):
    """The device and upkeep benches name the logged rows they leave out only at the end
    (:meth:`SerialTasks.finish`), so a rerun whose every row was logged must say them too;
    and the closing error says how many seeds the results files hold, of how many."""
    from tinysift.bench.driver import SerialTasks
    from tinysift.bench.progress import ProgressLog

    log = ProgressLog({"b": 1}, tmp_path, "t")
    log.add(0, "old", "1", acc=0.5)  # a method this run does not report
    log.add(0, "m", "1", acc=0.5)
    again = ProgressLog({"b": 1}, tmp_path, "t")
    again.get(0, "m", "1")
    said: list[str] = []
    SerialTasks(say=said.append).finish(again, 1, 1, reported=[0])
    assert len(said) == 1 and "leave out: old keep 1" in said[0]
    tasks = SerialTasks(say=said.append)
    tasks.run(1, "m", _boom, "oom")
    with pytest.raises(TasksFailed, match="results files written for the first 1 of 2 seeds"):
        tasks.finish(again, 1, 2)


def test_the_closing_error_lists_eight_errors_whole_and_says_how_to_rerun_without_a_log():
    """Eight errors are all listed (none counted as "more"); a bench without a progress log
    (--quick) tells the user to run it all again (no rerun trains only the failed ones);
    an error without text (a bare ``assert`` in a plug-in method) is still listed, by its
    type."""
    from tinysift.bench.driver import Failure, failed_tasks
    from tinysift.bench.progress import ProgressLog
    from tinysift.errors import TinysiftError

    log = ProgressLog({"b": 1}, None, "t")
    eight = [Failure(0, f"m{i}", TinysiftError(f"error {i}")) for i in range(8)]
    message = str(failed_tasks(eight, log, 0, 1))
    assert "seed 0 m7 (error 7). no results files written" in message
    assert "more errors" not in message
    assert message.endswith("this bench keeps no progress log (--quick): rerun the command "
                            "to run it all again")
    bare = failed_tasks([Failure(0, "m", AssertionError())], log, 0, 1)
    assert type(bare) is TasksFailedBug
    assert str(bare).startswith("1 task failed: seed 0 m (unexpected AssertionError)")
