"""tools/bench_kernels.py: its results file records the code version and the machine beside
the toolchain, its table names the flags the JSON records, and a wrong --export is refused
with one line (not a compiler error's traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools_needed import load_tool

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _bench():
    return load_tool("bench_kernels")


def test_results_record_versions_and_machine(tmp_path, monkeypatch):
    bench = _bench()
    committed = json.loads((RESULTS / "kernels_qemu-m4.json").read_text())
    parsed = {"info": {k: committed["run"][k] for k in committed["run"] if k != "qemu_args"},
              "cases": committed["cases"], "layers": [], "model": None}
    elf = {"text": 1, "data": 2, "bss": 3}
    monkeypatch.setattr(bench.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    monkeypatch.setattr(bench, "build", lambda *a, **k: tmp_path / "x.elf")
    monkeypatch.setattr(bench, "run_qemu", lambda elf: "")
    monkeypatch.setattr(bench, "parse", lambda out: parsed)
    monkeypatch.setattr(bench, "size_of", lambda path: elf)
    monkeypatch.setattr(bench, "run_tool", lambda cmd: "tool 1.0\n")
    res = bench.main(["--out", str(tmp_path)])
    written = json.loads((tmp_path / "kernels_qemu-m4.json").read_text())
    assert written["versions"]["tinysift_source"] and "git" in written["versions"]
    assert {"platform", "cpus", "cpu_model"} <= set(written["machine"])
    assert written["versions"] == res["versions"]


def test_table_names_the_flags_the_results_record():
    bench = _bench()
    res = json.loads((RESULTS / "kernels_qemu-m4.json").read_text())
    assert bench.markdown(res) == (RESULTS / "kernels_qemu-m4.md").read_text()
    res["toolchain"]["cflags"] = [*res["toolchain"]["cflags"][:4], "-std=c11", "-O3"]
    assert "-mfloat-abi=hard -std=c11 -O3`" in bench.markdown(res)


def test_an_export_folder_without_an_export_is_refused(tmp_path, monkeypatch):
    bench = _bench()
    monkeypatch.setattr(bench.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    with pytest.raises(SystemExit) as exc:
        bench.main(["--export", str(tmp_path), "--out", str(tmp_path)])
    assert "not an export folder (no ts_export.h)" in str(exc.value.code)


def _hanging_elf(folder: Path) -> Path:
    """A Cortex-M image that spins at reset for ever (a hung bench firmware)."""
    import subprocess

    src = folder / "hang.s"
    src.write_text(".syntax unified\n.thumb\n.section .text\n.word 0x20001000\n"
                   ".word reset + 1\n.thumb_func\nreset: b reset\n")
    elf = folder / "hang.elf"
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-nostdlib",
                    "-Wl,-Ttext=0", "-o", str(elf), str(src)], check=True)
    return elf


def _qemus_running(elf: Path) -> list[int]:
    """The QEMU processes running ``elf`` (its path is unique to the test)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
            state = (cmdline.parent / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(elf).encode() in argv and argv[0].endswith(b"qemu-system-arm") and state != "Z":
            pids.append(int(cmdline.parent.name))
    return pids


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"),
                    reason="the parent-death signal")
def test_a_hung_bench_firmware_is_stopped_and_never_outlives_the_host(tmp_path):
    """run_qemu ran QEMU under `timeout --foreground`: a host killed while it waited (a job
    runner's SIGKILL, or SIGTERM, which kills the wrapper) left QEMU running, a hung image
    for ever. QEMU is the host's child now, with the parent-death signal; a hang past the
    timeout is one DeviceError line and QEMU is gone."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tinysift.device.icount import run_qemu
    from tinysift.errors import DeviceError
    from tools_needed import need_tools

    need_tools("qemu-system-arm", "arm-none-eabi-gcc")
    elf = _hanging_elf(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match=r"the bench firmware hang\.elf did not finish "
                                          r"within 2 s under QEMU \(stopped\)"):
        run_qemu(elf, timeout=2)
    assert time.monotonic() - t0 < 30 and not _qemus_running(elf)

    host = subprocess.Popen([sys.executable, "-c", "import sys; from pathlib import Path; "
                             "from tinysift.device.icount import run_qemu; "
                             "run_qemu(Path(sys.argv[1]), timeout=300)", str(elf)],
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _qemus_running(elf) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _qemus_running(elf), "QEMU did not start"
        host.send_signal(signal.SIGKILL)
        host.wait(timeout=30)
        deadline = time.monotonic() + 15
        while _qemus_running(elf) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = _qemus_running(elf)
    finally:
        for pid in _qemus_running(elf):  # the test's own QEMU, if the host left it
            os.kill(pid, signal.SIGKILL)
        if host.poll() is None:
            host.kill()
    assert not left, "QEMU outlived the host"


def test_bench_output_is_read_line_by_line():
    """tinysift.device.icount.parse on the bench firmware's lines (tools/bench/kernels_bench.c
    prints them; here by hand): every BENCH line, not just the first, values as integers
    (a port without -icount says icount_shift=-1), the per-MAC figures and the speedup
    (reference over DSP) added, a layer of no MACs without them, BENCH_ERROR raised; the
    QEMU that counts runs -icount shift=0 (1 ns an instruction, 40 a SysTick tick)."""
    from tinysift.device.icount import QEMU, parse
    from tinysift.errors import DeviceError

    text = ("boot\nBENCH_INFO counter=systick-icount icount_shift=-1 stack_size=8192 dsp=1\n"
            "BENCH case=pw op=CONV_2D macs=1000 outputs=64 ref_instr=4000 dsp_instr=2500 "
            "ref_stack=96 dsp_stack=128 dsp_scratch=0 equal=1\n"
            "BENCH_LAYER index=0 op=RESHAPE macs=0 ref_instr=40 dsp_instr=40\n"
            "BENCH_LAYER index=1 op=CONV_2D macs=200 ref_instr=900 dsp_instr=500\n"
            "BENCH_MODEL hash=ab12 macs=200 invoke_instr=1240 dsp=1 stack=512 arena=2048 "
            "scratch=64\nBENCH_DONE\n")
    res = parse(text)
    assert res["info"] == {"counter": "systick-icount", "icount_shift": -1,
                           "stack_size": 8192, "dsp": 1}
    (case,) = res["cases"]
    assert (case["ref_instr_per_mac"], case["dsp_instr_per_mac"], case["speedup"]) == (
        4.0, 2.5, 1.6)
    assert res["layers"] == [
        {"index": 0, "op": "RESHAPE", "macs": 0, "ref_instr": 40, "dsp_instr": 40},
        {"index": 1, "op": "CONV_2D", "macs": 200, "ref_instr": 900, "dsp_instr": 500,
         "dsp_instr_per_mac": 2.5}]
    assert res["model"] == {"hash": "ab12", "macs": 200, "invoke_instr": 1240, "dsp": 1,
                            "stack": 512, "arena": 2048, "scratch": 64}
    with pytest.raises(DeviceError, match="bench error: case=pw status=-2"):
        parse("BENCH_INFO dsp=1\nBENCH_ERROR case=pw status=-2\n")
    assert QEMU[QEMU.index("-icount") + 1] == "shift=0"


def test_invoke_instructions_reads_the_model_line(tmp_path, monkeypatch):
    """`engine check --board`'s figures come from BENCH_MODEL: the stack and the scratch
    each from its own field (scratch 0 when the line has none); a run that printed no
    BENCH_MODEL line is one error saying so."""
    import importlib

    from tinysift.errors import DeviceError

    icount = importlib.import_module("tinysift.device.icount")
    monkeypatch.setattr(icount, "build", lambda *a, **k: tmp_path / "invoke.elf")
    line = "BENCH_MODEL hash=ab macs=90 invoke_instr=1240 dsp=1 stack=512 arena=2048"
    for extra, scratch in ((" scratch=64", 64), ("", 0)):
        monkeypatch.setattr(icount, "run_qemu", lambda elf, e=extra: f"{line}{e}\nBENCH_DONE\n")
        assert icount.invoke_instructions(tmp_path, tmp_path, dsp=False) == {
            "instructions": 1240, "macs": 90, "stack": 512, "arena": 2048,
            "scratch": scratch, "dsp": False}
    monkeypatch.setattr(icount, "run_qemu", lambda elf: "BENCH_INFO dsp=0\nBENCH_DONE\n")
    with pytest.raises(DeviceError, match="printed no BENCH_MODEL line"):
        icount.invoke_instructions(tmp_path, tmp_path, dsp=False)
    monkeypatch.setattr(icount, "run_tool", lambda cmd: "   text\t   data\t    bss\t    dec"
                        "\thex\tfilename\n  30000\t   1200\t   9000\t  40200\t   9d08\tx.elf\n")
    assert icount.size_of(tmp_path / "x.elf") == {"text": 30000, "data": 1200, "bss": 9000}


def _exiting_elf(folder: Path, name: str, text: str, code: int) -> Path:
    """A Cortex-M image for QEMU mps2-an386 that writes ``text`` to UART0 (the serial port
    run_qemu reads, as the bench firmware prints) and exits through semihosting
    (SYS_EXIT_EXTENDED) with ``code``."""
    import subprocess

    src = folder / f"{name}.s"
    src.write_text(
        ".syntax unified\n.thumb\n.section .text\n.global _start\n_start:\n.word 0x20001000\n"
        ".word reset + 1\n.thumb_func\nreset:\n  ldr r0, =0x40004000\n  movs r1, #1\n"
        "  str r1, [r0, #8]\n  ldr r2, =text\nnext:\n  ldrb r1, [r2], #1\n  cbz r1, done\n"
        "  str r1, [r0]\n  b next\ndone:\n  movs r0, #0x20\n  ldr r1, =block\n  bkpt 0xab\n"
        f"hang: b hang\n.align 2\nblock: .word 0x20026, {code}\n"
        f"text: .byte {', '.join(str(b) for b in text.encode())}, 0\n.align 2\n.ltorg\n")
    elf = folder / f"{name}.elf"
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-nostdlib",
                    "-Wl,-Ttext=0", "-o", str(elf), str(src)], check=True)
    return elf


def test_a_bench_firmware_is_read_only_when_it_ends_with_bench_done_and_exit_0(tmp_path):
    """run_qemu returns the serial output of a bench firmware that printed BENCH_DONE and
    exited 0; one that exited without BENCH_DONE (its lines cut short) or with another exit
    status (a fault: 3) is refused, naming the status and showing what it printed, so a
    half-run bench never becomes a results file."""
    from tinysift.device.icount import run_qemu
    from tinysift.errors import DeviceError
    from tools_needed import need_tools

    need_tools("qemu-system-arm", "arm-none-eabi-gcc")
    done = "BENCH_INFO dsp=1\nBENCH_DONE\n"
    assert run_qemu(_exiting_elf(tmp_path, "done", done, 0), timeout=60).splitlines() == [
        "BENCH_INFO dsp=1", "BENCH_DONE"]
    with pytest.raises(DeviceError, match=r"bench firmware failed \(exit 0\):\nBENCH_INFO "
                                          r"dsp=1\nBENCH_CASE"):
        run_qemu(_exiting_elf(tmp_path, "cut", "BENCH_INFO dsp=1\nBENCH_CASE", 0), timeout=60)
    with pytest.raises(DeviceError, match=r"bench firmware failed \(exit 3\):\nBENCH_INFO"):
        run_qemu(_exiting_elf(tmp_path, "fault", done, 3), timeout=60)


def test_a_failed_tool_is_one_error_naming_the_command_its_status_and_output(tmp_path):
    """run_tool (the compiler, the linker, arm-none-eabi-size): a tool that fails, or dies of
    a signal (a negative status), is a DeviceError that names the command line, the status
    and ends with what the tool printed on stdout and stderr; a tool that succeeds gives its
    stdout."""
    import sys

    from tinysift.device.icount import run_tool
    from tinysift.errors import DeviceError

    script = "import sys; print('the output'); sys.exit('the error')"
    with pytest.raises(DeviceError, match=r"command failed \(1\): .*python.* -c import sys.*"
                                          r"\nthe output\nthe error"):
        run_tool([sys.executable, "-c", script])
    with pytest.raises(DeviceError, match=r"command failed \(-9\)"):
        run_tool([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), 9)"])
    assert run_tool([sys.executable, "-c", "print('fine')"]) == "fine\n"
