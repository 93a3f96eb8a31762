"""Shared fixtures. Tests use real data (digits is always present) and real tools."""

from __future__ import annotations

import json
import os
from pathlib import Path


def _share_the_cpus_among_workers() -> None:
    """Under xdist, each worker (and every process it starts, through the environment) gets
    its share of the CPUs for TensorFlow's and BLAS's thread pools, unless the caller set
    them: with two workers on two cores, each with a pool per core, the TensorFlow-heavy
    files ran a quarter longer (test_methods, test_guided, test_baselines and test_models:
    180 s against 143 s, AMD EPYC, 2 CPUs). Set here, before numpy and TensorFlow start
    their pools."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
    if workers < 2:
        return
    cpus = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1)
    share = str(max(1, cpus // workers))
    for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS",
                "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, share)


_share_the_cpus_among_workers()

import numpy as np  # noqa: E402 - after the thread pools' environment
import pytest  # noqa: E402

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True, scope="session")
def _cache_folder_of_the_session(tmp_path_factory):
    """The tests' decoded image folders go to a folder of the session (the CLI's children
    inherit it), not to the user's ~/.cache/tinysift."""
    if "TINYSIFT_CACHE_DIR" not in os.environ:
        os.environ["TINYSIFT_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))


def pytest_collection_modifyitems(config, items):
    """Longest test files first (seconds measured per file: tests/file_durations.json,
    written by tools/test_durations.py), each file's tests kept together and in order.
    ``make test`` runs two xdist workers a file at a time in this order
    (``--no-loadscope-reorder``), so no worker ends the run alone on a long file it started
    last (xdist's own order, by number of tests, put the 136-s cluster file near the end)."""
    table = Path(__file__).with_name("file_durations.json")
    seconds = json.loads(table.read_text()) if table.exists() else {}
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        first.setdefault(item.path.name, i)
    items.sort(key=lambda it: (-seconds.get(it.path.name, 0), first[it.path.name]))


@pytest.fixture(scope="session")
def digits():
    from tinysift.data import load_dataset

    return load_dataset("digits")


@pytest.fixture()
def write_npz(tmp_path):
    def _write(name="data.npz", **arrays):
        path = tmp_path / name
        np.savez(path, **arrays)
        return f"npz:{path}"

    return _write


@pytest.fixture(scope="session")
def digits_run():
    """The shared digits run (trained, quantized, exported), built once and cached across
    test files and sessions in runs/_scratch/trainer-digits (stage caching skips work)."""
    from scratch import scratch_run
    from tinysift.stages.export import export
    from tinysift.stages.quantize import quantize
    from tinysift.stages.train import train

    with scratch_run("trainer-digits") as run:
        train("digits", run, epochs=30, seed=0, progress=False)
        quantize(run)
        export(run)
    return run


@pytest.fixture()
def kept_figures(monkeypatch):
    """The figures the code under test closes, kept open in this list (in the order drawn)
    so a test can read their series; closed at the end of the test."""
    import matplotlib.pyplot as plt

    close, figs = plt.close, []
    monkeypatch.setattr(plt, "close", lambda fig=None: figs.append(fig))
    yield figs
    for fig in figs:
        close(fig)


@pytest.fixture(scope="session")
def fault_table():
    """Rows of the fault-injection tests; TINYSIFT_WRITE_FAULTS=1 writes them to
    benchmarks/results/faults.{json,md} at the end of the session (tests/fault_table.py)."""
    from fault_table import FaultTable

    table = FaultTable()
    yield table
    if os.environ.get("TINYSIFT_WRITE_FAULTS") and table.rows:
        table.write()
