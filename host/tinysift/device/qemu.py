"""Run firmware on an emulated board: QEMU with ``-icount`` and a TCP serial port.

The emulator never outlives the host: it runs in its own process group, which is killed
when the host leaves the ``with`` block (normally, on an error, on Ctrl-C, or on SIGTERM /
SIGHUP, which the CLI turns into an exception); and the kernel kills it when the host
process dies without cleaning up (SIGKILL, a crash): Linux's parent-death signal, set in the
child before QEMU starts, with a check that the parent is still the host. The serial port is
reached with pyserial's ``socket://`` URL, exactly like a real port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tinysift.boards import Board
from tinysift.errors import DeviceError, DeviceUnavailable

ICOUNT_SHIFT = 6


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qemu_command(board: Board, elf: Path, port: int, icount_shift: int = ICOUNT_SHIFT) -> list:
    if not board.emulated:
        raise DeviceError(f"{board.name} is a real board; pass --port to talk to it")
    # the machine's serial ports before the board's console get nothing (netduinoplus2: USART2
    # is the second)
    unused = ["-serial", "null"] * board.qemu_serial_index
    return ["qemu-system-arm", "-machine", board.qemu_machine, "-nographic", "-monitor", "none",
            "-icount", f"shift={icount_shift}",
            "-semihosting-config", "enable=on,target=native", *unused,
            "-serial", f"tcp:127.0.0.1:{port},server=on,wait=on", "-kernel", str(elf)]


@contextlib.contextmanager
def qemu_serial(board: Board, elf: Path, log_path: Path | None = None
                ) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start QEMU and yield ``(serial_url, process)``; the emulator dies on exit."""
    port = free_port()
    cmd = qemu_command(board, elf, port)
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, preexec_fn=die_with_parent())
    except FileNotFoundError as exc:
        raise DeviceUnavailable("qemu-system-arm not found; run tools/setup.sh") from exc
    try:
        # Give QEMU a moment to bind; the caller's first connection (SerialLink, which
        # retries) is the one QEMU's 'wait=on' accepts, so no boot output is lost.
        time.sleep(0.1)
        if proc.poll() is not None:
            raise DeviceUnavailable(f"QEMU exited with status {proc.returncode} at start: "
                                    f"{' '.join(cmd)}")
        yield f"socket://127.0.0.1:{port}", proc
    finally:
        stop(proc)
        if log_path:
            log.close()


def die_with_parent():
    """A ``preexec_fn``: the child gets SIGKILL when the process that started it dies
    (prctl PR_SET_PDEATHSIG; Linux), and exits at once if that already happened. None
    elsewhere (the ``finally`` and the CLI's signal handlers still stop the emulator)."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    parent = os.getpid()

    def child() -> None:
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the host died before the prctl
            os._exit(1)
    return child


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
