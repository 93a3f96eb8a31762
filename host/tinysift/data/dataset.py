"""The in-memory dataset: uint8 NHWC images, integer labels, a fixed split, a content hash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from tinysift.errors import DatasetError

#: the image files a ``folder:`` dataset reads (by suffix, any case)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".tif", ".tiff"}


def named_classes(names: list[str], shown: int = 10) -> str:
    """Class names for a message: the first ``shown`` quoted, then how many more."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(repr(n) for n in names[:shown]) + more


#: the names of the held-out split beside ``train/`` in a folder laid out by split (the one
#: whose accuracy is reported): Keras' and ImageNet's layouts name it val/ or validation/
HELD_OUT_FOLDERS = ("test", "val", "valid", "validation")


def supply_test_split(name: str) -> str:
    """How the user of dataset ``name`` supplies a test split of their own, for a message:
    x_test/y_test in an .npz; test/ (or val/) beside train/ in a folder (a folder's user was
    told of .npz arrays)."""
    if name.startswith("folder:"):
        return ("give the folder its own test split: train/ and test/ (or val/) beside each "
                "other, a folder per class in each")
    return "supply the test split as x_test/y_test in an .npz"


@dataclass(frozen=True)
class Dataset:
    """An image classification dataset with a fixed train/test split.

    Attributes
    ----------
    name : str
        Registry name (``digits``, ``npz:/path/x.npz``, ...).
    x_train, x_test : np.ndarray
        uint8 images, shape ``(N, H, W, C)``.
    y_train, y_test : np.ndarray
        int64 labels in ``[0, num_classes)``.
    class_names : tuple of str
        One name per class.
    source : str
        Where the data was read from (path or package).
    skipped : tuple of str
        What the loader passed over in the user's files (a sub-folder inside a class folder,
        a file of another type, a broken link), said by :meth:`warnings`.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str = ""
    skipped: tuple[str, ...] = field(default=(), compare=False)
    _hash: list = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        validate_arrays(self.x_train, self.y_train, len(self.class_names), "train", self.name)
        validate_arrays(self.x_test, self.y_test, len(self.class_names), "test", self.name)
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DatasetError(
                f"dataset {self.name!r}: train images are {self.x_train.shape[1:]} but test images "
                f"are {self.x_test.shape[1:]}; both splits must have the same H, W, C"
            )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def content_hash(self) -> str:
        """sha256 over images, labels and class names of both splits (hex, first 16 bytes)."""
        if not self._hash:
            h = hashlib.sha256()
            for arr in (self.x_train, self.y_train, self.x_test, self.y_test):
                h.update(str(arr.shape).encode())
                h.update(np.ascontiguousarray(arr).tobytes())
            h.update("\0".join(self.class_names).encode())
            self._hash.append(h.hexdigest()[:32])
        return self._hash[0]

    def class_counts(self, split: str = "train") -> np.ndarray:
        y = self.y_train if split == "train" else self.y_test
        return np.bincount(y, minlength=self.num_classes)

    def untested_classes(self) -> list[str]:
        """Names of the classes the test split has no sample of: test accuracy says nothing
        about them (a held-out 20% split gives none to a class of one sample, which stays in
        training, and maybe none to one under about 5; a supplied x_test may lack classes)."""
        return [self.class_names[c] for c in np.flatnonzero(self.class_counts("test") == 0)]

    def warnings(self) -> list[str]:
        """What a user of this data should hear: entries of their folder that were skipped
        and classes the test split lacks (:meth:`test_split_warnings`)."""
        return skipped_warnings(self.name, self.skipped) + self.test_split_warnings()

    def test_split_warnings(self) -> list[str]:
        """One line when some class is missing from the test split, naming the classes and
        the fix; empty otherwise."""
        missing = self.untested_classes()
        if not missing:
            return []
        held = self._held_out_folder()
        if held:  # the folder's own split: the 20% and a split to supply do not apply
            fix = f"add images of them to {held}/, the folder's test split"
        else:
            fix = ("add samples (a held-out 20% gives a class a test sample from about 5 "
                   f"samples on), or {supply_test_split(self.name)} (with every class)")
        return [f"the test split has no sample of class(es) {named_classes(missing)}: test "
                f"accuracy does not measure them; {fix}"]

    def _held_out_folder(self) -> str:
        """The held-out split folder (``test``, ``Val``, ...) of a ``folder:`` dataset read
        from train/ beside it (its ``source``); '' for any other."""
        from pathlib import Path

        if not (self.name.startswith("folder:") and self.source):
            return ""
        try:
            subs = [d.name for d in Path(self.source).iterdir()
                    if d.is_dir() and not d.name.startswith(".")]
        except OSError:
            return ""
        held = [n for n in subs if n.lower() in HELD_OUT_FOLDERS]
        return held[0] if len(held) == 1 and any(n.lower() == "train" for n in subs) else ""

    def subset(self, indices: np.ndarray) -> Dataset:
        """The same dataset with the training split restricted to ``indices`` (integer
        indices, or a boolean mask over the training split)."""
        indices = np.asarray(indices)
        if indices.dtype == np.bool_:
            if indices.shape != self.y_train.shape:
                raise DatasetError(
                    f"dataset {self.name!r}: a boolean mask of shape {indices.shape} cannot "
                    f"select from {len(self.y_train)} training samples; pass one flag per "
                    "sample or integer indices"
                )
            indices = np.flatnonzero(indices)
        indices = indices.astype(np.int64)
        return Dataset(
            name=self.name,
            x_train=self.x_train[indices],
            y_train=self.y_train[indices],
            x_test=self.x_test,
            y_test=self.y_test,
            class_names=self.class_names,
            source=self.source,
            skipped=self.skipped,
        )

    def with_train(self, x: np.ndarray, y: np.ndarray, tag: str) -> Dataset:
        """The same test split with a replacement training split (noisy labels, condensed set)."""
        return Dataset(
            name=f"{self.name}+{tag}",
            x_train=x,
            y_train=y,
            x_test=self.x_test,
            y_test=self.y_test,
            class_names=self.class_names,
            source=self.source,
            skipped=self.skipped,
        )


def skipped_warnings(name: str, skipped: tuple[str, ...]) -> list[str]:
    """The line a user hears about the entries of their class folders that were skipped
    (none: no line): a dataset's (:meth:`Dataset.warnings`) and adapt's new data's."""
    if not skipped:
        return []
    more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    return [f"{name}: {len(skipped)} entries of the class folders were skipped: "
            f"{'; '.join(skipped[:5])}{more}. Each class folder holds its images directly "
            f"(one level, no sub-folders), as {', '.join(sorted(IMAGE_SUFFIXES))}"]


def validate_arrays(x: np.ndarray, y: np.ndarray, num_classes: int, split: str, name: str,
                    where: str | None = None) -> None:
    """Refuse malformed arrays with a message that names the problem and the fix (``where``
    names the arrays' owner in it; default: the dataset's split)."""
    where = where or f"dataset {name!r} ({split} split)"
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8:
        raise DatasetError(f"{where}: images must be a uint8 array (pixels 0..255), got "
                           f"{getattr(x, 'dtype', type(x).__name__)}; convert floats in [0, 1] "
                           "with (x * 255).round().astype(np.uint8)")
    if x.ndim != 4:
        raise DatasetError(
            f"{where}: images must have rank 4 (N, H, W, C), got rank {x.ndim} "
            f"with shape {x.shape}; add a channel axis for grayscale images"
        )
    if not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(
            f"{where}: labels must be integers, got dtype {y.dtype}; "
            "store class indices 0..K-1, not one-hot or float labels"
        )
    if y.ndim != 1:
        raise DatasetError(f"{where}: labels must be a 1-D array, got shape {y.shape}")
    if len(x) != len(y):
        raise DatasetError(
            f"{where}: {len(x)} images but {len(y)} labels; x and y must have the same length"
        )
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DatasetError(
            f"{where}: labels must lie in [0, {num_classes}), found {y.min()}..{y.max()}; "
            "remap them to class indices 0..K-1 with K the number of classes"
        )
