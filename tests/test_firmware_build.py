"""The offline firmware build, for real: PlatformIO through tools/pio (seeded core, local
platforms), Debian's arm-none-eabi-gcc, QEMU mps2-an386/an500 and netduinoplus2 (the STM32F4
port); the real STM32 boards built and checked against their memory maps. No mocks.

Builds go to a private PlatformIO workspace (PLATFORMIO_WORKSPACE_DIR) so that a developer's
firmware/.pio is neither used nor disturbed.
"""

from __future__ import annotations

import binascii
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tinysift.device.build import platformio_sizes
from tools_needed import FIRMWARE_TOOLS, need_tools

pytestmark = pytest.mark.qemu

ROOT = Path(__file__).resolve().parents[1]
PIO = ROOT / "tools" / "pio"
FIRMWARE = ROOT / "firmware"
PLATFORM_QEMU = ROOT / "boards" / "platform-qemu"
QEMU_MACHINES = {"qemu-m4": "mps2-an386", "qemu-m7": "mps2-an500"}
# The STM32 port's envs (boards/platform-stm32): env -> (port, flash bytes, RAM bytes), the
# chips' memory maps (flash at 0x08000000, SRAM at 0x20000000)
STM32_ENVS = {
    "qemu-netduinoplus2": ("stm32f4", 1024 * 1024, 128 * 1024),  # STM32F405RG
    "nucleo_f411re": ("stm32f4", 512 * 1024, 128 * 1024),
    "nucleo_f401re": ("stm32f4", 512 * 1024, 96 * 1024),
    "nucleo_f446re": ("stm32f4", 512 * 1024, 128 * 1024),
    "nucleo_l4r5zi": ("stm32l4", 2048 * 1024, 640 * 1024),
}
# The app's boot record (docs/protocol.md, TSP/1), built without an export (model=none); a
# port that names itself adds port= and clock=.
BOOT_RE = re.compile(
    r"^@boot proto=1 fw=(?P<engine>\d+) board=(?P<platform>\S+) counter=(?P<counter>\S+) "
    r"hz=(?P<hz>\d+) resets=(?P<resets>\d+) model=(?P<model>\S+)"
    r"(?P<extra>(?: \w+=\S+)*) \*(?P<crc>[0-9A-F]{4})$",
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


def one_file_project(proj: Path, main_c: str, env: str = "qemu-m4",
                     board: str = "qemu-mps2-an386", platform: Path | None = None) -> Path:
    """A PlatformIO project of one ``src/main.c`` (``main_c``) and one ``env`` building it
    for ``board`` on ``platform`` (default the QEMU platform): the firmware runtime's
    checks without the tinysift app. Returns ``proj``."""
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "main.c").write_text(main_c)
    (proj / "platformio.ini").write_text(
        f"[env:{env}]\nplatform = symlink://{platform or PLATFORM_QEMU}\nboard = {board}\n"
    )
    return proj


def qemu_cmd(machine: str, elf: Path, serial: str = "stdio", serial_index: int = 0
             ) -> list[str]:
    """``serial_index``: which of the machine's serial ports is the console (netduinoplus2:
    USART2, the second); the ones before it get nothing."""
    return [
        "qemu-system-arm",
        "-machine", machine,
        "-nographic",
        "-monitor", "none",
        *["-serial", "null"] * serial_index,
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
    # tools/firmware_size_table.py and image_sizes read the same lines (RAM counts the stack)
    figs = platformio_sizes(log)
    assert figs["ram"]["of"] == figs["flash"]["of"] == 4194304
    assert figs["ram"]["used"] > 64 * 1024 and figs["flash"]["used"] > 1000
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
    proj = one_file_project(tmp_path / "heapy",
                            "#include <stdlib.h>\nint main(void) { return malloc(8) != 0; }\n")
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


def qemu_session(machine: str, elf: Path, send: bytes, until: str, timeout: float = 30,
                 serial_index: int = 0, after_boot: bool = False) -> str:
    """Runs the app in QEMU with the UART on stdio, writes `send` (``after_boot``: once the
    @boot line is out), reads until a line starting with `until` arrives, then stops QEMU
    (the command loop never exits by itself)."""
    proc = subprocess.Popen(
        ["timeout", str(int(timeout) + 10),
         *qemu_cmd(machine, elf, serial_index=serial_index)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out = b""
    try:
        deadline = time.monotonic() + timeout
        # QEMU's STM32 USART drops what arrives before the firmware enables its receiver
        # (so does the chip): send only once the firmware is listening
        while after_boot and not re.search(rb"@boot [^\n]*\n", out) and (
                time.monotonic() < deadline):
            if select.select([proc.stdout], [], [], 0.5)[0]:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                out += chunk
        proc.stdin.write(send)
        proc.stdin.flush()
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
    assert m["extra"] == " db=0"  # no surviving stream buffer; the mps2 runtime names no port
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
    proj = one_file_project(
        tmp_path / "exit3",
        '#include "ts_platform.h"\nint main(void) { ts_printf("bye\\n"); return 3; }\n')
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


def test_a_build_folder_with_a_space_links(tmp_path):
    """A run folder with a space in its path (`--out "runs/my run"`) compiled, then failed
    to link: the linker's -Map path was split in two ("cannot find u/.../firmware.map")."""
    proj = one_file_project(
        tmp_path / "my proj",
        '#include "ts_platform.h"\nint main(void) { ts_printf("bye\\n"); return 0; }\n')
    res = pio(tmp_path / "work space", "run", "-d", str(proj), timeout=120)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    build = tmp_path / "work space" / "build" / "qemu-m4"
    assert (build / "firmware.elf").is_file() and (build / "firmware.map").is_file()


def test_serial_over_tcp(built):
    """The emulator's UART as a TCP server, the host side through pyserial's socket:// URL,
    exactly as the device runner talks to it (started as the host starts it: on a port
    another process takes first it retries a fresh one)."""
    from tinysift.device.link import _open_port
    from tinysift.device.qemu import qemu_listening

    def command(port: int) -> list[str]:
        return qemu_cmd("mps2-an386", built["qemu-m4"],
                        serial=f"tcp:127.0.0.1:{port},server=on,wait=on")

    with qemu_listening(command) as (port, _):
        # opened as the runner opens it: pyserial's own open drains what already arrived,
        # which lost the first @boot when this process was slow to get there (a loaded
        # machine: resets ['1'] only)
        link = _open_port(f"socket://127.0.0.1:{port}", 115200)
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


# ---- the STM32 port: the emulated STM32F4 and the real boards --------------------------------

@pytest.fixture(scope="module")
def stm32_built(workspace, tmp_path_factory) -> dict[str, Path]:
    """`tools/pio run` for every env of the STM32 port, the app without an export."""
    t0 = time.monotonic()
    args = [a for env_name in STM32_ENVS for a in ("-e", env_name)]
    res = pio(workspace, "run", "-d", "firmware", *args, timeout=900)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert "warning:" not in res.stdout + res.stderr, res.stdout[-4000:]
    print(f"tools/pio run {' '.join(STM32_ENVS)}: {time.monotonic() - t0:.1f} s")
    out = tmp_path_factory.mktemp("stm32-elf")
    elfs = {"_log": res.stdout}
    for env_name in STM32_ENVS:
        elf = workspace / "build" / env_name / "firmware.elf"
        assert elf.is_file(), f"no {elf}"
        elfs[env_name] = Path(shutil.copy(elf, out / f"{env_name}.elf"))
    return elfs  # type: ignore[return-value]


def _sections(elf: Path) -> dict[str, tuple[int, int]]:
    """name -> (address, size) of the ELF's allocated sections."""
    res = subprocess.run(["arm-none-eabi-size", "-A", "-d", str(elf)], capture_output=True,
                         text=True, check=True)
    return {m[1]: (int(m[3]), int(m[2]))
            for m in re.finditer(r"^(\.\S+)\s+(\d+)\s+(\d+)$", res.stdout, re.M)}


@pytest.mark.parametrize("env_name", list(STM32_ENVS))
def test_stm32_builds_link_against_their_memory_maps(stm32_built, env_name):
    """Each chip's image: the vector table at the start of flash (0x08000000), the stack at
    the bottom of SRAM (0x20000000), everything inside the chip's flash and SRAM; PlatformIO
    reports its size against them; the port's own strings are in the image."""
    port, flash_bytes, ram_bytes = STM32_ENVS[env_name]
    sec = _sections(stm32_built[env_name])
    assert sec[".isr_vector"][0] == 0x08000000, sec
    assert sec[".isr_vector"][1] >= 4 * (16 + 80), sec  # the core's 16 + the chip's IRQs
    assert sec[".stack"] == (0x20000000, 16 * 1024), sec
    flash_end = max(a + n for name, (a, n) in sec.items()
                    if name in (".isr_vector", ".text", ".ARM.exidx", ".init_array"))
    flash_end += sec[".data"][1]  # its load image follows
    assert flash_end <= 0x08000000 + flash_bytes
    ram_end = max(a + n for name, (a, n) in sec.items()
                  if name in (".stack", ".data", ".bss", ".noinit"))
    assert ram_end <= 0x20000000 + ram_bytes
    log = stm32_built["_log"]
    assert re.search(rf"RAM:.*from {ram_bytes} bytes", log) and re.search(
        rf"Flash:.*from {flash_bytes} bytes", log)
    data = stm32_built[env_name].read_bytes()
    assert b"\0" + port.encode() + b"\0" in data
    assert env_name.encode() + b"\0" in data  # ts_platform_name()
    counter = b"\0systick-icount\0" if env_name.startswith("qemu-") else b"\0dwt\0"
    assert counter in data


def test_stm32_malloc_fails_the_link(tmp_path):
    """The STM32 platform shares the no-heap rule of the Cortex-M runtime."""
    proj = one_file_project(tmp_path / "heapy",
                            "#include <stdlib.h>\nint main(void) { return malloc(8) != 0; }\n",
                            "nucleo_f411re", "nucleo_f411re", ROOT / "boards" / "platform-stm32")
    res = pio(tmp_path / "ws", "run", "-d", str(proj), timeout=120)
    assert res.returncode != 0
    assert "tinysift_error_NO_HEAP_malloc_or_newlib_stdio_was_linked_in" in (
        res.stdout + res.stderr
    )


def test_netduinoplus2_boots_the_stm32f4_port(stm32_built):
    """The STM32F4 port in QEMU netduinoplus2, its console on USART2 (QEMU's model of the
    STM32 USART): @boot names the port and says the clock set-up was skipped (QEMU models
    no RCC); `info` and a corrupted line work; deterministic under -icount."""
    elf = stm32_built["qemu-netduinoplus2"]
    bad = bytearray(frame("name"))
    bad[0] ^= 0x01
    runs = [qemu_session("netduinoplus2", elf, frame("info") + bytes(bad) + frame("name"),
                         "@ready cmd=name", serial_index=1, after_boot=True)
            for _ in range(2)]
    m = BOOT_RE.search(runs[0])
    assert m, runs[0]
    assert m["platform"] == "qemu-netduinoplus2"
    assert m["counter"] == "systick-icount" and m["hz"] == "168000000"
    assert m["resets"] == "0" and m["model"] == "none"
    assert m["extra"] == " db=0 port=stm32f4 clock=skipped_under_qemu"
    lines = [ln for ln in runs[0].splitlines() if ln.startswith("@")]
    assert all(crc_ok(ln) for ln in lines), lines
    info = next(ln for ln in lines if ln.startswith("@info "))
    assert " icount_shift=6 " in info and " counter=systick-icount " in info, info
    assert "@ready cmd=info status=0 *4946" in lines
    assert any(ln.startswith("@err code=103 msg=bad_crc") for ln in lines), lines
    assert any(ln.startswith("@name name=tinysift-fw") for ln in lines), lines
    # the same run to run, but for the stack's high-water mark: the input now arrives while
    # the firmware waits (not queued before boot), and where the receive interrupt lands
    # moves the deepest stack use
    def same(text: str) -> str:
        return re.sub(r"stack_hwm=\d+ (.*)\*[0-9A-F]{4}", r"stack_hwm=N \1*CRC", text)

    assert same(runs[0]) == same(runs[1])
    # nothing on USART1 (the first serial port): the console is USART2 only
    quiet = subprocess.run(["timeout", "5", *qemu_cmd("netduinoplus2", elf)],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    assert b"@boot" not in quiet.stdout


def test_pio_test_qemu_netduinoplus2(workspace, stm32_built):
    """The firmware's own tests (engine, protocol, smoke) on the STM32F4 port in QEMU."""
    t0 = time.monotonic()
    res = pio(workspace, "test", "-d", "firmware", "-e", "qemu-netduinoplus2", timeout=900)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert re.search(r"qemu-netduinoplus2\s+test_smoke\s+PASSED", res.stdout), (
        res.stdout[-2000:])
    print(f"tools/pio test -e qemu-netduinoplus2: {time.monotonic() - t0:.1f} s")


def test_netduinoplus2_fault_report_and_exit_status(tmp_path):
    """A CPU fault in the STM32F4 port: the shared handler reports it on USART2 and ends with
    status 3, QEMU's exit status (semihosting)."""
    proj = one_file_project(
        tmp_path / "trap",
        '#include "ts_platform.h"\n'
        'int main(void) { ts_printf("about to trap\\n"); ts_uart_flush(); __builtin_trap(); }\n',
        "n2", "qemu-netduinoplus2", ROOT / "boards" / "platform-stm32")
    res = pio(tmp_path / "ws", "run", "-d", str(proj), timeout=120)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    elf = tmp_path / "ws" / "build" / "n2" / "firmware.elf"
    run = subprocess.run(["timeout", "30", *qemu_cmd("netduinoplus2", elf, serial_index=1)],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert run.returncode == 3, run.stdout + run.stderr
    assert "about to trap" in run.stdout
    assert "!! FAULT HardFault: pc=0x080" in run.stdout, run.stdout


def test_a_build_past_its_time_leaves_no_compiler_running(tmp_path):
    """On a timeout the build's whole process group is killed: PlatformIO's SCons and
    compilers outlived a killed `pio` and kept writing into the run's build folder."""
    import os
    import subprocess
    import time

    from tinysift.device.build import run_process_group

    pid_file = tmp_path / "grandchild.pid"
    # a shell (as pio) that starts a long child (as SCons/gcc) and waits for it
    cmd = ["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"]
    start = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        run_process_group(cmd, dict(os.environ), timeout=1.0)
    # killing `pio` alone left its child holding the output pipes: the call waited the
    # child's whole 60 s for them to close (and found it dead by then)
    assert time.monotonic() - start < 10
    pid = int(pid_file.read_text())
    for _ in range(50):  # the kill is delivered at once; reaping by init may take a moment
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{pid}/stat") as f:
            if f.read().split()[2] == "Z":  # a zombie is dead, awaiting its reaper
                break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the build's child {pid} still runs after the timeout")
