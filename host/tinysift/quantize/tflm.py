"""The TensorFlow Lite for Microcontrollers runtime as the oracle.

What runs on a microcontroller is TFLM semantics (its reference kernels), so every int8
accuracy tinysift reports comes from ``tflite_micro.runtime``, not LiteRT/XNNPACK.
"""

from __future__ import annotations

import numpy as np

from tinysift.errors import TinysiftError


def interpreter(model_bytes: bytes, arena_size: int | None = None):
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(bytes(model_bytes), arena_size=arena_size)


def input_quant(model_bytes: bytes) -> tuple[float, int]:
    """(scale, zero_point) of the model's int8 input."""
    details = interpreter(model_bytes).get_input_details(0)
    q = details["quantization_parameters"]
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
    """
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
    _check_inputs(np.asarray(x_int8), np.dtype(dtype))
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


def _check_inputs(x: np.ndarray, dtype: np.dtype) -> None:
    """Inputs the model's input type holds as they are: a cast would wrap raw uint8 pixels
    (200 -> -56) into an int8 model and the check would report garbage accuracy."""
    if not np.issubdtype(dtype, np.integer) or x.size == 0:
        return
    if not np.issubdtype(x.dtype, np.integer):
        raise TinysiftError(f"the model takes {dtype} inputs, got {x.dtype}; quantize them "
                            "first (tinysift.quantize.tflm.quantize_images)")
    info = np.iinfo(dtype)
    if x.min() < info.min or x.max() > info.max:
        raise TinysiftError(f"the model takes {dtype} inputs, got {x.dtype} values in "
                            f"[{x.min()}, {x.max()}], outside [{info.min}, {info.max}]: "
                            "quantize them first (tinysift.quantize.tflm.quantize_images)")


class _ArenaRange:
    """The bisection's state, kept between tries (a crashed try resumes from it)."""

    def __init__(self, lo: int, hi: int) -> None:
        self.lo, self.hi = lo, hi

    def search(self, runs_in) -> None:
        """Narrow to 16 bytes; ``runs_in(size)``: whether the model runs in that arena."""
        while self.hi - self.lo > 16:
            mid = (self.lo + self.hi) // 2 // 16 * 16
            if runs_in(mid):
                self.hi = mid
            else:
                self.lo = mid


class _ChildCrashed(Exception):
    pass


def minimal_arena(model_bytes: bytes, hi: int = 1 << 22) -> int:
    """Smallest TFLM tensor arena (bytes, 16-byte granularity) that allocates and invokes.

    The search runs in a forked child where the platform forks: TFLM crashes (a segfault
    after "Failed to populate a temp TfLiteTensor") at some arenas just too small for a
    model, which killed `tinysift quantize` without a word (4x4 images, a 6,144-byte
    arena). The child reports each try as it ends; a try that crashed it counts as too
    small and a new child goes on from there."""
    import os

    def runs(size: int) -> bool:
        try:
            interp = interpreter(model_bytes, size)
            details = interp.get_input_details(0)
            interp.set_input(np.zeros(tuple(details["shape"]), details["dtype"]), 0)
            interp.invoke()
            return True
        except (RuntimeError, ValueError):
            return False

    too_small = TinysiftError(f"the model does not run in TFLM even with a {hi}-byte arena")
    arena = _ArenaRange(16, hi)
    if not hasattr(os, "fork"):
        if not runs(hi):
            raise too_small
        arena.search(runs)
        return arena.hi
    top_checked = False
    while not top_checked or arena.hi - arena.lo > 16:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: each try's verdict a byte, then out without clean-up
            try:
                os.close(read)

                def told(size: int, fd: int = write) -> bool:
                    ok = runs(size)
                    os.write(fd, b"1" if ok else b"0")
                    return ok

                if top_checked or told(hi):
                    arena.search(told)
            finally:
                os._exit(0)
        os.close(write)
        crashed = False
        with os.fdopen(read, "rb") as verdicts:
            def heard(size: int) -> bool:
                nonlocal crashed
                if crashed:
                    raise _ChildCrashed
                mark = verdicts.read(1)
                crashed = not mark  # the pipe closed before a verdict: this try crashed
                return mark == b"1"

            try:
                if not top_checked:
                    if not heard(hi):
                        raise too_small
                    top_checked = True
                arena.search(heard)
            except _ChildCrashed:
                pass  # a new child goes on from the range as narrowed
            finally:
                os.waitpid(pid, 0)
    return arena.hi


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
