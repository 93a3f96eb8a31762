"""runs/_scratch: runs the tests build once and reuse across files and sessions (the stages'
own caching skips the work on a rerun). The suite runs on several pytest-xdist workers
(``make test``): a run that several test files build is held with a file lock while one
worker builds it, so another waits and then finds it cached instead of colliding with it
(the stages refuse a second writer)."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

SCRATCH = Path(__file__).resolve().parents[1] / "runs" / "_scratch"


@contextlib.contextmanager
def scratch_run(name: str) -> Iterator[Path]:
    """``runs/_scratch/NAME``, held against the other workers for the ``with`` block."""
    SCRATCH.mkdir(parents=True, exist_ok=True)
    with open(SCRATCH / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield SCRATCH / name
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def mlperf_tflite(name: str) -> Path:
    """MLPerf Tiny's model ``name`` as the bench converts it (tinysift.quantize.convert.
    mlperf_tiny_int8), built once into runs/_scratch/mlperf/ and reused while the sources
    that make it (the model definitions, the conversion) are unchanged."""
    import hashlib

    from tinysift.models import mlperf_tiny
    from tinysift.quantize import convert

    key = hashlib.sha256(b"".join(Path(m.__file__).read_bytes()
                                  for m in (mlperf_tiny, convert))).hexdigest()[:12]
    with scratch_run("mlperf") as folder:
        path = folder / f"{name}-{key}.tflite"
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(convert.mlperf_tiny_int8(name))
            tmp.replace(path)
    return path
