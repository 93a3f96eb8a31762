"""The ``condense`` stage: K samples per class -> ``RUN/condensed.npz``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinysift.data.registry import run_outside_dataset
from tinysift.runs import locks_run
from tinysift.selection.io import CONDENSED_FILE, write_condensed


@dataclass
class CondenseOutcome:
    run_dir: Path
    method: str
    count: int
    seconds: float
    skipped: bool = False


@locks_run("out", before=run_outside_dataset)
def condense(dataset: str, method: str, per_class: int, out: str | Path, seed: int = 0,
             progress: bool = True, **method_params) -> CondenseOutcome:
    """Condense ``dataset``'s training split to ``per_class`` samples per class.

    Parameters
    ----------
    dataset : registry name, ``npz:PATH`` or ``folder:PATH``
    method : ``vq``, ``vq-real``, ``flow``, ``dm``, ``random`` or ``herding``
    per_class : K, samples per class (refused when larger than the smallest class)
    out : run folder
    """
    from tinysift.condensation.base import check_per_class, make_condenser
    from tinysift.data import load_dataset, resolved_name
    from tinysift.runs import Run, stage_key
    from tinysift.scoring import ScoringContext

    ds = load_dataset(dataset)
    check_per_class(per_class, ds.class_counts("train"), ds.class_names)  # before any fit
    run = Run(out, writes=("condensed.npz",))  # a user's own set is not overwritten
    run.refuse_other_dataset(resolved_name(dataset), ds.content_hash)
    impl = make_condenser(method, seed=seed, **method_params)
    params = {"dataset": dataset, "method": method, "per_class": per_class, "seed": seed,
              "method_params": method_params,
              # every parameter with the defaults: a changed default is a new stage key
              "resolved_params": impl.plain_params()}
    inputs = {"dataset": ds.content_hash}
    if run.is_fresh("condense", stage_key(params, inputs)):
        r = run.stage_info("condense")["results"]
        return CondenseOutcome(run.path, method, r["count"], r["seconds"], skipped=True)
    ctx = ScoringContext(ds.x_train, ds.y_train, ds.num_classes, seed=seed,
                         cache_dir=run / "cache", progress=progress)
    run.record_command()
    run.manifest["seed"] = seed
    run.manifest["dataset"] = {"name": resolved_name(dataset), "hash": ds.content_hash,
                               "train": len(ds.y_train), "test": len(ds.y_test)}
    with run.stage("condense", params, inputs, seed=seed) as rec:
        start = time.perf_counter()
        x, y = impl.fit(ctx).condense(per_class)
        seconds = time.perf_counter() - start
        write_condensed(run / CONDENSED_FILE, x, y, method, per_class, ds.content_hash)
        rec["outputs"].append(CONDENSED_FILE)
        rec["results"].update(count=int(len(y)), seconds=round(seconds, 3),
                              class_counts=np.bincount(y).tolist())
    return CondenseOutcome(run.path, method, int(len(y)), seconds)
