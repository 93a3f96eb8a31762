"""The ``prune`` stage: score a dataset with one method and keep an exact budget."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinysift.data.registry import run_outside_dataset
from tinysift.runs import locks_run
from tinysift.selection.io import SELECTION_FILE, write_selection


@dataclass
class PruneOutcome:
    run_dir: Path
    method: str
    keep_count: int
    num_samples: int
    class_counts: list[int]
    score_seconds: float
    select_seconds: float
    skipped: bool = False


@locks_run("out", before=run_outside_dataset)
def prune(dataset: str, method: str, keep: str | float | int, out: str | Path,
          seed: int = 0, label_noise: float = 0.0, balance: bool = True,
          proxy_epochs: int = 4, progress: bool = True, **method_params) -> PruneOutcome:
    """Score ``dataset``'s training split with ``method`` and write ``OUT/selection.npz``.

    Parameters
    ----------
    dataset : registry name, ``npz:PATH`` or ``folder:PATH``
    method : a registered method name (``vq``, ``flow``, ``random``, ``el2n``, ...)
    keep : fraction in (0, 1] or integer count of samples to KEEP
    out : run folder (embeddings and training dynamics are cached in ``OUT/cache``)
    seed : seed of every random choice
    label_noise : symmetric label noise applied (seeded) before scoring, for robustness
        studies; the train stage re-applies the same noise
    balance : class-balanced budget (within 1 per class)
    proxy_epochs : epochs of the brief proxy training behind dynamics-based scores
    method_params : keyword arguments of the method's constructor
    """
    from tinysift.data import add_label_noise, load_dataset, resolved_name
    from tinysift.runs import Run, stage_key
    from tinysift.scoring import ScoringContext
    from tinysift.selection import make_method, resolve_keep
    from tinysift.selection.budget import class_quotas

    ds = load_dataset(dataset)
    if label_noise:
        ds, _ = add_label_noise(ds, label_noise, seed)
    count = resolve_keep(keep, len(ds.y_train))
    if balance:  # a budget under one sample a class is refused before any scoring
        class_quotas(ds.y_train, count, ds.num_classes)
    run = Run(out, writes=("selection.npz",))  # a user's own set is not overwritten
    run.refuse_other_dataset(resolved_name(dataset), ds.content_hash, label_noise,
                             noise_seed=seed)
    impl = make_method(method, seed=seed, balance=balance, **method_params)
    params = {"dataset": dataset, "method": method, "keep": str(keep), "count": count,
              "seed": seed, "label_noise": label_noise, "balance": balance,
              "proxy_epochs": proxy_epochs, "method_params": method_params,
              # every parameter with the defaults: a changed default is a new stage key
              "resolved_params": impl.plain_params()}
    inputs = {"dataset": ds.content_hash}
    if run.is_fresh("prune", stage_key(params, inputs)):
        r = run.stage_info("prune")["results"]
        return PruneOutcome(run.path, method, count, len(ds.y_train), r["class_counts"],
                            r["score_seconds"], r["select_seconds"], skipped=True)
    run.record_command()
    run.manifest["seed"] = seed
    run.manifest["dataset"] = {"name": resolved_name(dataset), "hash": ds.content_hash,
                               "train": len(ds.y_train), "test": len(ds.y_test),
                               "label_noise": label_noise,
                               "noise_seed": seed if label_noise else 0}
    with run.stage("prune", params, inputs, seed=seed) as rec:
        ctx = ScoringContext(ds.x_train, ds.y_train, ds.num_classes, seed=seed,
                             cache_dir=run / "cache", proxy_epochs=proxy_epochs,
                             progress=progress)
        start = time.perf_counter()
        impl.fit(ctx)
        score_seconds = time.perf_counter() - start
        start = time.perf_counter()
        kept = impl.select(count)
        select_seconds = time.perf_counter() - start
        write_selection(run / SELECTION_FILE, kept, impl.scores_, method, len(ds.y_train),
                        ds.content_hash, label_noise=label_noise,
                        noise_seed=seed if label_noise else 0,
                        score_meaning=impl.score_meaning, nested=impl.nested, seed=seed,
                        params=impl.plain_params())
        rec["outputs"].append(SELECTION_FILE)
        counts = np.bincount(ds.y_train[kept], minlength=ds.num_classes).tolist()
        rec["results"].update(keep_count=count, keep_fraction=count / len(ds.y_train),
                              class_counts=counts, score_seconds=round(score_seconds, 3),
                              select_seconds=round(select_seconds, 3),
                              shared_seconds={k: round(v, 3) for k, v in ctx.timings.items()})
    return PruneOutcome(run.path, method, count, len(ds.y_train), counts, score_seconds,
                        select_seconds)


@locks_run("out")
def prune_many(dataset: str, methods: list[str], counts: list[int], out: str | Path,
               seed: int = 0, proxy_epochs: int = 3, progress: bool = True,
               method_params: dict | None = None) -> dict[tuple[str, int], Path]:
    """Several methods at several budgets with one shared scoring context (embeddings and
    the proxy CNN computed once): ``OUT/<method>-<count>/selection.npz`` each.

    Returns ``{(method, count): selection path}``. Each method's stage is cached in
    ``OUT/manifest.json``.
    """
    from tinysift.data import load_dataset
    from tinysift.runs import Run, stage_key
    from tinysift.scoring import ScoringContext
    from tinysift.selection import make_method, resolve_keep

    ds = load_dataset(dataset)
    run = Run(out)
    counts = [resolve_keep(c, len(ds.y_train)) for c in counts]
    ctx = ScoringContext(ds.x_train, ds.y_train, ds.num_classes, seed=seed,
                         cache_dir=run / "cache", proxy_epochs=proxy_epochs, progress=progress)
    paths: dict[tuple[str, int], Path] = {}
    for method in methods:
        params = {"dataset": dataset, "method": method, "counts": counts, "seed": seed,
                  "proxy_epochs": proxy_epochs,
                  "method_params": (method_params or {}).get(method, {})}
        impl = make_method(method, seed=seed, **params["method_params"])
        params["resolved_params"] = impl.plain_params()
        outputs = {c: Path(f"{method}-{c}") / SELECTION_FILE for c in counts}
        key = stage_key(params, {"dataset": ds.content_hash})
        stage = f"prune:{method}"
        if not run.is_fresh(stage, key):
            with run.stage(stage, params, {"dataset": ds.content_hash}, seed=seed) as rec:
                start = time.perf_counter()
                ctx.reset_usage()
                impl.fit(ctx)
                rec["results"]["score_seconds"] = round(time.perf_counter() - start, 3)
                for c, rel in outputs.items():
                    kept = impl.select(c)
                    write_selection(run / rel, kept, impl.scores_, method, len(ds.y_train),
                                    ds.content_hash, score_meaning=impl.score_meaning,
                                    nested=impl.nested, seed=seed,
                                    params=impl.plain_params())
                    rec["outputs"].append(str(rel))
                # After the selections: a method may read shared work only when it selects.
                rec["results"]["shared_seconds"] = round(ctx.shared_seconds(), 3)
        for c, rel in outputs.items():
            paths[(method, c)] = run / rel
    return paths
