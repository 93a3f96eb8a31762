"""Board profiles and the real-board tooling that needs no board: where each profile is built
and run, finding boards by USB VID:PID, the flash commands (--dry-run) and a flash attempt
with no probe attached, the user's calibrated profiles."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from tinysift.boards import (
    SUPPORT,
    board_support,
    list_boards,
    load_board,
    save_user_board,
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
        "-c", f"program {build.elf} verify reset exit"]]
    # the Debian package has the board script the profile names
    scripts = Path("/usr/share/openocd/scripts")
    if scripts.is_dir():
        assert (scripts / brd.openocd_config).is_file()
        assert (scripts / load_board("nucleo_l4r5zi").openocd_config).is_file()


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


def test_missing_flash_tool_is_one_line(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    step = FlashStep("flash with pyOCD", ["pyocd", "flash", "x.elf"], tool="pyocd")
    with pytest.raises(DeviceError) as err:
        run_step(step, load_board("nucleo_f411re"))
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("pyocd not found: pip install pyocd")


def test_flash_without_a_probe_fails_in_one_line(tmp_path):
    """A real OpenOCD run (tools/setup.sh installs it) with no ST-LINK attached (as on these
    machines)."""
    need_tools("openocd")
    brd = load_board("nucleo_f411re")
    elf = tmp_path / "firmware.elf"
    elf.write_bytes(b"\x7fELF")
    step = flash_steps(brd, build_plan(brd, None, tmp_path))[1][0]
    step.cmd[-1] = f"program {elf} verify reset exit"
    with pytest.raises(DeviceError) as err:
        run_step(step, brd, timeout=60)
    msg = str(err.value)
    assert "\n" not in msg, msg
    assert msg.startswith("flash with OpenOCD failed: "), msg
    assert "no debug probe found" in msg, msg


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
    with pytest.raises(TinysiftError, match="not board profile keys"):
        save_user_board("nucleo_f411re", {"colour": "blue"})


def test_calibrate_with_the_users_meter():
    from tinysift.device.calibrate import calibrate

    cal = calibrate("nucleo_f411re", current_ma=15.0)
    assert cal.estimated_ma == 10.0 and cal.ratio == pytest.approx(1.5)
    assert load_board("nucleo_f411re").active_current_ma == 15.0
    cal = calibrate("nucleo_f411re", current_ma=12.0)  # against the project's estimate again
    assert cal.estimated_ma == 10.0
    with pytest.raises(TinysiftError, match="emulated"):
        calibrate("qemu-netduinoplus2", current_ma=1.0)
    with pytest.raises(TinysiftError, match="exactly one"):
        calibrate("nucleo_f411re")
