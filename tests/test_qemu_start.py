"""tinysift.device.qemu.qemu_serial's start (and qemu_listening's, which it and the tests' own
QEMU commands use), with the real emulator and the app built without an
export (seconds): the serial URL is handed out once QEMU itself listens on the port, never
probed by connecting (QEMU's ``wait=on`` starts the guest on the first connection); a port
another process took before QEMU bound it is retried on a fresh one (a parallel test worker or
bench, not a reason to stop a bench); any other exit at start says QEMU's own words. The same
start without a build or QEMU, with a stand-in for its serial server (a process listening on
the port it is given): the retries, the log, the URL and the emulator's end with the host.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from processes import running
from tools_needed import FIRMWARE_TOOLS, ROOT, need_tools

pytestmark = pytest.mark.qemu

BOARD = "qemu-mps2-an386"


@pytest.fixture(scope="module")
def elf(tmp_path_factory) -> Path:
    """The app without an export for the mps2-an386 (it boots with ``model=none``)."""
    need_tools(*FIRMWARE_TOOLS, pio=True)
    ws = tmp_path_factory.mktemp("pio-start")
    env = dict(os.environ, PLATFORMIO_WORKSPACE_DIR=str(ws))
    for name in ("PLATFORMIO_BUILD_DIR", "TS_EXPORT_DIR", "PLATFORMIO_BUILD_FLAGS"):
        env.pop(name, None)
    res = subprocess.run([str(ROOT / "tools" / "pio"), "run", "-d", "firmware", "-e", "qemu-m4"],
                         cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return ws / "build" / "qemu-m4" / "firmware.elf"


@pytest.fixture()
def held() -> Iterator[socket.socket]:
    """Another process's listener on a port (a test worker's, a second bench's emulator)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        s.setblocking(False)
        yield s


def ports(monkeypatch: pytest.MonkeyPatch, *first: int) -> list[int]:
    """``free_port`` returns ``first`` in turn, then really free ports; the list of what it
    returned."""
    from tinysift.device import qemu

    given: list[int] = []
    queue, real = list(first), qemu.free_port

    def free_port() -> int:
        given.append(queue.pop(0) if queue else real())
        return given[-1]

    monkeypatch.setattr(qemu, "free_port", free_port)
    return given


def wrap_qemu(folder: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    """A ``qemu-system-arm`` first on PATH running ``body`` (``$QEMU``: the real one)."""
    real = shutil.which("qemu-system-arm")
    assert real, "qemu-system-arm missing: run tools/setup.sh"
    folder.mkdir()
    script = folder / "qemu-system-arm"
    script.write_text(f'#!/bin/sh\nQEMU={real}\n{body}\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")


def group_alive(pgid: int) -> bool:
    """Whether a process of the group is still there (a zombie counts: not reaped yet)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def boot_through(url: str) -> dict[str, str]:
    """The ``@boot`` record's fields, read through the host's link."""
    from tinysift.device.link import SerialLink

    with SerialLink(url, connect_timeout=5) as link:
        return link.wait_boot(timeout=15).fields


# (a wrapper's shell script body or None for QEMU itself, whether the start has a log)
STARTS = {
    "qemu": (None, False),
    "qemu-logged": (None, True),
    # a slow start (a loaded machine): QEMU finds the port taken only after the old fixed
    # wait had handed out the URL, and the host connected to the other listener
    "slow-exec": ('sleep 0.3; exec "$QEMU" "$@"', True),
    # QEMU a child of the wrapper: its socket is found in the process group
    "slow-child": ('sleep 0.3; "$QEMU" "$@"', False),
}


@pytest.mark.parametrize("start", STARTS)
def test_a_port_taken_before_qemu_binds_it_is_retried(start, elf, held, tmp_path, monkeypatch):
    from tinysift.boards import load_board
    from tinysift.device.qemu import qemu_serial

    wrapper, logged = STARTS[start]
    if wrapper:
        wrap_qemu(tmp_path / "bin", monkeypatch, wrapper)
    taken = held.getsockname()[1]
    given = ports(monkeypatch, taken)
    log = tmp_path / "qemu.log" if logged else None
    with qemu_serial(load_board(BOARD), elf, log_path=log) as (url, proc):
        assert given[0] == taken and len(given) == 2, f"{url} started on ports {given}"
        assert url == f"socket://127.0.0.1:{given[1]}" and proc.poll() is None
        boot = boot_through(url)
        assert boot["board"] == BOARD and boot["resets"] == "0", boot
    with pytest.raises(BlockingIOError):
        held.accept()  # the host never connected to the other process's listener
    if logged:
        assert "Address already in use" in log.read_text()  # the first start's, kept


def test_without_proc_the_start_still_retries_a_taken_port(elf, held, monkeypatch):
    """Where /proc/net/tcp does not exist (not Linux): a short wait, as before, and QEMU's
    exit at start on a taken port is retried as well."""
    from tinysift.boards import load_board
    from tinysift.device import qemu

    monkeypatch.setattr(qemu, "PROC_NET_TCP", Path("/nonexistent/net/tcp"))
    given = ports(monkeypatch, held.getsockname()[1])
    with qemu.qemu_serial(load_board(BOARD), elf) as (url, _proc):
        assert boot_through(url)["board"] == BOARD
    assert len(given) == 2


def test_ports_taken_every_time_give_up_after_a_few_tries(elf, held, monkeypatch):
    from tinysift.boards import load_board
    from tinysift.device.qemu import START_TRIES, qemu_serial
    from tinysift.errors import DeviceUnavailable

    taken = held.getsockname()[1]
    given = ports(monkeypatch, *[taken] * START_TRIES)
    with pytest.raises(DeviceUnavailable, match=r"Address already in use.*3 ports in turn were "
                                                r"taken .* retry later"):
        with qemu_serial(load_board(BOARD), elf):
            pytest.fail("started on a taken port")
    assert given == [taken] * START_TRIES


@pytest.mark.parametrize("logged", [False, True])
def test_another_exit_at_start_says_qemus_own_words(logged, tmp_path, monkeypatch):
    """An unknown machine: no retry, and QEMU's message in the error. With a log (appended
    to by every start), only this start's lines are read: an older start's taken port in it
    is not taken for this one's."""
    from tinysift.boards import load_board
    from tinysift.device.qemu import qemu_serial
    from tinysift.errors import DeviceUnavailable

    need_tools("qemu-system-arm")
    brd = dataclasses.replace(load_board(BOARD), qemu_machine="no-such-machine")
    log = tmp_path / "qemu.log" if logged else None
    if log:
        log.write_text("qemu-system-arm: -serial tcp:...: Failed to find an available port: "
                       "Address already in use\n")
    given = ports(monkeypatch)
    elf = tmp_path / "firmware.elf"
    elf.write_bytes(b"")  # QEMU refuses the machine before it reads the kernel
    with pytest.raises(DeviceUnavailable) as exc:
        with qemu_serial(brd, elf, log_path=log):
            pytest.fail("QEMU started")
    message = str(exc.value)
    assert message.startswith("QEMU exited with status 1 at start: qemu-system-arm: "
                              "unsupported machine type / Use -machine help"), message
    assert "Address already in use" not in message and "\n" not in message
    assert len(given) == 1


def test_a_qemu_that_never_listens_is_given_up_on(tmp_path, monkeypatch):
    from tinysift.boards import load_board
    from tinysift.device import qemu
    from tinysift.errors import DeviceUnavailable

    wrap_qemu(tmp_path / "bin", monkeypatch, "exec sleep 30")
    monkeypatch.setattr(qemu, "START_TIMEOUT", 0.5)
    with pytest.raises(DeviceUnavailable, match=r"QEMU did not listen on its serial port "
                                                r"127\.0\.0\.1:\d+ within 0\.5 s"):
        with qemu.qemu_serial(load_board(BOARD), tmp_path / "firmware.elf"):
            pytest.fail("started")


def test_a_tests_own_command_starts_as_the_hosts(elf, held, tmp_path, monkeypatch):
    """qemu_listening starts any command the way qemu_serial starts the board's: the tests'
    own (a ``timeout`` wrapper, a QMP socket) retry a port another process took first, the
    URL is handed out once QEMU listens, and on exit the wrapper's whole process group goes."""
    from tinysift.boards import load_board
    from tinysift.device.qemu import qemu_command, qemu_listening

    qmp = tmp_path / "qmp.sock"

    def command(port: int) -> list[str]:
        return ["timeout", "60", *qemu_command(load_board(BOARD), elf, port),
                "-qmp", f"unix:{qmp},server=on,wait=off"]

    taken = held.getsockname()[1]
    given = ports(monkeypatch, taken)
    with qemu_listening(command, tmp_path / "qemu.log") as (port, proc):
        assert given == [taken, port] and proc.poll() is None
        assert boot_through(f"socket://127.0.0.1:{port}")["board"] == BOARD
        assert qmp.exists()  # the command's own option reached QEMU
    deadline = time.monotonic() + 5
    while group_alive(proc.pid):  # timeout and QEMU, its child, both go
        assert time.monotonic() < deadline, "QEMU outlived the start's exit"
        time.sleep(0.05)
    assert "Address already in use" in (tmp_path / "qemu.log").read_text()


# ---- the same start without a build: a stand-in for QEMU's serial server ---------------------

# It listens on 127.0.0.1:PORT (argv[1]); on a taken port its bind fails with "Address already
# in use" and it exits, as QEMU does. One line: the command is quoted in the start's errors.
LISTENER = ("import socket, sys, time; print('stand-in started', flush=True); "
            "s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); "
            "time.sleep(60)")


def listener(port: int) -> list[str]:
    """The stand-in's command for ``port``."""
    return [sys.executable, "-c", LISTENER, str(port)]


def test_a_stand_in_start_retries_a_taken_port_appends_its_log_and_ends(held, tmp_path,
                                                                        monkeypatch):
    """qemu_listening: a port another process took is retried on a fresh one, which is the
    port handed out and listened on; the log is appended to (an earlier session's lines kept,
    both starts' stdout and stderr added); on exit the emulator's process group is gone."""
    from tinysift.device.qemu import qemu_listening

    log = tmp_path / "qemu.log"
    log.write_text("an earlier session\n")
    taken = held.getsockname()[1]
    given = ports(monkeypatch, taken)
    with qemu_listening(listener, log) as (port, proc):
        assert given == [taken, port] and proc.poll() is None
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert not group_alive(proc.pid)
    text = log.read_text()
    assert text.startswith("an earlier session\n") and "Address already in use" in text
    assert text.count("stand-in started") == 2


def test_a_stand_in_start_gives_up_after_its_tries(held, monkeypatch):
    """Every port taken: START_TRIES starts, then one line with the last start's words and
    the advice to retry later."""
    from tinysift.device.qemu import START_TRIES, qemu_listening
    from tinysift.errors import DeviceUnavailable

    taken = held.getsockname()[1]
    given = ports(monkeypatch, *[taken] * START_TRIES)
    with pytest.raises(DeviceUnavailable, match=rf"^QEMU exited with status 1 at start: .*"
                                                rf"Address already in use \(command: .*\); "
                                                rf"{START_TRIES} ports in turn were taken by "
                                                rf"other processes before QEMU bound them: "
                                                rf"retry later$"):
        with qemu_listening(listener):
            pytest.fail("started on a taken port")
    assert given == [taken] * START_TRIES


def test_an_exit_at_start_without_a_word_says_so(monkeypatch):
    """An emulator that exits at start printing nothing: its status and "no output", not an
    empty reason, and no retry (the port was not taken)."""
    from tinysift.device.qemu import qemu_listening
    from tinysift.errors import DeviceUnavailable

    given = ports(monkeypatch)
    with pytest.raises(DeviceUnavailable) as exc:
        with qemu_listening(lambda port: ["sh", "-c", "exit 3"]):
            pytest.fail("started")
    assert str(exc.value) == ("QEMU exited with status 3 at start: no output (command: sh -c "
                              "exit 3)")
    assert len(given) == 1


def _interrupt(signum: int, frame: object) -> None:
    """A SIGALRM handler standing in for Ctrl-C."""
    raise KeyboardInterrupt


def test_ctrl_c_before_the_emulator_listens_stops_it(tmp_path):
    """Ctrl-C (here a timer's KeyboardInterrupt) while the start waits for QEMU to listen:
    the interrupt goes on and the emulator is gone, not left running on its own."""
    from tinysift.device.qemu import qemu_listening

    pid_file = tmp_path / "qemu.pid"
    previous = signal.signal(signal.SIGALRM, _interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 1)
        with pytest.raises(KeyboardInterrupt):
            with qemu_listening(lambda port: ["sh", "-c", f'echo $$ > "{pid_file}"; '
                                                          "exec sleep 30"]):
                pytest.fail("started")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert not group_alive(int(pid_file.read_text()))


def test_the_emulator_dies_with_a_host_killed_without_cleaning_up():
    """The host killed by SIGKILL (no ``finally`` runs): the kernel kills the emulator that
    qemu_listening started (the parent-death signal set in the child), which would otherwise
    hold its port and run on."""
    host_code = ("import sys; from tinysift.device.qemu import qemu_listening; "
                 "cmd = lambda port: [sys.executable, '-c', sys.argv[1], str(port)]\n"
                 "with qemu_listening(cmd) as (port, proc):\n"
                 "    print(proc.pid, flush=True); sys.stdin.read()")
    host = subprocess.Popen([sys.executable, "-c", host_code, LISTENER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        emulator = int(host.stdout.readline())
    finally:
        host.kill()
        host.wait(timeout=10)
        host.stdin.close()
        host.stdout.close()
    deadline = time.monotonic() + 5
    while running(emulator):
        assert time.monotonic() < deadline, "the emulator outlived the host"
        time.sleep(0.02)


def test_qemu_serial_hands_out_the_socket_url_of_the_boards_port(tmp_path, monkeypatch):
    """qemu_serial starts the board's command (here a stand-in qemu-system-arm on PATH that
    listens on the port of its ``-serial tcp:`` option) and hands out pyserial's socket://
    URL of that port, which opens."""
    import serial

    from tinysift.boards import load_board
    from tinysift.device.qemu import qemu_serial

    folder = tmp_path / "bin"
    folder.mkdir()
    stand_in = folder / "qemu-system-arm"
    stand_in.write_text(f"#!{sys.executable}\nimport re, socket, sys, time\n"
                        "port = int(re.search(r'tcp:127\\.0\\.0\\.1:(\\d+),', "
                        "' '.join(sys.argv)).group(1))\n"
                        "s = socket.socket(); s.bind(('127.0.0.1', port)); s.listen()\n"
                        "time.sleep(60)\n")
    stand_in.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    given = ports(monkeypatch)
    with qemu_serial(load_board(BOARD), tmp_path / "firmware.elf") as (url, _proc):
        assert url == f"socket://127.0.0.1:{given[0]}"
        serial.serial_for_url(url, timeout=1).close()
