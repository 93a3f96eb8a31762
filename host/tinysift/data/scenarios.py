"""On-device adaptation scenarios: what the host trains the base model on, what the device
learns later, and the test sets that tell forgetting from learning.

* ``new-classes``: the base model learns some classes of a dataset (Fashion-MNIST 0-7); the
  device learns the others (8, 9) from samples streamed to it, keeping the old ones with a
  replay set.
* ``shift``: the base model learns a source dataset (MNIST); the device adapts to a shifted
  target with the same classes (the scikit-learn 8x8 digits, upsampled to 28x28), keeping the
  source with a replay set.
* ``user``: the base model learns a dataset; the device learns the user's own data
  (``npz:PATH`` or ``folder:PATH``) whose labels must be classes of the base dataset and
  whose images must have the same shape.

A :class:`Scenario` holds every split as arrays; :meth:`Scenario.to_npz` writes it as one
``npz:`` dataset (the base and new training samples together, the old and new test samples
together) plus index arrays, so the pipeline's stages run on it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinysift.errors import DatasetError

KINDS = ("new-classes", "shift", "user")


@dataclass
class Scenario:
    """Every split of one adaptation scenario (uint8 NHWC images, int64 labels).

    Attributes
    ----------
    kind : ``new-classes``, ``shift`` or ``user``
    x_old, y_old : what the base model is trained on (and the replay set is chosen from)
    x_new, y_new : the pool of new samples the device learns from
    x_test_old, y_test_old : test samples of the old task (old classes / source domain)
    x_test_new, y_test_new : test samples of the new task
    num_classes : classes of the model (the head has this many outputs from the start)
    old_classes, new_classes : which labels each task has
    class_names : one per class
    description : one line for reports
    """

    kind: str
    x_old: np.ndarray
    y_old: np.ndarray
    x_new: np.ndarray
    y_new: np.ndarray
    x_test_old: np.ndarray
    y_test_old: np.ndarray
    x_test_new: np.ndarray
    y_test_new: np.ndarray
    num_classes: int
    old_classes: tuple[int, ...]
    new_classes: tuple[int, ...]
    class_names: tuple[str, ...]
    description: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        shapes = {a.shape[1:] for a in (self.x_old, self.x_new, self.x_test_old,
                                        self.x_test_new)}
        if len(shapes) != 1:
            raise DatasetError(f"scenario {self.kind}: image shapes differ across splits "
                               f"({sorted(shapes)}); every image must match the model's input")
        for name, y in (("new", self.y_new), ("test_new", self.y_test_new)):
            bad = sorted(set(np.unique(y).tolist()) - set(range(self.num_classes)))
            if bad:
                raise DatasetError(
                    f"scenario {self.kind}: {name} labels {bad} are not classes of the model "
                    f"(0..{self.num_classes - 1}); relabel the new data into the model's "
                    "classes or train a base model with more classes")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_old.shape[1:])

    def content_hash(self) -> str:
        """sha256 over every split and the class names (hex, first 16 bytes): what a cache of
        the written scenario is keyed on, so that data changed in place is written again."""
        import hashlib

        h = hashlib.sha256()
        for arr in (self.x_old, self.y_old, self.x_new, self.y_new, self.x_test_old,
                    self.y_test_old, self.x_test_new, self.y_test_new):
            h.update(f"{arr.dtype}{arr.shape}".encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update("\0".join(self.class_names).encode())
        return h.hexdigest()[:32]

    def to_npz(self, path) -> dict:
        """Write the scenario as one ``npz:`` dataset; returns the index arrays (into the
        npz's training and test splits) of each part."""
        from tinysift.runs import atomic_write_npz

        n_old, n_test_old = len(self.y_old), len(self.y_test_old)
        parts = {
            "old": np.arange(n_old), "new": n_old + np.arange(len(self.y_new)),
            "test_old": np.arange(n_test_old),
            "test_new": n_test_old + np.arange(len(self.y_test_new)),
        }
        atomic_write_npz(path, x=np.concatenate([self.x_old, self.x_new]),
                         y=np.concatenate([self.y_old, self.y_new]),
                         x_test=np.concatenate([self.x_test_old, self.x_test_new]),
                         y_test=np.concatenate([self.y_test_old, self.y_test_new]),
                         class_names=np.array(self.class_names),
                         **{f"part_{k}": v for k, v in parts.items()})
        return parts


def _take_per_class(y: np.ndarray, classes, per_class: int | None,
                    rng: np.random.Generator) -> np.ndarray:
    """Indices of up to ``per_class`` samples of each class in ``classes`` (all with None)."""
    out = []
    for c in classes:
        idx = np.flatnonzero(y == c)
        if per_class is not None and per_class < len(idx):
            idx = np.sort(rng.choice(idx, size=per_class, replace=False))
        out.append(idx)
    return np.sort(np.concatenate(out)) if out else np.zeros(0, np.int64)


def _samples_each(y: np.ndarray, asked: int | None, each: str = "each") -> str:
    """How many samples of each class the device learns from, as a description says it:
    "100 samples each", or where the data holds fewer than asked, the counts themselves
    ("137, 146 samples (all the data holds; 100000 each asked)"): the report said "from
    100000 samples each" of a scenario that held 283 in all."""
    counts = np.unique(y, return_counts=True)[1]
    if asked is not None and (counts == asked).all():
        return f"{asked} samples {each}"
    listed = ", ".join(map(str, counts[:10])) + (", ..." if len(counts) > 10 else "")
    return (f"{listed} samples (all the data holds; {asked} {each} asked)" if asked else
            f"{listed} samples")


def new_classes(dataset: str = "fashion-mnist", old_classes=tuple(range(8)),
                new_per_class: int = 100, seed: int = 0) -> Scenario:
    """The base model learns ``old_classes``; the device learns the rest of the dataset's
    classes from ``new_per_class`` samples each (drawn from the training split, seeded)."""
    from tinysift.data import load_dataset

    ds = load_dataset(dataset)
    old = tuple(sorted({int(c) for c in old_classes}))  # a class named twice is one class
    if not old or min(old) < 0 or max(old) >= ds.num_classes:
        bad = [c for c in old if not 0 <= c < ds.num_classes]
        shown = ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if len(bad) > 5
                                                else "")
        raise DatasetError(f"old classes must be in 0..{ds.num_classes - 1}"
                           + (f"; {shown} are not" if bad else ", got none"))
    new = tuple(c for c in range(ds.num_classes) if c not in old)
    if not new:
        raise DatasetError("every class is old: leave at least one class for the device")
    rng = np.random.default_rng(seed)
    i_old = _take_per_class(ds.y_train, old, None, rng)
    i_new = _take_per_class(ds.y_train, new, new_per_class, rng)
    t_old = np.flatnonzero(np.isin(ds.y_test, old))
    t_new = np.flatnonzero(np.isin(ds.y_test, new))
    return Scenario("new-classes", ds.x_train[i_old], ds.y_train[i_old], ds.x_train[i_new],
                    ds.y_train[i_new], ds.x_test[t_old], ds.y_test[t_old], ds.x_test[t_new],
                    ds.y_test[t_new], ds.num_classes, old, new, ds.class_names,
                    f"{dataset}: base model on classes {list(old)}, device learns "
                    f"{list(new)} from {_samples_each(ds.y_train[i_new], new_per_class)}",
                    meta={"dataset": dataset, "dataset_hash": ds.content_hash})


def upsample_digits(x8: np.ndarray, size: int = 28) -> np.ndarray:
    """The ``digits`` dataset's 8x8 images (uint8 0..255, as ``load_dataset("digits")`` gives
    them) as MNIST-like images: bilinear resize of the 8x8 image into a 20x20 box centred in
    ``size`` x ``size`` (MNIST's layout), grey levels kept."""
    from PIL import Image

    if x8.dtype != np.uint8:
        raise TypeError(f"upsample_digits takes uint8 images on 0..255, not {x8.dtype}")
    out = np.zeros((len(x8), size, size, 1), np.uint8)
    box = round(size * 20 / 28)
    off = (size - box) // 2
    for i, img in enumerate(x8[..., 0]):
        im = Image.fromarray(img)
        out[i, off:off + box, off:off + box, 0] = np.asarray(
            im.resize((box, box), Image.BILINEAR))
    return out


def shift(source: str = "mnist", new_per_class: int = 30, seed: int = 0) -> Scenario:
    """The base model learns ``source`` (MNIST); the device adapts to the scikit-learn digits
    upsampled to 28x28 (:func:`upsample_digits`), ``new_per_class`` samples per class from
    their training split; tested on both domains."""
    from tinysift.data import load_dataset

    src = load_dataset(source)
    tgt = load_dataset("digits")
    if src.input_shape[:2] != (28, 28) or src.num_classes != 10:
        raise DatasetError(f"the shift scenario adapts a 28x28, 10-class source to the "
                           f"upsampled digits; {source} is {src.input_shape}, "
                           f"{src.num_classes} classes: pass --dataset mnist (or "
                           "fashion-mnist)")
    rng = np.random.default_rng(seed)
    x_tgt, x_tgt_test = upsample_digits(tgt.x_train), upsample_digits(tgt.x_test)
    i_new = _take_per_class(tgt.y_train, range(10), new_per_class, rng)
    return Scenario("shift", src.x_train, src.y_train, x_tgt[i_new], tgt.y_train[i_new],
                    src.x_test, src.y_test, x_tgt_test, tgt.y_test, 10, tuple(range(10)),
                    tuple(range(10)), src.class_names,
                    f"{source} -> scikit-learn digits upsampled to 28x28: the device adapts "
                    f"from {_samples_each(tgt.y_train[i_new], new_per_class, 'per class')}",
                    meta={"dataset": source, "dataset_hash": src.content_hash,
                          "target_hash": tgt.content_hash})


def user(base: str, new: str, new_per_class: int | None = None, seed: int = 0) -> Scenario:
    """The base model learns ``base``; the device learns the user's ``new`` data (an
    ``npz:PATH`` or ``folder:PATH`` dataset; its test split is the new task's test set)."""
    from tinysift.data import load_dataset

    b = load_dataset(base)
    x_new, y_new, x_test, y_test, skipped = _user_data(new, b.class_names)
    shape = tuple(int(d) for d in x_new.shape[1:])
    if shape != b.input_shape:
        from tinysift.data.registry import user_data

        wanted = "x".join(map(str, b.input_shape))
        user = user_data(new)
        how = (f", or let tinysift resize it as it reads it: --new {user[0]}:{user[1]}@{wanted}"
               if user is not None else "")
        raise DatasetError(f"{new}: images are {'x'.join(map(str, shape))} but the "
                           f"base model's input is {wanted}; resize the new data to the "
                           f"model's input shape{how}")
    rng = np.random.default_rng(seed)
    i_new = _take_per_class(y_new, np.unique(y_new), new_per_class, rng)
    return Scenario("user", b.x_train, b.y_train, x_new[i_new], y_new[i_new],
                    b.x_test, b.y_test, x_test, y_test, b.num_classes,
                    tuple(range(b.num_classes)), tuple(int(c) for c in np.unique(y_new)),
                    b.class_names, f"{base} base model, the device learns {new} from "
                    f"{_samples_each(y_new[i_new], new_per_class, 'per class')}",
                    meta={"dataset": base, "dataset_hash": b.content_hash,
                          "skipped": skipped})


def _user_data(spec: str, base_classes: tuple[str, ...]):
    """The user's new data: (x, y, x_test, y_test, skipped folder entries), labelled with
    the base model's classes.

    An ``npz:`` file (read and checked as :func:`tinysift.data.sources.load_npz` reads one)
    or a ``folder:`` of class sub-folders, each labelled by the class it names
    (:func:`_folder_classes`; or ``train/`` and ``test/``, a folder per class in each), may
    hold any subset of the model's classes, one included (the common case: one new class);
    without a test split (``x_test``, ``test/``) a stratified 20% is held out. Another
    dataset name is its splits as they are."""
    from tinysift.data import load_dataset, sources
    from tinysift.data.registry import expand_user, user_parts

    spec = expand_user(spec)  # npz:~/x.npz was "file not found" (load_dataset expands it)
    skipped: tuple[str, ...] = ()
    user = user_parts(spec)  # the kind, the path and its size suffix @HxW[xC]
    size = user[2] if user is not None else None
    if user is not None and user[0] == "npz":
        # one class of the model's is enough: a one-hot column of no sample is no refusal
        arrays = sources.read_npz_arrays(user[1], size, every_class=False)
        x, y = arrays["x"], arrays["y"]
        if "x_test" in arrays:
            return x, y, arrays["x_test"], arrays["y_test"], skipped
    elif user is not None:
        # read, not loaded as a dataset: a dataset needs 2 classes, so a folder of the one
        # new class was refused (an npz of one label was taken)
        split = sources.read_split_folder(user[1], min_classes=1, size=size)
        if split is not None:  # train/ and test/, a folder per class in each
            x, y, x_te, y_te, names, skipped = split
            classes = _folder_classes(spec, names, base_classes)
            return x, classes[y], x_te, classes[y_te], skipped
        x, y, names, skipped = sources.read_folder(user[1], min_classes=1, size=size)
        y = _folder_classes(spec, names, base_classes)[y]
    else:
        d = load_dataset(spec)
        return d.x_train, d.y_train, d.x_test, d.y_test, skipped
    rng = np.random.default_rng(0)
    test = np.zeros(len(y), bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        # a class of one sample stays in training, as in a dataset's split (it went to the
        # test set whole, and the device was given nothing of it to learn)
        if len(idx) >= 2:
            test[rng.choice(idx, size=max(1, len(idx) // 5), replace=False)] = True
    if not test.any():
        supply = (", or supply x_test/y_test in the .npz" if spec.startswith("npz:")
                  else ", or supply the test split: train/ and test/ folders, a folder per "
                       "class in each")
        raise DatasetError(f"{spec}: every class has a single sample, so none can be held out "
                           "to test the new task (20% per class); add samples (at least 2 "
                           f"per class, about 5){supply}")
    return x[~test], y[~test], x[test], y[test], skipped


def _folder_classes(spec: str, names: tuple[str, ...], base_classes: tuple[str, ...]
                    ) -> np.ndarray:
    """The base model's class of each sub-folder of the user's ``folder:`` data (in the
    folder dataset's class order): a folder named like one of the base dataset's classes is
    that class; a folder named by an integer is that class index. Any other name, or two
    folders of one class, is refused."""
    from tinysift.data.sources import is_integer_name

    out, unknown = [], []
    for name in names:
        if name in base_classes:
            out.append(base_classes.index(name))
        elif is_integer_name(name):
            out.append(int(name))
        else:
            unknown.append(name)
    if unknown:
        shown = ", ".join(base_classes[:12]) + (", ..." if len(base_classes) > 12 else "")
        raise DatasetError(
            f"{spec}: class folders {unknown} name no class of the base model: name each "
            f"folder by its class index (0..{len(base_classes) - 1}) or class name ({shown})")
    if len(set(out)) != len(out):
        same = [n for n, c in zip(names, out, strict=True) if out.count(c) > 1]
        raise DatasetError(f"{spec}: class folders {same} name the same class of the base "
                           "model; merge them into one folder")
    return np.array(out, np.int64)
