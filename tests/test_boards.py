"""Board profiles and the real-board tooling that needs no board: where each profile is built
and run, finding boards by USB VID:PID, the flash commands (--dry-run) and a flash attempt
with no probe attached, the user's calibrated profiles."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from processes import running
from tinysift.boards import (
    SUPPORT,
    board_support,
    list_boards,
    load_board,
    save_user_board,
    user_board_keys,
    user_boards_dir,
)
from tinysift.device.build import build_plan
from tinysift.device.flash import FlashStep, flash_steps, run_step
from tinysift.device.ports import boards_for, match_ports, usb_id
from tinysift.errors import DeviceError, TinysiftError
from tools_needed import need_tools

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _user_config(tmp_path, monkeypatch):
    """A private user config folder: a developer's own calibrated profiles never leak in."""
    monkeypatch.setenv("TINYSIFT_CONFIG_DIR", str(tmp_path / "config"))


# ---- where each profile is built and run ---------------------------------------------------

def test_every_profile_says_where_it_is_built_and_run():
    support = {b.name: board_support(b) for b in list_boards()}
    assert set(support.values()) <= set(SUPPORT)
    assert {n for n, s in support.items() if s == "run-here"} == {
        "qemu-mps2-an386", "qemu-mps2-an500", "qemu-netduinoplus2"}
    assert {n for n, s in support.items() if s == "build-here"} == {
        "nucleo_f401re", "nucleo_f411re", "nucleo_f446re", "nucleo_l4r5zi"}
    assert {n for n, s in support.items() if s == "internet"} == {"nano33ble", "pico",
                                                                  "esp32-s3"}
    assert support["disco_f746ng"] == "no-port"


def test_the_emulated_stm32f4_is_the_nucleo_port():
    emu, f411 = load_board("qemu-netduinoplus2"), load_board("nucleo_f411re")
    assert emu.emulated and emu.qemu_machine == "netduinoplus2"
    assert emu.qemu_serial_index == 1  # USART2, the Nucleo-64's virtual COM port
    assert emu.port == f411.port == "stm32f4"
    assert emu.stack_bytes == f411.stack_bytes == 16 * 1024


def test_qemu_command_puts_the_console_on_the_boards_serial_port():
    from tinysift.device.qemu import qemu_command

    cmd = qemu_command(load_board("qemu-netduinoplus2"), Path("fw.elf"), 4321)
    i = cmd.index("-machine")
    assert cmd[i + 1] == "netduinoplus2"
    serials = [cmd[j + 1] for j, a in enumerate(cmd) if a == "-serial"]
    assert serials == ["null", "tcp:127.0.0.1:4321,server=on,wait=on"]
    cmd = qemu_command(load_board("qemu-mps2-an386"), Path("fw.elf"), 4321)
    assert [cmd[j + 1] for j, a in enumerate(cmd) if a == "-serial"] == [
        "tcp:127.0.0.1:4321,server=on,wait=on"]


def test_qemu_command_refuses_a_real_board_and_takes_the_icount_shift():
    """Only an emulated board has a QEMU command (a real one is reached through --port),
    and the `-icount shift=` is the one asked for."""
    from tinysift.device.qemu import qemu_command

    with pytest.raises(DeviceError, match="nucleo_f411re is a real board; pass --port"):
        qemu_command(load_board("nucleo_f411re"), Path("fw.elf"), 4321)
    cmd = qemu_command(load_board("qemu-mps2-an386"), Path("fw.elf"), 4321, icount_shift=3)
    assert cmd[cmd.index("-icount") + 1] == "shift=3" and cmd[-2:] == ["-kernel", "fw.elf"]


def test_qemu_command_runs_headless_with_semihosting():
    """The emulator runs without a display and without its monitor on stdio (the host talks
    to the firmware only through the TCP serial port; QEMU's own output goes to the log),
    and with semihosting on, through which the firmware's exit code is QEMU's exit
    status."""
    from tinysift.device.qemu import qemu_command

    cmd = qemu_command(load_board("qemu-mps2-an500"), Path("fw.elf"), 4321)
    assert cmd[0] == "qemu-system-arm" and "-nographic" in cmd
    option = {name: cmd[i + 1] for i, name in enumerate(cmd[:-1]) if name.startswith("-")}
    assert option["-machine"] == "mps2-an500" and option["-monitor"] == "none"
    assert option["-semihosting-config"] == "enable=on,target=native"


def test_a_listening_socket_is_found_by_its_port_and_owner():
    """qemu._listening_inodes reads the kernel's table (/proc/net/tcp): this process's
    listener on 127.0.0.1:port is found (its inode, as /proc/self/fd shows it), the
    connection accepted on the same port (ESTABLISHED, not LISTEN) is not, nor another
    port; _owns finds it in a process group's member that is no direct child (a wrapper
    running QEMU from a subshell)."""
    import os
    import socket
    import subprocess
    import sys

    from tinysift.device import qemu

    if not qemu.PROC_NET_TCP.exists():
        pytest.skip("no /proc/net/tcp (not Linux)")
    with socket.socket() as server, socket.socket() as client:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        inode = str(os.fstat(server.fileno()).st_ino)
        client.connect(("127.0.0.1", port))
        accepted, _ = server.accept()
        with accepted:
            assert qemu._listening_inodes(port) == {inode}
            assert inode in qemu._socket_inodes(os.getpid())
            assert qemu._owns(os.getpid(), {inode})
            assert str(os.fstat(accepted.fileno()).st_ino) in qemu._socket_inodes(os.getpid())
        assert qemu._listening_inodes(client.getsockname()[1]) == set()
    # a listener two levels below the group's leader: sh -> sh -> python (`; true`: no
    # shell execs its last command)
    listen = ("import os, socket, sys; s = socket.socket(); s.bind(('127.0.0.1', 0)); "
              "s.listen(); print(s.getsockname()[1], os.getppid(), flush=True); "
              "sys.stdin.read()")
    inner = '"$0" -c "$1"; true'
    leader = subprocess.Popen(["sh", "-c", 'sh -c "$2" "$0" "$1"; true', sys.executable,
                               listen, inner],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        port, parent = map(int, leader.stdout.readline().split())
        assert parent != leader.pid  # not the leader's own child
        inodes = qemu._listening_inodes(port)
        assert len(inodes) == 1
        assert qemu._owns(leader.pid, inodes) and not qemu._owns(os.getpid(), inodes)
    finally:
        leader.stdin.close()
        leader.wait(timeout=10)


def test_stopping_the_emulator_stops_its_whole_group_and_it_dies_with_the_host():
    """qemu.stop ends the process group it was started in (a wrapper's QEMU child too), and
    die_with_parent's child gets SIGKILL when the process that started it is killed
    without cleaning up (here a Python host started by this test, killed with SIGKILL)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tinysift.device import qemu

    group = subprocess.Popen(["sh", "-c", "sleep 30 & echo $!; wait"], stdout=subprocess.PIPE,
                             text=True, start_new_session=True)
    sleep = int(group.stdout.readline())  # the wrapper's child, in its group
    qemu.stop(group)
    group.stdout.close()
    assert group.poll() is not None
    deadline = time.monotonic() + 5
    while running(sleep):
        assert time.monotonic() < deadline, "the group's other process outlived stop()"
        time.sleep(0.02)

    host = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys; from tinysift.device.qemu import die_with_parent; "
        "p = subprocess.Popen(['sleep', '30'], preexec_fn=die_with_parent()); "
        "print(p.pid, flush=True); sys.stdin.read()")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    child = int(host.stdout.readline())
    os.kill(host.pid, signal.SIGKILL)
    host.wait(timeout=10)
    deadline = time.monotonic() + 5
    while running(child):
        assert time.monotonic() < deadline, "the child outlived the host"
        time.sleep(0.02)


def test_an_emulator_that_ignores_sigterm_is_killed():
    """qemu.stop on an emulator that does not end on SIGTERM (it ignores it here; a hung one
    may not act on it): after its grace period the group gets SIGKILL, and stop returns
    with the emulator gone instead of raising TimeoutExpired and leaving it running."""
    import subprocess

    from tinysift.device import qemu

    stubborn = subprocess.Popen(["sh", "-c", "trap '' TERM; echo ready; exec sleep 30"],
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert stubborn.stdout.readline() == "ready\n"  # SIGTERM ignored from here on
    qemu.stop(stubborn)
    stubborn.stdout.close()
    assert stubborn.returncode == -9


def test_a_missing_qemu_is_one_line_naming_the_setup(tmp_path, monkeypatch):
    """No qemu-system-arm on PATH (an empty PATH here): DeviceUnavailable saying to run
    tools/setup.sh, not a FileNotFoundError."""
    from tinysift.device.qemu import qemu_serial
    from tinysift.errors import DeviceUnavailable

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DeviceUnavailable, match=r"^qemu-system-arm not found; run "
                                                r"tools/setup\.sh$"):
        with qemu_serial(load_board("qemu-mps2-an386"), tmp_path / "firmware.elf"):
            pytest.fail("started")


# ---- finding boards ----------------------------------------------------------------------------

NUCLEOS = {"nucleo_f401re", "nucleo_f411re", "nucleo_f446re", "nucleo_l4r5zi"}


def _port(device, vid=None, pid=None, description=""):
    return SimpleNamespace(device=device, vid=vid, pid=pid, description=description)


@pytest.mark.parametrize(("vid", "pid", "boards"), [
    (0x0483, 0x374B, NUCLEOS),  # ST-LINK/V2-1: every Nucleo, the user picks with --board
    (0x0483, 0x374E, NUCLEOS),  # STLINK-V3
    (0x2341, 0x805A, {"nano33ble"}),
    (0x2E8A, 0x000A, {"pico"}),
    (0x303A, 0x1001, {"esp32-s3"}),
    (0x0D28, 0x0204, set()),  # a DAPLink can be on any board: named, not matched
    (0x1234, 0x5678, set()),
])
def test_known_usb_ids_map_to_profiles(vid, pid, boards):
    assert set(boards_for(usb_id(vid, pid), list_boards())) == boards


def test_match_ports_orders_and_hints():
    boards = list_boards()
    ports = [_port("/dev/ttyS0"),
             _port("/dev/ttyACM1", 0x0D28, 0x0204, "DAPLink CMSIS-DAP"),
             _port("/dev/ttyACM0", 0x2341, 0x805A, "Nano 33 BLE"),
             _port("/dev/ttyACM2", 0x0483, 0x374B, "STM32 STLink")]
    got = match_ports(ports, boards)
    assert [m.device for m in got] == ["/dev/ttyACM0", "/dev/ttyACM2", "/dev/ttyACM1",
                                       "/dev/ttyS0"]
    nano, nucleo, dap, plain = got
    assert nano.hint == "--board nano33ble --port /dev/ttyACM0"
    assert nucleo.hint.startswith("--board <") and "nucleo_f411re" in nucleo.hint
    assert "ST-LINK" in nucleo.adapter
    assert dap.boards == [] and "DAPLink" in dap.adapter and dap.hint == "--port /dev/ttyACM1"
    assert plain.usb_id is None and plain.adapter == "" and plain.to_dict()["pass"] == (
        "--port /dev/ttyS0")


def _usb_port(device: str, vid: int | None = None, pid: int | None = None,
              description: str = "n/a"):
    """pyserial's own ListPortInfo, filled in as its USB probing fills it (vid, pid,
    description); a port with no vid/pid is a non-USB one (a UART), described "n/a"."""
    from serial.tools.list_ports_common import ListPortInfo

    port = ListPortInfo(device, skip_link_detection=True)
    port.vid, port.pid, port.description = vid, pid, description
    return port


def test_usb_id_needs_both_halves():
    """A port with a vendor but no product ID (or the other way round) is not a USB ID: None,
    not a half-formatted one or a TypeError; both are lower-case four-digit hex."""
    assert usb_id(0x0483, None) is None and usb_id(None, 0x374B) is None
    assert usb_id(None, None) is None
    assert usb_id(0x2E8A, 0x000A) == "2e8a:000a"


def test_every_adapter_that_names_a_board_matches_its_profiles():
    """`device list` hints `--board` only for IDs a profile lists: every USB ID ports.py names
    as one of the project's boards is in that board's profiles (0483:3752, an ST-LINK/V2-1
    without its drive, was named a Nucleo's port but in no Nucleo profile, so a Nucleo behind
    it got no hint); the probes and bridges that can sit on any board, and the Pico's BOOTSEL
    drive (no serial port), match none."""
    from tinysift.device.ports import ADAPTERS

    any_board = {"0d28:0204", "10c4:ea60", "2e8a:0003"}
    profiles = list_boards()
    for uid, what in ADAPTERS.items():
        matched = boards_for(uid, profiles)
        assert (matched == []) == (uid in any_board), (uid, what, matched)
    nucleos = [b.name for b in profiles if b.name.startswith("nucleo_")]
    assert boards_for("0483:3752", profiles) == nucleos == boards_for("0483:374b", profiles)


def test_match_ports_on_pyserial_ports_orders_hints_and_records():
    """On pyserial's ListPortInfo: ports of known boards first (a board's port without a
    known adapter too), then named adapters, then the rest, each group by device name
    whatever order the OS listed them in; a user profile's upper-case usb_ids match; the
    hint lists every candidate profile between <...> separated by |; to_dict is the whole
    record."""
    folder = user_boards_dir()
    folder.mkdir(parents=True)
    # the user's Pico behind a CH340 bridge (no entry in ADAPTERS), IDs in upper case
    (folder / "pico.toml").write_text('usb_ids = ["2E8A:000A", "1A86:7523"]\n')
    assert boards_for("2e8a:000a", list_boards()) == ["pico"]
    ports = [_usb_port("/dev/ttyUSB0", 0x0D28, 0x0204, "DAPLink CMSIS-DAP"),
             _usb_port("/dev/ttyS0"),
             _usb_port("/dev/ttyACM3", 0x0483, 0x374B, "STM32 STLink"),
             _usb_port("/dev/ttyUSB1", 0x1A86, 0x7523, "USB Serial"),
             _usb_port("/dev/ttyACM1", 0x2E8A, 0x000A, "Pico")]
    got = match_ports(ports, list_boards())
    assert [m.device for m in got] == ["/dev/ttyACM1", "/dev/ttyACM3", "/dev/ttyUSB1",
                                       "/dev/ttyUSB0", "/dev/ttyS0"]
    pico, nucleo, ch340, dap, uart = got
    assert pico.to_dict() == {"device": "/dev/ttyACM1", "usb_id": "2e8a:000a",
                              "description": "Pico",
                              "adapter": "Raspberry Pi Pico (USB serial)",
                              "boards": ["pico"], "pass": "--board pico --port /dev/ttyACM1"}
    assert nucleo.hint == ("--board <nucleo_f401re|nucleo_f411re|nucleo_f446re|"
                           "nucleo_l4r5zi> --port /dev/ttyACM3")
    assert ch340.to_dict() == {"device": "/dev/ttyUSB1", "usb_id": "1a86:7523",
                               "description": "USB Serial", "adapter": "",
                               "boards": ["pico"], "pass": "--board pico --port /dev/ttyUSB1"}
    assert dap.to_dict() == {"device": "/dev/ttyUSB0", "usb_id": "0d28:0204",
                             "description": "DAPLink CMSIS-DAP",
                             "adapter": "Arm DAPLink / CMSIS-DAP (any board behind it)",
                             "boards": [], "pass": "--port /dev/ttyUSB0"}
    assert uart.to_dict() == {"device": "/dev/ttyS0", "usb_id": None, "description": "n/a",
                              "adapter": "", "boards": [], "pass": "--port /dev/ttyS0"}


def test_a_port_without_a_description_is_listed_with_an_empty_one():
    """A serial port whose driver gives no description (None) is listed with an empty one:
    `device list` adds the matched boards to that text and prints it, and its --json
    record holds a string for every port, never null."""
    (port,) = match_ports([_port("/dev/ttyUSB7", 0x2E8A, 0x000A, None)], list_boards())
    assert port.description == "" and port.to_dict()["description"] == ""
    assert port.boards == ["pico"]


# ---- flashing ----------------------------------------------------------------------------------

def _plan(name: str, tmp_path: Path):
    brd = load_board(name)
    return brd, build_plan(brd, None, tmp_path)


def test_flash_dry_run_openocd_command(tmp_path):
    brd, plan = _plan("nucleo_f411re", tmp_path)
    build, steps = flash_steps(brd, plan)
    assert build.offline and build.cmd[-2:] == ["-e", "nucleo_f411re"]
    assert build.elf == tmp_path.resolve() / "build" / "nucleo_f411re" / "firmware.elf"
    assert [s.cmd for s in steps] == [[
        "openocd", "-f", "board/st_nucleo_f4.cfg",
        "-c", f"program {{{build.elf}}} verify reset exit"]]
    # the Debian package has the board script the profile names
    scripts = Path("/usr/share/openocd/scripts")
    if scripts.is_dir():
        assert (scripts / brd.openocd_config).is_file()
        assert (scripts / load_board("nucleo_l4r5zi").openocd_config).is_file()


def test_a_board_without_a_flash_method_says_the_fix(tmp_path):
    """"disco_f746ng has no flash method in its profile" gave no fix: a board without a
    firmware port says nothing can be built for it; one with a port, which profile key to
    set and where."""
    from dataclasses import replace

    brd = load_board("disco_f746ng")
    with pytest.raises(DeviceError, match="has no firmware port .* choose a board `tinysift "
                                          "boards` lists as buildable"):
        flash_steps(brd, None)
    ported = replace(load_board("nucleo_f411re"), flash_method="")
    with pytest.raises(DeviceError, match=r"set flash_method to one of probe, uf2, pio-upload "
                                          r"in its user profile, .*nucleo_f411re\.toml"):
        flash_steps(ported, _plan("nucleo_f411re", tmp_path)[1])


def test_flash_other_probes_and_methods(tmp_path):
    brd, plan = _plan("nucleo_l4r5zi", tmp_path)
    _, steps = flash_steps(brd, plan, probe="pyocd")
    assert steps[0].cmd[:4] == ["pyocd", "flash", "--target", "stm32l4r5zitx"]
    _, steps = flash_steps(brd, plan, probe="stlink")
    assert steps[0].cmd[:3] == ["arm-none-eabi-objcopy", "-O", "binary"]
    assert steps[1].cmd[:3] == ["st-flash", "--reset", "write"]
    assert steps[1].cmd[-1] == "0x8000000"
    with pytest.raises(DeviceError, match="unknown probe"):
        flash_steps(brd, plan, probe="jlink")
    # the Pico: a UF2 image copied to the BOOTSEL drive
    brd, plan = _plan("pico", tmp_path)
    assert not plan.offline
    _, steps = flash_steps(brd, plan)
    assert [s.what for s in steps][-1].startswith("copy the UF2")
    # Arduino / ESP-IDF: PlatformIO builds and uploads
    brd, plan = _plan("nano33ble", tmp_path)
    upload, steps = flash_steps(brd, plan, port="/dev/ttyACM0")
    assert steps == [] and upload.cmd[-4:] == ["-t", "upload", "--upload-port", "/dev/ttyACM0"]
    with pytest.raises(DeviceError, match="not flashed through a debug probe"):
        flash_steps(brd, plan, probe="openocd")
    brd, plan = _plan("qemu-netduinoplus2", tmp_path)
    with pytest.raises(DeviceError, match="emulated"):
        flash_steps(brd, plan)


def test_flash_chooses_the_probe_by_serial(tmp_path):
    """With two Nucleos plugged in, every probe tool took the first ST-LINK it found: the
    serial goes to each tool with its own option (OpenOCD's `adapter serial` command before
    `program`, which initialises the adapter; pyOCD's --uid; st-flash's --serial)."""
    brd, plan = _plan("nucleo_l4r5zi", tmp_path)
    elf = plan.elf
    _, steps = flash_steps(brd, plan, serial="066AFF495051")
    assert [s.cmd for s in steps] == [[
        "openocd", "-f", "board/st_nucleo_l4.cfg", "-c", "adapter serial {066AFF495051}",
        "-c", f"program {{{elf}}} verify reset exit"]]
    _, steps = flash_steps(brd, plan, probe="pyocd", serial="066AFF495051")
    assert [s.cmd for s in steps] == [[
        "pyocd", "flash", "--uid", "066AFF495051", "--target", "stm32l4r5zitx", str(elf)]]
    _, steps = flash_steps(brd, plan, probe="stlink", serial="066AFF495051")
    assert steps[1].cmd == ["st-flash", "--serial", "066AFF495051", "--reset", "write",
                            str(elf.with_suffix(".bin")), "0x8000000"]
    # not a serial any tool lists, and a Tcl word or a command line would misread
    for bad in ("", "0666 FF", "06}; exit {", "$(id)"):
        with pytest.raises(DeviceError, match="is not a serial number") as err:
            flash_steps(brd, plan, serial=bad)
        assert "\n" not in str(err.value)
    # boards flashed without a debug probe have no probe to choose
    for name, how in (("pico", "BOOTSEL"), ("nano33ble", "--port")):
        brd, plan = _plan(name, tmp_path)
        with pytest.raises(DeviceError, match="leave out --probe-serial") as err:
            flash_steps(brd, plan, serial="066AFF495051")
        assert how in str(err.value)


def test_flash_refuses_a_port_it_would_not_use(tmp_path):
    """`--port` is PlatformIO's upload port: a Nucleo (debug probe) or a Pico (BOOTSEL
    drive) ignored it, so with two boards attached the first probe or drive found was
    flashed, not the board at the port named. Refused, naming the way to choose."""
    for name, how in (("nucleo_f411re", "--probe-serial"), ("pico", "BOOTSEL")):
        brd, plan = _plan(name, tmp_path)
        with pytest.raises(DeviceError, match="leave out --port") as err:
            flash_steps(brd, plan, port="/dev/ttyACM1")
        assert how in str(err.value) and "\n" not in str(err.value)


def test_flash_with_a_probe_serial_openocd_accepts(tmp_path):
    """The real OpenOCD (no ST-LINK here) takes the `adapter serial` command: it fails at
    opening the probe, as without one, not at the command; the line names the serial that
    matched no probe and where to read the attached ones' (it said only "plugged in?")."""
    need_tools("openocd")
    brd = load_board("nucleo_f411re")
    elf = tmp_path / "firmware.elf"
    elf.write_bytes(b"\x7fELF")
    step = flash_steps(brd, build_plan(brd, None, tmp_path), serial="066AFF495051")[1][0]
    step.cmd[-1] = f"program {{{elf}}} verify reset exit"
    with pytest.raises(DeviceError, match="no debug probe found") as err:
        run_step(step, brd, timeout=60)
    msg = str(err.value)
    assert "no probe with serial 066AFF495051" in msg and "st-info --probe" in msg, msg
    assert "\n" not in msg, msg


@pytest.mark.parametrize("board,said", [
    ("nucleo_f411re", None),
    ("pico", "leave out --probe-serial"),
    ("nano33ble", "leave out --probe-serial"),
])
def test_device_flash_probe_serial_option(tmp_path, capsys, board, said):
    """`device flash --probe-serial SERIAL` prints (--dry-run) the tool's command with the
    serial; a board flashed without a debug probe refuses it: one line, exit 2."""
    from tinysift.cli import main

    code = main(["device", "flash", "--board", board, "--probe-serial", "066AFF495051",
                 "--dry-run"])
    out, err = capsys.readouterr()
    if said is None:
        assert code == 0, err
        assert "openocd -f board/st_nucleo_f4.cfg -c 'adapter serial {066AFF495051}' -c " \
               "'program {" in out, out
    else:
        assert code == 2 and said in err, err
        assert len([ln for ln in err.splitlines() if ln.strip()]) == 1, err


def test_the_pico_s_steps_make_its_uf2_from_the_elf(tmp_path, monkeypatch):
    """The Pico's flash: objcopy writes the ELF's raw binary, `python -m
    tinysift.device.uf2 BIN UF2` turns it into the UF2 image (run here for real: 300 bytes
    are two 256-byte UF2 blocks of 512 bytes), and the UF2 is what is copied."""
    import struct
    import sys

    import tinysift.device.flash as flash_mod

    brd, plan = _plan("pico", tmp_path)
    monkeypatch.setattr(flash_mod, "uf2_drive", lambda: None)  # no Pico here (hardware)
    _, steps = flash_steps(brd, plan)
    binary, uf2 = plan.elf.with_suffix(".bin"), plan.elf.with_suffix(".uf2")
    assert [s.cmd for s in steps] == [
        ["arm-none-eabi-objcopy", "-O", "binary", str(plan.elf), str(binary)],
        [sys.executable, "-m", "tinysift.device.uf2", str(binary), str(uf2)],
        ["cp", str(uf2), "<RPI-RP2 drive>/"]]
    binary.parent.mkdir(parents=True, exist_ok=True)
    binary.write_bytes(bytes(range(256)) + b"\x01" * 44)
    run_step(steps[1], brd, timeout=60)
    image = uf2.read_bytes()
    assert len(image) == 2 * 512
    assert struct.unpack_from("<II", image, 0) == (0x0A324655, 0x9E5D5157)  # UF2 magics
    assert image[32:32 + 256] == bytes(range(256))


def test_a_pio_upload_is_the_build_with_its_environment(tmp_path):
    """A pio-upload board's flash is its build plus `-t upload`, in the same environment,
    folder and offline mode; `--upload-port` only when a port is given (else PlatformIO
    finds the board)."""
    brd, plan = _plan("nano33ble", tmp_path)
    upload, steps = flash_steps(brd, plan)
    assert steps == [] and upload.cmd == [*plan.cmd, "-t", "upload"]
    assert (upload.env, upload.build_dir, upload.offline) == (plan.env, plan.build_dir,
                                                              plan.offline)
    assert plan.env  # the PlatformIO core folder and the rest travel with the upload


def test_a_profile_without_the_probe_s_settings_is_refused(tmp_path):
    """A probe board whose profile lacks the OpenOCD script or the pyOCD target: one line
    naming the missing key, not a tool run with an empty argument."""
    from dataclasses import replace

    brd, plan = _plan("nucleo_f411re", tmp_path)
    with pytest.raises(DeviceError, match=r"no OpenOCD script in its profile \(openocd_config"):
        flash_steps(replace(brd, openocd_config=""), plan, probe="openocd")
    with pytest.raises(DeviceError, match=r"no pyOCD target in its profile \(pyocd_target"):
        flash_steps(replace(brd, pyocd_target=""), plan, probe="pyocd")


@pytest.mark.parametrize(("output", "told"), [
    # OpenOCD: its own Error: lines first, the last of them
    ("Info : clock speed 2000 kHz\nError: open failed\nError: init mode failed (unable to "
     "connect to the target)\nInfo : done\n",
     "Error: init mode failed (unable to connect to the target)"),
    # st-flash's own words, capitalised: still no probe
    ("st-flash 1.7.0\nCouldn't find any ST-Link devices\n",
     "no debug probe found (Couldn't find any ST-Link devices)"),
    # no Error: line: the last line with a failure word ("not found" too)
    ("reading x.bin\nx.bin: file not found\nbye\n", "x.bin: file not found"),
    ("something odd\nand more\n", "and more"),
    ("\n  \n", "no output"),
    # the failure words in any case
    ("writing 0x08000000\nFlash write FAILED\nbye\n", "Flash write FAILED"),
    # the other tools' words for no probe (NO_PROBE)
    ("Error: unable to find a matching CMSIS-DAP device\n",
     "no debug probe found (Error: unable to find a matching CMSIS-DAP device)"),
    ("No connected debug probes\n", "no debug probe found (No connected debug probes)"),
    ("No device found\n", "no debug probe found (No device found)"),
])
def test_a_flash_tool_s_failure_is_told_by_its_line(output, told):
    """_failure: the one line a flash tool's failure is reported by."""
    from tinysift.device.flash import _failure

    assert _failure(output) == told


def test_a_failing_step_is_one_line_whatever_went_wrong(tmp_path):
    """run_step on real subprocesses: a tool that is not there, one that runs past the
    time, one killed by a signal (a negative return code) and one that fails with its error
    on stdout are each one DeviceError line; a step that needs no probe (objcopy) gets no
    hint about plugging the board in."""
    import sys

    brd = load_board("nucleo_f411re")
    with pytest.raises(DeviceError, match=r"no-such-objcopy not found$"):
        run_step(FlashStep("raw image", [str(tmp_path / "no-such-objcopy")]), brd)
    with pytest.raises(DeviceError, match=r"^raw image took over 1 s: is the board connected"):
        run_step(FlashStep("raw image", [sys.executable, "-c", "import time; time.sleep(30)"]),
                 brd, timeout=1)
    with pytest.raises(DeviceError, match="^raw image failed: no output$"):
        run_step(FlashStep("raw image", ["sh", "-c", "kill -9 $$"]), brd)
    with pytest.raises(DeviceError) as err:
        run_step(FlashStep("raw image", ["sh", "-c", "echo 'objcopy: error: x.elf: file format "
                                                     "not recognized'; exit 1"]), brd)
    assert str(err.value) == ("raw image failed: objcopy: error: x.elf: file format not "
                              "recognized")


def test_a_probe_serial_failure_other_than_no_probe_gets_the_usb_hint(tmp_path):
    """With --probe-serial, only a "no probe" failure says no probe of that serial answered;
    another failure of the probe tool (here a stand-in command under the installed
    OpenOCD's tool check) gets the usual is-it-plugged-in hint."""
    need_tools("openocd")
    step = FlashStep("flash with OpenOCD",
                     ["sh", "-c", "echo 'Error: target voltage may be too low' >&2; exit 1"],
                     tool="openocd", serial="066AFF495051")
    with pytest.raises(DeviceError) as err:
        run_step(step, load_board("nucleo_f411re"))
    msg = str(err.value)
    assert msg.startswith("flash with OpenOCD failed: Error: target voltage may be too low; "
                          "is nucleo_f411re plugged in over USB"), msg
    assert "no probe with serial" not in msg


def test_missing_flash_tool_is_one_line(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    step = FlashStep("flash with pyOCD", ["pyocd", "flash", "x.elf"], tool="pyocd")
    with pytest.raises(DeviceError) as err:
        run_step(step, load_board("nucleo_f411re"))
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("pyocd not found: pip install pyocd")
    # the chip's pack is named (it said "pyocd pack install TARGET")
    target = load_board("nucleo_f411re").pyocd_target
    assert target and f"pyocd pack install {target})" in msg and "TARGET" not in msg


@pytest.mark.parametrize(("probe", "exe", "install"), [
    ("openocd", "openocd", "sudo apt-get install openocd"),
    ("pyocd", "pyocd", "pip install pyocd (and the chip's pack: pyocd pack install "
                       "stm32f411retx)"),
    ("stlink", "st-flash", "sudo apt-get install stlink-tools"),
])
def test_each_probe_s_missing_tool_names_how_to_install_it(probe, exe, install, tmp_path,
                                                            monkeypatch):
    """No tools on PATH: each probe's flash step is refused in one line naming the tool, how
    to install it and the other probes to choose from."""
    brd, plan = _plan("nucleo_f411re", tmp_path)
    step = flash_steps(brd, plan, probe=probe)[1][-1]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(DeviceError) as err:
        run_step(step, brd)
    assert str(err.value) == (f"{exe} not found: {install} (or choose another --probe: "
                              "openocd, pyocd, stlink)")


def test_a_missing_objcopy_names_its_package(tmp_path, monkeypatch):
    """The raw image the Pico's UF2 (and st-flash) is made from comes from the system's
    arm-none-eabi-objcopy, which stock PlatformIO's own toolchain does not put on PATH:
    missing, the line names the package to install (it said only "arm-none-eabi-objcopy not
    found", where the module promises what to install)."""
    brd, plan = _plan("pico", tmp_path)
    step = flash_steps(brd, plan)[1][0]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(DeviceError) as err:
        run_step(step, brd)
    assert str(err.value) == ("arm-none-eabi-objcopy not found: sudo apt-get install "
                              "binutils-arm-none-eabi")


@pytest.mark.parametrize(("probe", "exe", "what", "says"), [
    ("pyocd", "pyocd", "flash with pyOCD", "No connected debug probes"),
    ("stlink", "st-flash", "flash with st-flash", "Couldn't find any ST-Link devices"),
])
def test_no_probe_of_the_serial_asked_for_is_said_for_every_tool(probe, exe, what, says,
                                                                 tmp_path, monkeypatch):
    """pyOCD and st-flash with --probe-serial, as OpenOCD: when no probe answers, the line
    names the serial and where to read the attached probes' serials. A stand-in for the tool
    (not installed here, and no probe attached) prints its words for no probe."""
    brd, plan = _plan("nucleo_f411re", tmp_path)
    step = flash_steps(brd, plan, probe=probe, serial="066AFF495051")[1][-1]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / exe).write_text(f"#!/bin/sh\necho \"{says}\" >&2\nexit 1\n")
    (bin_dir / exe).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    with pytest.raises(DeviceError) as err:
        run_step(step, brd)
    assert str(err.value) == (f"{what} failed: no debug probe found ({says}); no probe with "
                              "serial 066AFF495051 answered: check --probe-serial against the "
                              "serials `st-info --probe` or `pyocd list` shows (or leave it "
                              "out to take the one attached)")


def test_flash_without_a_probe_fails_in_one_line(tmp_path):
    """A real OpenOCD run (tools/setup.sh installs it) with no ST-LINK attached (as on these
    machines)."""
    need_tools("openocd")
    brd = load_board("nucleo_f411re")
    elf = tmp_path / "firmware.elf"
    elf.write_bytes(b"\x7fELF")
    step = flash_steps(brd, build_plan(brd, None, tmp_path))[1][0]
    step.cmd[-1] = f"program {{{elf}}} verify reset exit"
    with pytest.raises(DeviceError) as err:
        run_step(step, brd, timeout=60)
    msg = str(err.value)
    assert "\n" not in msg, msg
    assert msg.startswith("flash with OpenOCD failed: "), msg
    assert "no debug probe found" in msg and "plugged in over USB" in msg, msg
    assert "serial" not in msg, msg  # no serial was asked for


# ---- the user's profiles (calibration) --------------------------------------------------------

def test_user_profile_overrides_the_project_profile(tmp_path):
    assert user_boards_dir() == tmp_path / "config" / "boards"
    before = load_board("nucleo_f411re")
    assert before.current_is_estimate and not before.user_profile
    path = save_user_board("nucleo_f411re", {"active_current_ma": 12.5,
                                             "current_is_estimate": False,
                                             "current_source": 'measured "here"'},
                           header="calibrated")
    assert path.parent == user_boards_dir()
    after = load_board("nucleo_f411re")
    assert after.active_current_ma == 12.5 and not after.current_is_estimate
    assert after.current_source == 'measured "here"' and after.user_profile
    assert after.clock_hz == before.clock_hz  # the rest is the project's
    # a later change (calibrate's current, then a marker pin) keeps the earlier ones
    save_user_board("nucleo_f411re", {"marker_pin": "D9"})
    again = load_board("nucleo_f411re")
    assert again.marker_pin == "D9" and again.active_current_ma == 12.5
    with pytest.raises(TinysiftError, match="not board profile keys"):
        save_user_board("nucleo_f411re", {"colour": "blue"})


def test_a_profile_change_that_does_not_load_leaves_the_profile_as_it_was(tmp_path):
    """save_user_board wrote the merged profile, then checked that it loads: a change that
    failed the check (a negative RAM) left a profile that stopped every later command on
    the board. The profile that loaded is put back (none where there was none)."""
    path = user_boards_dir() / "nucleo_f411re.toml"
    with pytest.raises(TinysiftError):
        save_user_board("nucleo_f411re", {"ram_bytes": -1})
    assert not path.exists()
    save_user_board("nucleo_f411re", {"active_current_ma": 12.5}, header="calibrated")
    before = path.read_bytes()
    with pytest.raises(TinysiftError):
        save_user_board("nucleo_f411re", {"ram_bytes": -1})
    assert path.read_bytes() == before
    assert load_board("nucleo_f411re").active_current_ma == 12.5


def test_a_profile_that_cannot_be_written_names_the_fix(tmp_path, monkeypatch):
    """A config folder that cannot be written (a read-only home; here a path through a
    file) ended `device calibrate` in 'unexpected NotADirectoryError' (exit 1)."""
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("TINYSIFT_CONFIG_DIR", str(tmp_path / "a-file"))
    with pytest.raises(TinysiftError, match=r"cannot write your profile of nucleo_f411re "
                                            r"into .*a-file/boards: Not a directory; set "
                                            r"TINYSIFT_CONFIG_DIR to a writable folder"):
        save_user_board("nucleo_f411re", {"active_current_ma": 12.5})


def test_calibrate_with_the_users_meter():
    from tinysift.device.calibrate import calibrate

    cal = calibrate("nucleo_f411re", current_ma=15.0)
    assert cal.estimated_ma == 10.0 and cal.ratio == pytest.approx(1.5)
    assert not cal.implausible
    assert load_board("nucleo_f411re").active_current_ma == 15.0
    # 30x the estimate either way is plausible; beyond it, the report warns
    for current, implausible in ((300.0, False), (301.0, True), (0.5, False), (0.3, True)):
        assert calibrate("nucleo_f411re", current_ma=current).implausible is implausible
    cal = calibrate("nucleo_f411re", current_ma=12.0)  # against the project's estimate again
    assert cal.estimated_ma == 10.0
    with pytest.raises(TinysiftError, match="emulated"):
        calibrate("qemu-netduinoplus2", current_ma=1.0)
    with pytest.raises(TinysiftError, match="exactly one"):
        calibrate("nucleo_f411re")
    # inf passed as positive (every later energy inf); 1e-9 mA was stored rounded to 0, a
    # profile that no longer loaded
    for bad in (math.inf, 1e-9, math.nan, 0.0):
        with pytest.raises(TinysiftError, match="--current-ma must be a current in mA of at "
                                                "least 0.0001"):
            calibrate("nucleo_f411re", current_ma=bad)
    assert load_board("nucleo_f411re").active_current_ma == 12.0


def test_calibrate_refuses_a_meter_reading_and_a_power_monitor_together():
    """--joulescope and --current-ma together are refused as neither is: one current goes
    into the profile, and which was meant is the user's to say; refused by the check the CLI
    runs before any port or monitor is opened."""
    from tinysift.device.calibrate import check_calibration

    with pytest.raises(TinysiftError, match=r"pass exactly one of --joulescope \(measure\) "
                                            r"and --current-ma X"):
        check_calibration(load_board("nucleo_f411re"), "/dev/null", True, 3.0, None)


def test_calibrate_and_a_device_run_refuse_their_inputs_before_any_port_or_monitor(tmp_path):
    """The library refuses what the CLI refuses, with the same functions the CLI calls
    before it loads the Joulescope's driver (they were twin checks, the library's without
    --ms or the run's monitor at all): a workload length nothing runs or the firmware
    refuses, a monitor without the board's port, and a device run measured on the emulator
    (it measured nothing) or on a real board without its port; nothing is written."""
    from tinysift.device.calibrate import calibrate
    from tinysift.stages.device import run_on_device

    class Monitor:
        name = "joulescope"

    with pytest.raises(TinysiftError, match="without --port nothing runs"):
        calibrate("nucleo_f411re", current_ma=3.0, ms=500)
    with pytest.raises(TinysiftError, match=r"--ms must be 1\.\.600000"):
        calibrate("nucleo_f411re", port="/dev/null", current_ma=3.0, ms=600_001)
    with pytest.raises(TinysiftError, match="--joulescope needs --port"):
        calibrate("nucleo_f411re", monitor=Monitor())
    assert load_board("nucleo_f411re").active_current_ma == 10.0  # no profile written
    for board, port, message in (("qemu-mps2-an386", None, "is emulated"),
                                 ("nucleo_f446re", None, "pass the board's serial port")):
        with pytest.raises(TinysiftError, match=message):  # before the (missing) export
            run_on_device(tmp_path / "no-run", board, port=port, monitor=Monitor())
    assert not (tmp_path / "no-run").exists()


def test_calibration_length_range_is_the_firmwares():
    """The host's --ms range is the firmware's (a host limit above it sent a length the board
    refuses once connected; one below it refused what the board runs)."""
    import re

    from tinysift.device.calibrate import MAX_CALIB_MS

    header = (Path(__file__).resolve().parents[1] / "firmware" / "lib" / "tsproto" / "src"
              / "ts_protocol.h").read_text()
    found = re.search(r"#define TS_PROTO_MAX_CALIB_MS (\d+)u", header)
    assert found and int(found.group(1)) == MAX_CALIB_MS


def test_calibrate_takes_the_range_ends_and_keeps_four_decimals():
    """The documented ends are taken: a reading of exactly 0.0001 mA (the least a profile
    keeps) and exactly 3,000 mA (the most a board draws), 3,000.5 refused; a workload of 0 ms
    is refused, 1 ms and 600,000 ms are the firmware's range. The profile keeps 4 decimals of
    mA, says the current is measured, and a new calibration names the one it replaces (the
    estimate stays the project profile's)."""
    from tinysift.device.calibrate import calibrate, check_calibration

    brd = load_board("nucleo_f411re")
    for ms in (1, 600_000):
        check_calibration(brd, "/dev/null", False, 3.0, ms)
    with pytest.raises(TinysiftError, match=r"--ms must be 1\.\.600000 .*not 0"):
        check_calibration(brd, "/dev/null", False, 3.0, 0)
    first = calibrate("nucleo_f411re", current_ma=0.0001)
    assert first.earlier is None and load_board("nucleo_f411re").active_current_ma == 0.0001
    top = calibrate("nucleo_f411re", current_ma=3000.0)
    assert top.earlier[0] == 0.0001 and top.earlier[1].startswith("measured: ")
    with pytest.raises(TinysiftError, match="--current-ma 3000.5 is more than a "
                                            "microcontroller board draws"):
        calibrate("nucleo_f411re", current_ma=3000.5)
    cal = calibrate("nucleo_f411re", current_ma=12.34567)
    assert cal.estimated_ma == 10.0 and cal.earlier[0] == 3000.0
    assert "measured: tinysift device calibrate" in cal.earlier[1]
    after = load_board("nucleo_f411re")
    assert after.active_current_ma == 12.3457 and not after.current_is_estimate
    assert "1.235x the project profile's 10 mA" in after.current_source



def test_a_board_of_your_own_is_calibrated_against_its_first_estimate():
    """A board with no project profile (only the user's) is measured against the current
    its profile gave before the first calibration, which the profile keeps: the second
    calibration's ratio and its implausibility check were taken against the first
    calibration's reading (5 mA then 6 mA read "1.200x" of 5 mA, not 0.600x of 10 mA; 200 mA
    read as 33x, not 20x)."""
    from tinysift.device.calibrate import calibrate

    project = (ROOT / "boards" / "nucleo_f411re.toml").read_text()
    user_boards_dir().mkdir(parents=True, exist_ok=True)
    (user_boards_dir() / "myboard.toml").write_text(project)
    with pytest.raises(TinysiftError, match=r"myboard\.toml: name = 'nucleo_f411re', but the "
                                            r"file is myboard\.toml; set name = \"myboard\""):
        load_board("myboard")  # a copy that kept its name: calibrate wrote the F411's profile
    (user_boards_dir() / "myboard.toml").write_text(
        project.replace('name = "nucleo_f411re"', 'name = "myboard"'))
    assert load_board("myboard").active_current_ma == 10.0
    first = calibrate("myboard", current_ma=5.0)
    assert first.estimated_ma == 10.0 and first.ratio == 0.5
    second = calibrate("myboard", current_ma=6.0)
    assert second.estimated_ma == 10.0 and second.earlier[0] == 5.0
    mine = load_board("myboard")
    assert mine.active_current_ma == 6.0 and mine.estimated_current_ma == 10.0
    assert "0.600x your profile's uncalibrated 10 mA" in mine.current_source
    assert calibrate("myboard", current_ma=200.0).ratio == 20.0
    # a project board keeps no estimate in the user's profile: boards/ has it
    calibrate("nucleo_f411re", current_ma=12.0)
    assert "estimated_current_ma" not in user_board_keys("nucleo_f411re")

# ---- a profile's values are checked when it is loaded -----------------------------------------

@pytest.mark.parametrize(("text", "message"), [
    ("active_current_ma = [", r"is not valid TOML \(.*\); fix the file \(see "
                              r"boards/qemu-mps2-an386\.toml\), or delete it to use the "
                              r"project's profile$"),
    ("colour = 1", r"unknown keys colour; remove them \(the keys are those of "
                   r"boards/qemu-mps2-an386\.toml\), or delete it to use the project's "
                   r"profile$"),
])
def test_a_broken_user_profile_names_its_fix(text, message):
    """A user profile that is not TOML, or has a key no profile has, stopped every command
    that lists the boards with an error that named no fix."""
    folder = user_boards_dir()
    folder.mkdir(parents=True)
    (folder / "nucleo_f411re.toml").write_text(text + "\n")
    with pytest.raises(TinysiftError, match=message) as err:
        list_boards()
    assert str(folder / "nucleo_f411re.toml") in str(err.value)


@pytest.mark.parametrize(("line", "message"), [
    ('usb_ids = "0483:374b"', r"usb_ids = '0483:374b' is not a list of \"vid:pid\""),
    ('usb_ids = ["0483-374b"]', r"usb_ids = \['0483-374b'\] is not a list"),
    ('active_current_ma = "10"', r"active_current_ma = '10' is not a number \(no quotes\)"),
    ("active_current_ma = -1.0", "active_current_ma = -1.0 is not a positive number"),
    ("active_current_ma = inf", "active_current_ma = inf is not a positive number"),
    ("supply_v = nan", "supply_v = nan is not a positive number"),
    ("clock_hz = 0", "clock_hz = 0 is not a positive whole number"),
    ("clock_hz = 1e8", r"clock_hz = 100000000.0 is not a whole number"),
    ('ram_bytes = "128K"', "ram_bytes = '128K' is not a whole number"),
    ("emulated = 0", "emulated = 0 is not true or false"),
    ('flash_method = "jtag"', "flash_method = 'jtag' is not one of probe, uf2, pio-upload"),
    ('counter = "cyccnt"', "counter = 'cyccnt' is not one of dwt, systick-icount"),
    ("counter_hz = -5", "counter_hz = -5 is not 0 or more"),
    ("qemu_serial_index = -1", "qemu_serial_index = -1 is not 0 or more"),
    # 0 V or 0 mA made every energy 0 mJ
    ("supply_v = 0.0", "supply_v = 0.0 is not a positive number"),
    # a fifth hex digit is no VID:PID (the pattern matched its start only)
    ('usb_ids = ["0483:374b0"]', r"usb_ids = \['0483:374b0'\] is not a list"),
    ("description = 3", "description = 3 is not a string"),
])
def test_a_bad_profile_value_is_refused_naming_file_key_and_fix(line, message):
    """A quoted number, a string for a list, a zero clock or an unknown flash method used to
    load and fail later (or divide by zero, or count a string's characters as USB ids)."""
    folder = user_boards_dir()
    folder.mkdir(parents=True)
    (folder / "nucleo_f411re.toml").write_text(line + "\n")
    with pytest.raises(TinysiftError, match=message) as err:
        load_board("nucleo_f411re")
    text = str(err.value)
    assert str(folder / "nucleo_f411re.toml") in text and "; set " in text
    assert "\n" not in text


def test_a_profile_missing_keys_names_them(tmp_path, monkeypatch):
    import tinysift.boards as boards_mod

    monkeypatch.setattr(boards_mod, "boards_dir", lambda: tmp_path)
    (tmp_path / "mine.toml").write_text('name = "mine"\nclock_hz = 10\n')
    with pytest.raises(TinysiftError, match=r"mine.toml: missing keys .*core.*counter"):
        load_board("mine")


def test_the_keys_that_may_be_zero_load_at_zero():
    """qemu_serial_index (the first -serial) and counter_hz (the counter counts core cycles)
    are 0 by default, and a profile that says so loads."""
    folder = user_boards_dir()
    folder.mkdir(parents=True)
    (folder / "nucleo_f411re.toml").write_text("qemu_serial_index = 0\ncounter_hz = 0\n")
    board = load_board("nucleo_f411re")
    assert board.qemu_serial_index == 0 and board.counter_rate == board.clock_hz


def test_a_broken_profile_of_the_users_own_board_is_not_told_to_use_the_projects():
    """A user profile of a board the project has no profile of: deleting it leaves no
    profile to use, so its fix is only to mend the file."""
    folder = user_boards_dir()
    folder.mkdir(parents=True)
    (folder / "my_board.toml").write_text("clock_hz = [\n")
    with pytest.raises(TinysiftError, match=r"my_board\.toml is not valid TOML") as err:
        load_board("my_board")
    assert str(err.value).endswith("(see boards/qemu-mps2-an386.toml)")


# (clock Hz, RAM bytes, flash bytes) of every project profile, from the chips' documents: the
# memory plan's fit checks and every seconds and energy figure rest on them
DOCUMENTED = {
    # STM32F401xE datasheet DS10086: 84 MHz, 96 KB SRAM, 512 KB flash
    "nucleo_f401re": (84_000_000, 96 * 1024, 512 * 1024),
    # STM32F411xE DS10314: 100 MHz, 128 KB SRAM, 512 KB flash
    "nucleo_f411re": (100_000_000, 128 * 1024, 512 * 1024),
    # STM32F446xE DS10693: 180 MHz, 128 KB SRAM (112 + 16), 512 KB flash
    "nucleo_f446re": (180_000_000, 128 * 1024, 512 * 1024),
    # STM32L4R5xI DS12023: 120 MHz, 640 KB SRAM, 2 MB flash
    "nucleo_l4r5zi": (120_000_000, 640 * 1024, 2048 * 1024),
    # STM32F746xG DS10916: 216 MHz, 320 KB SRAM (DTCM included), 1 MB flash
    "disco_f746ng": (216_000_000, 320 * 1024, 1024 * 1024),
    # STM32F405xx DS8626: 168 MHz, 1 MB flash; the 128 KB main SRAM (QEMU maps 192 KB)
    "qemu-netduinoplus2": (168_000_000, 128 * 1024, 1024 * 1024),
    # nRF52840 PS v1.7: 64 MHz, 256 KB RAM; flash: the app's 960 KB of 1 MB (docs/boards.md)
    "nano33ble": (64_000_000, 256 * 1024, 960 * 1024),
    # RP2040 datasheet: 264 KB SRAM, the SDK's 125 MHz; the Pico's 2 MB QSPI flash
    "pico": (125_000_000, 264 * 1024, 2048 * 1024),
    # ESP32-S3 datasheet: 240 MHz, 512 KB SRAM; flash: the 1 MB app partition (docs/boards.md)
    "esp32-s3": (240_000_000, 512 * 1024, 1024 * 1024),
    # MPS2 AN386 / AN500: 25 MHz FPGA clock, 4 MB SSRAM, 4 MB code memory (qemu_mps2.ld)
    "qemu-mps2-an386": (25_000_000, 4 * 1024 * 1024, 4 * 1024 * 1024),
    "qemu-mps2-an500": (25_000_000, 4 * 1024 * 1024, 4 * 1024 * 1024),
}


def test_every_profile_has_its_chip_s_documented_clock_ram_and_flash():
    """A board's RAM or flash one figure off passes or refuses an export the board cannot
    hold; a clock off scales every second and millijoule. The offline-built STM32 boards'
    profiles are also what their images link against (the platform's board files)."""
    import json

    got = {b.name: (b.clock_hz, b.ram_bytes, b.flash_bytes) for b in list_boards()}
    assert got == DOCUMENTED
    for path in sorted((ROOT / "boards" / "platform-stm32" / "boards").glob("*.json")):
        spec = json.loads(path.read_text())
        linked = (int(spec["build"]["f_cpu"].rstrip("L")), spec["upload"]["maximum_ram_size"],
                  spec["upload"]["maximum_size"])
        assert linked == DOCUMENTED[path.stem], path.name


def test_every_project_profile_loads_and_upper_case_usb_ids_still_do():
    assert len(list_boards()) >= 11
    folder = user_boards_dir()
    folder.mkdir(parents=True)
    (folder / "pico.toml").write_text('usb_ids = ["2E8A:000A"]\n')
    assert load_board("pico").usb_ids == ["2E8A:000A"]


# ---- the counter's rate ------------------------------------------------------------------------

def _systick_hz(builder: str) -> int:
    """TS_SYSTICK_HZ as an emulated platform's builder defines it."""
    import re

    text = (ROOT / "boards" / builder / "builder" / "main.py").read_text()
    return int(re.search(r'"TS_SYSTICK_HZ", "(\d+)u"', text).group(1))


def test_emulated_boards_count_at_their_profile_s_clock():
    """The emulated boards' counter (SysTick under -icount) runs at TS_SYSTICK_HZ, which the
    firmware reports as `hz`: it must be the profile's clock, so their seconds and energy are
    what they were when the host divided by `clock_hz` (to the last bit)."""
    from tinysift.device.energy import estimate

    rates = {"qemu-mps2-an386": _systick_hz("platform-qemu"),
             "qemu-mps2-an500": _systick_hz("platform-qemu"),
             "qemu-netduinoplus2": _systick_hz("platform-stm32")}
    for name, hz in rates.items():
        b = load_board(name)
        assert b.counter == "systick-icount" and b.counter_rate == b.clock_hz == hz
        for cycles in (0, 1, 2_500_000, 987_654_321):
            got = estimate(b, cycles, hz)
            assert got.seconds == cycles / b.clock_hz  # the old formulas, exactly
            assert got.energy_mj == b.supply_v * b.active_current_ma * cycles / b.clock_hz
            assert estimate(b, cycles) == got  # an old firmware without `hz`


def test_the_pico_s_timer_counts_microseconds():
    """The Arduino port's Pico counter is micros() (ts_cycles_hz() 1 MHz): without a device
    report the profile's rate is that, not the 125 MHz core clock."""
    from tinysift.device.energy import estimate

    pico = load_board("pico")
    assert pico.counter == "timer" and pico.counter_rate == 1_000_000
    assert pico.clock_hz == 125_000_000
    assert estimate(pico, 1_000_000).seconds == 1.0
    assert estimate(pico, 1_000_000).energy_mj == pytest.approx(3.3 * 24.0)
    assert "1000000u" in (ROOT / "boards" / "ports" / "arduino" /
                          "ts_platform_arduino.cpp").read_text()


def test_an_estimate_counts_at_the_rate_the_device_reports():
    """A device that reports its counter's rate (`@boot hz=`) is counted at that rate, not
    the profile's: 50 million counts at 50 MHz on a 100 MHz profile are 1 s and V x I x 1 s."""
    from tinysift.boards import load_board
    from tinysift.device.energy import estimate

    f411 = load_board("nucleo_f411re")
    assert f411.counter_rate == 100_000_000
    got = estimate(f411, 50_000_000, 50_000_000)
    assert got.cycles == 50_000_000 and got.seconds == 1.0
    assert got.energy_mj == pytest.approx(f411.supply_v * f411.active_current_ma)
    assert got.energy_kind == "estimated"
    assert estimate(f411, 50_000_000).seconds == 0.5


def test_a_real_board_where_an_emulated_one_is_needed_names_the_emulated_ones():
    """The commands that start QEMU themselves refuse a real board and list the boards they
    can run on: the emulated profiles, none of the real ones."""
    from tinysift.boards import check_emulated_board

    assert check_emulated_board("qemu-netduinoplus2").emulated
    with pytest.raises(TinysiftError, match=r"--board pico is a real board; .*choose one of "
                                            r"qemu-mps2-an386, qemu-mps2-an500, "
                                            r"qemu-netduinoplus2 \(a real board"):
        check_emulated_board("pico")


# ---- flashing details: UF2 images, Tcl quoting, the BOOTSEL drive, image sizes ----------------

def test_uf2_refuses_an_empty_image_and_an_unaligned_base(tmp_path):
    import re
    import struct
    import subprocess
    import sys

    from tinysift.device.uf2 import RP2040_FLASH, bin_to_uf2

    blocks = bin_to_uf2(b"\x01" * 300)
    assert len(blocks) == 2 * 512
    assert struct.unpack_from("<I", blocks, 512 + 12)[0] == RP2040_FLASH + 256
    with pytest.raises(TinysiftError, match="the raw image is empty"):
        bin_to_uf2(b"")
    with pytest.raises(TinysiftError, match=r"--base 0x10000010 is not a multiple of 256.*"
                                            r"0x10000000"):
        bin_to_uf2(b"\x01", base=RP2040_FLASH + 16)
    # the command line the flash step runs: one line, status 2, no image written
    (tmp_path / "empty.bin").write_bytes(b"")
    (tmp_path / "one.bin").write_bytes(b"\x01")
    for name, extra, want in (("empty.bin", [], "empty"),
                              ("one.bin", ["--base", "0x10000004"], "not a multiple")):
        out = tmp_path / (name + ".uf2")
        proc = subprocess.run([sys.executable, "-m", "tinysift.device.uf2",
                               str(tmp_path / name), str(out), *extra],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and want in proc.stderr and not out.exists()
    # a missing image or output folder, a base or family outside 32 bits: tracebacks before
    for args, want in (([str(tmp_path / "none.bin"), str(tmp_path / "x.uf2")],
                        "cannot read .*none.bin: No such file"),
                       ([str(tmp_path / "one.bin"), str(tmp_path / "no" / "x.uf2")],
                        "cannot write .*x.uf2: No such file"),
                       ([str(tmp_path / "one.bin"), str(tmp_path / "x.uf2"), "--base",
                         "0x100000000"], "outside the 32-bit address space"),
                       ([str(tmp_path / "one.bin"), str(tmp_path / "x.uf2"), "--family",
                         "-1"], "is not a 32-bit family ID")):
        proc = subprocess.run([sys.executable, "-m", "tinysift.device.uf2", *args],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert re.search(want, proc.stderr), proc.stderr


def test_uf2_blocks_hold_every_field_the_spec_names():
    """Every 512-byte block, field by field, as github.com/microsoft/uf2 lays it out: the two
    start magics, flags 0x2000 (family ID present), the target address (256 bytes a block on
    from the base), payload size 256 (the last block too: its payload zero padded), block
    number from 0, the block count, the family ID, the payload and its zero padding to 476
    bytes, the end magic. An image of whole pages takes no extra block; the last 256-byte
    page of the 32-bit space and the largest 32-bit family ID are taken, one past refused."""
    import struct

    from tinysift.device.uf2 import bin_to_uf2

    data = bytes(range(256)) * 2 + b"\xaa" * 10  # two whole pages and 10 bytes
    image = bin_to_uf2(data, base=0x20000000, family=0x12345678)
    assert len(image) == 3 * 512
    for n in range(3):
        block = image[n * 512:(n + 1) * 512]
        assert struct.unpack_from("<8I", block) == (
            0x0A324655, 0x9E5D5157, 0x2000, 0x20000000 + 256 * n, 256, n, 3, 0x12345678)
        payload = data[n * 256:(n + 1) * 256]
        assert block[32:32 + len(payload)] == payload
        assert block[32 + len(payload):508] == bytes(476 - len(payload))
        assert struct.unpack_from("<I", block, 508)[0] == 0x0AB16F30
    assert len(bin_to_uf2(bytes(512))) == 2 * 512  # whole pages: no empty third block
    top = bin_to_uf2(b"\x01" * 300, base=2**32 - 512)  # its last page is the space's last
    assert struct.unpack_from("<I", top, 512 + 12)[0] == 2**32 - 256
    with pytest.raises(TinysiftError, match="outside the 32-bit address space"):
        bin_to_uf2(b"\x01" * 300, base=2**32 - 256)
    assert struct.unpack_from("<I", bin_to_uf2(b"\x01", family=2**32 - 1), 28)[0] == 2**32 - 1
    with pytest.raises(TinysiftError, match="is not a 32-bit family ID"):
        bin_to_uf2(b"\x01", family=2**32)


def test_uf2_refuses_a_base_below_zero_and_its_command_line_takes_decimal(tmp_path):
    """A negative base (a multiple of 256, so not refused as unaligned) is outside the 32-bit
    address space as well: said in one line naming the RP2040's flash, not struct.error's
    traceback. The command line reads --base and --family as Python integers, decimal as
    well as 0x hex (int(v, 0)), not decimal digits read as hex."""
    import struct

    from tinysift.device.uf2 import bin_to_uf2, main

    with pytest.raises(TinysiftError, match=r"--base -0x100 puts the 1-byte image outside "
                                            r"the 32-bit address space.*0x10000000"):
        bin_to_uf2(b"\x01", base=-256)
    (tmp_path / "one.bin").write_bytes(b"\x01")
    main([str(tmp_path / "one.bin"), str(tmp_path / "one.uf2"), "--base", str(0x20000000),
          "--family", str(0x12345678)])
    image = (tmp_path / "one.uf2").read_bytes()
    assert struct.unpack_from("<I", image, 12)[0] == 0x20000000  # the target address
    assert struct.unpack_from("<I", image, 28)[0] == 0x12345678  # the family ID


def test_openocd_program_path_is_one_tcl_word(tmp_path):
    """OpenOCD's -c is Tcl: an unquoted path with a space (or $, [ ]) splits or substitutes."""
    brd = load_board("nucleo_f411re")
    folder = tmp_path / "my runs"
    _, steps = flash_steps(brd, build_plan(brd, None, folder))
    elf = folder.resolve() / "build" / "nucleo_f411re" / "firmware.elf"
    assert steps[0].cmd[-1] == f"program {{{elf}}} verify reset exit"


def test_the_bootsel_drive_is_looked_up_when_the_copy_runs(tmp_path, monkeypatch):
    """The Pico is often put in BOOTSEL mode while the firmware builds: the drive is looked
    up at copy time (the stand-in below is for the mounted drive, hardware)."""
    import tinysift.device.flash as flash_mod

    brd, plan = _plan("pico", tmp_path)
    monkeypatch.setattr(flash_mod, "uf2_drive", lambda: None)
    _, steps = flash_steps(brd, plan)  # no drive yet
    copy = steps[-1]
    assert copy.uf2_copy and copy.cmd[-1] == "<RPI-RP2 drive>/"
    with pytest.raises(DeviceError, match="no RPI-RP2 drive mounted: hold BOOTSEL"):
        run_step(copy, brd)
    drive = tmp_path / "RPI-RP2"
    drive.mkdir()
    Path(copy.cmd[1]).parent.mkdir(parents=True, exist_ok=True)
    Path(copy.cmd[1]).write_bytes(b"uf2")
    monkeypatch.setattr(flash_mod, "uf2_drive", lambda: drive)  # plugged in since
    run_step(copy, brd)
    assert (drive / "firmware.uf2").read_bytes() == b"uf2"
    # the drive gone while copying (the Pico unplugged or rebooted): a traceback before
    monkeypatch.setattr(flash_mod, "uf2_drive", lambda: tmp_path / "gone" / "RPI-RP2")
    with pytest.raises(DeviceError, match=r"copy the UF2 to the Pico in BOOTSEL mode failed: "
                                          r"copying firmware.uf2 onto .*RPI-RP2: No such file"
                                          r".*hold BOOTSEL while plugging it in"):
        run_step(copy, brd)


def test_image_sizes_are_unknown_without_a_size_tool(tmp_path, monkeypatch):
    """A missing `arm-none-eabi-size` gave sizes 0, printed as `flash 0 B`."""
    import subprocess

    from tinysift.device.build import BuildResult, describe_sizes, elf_sizes

    brd = load_board("nucleo_f411re")
    need_tools("arm-none-eabi-gcc")
    src = tmp_path / "x.c"
    src.write_text("int table[100] = {1}; int zeros[50];\nint f(void) { return 1; }\n")
    obj = tmp_path / "x.o"
    subprocess.run(["arm-none-eabi-gcc", "-c", "-O1", str(src), "-o", str(obj)], check=True)
    flash, ram = elf_sizes(obj, brd)
    assert flash >= 400 and ram >= 600
    assert describe_sizes(BuildResult(obj, flash, ram, "", 0.0), brd).startswith(
        f"flash {flash:,} B, static RAM {ram:,} B")
    not_elf = tmp_path / "not.elf"
    not_elf.write_bytes(b"junk")
    assert elf_sizes(not_elf, brd) == (None, None)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert elf_sizes(obj, brd) == (None, None)
    line = describe_sizes(BuildResult(obj, None, None, "", 0.0), brd)
    assert "unknown" in line and "arm-none-eabi-size" in line and "0 B" not in line


def test_a_renamed_qemu_profile_accepts_its_firmware_s_name():
    """QEMU's MPS2 firmware names itself after the machine (qemu-mps2-an386): a user
    profile of it under another name must not be refused as another board's firmware."""
    from dataclasses import replace

    from tinysift.boards import load_board

    mine = replace(load_board("qemu-mps2-an386"), name="my-m4")
    assert "qemu-mps2-an386" in mine.firmware_names and "my-m4" in mine.firmware_names
    assert load_board("nucleo_f411re").firmware_names == ("nucleo_f411re",)


@pytest.mark.parametrize("boot", [True, "before"])
def test_calibrate_refuses_another_boards_firmware(boot):
    """`device calibrate --board nucleo_f411re --port P` with a Pico on P measured the Pico
    and wrote its current into the F411RE's profile, for every later estimate there. The
    firmware that answers (its `@boot`, or `@name` for a board that booted before the port
    opened) must be the profile's board, as in `device run`."""
    from fake_device import FakeDevice
    from tinysift.device.calibrate import calibrate
    from tinysift.device.session import WrongBoard

    dev = FakeDevice(board="pico", boot=boot, counter="timer", hz=1_000_000)
    try:
        with pytest.raises(WrongBoard, match=r"built for board 'pico', not 'nucleo_f411re'"):
            calibrate("nucleo_f411re", port=dev.url, current_ma=15.0, ms=100)
    finally:
        dev.close()
    assert not load_board("nucleo_f411re").user_profile  # nothing written
    assert not any(line.startswith("calib") for line in dev.received)  # nothing ran
    dev = FakeDevice(board="nucleo_f411re", boot=boot, counter="dwt", hz=100_000_000)
    try:
        cal = calibrate("nucleo_f411re", port=dev.url, current_ma=15.0, ms=100)
    finally:
        dev.close()
    assert cal.cycles == 10_000_000 and load_board("nucleo_f411re").active_current_ma == 15.0


@pytest.mark.parametrize("boot,where", [(True, "@boot proto=2"), ("before", "@info proto=2")])
def test_calibrate_refuses_firmware_of_another_protocol(boot, where):
    """`device calibrate` never read the firmware's `proto=` (the sessions do): another TSP
    version's `calib` records were read by TSP/1's rules and its current stored in the
    profile. Checked from `@boot`, or from `@info` for a board that booted before the port
    opened (`@name` carries no version), before the workload runs."""
    from fake_device import FakeDevice
    from tinysift.device.calibrate import calibrate
    from tinysift.device.session import ProtocolMismatch

    class Newer(FakeDevice):
        def send(self, payload: str) -> None:
            super().send(payload.replace("proto=1", "proto=2"))

    dev = Newer(board="nucleo_f411re", boot=boot, counter="dwt", hz=100_000_000)
    try:
        with pytest.raises(ProtocolMismatch, match=rf"speaks TSP/2 \({where}\), this host "
                                                   r"TSP/1: .*device flash --run RUN "
                                                   r"--board nucleo_f411re"):
            calibrate("nucleo_f411re", port=dev.url, current_ma=15.0, ms=100)
    finally:
        dev.close()
    assert not load_board("nucleo_f411re").user_profile  # nothing written
    assert not any(line.startswith("calib") for line in dev.received)  # nothing ran


def test_calibrate_takes_a_reset_during_its_info_as_the_boot():
    """A board that booted unseen and reset when calibrate asked `info` for its TSP version
    ended calibrate in the link's bare DeviceReset; the `@boot` it sent names the board and
    the version, as for `name`: checked, and the workload runs."""
    from fake_device import FakeDevice, Fault
    from tinysift.device.calibrate import calibrate

    dev = FakeDevice([Fault("cmd:info", "reset")], board="nucleo_f411re", boot="before",
                     counter="dwt", hz=100_000_000)
    try:
        cal = calibrate("nucleo_f411re", port=dev.url, current_ma=15.0, ms=100)
    finally:
        dev.close()
    assert cal.cycles == 10_000_000 and load_board("nucleo_f411re").active_current_ma == 15.0


def test_calibrate_says_a_reset_during_the_workload_and_its_fix():
    """A board that reset during `calib` ended calibrate in the link's bare DeviceReset (the
    boot record's fields, "records were kept"), naming no fix; nothing may be written."""
    from fake_device import FakeDevice, Fault
    from tinysift.device.calibrate import calibrate

    dev = FakeDevice([Fault("cmd:calib", "reset")], board="nucleo_f411re", counter="dwt",
                     hz=100_000_000)
    try:
        with pytest.raises(DeviceError, match=r"reset during `calib` \(@boot resets=1\), so "
                                              r"its workload did not finish and nothing was "
                                              r"written: check its power supply.*run "
                                              r"`tinysift device calibrate` again$"):
            calibrate("nucleo_f411re", port=dev.url, current_ma=15.0, ms=100)
    finally:
        dev.close()
    assert not load_board("nucleo_f411re").user_profile


def test_the_pico_drive_is_found_under_its_mount_point_with_the_kernels_escapes(tmp_path):
    """uf2_drive reads the mount table as the kernel writes it: a mount point's space, tab,
    newline and backslash escaped in octal (\\040, \\011, \\012, \\134). The drive is
    the mount holding an INFO_UF2.TXT that says RPI-RP2; other mounts, one whose info file
    is another board's, and short lines are passed over; no such mount is None."""
    from tinysift.device.flash import mount_points, uf2_drive

    pico = tmp_path / "RPI RP2\tb\\c"
    other = tmp_path / "other"
    for folder, info in ((pico, "UF2 Bootloader v3.0\nBoard-ID: RPI-RP2\n"),
                         (other, "Board-ID: SOMETHING-ELSE\n")):
        folder.mkdir()
        (folder / "INFO_UF2.TXT").write_text(info)
    escaped = str(pico).replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011")
    table = tmp_path / "mounts"
    table.write_text(f"proc /proc proc rw 0 0\nshort\n/dev/sdb1 {other} vfat rw 0 0\n"
                     f"/dev/sdc1 {escaped} vfat rw,nosuid 0 0\n")
    assert mount_points("a /x\\012y b 0 0\n")[0] == Path("/x\ny")
    assert uf2_drive(table) == pico
    table.write_text(f"/dev/sdb1 {other} vfat rw 0 0\n")
    assert uf2_drive(table) is None
    assert uf2_drive(tmp_path / "no such table") is None

