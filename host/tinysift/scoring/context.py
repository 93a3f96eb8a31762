"""What scorers see: the training split, a seed, and cached shared work.

Several methods need the same expensive things: an embedding of every sample, or the
*training dynamics* of a briefly trained proxy CNN (per-epoch probabilities, margins,
correctness). The context computes each once, caches it in memory and, with a ``cache_dir``,
on disk (keyed by the data hash, the parameters and a hash of the recipe behind each item:
a changed proxy recipe is a new key, never a stale hit), and records how long it took so
benchmarks can charge each method the work it used.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinysift.errors import DatasetError
from tinysift.scoring.dynamics import TrainingDynamics, proxy_recipe, record_dynamics
from tinysift.scoring.embeddings import compute_embedding

#: Shared work a method may declare in its ``needs``: a bench on a cluster computes each once
#: per seed as a task of its own and hands it to the tasks of every method that needs it.
SHARED_WORK = ("dynamics",)


@dataclass
class ScoringContext:
    """The training data a method scores, plus cached shared computations.

    Parameters
    ----------
    x : uint8 images (N, H, W, C)
    y : int labels (N,)
    num_classes : int
    seed : int
    cache_dir : folder for on-disk caches (a run folder's ``cache/``); None keeps them in memory
    proxy_epochs : epochs of the brief proxy training behind the training dynamics
    embed_dim : dimension of reduced embeddings (<= 64 for the flow)
    progress : show progress bars
    """

    x: np.ndarray
    y: np.ndarray
    num_classes: int
    seed: int = 0
    cache_dir: Path | None = None
    proxy_epochs: int = 4
    embed_dim: int = 32
    progress: bool = True
    #: optional user-provided embedding (N, D), used by ``embedding("given")``
    features: np.ndarray | None = None
    #: each shared item's original compute time, read from the cache with the item: what
    #: a method using it is charged, wherever it was computed
    timings: dict[str, float] = field(default_factory=dict)
    #: seconds this process actually spent getting each shared item (computing it, or
    #: reading it from the disk cache): what a method's wall time holds of it
    spent: dict[str, float] = field(default_factory=dict)
    #: shared items read since the last ``reset_usage()`` (cost accounting per method)
    used: set[str] = field(default_factory=set)
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        from tinysift.data.dataset import validate_arrays

        # Labels outside 0..num_classes-1 were silently never selected (or a numpy error),
        # float images in [0, 1] silently scaled by 1/255 again: refused here, named.
        self.x, self.y = np.asarray(self.x), np.asarray(self.y)
        validate_arrays(self.x, self.y, self.num_classes, "training", "",
                        where="ScoringContext")
        present = np.unique(self.y)
        if len(present) < 2:
            raise DatasetError(
                f"the training set has only {len(present)} class; scoring and class-balanced "
                "selection need at least 2 classes"
            )
        if self.cache_dir is not None:
            self.cache_dir = Path(self.cache_dir)
        if self.features is not None:
            f = np.asarray(self.features)
            if f.ndim != 2 or len(f) != len(self.y):
                raise DatasetError(f"features must have shape (N={len(self.y)}, D), got "
                                   f"{f.shape}")
            bad = np.flatnonzero(~np.isfinite(f).all(axis=1))
            if len(bad):
                raise DatasetError(
                    f"features contain NaN or infinite values in {len(bad)} rows (first: "
                    f"{bad[:5].tolist()}); fix or drop those samples before scoring")

    @property
    def num_samples(self) -> int:
        return len(self.y)

    @property
    def data_hash(self) -> str:
        """Short hash of the images (their shape and dtype too: the same bytes as 16x16
        images or as 8x32 ones embed differently) and of the labels' values (their integer
        width does not matter)."""
        if "hash" not in self._cache:
            h = hashlib.sha256(_array_hash(self.x).encode())
            h.update(np.ascontiguousarray(self.y, dtype=np.int64).tobytes())
            self._cache["hash"] = h.hexdigest()[:16]
        return self._cache["hash"]

    def class_indices(self, c: int) -> np.ndarray:
        return np.flatnonzero(self.y == c)

    # -- cached shared work -------------------------------------------------------------
    def embedding(self, kind: str = "pixels", dim: int | None = None) -> np.ndarray:
        """Reduced embedding (N, dim) float32: ``pixels``, ``random-conv``, ``cnn`` or
        ``given``."""
        dim = dim or self.embed_dim
        key = (f"embed-{kind}-{dim}-s{self.seed}-pe{self.proxy_epochs if kind == 'cnn' else 0}"
               f"-c{_embedding_code()}")
        # What the key must also tell apart: the proxy behind ``cnn``, the user's features
        # behind ``given`` (the data hash covers only the images and labels).
        if kind == "cnn":
            # The proxy's dynamics first, as an item of their own: a method reading this
            # embedding uses them (and is charged their compute time) whether the embedding
            # is computed here or read from the cache, and the embedding's own time is then
            # its reduction alone ("-own": files of the earlier key may hold the proxy's
            # time too, charged twice beside the dynamics).
            self.dynamics()
            key += f"-r{self._proxy_recipe_hash()}-own"
        elif kind == "given" and self.features is not None:
            key += f"-f{_array_hash(self.features)}"
        return self._cached(key, lambda: {"z": compute_embedding(kind, self, dim)})["z"]

    def dynamics(self) -> TrainingDynamics:
        """Training dynamics of the proxy CNN (trained once, shared by all methods)."""
        arrays = self._cached(self._shared_key("dynamics"), lambda: record_dynamics(
            self.x, self.y, self.num_classes, self.proxy_epochs, self.seed,
            progress=self.progress).to_arrays())
        return TrainingDynamics(**{k: (float(v) if k == "seconds" else v)
                                   for k, v in arrays.items()})

    def reset_usage(self) -> None:
        self.used = set()

    def charged(self, call, already: frozenset | set = frozenset()) -> tuple:
        """Run ``call()`` (a method's fit, selection or condensing on this context); return
        its result, the seconds it is charged and the shared items it read. The charge is its
        cost as if it ran alone: its wall time less the time spent during it getting shared
        items (computed, or read from the disk cache), plus the full original compute time of
        every shared item it read but ``already`` (charged to an earlier call of the same
        method), whether this call, an earlier one or an earlier run computed that item."""
        self.reset_usage()
        before = set(self.spent)
        start = time.perf_counter()
        out = call()
        wall = time.perf_counter() - start
        spent_here = sum(v for k, v in self.spent.items() if k not in before)
        return (out, max(0.0, wall - spent_here) + self.shared_seconds(self.used - set(already)),
                set(self.used))

    def shared_seconds(self, keys: set[str] | None = None) -> float:
        """Compute time of the shared items in ``keys`` (default: those used)."""
        return float(sum(self.timings.get(k, 0.0) for k in (self.used if keys is None
                                                            else keys)))

    # -- shared work computed in another process (a bench's task on a cluster) ------------
    def shared_work(self, needs) -> dict[str, dict]:
        """The shared items behind ``needs`` (computed, or read from the caches), each with
        its original compute time as ``_seconds``: what another context can ``adopt``."""
        out = {}
        for need in sorted(set(needs) & set(SHARED_WORK)):
            getattr(self, need)()
            key = self._shared_key(need)
            out[key] = {**self._cache[key], "_seconds": np.float64(self.timings[key])}
        return out

    def has_shared(self, needs) -> bool:
        """Whether every shared item behind ``needs`` is in memory or in the disk cache."""
        keys = [self._shared_key(n) for n in set(needs) & set(SHARED_WORK)]
        return all(k in self._cache or (self._path(k) is not None and self._path(k).exists())
                   for k in keys)

    def adopt(self, items: dict[str, dict]) -> None:
        """Take shared items computed elsewhere (:meth:`shared_work`): cached here (and on
        disk with a ``cache_dir``), and charged to their users at their original compute
        time, exactly as if computed here."""
        for key, arrays in items.items():
            arrays = dict(arrays)  # the caller's copy (a worker's shared object) stays whole
            seconds = float(arrays.pop("_seconds"))
            path = self._path(key)
            if path is not None and not path.exists():
                from tinysift.runs import atomic_write_npz

                atomic_write_npz(path, _seconds=np.float64(seconds), **arrays)
            self._cache[key] = arrays
            self.timings[key] = seconds

    def _shared_key(self, need: str) -> str:
        if need != "dynamics":
            raise KeyError(f"no shared work called {need!r}; known: {SHARED_WORK}")
        return f"dynamics-e{self.proxy_epochs}-s{self.seed}-r{self._proxy_recipe_hash()}"

    def _proxy_recipe_hash(self) -> str:
        """Hash of what the proxy's dynamics depend on besides the data (its TrainConfig,
        ModelConfig, head width, measurement spacing and recording version): a cache written
        under an older recipe is then a different key, not a stale hit."""
        recipe = proxy_recipe(self.num_samples, self.proxy_epochs, self.seed, self.num_classes)
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]

    def _path(self, key: str) -> Path | None:
        return (self.cache_dir / f"{key}-{self.data_hash}.npz") if self.cache_dir else None

    def _cached(self, key: str, compute) -> dict[str, np.ndarray]:
        self.used.add(key)
        if key in self._cache:
            return self._cache[key]
        path = self._path(key)
        start = time.perf_counter()
        arrays = _read_cache(path) if path is not None and path.exists() else None
        if arrays is not None:
            cached_seconds = float(arrays.get("_seconds", 0.0))
        else:
            arrays = compute()
            cached_seconds = time.perf_counter() - start
            if path is not None:
                from tinysift.runs import atomic_write_npz

                atomic_write_npz(path, _seconds=np.float64(cached_seconds), **arrays)
        arrays.pop("_seconds", None)
        # Cost accounting charges the original compute time even when read from disk; the
        # time spent here (a read takes well under the compute) is what a caller's wall
        # time holds of the item.
        self.timings[key] = cached_seconds
        self.spent[key] = time.perf_counter() - start
        self._cache[key] = arrays
        return arrays


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    """A cache file's arrays, or None when it cannot be read (torn by a crash, truncated,
    not an .npz): then the item is computed again and the file rewritten, as if absent."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, KeyError, TypeError, zipfile.BadZipFile):
        return None


@functools.cache
def _embedding_code() -> str:
    """The embeddings' source hash, in their cache key: an edit of how an embedding is
    computed (tinysift.scoring.embeddings) recomputes it instead of reading an earlier one
    from a run's cache/ or the benches' shared cache."""
    from tinysift.runs import module_source_hash

    return module_source_hash(("tinysift.scoring.embeddings",))[:10]


def _array_hash(a: np.ndarray) -> str:
    """Short hash of an array's dtype, shape and bytes."""
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()[:16]
