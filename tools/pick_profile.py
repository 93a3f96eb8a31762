"""What a selector's picks look like, without training on them: difficulty and coverage.

    .venv/bin/python tools/pick_profile.py --dataset fashion-mnist --seeds 3 \\
        [--keeps 0.03,0.01] [--only "ccs;vq within=difficulty hard_cut=auto"]

On the validation protocol of ``tools/selection_ablation.py`` (the same train split, proxy
CNN and variants, from the same cache), each variant selects at each keep and its picks are
described by two numbers per question the ablation cannot answer by accuracy alone:

* **difficulty**: each pick's EL2N as a percentile of its own class (the proxy CNN's, which
  the hard cut and CCS's strata read), the mean, and the shares below the class median,
  between the median and the 70th percentile, and above it (the part CCS's 30 % cut drops);
* **coverage**: for every sample of the train split, the distance (pixel PCA, 32 dims, vq's
  default embedding) to the nearest pick of its class, its mean and 90th percentile over
  the split (smaller: the picks cover the class's appearance more evenly).

It explains accuracy differences the ablation measured (two selectors with the same
difficulty profile differ in which samples they take inside a difficulty level), it
measures none. Writes ``benchmarks/results/pick_profile_<dataset>.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: The variants described when --only is not given: the published selector that won the
#: equal-steps tables on Fashion-MNIST, random, and vq's default below the keep-hard regime.
DEFAULT_ONLY = ("random", "ccs", "vq within=difficulty hard_cut=auto")


def difficulty_profile(hard: np.ndarray, y: np.ndarray, picks: np.ndarray) -> dict:
    """The picks' EL2N as percentiles of their own class: mean and three shares."""
    pct = np.empty(len(picks))
    for c in np.unique(y[picks]):
        members = np.sort(hard[y == c])
        in_c = y[picks] == c
        pct[in_c] = np.searchsorted(members, hard[picks[in_c]], side="left") / len(members)
    return {"percentile_mean": float(pct.mean()), "below_median": float(np.mean(pct < 0.5)),
            "median_to_p70": float(np.mean((pct >= 0.5) & (pct < 0.7))),
            "above_p70": float(np.mean(pct >= 0.7))}


def coverage(z: np.ndarray, y: np.ndarray, picks: np.ndarray, chunk: int = 2048) -> dict:
    """Distance from every sample to the nearest pick of its class: mean and 90th percentile."""
    nearest = np.empty(len(y))
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        mine = z[picks[y[picks] == c]]
        sq = (mine ** 2).sum(1)
        for lo in range(0, len(members), chunk):
            part = z[members[lo:lo + chunk]]
            d2 = (part ** 2).sum(1)[:, None] - 2 * part @ mine.T + sq[None, :]
            nearest[members[lo:lo + chunk]] = np.sqrt(np.maximum(d2.min(1), 0))
    return {"nearest_pick_mean": float(nearest.mean()),
            "nearest_pick_p90": float(np.quantile(nearest, 0.9))}


def main(argv: list[str]) -> int:
    from selection_ablation import VARIANTS, add_split_arguments, chosen_variants, scoring_context

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_split_arguments(ap, only=";".join(DEFAULT_ONLY))
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    names = {v[0]: v for v in VARIANTS}
    only = chosen_variants(ap, args.only)
    if not only:
        ap.error("--only: no variant named; the names are those of VARIANTS in "
                 "tools/selection_ablation.py")

    from tinysift.bench.progress import write_results
    from tinysift.data import dataset_slug, load_dataset
    from tinysift.runs import machine_info, package_versions
    from tinysift.selection import make_method, resolve_keep
    from tinysift.selection.budget import validation_split
    from tinysift.selection.methods._common import difficulty

    ds = load_dataset(args.dataset)
    rest, _ = validation_split(ds.y_train, args.val)
    x_tr, y_tr = ds.x_train[rest], ds.y_train[rest]
    slug = dataset_slug(args.dataset)
    start = time.perf_counter()
    per_seed: dict[tuple[str, float], list[dict]] = {}
    for seed in range(args.seeds):
        # the ablation's context: the same proxy CNN and embeddings its accuracies came from
        ctx = scoring_context(x_tr, y_tr, ds.num_classes, seed, slug)
        hard = difficulty(ctx, "el2n")
        z = ctx.embedding("pixels", 32)
        for name in only:
            _, method_name, params = names[name]
            method = make_method(method_name, seed=seed, **params)
            method.fit(ctx)
            for keep in args.keeps:
                picks = method.select(resolve_keep(keep, len(y_tr)))
                row = {"seed": seed, "count": len(picks),
                       **difficulty_profile(hard, y_tr, picks), **coverage(z, y_tr, picks)}
                per_seed.setdefault((name, keep), []).append(row)
                print(f"[seed {seed}] {name:<48} keep {keep:<5} {row}", flush=True)
    fields = [k for k in next(iter(per_seed.values()))[0] if k not in ("seed", "count")]
    rows = {f"{name}@{keep:g}": {"variant": name, "keep": keep, "count": runs[0]["count"],
                                  "runs": runs,
                                  **{f: float(np.mean([r[f] for r in runs])) for f in fields}}
            for (name, keep), runs in per_seed.items()}
    res = {"dataset": args.dataset, "data_hash": ds.content_hash, "seeds": args.seeds,
           "validation_samples": args.val, "keeps": args.keeps, "variants": only,
           "rows": rows, "machine": machine_info(), "versions": package_versions(),
           "wall_seconds": time.perf_counter() - start}

    def markdown(r: dict) -> str:
        lines = [f"# What the picks look like: {r['dataset']}", "",
                 f"The ablation's train split ({r['validation_samples']} samples held out), "
                 f"means over {r['seeds']} seeds. EL2N percentile: a pick's proxy-CNN EL2N "
                 "among its own class (higher = harder; CCS's 30 % cut drops above 70). "
                 "Nearest pick: distance from every train sample to the nearest pick of its "
                 "class in vq's embedding (pixel PCA, 32 dims); smaller = the class's "
                 "appearance covered more evenly. A description of the picks, not a "
                 "measurement of what they teach.", "",
                 "| variant | keep | picks | EL2N pct mean | < p50 | p50-p70 | >= p70 | "
                 "nearest pick mean | nearest pick p90 |", "|---|---|---|---|---|---|---|---|---|"]
        for row in sorted(r["rows"].values(), key=lambda w: (-w["keep"], w["variant"])):
            lines.append(
                f"| {row['variant']} | {row['keep']:g} | {row['count']} | "
                f"{row['percentile_mean']:.3f} | {row['below_median']:.2f} | "
                f"{row['median_to_p70']:.2f} | {row['above_p70']:.2f} | "
                f"{row['nearest_pick_mean']:.3f} | {row['nearest_pick_p90']:.3f} |")
        lines += ["", f"Machine: {r['machine']['processor']} × {r['machine']['cpus']} CPUs; "
                  f"{r['wall_seconds']:.0f} s.", ""]
        return "\n".join(lines)

    write_results(res, args.out_dir, f"pick_profile_{slug}", markdown)
    print(markdown(res))
    return 0


if __name__ == "__main__":
    from tinysift.errors import TinysiftError

    try:
        sys.exit(main(sys.argv[1:]))
    except TinysiftError as exc:
        sys.exit(f"error: {exc}")
