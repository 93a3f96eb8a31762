"""Decoded image folders kept on disk: a ``folder:`` dataset of thousands of photos took
minutes to decode, and every stage of a run (prune, train, quantize, export, ...) loaded it
again. A large one is saved decoded in the cache folder (:func:`tinysift.paths.cache_dir`)
and read back in a moment, until a file under the folder, the size asked for or the reader
changes. A copy that cannot be read or written costs only the time."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tinysift.data.dataset import Dataset

#: a folder dataset of at least this many images (both splits) is kept decoded
MIN_IMAGES = 500
#: the hex digits of a copy's key in its file name (``<slug>-<name hash>-<key>.npz``)
_KEY_DIGITS = 20


def load(name: str, canonical: tuple[str, str], signature: tuple | None,
         read: Callable[[], Dataset]) -> Dataset:
    """The dataset ``name`` (a ``folder:`` name as it is loaded) from its decoded copy, or
    ``read()`` and, when large, kept. ``canonical``: its name as a run records it (absolute
    path, size suffix as printed), so that every way of writing one folder and size shares
    one copy, and that name as a file-name part; ``signature``: the path, device, inode,
    mtime, ctime and size of every entry the reader looks at (None: some could not be
    listed; nothing is cached)."""
    if signature is None:
        return read()
    try:
        file = _copy_file(*canonical, signature)
        ds = _read_copy(file, name) if file.is_file() else None
    except (OSError, ValueError):  # a name no file can take: read, as without a cache
        return read()
    if ds is not None:
        return ds
    ds = read()
    if len(ds.y_train) + len(ds.y_test) >= MIN_IMAGES:
        _write_copy(file, ds)
    return ds


def _copy_file(canonical: str, slug: str, signature: tuple) -> Path:
    """``<slug>-<hash of the name>-<key>.npz``: the name's hash sets apart two folders whose
    slugs agree (``a/b`` and ``a_b``); the key changes with any file, the size or the
    reader."""
    from tinysift.paths import cache_dir

    # (a name of bytes that are not UTF-8 holds surrogates, which a plain encode() refuses)
    owner = hashlib.sha256(canonical.encode(errors="surrogatepass")).hexdigest()[:8]
    key = hashlib.sha256(json.dumps([canonical, signature, _reader_code()]).encode())
    return cache_dir() / "datasets" / f"{slug}-{owner}-{key.hexdigest()[:_KEY_DIGITS]}.npz"


def _reader_code() -> str:
    """A hash of what decodes, checks and saves a folder: this package's reading code, this
    module and Pillow's version (another decoder, other pixels). A copy made by other code
    is read again."""
    if not _READER:
        import sys

        import PIL

        from tinysift.data import dataset, sources

        h = hashlib.sha256(PIL.__version__.encode())
        for module in (sources, dataset, sys.modules[__name__]):
            h.update(Path(module.__file__).read_bytes())
        _READER.append(h.hexdigest())
    return _READER[0]


_READER: list[str] = []


def _read_copy(file: Path, name: str) -> Dataset | None:
    try:
        with np.load(file, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
        return Dataset(name, a["x_train"], a["y_train"], a["x_test"], a["y_test"],
                       tuple(a["class_names"].tolist()), source=str(a["source"]),
                       skipped=tuple(a["skipped"].tolist()))
    except Exception:  # noqa: BLE001 - cut short, another layout, unreadable: read the folder
        return None


def _write_copy(file: Path, ds: Dataset) -> None:
    """``ds`` saved to ``file`` (written beside it under a name of its own, then moved: a
    reader never sees half a file, two writers never share one), and the folder's older
    copies for the same name removed (one copy per folder and size), with parts an hour old
    (a writer killed outright). Whatever else stops the write (a full disk, Ctrl-C) leaves
    no part behind."""
    import tempfile
    import time

    part = None
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        handle, part = tempfile.mkstemp(dir=file.parent, prefix=f"{file.name}.",
                                        suffix=".part")
        with os.fdopen(handle, "wb") as out:
            np.savez(out, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test,
                     y_test=ds.y_test, class_names=np.array(ds.class_names, dtype=str),
                     source=np.array(ds.source), skipped=np.array(ds.skipped, dtype=str))
        os.replace(part, file)
        owner = file.name[:-len(f"-{'0' * _KEY_DIGITS}.npz")]
        for old in file.parent.iterdir():
            key = old.name[len(owner) + 1:-len(".npz")]
            if (old != file and old.name.startswith(f"{owner}-") and old.suffix == ".npz"
                    and len(key) == _KEY_DIGITS
                    and all(c in "0123456789abcdef" for c in key)):
                old.unlink(missing_ok=True)
            elif old.suffix == ".part" and time.time() - old.stat().st_mtime > 3600:
                old.unlink(missing_ok=True)
    except OSError:  # a full or read-only disk: the folder is read again next time
        pass
    finally:
        if part is not None:
            with contextlib.suppress(OSError):
                os.unlink(part)
