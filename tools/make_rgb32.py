#!/usr/bin/env python
"""Make a real-data 32x32x3 image set (a ``.npz`` for ``tinysift ... --dataset npz:PATH``).

Fashion-MNIST images are zero-padded from 28x28 to 32x32 and stacked into 3 channels, so a
model on it has the shape of a CIFAR-10 model (which cannot be downloaded here) while the
data stay real. Used to export and test a 32x32x3 model (e.g. ``--variant conv-maxpool``).

    .venv/bin/python tools/make_rgb32.py --out runs/data/fmnist-rgb32.npz --train 6000 --test 1000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _args import at_least


def to_rgb32(x: np.ndarray) -> np.ndarray:
    """(N, 28, 28[, 1]) uint8 -> (N, 32, 32, 3) uint8: 2-pixel zero border, 3 equal channels."""
    x = x.reshape(len(x), 28, 28)
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2)), mode="constant")
    return np.repeat(padded[..., None], 3, axis=-1).astype(np.uint8)


def stratified(y: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` indices with the classes as balanced as the data allow (seeded, sorted)."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    per = [count // len(classes) + (1 if i < count % len(classes) else 0)
           for i in range(len(classes))]
    picks = [rng.choice(np.flatnonzero(y == c), size=min(n, int((y == c).sum())), replace=False)
             for c, n in zip(classes, per, strict=True)]
    return np.sort(np.concatenate(picks))


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/data/fmnist-rgb32.npz")
    ap.add_argument("--train", type=at_least(1, "image"), default=6000,
                    help="training images kept (stratified)")
    ap.add_argument("--test", type=at_least(1, "image"), default=1000,
                    help="test images kept (stratified)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from tinysift.data import load_dataset

    ds = load_dataset("fashion-mnist")
    tr = stratified(ds.y_train, args.train, args.seed)
    te = stratified(ds.y_test, args.test, args.seed + 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez_compressed(tmp, x=to_rgb32(ds.x_train[tr]), y=ds.y_train[tr].astype(np.int64),
                        x_test=to_rgb32(ds.x_test[te]), y_test=ds.y_test[te].astype(np.int64),
                        class_names=np.array(ds.class_names))
    tmp.replace(out)
    print(f"wrote {out}: {len(tr)} train + {len(te)} test images, 32x32x3")
    return out


if __name__ == "__main__":
    main()
