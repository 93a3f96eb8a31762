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
    with pytest.raises(DeviceError, match=r"bench firmware"):
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
