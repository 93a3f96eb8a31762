"""The loop every host bench runs: submit each seed's tasks, log each result, write the
results files as seeds complete.

The driver alone appends to the progress log, one finished task at a time, in the order the
tasks finish (on a cluster) or were submitted (serial); the results files are rewritten each
time the first ``s`` seeds are all complete. A seed whose tasks all ran in one serial go
gets its wall time logged, as before; on a cluster seeds overlap and have none.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tinysift.bench.executor import TaskDone
from tinysift.bench.progress import ProgressLog

# A seed's tasks: (future, what to do with its result, or None for an intermediate task).
Tasks = list[tuple[object, Callable[[TaskDone], None] | None]]


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
              build: Callable[[int, float], dict], write: Callable[[dict], None]) -> dict:
    """Submit every seed's tasks (``submit(seed)``), handle each result as it comes, and
    ``write(build(seeds_done, wall_seconds))`` whenever one more seed is complete (with the
    executor's description on a cluster). Returns the last results written."""
    start = time.perf_counter()
    fresh = [log.is_fresh(s) for s in range(seeds)]
    owner: dict = {}
    remaining = [0] * seeds
    order = []
    for seed in range(seeds):
        for future, handler in submit(seed):
            owner[future] = (seed, handler)
            order.append(future)
            remaining[seed] += 1
    began: dict[int, float] = {}
    results: dict = {}
    complete = 0

    def flush() -> None:
        nonlocal complete, results
        while complete < seeds and remaining[complete] == 0:
            if fresh[complete] and not ex.remote:  # a seed resumed half-way has no wall time
                log.add_seed_wall(complete, time.perf_counter() - began[complete])
            complete += 1
            results = build(complete, time.perf_counter() - start)
            if ex.remote:
                results["executor"] = ex.info()
            write(results)

    flush()
    pending = ex.completed(order)
    del order  # on a cluster, a result leaves the workers' memory once handled
    for future in pending:
        seed, handler = owner.pop(future)
        began.setdefault(seed, time.perf_counter())
        done = ex.result(future)
        if handler is not None:
            handler(done)
        remaining[seed] -= 1
        flush()
    return results
