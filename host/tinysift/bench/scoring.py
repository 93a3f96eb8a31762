"""``tinysift bench scoring``: wall time of VQ and flow scoring on a full dataset, from a
cold start (no cached embedding or proxy CNN), embedding included."""

from __future__ import annotations

import time
from pathlib import Path

TARGETS_SECONDS = {"vq": 60.0, "flow": 300.0}


def bench_scoring(dataset: str = "mnist", methods: tuple[str, ...] = ("vq", "flow"),
                  keep: float = 0.1, seed: int = 0,
                  out_dir: Path = Path("benchmarks/results")) -> dict:
    from tinysift.bench.progress import distinct, results_claim
    from tinysift.data import dataset_slug, load_dataset
    from tinysift.selection import make_method

    distinct(methods, "--methods")
    for name in methods:  # every name before the first fit: a typo failed after vq's minute
        make_method(name, seed=seed)
    ds = load_dataset(dataset)
    out = Path(out_dir)
    stem = f"scoring_{dataset_slug(dataset)}"  # an npz: path wrote into nested folders
    # one bench at a time per results file: two ran side by side and timed each other
    with results_claim(None, out, stem):
        _refuse_dropping_rows(out / f"{stem}.json", methods)
        return _timed(ds, dataset, methods, keep, seed, out, stem)


def _refuse_dropping_rows(path: Path, methods: tuple[str, ...]) -> None:
    """Refuse, before any timing, a run whose results would replace ``path`` without rows it
    holds: the bench keeps no log, so ``--methods vq`` beside the committed vq and flow
    timings lost flow's without a word. An unreadable file is no obstacle (rewritten)."""
    import json

    from tinysift.errors import BudgetError

    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    held = old.get("methods") if isinstance(old, dict) else None
    dropped = [m for m in held if m not in methods] if isinstance(held, dict) else []
    if dropped:
        raise BudgetError(f"{path} holds the timings of {', '.join(dropped)}, which this run "
                          f"(--methods {','.join(methods)}) would drop: time them again too "
                          f"(--methods {','.join([*methods, *dropped])}), or pass another "
                          "--out-dir")


def _timed(ds, dataset: str, methods: tuple[str, ...], keep: float, seed: int, out: Path,
           stem: str) -> dict:
    """Time each method's fit and selection from a cold start and write the results."""
    from tinysift.runs import atomic_write_json, atomic_write_text, machine_info, package_versions
    from tinysift.scoring import ScoringContext
    from tinysift.selection import make_method, resolve_keep

    rows = {}
    for name in methods:
        # A fresh context per method: nothing is shared or cached, so each time is complete.
        ctx = ScoringContext(ds.x_train, ds.y_train, ds.num_classes, seed=seed, progress=False)
        t0 = time.perf_counter()
        method = make_method(name, seed=seed).fit(ctx)
        fit = time.perf_counter() - t0
        t1 = time.perf_counter()
        kept = method.select(resolve_keep(keep, len(ds.y_train)))
        select = time.perf_counter() - t1
        rows[name] = {"seconds": fit + select, "fit_seconds": fit, "select_seconds": select,
                      "shared_work_seconds": dict(ctx.timings), "kept": int(len(kept)),
                      "target_seconds": TARGETS_SECONDS.get(name),
                      "meets_target": (None if name not in TARGETS_SECONDS else
                                       fit + select <= TARGETS_SECONDS[name])}
    import datetime

    res = {"dataset": dataset, "samples": int(len(ds.y_train)), "keep": keep, "seed": seed,
           "data_hash": ds.content_hash, "methods": rows, "machine": machine_info(),
           "versions": package_versions(),
           "written": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    atomic_write_json(out / f"{stem}.json", res)
    lines = [f"# Scoring speed: {dataset} ({res['samples']} samples), cold start", "",
             "| method | total s | fit s | select s | target s | met |",
             "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['seconds']:.1f} | {r['fit_seconds']:.1f} | "
                     f"{r['select_seconds']:.1f} | {r['target_seconds'] or '-'} | "
                     f"{('yes' if r['meets_target'] else 'no') if r['target_seconds'] else '-'}"
                     " |")
    lines += ["", "Shared work inside the fits (embeddings, proxy CNN): "
              + "; ".join(f"{n}: {r['shared_work_seconds']}" for n, r in rows.items()), ""]
    atomic_write_text(out / f"{stem}.md", "\n".join(lines))
    return res
