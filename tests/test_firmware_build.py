"""The offline firmware build, for real: PlatformIO through tools/pio (seeded core, local
platforms), Debian's arm-none-eabi-gcc, QEMU mps2-an386/an500. No mocks.

Builds go to a private PlatformIO workspace (PLATFORMIO_WORKSPACE_DIR) so that a developer's
firmware/.pio is neither used nor disturbed.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.qemu

ROOT = Path(__file__).resolve().parents[1]
PIO = ROOT / "tools" / "pio"
FIRMWARE = ROOT / "firmware"
PLATFORM_QEMU = ROOT / "boards" / "platform-qemu"
QEMU_MACHINES = {"qemu-m4": "mps2-an386", "qemu-m7": "mps2-an500"}
BOOT_RE = re.compile(
    r"tinysift-fw boot engine=(?P<engine>\d+) platform=(?P<platform>\S+) "
    r"counter=(?P<counter>\S+) hz=(?P<hz>\d+) icount_shift=(?P<shift>-?\d+)"
)


def _missing_tools() -> list[str]:
    need = ["qemu-system-arm", "arm-none-eabi-gcc", "arm-none-eabi-size", "cc"]
    missing = [t for t in need if shutil.which(t) is None]
    if not (ROOT / ".venv" / "bin" / "pio").exists():
        missing.append(".venv/bin/pio")
    return missing


@pytest.fixture(scope="module", autouse=True)
def _tools_present():
    missing = _missing_tools()
    if missing:
        msg = f"firmware tools missing ({', '.join(missing)}): run tools/setup.sh"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pio-workspace")


def pio(workspace: Path, *args: str, timeout: float = 300, cwd: Path = ROOT):
    env = dict(os.environ, PLATFORMIO_WORKSPACE_DIR=str(workspace))
    env.pop("PLATFORMIO_BUILD_DIR", None)
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


@pytest.mark.parametrize("env_name", list(QEMU_MACHINES))
def test_boot_line_and_exit_code(built, env_name):
    elf = built[env_name]
    runs = []
    for _ in range(2):
        res = subprocess.run(
            ["timeout", "30", *qemu_cmd(QEMU_MACHINES[env_name], elf)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 0, res.stdout + res.stderr
        runs.append(res.stdout)
    m = BOOT_RE.search(runs[0])
    assert m, runs[0]
    assert m["engine"] == "1"
    assert m["platform"] == f"qemu-{QEMU_MACHINES[env_name]}"
    assert m["counter"] == "systick-icount"
    assert m["hz"] == "25000000"
    assert m["shift"] == "6"
    # -icount: the same firmware prints the same cycle counts run after run
    cycles = [re.search(r"boot_line=(\d+)", out).group(1) for out in runs]
    assert cycles[0] == cycles[1]


def test_exit_status_and_rx_over_stdio(built):
    """Bytes written to QEMU's stdin reach the UART RX; `exit N` becomes QEMU's status."""
    res = subprocess.run(
        ["timeout", "30", *qemu_cmd("mps2-an386", built["qemu-m4"])],
        input="hello\r\nexit 3\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 3, res.stdout + res.stderr
    assert "echo: hello" in res.stdout
    assert "tinysift-fw bye" in res.stdout


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
        link.write(b"ping 1 2 3\nexit 7\n")
        received = b""
        deadline = time.monotonic() + 30
        while b"tinysift-fw bye" not in received and time.monotonic() < deadline:
            try:
                # One byte at a time: pyserial's socket read(n) raises when the peer closes
                # and drops whatever that same call had already received.
                received += link.read(1)
            except serial.SerialException:  # the firmware exited and QEMU closed the socket
                break
        link.close()
        assert proc.wait(timeout=30) == 7
        text = received.decode()
        assert BOOT_RE.search(text), text
        assert "echo: ping 1 2 3" in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_pio_test_native(workspace):
    t0 = time.monotonic()
    res = pio(workspace, "test", "-d", "firmware", "-e", "native")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert re.search(r"native\s+test_smoke\s+PASSED", res.stdout), res.stdout[-2000:]
    print(f"tools/pio test -e native: {time.monotonic() - t0:.1f} s")


def test_pio_test_qemu_m4(workspace, built):
    t0 = time.monotonic()
    res = pio(workspace, "test", "-d", "firmware", "-e", "qemu-m4")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert re.search(r"qemu-m4\s+test_smoke\s+PASSED", res.stdout), res.stdout[-2000:]
    print(f"tools/pio test -e qemu-m4: {time.monotonic() - t0:.1f} s")
