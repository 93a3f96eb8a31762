"""Compile the firmware engine natively (host gcc) with one export and run its golden check.

The program is firmware/test/test_golden/test_main.c, the one the bit-exactness tests run
(tests/test_engine_golden.py): ``ts_invoke`` on every exported input, compared with TFLM's
outputs; on a mismatch it names the first differing layer (chained and isolated), and it
checks every layer with the scalar and the DSP kernels. This module parses its summary.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

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
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=timeout)
    text = r.stdout + r.stderr
    m = _GOLDEN.search(text)
    if m is None:
        raise DeviceError(f"the engine program printed no GOLDEN summary (exit {r.returncode})"
                          f":\n{text[-2000:]}")
    return GoldenCheck(inputs=int(m[2]), equal=int(m[3]), layers=int(m[1]), dsp=m[4] == "1",
                       layer_lines=_LAYER.findall(text), failures=_FAIL.findall(text),
                       log=text)


def _cc(cmd: list[str], timeout: float) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise DeviceError(f"compiling the engine with host gcc failed:\n{r.stderr[-3000:]}")
