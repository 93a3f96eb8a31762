"""Reading and writing ``selection.npz`` (pruning) and ``condensed.npz`` (condensation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinysift.errors import DatasetError
from tinysift.runs import atomic_write_npz

SELECTION_FILE = "selection.npz"
CONDENSED_FILE = "condensed.npz"


def write_selection(path: str | Path, indices: np.ndarray, scores: np.ndarray, method: str,
                    num_samples: int, dataset_hash: str, label_noise: float = 0.0,
                    noise_seed: int = 0) -> Path:
    """``indices``: kept training indices (sorted int64); ``scores``: one per original sample
    (higher = kept first); ``keep_count`` = len(indices)."""
    indices = np.unique(np.asarray(indices, dtype=np.int64))
    return atomic_write_npz(path, indices=indices, scores=np.asarray(scores, dtype=np.float64),
                            method=np.array(method), keep_count=np.int64(len(indices)),
                            num_samples=np.int64(num_samples),
                            keep_fraction=np.float64(len(indices) / num_samples),
                            dataset_hash=np.array(dataset_hash),
                            label_noise=np.float64(label_noise), noise_seed=np.int64(noise_seed))


def read_selection(path: str | Path, num_samples: int | None = None,
                   dataset_hash: str | None = None) -> dict:
    """Load a selection and check it belongs to the dataset it is applied to."""
    p = Path(path)
    if p.is_dir():
        p = p / SELECTION_FILE
    if not p.exists():
        raise DatasetError(f"selection file {p} not found; create it with `tinysift prune`")
    with np.load(p, allow_pickle=False) as npz:
        sel = {k: npz[k] for k in npz.files}
    for key in ("indices", "method", "keep_count"):
        if key not in sel:
            raise DatasetError(f"{p} has no {key!r}: not a tinysift selection file")
    idx = sel["indices"]
    if num_samples is not None:
        if "num_samples" in sel and int(sel["num_samples"]) != num_samples:
            raise DatasetError(
                f"{p} was made for a training set of {int(sel['num_samples'])} samples, but "
                f"this dataset has {num_samples}; prune this dataset again"
            )
        if len(idx) and (idx.min() < 0 or idx.max() >= num_samples):
            raise DatasetError(f"{p} has indices outside [0, {num_samples})")
    if dataset_hash is not None and "dataset_hash" in sel and str(sel["dataset_hash"]) not in (
            dataset_hash, ""):
        raise DatasetError(
            f"{p} was made for dataset hash {sel['dataset_hash']}, not {dataset_hash}; "
            "the selection belongs to different data: prune this dataset again"
        )
    return sel


def write_condensed(path: str | Path, x: np.ndarray, y: np.ndarray, method: str,
                    per_class: int, dataset_hash: str) -> Path:
    return atomic_write_npz(path, x=x.astype(np.uint8), y=y.astype(np.int64),
                            method=np.array(method), per_class=np.int64(per_class),
                            dataset_hash=np.array(dataset_hash))


def read_condensed(path: str | Path) -> dict:
    p = Path(path)
    if p.is_dir():
        p = p / CONDENSED_FILE
    if not p.exists():
        raise DatasetError(f"condensed file {p} not found; create it with `tinysift condense`")
    with np.load(p, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}
