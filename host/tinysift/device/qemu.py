"""Run firmware on an emulated board: QEMU with ``-icount`` and a TCP serial port.

The emulator never outlives the host: it runs in its own process group, which is killed
when the host leaves the ``with`` block (normally, on an error, on Ctrl-C, or on SIGTERM /
SIGHUP, which the CLI turns into an exception); and the kernel kills it when the host
process dies without cleaning up (SIGKILL, a crash): Linux's parent-death signal, set in the
child before QEMU starts, with a check that the parent is still the host. The serial port is
reached with pyserial's ``socket://`` URL, exactly like a real port; it is handed out once
QEMU itself listens there (:func:`qemu_serial`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

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


#: Seconds QEMU gets to listen on its serial port (a loaded machine starts it slowly).
START_TIMEOUT = 20.0
#: Starts on a fresh port when another process took the chosen one first.
START_TRIES = 3
#: QEMU's message when its serial port is taken (it exits at once).
ADDRESS_IN_USE = "Address already in use"
#: /proc/net/tcp: the kernel's IPv4 TCP sockets (Linux); LISTEN is state 0A.
PROC_NET_TCP = Path("/proc/net/tcp")


@contextlib.contextmanager
def qemu_serial(board: Board, elf: Path, log_path: Path | None = None
                ) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start QEMU and yield ``(serial_url, process)``; the emulator dies on exit.

    The URL is handed out once QEMU itself listens on the port (:func:`qemu_listening`), so
    the caller's first connection is the one QEMU's ``wait=on`` accepts and no boot output
    is lost.

    Raises
    ------
    DeviceUnavailable
        QEMU is missing, exits at start (its own last lines in the message), or does not
        listen within ``START_TIMEOUT`` seconds.
    """
    with qemu_listening(lambda port: qemu_command(board, elf, port), log_path) as (port, proc):
        yield f"socket://127.0.0.1:{port}", proc


@contextlib.contextmanager
def qemu_listening(command: Callable[[int], list[str]], log_path: Path | None = None
                   ) -> Iterator[tuple[int, subprocess.Popen]]:
    """Start ``command(port)`` (a QEMU whose serial port is a TCP server on ``port``) on a
    free port and yield ``(port, process)`` once QEMU itself listens on it (Linux: its socket
    in /proc/net/tcp; elsewhere after a short wait); the port is never probed by connecting.
    A port another process took between :func:`free_port` and QEMU's bind is retried on a
    fresh one (``START_TRIES`` starts in all). QEMU's output goes to ``log_path`` (appended)
    and the emulator dies on exit. The tests that add options to the board's command (a QMP
    socket) start it through here too, so they do not race other processes for the port.

    Raises
    ------
    DeviceUnavailable
        as :func:`qemu_serial`
    """
    log = open(log_path, "ab") if log_path else None
    try:
        for attempt in range(1, START_TRIES + 1):
            port = free_port()
            proc, why, taken = _start(command(port), port, log, log_path)
            if proc is not None:
                break
            if not taken:
                raise DeviceUnavailable(why)
            if attempt == START_TRIES:
                raise DeviceUnavailable(f"{why}; {START_TRIES} ports in turn were taken by "
                                        "other processes before QEMU bound them: retry later")
        try:
            yield port, proc
        finally:
            stop(proc)
    finally:
        if log is not None:
            log.close()


def _start(cmd: list[str], port: int, log: BinaryIO | None, log_path: Path | None
           ) -> tuple[subprocess.Popen | None, str, bool]:
    """QEMU started from ``cmd`` and listening on ``port``: ``(process, "", False)``; or
    ``(None, why, taken)`` when it exited at start or did not listen: ``why`` holds QEMU's
    own last lines, ``taken`` says another process held the port (the caller retries on a
    fresh one)."""
    # Without a log, stderr goes to a file (not a pipe: nobody reads one during the session,
    # and QEMU would block once it is full) so that an exit at start can say why.
    err = log if log is not None else tempfile.TemporaryFile()
    start = err.tell()  # the log is appended to: only what this start writes is read back
    try:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                    stdout=log if log is not None else subprocess.DEVNULL,
                                    stderr=err, start_new_session=True,
                                    preexec_fn=die_with_parent())
        except FileNotFoundError as exc:
            raise DeviceUnavailable("qemu-system-arm not found; run tools/setup.sh") from exc
        try:
            listening = _wait_listening(proc, port)
        except BaseException:  # Ctrl-C or SIGTERM while waiting: the emulator goes too
            stop(proc)
            raise
        if listening:
            return proc, "", False
        if proc.poll() is None:
            stop(proc)
            return None, (f"QEMU did not listen on its serial port 127.0.0.1:{port} within "
                          f"{START_TIMEOUT:g} s of its start; check the machine's load, and "
                          f"what `{' '.join(cmd)}` does"), False
        if log is not None:
            with open(log_path, "rb") as written:
                written.seek(start)
                text = written.read()
        else:
            err.seek(start)
            text = err.read()
        lines = [ln.strip() for ln in text.decode(errors="replace").splitlines()]
        said = " / ".join([ln for ln in lines if ln][-3:]) or "no output"
        return None, (f"QEMU exited with status {proc.returncode} at start: {said} "
                      f"(command: {' '.join(cmd)})"), ADDRESS_IN_USE in said
    finally:
        if err is not log:
            err.close()


def _wait_listening(proc: subprocess.Popen, port: int) -> bool:
    """Whether QEMU listens on ``127.0.0.1:port``: True once its own socket does, False when
    it exited first or did not listen within ``START_TIMEOUT`` (still running then).

    Connecting to find out would be the connection ``wait=on`` accepts and starts the guest
    with (the boot output would go to the probe), so the kernel's socket table is read
    instead, and the listening socket must be one of QEMU's (another process may hold the
    port: then QEMU fails to bind and exits). Without /proc (not Linux), a short wait and the
    caller's connection retries (SerialLink) stand in for it."""
    if not PROC_NET_TCP.exists():
        time.sleep(0.1)
        return proc.poll() is None
    deadline = time.monotonic() + START_TIMEOUT
    while proc.poll() is None:
        inodes = _listening_inodes(port)
        if inodes and _can_see_fds(proc.pid):
            if _owns(proc.pid, inodes):
                return proc.poll() is None
        elif inodes:
            # whose socket cannot be told: a QEMU that found the port taken exits within
            # milliseconds, so one still alive a moment later is taken to be listening
            time.sleep(0.2)
            return proc.poll() is None
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return False


def _listening_inodes(port: int) -> set[str]:
    """The inodes of the sockets listening on ``127.0.0.1:port`` (/proc/net/tcp)."""
    # the address as the kernel prints it: the network-order bytes read as a native integer
    local = f"{int.from_bytes(socket.inet_aton('127.0.0.1'), sys.byteorder):08X}:{port:04X}"
    try:
        rows = PROC_NET_TCP.read_text().splitlines()[1:]
    except OSError:
        return set()
    return {f[9] for f in map(str.split, rows)
            if len(f) > 9 and f[1] == local and f[3] == "0A"}


def _owns(pid: int, inodes: set[str]) -> bool:
    """Whether one of ``inodes`` is open in ``pid`` or its process group (QEMU's session: a
    wrapper script on PATH may run it as a child instead of exec'ing it)."""
    if _socket_inodes(pid) & inodes:
        return True
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(pid):
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # the fields after the command name (in parentheses, and it may hold spaces):
            # state, ppid, pgrp
            if stat[stat.rfind(")") + 2:].split()[2] == str(pid) and \
                    _socket_inodes(int(entry.name)) & inodes:
                return True
    return False


def _socket_inodes(pid: int) -> set[str]:
    found = set()
    with contextlib.suppress(OSError):
        for fd in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(fd.path)
                if target.startswith("socket:["):
                    found.add(target[len("socket:["):-1])
    return found


def _can_see_fds(pid: int) -> bool:
    """Whether /proc shows ``pid``'s descriptors (a hardened /proc may not): if not, a
    listener on the port with QEMU alive is taken as QEMU's."""
    return os.access(f"/proc/{pid}/fd", os.R_OK | os.X_OK)


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
