"""Benches on a cluster (``--executor``, docs/scale.md): a 2-worker local Dask cluster gives the
serial run's accuracies, a killed cluster bench resumes without repeating finished trainings,
and bad executors are one clear line with exit status 2.

The cluster tests need the ``dask`` extra, which tools/setup.sh installs: they do not skip."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

# Two methods keep this quick: random (no scoring) and el2n (the proxy CNN's training
# dynamics, a shared task on a cluster, charged to the method as if it ran alone).
METHODS = "random,el2n"
CLI = [sys.executable, "-m", "tinysift.cli.app"]


def _accuracies(res: dict) -> dict:
    return {"full": res["full_data_acc"]["runs"],
            **{m: {k: v["runs"] for k, v in per.items()} for m, per in res["methods"].items()}}


@pytest.fixture(scope="module")
def serial_quick(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("serial")
    r = subprocess.run(CLI + ["bench", "prune", "--quick", "--methods", METHODS,
                              "--out-dir", str(out)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((out / "prune_digits_quick.json").read_text())
    assert "executor" not in res  # serial results keep the fields they always had
    return res


def test_local_cluster_matches_serial(serial_quick, tmp_path):
    r = subprocess.run(CLI + ["bench", "prune", "--quick", "--methods", METHODS,
                              "--executor", "local:2", "--out-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "prune_digits_quick.json").read_text())
    assert _accuracies(res) == _accuracies(serial_quick)
    assert res["executor"]["spec"] == "local:2" and res["executor"]["workers"] == 2
    assert res["executor"]["engine"].startswith("dask ")
    # Cost accounting unchanged: el2n is still charged the proxy CNN it used.
    assert (res["methods"]["el2n"]["0.1"]["score_seconds"]
            > res["methods"]["random"]["0.1"]["score_seconds"])


RESUMABLE = textwrap.dedent("""
    import sys
    from pathlib import Path

    from tinysift.bench.executor import open_executor
    from tinysift.bench.prune import PruneBenchConfig, bench_prune

    if __name__ == "__main__":  # Dask's worker processes import this module again
        # `bench prune --quick`'s configuration, with a progress log.
        tmp = Path(sys.argv[1])
        cfg = PruneBenchConfig(dataset="digits", keeps=(0.1,), seeds=1,
                               methods=tuple(sys.argv[2].split(",")), min_steps=60,
                               subset_epochs=2, proxy_epochs=2, quick=True, out_dir=tmp / "out",
                               cache_dir=None, progress_dir=tmp / "progress",
                               method_params={"flow": {"flow": {"steps": 100}}})
        with open_executor("local:2") as ex:
            bench_prune(cfg, progress=False, executor=ex)
""")


def _records(log) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(ln) for ln in log.read_text().splitlines()
            if ln.endswith("}") and '"method"' in ln]


def test_killed_cluster_bench_resumes(serial_quick, tmp_path):
    """Kill the driver (and its local cluster) once a training is logged; the rerun trains
    only what is missing, and the numbers are still the serial run's."""
    script = tmp_path / "bench.py"
    script.write_text(RESUMABLE)
    args = [sys.executable, str(script), str(tmp_path), METHODS]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    log_dir = tmp_path / "progress"
    try:
        deadline = time.monotonic() + 400
        while not any(_records(p) for p in log_dir.glob("*.jsonl")):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no training finished in time"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, like a hard kill
        proc.wait()
        proc.stderr.close()
    (log,) = log_dir.glob("*.jsonl")
    before = log.read_text()
    finished = {(r["seed"], r["method"], r["keep"]) for r in _records(log)}
    assert 1 <= len(finished) < 3, "the kill came too late to test resuming"

    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"resuming: {len(finished)} trainings already" in r.stderr
    complete = [ln for ln in before.splitlines() if ln.endswith("}")]
    assert log.read_text().splitlines()[:len(complete)] == complete  # kept as they were
    keys = [(r["seed"], r["method"], r["keep"]) for r in _records(log)]
    assert len(keys) == len(set(keys)) == 3  # full, random and el2n: none trained twice
    res = json.loads((tmp_path / "out" / "prune_digits_quick.json").read_text())
    assert _accuracies(res) == _accuracies(serial_quick)


def _one_line_error(argv: list[str], pre: str = "", timeout: int = 120) -> str:
    code = f"{pre}import sys; from tinysift.cli.app import main; sys.exit(main(sys.argv[1:]))"
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


QUICK = ["bench", "prune", "--quick", "--methods", "random", "--out-dir", "/nonexistent/x"]


def test_bad_executors_are_one_clear_line():
    assert "Dask, not Ray" in _one_line_error(QUICK + ["--executor", "ray:10.0.0.1:6379"])
    assert "unknown --executor" in _one_line_error(QUICK + ["--executor", "spark"])
    assert "number of workers" in _one_line_error(QUICK + ["--executor", "local:0"])
    # The extra missing: what to install.
    line = _one_line_error(QUICK + ["--executor", "local:2"],
                           pre="import sys; sys.modules['distributed'] = None; ")
    assert "pip install 'tinysift[dask]'" in line
    # Nothing listening: what to start, and where.
    line = _one_line_error(QUICK + ["--executor", "dask:tcp://127.0.0.1:9"])
    assert "cannot reach a Dask scheduler at tcp://127.0.0.1:9" in line
    assert "dask scheduler" in line
    # An address Dask cannot parse (no port) was "unexpected ValueError ... a bug in tinysift".
    line = _one_line_error(QUICK + ["--executor", "dask:tcp://localhost"])
    assert "missing port" in line and "dask:tcp://HOST:PORT" in line
    # `dask` alone connects where DASK_SCHEDULER_ADDRESS says (here: no port either)
    line = _one_line_error(QUICK + ["--executor", "dask"], pre="import os; os.environ["
                           "'DASK_SCHEDULER_ADDRESS'] = 'tcp://localhost'; ")
    assert "--executor dask: missing port number in address 'localhost'" in line


def test_a_task_that_kills_its_workers_is_one_line_and_keeps_the_finished_rows(tmp_path):
    """A worker dying under a task at every try (out of memory, a crash) is the cluster's
    failure, not a bug of the task: that task fails with a ClusterError line saying the run
    resumes (the bench's closing error lists it), and the other rows stay in the log."""
    # distributed imported first: its defaults are in dask's config before the set below,
    # whose exit restores what it found (else no "distributed" key at all afterwards)
    import dask
    import distributed  # noqa: F401

    from tinysift.bench.driver import run_seeds
    from tinysift.bench.executor import open_executor
    from tinysift.bench.progress import ProgressLog
    from tinysift.errors import ClusterError, TasksFailed

    log = ProgressLog({"bench": "killed"}, tmp_path, "killed")
    written = []

    def submit(seed: int) -> list:
        # seed 0 finishes; seed 1's task kills its worker (os._exit in the worker process),
        # after the driver has fetched seed 0's result: a result lost with its worker before
        # that is computed again (or errs) at Dask's discretion
        future = (ex.submit(dict, [("acc", 0.5)]) if seed == 0 else
                  ex.submit(exec, "import os, time; time.sleep(3); os._exit(1)"))
        return [(future, lambda done, s=seed: log.add(s, "m", "1", **done.value), "m")]

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with open_executor("local:1", say=lambda _: None) as ex:
            with pytest.raises(TasksFailed, match="seed 1 m .*killed every Dask worker.*"
                                                  "resumes"):
                run_seeds(ex, log, 2, submit, lambda n, wall: {"seeds": n}, written.append,
                          say=lambda _: None)
            cancelled = ex.submit(time.sleep, 30)
            cancelled.cancel()  # as when its inputs are lost with a worker
            with pytest.raises(ClusterError, match="cancelled a task.*resumes"):
                ex.result(cancelled)
    assert ex.cluster.status.name == "closed"  # the local cluster stopped with the bench
    assert written == [{"seeds": 1, "executor": written[0]["executor"]}]
    again = ProgressLog({"bench": "killed"}, tmp_path, "killed")
    assert again.get(0, "m", "1")["acc"] == 0.5
    assert again.seed_walls(1) == [None]  # on a cluster seeds overlap: no seed wall time


def test_a_worker_with_other_tinysift_source_is_refused():
    """Editable installs all say tinysift 0.1.0: the workers' check compared only package
    versions, so a worker running other source code passed and computed other numbers."""
    from types import SimpleNamespace

    from tinysift.bench.executor import _check_workers, worker_facts
    from tinysift.errors import ClusterError

    def executor(source: str, more_threads: int = 0, numpy: str | None = None):
        facts = worker_facts()
        facts["versions"] = {**facts["versions"], "tinysift_source": source,
                             **({"numpy": numpy} if numpy else {})}
        facts["tf_threads"] += more_threads
        client = SimpleNamespace(scheduler=SimpleNamespace(address="tcp://x:1"),
                                 wait_for_workers=lambda n, timeout: None,
                                 run=lambda fn: {"tcp://w:2": facts})
        return SimpleNamespace(client=client, workers={})

    said = []
    _check_workers(executor(worker_facts()["versions"]["tinysift_source"]), said.append)
    with pytest.raises(ClusterError, match="tinysift_source 0000 .*install the same"):
        _check_workers(executor("0000"), said.append)
    assert said == []  # the same TensorFlow threads: nothing to warn about
    here = worker_facts()
    with pytest.raises(ClusterError, match="numpy 0.0 .*install the same"):
        _check_workers(executor(here["versions"]["tinysift_source"], numpy="0.0"), said.append)
    # other thread counts give other accuracies: warned, not refused
    _check_workers(executor(here["versions"]["tinysift_source"], more_threads=1), said.append)
    assert said == [f"warning: workers run TensorFlow with {here['tf_threads'] + 1} intra-op "
                    f"threads, this machine with {here['tf_threads']}: their accuracies will "
                    "not be bit-identical to a serial run here (start the workers with "
                    f"TF_NUM_INTRAOP_THREADS={here['tf_threads']})"]


def test_tensorflows_thread_count_follows_tf_num_intraop_threads(monkeypatch):
    """The thread count a worker matches (and the warning compares) is
    TF_NUM_INTRAOP_THREADS where set, else one per CPU this process may use."""
    from tinysift.bench.executor import tf_intra_threads

    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "3")
    assert tf_intra_threads() == 3
    monkeypatch.delenv("TF_NUM_INTRAOP_THREADS")
    assert tf_intra_threads() == len(os.sched_getaffinity(0))


def test_tf_num_intraop_threads_0_is_one_thread_per_cpu(monkeypatch):
    """TF_NUM_INTRAOP_THREADS=0 is TensorFlow's "pick for me", one thread per CPU as when
    unset: the count a worker matches and the warning names is that, not 0."""
    from tinysift.bench.executor import tf_intra_threads

    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "0")
    assert tf_intra_threads() == len(os.sched_getaffinity(0))


WORKER_THREADS = textwrap.dedent("""
    import json
    import os

    import numpy  # BLAS loaded at one thread, as Dask's nanny starts a worker
    from threadpoolctl import threadpool_info

    from tinysift.bench.executor import run_task

    omp = run_task(os.environ.get, "OMP_NUM_THREADS").value
    print(json.dumps([omp, os.environ["OPENBLAS_NUM_THREADS"],
                      sorted({pool["num_threads"] for pool in threadpool_info()})]))
""")


def test_a_worker_task_gives_blas_and_openmp_as_many_threads_as_tensorflows_pool():
    """Dask's nanny starts workers with OMP/MKL/OPENBLAS_NUM_THREADS=1 while a serial run has
    the process defaults, and scikit-learn's k-means and BLAS sums depend on their thread
    count: a worker's task runs with as many threads as TensorFlow's pool, in the
    environment (libraries loaded later) and in the BLAS already loaded."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "3"}
    r = subprocess.run([sys.executable, "-c", WORKER_THREADS], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout) == ["3", "3", [3]]


def _client(run=None, wait_for_workers=None):
    """A Dask client's surface that _check_workers and DaskExecutor.info use: a scheduler
    at tcp://x:1, ``run`` and ``wait_for_workers`` as given."""
    from types import SimpleNamespace

    return SimpleNamespace(scheduler=SimpleNamespace(address="tcp://x:1"), run=run,
                           wait_for_workers=wait_for_workers or (lambda n, timeout: None))


def test_workers_missing_or_unable_to_run_tinysift_are_one_line_saying_what_to_start():
    """A scheduler without workers, and workers that cannot even run tinysift's call (no
    tinysift installed there), end the connection with a ClusterError line naming the
    scheduler and what to do, not a Dask traceback."""
    from types import SimpleNamespace

    from tinysift.bench.executor import WORKERS_TIMEOUT_S, _check_workers
    from tinysift.errors import ClusterError

    def no_workers(n: int, timeout: float) -> None:
        raise TimeoutError("no workers")

    def cannot_unpickle(fn) -> dict:
        raise ModuleNotFoundError("No module named 'tinysift'")

    empty = SimpleNamespace(client=_client(wait_for_workers=no_workers), workers={})
    with pytest.raises(ClusterError, match=rf"at tcp://x:1 has no workers after "
                                           rf"{WORKERS_TIMEOUT_S} s: start some with `dask "
                                           r"worker tcp://x:1`"):
        _check_workers(empty, print)
    without = SimpleNamespace(client=_client(run=cannot_unpickle), workers={})
    with pytest.raises(ClusterError, match=r"workers of tcp://x:1 cannot run tinysift's tasks "
                                           r"\(ModuleNotFoundError: No module named "
                                           r"'tinysift'\): install the same tinysift on "
                                           r"every worker \(pip install 'tinysift\[dask\]'\)"):
        _check_workers(without, print)


def test_a_worker_with_another_tensorflow_keras_or_scikit_learn_is_refused():
    """Each package whose version changes a training's numbers is compared, not only numpy
    and tinysift: a worker with another TensorFlow, tf-keras or scikit-learn is refused,
    named with both versions."""
    import re
    from types import SimpleNamespace

    from tinysift.bench.executor import _check_workers, worker_facts
    from tinysift.errors import ClusterError

    here = worker_facts()
    for package in ("tensorflow", "tf-keras", "scikit-learn"):
        facts = {**here, "versions": {**here["versions"], package: "0.0"}}
        worker = SimpleNamespace(client=_client(run=lambda fn, f=facts: {"tcp://w:2": f}),
                                 workers={})
        refused = f"worker tcp://w:2 has {package} 0.0 (here {here['versions'][package]})"
        with pytest.raises(ClusterError, match=re.escape(refused)):
            _check_workers(worker, print)


def test_a_cluster_results_file_counts_the_workers_of_each_machine():
    """The executor's description in a cluster bench's results file: its spec, engine and
    address, every worker, and each machine once with its facts and its number of workers."""
    from tinysift.bench.executor import DaskExecutor

    def facts(host: str) -> dict:
        return {"hostname": host, "cpus": 8, "processor": "x86_64", "tf_threads": 8,
                "versions": {}}

    ex = DaskExecutor("dask:tcp://x:1", _client())
    ex.workers = {"tcp://a:1": facts("a"), "tcp://b:1": facts("b"), "tcp://a:2": facts("a")}
    info = ex.info()
    assert info["spec"] == "dask:tcp://x:1" and info["address"] == "tcp://x:1"
    assert info["engine"].startswith("dask ") and info["workers"] == 3
    assert info["machines"] == [
        {"hostname": "a", "cpus": 8, "processor": "x86_64", "tf_threads": 8, "workers": 2},
        {"hostname": "b", "cpus": 8, "processor": "x86_64", "tf_threads": 8, "workers": 1}]


def test_dask_without_an_address_is_refused_before_connecting():
    """``--executor dask`` with no address (none after the colon, no
    DASK_SCHEDULER_ADDRESS) says how to give one; Dask's Client given none would start a
    cluster of its own here instead."""
    import dask

    from tinysift.bench.executor import connect
    from tinysift.errors import ClusterError

    with dask.config.set({"scheduler-address": None}):
        with pytest.raises(ClusterError, match="--executor dask needs the scheduler's address: "
                                               "--executor dask:tcp://HOST:8786"):
            connect("dask")


def test_workers_of_an_older_tinysift_or_of_mixed_thread_counts_are_caught():
    """A worker whose facts lack a version this process compares (a tinysift from before
    its sources were hashed) is refused, the version said as unknown; workers of which only
    some run TensorFlow with this machine's thread count are warned about, both counts
    named."""
    from types import SimpleNamespace

    from tinysift.bench.executor import _check_workers, worker_facts
    from tinysift.errors import ClusterError

    here = worker_facts()
    older = {**here, "versions": {k: v for k, v in here["versions"].items()
                                  if k != "tinysift_source"}}
    old = SimpleNamespace(client=_client(run=lambda fn: {"tcp://w:2": older}), workers={})
    with pytest.raises(ClusterError, match=r"worker tcp://w:2 has tinysift_source unknown "
                                           r"\(here \w+\)"):
        _check_workers(old, print)
    more = {**here, "tf_threads": here["tf_threads"] + 1}
    mixed = SimpleNamespace(client=_client(run=lambda fn: {"tcp://w:2": here,
                                                           "tcp://w:3": more}), workers={})
    said: list[str] = []
    _check_workers(mixed, said.append)
    assert len(said) == 1 and said[0].startswith(
        f"warning: workers run TensorFlow with {here['tf_threads']}/{here['tf_threads'] + 1} "
        f"intra-op threads, this machine with {here['tf_threads']}:")


def test_serial_tasks_run_in_order_once_each_and_let_their_inputs_go():
    """The serial executor runs a bench's tasks in submission order, as their results are
    asked; a shared task runs once for all the tasks that need it, which get its value; a
    failed one raises its error for each of them without running again; a finished task
    lets its inputs (the dataset) go."""
    import weakref

    from tinysift.bench.executor import SerialExecutor

    ex, ran = SerialExecutor(), []

    def work(name: str, *inputs) -> tuple:
        ran.append(name)
        return (name, *inputs)

    shared = ex.submit(work, "shared")
    tasks = [shared, ex.submit(work, "a", shared), ex.submit(work, "b", shared)]
    assert [ex.result(t).value for t in ex.completed(tasks)] == [
        ("shared",), ("a", ("shared",)), ("b", ("shared",))]
    assert ran == ["shared", "a", "b"]

    def fail() -> None:
        ran.append("fail")
        raise ValueError("no scores")

    failed = ex.submit(fail)
    for task in (failed, ex.submit(work, "c", failed), ex.submit(work, "d", failed)):
        with pytest.raises(ValueError, match="no scores"):
            ex.result(task)
    assert ran[3:] == ["fail"]

    class Dataset:
        """Stands for the data a task trains on."""

    data = Dataset()
    gone = weakref.ref(data)
    task = ex.submit(lambda d: type(d).__name__, data)
    del data
    assert ex.result(task).value == "Dataset" and gone() is None


def test_a_worker_that_joins_later_with_other_sources_is_refused(tmp_path):
    """The workers' versions were checked once, at the connection: a worker that joined the
    scheduler later with other tinysift sources ran the tasks, and its rows were logged under
    this process's source hash. Every result now carries its worker's facts."""
    import shutil
    from pathlib import Path

    import distributed

    from tinysift.bench.driver import run_seeds
    from tinysift.bench.executor import connect
    from tinysift.bench.progress import ProgressLog
    from tinysift.errors import TasksFailed

    src = tmp_path / "src" / "tinysift"
    shutil.copytree(Path(__file__).resolve().parents[1] / "host" / "tinysift", src,
                    ignore=shutil.ignore_patterns("__pycache__"))
    with open(src / "__init__.py", "a") as f:
        f.write("# other sources\n")
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    late = None
    try:
        ex = connect(f"dask:{cluster.scheduler_address}", say=lambda _: None)
        cluster.scale(0)  # the checked worker leaves; another joins
        deadline = time.monotonic() + 60
        while ex.client.scheduler_info()["workers"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        late = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address,
             "--nthreads", "1", "--no-nanny"],
            env={**os.environ, "PYTHONPATH": str(src.parent)}, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        ex.client.wait_for_workers(1, timeout=60)
        log = ProgressLog({"bench": "late"}, tmp_path, "late")

        def submit(seed: int) -> list:
            return [(ex.submit(dict, [("acc", 0.5)]), lambda d: log.add(0, "m", "1", **d.value),
                     "m")]

        refused = r"worker \S+ has tinysift_source \w+ \(here \w+\) \(it joined after"
        with pytest.raises(TasksFailed, match=refused):
            run_seeds(ex, log, 1, submit, lambda n, wall: {}, lambda res: None,
                      say=lambda _: None)
        assert log.get(0, "m", "1") is None  # not logged
        ex.close()
    finally:
        if late is not None:
            late.kill()
            late.wait()
        cluster.close()


def test_a_failed_task_leaves_the_trainings_in_flight_to_finish_and_be_logged(tmp_path):
    """One task's error ended the bench at once: the driver left, closing the cluster, and the
    trainings in flight on the other workers were lost. Now they finish and are logged, the
    failed task is said and listed in the closing error (an unexpected error: a bug), and a
    seed with a failed task writes no results."""
    from tinysift.bench.driver import run_seeds
    from tinysift.bench.executor import open_executor
    from tinysift.bench.progress import ProgressLog
    from tinysift.errors import TasksFailedBug

    log = ProgressLog({"bench": "in flight"}, tmp_path, "flight")
    written, said = [], []
    slow = "import time; time.sleep(4)"

    def submit(seed: int) -> list:
        def handler(what):
            return lambda done: log.add(seed, what, "1", acc=0.5)
        tasks = [(ex.submit(exec, "raise ValueError('boom')"), handler("bad"), "bad")] * (
            seed == 0)
        return tasks + [(ex.submit(exec, slow), handler("slow"), "slow")]

    with pytest.raises(TasksFailedBug, match=r"1 task failed: seed 0 bad \(unexpected "
                                             r"ValueError: boom\)\. no results files "):
        with open_executor("local:2", say=lambda _: None) as ex:
            run_seeds(ex, log, 2, submit, lambda n, wall: {"seeds": n}, written.append,
                      say=said.append)
    assert ex.cluster.status.name == "closed"  # stopped though the bench ended in an error
    assert said == ["[seed 0] bad FAILED: unexpected ValueError: boom"]
    again = ProgressLog({"bench": "in flight"}, tmp_path, "flight")
    assert again.get(0, "slow", "1") and again.get(1, "slow", "1")
    assert again.get(0, "bad", "1") is None and written == []
