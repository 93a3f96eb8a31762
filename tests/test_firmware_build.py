"""The offline firmware build, for real: PlatformIO through tools/pio (seeded core, local
platforms), Debian's arm-none-eabi-gcc, QEMU mps2-an386/an500. No mocks.

Builds go to a private PlatformIO workspace (PLATFORMIO_WORKSPACE_DIR) so that a developer's
firmware/.pio is neither used nor disturbed.
"""

from __future__ import annotations

import binascii
import os
import re
import select
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tools_needed import FIRMWARE_TOOLS, need_tools

pytestmark = pytest.mark.qemu

ROOT = Path(__file__).resolve().parents[1]
PIO = ROOT / "tools" / "pio"
FIRMWARE = ROOT / "firmware"
PLATFORM_QEMU = ROOT / "boards" / "platform-qemu"
QEMU_MACHINES = {"qemu-m4": "mps2-an386", "qemu-m7": "mps2-an500"}
# The app's boot record (docs/protocol.md, TSP/1), built without an export (model=none).
BOOT_RE = re.compile(
    r"^@boot proto=1 fw=(?P<engine>\d+) board=(?P<platform>\S+) counter=(?P<counter>\S+) "
    r"hz=(?P<hz>\d+) resets=(?P<resets>\d+) model=(?P<model>\S+) \*(?P<crc>[0-9A-F]{4})$",
    re.M,
)


def frame(payload: str) -> bytes:
    """A TSP/1 host line: payload, space, '*', CRC-16/CCITT-FALSE of payload + space."""
    body = (payload + " ").encode()
    return body + b"*%04X\n" % binascii.crc_hqx(body, 0xFFFF)


def crc_ok(line: str) -> bool:
    body, _, crc = line.rpartition("*")
    return len(crc) == 4 and binascii.crc_hqx(body.encode(), 0xFFFF) == int(crc, 16)


@pytest.fixture(scope="module", autouse=True)
def _tools_present():
    need_tools(*FIRMWARE_TOOLS, "cc", pio=True)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pio-workspace")


def pio(workspace: Path, *args: str, timeout: float = 300, cwd: Path = ROOT):
    env = dict(os.environ, PLATFORMIO_WORKSPACE_DIR=str(workspace))
    env.pop("PLATFORMIO_BUILD_DIR", None)
    env.pop("TS_EXPORT_DIR", None)  # these builds are the app without an export
    return subprocess.run(
        [str(PIO), *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def qemu_cmd(machine: str, elf: Path, serial: str = "stdio") -> list[str]:
    return [
        "qemu-system-arm",
        "-machine", machine,
        "-nographic",
        "-monitor", "none",
        "-serial", serial,
        "-icount", "shift=6",
        "-semihosting-config", "enable=on,target=native",
        "-kernel", str(elf),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def built(workspace, tmp_path_factory) -> dict[str, Path]:
    """`tools/pio run` for both emulated boards; the ELFs are copied aside because a later
    `pio test` rebuilds the same build folder with the test program."""
    t0 = time.monotonic()
    res = pio(workspace, "run", "-d", "firmware", "-e", "qemu-m4", "-e", "qemu-m7")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    print(f"tools/pio run qemu-m4 + qemu-m7: {time.monotonic() - t0:.1f} s")
    out = tmp_path_factory.mktemp("elf")
    elfs = {}
    for env_name in QEMU_MACHINES:
        elf = workspace / "build" / env_name / "firmware.elf"
        assert elf.is_file(), f"no {elf}"
        elfs[env_name] = Path(shutil.copy(elf, out / f"{env_name}.elf"))
    elfs["_log"] = res.stdout  # type: ignore[assignment]
    return elfs


def test_build_reports_size(built):
    log = built["_log"]
    assert re.search(r"RAM:\s+\[.*\]\s+[\d.]+% \(used \d+ bytes from 4194304 bytes\)", log)
    assert re.search(r"Flash:\s+\[.*\]\s+[\d.]+% \(used \d+ bytes from 4194304 bytes\)", log)
    for env_name in QEMU_MACHINES:
        res = subprocess.run(
            ["arm-none-eabi-size", "-A", "-d", str(built[env_name])],
            capture_output=True,
            text=True,
            check=True,
        )
        sections = {
            m.group(1): int(m.group(2))
            for m in re.finditer(r"^(\.\S+)\s+(\d+)\s+\d+$", res.stdout, re.M)
        }
        assert sections[".text"] > 1000, res.stdout
        assert sections[".isr_vector"] == 4 * (16 + 32)
        assert sections[".stack"] == 64 * 1024


def test_firmware_has_no_heap(built):
    res = subprocess.run(
        ["arm-none-eabi-nm", str(built["qemu-m4"])], capture_output=True, text=True, check=True
    )
    symbols = {line.split()[-1] for line in res.stdout.splitlines() if line.strip()}
    assert not symbols & {"malloc", "_malloc_r", "_sbrk", "_sbrk_r", "free"}
    assert "ts_vector_table" in symbols and "Reset_Handler" in symbols


def test_malloc_fails_the_link(tmp_path):
    """A firmware that pulls in malloc does not link, and the error names the reason."""
    proj = tmp_path / "heapy"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "main.c").write_text(
        "#include <stdlib.h>\nint main(void) { return malloc(8) != 0; }\n"
    )
    (proj / "platformio.ini").write_text(
        f"[env:qemu-m4]\nplatform = symlink://{PLATFORM_QEMU}\nboard = qemu-mps2-an386\n"
    )
    res = pio(tmp_path / "ws", "run", "-d", str(proj), timeout=120)
    assert res.returncode != 0
    assert "tinysift_error_NO_HEAP_malloc_or_newlib_stdio_was_linked_in" in (
        res.stdout + res.stderr
    )


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to `timeout`, which passes it on to QEMU (a SIGKILL would orphan QEMU)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def qemu_session(machine: str, elf: Path, send: bytes, until: str, timeout: float = 30) -> str:
    """Runs the app in QEMU with the UART on stdio, writes `send`, reads until a line starting
    with `until` arrives, then stops QEMU (the command loop never exits by itself)."""
    proc = subprocess.Popen(
        ["timeout", str(int(timeout) + 10), *qemu_cmd(machine, elf)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out = b""
    try:
        proc.stdin.write(send)
        proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while until.encode() not in out and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                out += chunk
        text = out.decode(errors="replace")
        assert until in text, text
        # the rest of the line that holds `until`
        while not out.endswith(b"\n"):
            out += os.read(proc.stdout.fileno(), 1)
        return out.decode(errors="replace")
    finally:
        stop(proc)


@pytest.mark.parametrize("env_name", list(QEMU_MACHINES))
def test_boot_record_and_info(built, env_name):
    """The app (no export compiled in) boots with a checksummed @boot record and answers
    `info`; under -icount the whole exchange is the same run after run."""
    runs = [
        qemu_session(QEMU_MACHINES[env_name], built[env_name], frame("info"),
                     "@ready cmd=info")
        for _ in range(2)
    ]
    m = BOOT_RE.search(runs[0])
    assert m, runs[0]
    assert m["engine"] == "1"
    assert m["platform"] == f"qemu-{QEMU_MACHINES[env_name]}"
    assert m["counter"] == "systick-icount"
    assert m["hz"] == "25000000"
    assert m["resets"] == "0"
    assert m["model"] == "none"
    lines = [ln for ln in runs[0].splitlines() if ln.startswith("@")]
    assert all(crc_ok(ln) for ln in lines), lines
    info = next(ln for ln in lines if ln.startswith("@info "))
    assert " icount_shift=6 " in info and " counter=systick-icount " in info, info
    assert "@ready cmd=info status=0 *4946" in lines  # the spec's check value
    # -icount: deterministic (stack high-water included)
    assert runs[0] == runs[1]


def test_rx_over_stdio(built):
    """Bytes written to QEMU's stdin reach the UART RX: a command is answered, a corrupted
    line is refused with 103 and the app keeps working."""
    bad = bytearray(frame("name"))
    bad[0] ^= 0x01  # one flipped bit: the CRC no longer matches
    out = qemu_session("mps2-an386", built["qemu-m4"],
                       bytes(bad) + frame("name"), "@ready cmd=name")
    assert "@err code=103 msg=bad_crc" in out, out
    assert "@ready cmd=- status=103" in out, out
    assert "@name name=tinysift-fw" in out, out


def test_exit_status(tmp_path):
    """main's return value is QEMU's exit status (semihosting SYS_EXIT_EXTENDED)."""
    proj = tmp_path / "exit3"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "main.c").write_text(
        '#include "ts_platform.h"\nint main(void) { ts_printf("bye\\n"); return 3; }\n'
    )
    (proj / "platformio.ini").write_text(
        f"[env:qemu-m4]\nplatform = symlink://{PLATFORM_QEMU}\nboard = qemu-mps2-an386\n"
    )
    res = pio(tmp_path / "ws", "run", "-d", str(proj), timeout=120)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    elf = tmp_path / "ws" / "build" / "qemu-m4" / "firmware.elf"
    run = subprocess.run(
        ["timeout", "30", *qemu_cmd("mps2-an386", elf)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 3, run.stdout + run.stderr
    assert "bye" in run.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serial_over_tcp(built):
    """The emulator's UART as a TCP server, the host side through pyserial's socket:// URL,
    exactly as the device runner talks to it."""
    import serial

    port = _free_port()
    proc = subprocess.Popen(
        [
            "timeout",
            "60",
            *qemu_cmd(
                "mps2-an386", built["qemu-m4"], serial=f"tcp:127.0.0.1:{port},server=on,wait=on"
            ),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        link = None
        deadline = time.monotonic() + 20
        while link is None:
            try:
                link = serial.serial_for_url(f"socket://127.0.0.1:{port}", timeout=0.5)
            except serial.SerialException:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        link.write(frame("name") + frame("reset"))
        received = b""
        deadline = time.monotonic() + 30
        while received.count(b"@boot ") < 2 and time.monotonic() < deadline:
            # One byte at a time: pyserial's socket read(n) raises when the peer closes
            # and drops whatever that same call had already received.
            received += link.read(1)
        while not received.endswith(b"\n") and time.monotonic() < deadline:
            received += link.read(1)
        link.close()
        text = received.decode()
        boots = list(BOOT_RE.finditer(text))
        assert [b["resets"] for b in boots] == ["0", "1"], text  # reset restarts the app
        assert "@name name=tinysift-fw" in text
        assert "@ready cmd=reset status=0" in text
    finally:
        stop(proc)


def test_pio_test_native(workspace):
    t0 = time.monotonic()
    res = pio(workspace, "test", "-d", "firmware", "-e", "native")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert re.search(r"native\s+test_smoke\s+PASSED", res.stdout), res.stdout[-2000:]
    print(f"tools/pio test -e native: {time.monotonic() - t0:.1f} s")


def test_pio_test_native_asan(workspace):
    """Every firmware test suite that runs on the host, once more with ASan + UBSan (env
    native-asan, -fno-sanitize-recover=all: any finding fails its suite)."""
    t0 = time.monotonic()
    res = pio(workspace, "test", "-d", "firmware", "-e", "native-asan", timeout=900)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    passed = set(re.findall(r"native-asan\s+(test_\w+)\s+PASSED", res.stdout))
    assert {"test_smoke", "test_engine", "test_protocol"} <= passed, res.stdout[-2000:]
    assert "runtime error" not in out and "Sanitizer" not in out
    print(f"tools/pio test -e native-asan: {time.monotonic() - t0:.1f} s")


def test_pio_test_qemu_m4(workspace, built):
    t0 = time.monotonic()
    res = pio(workspace, "test", "-d", "firmware", "-e", "qemu-m4")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert re.search(r"qemu-m4\s+test_smoke\s+PASSED", res.stdout), res.stdout[-2000:]
    print(f"tools/pio test -e qemu-m4: {time.monotonic() - t0:.1f} s")
