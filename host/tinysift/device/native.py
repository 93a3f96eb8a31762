"""Compile the firmware engine natively (host gcc) with one export and run its golden check.

The program is firmware/test/test_golden/test_main.c, the one the bit-exactness tests run
(tests/test_engine_golden.py): ``ts_invoke`` on every exported input, compared with TFLM's
outputs; on a mismatch it names the first differing layer (chained and isolated), and it
checks every layer with the scalar and the DSP kernels. This module parses its summary.
``run_engine`` runs the engine on given inputs (a shared library called through ctypes).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinysift.errors import DeviceError
from tinysift.paths import project_root

ENGINE_SOURCES = ("ts_executor.c", "ts_kernels.c", "ts_kernels_dsp.c",
                  "ts_kernels_elementwise.c", "ts_softmax.c")
EXPORT_SOURCES = ("ts_export_model.c", "ts_export_data.c", "ts_export_golden.c")
_GOLDEN = re.compile(r"^GOLDEN hash=\S+ layers=(\d+) inputs=(\d+) equal=(\d+) dsp=(\d)", re.M)
_LAYER = re.compile(r"^GOLDEN_LAYER .*$", re.M)
_FAIL = re.compile(r"^TS_TEST:[^\n]*:FAIL:[^\n]*$", re.M)


@dataclass
class GoldenCheck:
    inputs: int
    equal: int
    layers: int
    dsp: bool
    layer_lines: list[str] = field(default_factory=list)  # GOLDEN_LAYER: first differing layer
    failures: list[str] = field(default_factory=list)     # every failed check of the program
    log: str = ""

    @property
    def ok(self) -> bool:
        return self.inputs > 0 and self.equal == self.inputs and not self.failures


def compiler() -> str:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise DeviceError("no host C compiler (gcc or cc) on PATH; install gcc to run the "
                          "engine natively")
    return cc


def golden_check(export_dir: Path, work_dir: Path, dsp: bool = False,
                 timeout: float = 600) -> GoldenCheck:
    """Build the golden program with ``export_dir`` compiled in (in ``work_dir``), run it
    and parse what it prints."""
    root = project_root()
    engine = root / "firmware" / "lib" / "tsengine" / "src"
    tests = root / "firmware" / "test"
    runtime = root / "boards" / "runtime"
    native = root / "boards" / "platform-native" / "runtime" / "ts_platform_native.c"
    work_dir.mkdir(parents=True, exist_ok=True)
    exe = work_dir / f"golden-{'dsp' if dsp else 'scalar'}"
    cc = compiler()
    flags = ["-std=c99", "-O2", f"-DTS_USE_DSP={int(dsp)}", "-DTS_HAVE_EXPORT",
             f"-I{engine}", f"-I{runtime / 'include'}", f"-I{tests}", f"-I{export_dir}"]
    objs = []
    for name in EXPORT_SOURCES:  # the data files are large: compile them without optimizing
        obj = work_dir / name.replace(".c", ".o")
        _cc([cc, "-std=c99", "-O0" if name == "ts_export_data.c" else "-O1", f"-I{engine}",
             f"-I{export_dir}", "-c", str(export_dir / name), "-o", str(obj)], timeout)
        objs.append(str(obj))
    _cc([cc, *flags, str(tests / "test_golden" / "test_main.c"),
         *[str(engine / s) for s in ENGINE_SOURCES], str(runtime / "src" / "ts_format.c"),
         str(native), *objs, "-o", str(exe), "-lm"], timeout)
    r = _run([str(exe)], timeout, "the engine's golden program")
    text = r.stdout + r.stderr
    m = _GOLDEN.search(text)
    if m is None:
        raise DeviceError(f"the engine program printed no GOLDEN summary (exit {r.returncode})"
                          f":\n{text[-2000:]}")
    return GoldenCheck(inputs=int(m[2]), equal=int(m[3]), layers=int(m[1]), dsp=m[4] == "1",
                       layer_lines=_LAYER.findall(text), failures=_FAIL.findall(text),
                       log=text)


def _run(cmd: list[str], timeout: float, what: str) -> subprocess.CompletedProcess:
    """``cmd``'s result, or one DeviceError when it runs past ``timeout`` (it is stopped;
    uncaught, the CLI reported the timeout as a bug in tinysift)."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DeviceError(f"{what} did not finish within {timeout:g} s (stopped): "
                          f"{' '.join(cmd[:2])} ...") from None


def _cc(cmd: list[str], timeout: float) -> None:
    r = _run(cmd, timeout, "compiling the engine with host gcc")
    if r.returncode != 0:
        raise DeviceError(f"compiling the engine with host gcc failed:\n{r.stderr[-3000:]}")


def run_engine(export_dir: Path, work_dir: Path, x: np.ndarray, out_bytes: int,
               dsp: bool = False, float_input: bool = False, float_output: bool = False,
               timeout: float = 600) -> np.ndarray:
    """``ts_invoke`` on every sample of ``x`` (int8, or float32 with ``float_input``: the
    engine's ts_quantize_input first), the engine and ``export_dir``'s model compiled into a
    shared library with host gcc and called through ctypes (``export_dir`` needs only
    ts_export.h and ts_export_model.c). Returns the outputs (N, out_bytes):
    int8, or float32 with ``float_output`` (ts_dequantize_output)."""
    import ctypes

    root = project_root()
    engine = root / "firmware" / "lib" / "tsengine" / "src"
    work_dir.mkdir(parents=True, exist_ok=True)
    lib = work_dir / f"libtsengine-{'dsp' if dsp else 'scalar'}.so"
    _cc([compiler(), "-shared", "-fPIC", "-std=c99", "-O2", f"-DTS_USE_DSP={int(dsp)}",
         f"-I{engine}", f"-I{export_dir}", "-o", str(lib),
         str(export_dir / "ts_export_model.c"), *[str(engine / s) for s in ENGINE_SOURCES],
         "-lm"], timeout)
    so = ctypes.CDLL(str(lib))
    model = ctypes.c_void_p(ctypes.addressof(ctypes.c_char.in_dll(so, "ts_export_model")))
    i8, f32 = ctypes.POINTER(ctypes.c_int8), ctypes.POINTER(ctypes.c_float)
    so.ts_arena_size.argtypes, so.ts_arena_size.restype = [ctypes.c_void_p], ctypes.c_size_t
    so.ts_invoke.argtypes = [ctypes.c_void_p, i8, i8, ctypes.c_void_p, ctypes.c_size_t]
    so.ts_quantize_input.argtypes = [ctypes.c_void_p, f32, i8]
    so.ts_dequantize_output.argtypes = [ctypes.c_void_p, i8, f32]
    arena_bytes = int(so.ts_arena_size(model))
    if arena_bytes == 0:
        raise DeviceError(f"the engine refuses the layer table in {export_dir} "
                          "(ts_model_check failed)")
    arena = np.zeros(arena_bytes + 16, np.uint8)
    arena_ptr = ctypes.c_void_p((arena.ctypes.data + 7) // 8 * 8)  # 8-byte aligned
    results = []
    for s in range(len(x)):
        sample = np.ascontiguousarray(x[s].reshape(-1))
        if float_input:
            q = np.zeros(sample.size, np.int8)
            _status(so.ts_quantize_input(model, sample.astype(np.float32).ctypes.data_as(f32),
                                         q.ctypes.data_as(i8)), "ts_quantize_input", s)
            sample = q
        out = np.zeros(out_bytes, np.int8)
        _status(so.ts_invoke(model, sample.astype(np.int8).ctypes.data_as(i8),
                             out.ctypes.data_as(i8), arena_ptr, arena_bytes), "ts_invoke", s)
        if float_output:
            y = np.zeros(out_bytes, np.float32)
            _status(so.ts_dequantize_output(model, out.ctypes.data_as(i8),
                                            y.ctypes.data_as(f32)), "ts_dequantize_output", s)
            out = y
        results.append(out)
    return np.stack(results) if results else np.zeros((0, 0), np.int8)


def _status(code: int, what: str, sample: int) -> None:
    if code != 0:
        raise DeviceError(f"{what} returned status {code} on sample {sample}")
