"""Where a bench's trainings run: here, one after another, or as tasks on a Dask cluster.

``--executor`` takes:

* ``serial`` (the default): this process, in the bench's order, as it always ran. No new
  dependency.
* ``local[:N]``: a Dask cluster of ``N`` single-threaded worker processes on this machine
  (default: one per CPU), started for the bench and stopped after it.
* ``dask:ADDRESS`` (or ``dask`` with ``DASK_SCHEDULER_ADDRESS`` set): the workers of a running
  Dask scheduler, ``tcp://HOST:8786``.
* ``ray[:ADDRESS]``: refused with a line saying why (docs/scale.md: tinysift uses Dask).

A bench submits every training (and every scoring fit several trainings share) as a task: a
module-level function of ``tinysift`` and its arguments, the dataset shipped once through
Dask's object store. Only the driver (the bench process) writes the progress log and the
results files. Serial futures run lazily, when the driver asks for their result, so the
serial path runs the same tasks in the same order as the loops it replaced.

A training's numbers depend on its seed, its data, the package versions and the number of
threads in TensorFlow's intra-op pool (inter-op threads and ``OMP_NUM_THREADS`` do not
matter; measured with op determinism on, see docs/scale.md). Workers run with
``TF_NUM_INTRAOP_THREADS`` if set, else one thread per CPU, like a serial run; the driver
warns when its workers' count differs from its own, and refuses workers whose package
versions differ.
"""

from __future__ import annotations

import functools
import os
import platform
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tinysift.errors import ClusterError

EXECUTOR_HELP = ("serial (default), local[:N] (a Dask cluster of N workers on this machine), "
                 "or dask:ADDRESS (a running Dask scheduler, tcp://HOST:8786)")
INSTALL_HINT = "pip install 'tinysift[dask]'"
CONNECT_TIMEOUT_S = 10
WORKERS_TIMEOUT_S = 60
# Versions that change a training's numbers: a worker must match the driver.
MATCHED_PACKAGES = ("tinysift", "tensorflow", "tf-keras", "numpy", "scikit-learn")


@dataclass
class TaskDone:
    """A finished task: what the function returned, the machine that ran it, and (a task on
    a cluster) that worker's :func:`worker_facts`."""

    value: Any
    worker: str
    facts: dict | None = None


def run_task(fn: Callable, *args) -> TaskDone:
    """Run ``fn(*args)`` on a worker (arguments that are finished tasks are unwrapped). The
    result carries the worker's facts (gathered once per worker process): the driver checks
    every worker that runs a task, not only those there when it connected."""
    _match_serial_threads()
    return TaskDone(fn(*_unwrap(args)), platform.node(), _this_worker_facts())


@functools.cache
def _this_worker_facts() -> dict:
    """:func:`worker_facts` of this process, gathered once (it hashes the sources)."""
    return worker_facts()


def _unwrap(args: Iterable) -> list:
    return [a.value if isinstance(a, TaskDone) else a for a in args]


def usable_cpus() -> int:
    """The CPUs this process may run on (a container's or a job's cpuset, not the machine's
    count: `local` started a worker per CPU of the machine, each with its own TensorFlow)."""
    if hasattr(os, "sched_getaffinity"):  # Linux
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def tf_intra_threads() -> int:
    """Threads of TensorFlow's intra-op pool in a process started here: what decides whether
    two processes' trainings are bit-identical."""
    return int(os.environ.get("TF_NUM_INTRAOP_THREADS") or 0) or usable_cpus()


_THREADS_SET: list[int] = []


def _match_serial_threads() -> None:
    """Dask's nanny starts workers with OMP/MKL/OPENBLAS_NUM_THREADS=1; a serial run has the
    process defaults. scikit-learn's k-means and BLAS reductions sum in per-thread chunks, so a
    worker gives them as many threads as TensorFlow's pool, as a serial process would: in the
    environment for libraries loaded later, through threadpoolctl for those already loaded."""
    if _THREADS_SET:
        return
    from threadpoolctl import threadpool_limits

    n = tf_intra_threads()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    threadpool_limits(n)
    _THREADS_SET.append(n)


class _Lazy:
    """A serial task: it runs when its result is first asked for, in this process. A task
    that failed raises its error again, as a failed Dask future does, without running again
    for each task that needs it."""

    def __init__(self, fn: Callable, args: tuple) -> None:
        self.fn, self.args = fn, args
        self.done: TaskDone | None = None
        self.error: Exception | None = None

    def result(self) -> TaskDone:
        if self.error is not None:
            raise self.error
        if self.done is None:
            try:
                args = [a.result() if isinstance(a, _Lazy) else a for a in self.args]
                self.done = TaskDone(self.fn(*_unwrap(args)), platform.node())
            except Exception as exc:
                self.error = exc
                raise
            finally:
                self.args = ()  # let the dataset and shared work go as soon as they may
        return self.done


class SerialExecutor:
    """Every task in this process, in submission order."""

    spec = "serial"
    remote = False

    def share(self, obj: Any) -> Any:
        return obj

    def submit(self, fn: Callable, *args) -> _Lazy:
        return _Lazy(fn, args)

    def completed(self, futures: list) -> Iterator:
        return iter(futures)

    def result(self, future: _Lazy) -> TaskDone:
        return future.result()

    def info(self) -> dict | None:
        return None

    def close(self) -> None:
        pass


class DaskExecutor:
    """Tasks on the workers of a Dask scheduler (``client``); ``cluster`` when this process
    started it (``local``) and stops it on close."""

    remote = True

    def __init__(self, spec: str, client, cluster=None) -> None:
        self.spec, self.client, self.cluster = spec, client, cluster
        self.workers: dict[str, dict] = {}
        self.here: dict | None = None  # this process's worker_facts(), once checked

    def share(self, obj: Any):
        """Into Dask's object store once: each worker fetches it once (from a peer or here)."""
        return self.client.scatter(obj, hash=False)

    def submit(self, fn: Callable, *args):
        return self.client.submit(run_task, fn, *args, pure=False)

    def completed(self, futures: list) -> Iterator:
        from distributed import as_completed

        return iter(as_completed(futures))

    def result(self, future) -> TaskDone:
        """The task's result; its own error as raised, but the cluster's failures (the task
        killed its worker at every try, or was cancelled: its inputs lost with a worker, the
        scheduler gone) as a :class:`ClusterError` line: they are no bug of the task."""
        from concurrent.futures import CancelledError

        from distributed import KilledWorker

        try:
            done = future.result()
        except KilledWorker as exc:
            raise ClusterError(
                "a task killed every Dask worker that ran it (KilledWorker): a worker process "
                "died under it (out of memory? a crash?), see the workers' logs. The trainings "
                "finished so far are in the progress log; rerunning the command resumes "
                "from them") from exc
        except CancelledError as exc:
            raise ClusterError(
                f"the Dask cluster cancelled a task ({type(exc).__name__}: {exc}): its inputs "
                "were lost with a worker, or the scheduler went away. The trainings finished "
                "so far are in the progress log; rerunning the command resumes from them"
                ) from exc
        if self.here is not None and done.facts is not None:
            # A worker that joined after the connection was never checked: refuse its result
            # (its records would name this process's sources) rather than log it.
            diff = _version_diff(done.facts, self.here)
            if diff:
                raise ClusterError(f"worker {done.worker} has {', '.join(diff)} (it joined "
                                   "after the connection, or its sources changed since): its "
                                   "trainings would not match a serial run; install the same "
                                   "versions there (the trainings logged so far stay)")
        return done

    def info(self) -> dict:
        """The engine and the machines of the workers, for the results file."""
        from importlib import metadata

        machines: dict[str, dict] = {}
        for facts in self.workers.values():
            m = machines.setdefault(facts["hostname"], {
                k: facts[k] for k in ("hostname", "cpus", "processor", "tf_threads")})
            m["workers"] = m.get("workers", 0) + 1
        return {"spec": self.spec, "engine": f"dask {metadata.version('distributed')}",
                "address": self.client.scheduler.address, "workers": len(self.workers),
                "machines": list(machines.values())}

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def worker_facts() -> dict:
    """What a worker reports at connection: its machine, TensorFlow threads, versions."""
    from importlib import metadata

    from tinysift.runs import code_identity, machine_info

    versions = {}
    for pkg in MATCHED_PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    # the source itself: every editable install says tinysift 0.1.0
    versions["tinysift_source"] = code_identity()["tinysift_source"]
    return {**machine_info(), "tf_threads": tf_intra_threads(), "versions": versions}


#: The most local workers per CPU (each is a process with its own TensorFlow and data)
MAX_WORKERS_PER_CPU = 4


def parse_spec(spec: str | None) -> tuple[str, str]:
    """``(kind, argument)`` of an ``--executor`` value, or a :class:`ClusterError`."""
    if spec is not None and not spec.strip():  # an unset $EXECUTOR ran serially, silently
        raise ClusterError(f"--executor is empty; use {EXECUTOR_HELP}")
    kind, _, arg = (spec or "serial").strip().partition(":")
    if kind == "ray":
        raise ClusterError(
            f"--executor {spec}: tinysift's benches run on Dask, not Ray (docs/scale.md says "
            "why); start a Dask scheduler and pass --executor dask:tcp://HOST:8786, or use "
            "--executor local[:N]")
    if kind not in ("serial", "local", "dask") or (kind == "serial" and arg):
        raise ClusterError(f"unknown --executor {spec!r}; use {EXECUTOR_HELP}")
    # ASCII digits only: "²" is a str.isdigit() digit that int() refuses
    if kind == "local" and arg and not (arg.isascii() and arg.isdigit() and int(arg) >= 1):
        raise ClusterError(f"--executor local:N takes a number of workers >= 1, got {arg!r}")
    cpus = usable_cpus()
    if kind == "local" and arg and int(arg) > MAX_WORKERS_PER_CPU * cpus:
        # local:99999 started workers until the machine gave out, then a traceback
        raise ClusterError(f"--executor local:{arg}: this process may use {cpus} CPU"
                           f"{'s' if cpus > 1 else ''} and each "
                           f"worker runs its own TensorFlow; give at most "
                           f"{MAX_WORKERS_PER_CPU * cpus} (local alone: one per CPU)")
    return kind, arg


def connect(spec: str | None, say: Callable[[str], None] = print):
    """An executor for ``spec`` (see the module docstring); errors are one clear line."""
    kind, arg = parse_spec(spec)
    if kind == "serial":
        return SerialExecutor()
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ClusterError(f"--executor {spec} needs Dask, which is not installed here: "
                           f"{INSTALL_HINT}") from exc
    if kind == "local":
        import logging

        n = int(arg) if arg else usable_cpus()
        # No memory limit: Dask would pause or restart a worker whose TensorFlow grows past
        # its share, killing a training half-way. No dashboard: nothing to serve.
        try:
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   dashboard_address=None, memory_limit=0,
                                   silence_logs=logging.ERROR)
        except Exception as exc:  # e.g. a script without a __main__ guard: workers re-run it
            raise ClusterError(
                f"could not start a local Dask cluster of {n} workers ({type(exc).__name__}: "
                f"{exc}); a script that uses --executor local must start its work under "
                "`if __name__ == '__main__':` (docs/scale.md)") from exc
        ex = DaskExecutor(f"local:{n}", Client(cluster), cluster)
    else:
        address = arg or dask.config.get("scheduler-address", None)
        if not address:
            raise ClusterError("--executor dask needs the scheduler's address: --executor "
                               "dask:tcp://HOST:8786 (start one with `dask scheduler`)")
        try:
            client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
        except ValueError as exc:  # e.g. no port: Dask cannot even parse the address
            raise ClusterError(f"--executor {spec}: {exc}; give the scheduler's address as "
                               "dask:tcp://HOST:PORT (8786 by default)") from exc
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"cannot reach a Dask scheduler at {address} within {CONNECT_TIMEOUT_S} s: "
                f"start one there with `dask scheduler` and workers with `dask worker "
                f"{address}` (docs/scale.md), or check the address") from exc
        ex = DaskExecutor(f"dask:{address}", client)
    try:
        _check_workers(ex, say)
    except BaseException:
        ex.close()
        raise
    return ex


def _check_workers(ex: DaskExecutor, say: Callable[[str], None]) -> None:
    """Wait for a worker, then refuse workers that would compute different numbers (other
    package versions) and warn about other TensorFlow thread counts."""
    address = ex.client.scheduler.address
    try:
        ex.client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
    except TimeoutError as exc:
        raise ClusterError(f"the Dask scheduler at {address} has no workers after "
                           f"{WORKERS_TIMEOUT_S} s: start some with `dask worker {address}`"
                           ) from exc
    try:
        ex.workers = ex.client.run(worker_facts)
    except Exception as exc:  # a worker without tinysift cannot even unpickle the call
        raise ClusterError(f"the workers of {address} cannot run tinysift's tasks "
                           f"({type(exc).__name__}: {exc}): install the same tinysift on "
                           f"every worker ({INSTALL_HINT})") from exc
    here = worker_facts()
    for worker, facts in ex.workers.items():
        diff = _version_diff(facts, here)
        if diff:
            raise ClusterError(f"worker {worker} has {', '.join(diff)}: its trainings would "
                               "not match a serial run; install the same versions there")
    ex.here = here
    threads = sorted({f["tf_threads"] for f in ex.workers.values()})
    if threads != [here["tf_threads"]]:
        say(f"warning: workers run TensorFlow with {'/'.join(map(str, threads))} intra-op "
            f"threads, this machine with {here['tf_threads']}: their accuracies will not be "
            "bit-identical to a serial run here (start the workers with "
            f"TF_NUM_INTRAOP_THREADS={here['tf_threads']})")


def _version_diff(facts: dict, here: dict) -> list[str]:
    """The package versions (and tinysift sources) in which a worker's ``facts`` differ from
    this process's (``here``), as ``"numpy 1.0 (here 2.0)"``."""
    return [f"{p} {facts['versions'].get(p, 'unknown')} (here {v})"
            for p, v in here["versions"].items() if facts["versions"].get(p) != v]


@contextmanager
def open_executor(spec: str | None, say: Callable[[str], None] = print):
    """``connect(spec)``, closed (and a local cluster stopped) on the way out."""
    ex = connect(spec, say)
    try:
        yield ex
    finally:
        ex.close()
