"""Ablations of the pruning selectors under the equal-steps protocol, on a VALIDATION split.

    .venv/bin/python tools/selection_ablation.py --dataset fashion-mnist --seeds 3

The training split is cut into train (N - VAL) and a stratified, seeded validation set of VAL
samples; every variant selects from the rest, its kept set trains for the full remaining
data's steps (``tinysift bench prune --protocol equal-steps``'s recipe) and is scored on the
validation set. Choices of ``vq``'s defaults for tiny budgets come from these numbers; the
benchmarks then measure on the test split. Writes
``benchmarks/results/ablation_selection_<dataset>.{json,md}``; every finished training is
appended to a progress log beside it, so a killed run resumes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _args import at_least, positive_list

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: The record fields a variant's row gives the mean of (over seeds).
MEAN_FIELDS = ("train_seconds",)
#: The numbers every progress record holds, which the table reads: a record without one
#: trains again.
RECORD_FIELDS = ("acc", *MEAN_FIELDS)

# vq's defaults before 2026-12-01 (no cut, the distance window, the far window from keep
# 0.5); every vq variant below is stated on them, so its logged records keep their meaning
# when the defaults change.
WINDOW = {"within": "window", "hard_cut": None, "hard_above": 0.5}

# (variant, method, params): one question each. The published selectors that won the
# equal-steps tables (herding on MNIST at keep 0.01, ccs on Fashion-MNIST) are the yardstick.
VARIANTS: list[tuple[str, str, dict]] = [
    ("random", "random", {}),
    ("herding", "herding", {}),
    ("ccs", "ccs", {}),
    ("vq (pixels)", "vq", {**WINDOW}),
    ("vq embedding=cnn", "vq", {**WINDOW, "embedding": "cnn"}),
    ("vq embedding=random-conv", "vq", {**WINDOW, "embedding": "random-conv"}),
    ("vq window=1 outlier_tail=0 (stratified random)", "vq",
     {**WINDOW, "window": 1.0, "outlier_tail": 0.0}),
    ("vq embedding=cnn window=1 outlier_tail=0", "vq",
     {**WINDOW, "embedding": "cnn", "window": 1.0, "outlier_tail": 0.0}),
    ("vq embedding=cnn per_codeword=1", "vq", {**WINDOW, "embedding": "cnn", "per_codeword": 1}),
    ("vq within=herding", "vq", {**WINDOW, "within": "herding"}),
    ("vq embedding=cnn within=herding", "vq", {**WINDOW, "embedding": "cnn", "within": "herding"}),
    # the window on the far side at every budget ('keep hard' inside each codeword, the
    # outlier tail still never picked): ccs, the best on Fashion-MNIST, also favours harder
    # samples than random does
    ("vq far window (hard_above=0)", "vq", {**WINDOW, "hard_above": 0.0, "easy_below": 0.0}),
    # CCS's hard cut (the hardest 30 % of each class by EL2N dropped) before the codebook
    ("vq hard_cut=auto", "vq", {**WINDOW, "hard_cut": "auto"}),
    ("vq hard_cut=auto window=1 outlier_tail=0", "vq",
     {**WINDOW, "hard_cut": "auto", "window": 1.0, "outlier_tail": 0.0}),
    # MNIST has few hard or mislabeled samples: a milder cut, and herding after the cut
    ("vq hard_cut=0.1", "vq", {**WINDOW, "hard_cut": 0.1}),
    ("vq hard_cut=auto within=herding", "vq", {**WINDOW, "hard_cut": "auto", "within": "herding"}),
    # vq's defaults since 2026-12-01 below keep 0.1 (the best mean over keep 0.03 and 0.01
    # with no cell negative); from keep 0.1 vq's default is the far window (hard_above=0.1)
    ("vq hard_cut=0.1 within=herding", "vq", {**WINDOW, "hard_cut": 0.1, "within": "herding"}),
    # the same below the switch, the switch itself set by the proxy CNN's training error
    # (hard_above="auto", vq's default since 2026-12-01): the far window from keep 0.03 on
    # MNIST, from 0.1 on Fashion-MNIST
    ("vq hard_above=auto", "vq", {"hard_cut": 0.1, "within": "herding", "hard_above": "auto"}),
    # CCS's difficulty strata and cut (the best published selector on Fashion-MNIST at keep
    # 0.03), each stratum filled by codeword coverage (herding inside codewords) instead of
    # at random: difficulty coverage and density coverage together
    ("vq within=strata hard_cut=auto", "vq",
     {"hard_cut": "auto", "within": "strata", "hard_above": "auto"}),
    # the other way round: codewords partition the class, and inside each the picks spread
    # evenly over the EL2N values (CCS's equal-width coverage of difficulty, per codeword)
    ("vq within=difficulty hard_cut=auto", "vq",
     {"hard_cut": "auto", "within": "difficulty", "hard_above": "auto"}),
    # herding after CCS's cut: what "difficulty" does below SCARCE_PER_CLASS per class
    ("vq within=herding hard_cut=auto", "vq",
     {"hard_cut": "auto", "within": "herding", "hard_above": "auto"}),
    # 2026-12-04 (after the ten-seed test rerun put vq 0.32 points below CCS on Fashion-MNIST
    # at keep 0.03): the two ways vq's default differs from CCS after the same cut. No
    # outlier tail (CCS never skips a sample far from its codeword), and coarser codewords
    # (16 picks each: 10 codewords per class at keep 0.03 of the 50,000-sample split, 4 at
    # 0.01, against the default's 38 and 13), the difficulty spread then covering more of the
    # class as CCS's strata do
    ("vq within=difficulty outlier_tail=0", "vq",
     {"hard_cut": "auto", "within": "difficulty", "hard_above": "auto", "outlier_tail": 0.0}),
    ("vq within=difficulty per_codeword=16", "vq",
     {"hard_cut": "auto", "within": "difficulty", "hard_above": "auto", "per_codeword": 16}),
    ("vq within=difficulty per_codeword=16 outlier_tail=0", "vq",
     {"hard_cut": "auto", "within": "difficulty", "hard_above": "auto", "per_codeword": 16,
      "outlier_tail": 0.0}),
]


def add_split_arguments(ap: argparse.ArgumentParser, only: str = "") -> None:
    """The options naming the ablation's split and variants (tools/pick_profile.py reads the
    same split and variants): --dataset, --keeps, --seeds, --val, --only."""
    ap.add_argument("--dataset", default="fashion-mnist")
    # fractions only: every keep is read as a number, and a count (100) or a keep above 1 was
    # refused by resolve_keep only once the keeps before it had trained (scoring included)
    ap.add_argument("--keeps", type=positive_list("keep", most=1,
                                                  unit="a fraction of the training split"),
                    default="0.03,0.01")
    # counts below 1 were taken: --seeds 0 trained nothing and wrote a table of nan rows (by
    # default over the committed one), --val 0 ended in a selection error naming options
    # this tool lacks
    ap.add_argument("--seeds", type=at_least(1), default=3)
    ap.add_argument("--val", type=at_least(1), default=10000,
                    help="validation samples held out of the training split")
    ap.add_argument("--only", default=only, help="variant names separated by ';'")


def chosen_variants(ap: argparse.ArgumentParser, only: str) -> list[str]:
    """The names in ``only`` (';'-separated), each checked against VARIANTS: a typo would
    run nothing and write results as if asked."""
    names = [n for n in only.split(";") if n]
    unknown = [n for n in names if n not in {v[0] for v in VARIANTS}]
    if unknown:
        ap.error(f"--only: unknown variant(s) {', '.join(map(repr, unknown))}; the names "
                 "are those of VARIANTS in tools/selection_ablation.py")
    return names


def scoring_context(x, y, num_classes: int, seed: int, slug: str):
    """The ablation's scoring context for one seed: the equal-steps bench's proxy CNN, cached
    per dataset (tools/pick_profile.py reads the same proxy and embeddings from it)."""
    from tinysift.bench.prune import PruneBenchConfig
    from tinysift.scoring import ScoringContext

    return ScoringContext(x, y, num_classes, seed=seed,
                          cache_dir=ROOT / "runs" / "_bench_cache" / f"ablation_selection_{slug}",
                          proxy_epochs=PruneBenchConfig(protocol="equal-steps").proxy_epochs,
                          progress=False)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_split_arguments(ap)
    ap.add_argument("--baseline", default="random")
    ap.add_argument("--out-dir", type=Path, default=RESULTS,
                    help="results folder (its progress/ holds the log); a scratch folder for "
                         "exploration")
    args = ap.parse_args(argv)
    only = chosen_variants(ap, args.only)
    from tinysift.bench.progress import results_claim
    from tinysift.data import dataset_slug

    stem = f"ablation_selection_{dataset_slug(args.dataset)}"
    # one run per results file, as the benches: two runs of this tool on one log trained
    # every variant twice, and the last to finish replaced the other's table
    with results_claim(None, args.out_dir, stem):
        return _ablate(args, only, stem)


def _ablate(args: argparse.Namespace, only: list[str], stem: str) -> int:
    from tinysift.bench.driver import say_later_seeds
    from tinysift.bench.progress import (
        WALL,
        ProgressLog,
        check_results_owner,
        summarize,
        write_results,
    )
    from tinysift.bench.prune import PruneBenchConfig
    from tinysift.bench.report import origins_lines
    from tinysift.bench.stats import diff_cell, paired_difference
    from tinysift.data import dataset_slug, load_dataset
    from tinysift.guided.loop import train_for_passes
    from tinysift.models.training import TrainConfig, evaluate
    from tinysift.runs import machine_info, package_versions
    from tinysift.selection import make_method, resolve_keep
    from tinysift.selection.budget import validation_split

    bench = PruneBenchConfig(protocol="equal-steps")
    ds = load_dataset(args.dataset)
    rest, val = validation_split(ds.y_train, args.val)
    x_tr, y_tr = ds.x_train[rest], ds.y_train[rest]
    x_val, y_val = ds.x_train[val], ds.y_train[val]
    key = {"dataset": args.dataset, "hash": ds.content_hash, "val": args.val,
           "protocol": "equal-steps", "min_steps": bench.min_steps,
           "subset_epochs": bench.subset_epochs, "proxy_epochs": bench.proxy_epochs}
    # A variant's record counts only while it would run with the same parameters, defaults
    # included: a changed default reruns the variants it touches.
    log = ProgressLog(key, args.out_dir / "progress", stem, point="keep",
                      method_params={name: {"method": method,
                                            **make_method(method, **params).get_params()}
                                     for name, method, params in VARIANTS},
                      fields=RECORD_FIELDS)
    # results of another configuration (another --val, other data) are not
    # replaced without a word, as a bench's are not: refused before any training
    check_results_owner(log, args.out_dir, stem)
    chosen = [v for v in VARIANTS if not only or v[0] in only]
    start = time.perf_counter()
    for seed in range(args.seeds):
        config = TrainConfig(epochs=None, min_steps=bench.min_steps,
                             subset_epochs=bench.subset_epochs, seed=seed)
        passes = config.total_steps(len(y_tr)) * config.batch_size
        ctx = None
        for name, method_name, params in chosen:
            todo = [k for k in args.keeps if log.get(seed, name, f"{k:g}") is None]
            if not todo:
                continue
            if ctx is None:  # shared by the variants of a seed (proxy CNN, embeddings)
                ctx = scoring_context(x_tr, y_tr, ds.num_classes, seed,
                                      dataset_slug(args.dataset))
            method = make_method(method_name, seed=seed, **params)
            method.fit(ctx)
            for keep in todo:
                idx = method.select(resolve_keep(keep, len(y_tr)))
                res = train_for_passes(x_tr[idx], y_tr[idx], ds.num_classes, passes,
                                       seed=seed)
                acc = evaluate(res.model, x_val, y_val)
                log.add(seed, name, f"{keep:g}", acc=acc, count=len(idx),
                        train_seconds=res.seconds)
                print(f"[seed {seed}] {name:<48} keep {keep:<5} val acc {acc:.4f}  "
                      f"{res.seconds:.0f} s", flush=True)
    rows: dict[str, dict] = {}
    records = []
    # The report covers every keep logged, not only the ones this call trained: a run with
    # a few --keeps does not drop the others' rows from the results files.
    logged = {float(at) for (_, method, at) in log.done if method != WALL}
    report_keeps = sorted(set(args.keeps) | logged, reverse=True)
    for keep in report_keeps:
        for name, method, params in VARIANTS:
            runs = [log.get(s, name, f"{keep:g}") for s in range(args.seeds)]
            if any(r is None for r in runs):
                continue
            records += runs
            rows[f"{name}@{keep:g}"] = {**summarize(runs, MEAN_FIELDS), "variant": name,
                                        "keep": keep, "method": method, "params": params}
    for row in rows.values():
        base = rows.get(f"{args.baseline}@{row['keep']:g}")
        if base is not None and row["variant"] != args.baseline:
            row["vs_baseline"] = paired_difference(row["runs"], base["runs"])
    res = {"dataset": args.dataset, "protocol": "equal-steps", "keeps": report_keeps,
           "validation_samples": args.val, "seeds": args.seeds, "baseline": args.baseline,
           "recipe": bench.recipe(), "rows": rows,
           # seeds, the log, and the code versions and machines the rows were trained with (a
           # resumed run mixes); the key holds the data's hash as "hash", not "data"
           **log.provenance(args.seeds, records), "data_hash": ds.content_hash,
           "machine": machine_info(),
           "versions": package_versions(), "wall_seconds": time.perf_counter() - start}
    lines = [f"# Selection ablations (equal steps): {args.dataset}", "",
             f"Validation accuracy ({args.val} samples held out of the training split; never "
             f"the test split), mean ± std over {args.seeds} seeds, paired difference to "
             f"`{args.baseline}` in points with a 95% interval (bold: excludes 0). Every kept "
             f"set trains for the remaining data's steps. Recipe: {bench.recipe()}.", "",
             "| variant | keep | val acc | vs " + args.baseline + " |", "|---|---|---|---|"]
    for row in rows.values():
        vs = diff_cell(row["vs_baseline"]) if "vs_baseline" in row else "-"
        lines.append(f"| {row['variant']} | {row['keep']:g} | {row['acc_mean']:.4f} ± "
                     f"{row['acc_std']:.4f} | {vs} |")
    lines += ["", f"Machine: {res['machine']['processor']} × {res['machine']['cpus']} CPUs.", ""]
    lines += origins_lines(res)
    write_results(res, args.out_dir, stem, lambda _: "\n".join(lines))
    print("\n".join(lines))
    # a run with fewer --seeds than the log holds rewrote the table with fewer, silently
    say_later_seeds(log, list(range(args.seeds)), lambda line: print(line, file=sys.stderr))
    return 0


if __name__ == "__main__":
    from tinysift.errors import TinysiftError

    try:
        sys.exit(main(sys.argv[1:]))
    except TinysiftError as exc:  # bad input (an unknown dataset): its message, no traceback
        sys.exit(f"error: {exc}")
