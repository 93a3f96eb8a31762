"""Held-out likelihood of guided flow's density candidates on the embeddings it fits them on.

    .venv/bin/python tools/density_holdout.py [--datasets digits,fashion-mnist,mnist]
                                              [--seeds 3]

For each dataset and seed, trains guided ``flow`` (budget 0.5, the bench's recipe: digits 20
epochs, the others 10) up to its first density fit, the end of the warm-up, and takes the
embeddings the density would be fit on (the PCA of the model's features). Each class is split
80/20 at random; per-class RealNVP flows (guided flow's: 4 coupling layers, 32 hidden units,
100 Adam steps) and per-class Gaussian mixtures (4 diagonal components) are fit on the 80%
and scored on the 20%: the mean log-density of a held-out sample under its own class, the
share the densities classify right (argmax over classes), and the fit's seconds. It is the
evidence behind guided flow's rule of a Gaussian mixture for classes smaller than a flow
batch. Writes ``benchmarks/results/density_holdout.{json,md}`` with the seeds, the datasets'
hashes, the machine and the versions.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from _args import at_least

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: The guided bench's recipe per dataset (``--quick`` on digits).
EPOCHS = {"digits": 20, "fashion-mnist": 10, "mnist": 10}
DENSITIES = {"flow": {"steps": 100}, "gmm": {}}  # guided flow's settings


class _WarmUpDone(Exception):
    """Raised at the first density fit: the embeddings are what we came for."""


def warm_up_embeddings(x, y, num_classes: int, epochs: int, seed: int):
    """The embeddings (and labels) guided flow fits its first density on."""
    from tinysift.guided import make_sampler
    from tinysift.guided.loop import train_guided
    from tinysift.models.training import TrainConfig

    sampler = make_sampler("flow", seed=seed)
    caught = {}

    def capture(state):
        caught["z"], caught["y"] = sampler.z_.copy(), state.y.copy()
        raise _WarmUpDone

    sampler.before_codebook = capture  # this instance only
    try:
        train_guided(x, y, num_classes, sampler, 0.5,
                     train_config=TrainConfig(epochs=epochs, seed=seed), progress=False)
    except _WarmUpDone:
        return caught["z"], caught["y"]
    raise RuntimeError("guided flow never reached its density fit")


def holdout(z: np.ndarray, y: np.ndarray, num_classes: int, seed: int) -> dict:
    from tinysift.scoring.density import make_density

    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), bool)
    for c in range(num_classes):
        members = np.flatnonzero(y == c)
        test[rng.choice(members, len(members) // 5, replace=False)] = True
    row = {"train_per_class_min": int(np.bincount(y[~test], minlength=num_classes).min()),
           "test_samples": int(test.sum())}
    for kind, params in DENSITIES.items():
        start = time.perf_counter()
        density = make_density(kind, seed=seed, **params).fit(z[~test], y[~test], num_classes)
        seconds = time.perf_counter() - start
        logp = density.log_prob(z[test])
        row[kind] = {"heldout_loglik": float(logp[np.arange(test.sum()), y[test]].mean()),
                     "heldout_class_acc": float((logp.argmax(1) == y[test]).mean()),
                     "fit_seconds": round(seconds, 2)}
    return row


def markdown(res: dict) -> str:
    lines = ["# Guided flow's density: flow against Gaussian mixture, held out", "",
             "Embeddings at guided flow's first density fit (budget 0.5, the guided bench's "
             "recipe), each class split 80/20; per-class flows (4 layers, 32 hidden, 100 "
             "steps) and Gaussian mixtures (4 diagonal components) fit on 80%, scored on 20%. "
             f"Mean over {res['seeds']} seeds (min..max). Log-likelihood: mean log-density "
             "of a held-out sample under its own class (higher is better); class accuracy: "
             "argmax of the densities.", "",
             "| dataset | train per class (min) | flow log-lik | GMM log-lik | flow class acc "
             "| GMM class acc | flow fit s | GMM fit s |", "|---|---|---|---|---|---|---|---|"]

    def cell(rows, kind, key, fmt):
        v = [r[kind][key] for r in rows]
        return f"{np.mean(v):{fmt}} ({min(v):{fmt}}..{max(v):{fmt}})"

    for name, rows in res["datasets"].items():
        lines.append(f"| {name} | {rows[0]['train_per_class_min']} | "
                     f"{cell(rows, 'flow', 'heldout_loglik', '.2f')} | "
                     f"{cell(rows, 'gmm', 'heldout_loglik', '.2f')} | "
                     f"{cell(rows, 'flow', 'heldout_class_acc', '.3f')} | "
                     f"{cell(rows, 'gmm', 'heldout_class_acc', '.3f')} | "
                     f"{cell(rows, 'flow', 'fit_seconds', '.2f')} | "
                     f"{cell(rows, 'gmm', 'fit_seconds', '.2f')} |")
    m = res["machine"]
    lines += ["", f"Machine: {m['processor']} × {m['cpus']} CPUs; tensorflow "
              f"{res['versions'].get('tensorflow', '?')}, scikit-learn "
              f"{res['versions'].get('scikit-learn', '?')}. Fit seconds include building the "
              "flows' graph.", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(EPOCHS))
    ap.add_argument("--seeds", type=at_least(1), default=3)
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    from tinysift.bench.progress import write_results
    from tinysift.data import load_dataset
    from tinysift.runs import machine_info, package_versions

    names = args.datasets.split(",")
    unknown = [name for name in names if name not in EPOCHS]
    if unknown:  # before the first dataset trains, not after
        raise SystemExit(f"unknown dataset {unknown[0]!r}; known: {', '.join(EPOCHS)}")
    start = time.perf_counter()
    rows, hashes = {}, {}
    for name in names:
        data = load_dataset(name)
        hashes[name] = data.content_hash
        k = len(data.class_names)
        for seed in range(args.seeds):
            z, y = warm_up_embeddings(data.x_train, data.y_train, k, EPOCHS[name], seed)
            rows.setdefault(name, []).append({"seed": seed, **holdout(z, y, k, seed)})
            r = rows[name][-1]
            print(f"{name} seed {seed}: log-lik flow {r['flow']['heldout_loglik']:.2f} "
                  f"gmm {r['gmm']['heldout_loglik']:.2f}", flush=True)
    res = {"seeds": args.seeds, "datasets": rows, "dataset_hashes": hashes,
           "densities": DENSITIES, "machine": machine_info(), "versions": package_versions(),
           "wall_seconds": round(time.perf_counter() - start, 1)}
    write_results(res, args.out_dir, "density_holdout", markdown)
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
