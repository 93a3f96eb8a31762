"""Replay selection on the host, without the device's test-set noise.

``tinysift bench device`` measures replay methods on the emulated board, but its exported test
subset is 30 samples per class (300 in all): one standard error of an accuracy there is about
2 points, as large as the differences it looks for. This study keeps everything of the
device's new-classes scenario except the device: the bench's own base models
(runs/_bench_device/<stem>-s<seed>/base, trained by ``tinysift bench device``), their float
backbone features, and the device's head recipe in float (SGD, momentum 0.9, class-balanced
loss, cosine learning rate, ``steps`` batches of 32, starting from the base model's head),
evaluated on the WHOLE test split (10,000 samples) and on a validation split held out of the
old training data (600 per old class, never selectable) plus the unused new-class training
samples. Replay methods are fitted on the remaining old training data, in the backbone's
feature space, as the bench does.

Writes benchmarks/results/replay_study_<dataset>.{json,md}. Run after the device bench has
built its base models::

    .venv/bin/python tools/replay_study.py --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _args import at_least, int_list

ROOT = Path(__file__).resolve().parents[1]

# name -> (method, params): vq-medoids is per-class k-means with k = the quota and the
# member nearest each centroid (the classic replay exemplar rule)
METHODS = {
    "random": ("random", {}),
    "herding": ("herding", {}),
    "ccs": ("ccs", {}),
    "vq": ("vq", {}),
    "vq-medoids": ("vq", {"per_codeword": 1, "window": 0.01}),
    "flow": ("flow", {}),
}


def head_train(f, y, w0, b0, k, steps=300, lr=0.05, batch=32, momentum=0.9, seed=0):
    """The device's head recipe in float: class-balanced softmax cross-entropy, SGD with
    momentum, cosine learning rate, ``steps`` batches drawn from reshuffled epochs."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(y, minlength=k).astype(np.float64)
    present = np.count_nonzero(counts)
    cw = np.where(counts > 0, len(y) / (present * np.maximum(counts, 1)), 0.0)
    w, b = w0.astype(np.float64).copy(), b0.astype(np.float64).copy()
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    order, pos = rng.permutation(len(y)), 0
    for t in range(steps):
        idx = []
        while len(idx) < batch:
            if pos >= len(order):
                order, pos = rng.permutation(len(y)), 0
            take = min(batch - len(idx), len(order) - pos)
            idx.extend(order[pos:pos + take])
            pos += take
        idx = np.asarray(idx)
        x, yy = f[idx], y[idx]
        z = x @ w + b
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        g = p
        g[np.arange(len(yy)), yy] -= 1.0
        g *= cw[yy][:, None] / len(yy)
        rate = lr * 0.5 * (1.0 + np.cos(np.pi * t / steps))
        vw = momentum * vw + x.T @ g
        vb = momentum * vb + g.sum(0)
        w -= rate * vw
        b -= rate * vb
    return w, b


def balanced_acc(f, y, w, b, classes):
    pred = (f @ w + b).argmax(1)
    return float(np.mean([np.mean(pred[y == c] == c) for c in classes]))


def study_seed(stem: str, seed: int, sizes, methods, val_per_class: int, order_seeds: int,
               random_draws: int, log=print) -> list[dict]:
    from tinysift.data import load_dataset
    from tinysift.models.cnn import FEATURES_LAYER, feature_model
    from tinysift.models.training import predict_proba
    from tinysift.scoring import ScoringContext
    from tinysift.selection import make_method
    from tinysift.stages.train import load_trained_model

    work = ROOT / "runs" / "_bench_device" / f"{stem}-s{seed}"
    base = work / "base"
    if not (base / "model.keras").exists():
        raise SystemExit(f"{base} has no base model: run `tinysift bench device --seeds "
                         f"{seed + 1}` first (it trains and caches them)")
    with np.load(work / "scenario.npz") as z:
        parts = {k[5:]: z[k] for k in z.files if k.startswith("part_")}
        x, y, xt, yt = z["x"], z["y"], z["x_test"], z["y_test"]
    x_old, y_old = x[parts["old"]], y[parts["old"]]
    x_new, y_new = x[parts["new"]], y[parts["new"]]
    old_classes = np.unique(y_old)
    new_classes = np.unique(y_new)
    k = 10
    rng = np.random.default_rng(1000 + seed)
    val = np.concatenate([rng.choice(np.flatnonzero(y_old == c), val_per_class, replace=False)
                          for c in old_classes])
    pool = np.setdiff1d(np.arange(len(y_old)), val)
    # new-class validation: the dataset's new-class training samples the scenario did not draw
    ds = load_dataset("fashion-mnist")
    drawn = {bytes(img) for img in x_new}
    cand = np.flatnonzero(np.isin(ds.y_train, new_classes))
    val_new = np.array([i for i in cand if bytes(ds.x_train[i]) not in drawn])

    model = load_trained_model(base)
    fm = feature_model(model)
    head = model.get_layer("head")
    w0, b0 = (np.asarray(v) for v in head.get_weights())
    assert head.name != FEATURES_LAYER and w0.shape[1] == k
    t0 = time.perf_counter()
    f_old = predict_proba(fm, x_old)
    f_new = predict_proba(fm, x_new)
    f_test = predict_proba(fm, xt)
    f_vnew = predict_proba(fm, ds.x_train[val_new])
    log(f"seed {seed}: features in {time.perf_counter() - t0:.0f} s")
    f_val = np.concatenate([f_old[val], f_vnew])
    y_val = np.concatenate([y_old[val], ds.y_train[val_new]])
    every = np.concatenate([old_classes, new_classes])

    ctx = ScoringContext(x_old[pool], y_old[pool], k, seed=seed, features=f_old[pool],
                         progress=False)
    rows = []
    for name in methods:
        method_name, params = METHODS[name]
        draws = random_draws if name == "random" else 1
        for draw in range(draws):
            t0 = time.perf_counter()
            p = dict(params)
            if method_name in ("vq", "flow"):
                p.setdefault("embedding", "given")
            fitted = make_method(method_name, seed=seed * 100 + draw, **p).fit(ctx)
            fit_s = time.perf_counter() - t0
            for size in sizes:
                kept = pool[fitted.select(size * len(old_classes))]
                f_tr = np.concatenate([f_old[kept], f_new])
                y_tr = np.concatenate([y_old[kept], y_new])
                accs = {"val": [], "test": [], "test_old": [], "test_new": []}
                for o in range(order_seeds):
                    w, b = head_train(f_tr, y_tr, w0, b0, k, seed=o)
                    accs["val"].append(balanced_acc(f_val, y_val, w, b, every))
                    accs["test"].append(balanced_acc(f_test, yt, w, b, every))
                    accs["test_old"].append(balanced_acc(f_test, yt, w, b, old_classes))
                    accs["test_new"].append(balanced_acc(f_test, yt, w, b, new_classes))
                row = {"seed": seed, "method": name, "draw": draw, "size": size,
                       "fit_seconds": fit_s, **{a: float(np.mean(v)) for a, v in accs.items()}}
                rows.append(row)
            log(f"seed {seed} {name} draw {draw}: "
                + ", ".join(f"{r['size']}/class {r['test']:.4f}" for r in rows[-len(sizes):]))
    return rows


def summarize(rows: list[dict], sizes) -> dict:
    """Per method and size: mean over seeds (random: over its draws first), and the paired
    difference to random (per seed) with its spread."""
    out = {}
    seeds = sorted({r["seed"] for r in rows})
    for name in dict.fromkeys(r["method"] for r in rows):
        out[name] = {}
        for size in sizes:
            per_seed = {}
            for metric in ("val", "test", "test_old", "test_new"):
                per_seed[metric] = [np.mean([r[metric] for r in rows if r["method"] == name
                                             and r["size"] == size and r["seed"] == s])
                                    for s in seeds]
            rand = [np.mean([r["test"] for r in rows if r["method"] == "random"
                             and r["size"] == size and r["seed"] == s]) for s in seeds]
            rand_val = [np.mean([r["val"] for r in rows if r["method"] == "random"
                                 and r["size"] == size and r["seed"] == s]) for s in seeds]
            diff = np.array(per_seed["test"]) - np.array(rand)
            dval = np.array(per_seed["val"]) - np.array(rand_val)
            out[name][str(size)] = {
                **{m: float(np.mean(v)) for m, v in per_seed.items()},
                "test_minus_random": float(diff.mean()),
                "test_minus_random_sd": float(diff.std(ddof=1)) if len(diff) > 1 else None,
                "val_minus_random": float(dval.mean()),
                "seeds_above_random": int((diff > 0).sum()),
            }
    return out


def inputs(stem: str, seed: int) -> dict:
    """The hashes of what a seed's study reads from the device bench's folder: its
    scenario (the old/new split, the test set) and its base model."""
    from tinysift.runs import file_hash

    work = ROOT / "runs" / "_bench_device" / f"{stem}-s{seed}"
    return {"scenario": file_hash(work / "scenario.npz"),
            "base_model": file_hash(work / "base" / "model.keras")}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int_list(least=0), default="0,1,2")
    # A replay of 0 samples a class trains on the new classes alone: not a size the study
    # compares selectors at (every selector picks the same empty set).
    ap.add_argument("--sizes", type=int_list(least=1), default="5,10,20")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--order-seeds", type=at_least(1), default=3)
    ap.add_argument("--random-draws", type=at_least(1), default=5)
    ap.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"))
    a = ap.parse_args(argv)
    seeds, sizes = a.seeds, a.sizes
    methods = a.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        ap.error(f"--methods: unknown {', '.join(map(repr, unknown))}; choose from "
                 f"{', '.join(METHODS)}")
    if "random" not in methods:
        ap.error("--methods must include random: every difference of the study is to random")
    stem = "device_new-classes_fashion-mnist"
    from tinysift.data import load_dataset
    from tinysift.runs import machine_info, package_versions

    t0 = time.perf_counter()
    rows = []
    for seed in seeds:
        rows += study_seed(stem, seed, sizes, methods, 600, a.order_seeds, a.random_draws)
    summary = summarize(rows, sizes)

    doc = {"study": "replay selection, host head (device recipe in float), new-classes "
                    "fashion-mnist 0-7 -> 8-9, 100 new per class",
           "seeds": seeds, "sizes": sizes, "order_seeds": a.order_seeds,
           "random_draws": a.random_draws, "val_per_old_class": 600,
           "recipe": {"steps": 300, "lr": 0.05, "batch": 32, "momentum": 0.9,
                      "schedule": "cosine", "balanced": True},
           "summary": summary, "rows": rows, "seconds": time.perf_counter() - t0,
           "data_hash": load_dataset("fashion-mnist").content_hash,
           "inputs": {str(seed): inputs(stem, seed) for seed in seeds},
           "versions": package_versions(), "machine": machine_info()}
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "replay_study_fashion-mnist.json").write_text(json.dumps(doc, indent=1))
    lines = [f"# Replay selection on the host ({len(seeds)} base-model seeds; random: "
             f"{a.random_draws} draws per seed; every point averaged over {a.order_seeds} "
             "sample orders)", "",
             "Balanced accuracy of the device's head recipe (float) on the whole Fashion-MNIST "
             "test split (10,000) and on validation data (600 held-out per old class + the "
             "unused new-class training samples). `- random`: paired difference to random, "
             "mean over seeds (sd); `>rnd`: seeds above random.", "",
             "| method | per class | test | old | new | val | test - random | val - random |"
             " >rnd |", "|---|---|---|---|---|---|---|---|---|"]
    for name, per in summary.items():
        for size, p in per.items():
            sd = f" ({p['test_minus_random_sd']:.4f})" if p["test_minus_random_sd"] else ""
            lines.append(f"| {name} | {size} | {p['test']:.4f} | {p['test_old']:.4f} | "
                         f"{p['test_new']:.4f} | {p['val']:.4f} | "
                         f"{p['test_minus_random']:+.4f}{sd} | {p['val_minus_random']:+.4f} | "
                         f"{p['seeds_above_random']}/{len(seeds)} |")
    lines += ["", f"Machine: {doc['machine']['platform']}, {doc['machine']['cpus']} CPUs; "
              f"{doc['seconds']:.0f} s. Generated by tools/replay_study.py."]
    (out / "replay_study_fashion-mnist.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
