"""The loop every host bench runs: submit each seed's tasks, log each result, write the
results files as seeds complete.

The driver alone appends to the progress log, one finished task at a time, in the order the
tasks finish (on a cluster) or were submitted (serial); the results files are rewritten each
time the first ``s`` seeds are all complete. A seed whose tasks all ran in one serial go
gets its wall time logged, as before; on a cluster seeds overlap and have none.

A task that fails does not end the bench: its error is said and recorded, the other tasks
run on and are logged (on a cluster, the trainings in flight finish), and at the end the bench
raises one error listing the failed tasks (:class:`tinysift.errors.TasksFailed`, or
:class:`tinysift.errors.TasksFailedBug` when one failed with an unexpected error). A seed with
a failed task is not complete: the results files hold the seeds before it, and a rerun of the
command resumes from the log, training only the failed tasks.

The device benches (``bench device``, ``bench upkeep``) run their device runs one at a time
here, not through :func:`run_seeds`, and treat a failed run the same way
(:class:`SerialTasks`). A failure every other run would repeat stops a bench at once with its
own message instead (:func:`stops_bench`: the firmware does not build, the emulator does not
start, the port does not open), as does a seed's setup failing (base model, export).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tinysift.bench.executor import TaskDone
from tinysift.bench.progress import ProgressLog

# A seed's tasks: (future, what to do with its result or None, and for a task whose result
# is logged, what it is, e.g. "vq keep 0.1", named when it fails). An intermediate task (a
# scoring fit several trainings share) has no name: when it fails, the tasks that need it
# fail with its error and are named.
Tasks = list[tuple[object, Callable[[TaskDone], None] | None]
             | tuple[object, Callable[[TaskDone], None] | None, str]]
#: Failed tasks the final error lists one by one (the others are counted; each was said
#: when it failed).
LISTED_FAILURES = 8
T = TypeVar("T")


@dataclass
class Failure:
    """A task that failed: its seed, what it was and its error."""

    seed: int
    what: str
    error: BaseException

    def error_line(self) -> str:
        """The error's first line; out of memory said as such, and an unexpected one (a bug:
        :func:`is_bug`) with its type."""
        from tinysift.errors import is_out_of_memory, out_of_memory_said

        if is_out_of_memory(self.error):
            return out_of_memory_said(self.error)
        text = (str(self.error).strip().splitlines() or [""])[0]
        if not is_bug(self.error):
            return text
        # a bare ``assert`` has no text: its type alone, not a dangling colon
        return f"unexpected {type(self.error).__name__}" + (f": {text}" if text else "")

    def said(self) -> str:
        """The line said when the task fails."""
        return f"[seed {self.seed}] {self.what} FAILED: {self.error_line()}"


def is_bug(error: BaseException) -> bool:
    """Whether a task's error is a bug (exit status 1), not one tinysift reports to the user:
    neither a TinysiftError nor out of memory (the machine's limit, exit status 2 as the CLI
    says it; a task that ran out of it was "a bug in tinysift")."""
    from tinysift.errors import TinysiftError, is_out_of_memory

    return not isinstance(error, TinysiftError) and not is_out_of_memory(error)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def stops_bench(error: BaseException) -> bool:
    """Whether a task's error ends the bench at once instead of being listed at its end: one
    every other task would repeat (:class:`tinysift.errors.DeviceUnavailable`: the firmware
    does not build, the emulator is missing or does not start, the port does not open), which
    would otherwise fail every device run in turn, after a firmware build or a 10 s wait each."""
    from tinysift.errors import DeviceUnavailable

    return isinstance(error, DeviceUnavailable)


@dataclass
class SerialTasks:
    """The failed tasks of a bench that runs its tasks one at a time here (``bench device``,
    ``bench upkeep``: each drives an emulator), as :func:`run_seeds` keeps them: a task that
    fails is said and recorded and the bench goes on; :meth:`finish` raises
    :func:`failed_tasks`'s error at the end. ``say``: where the failure lines go (default:
    stderr, verbatim, as :func:`run_seeds` says them; a rich console's ``print`` would read an
    error's ``[seed 0]`` or brackets as markup and drop them)."""

    say: Callable[[str], None] | None = None
    failures: list[Failure] = field(default_factory=list)
    ran: int = 0  # tasks run (not read from the progress log)

    def run(self, seed: int, what: str, task: Callable[..., T], *args: Any,
            **kwargs: Any) -> T | None:
        """``task(*args, **kwargs)``, or None when it failed (said and recorded); an error that
        :func:`stops_bench` raises at once (Ctrl-C and signals too: not an ``Exception``)."""
        self.ran += 1
        try:
            return task(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - one run's error must not end the others
            if stops_bench(exc):
                raise
            failure = Failure(seed, what, exc)
            self.failures.append(failure)
            (self.say or _stderr)(failure.said())
            return None

    def finish(self, log: ProgressLog, complete: int, seeds: int,
               reported: list[int] | None = None) -> None:
        """Raise :func:`failed_tasks`'s error if a task failed; ``complete``: the seeds the
        results files hold (every seed before the first with a failed task). With
        ``reported`` (the seeds the bench reports) and tasks run since the bench said so at
        its start, :func:`say_later_seeds` again, failed or not: the start's notice has
        scrolled away under the tasks' lines."""
        if reported is not None and self.ran:
            say_later_seeds(log, reported, self.say)
        if reported is not None:
            say_unreported(log, reported, self.say)
        if self.failures:
            raise failed_tasks(self.failures, log, complete, seeds)


@dataclass
class SeedData:
    """What a task trains and tests on: the dataset (shipped once) and the label noise each
    seed applies to it (recomputed where the task runs: cheap, and seeded)."""

    base: object  # a tinysift.data.Dataset
    label_noise: float = 0.0

    def for_seed(self, seed: int):
        if not self.label_noise:
            return self.base
        from tinysift.data import add_label_noise

        return add_label_noise(self.base, self.label_noise, seed)[0]

    def context(self, seed: int, **params):
        """A :class:`ScoringContext` of the seed's training split (``params``: its options)."""
        from tinysift.scoring import ScoringContext

        ds = self.for_seed(seed)
        return ScoringContext(ds.x_train, ds.y_train, ds.num_classes, seed=seed, **params)


def worker_fields(ex, done: TaskDone) -> dict:
    """Extra fields of a progress record: the machine that ran the task, on a cluster only
    (serial records keep the fields they always had, and the log stamps this machine):
    its host name as ``worker``, and as ``machine`` the line a serial record's machine is
    (:func:`tinysift.bench.progress.machine_label`) when the worker reported its facts."""
    from tinysift.bench.progress import machine_label

    if not ex.remote:
        return {}
    # the facts the task's worker sent with it; else those of a worker of that host name
    # seen at the connection
    facts = getattr(done, "facts", None) or next(
        (f for f in getattr(ex, "workers", {}).values() if f.get("hostname") == done.worker),
        None)
    return {"worker": done.worker, "machine": machine_label(facts or {"hostname": done.worker})}


def run_seeds(ex, log: ProgressLog, seeds: int, submit: Callable[[int], Tasks],
              build: Callable[[int, float], dict], write: Callable[[dict], None],
              say: Callable[[str], None] | None = None) -> dict:
    """Submit every seed's tasks (``submit(seed)``), handle each result as it comes, and
    ``write(build(seeds_done, wall_seconds))`` whenever one more seed is complete (with the
    executor's description on a cluster). Returns the last results written.

    A task that fails is said (``say``; default: stderr) and recorded while the other tasks
    run on; then :func:`failed_tasks`'s error is raised, after every other task was handled.
    """
    say = say or _stderr
    start = time.perf_counter()
    fresh = [log.is_fresh(s) for s in range(seeds)]
    owner: dict = {}
    remaining = [0] * seeds
    order = []
    for seed in range(seeds):
        for future, handler, *what in submit(seed):
            owner[future] = (seed, handler, what[0] if what else None)
            order.append(future)
            remaining[seed] += 1
    began: dict[int, float] = {}
    results: dict = {}
    complete = 0
    failures: list[Failure] = []
    unnamed: list[Failure] = []  # failed intermediate tasks
    failed = [False] * seeds

    def flush() -> None:
        nonlocal complete, results
        while complete < seeds and remaining[complete] == 0 and not failed[complete]:
            complete += 1
            results = build(complete, time.perf_counter() - start)
            if ex.remote:
                results["executor"] = ex.info()
            write(results)

    # said before the first write (the results files are rewritten with these seeds), and
    # again at the end when tasks ran in between
    say_later_seeds(log, list(range(seeds)), say)
    say_unreported(log, list(range(seeds)), say)
    flush()
    owner_count = len(owner)  # tasks submitted: none when every seed came from the log
    pending = ex.completed(order)
    del order  # on a cluster, a result leaves the workers' memory once handled
    for future in pending:
        seed, handler, what = owner.pop(future)
        began.setdefault(seed, time.perf_counter())
        remaining[seed] -= 1
        try:
            done = ex.result(future)
        except Exception as exc:  # noqa: BLE001 - one task's error must not end the others
            failed[seed] = True
            failure = Failure(seed, what or "a scoring task", exc)
            if what is None:
                unnamed.append(failure)
            else:
                failures.append(failure)
                say(failure.said())
            continue
        if handler is not None:
            handler(done)
        if remaining[seed] == 0 and fresh[seed] and not failed[seed] and not ex.remote:
            # timed as its last task is handled (a seed resumed half-way has no wall time),
            # not once the seeds before it are complete: after a failed seed, the later ones
            # that ran in one go lost theirs (never flushed here, and no longer fresh on the
            # rerun)
            log.add_seed_wall(seed, time.perf_counter() - began[seed])
        flush()
    # an intermediate task's failure is named by the tasks that needed it; else by itself
    failures += [f for f in unnamed if not any(g.seed == f.seed for g in failures)]
    if owner_count:
        say_later_seeds(log, list(range(seeds)), say)
        say_unreported(log, list(range(seeds)), say)
    if failures:
        raise failed_tasks(failures, log, complete, seeds)
    return results


def say_later_seeds(log: ProgressLog, reported: list[int],
                    say: Callable[[str], None] | None = None) -> None:
    """Say so when ``log`` holds trainings of seeds after the ``reported`` ones: a run with
    fewer seeds than the folder's results had rewrote them with fewer, silently; the
    trainings are still in the log, and the user learns how to report them again."""
    later = [s for s in log.seeds_logged() if s > reported[-1]]
    if not later or log.path is None:
        return
    how = (f"; --seeds {later[-1] + 1} reports those too, training only what they lack"
           if reported[0] == 0 else "")
    (say or _stderr)(f"the progress log {log.path.name} also holds trainings of "
                     f"{seed_list(later)}: these results report {seed_list(reported)} only"
                     f"{how}")


def say_unreported(log: ProgressLog, reported: list[int],
                   say: Callable[[str], None] | None = None) -> None:
    """Say so when ``log`` holds trainings of the ``reported`` seeds at methods or budgets
    this run does not report (:meth:`ProgressLog.unreported`; said once the bench has looked
    up its points): a run with fewer ``--methods`` or budgets than the folder's results had
    rewrote them without those rows, silently; they are still in the log."""
    rows = log.unreported(reported)
    if not rows or not log.asked or log.path is None:
        return
    names = [f"{m} {log.point} {at}" for m, at in rows]
    listed = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    (say or _stderr)(f"the progress log {log.path.name} also holds trainings these results "
                     f"leave out: {listed}; name those methods and budgets in the command "
                     "to report them too (nothing retrains)")


def seed_list(seeds: list[int]) -> str:
    """``seed 4``, ``seeds 3-9`` (consecutive) or ``seeds 3, 5, 8``."""
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    if seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]}-{seeds[-1]}"
    return "seeds " + ", ".join(map(str, seeds))


def failed_tasks(failures: list[Failure], log: ProgressLog, complete: int,
                 seeds: int) -> Exception:
    """The error a bench with failed tasks ends with: which failed (tasks that failed with
    one error grouped), what the results files hold and how to train only those again."""
    from tinysift.errors import TasksFailed, TasksFailedBug

    by_error: dict[str, list[str]] = {}
    for f in failures:
        by_error.setdefault(f.error_line(), []).append(f"seed {f.seed} {f.what}")
    listed = [f"{', '.join(tasks)} ({error})" for error, tasks in by_error.items()]
    if len(listed) > LISTED_FAILURES:
        listed = listed[:LISTED_FAILURES] + [f"{len(listed) - LISTED_FAILURES} more errors "
                                             "(said above as they failed)"]
    n = len(failures)
    again = (f"the other tasks' rows are in the progress log {log.path}: rerun the same "
             "command to train only the failed ones" if log.path is not None else
             "this bench keeps no progress log (--quick): rerun the command to run it all "
             "again")
    written = (f"results files written for the first {complete} of {seeds} seeds"
               if complete else "no results files written")
    message = (f"{n} task{'s' if n > 1 else ''} failed: {'; '.join(listed)}. {written} (a "
               f"seed with a failed task, and those after it, are left out); {again}")
    bugs = [f.error for f in failures if is_bug(f.error)]
    if not bugs:
        return TasksFailed(message, failures)
    error = TasksFailedBug(message, failures)
    error.__cause__ = bugs[0]  # the traceback TINYSIFT_TRACEBACK=1 shows
    return error
