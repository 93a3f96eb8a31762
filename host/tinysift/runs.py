"""Run folders: every artifact of one pipeline run plus ``manifest.json``.

One writer at a time: a stage holds the folder's lock (``.tinysift.lock``, an flock released
when its process ends, however it ends) while it runs, and a second process writing the same
folder is refused with a message naming the holder.

The manifest records the command, seed, package versions, machine, and for every stage its
parameters, input hashes, output hashes, timing, and the versions (the code's source hash and
git commit among them) and machine it ran with. A stage whose key (parameters + input
hashes) and outputs are unchanged is skipped, so a killed run resumes where it stopped. The
quantize and export stages count the code they run among their inputs
(:func:`module_source_hash`): after that code changes they run again.
All writes are atomic: write to a temporary file in the same folder, then rename.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import hashlib
import importlib.util
import inspect
import io
import itertools
import json
import os
import platform
import shlex
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
LOCK_FILE = ".tinysift.lock"
TRACKED_PACKAGES = ("tinysift", "tensorflow", "tf-keras", "tensorflow-model-optimization",
                    "tensorflow-probability", "tflite-micro", "ai-edge-litert", "numpy",
                    "scipy", "scikit-learn", "platformio", "pyserial")


def package_versions() -> dict[str, str]:
    """Python's and the tracked packages' versions, and the code that ran
    (:func:`code_identity`): an editable install reports 0.1.0 whatever its source says."""
    out = {"python": platform.python_version()}
    for pkg in TRACKED_PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    out.update(code_identity())
    return out


@functools.lru_cache(maxsize=1)
def code_identity() -> dict[str, str]:
    """``tinysift_source``: a hash of the package's Python sources as this process imported
    them (any edit changes it, committed or not); ``git``: the commit of the checkout they
    sit in, when they sit in one (empty otherwise)."""
    import subprocess

    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    try:
        git = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        git = ""
    return {"tinysift_source": h.hexdigest()[:16], "git": git}


def module_source_hash(modules: tuple[str, ...]) -> str:
    """A hash of the Python sources of ``modules`` (dotted names; a package stands for every
    ``.py`` file under it), read from disk now: the code a stage's outputs come from, in its
    key, so that a folder's stage is not reused after that code changed (an upgrade of
    tinysift, an edit in a checkout) while an edit elsewhere in the package keeps it.

    Raises
    ------
    ModuleNotFoundError : a name is not an importable module (a bug in the caller's list)
    """
    import importlib.util

    h = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(f"no module named {name!r}")
        if spec.submodule_search_locations:  # a package: all of it
            root = Path(spec.origin).parent
            files = [(f"{name}/{p.relative_to(root).as_posix()}", p)
                     for p in sorted(root.rglob("*.py"))]
        else:
            files = [(name, Path(spec.origin))]
        for label, path in files:
            h.update(label.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def machine_info() -> dict[str, Any]:
    return {"platform": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
            "cpu_model": _cpu_model(), "cpu_family": _cpu_family(), "cpus": os.cpu_count(),
            "hostname": platform.node()}


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of Linux's /proc/cpuinfo (empty elsewhere)."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor's block ends
            continue
        name, sep, value = line.partition(":")
        if sep:
            fields.setdefault(name.strip(), value.strip())
    return fields


def _cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; empty elsewhere): TF's CPU kernels differ
    between CPU generations, and so can a training's last digits."""
    return _cpuinfo().get("model name", "")


def _cpu_family() -> str:
    """The CPU's generation as the processor states it (Linux; empty elsewhere): a virtual
    machine's model name can be as vague as "AMD EPYC" for two generations whose trainings
    differ in their last digits (x86: vendor, family, model, stepping; Arm: implementer,
    part, revision)."""
    info = _cpuinfo()
    if "cpu family" in info:
        return " ".join(f"{label} {info[name]}".strip() for name, label in (
            ("vendor_id", ""), ("cpu family", "family"), ("model", "model"),
            ("stepping", "stepping")) if name in info)
    if "CPU implementer" in info:
        return " ".join(f"{label} {info[name]}" for name, label in (
            ("CPU implementer", "implementer"), ("CPU part", "part"),
            ("CPU revision", "revision")) if name in info)
    return ""


def file_hash(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:32]


def json_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:32]


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; artifacts are ordinary files
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable)
                             + "\n")


def atomic_write_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


#: What the stages write in a run folder: found without a manifest, they are someone's
#: own (a model) and a stage would overwrite them. Not selection.npz / condensed.npz: a
#: folder of `tinysift run`'s selections (OUT/select/vq-600/) trains where its set is; only
#: the stage that writes one protects it (``Run(out, writes=...)``)
RUN_ARTIFACTS = frozenset({"model.keras", "model.tflite", "trainset.npz", "guided.json",
                           "export"})

#: How to start afresh from a manifest that cannot be used: not by moving the manifest
#: alone (a folder of models without one is refused as someone else's)
AFRESH = ("restore it (e.g. from a backup), or start afresh in another folder (--out/--run; "
          "or move every file of this one away)")

#: The manifest's entries and the types tinysift writes there (None: any)
_STAGE_FIELDS = {"params": dict, "inputs": dict, "outputs": dict, "results": dict,
                 "status": str}
_DATASET_FIELDS = {"name": str, "hash": str, "label_noise": (int, float),
                   "noise_seed": int, "train": int, "test": int}


def _damaged_entries(manifest: dict) -> list[str]:
    """The entries of a manifest that are not what tinysift writes there (a hand edit):
    every stage would stop on them with "a bug in tinysift"."""
    def wrong(value, kind) -> bool:
        return value is not None and (not isinstance(value, kind) or isinstance(value, bool)
                                      and kind is not bool)

    def null(table: dict, key: str) -> bool:
        # an explicit null where tinysift writes a table or list, or nothing (a missing entry
        # is fine; a null one was an AttributeError in record_command, is_fresh, the checks)
        return key in table and table[key] is None

    bad = [key for key, kind in (("dataset", dict), ("commands", list))
           if wrong(manifest.get(key), kind)]
    bad += ["commands"] if null(manifest, "commands") else []
    for name, entry in manifest.get("stages", {}).items():
        if not isinstance(entry, dict):
            bad.append(f"stage {name!r}")
            continue
        bad += [f"stage {name!r} {key}" for key, kind in _STAGE_FIELDS.items()
                if wrong(entry.get(key), kind) or null(entry, key)]
        results = entry.get("results")
        if isinstance(results, dict):
            bad += [f"stage {name!r} results.{key}" for key in ("dataset", "set_file")
                    if wrong(results.get(key), dict)]
            if isinstance(results.get("dataset"), dict):
                bad += [f"stage {name!r} results.dataset.{key}"
                        for key, kind in _DATASET_FIELDS.items()
                        if wrong(results["dataset"].get(key), kind)]
            if isinstance(results.get("set_file"), dict):
                bad += [f"stage {name!r} results.set_file.{key}" for key in ("path", "hash")
                        if wrong(results["set_file"].get(key), str)]
    if isinstance(manifest.get("dataset"), dict):
        bad += [f"dataset.{key}" for key, kind in _DATASET_FIELDS.items()
                if wrong(manifest["dataset"].get(key), kind)]
        bad += [f"dataset.{key} (missing)" for key in ("name", "hash")
                if key not in manifest["dataset"]]
    if isinstance(manifest.get("commands"), list):
        bad += [f"commands[{i}]" for i, c in enumerate(manifest["commands"])
                if not isinstance(c, dict) or wrong(c.get("argv"), list)]
    return bad


class Run:
    """A run folder with its manifest.

    Parameters
    ----------
    path : str or Path
        The folder (created if missing). Convention: ``runs/<name>``.
    writes : iterable of str
        Files the calling stage writes besides :data:`RUN_ARTIFACTS`: found in a folder
        without a manifest they are someone's own too (``prune`` and ``selection.npz``).
    """

    def __init__(self, path: str | Path, writes: Iterable[str] = ()):
        self.path = Path(path)
        out_folder(self.path, "--out/--run", create=True)
        mpath = self.path / MANIFEST
        if mpath.exists():
            from tinysift.errors import TinysiftError

            try:
                text = mpath.read_bytes()
            except OSError as exc:  # a folder of that name, no permission
                raise TinysiftError(f"{mpath} cannot be read ({exc.strerror or exc}); "
                                    f"{AFRESH}") from None
            try:
                self.manifest = json.loads(text)
            except ValueError as exc:  # not JSON or not UTF-8 (a torn copy, another file)
                raise TinysiftError(
                    f"{mpath} is not valid JSON ({exc}); it was not written by tinysift's "
                    f"atomic writer. {AFRESH[0].upper()}{AFRESH[1:]}"
                ) from exc
            if not (isinstance(self.manifest, dict) and self.manifest.get("tinysift_run")
                    and isinstance(self.manifest.get("stages", {}), dict)):
                # someone else's manifest.json: never take the folder over and rewrite it
                raise TinysiftError(
                    f"{self.path} is not a tinysift run folder ({MANIFEST} has no "
                    "'tinysift_run' entry, or its stages are not a table): choose another "
                    "folder (--out)")
            bad = _damaged_entries(self.manifest)
            if bad:
                # a hand edit: every stage would stop on it with "a bug in tinysift"
                raise TinysiftError(
                    f"{mpath} is damaged ({', '.join(bad)}: not what tinysift writes there); "
                    f"{AFRESH}")
        else:
            # someone's files without a manifest (a folder of their own, a typo'd --out):
            # a stage would overwrite them
            protected = RUN_ARTIFACTS | set(writes)
            ours = sorted(p.name for p in self.path.iterdir() if p.name in protected)
            if ours:
                from tinysift.errors import TinysiftError

                raise TinysiftError(
                    f"{self.path} holds {', '.join(ours)} but no {MANIFEST}: not a tinysift "
                    "run folder, and a stage would overwrite them; choose another folder "
                    "(--out/--run), or move them away")
            self.manifest = {
                "tinysift_run": 1,
                "created": _now(),
                "versions": package_versions(),
                "machine": machine_info(),
                "commands": [],
                "stages": {},
            }

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def save(self) -> None:
        atomic_write_json(self.path / MANIFEST, self.manifest)

    def record_command(self, argv: list[str] | None = None) -> None:
        self.manifest.setdefault("commands", []).append(
            {"argv": list(argv if argv is not None else sys.argv), "at": _now()})
        self.save()

    def set(self, key: str, value: Any) -> None:
        self.manifest[key] = value
        self.save()

    def refuse_other_dataset(self, name: str, content_hash: str, label_noise: float = 0.0,
                             noise_seed: int | None = None,
                             same_source_may_change: bool = False) -> None:
        """Refuse a stage of another dataset (or other label noise) in this folder.

        A prune or condense of another dataset into a folder would replace its selection.npz
        or condensed.npz and strand its model and export: the old set could not be rebuilt.
        So a folder holds one dataset; the fix is another folder. Label noise is drawn with
        the stage's seed, so under noise another ``noise_seed`` is other data too.

        Parameters
        ----------
        name : the dataset's resolved name (its source: registry name, ``npz:PATH``, ...)
        content_hash : the dataset's content hash, of the labels as the stage uses them
        label_noise : the stage's label noise
        noise_seed : the seed the label noise is drawn with (unused without noise)
        same_source_may_change : the stage takes the folder's own source whose content
            changed in place (train: a user's file fixed, an adapt run's scenario rewritten;
            its stage key holds the new hash, so it trains again): only another source,
            other noise or another noise draw is refused. Prune and condense refuse any
            other content: their set would no longer match the model trained on it.

        Raises
        ------
        StageError : the folder records a different dataset or label noise
        """
        from tinysift.errors import StageError

        now = self.manifest.get("dataset")
        noise = float(label_noise)
        if not now or same_dataset(now, {"hash": content_hash, "label_noise": noise}):
            return
        same_source = now.get("name") == name and float(now.get("label_noise") or 0.0) == noise
        other_draw = bool(noise) and now.get("noise_seed") not in (None, noise_seed)
        if same_source and other_draw:
            raise StageError(
                f"{self.path} holds a run on {name} with label noise {noise:g} drawn with "
                f"seed {now['noise_seed']}; seed {noise_seed} draws other noisy labels, "
                f"which would replace its set and strand its model: use --seed "
                f"{now['noise_seed']} here, or another folder (--out)")
        if same_source and same_source_may_change:
            return  # its own source changed in place: the stage's key holds the new hash
        raise StageError(
            f"{self.path} holds a run on {now.get('name')} (hash {now.get('hash')}, label "
            f"noise {float(now.get('label_noise') or 0.0):g}); writing {name} (hash "
            f"{content_hash}, label noise {noise:g}) into it would replace its set and "
            "strand its model: use another folder (--out), or move this one away")

    def stage_info(self, stage: str) -> dict | None:
        return self.manifest.get("stages", {}).get(stage)

    def is_fresh(self, stage: str, key: str) -> bool:
        """True when ``stage`` already ran with this key and its outputs are intact."""
        info = self.stage_info(stage)
        if not info or info.get("key") != key or info.get("status") != "done":
            return False
        for rel, digest in info.get("outputs", {}).items():
            p = self.path / rel
            if not p.exists() or file_hash(p) != digest:
                return False
        return True

    @contextlib.contextmanager
    def stage(self, stage: str, params: dict, inputs: dict[str, str] | None = None,
              seed: int | None = None) -> Iterator[dict]:
        """Record a stage. Yields a dict; put output paths (relative) under ``"outputs"``
        and any results under ``"results"``. The entry is marked done only on success."""
        # versions and machine per stage: a folder's stages may run months and machines apart
        entry: dict[str, Any] = {"params": params, "inputs": inputs or {}, "seed": seed,
                                 "key": stage_key(params, inputs), "status": "running",
                                 "started": _now(), "versions": package_versions(),
                                 "machine": machine_info()}
        self.manifest.setdefault("stages", {})[stage] = entry
        self.save()
        record: dict[str, Any] = {"outputs": [], "results": {}}
        start = time.perf_counter()
        try:
            yield record
        except BaseException as exc:
            entry["status"] = f"failed: {type(exc).__name__}"
            self.save()
            raise
        entry["seconds"] = round(time.perf_counter() - start, 3)
        entry["outputs"] = {str(rel): file_hash(self.path / rel) for rel in record["outputs"]}
        entry["results"] = record["results"]
        entry["status"] = "done"
        entry["finished"] = _now()
        self.save()


def same_dataset(recorded: dict, other: dict) -> bool:
    """Whether two dataset records (a manifest's ``dataset``, a stage's) are the same data:
    the content hash (of the labels as trained, so under label noise it tells the noise draw
    apart too) and the label noise (a record without it has none)."""
    return (recorded.get("hash") == other.get("hash")
            and float(recorded.get("label_noise") or 0.0)
            == float(other.get("label_noise") or 0.0))


def out_folder(folder: Path, flag: str, *, create: bool,
               fix: str = "choose another folder") -> Path:
    """Check that ``folder`` can be an output folder and, with ``create``, make it.

    One rule for every command that writes into a folder: a file standing at the folder or
    above it is refused before any work (it was an "unexpected FileExistsError /
    NotADirectoryError" once the work was done), with one TinysiftError naming the file,
    the option the folder came from and the fix.

    Parameters
    ----------
    folder : Path
        The output folder.
    flag : str
        The option that named it, cited in the message (``--out/--run``, ``--out-dir``).
    create : bool
        Make the folder and its parents now (a run folder, which the stage locks); without
        it, only check (a command that creates the folder once its work succeeded, so a
        refused command leaves none behind).
    fix : str
        What the message tells the user to do about a file standing there.

    Returns
    -------
    Path : ``folder``
    """
    from tinysift.errors import TinysiftError

    for p in (folder, *folder.parents):
        try:
            exists = p.exists()
        except OSError as exc:  # a name over 255 bytes: was an unexpected OSError
            raise TinysiftError(f"{folder} cannot be a folder ({flag}: {exc.strerror or exc}): "
                                "choose another name") from None
        if exists:
            if not p.is_dir():
                raise TinysiftError(f"{p} is a file, not a folder ({flag}): {fix}")
            break
    if create:
        for attempt in range(5):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                break
            except FileNotFoundError:
                # a parent made here went away before its child was: another tinysift
                # removed the empty runs/ it had made (run_lock's tidy); make it again
                if attempt == 4:
                    raise TinysiftError(
                        f"cannot create the folder {folder} ({flag}): a folder above it "
                        "kept vanishing while it was made; try again, or choose another "
                        "folder") from None
            except OSError as exc:  # no permission, a read-only file system
                raise TinysiftError(f"cannot create the folder {folder} ({flag}: "
                                    f"{exc.strerror or exc}): choose another folder") from None
    return folder


def stage_key(params: dict, inputs: dict[str, str] | None) -> str:
    return json_hash({"params": params, "inputs": inputs or {}})


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


# ---- one writer per run folder ----------------------------------------------------------

_held: dict[str, list] = {}  # resolved folder -> [fd, depth]: the locks this process holds
_held_guard = threading.Lock()


def _drop_held_in_child() -> None:
    """After a fork, in the child: close this process's lock descriptors. An flock belongs to
    the open file, which a forked child shares: a child still running after its parent was
    killed (TFLM's arena search; a QEMU start between fork and exec) would keep the run
    locked. Closing the child's copy leaves the parent's lock held."""
    global _held_guard
    for fd, _depth in list(_held.values()):
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()
    _held_guard = threading.Lock()  # another thread may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_held_in_child)


def _holder(what: str) -> dict:
    return {"pid": os.getpid(), "host": platform.node(), "what": what,
            "command": " ".join(shlex.quote(a) for a in sys.argv), "since": _now()}


def _acquire(key: str, path: Path, what: str, busy: Callable[[dict], str],
             unwritable: Callable[[str], str]) -> None:
    """One more hold of the lock ``key`` by this process; the first locks the file ``path``
    (:func:`_locked_file`) and writes who holds it there."""
    with _held_guard:
        if key in _held:
            _held[key][1] += 1
            return
        fd = _locked_file(path, busy, unwritable)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(_holder(what)).encode())
        _held[key] = [fd, 1]


def _release(key: str, tidy: Callable[[int], None]) -> None:
    """One hold of the lock ``key`` less; the last runs ``tidy(fd)`` while the file is still
    locked (an OSError: the file or folder moved or went away, nothing to tidy) and closes
    the file, which releases the flock."""
    with _held_guard:
        _held[key][1] -= 1
        if _held[key][1]:
            return
        fd = _held.pop(key)[0]
        try:
            tidy(fd)
        except OSError:
            pass
        finally:
            os.close(fd)


@contextlib.contextmanager
def run_lock(folder: str | Path, what: str = "") -> Iterator[None]:
    """Hold ``folder``'s lock while the block runs: another process that tries gets a
    RunBusy naming this one (pid, command, since when). Re-entrant within a process; the
    kernel drops it when the process ends, so a killed run leaves no stale lock."""
    if importlib.util.find_spec("fcntl") is None:  # not POSIX: no locking
        yield
        return
    folder = Path(folder)
    out_folder(folder, "--out/--run", create=False)  # checked first: exists() may raise
    created = not folder.exists()
    # the folders this call makes above it too (runs/ of the default runs/<name>), on the
    # path with its `..` collapsed: `gone/../mine/run` would count an existing mine/ as new
    above = list(itertools.takewhile(lambda p: not p.exists(),
                                     Path(os.path.abspath(folder)).parents))
    out_folder(folder, "--out/--run", create=True)
    lock_made = not (folder / LOCK_FILE).exists()
    key = str(folder.resolve())
    _acquire(key, folder / LOCK_FILE, what,
             lambda holder: (
                 f"{folder} is in use by another tinysift process ({held_by(holder)}); one "
                 "writer per run folder: wait for it to finish, stop it, or use another "
                 "--out/--run"),
             lambda reason: (
                 f"cannot write in the run folder {folder} ({reason}): a run folder records "
                 "every stage, even a cached one; copy it somewhere writable, or make it "
                 "writable"))

    def tidy(fd: int) -> None:
        os.ftruncate(fd, 0)
        # (a process that opened the lock file before it goes locks a deleted file:
        # _locked_file sees that and opens the path again)
        names = [p.name for p in folder.iterdir()] if created or lock_made else []
        if created and names == [LOCK_FILE]:
            # a folder this call made and nothing wrote into (a refused command): leave no
            # empty run folder behind; still locked meanwhile
            os.unlink(folder / LOCK_FILE)
            folder.rmdir()
            for parent in above:  # an empty runs/ stayed behind
                try:
                    if any(parent.iterdir()):
                        break
                    parent.rmdir()
                except OSError:  # gone or filled meanwhile (another process): leave it
                    break
        elif lock_made and names and MANIFEST not in names:
            # an existing folder a refused command never made a run folder (the user's own
            # files): leave it as it was, without our lock file
            os.unlink(folder / LOCK_FILE)

    try:
        yield
    finally:
        _release(key, tidy)


def _locked_file(path: Path, busy: Callable[[dict], str],
                 unwritable: Callable[[str], str]) -> int:
    """The lock file ``path``, open and flock'ed: the path's own file (a holder that deletes
    the file as it leaves would otherwise let this process lock the deleted one while the
    next locks a new file: two writers). Held by another process: a RunBusy of
    ``busy(holder)``; not writable: a TinysiftError of ``unwritable(reason)``."""
    import fcntl

    from tinysift.errors import RunBusy, TinysiftError

    for _ in range(20):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a read-only folder or file system: an "unexpected" error
            raise TinysiftError(unwritable(str(exc.strerror or exc))) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(os.read(fd, 4096) or b"{}")
            except ValueError:
                holder = {}
            os.close(fd)
            raise RunBusy(busy(holder if isinstance(holder, dict) else {})) from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # locked a file its holder deleted on leaving: open the path again
    raise TinysiftError(f"cannot lock {path}: the file keeps being replaced; is another "
                        "program deleting it?")


def held_by(holder: dict) -> str:
    """Who holds a lock, from its file: pid, host, command, what and since when."""
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}: "
            f"`{holder.get('command', '?')}`, {holder.get('what', '?')} since "
            f"{holder.get('since', '?')}")


@contextlib.contextmanager
def file_lock(path: str | Path, what: str, busy: Callable[[dict], str],
              unwritable: Callable[[str], str]) -> Iterator[None]:
    """Hold an flock on the file ``path``, made for it and removed on release, while the
    block runs: another process that tries gets a RunBusy of ``busy(holder)`` (see
    :func:`held_by`). Re-entrant within a process; the kernel drops it when the process
    ends (a killed holder leaves the file, which the next holder takes and removes)."""
    if importlib.util.find_spec("fcntl") is None:  # not POSIX: no locking
        yield
        return
    path = Path(path)
    key = str(path.resolve())
    _acquire(key, path, what, busy, unwritable)
    try:
        yield
    finally:
        # still locked while it goes: a waiting process then opens the path anew
        _release(key, lambda fd: os.unlink(path))


def locks_run(param: str, before: Callable[[dict], None] | None = None) -> Callable:
    """Decorator: the function holds the lock of the run folder passed as ``param``.
    ``before`` (given the call's arguments by name) checks them before the lock creates the
    folder: a refusal there leaves no folder behind."""
    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            arguments = signature.bind(*args, **kwargs).arguments
            folder = arguments[param]
            if before is not None:
                before(arguments)
            with run_lock(folder, fn.__name__):
                return fn(*args, **kwargs)
        return wrapper
    return decorate
