"""The TensorFlow Lite for Microcontrollers runtime as the oracle.

What runs on a microcontroller is TFLM semantics (its reference kernels), so every int8
accuracy tinysift reports comes from ``tflite_micro.runtime``, not LiteRT/XNNPACK.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np

from tinysift.errors import TinysiftError

# TFLM arena bytes per element of each tensor type (an unknown type counts as 8)
_TYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 8, 15: 4, 16: 2}


def interpreter(model_bytes: bytes, arena_size: int | None = None):
    """TFLM's interpreter of ``model_bytes``; without ``arena_size``, in
    :func:`arena_ceiling`'s arena (tflite_micro's own default, 10x the model's bytes, failed
    to allocate a model of large activations and small weights: 200x200 images, "unexpected
    RuntimeError" in quantize)."""
    from tflite_micro.python.tflite_micro import runtime

    if arena_size is None:
        try:
            arena_size = arena_ceiling(model_bytes)
        except Exception:  # noqa: BLE001 - a model the schema cannot read: TFLM says why
            arena_size = None
    return runtime.Interpreter.from_bytes(bytes(model_bytes), arena_size=arena_size)


def arena_ceiling(model_bytes: bytes) -> int:
    """The largest arena the search tries: twice every non-constant tensor's bytes plus 1
    MiB for TFLM's persistent structures, at least 4 MiB."""
    from tinysift.tflite_schema import tflite_schema

    model = tflite_schema().ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    buffers = model.buffers or []
    activations = 0
    for graph in model.subgraphs or []:
        for t in graph.tensors or []:
            buf = buffers[t.buffer].data if 0 <= t.buffer < len(buffers) else None
            if buf is not None and len(buf):
                continue  # a constant lives in the model, not the arena
            n = int(np.prod([max(int(d), 1) for d in t.shape])) if t.shape is not None else 1
            activations += (n * _TYPE_BYTES.get(t.type, 8) + 15) // 16 * 16
    return max(1 << 22, 2 * activations + (1 << 20)) // 16 * 16


def input_quant(model_bytes: bytes) -> tuple[float, int]:
    """(scale, zero_point) of the model's int8 input (a float input, which has none, was an
    IndexError "index 0 is out of bounds")."""
    details = interpreter(model_bytes).get_input_details(0)
    q = details["quantization_parameters"]
    if not len(q["scales"]):
        raise TinysiftError(f"the model's input is {np.dtype(details['dtype']).name}, not "
                            "quantized: it has no scale and zero point; give it float inputs "
                            "(tinysift.models.training.to_float), or convert it full-integer "
                            "(tinysift.quantize.convert.convert_int8)")
    return float(q["scales"][0]), int(q["zero_points"][0])


def quantize_images(x_uint8: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """uint8 images -> int8 model input, as TFLM's QUANTIZE computes it from the float input.

    Parameters
    ----------
    x_uint8 : images (any shape), uint8
    scale, zero_point : the model input's quantization

    Returns
    -------
    np.ndarray
        int8, same shape: ``round(float32(x / 255) / float32(scale)) + zero_point``,
        saturated to [-128, 127]. The quotient is float32 and rounded half away from zero,
        as TFLM's reference AffineQuantize does (``TfLiteRound(val / (float)scale)``); with
        the usual input scale 1/255 and zero point -128 this is exactly ``x - 128``.

    Anything but uint8 is refused: [0, 1] floats were divided by 255 again (every pixel
    -128) and int8 inputs already quantized went negative, both without an error.
    """
    if np.asarray(x_uint8).dtype != np.uint8:
        raise TinysiftError(f"quantize_images takes uint8 images (pixels 0..255), got "
                            f"{np.asarray(x_uint8).dtype}; int8 inputs already quantized go "
                            "to run_tflm as they are")
    real = x_uint8.astype(np.float32) / np.float32(255.0)
    return round_affine(real / np.float32(scale), zero_point)


def tflite_round(x) -> np.ndarray:
    """TfLiteRound (std::round): half away from zero, exact for any float, as float64.

    np.round rounds half to even (33 of the 256 pixels differ at scale 2/255), and
    ``floor(|x| + 0.5)`` rounds 0.49999999999999994 up (the sum rounds to 1.0); the
    fractional part ``|x| - floor(|x|)`` is exact, so comparing it with 0.5 is std::round.
    """
    x = np.asarray(x, np.float64)
    magnitude = np.abs(x)
    whole = np.floor(magnitude)
    return np.copysign(whole + (magnitude - whole >= 0.5), x)


def round_affine(q: np.ndarray, zero_point: int) -> np.ndarray:
    """``TfLiteRound(q) + zero_point`` saturated to int8, for float32 quotients ``q``."""
    r = tflite_round(np.asarray(q, np.float32)) + zero_point
    return np.clip(r, -128, 127).astype(np.int8)


def run_tflm(model_bytes: bytes, x_int8: np.ndarray, outputs: int = 1,
             arena_size: int | None = None, progress: bool = False) -> list[np.ndarray]:
    """Run the TFLM reference runtime on every input (int8, or float for a model that takes
    float); returns one stacked array per model output (N, ...). ``progress``: a bar over
    the samples (a test split takes tens of seconds)."""
    from tinysift.progress import progress_bar

    interp = interpreter(model_bytes, arena_size)
    details = interp.get_input_details(0)
    shape, dtype = tuple(details["shape"]), details["dtype"]
    _check_inputs(np.asarray(x_int8), np.dtype(dtype), shape)
    results: list[list[np.ndarray]] = [[] for _ in range(outputs)]
    with progress_bar(progress, len(x_int8), "TFLM", "samples") as bar:
        for n, sample in enumerate(x_int8, start=1):
            interp.set_input(sample.reshape(shape).astype(dtype), 0)
            interp.invoke()
            for i in range(outputs):
                results[i].append(np.array(interp.get_output(i)).reshape(-1).copy())
            if n % 100 == 0 or n == len(x_int8):
                bar.update(n)
    return [np.stack(r) if r else np.zeros((0,), np.int8) for r in results]


def _check_inputs(x: np.ndarray, dtype: np.dtype, shape: tuple) -> None:
    """Inputs the model's input type holds as they are (a cast would wrap raw uint8 pixels,
    200 -> -56, into an int8 model and the check would report garbage accuracy; floats for a
    float-input model, whose QUANTIZE expects the training scale, not 0..255), one sample
    of the model's input ``shape`` per row (was numpy's "cannot reshape")."""
    if np.issubdtype(dtype, np.integer) and x.size:
        if not np.issubdtype(x.dtype, np.integer):
            raise TinysiftError(f"the model takes {dtype} inputs, got {x.dtype}; quantize them "
                                "first (tinysift.quantize.tflm.quantize_images)")
        info = np.iinfo(dtype)
        if x.min() < info.min or x.max() > info.max:
            raise TinysiftError(f"the model takes {dtype} inputs, got {x.dtype} values in "
                                f"[{x.min()}, {x.max()}], outside [{info.min}, {info.max}]: "
                                "quantize them first (tinysift.quantize.tflm.quantize_images)")
    if np.issubdtype(dtype, np.floating) and x.size and not np.issubdtype(x.dtype, np.floating):
        # a cast would feed raw 0..255 pixels to a model trained on [0, 1]: garbage outputs
        raise TinysiftError(f"the model takes {dtype} inputs, got {x.dtype}; scale the images "
                            "as the model was trained (tinysift.models.training.to_float)")
    size = int(np.prod(shape))
    if len(x) and x[0].size != size:
        raise TinysiftError(f"inputs of shape {x.shape} do not hold one sample of the model "
                            f"input {tuple(map(int, shape))} ({size} values) per row: images "
                            "of another size or channel count than the model's")


class _ArenaRange:
    """The bisection's state, kept between tries (a crashed try resumes from it)."""

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi

    def search(self, runs_in: Callable[[int], bool]) -> None:
        """Narrow to 16 bytes; ``runs_in(size)``: whether the model runs in that arena."""
        while self.hi - self.lo > 16:
            mid = (self.lo + self.hi) // 2 // 16 * 16
            if runs_in(mid):
                self.hi = mid
            else:
                self.lo = mid


class _ChildCrashed(Exception):
    pass


#: Seconds one try (an allocation and one invoke, milliseconds) may take in the child
ARENA_TRY_TIMEOUT = 300.0


def minimal_arena(model_bytes: bytes, hi: int = 1 << 22) -> int:
    """Smallest TFLM tensor arena (bytes, 16-byte granularity) that allocates and invokes.

    The search runs in a forked child where the platform forks: TFLM crashes (a segfault
    after "Failed to populate a temp TfLiteTensor") at some arenas just too small for a
    model, which killed `tinysift quantize` without a word (4x4 images, a 6,144-byte
    arena). The child reports each try as it ends; a try that killed it by a signal counts
    as too small and a new child goes on from there. Any other error of the child is raised
    here (it must not read as "too small"), and a try that hangs is stopped."""

    def runs(size: int) -> bool:
        try:
            interp = interpreter(model_bytes, size)
            details = interp.get_input_details(0)
            interp.set_input(np.zeros(tuple(details["shape"]), details["dtype"]), 0)
            interp.invoke()
            return True
        except (RuntimeError, ValueError):
            return False

    # imported here, before any fork: a forked child of a process running TensorFlow's
    # threads crashed importing it, and every try read as "too small"
    from tflite_micro.python.tflite_micro import runtime  # noqa: F401

    too_small = TinysiftError(f"the model does not run in TFLM even with a {hi}-byte arena")
    arena = _ArenaRange(16, hi)
    top_checked = False
    while not top_checked or arena.hi - arena.lo > 16:
        child = _ArenaChild.start(runs, arena, None if top_checked else hi)
        # no fork here (or none possible now): the tries run in this process
        verdict = runs if child is None else child.verdict
        with child or contextlib.nullcontext():
            try:
                if not top_checked:
                    if not verdict(hi):
                        raise too_small
                    top_checked = True
                arena.search(verdict)
            except _ChildCrashed:
                pass  # a new child goes on from the range as narrowed
    return arena.hi


class _ArenaChild:
    """A forked child that tries arena sizes and writes a byte per try: ``1`` runs, ``0``
    too small, ``E`` and the error's text for any other error."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid, self.fd, self.status = pid, fd, None

    @classmethod
    def start(cls, runs: Callable[[int], bool], arena: _ArenaRange,
              top: int | None) -> _ArenaChild | None:
        import os

        if not hasattr(os, "fork"):
            return None
        read, write = os.pipe()
        try:
            pid = os.fork()
        except OSError:  # no memory or process slots for a child: the search runs here
            os.close(read)
            os.close(write)
            return None
        if pid == 0:
            code = 0
            try:
                os.close(read)
                cls._no_core_dump()

                def told(size: int) -> bool:
                    ok = runs(size)
                    os.write(write, b"1" if ok else b"0")
                    return ok

                if top is None or told(top):
                    arena.search(told)
            except BaseException as exc:  # noqa: BLE001 - said to the parent, never raised here
                code = 70
                try:
                    os.write(write, b"E" + f"{type(exc).__name__}: {exc}".encode()[:2000])
                except OSError:
                    pass
            finally:
                os._exit(code)
        os.close(write)
        return cls(pid, read)

    @staticmethod
    def _no_core_dump() -> None:
        """A crashed try would dump the core of a process with TensorFlow loaded, and under
        a parent with faulthandler on (pytest, PYTHONFAULTHANDLER) print "Fatal Python error:
        Segmentation fault" and a stack of 50 lines: an expected crash is no error."""
        import faulthandler

        faulthandler.disable()
        try:
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        except (ImportError, ValueError, OSError):
            pass

    def verdict(self, size: int) -> bool:
        """Whether the model ran in ``size`` bytes, as the child says it; raises
        _ChildCrashed after the verdict of a try that killed it (too small)."""
        import os
        import select

        if self.status is not None:
            raise _ChildCrashed
        ready, _, _ = select.select([self.fd], [], [], ARENA_TRY_TIMEOUT)
        if not ready:
            os.kill(self.pid, 9)
            self._reap()
            raise TinysiftError(f"TFLM did not finish a try of a {size}-byte arena within "
                                f"{ARENA_TRY_TIMEOUT:g} s; the model may be too large to check "
                                "here")
        mark = os.read(self.fd, 1)
        if mark in (b"0", b"1"):
            return mark == b"1"
        if mark == b"E":
            text = b""
            while chunk := os.read(self.fd, 4096):
                text += chunk
            self._reap()
            said = text.decode("utf-8", "replace")
            if said.startswith("MemoryError"):  # the machine's limit, as in this process
                raise MemoryError(f"in the TFLM arena search at {size} bytes: {said}")
            raise RuntimeError(f"the TFLM arena search failed at {size} bytes: {said}")
        self._reap()  # the pipe closed without a verdict
        if os.WIFSIGNALED(self.status):  # TFLM crashed at this size: too small
            return False
        raise RuntimeError(f"the TFLM arena search's child exited with status "
                           f"{os.waitstatus_to_exitcode(self.status)} at {size} bytes")

    def _reap(self) -> None:
        import os

        if self.status is None:
            self.status = os.waitpid(self.pid, 0)[1]

    def __enter__(self) -> _ArenaChild:
        return self

    def __exit__(self, *exc) -> None:
        import os

        if self.status is None:
            try:
                os.kill(self.pid, 9)  # done, or left early: nothing more to hear
            except ProcessLookupError:
                pass
            self._reap()
        os.close(self.fd)


def arena_usage(model_bytes: bytes, arena_size: int | None = None) -> dict[str, int]:
    """TFLM's own account of its arena after one invoke (RecordingMicroAllocator): ``total``,
    ``head`` (the non-persistent part: the planned activation tensors and scratch buffers)
    and ``tail`` (persistent: tensor structs, op data), in bytes."""
    import ctypes
    import os
    import re
    import sys
    import tempfile

    interp = interpreter(model_bytes, arena_size)
    details = interp.get_input_details(0)
    interp.set_input(np.zeros(tuple(details["shape"]), details["dtype"]), 0)
    interp.invoke()
    libc = ctypes.CDLL(None)
    with tempfile.TemporaryFile("w+") as tmp:
        sys.stderr.flush()
        saved = os.dup(2)  # TFLM logs to stderr
        os.dup2(tmp.fileno(), 2)
        try:
            interp.print_allocations()
        finally:
            libc.fflush(None)  # the C runtime's buffers, before fd 2 is restored
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read()
    out = {}
    for key in ("total", "head", "tail"):
        m = re.search(rf"Arena allocation {key} (\d+) bytes", text)
        if m:
            out[key] = int(m.group(1))
    return out
