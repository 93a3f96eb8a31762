"""Reading and writing ``selection.npz`` (pruning) and ``condensed.npz`` (condensation).

In ``selection.npz`` only ``indices`` is the selection. ``scores`` are what the method
measured, one per training sample, as its ``score_meaning`` says; the top ``k`` of them (per
class, at the class quotas) is the method's selection of ``k`` only where ``nested`` is
true. For the others (CCS, D2, prototypes, VQ, flow) re-cutting a budget from the scores
(``argsort(-scores)[:k]``) is not the method: run ``tinysift prune`` at that budget. Files
written before these two fields existed load without them (read them as unknown).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tinysift.errors import DatasetError
from tinysift.runs import atomic_write_npz

SELECTION_FILE = "selection.npz"
CONDENSED_FILE = "condensed.npz"


def describe_scores(method: str) -> tuple[str, bool]:
    """``(score_meaning, nested)`` of a registered method with its default parameters;
    ``("", False)`` for a name that is not one (e.g. ``scenario:old``)."""
    from tinysift.selection.base import METHODS, make_method

    make_method("random")  # registers every method
    if method not in METHODS:
        return "", False
    impl = make_method(method)
    return impl.score_meaning, bool(impl.nested)


def write_selection(path: str | Path, indices: np.ndarray, scores: np.ndarray, method: str,
                    num_samples: int, dataset_hash: str, label_noise: float = 0.0,
                    noise_seed: int = 0, score_meaning: str | None = None,
                    nested: bool | None = None, seed: int | None = None,
                    params: dict | None = None) -> Path:
    """Write a selection.

    Parameters
    ----------
    path : the ``.npz`` to write
    indices : kept training indices (saved sorted, int64): **the selection**
    scores : one per original sample, what the method measured (``score_meaning`` says what,
        direction included); the top of them is the selection only when ``nested``
    method : method name
    num_samples, dataset_hash : the training set the selection belongs to
    label_noise, noise_seed : label noise applied before scoring
    score_meaning, nested : the method's :attr:`~tinysift.selection.base.PruningMethod.
        score_meaning` and ``nested`` (pass the fitted method's: they may depend on its
        parameters); None reads them from the registered method's defaults
    seed, params : the method's seed and every parameter it ran with (its
        ``plain_params()``, ``balance`` included), so the file alone says how it was made
        (stored as ``seed`` and a JSON ``params`` string when given)

    Returns
    -------
    Path
        The file written. It also holds ``keep_count`` = len(indices), ``keep_fraction``,
        ``score_meaning`` and ``nested``.
    """
    if score_meaning is None or nested is None:
        default_meaning, default_nested = describe_scores(method)
        score_meaning = default_meaning if score_meaning is None else score_meaning
        nested = default_nested if nested is None else nested
    indices = np.unique(np.asarray(indices, dtype=np.int64))
    # a caller's slip, refused before a file read_selection would refuse is written (a
    # training set of 0 samples divided by zero)
    if num_samples < 1 or (len(indices) and (indices[0] < 0 or indices[-1] >= num_samples)):
        raise ValueError(f"a selection of {num_samples} samples needs indices in [0, "
                         f"{num_samples}), got {indices[:1]}..{indices[-1:]}")
    if len(np.ravel(scores)) != num_samples:
        raise ValueError(f"a selection of {num_samples} samples needs one score per sample, "
                         f"got {len(np.ravel(scores))}")
    made_by = {}
    if seed is not None:
        made_by["seed"] = np.int64(seed)
    if params is not None:
        made_by["params"] = np.array(json.dumps(params, sort_keys=True, default=str))
    return atomic_write_npz(path, **made_by, indices=indices,
                            scores=np.asarray(scores, dtype=np.float64),
                            method=np.array(method), keep_count=np.int64(len(indices)),
                            num_samples=np.int64(num_samples),
                            keep_fraction=np.float64(len(indices) / num_samples),
                            dataset_hash=np.array(dataset_hash),
                            label_noise=np.float64(label_noise), noise_seed=np.int64(noise_seed),
                            score_meaning=np.array(str(score_meaning)),
                            nested=np.bool_(nested))


def set_file(path: str | Path, name: str = SELECTION_FILE) -> Path:
    """The set file a ``--selection`` / ``--condensed`` argument names: the file itself, or
    ``name`` inside a run folder."""
    p = Path(path)
    return p / name if p.is_dir() else p


def _refuse_other_kind(path: str | Path, other: str) -> None:
    """A run folder given to --selection that holds only a condensed set, or to --condensed
    that holds only a selection: refused naming the option it belongs to (the refusal said
    to create the missing file with the other command)."""
    folder = Path(path)
    if folder.is_dir() and (folder / other).is_file():
        mine, flag = ((SELECTION_FILE, "--condensed") if other == CONDENSED_FILE
                      else (CONDENSED_FILE, "--selection"))
        raise DatasetError(f"{folder} holds {other}, not {mine}: pass the folder with {flag}")


def _load_npz(p: Path, what: str, fix: str) -> dict:
    """Every array of an ``.npz``, or one clear DatasetError for a file that is not one."""
    from tinysift.data.sources import open_numpy

    try:
        # open_numpy: a text file is "neither a zip archive nor a numpy file", not the
        # "pickled (object) data" numpy's guess says
        loaded = open_numpy(p)
        if not hasattr(loaded, "files"):
            raise ValueError("a single array, not an .npz archive")
        with loaded as npz:
            return {k: npz[k] for k in npz.files}
    except Exception as exc:  # noqa: BLE001 - zip, zlib, format and I/O errors alike
        raise DatasetError(f"{p} is not a readable {what} ({type(exc).__name__}: {exc}); "
                           f"{fix}") from None


def _scalar(sel: dict, key: str, p: Path, kind: type, what: str = "selection",
            fix: str = "create it again with `tinysift prune`"):
    """``sel[key]`` as one ``kind``, or a DatasetError naming the key, the file's kind
    (``what``) and ``fix``."""
    value = sel[key]
    if value.ndim != 0 or (kind is str and value.dtype.kind not in "US") or (
            kind is int and value.dtype.kind not in "iu") or (
            kind is float and value.dtype.kind not in "iuf") or (
            kind is bool and value.dtype.kind != "b"):
        raise DatasetError(f"{p}: {key!r} must be one {kind.__name__}, got {value.dtype} "
                           f"{value.shape}: not a tinysift {what} file; {fix}")
    return kind(value)


def read_selection(path: str | Path, num_samples: int | None = None,
                   dataset_hash: str | None = None) -> dict:
    """Load a selection and check it belongs to the dataset it is applied to.

    Returns every array of the file; ``score_meaning`` and ``nested`` only where the file has
    them (files written before they existed have neither)."""
    p = set_file(path, SELECTION_FILE)
    if not p.exists():
        _refuse_other_kind(path, CONDENSED_FILE)
        raise DatasetError(f"selection file {p} not found; create it with `tinysift prune`")
    fix = "create it again with `tinysift prune`"
    sel = _load_npz(p, "selection (.npz)", fix)
    if "indices" not in sel and {"x", "y", "per_class"} <= sel.keys():
        raise DatasetError(f"{p} is a condensed set (`tinysift condense`), not a selection: "
                           "pass it with --condensed")
    for key in ("indices", "method", "keep_count"):
        if key not in sel:
            raise DatasetError(f"{p} has no {key!r}: not a tinysift selection file; {fix}")
    idx = sel["indices"]
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise DatasetError(f"{p}: 'indices' must be a 1-D array of integers, got {idx.dtype} "
                           f"{idx.shape}; {fix}")
    if len(idx) == 0:
        raise DatasetError(f"{p} keeps no sample (empty 'indices'); {fix}")
    if len(np.unique(idx)) != len(idx):
        raise DatasetError(f"{p} lists a sample twice in 'indices'; {fix}")
    if _scalar(sel, "keep_count", p, int) != len(idx):
        raise DatasetError(f"{p}: keep_count {int(sel['keep_count'])} but {len(idx)} indices; "
                           f"{fix}")
    _scalar(sel, "method", p, str)
    # Both absent from files written before they existed: those still load.
    if "score_meaning" in sel:
        _scalar(sel, "score_meaning", p, str)
    if "nested" in sel:
        _scalar(sel, "nested", p, bool)
    if "label_noise" in sel:
        noise = _scalar(sel, "label_noise", p, float)
        if not 0.0 <= noise < 1.0:
            raise DatasetError(f"{p}: label_noise {noise} is not in [0, 1); {fix}")
        if noise > 0 and "noise_seed" not in sel:
            raise DatasetError(f"{p} has label noise {noise} but no 'noise_seed' to repeat it "
                               f"with; {fix}")
        if "noise_seed" in sel and _scalar(sel, "noise_seed", p, int) < 0:
            # numpy's generators take no negative seed: an unexpected ValueError at training
            raise DatasetError(f"{p}: noise_seed {int(sel['noise_seed'])} is negative; the "
                               f"noise draw's seed is >= 0; {fix}")
    if num_samples is not None:
        if "num_samples" in sel and _scalar(sel, "num_samples", p, int) != num_samples:
            raise DatasetError(
                f"{p} was made for a training set of {int(sel['num_samples'])} samples, but "
                f"this dataset has {num_samples}; prune this dataset again"
            )
        if idx.min() < 0 or idx.max() >= num_samples:
            raise DatasetError(f"{p} has indices outside [0, {num_samples}) (this dataset's "
                               f"samples); it was made for other data: {fix}")
    if "scores" in sel:  # one per training sample (what a re-cut or an inspection reads)
        scores = sel["scores"]
        if scores.ndim != 1 or scores.dtype.kind not in "iuf" or (
                num_samples is not None and len(scores) != num_samples):
            raise DatasetError(f"{p}: 'scores' must be one number per training sample"
                               f"{f' ({num_samples})' if num_samples is not None else ''}, "
                               f"got {scores.dtype} {scores.shape}; {fix}")
    if dataset_hash is not None and "dataset_hash" in sel and str(sel["dataset_hash"]) not in (
            dataset_hash, ""):
        raise DatasetError(
            f"{p} was made for dataset hash {sel['dataset_hash']}"
            f"{_made_from(p, str(sel['dataset_hash']))}, not "
            f"{dataset_hash}; the selection belongs to different data: prune this dataset "
            "again"
        )
    return sel


def _made_from(set_path: Path, made_for: str) -> str:
    """`` (dataset NAME, as its run folder records)`` for a set file made for hash
    ``made_for`` in a run folder whose manifest names a dataset of that hash; '' otherwise
    (a set copied into another data's folder is not named after it): a mismatch named two
    hashes and no data."""
    from tinysift.runs import MANIFEST

    try:
        recorded = json.loads((set_path.parent / MANIFEST).read_text())["dataset"]
        name, digest = recorded["name"], recorded["hash"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    if not isinstance(name, str) or digest != made_for:
        return ""
    return f" (dataset {name}, as its run folder records)"


def write_condensed(path: str | Path, x: np.ndarray, y: np.ndarray, method: str,
                    per_class: int, dataset_hash: str) -> Path:
    return atomic_write_npz(path, x=x.astype(np.uint8), y=y.astype(np.int64),
                            method=np.array(method), per_class=np.int64(per_class),
                            dataset_hash=np.array(dataset_hash))


def read_condensed(path: str | Path, dataset_hash: str | None = None,
                   num_classes: int | None = None) -> dict:
    """A ``condensed.npz``, checked; with ``dataset_hash`` it must belong to that dataset
    (a file without the hash, or with an empty one, passes) and with ``num_classes`` its
    labels must be among the dataset's classes.

    Raises
    ------
    DatasetError : missing, unreadable, malformed, or of another dataset
    """
    p = set_file(path, CONDENSED_FILE)
    if not p.exists():
        _refuse_other_kind(path, SELECTION_FILE)
        raise DatasetError(f"condensed file {p} not found; create it with `tinysift condense`")
    fix = "create it again with `tinysift condense`"
    cond = _load_npz(p, "condensed set (.npz)", fix)
    if "x" not in cond and {"indices", "keep_count"} <= cond.keys():
        raise DatasetError(f"{p} is a selection (`tinysift prune`), not a condensed set: "
                           "pass it with --selection")
    for key in ("x", "y", "method"):
        if key not in cond:
            raise DatasetError(f"{p} has no {key!r}: not a tinysift condensed file; {fix}")
    x, y = cond["x"], cond["y"]
    if x.ndim not in (3, 4) or x.dtype != np.uint8 or len(x) == 0:
        raise DatasetError(f"{p}: 'x' must be (N, H, W[, C]) uint8 images with N >= 1, got "
                           f"{x.dtype} {x.shape}; {fix}")
    if y.ndim != 1 or y.dtype.kind not in "iu" or len(y) != len(x) or (y < 0).any():
        raise DatasetError(f"{p}: 'y' must hold one non-negative integer label per image, got "
                           f"{y.dtype} {y.shape} for {len(x)} images; {fix}")
    if x.ndim == 3:  # (N, H, W): one channel, as the datasets read it (train compared the
        cond["x"] = x[..., None]  # shapes and said "condensed from a different dataset")
    _scalar(cond, "method", p, str, "condensed", fix)
    made_for = str(cond["dataset_hash"]) if "dataset_hash" in cond else ""
    if dataset_hash is not None and made_for not in (dataset_hash, ""):
        raise DatasetError(f"{p} was condensed from dataset hash {made_for}"
                           f"{_made_from(p, made_for)}, "
                           f"not {dataset_hash}: the set belongs to different data; condense "
                           "this dataset again")
    if num_classes is not None and int(y.max()) >= num_classes:
        raise DatasetError(f"{p} has label {int(y.max())}, but the dataset has {num_classes} "
                           f"classes (0..{num_classes - 1}); {fix} from this dataset")
    return cond
