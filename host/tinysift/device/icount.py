"""Instructions on the emulated Cortex-M4: the engine and a bench program
(tools/bench/kernels_bench.c) built by hand with arm-none-eabi-gcc (the qemu-m4 env's flags,
the QEMU mps2 runtime) and run under ``qemu-system-arm -icount shift=0``, where the counter
gives executed instructions (deterministic run to run; QEMU does not model cycles).

Resolution: SysTick does not tick once per instruction. It runs at the 25 MHz core clock
(40 ns a tick) and ``shift=0`` advances QEMU's clock 1 ns per instruction, so one tick is 40
instructions; the runtime multiplies ticks by 40 (boards/runtime/cortex-m/ts_cm_systick.c).
A count read around one call (``BENCH_MODEL invoke_instr``, ``engine check --board``) thus
moves in steps of 40 instructions; the kernel and layer figures are averages over ``reps``
calls (``tools/bench/kernels_bench.c``), so theirs is 40 / reps (15 reps: under 3).

Used by ``tinysift engine check --board`` (one ``ts_invoke`` of a model: instructions and
stack), tools/bench_kernels.py (every kernel case) and tools/bench_mlperf.py.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tinysift.errors import DeviceError
from tinysift.paths import project_root

ROOT = project_root()
ENGINE = ROOT / "firmware" / "lib" / "tsengine" / "src"
ENGINE_SRCS = ["ts_executor.c", "ts_kernels.c", "ts_kernels_dsp.c", "ts_kernels_elementwise.c",
               "ts_softmax.c"]
RUNTIME = ROOT / "boards" / "runtime"
QEMU_RT = ROOT / "boards" / "platform-qemu" / "runtime"
CORTEXM_RT = RUNTIME / "cortex-m"  # reset, faults, stack, libc glue, the SysTick counter
LDSCRIPT = ROOT / "boards" / "platform-qemu" / "ldscripts" / "qemu_mps2.ld"
BENCH_SRC = ROOT / "tools" / "bench" / "kernels_bench.c"

CPU = ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"]
CFLAGS = ["-std=c99", "-O2", "-g", "-ffunction-sections", "-fdata-sections", "-fno-common",
          "-Wall", "-Wextra", "-Werror"]
DEFINES = ["-DTS_TARGET_QEMU", "-DTS_SYSTICK_HZ=25000000u", "-DTS_SYSTICK_NS_NUM=40u",
           "-DTS_SYSTICK_NS_DEN=1u"]
LDFLAGS = ["--specs=nano.specs", "-nostartfiles", "-Wl,--gc-sections",
           "-Wl,--no-warn-rwx-segments", f"-L{CORTEXM_RT}", f"-T{LDSCRIPT}"]
QEMU = ["qemu-system-arm", "-machine", "mps2-an386", "-nographic", "-monitor", "none",
        "-serial", "stdio", "-icount", "shift=0", "-semihosting-config",
        "enable=on,target=native", "-kernel"]

LINE_RE = re.compile(r"^(BENCH\w*) (.*)$", re.M)


def _kv(text: str) -> dict:
    out = {}
    for item in text.split():
        key, _, value = item.partition("=")
        out[key] = int(value) if re.fullmatch(r"-?\d+", value) else value
    return out


def run_tool(cmd: list[str], timeout: float = 600) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise DeviceError(f"command failed ({r.returncode}): {' '.join(cmd)}\n"
                          f"{r.stdout[-3000:]}{r.stderr[-3000:]}")
    return r.stdout


def build(out: Path, name: str, main: Path, dsp: int, export: Path | None = None,
          extra_defines: list[str] = ()) -> Path:
    """Compile and link one firmware ELF; returns its path."""
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    inc = [f"-I{ENGINE}", f"-I{RUNTIME / 'include'}", f"-I{CORTEXM_RT}", f"-I{QEMU_RT}"]
    defs = [*DEFINES, f"-DTS_USE_DSP={dsp}", *extra_defines]
    srcs = [main, *(ENGINE / s for s in ENGINE_SRCS), *sorted(QEMU_RT.glob("*.c")),
            *sorted((RUNTIME / "src").glob("*.c")), *sorted(CORTEXM_RT.glob("*.c"))]
    if export is not None:
        inc.append(f"-I{export}")
        defs.append("-DTS_HAVE_EXPORT")
        srcs += [export / "ts_export_model.c", export / "ts_export_data.c"]
    objs = []
    for i, src in enumerate(srcs):
        obj = d / f"{i:02d}_{src.stem}.o"
        flags = CFLAGS if src.parent in (ENGINE, main.parent) else [
            f for f in CFLAGS if f != "-Werror"]
        run_tool(["arm-none-eabi-gcc", *CPU, *flags, *defs, *inc, "-c", str(src), "-o", str(obj)])
        objs.append(str(obj))
    elf = d / f"{name}.elf"
    run_tool(["arm-none-eabi-gcc", *CPU, *LDFLAGS, *objs, "-lm", "-o", str(elf)])
    return elf


def size_of(elf: Path) -> dict:
    """arm-none-eabi-size (Berkeley): text, data, bss."""
    line = run_tool(["arm-none-eabi-size", "-B", "-d", str(elf)]).strip().splitlines()[-1].split()
    text, data, bss = (int(v) for v in line[:3])
    return {"text": text, "data": data, "bss": bss}


def run_qemu(elf: Path, timeout: float = 900) -> str:
    """Run ``elf`` under QEMU to its semihosting exit; its serial output.

    QEMU is the host's own child (no ``timeout`` wrapper between them): the timeout, Ctrl-C
    or SIGTERM (an exception here) kill it, and the parent-death signal kills it when the
    host dies outright. Through ``timeout --foreground`` a killed host left QEMU running
    (the wrapper was killed, not its child), to its own end or, hung, for ever."""
    from tinysift.device.qemu import die_with_parent

    try:
        r = subprocess.run([*QEMU, str(elf)], capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, preexec_fn=die_with_parent())
    except subprocess.TimeoutExpired as exc:
        raise DeviceError(f"the bench firmware {elf.name} did not finish within {timeout:g} s "
                          "under QEMU (stopped)") from exc
    if r.returncode != 0 or "BENCH_DONE" not in r.stdout:
        raise DeviceError(f"the bench firmware failed (exit {r.returncode}):\n"
                         f"{r.stdout[-3000:]}{r.stderr[-3000:]}")
    return r.stdout


def parse(text: str) -> dict:
    res = {"info": {}, "cases": [], "layers": [], "model": None}
    for kind, rest in LINE_RE.findall(text):
        kv = _kv(rest)
        if kind == "BENCH_INFO":
            res["info"] = kv
        elif kind == "BENCH":
            kv["ref_instr_per_mac"] = round(kv["ref_instr"] / kv["macs"], 3)
            kv["dsp_instr_per_mac"] = round(kv["dsp_instr"] / kv["macs"], 3)
            kv["speedup"] = round(kv["ref_instr"] / kv["dsp_instr"], 2)
            res["cases"].append(kv)
        elif kind == "BENCH_LAYER":
            if kv["macs"]:
                kv["dsp_instr_per_mac"] = round(kv["dsp_instr"] / kv["macs"], 3)
            res["layers"].append(kv)
        elif kind == "BENCH_MODEL":
            res["model"] = kv
        elif kind == "BENCH_ERROR":
            raise DeviceError(f"bench error: {rest}")
    return res


def invoke_instructions(export_dir: Path, work: Path, dsp: bool = True) -> dict:
    """One ``ts_invoke`` of the exported model (its first test input) on the emulated
    Cortex-M4: ``{"instructions", "macs", "stack", "arena", "scratch", "dsp"}`` (arena: the
    planned tensors; scratch: the DSP kernels', after them); ``work`` holds the build."""
    elf = build(Path(work), "invoke", BENCH_SRC, int(dsp), Path(export_dir),
                extra_defines=["-DTS_BENCH_MODEL_ONLY"])
    model = parse(run_qemu(elf))["model"]
    if model is None:
        raise DeviceError("the bench firmware printed no BENCH_MODEL line")
    return {"instructions": int(model["invoke_instr"]), "macs": int(model["macs"]),
            "stack": int(model["stack"]), "arena": int(model["arena"]),
            "scratch": int(model.get("scratch", 0)), "dsp": bool(dsp)}
