"""Flashing a real board: the commands for its flash method and probe, and running them.

* ``probe`` (the STM32 boards): OpenOCD with the board's stock script (Debian ``openocd``),
  pyOCD (``pip install pyocd``; the chip's CMSIS pack once: ``pyocd pack install``) or
  st-flash (Debian ``stlink-tools``) on the ST-LINK of the Nucleo.
* ``uf2`` (the Pico): the ELF as a UF2 image (:mod:`tinysift.device.uf2`) copied onto the
  RPI-RP2 drive the Pico shows in BOOTSEL mode.
* ``pio-upload`` (Arduino, ESP-IDF boards): stock PlatformIO's ``pio run -t upload``.

``serial`` picks one probe among several of the same kind (two Nucleos plugged in), with each
tool's own option: OpenOCD's ``adapter serial SERIAL`` command (before ``program``, which
initialises the adapter), pyOCD's ``--uid SERIAL`` and st-flash's ``--serial SERIAL``. The
other flash methods have no probe to pick and refuse it.

Every step is a command line, so ``--dry-run`` prints exactly what would run. A missing tool,
probe or drive is one :class:`DeviceError` line that says what to install or plug in.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tinysift.boards import Board
from tinysift.device.build import BuildPlan
from tinysift.errors import DeviceError

PROBES = ("openocd", "pyocd", "stlink")
#: tool -> (executable, how to install it)
TOOLS = {
    "openocd": ("openocd", "sudo apt-get install openocd"),
    "pyocd": ("pyocd", "pip install pyocd (and the chip's pack: pyocd pack install TARGET)"),
    "stlink": ("st-flash", "sudo apt-get install stlink-tools"),
}
#: the commands of the steps without a probe (the raw image) -> how to install them
STEP_TOOLS = {"arm-none-eabi-objcopy": "sudo apt-get install binutils-arm-none-eabi"}
FLASH_BASE = 0x08000000  # st-flash writes the raw .bin here (every STM32 of the ports)


@dataclass
class FlashStep:
    """One command (or, ``uf2_copy`` set, one file copy) of a flash."""

    what: str
    cmd: list[str]
    tool: str = ""  # a key of TOOLS whose absence is reported in one line
    #: a copy onto the Pico's RPI-RP2 drive, found when the step runs (after the build: the
    #: Pico may be put in BOOTSEL mode while it builds)
    uf2_copy: bool = False
    #: the probe serial it picks (``--probe-serial``), for the hint when none matches
    serial: str | None = None

    def shell(self) -> str:
        return shlex.join(self.cmd)


#: characters a probe serial may hold: what the tools list (hex digits, letters), nothing a Tcl
#: word (OpenOCD's ``-c``) or a shell line would read as syntax
_SERIAL = re.compile(r"[A-Za-z0-9._:-]+")


def check_serial(serial: str) -> str:
    """``serial`` as given, or one DeviceError line when no tool could take it."""
    if not _SERIAL.fullmatch(serial):
        raise DeviceError(f"probe serial {serial!r} is not a serial number (letters, digits, "
                          "'.', '_', ':', '-'): pass the one `pyocd list`, `st-info --probe` "
                          "or OpenOCD's log shows for the ST-LINK")
    return serial


def probe_steps(board: Board, elf: Path, probe: str,
                serial: str | None = None) -> list[FlashStep]:
    """The probe commands that write ``elf`` (and start it); ``serial`` chooses the probe
    among several attached (default: the tool takes the first it finds)."""
    if probe not in PROBES:
        raise DeviceError(f"unknown probe {probe!r}; choose one of {', '.join(PROBES)}")
    if serial is not None:
        check_serial(serial)
    if probe == "openocd":
        if not board.openocd_config:
            raise DeviceError(f"{board.name} has no OpenOCD script in its profile "
                              "(openocd_config)")
        # `adapter serial` configures the adapter, so it goes before `program` (its `init`)
        pick = ["-c", f"adapter serial {{{serial}}}"] if serial is not None else []
        return [FlashStep("flash with OpenOCD", [
            "openocd", "-f", board.openocd_config, *pick,
            # braces: a Tcl word taken literally (a path with spaces, $ or [ ] in it)
            "-c", f"program {{{elf}}} verify reset exit"], tool="openocd", serial=serial)]
    if probe == "pyocd":
        if not board.pyocd_target:
            raise DeviceError(f"{board.name} has no pyOCD target in its profile (pyocd_target)")
        return [FlashStep("flash with pyOCD", [
            "pyocd", "flash", *(["--uid", serial] if serial is not None else []),
            "--target", board.pyocd_target, str(elf)], tool="pyocd", serial=serial)]
    binary = elf.with_suffix(".bin")
    return [FlashStep("raw image for st-flash", [
                "arm-none-eabi-objcopy", "-O", "binary", str(elf), str(binary)]),
            FlashStep("flash with st-flash", [
                "st-flash", *(["--serial", serial] if serial is not None else []),
                "--reset", "write", str(binary), hex(FLASH_BASE)], tool="stlink",
                      serial=serial)]


def mount_points(table: str) -> list[Path]:
    """The mount points of a ``/proc/mounts`` table, with the kernel's octal escapes decoded
    (``\\040`` a space, ``\\011`` a tab, ``\\012`` a newline, ``\\134`` a backslash: a
    drive labelled with a tab was looked for under its escaped name)."""
    points = []
    for line in table.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            points.append(Path(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)),
                                      parts[1])))
    return points


def uf2_drive(mounts_file: Path = Path("/proc/mounts")) -> Path | None:
    """The mounted RPI-RP2 drive (a Pico in BOOTSEL mode), found by its INFO_UF2.TXT among
    the mount points of ``mounts_file``."""
    try:
        mounts = mount_points(mounts_file.read_text())
    except OSError:
        return None
    for mount in mounts:
        info = mount / "INFO_UF2.TXT"
        try:
            if info.is_file() and "RPI-RP2" in info.read_text(errors="replace"):
                return mount
        except OSError:
            continue
    return None


def flash_steps(board: Board, build: BuildPlan, probe: str | None = None,
                port: str | None = None,
                serial: str | None = None) -> tuple[BuildPlan, list[FlashStep]]:
    """The build (for ``pio-upload`` boards: build and upload in one) and the flash steps;
    ``serial``: the debug probe's serial number (``probe`` boards only)."""
    if board.emulated:
        raise DeviceError(f"{board.name} is emulated: nothing to flash (tinysift device run "
                          "starts QEMU with the ELF)")
    method = board.flash_method
    if port is not None and method in ("probe", "uf2"):
        # only PlatformIO's upload takes a port: here it was ignored, and with two boards
        # attached the first probe (or BOOTSEL drive) found was flashed, not the one named
        which = ("pick one of several probes with --probe-serial" if method == "probe"
                 else "put only one Pico in BOOTSEL mode")
        raise DeviceError(f"{board.name} is not flashed through a serial port ({method}), so "
                          f"--port does not choose the board: leave out --port ({which})")
    if method == "probe":
        return build, probe_steps(board, build.elf, probe or "openocd", serial)
    if probe:
        raise DeviceError(f"{board.name} is not flashed through a debug probe "
                          f"({method}): leave out --probe")
    if serial is not None:
        # a Pico in BOOTSEL mode is a drive, a pio-upload board is found by its port
        which = ("pick the board with --port" if method == "pio-upload"
                 else "put only one Pico in BOOTSEL mode")
        raise DeviceError(f"{board.name} is not flashed through a debug probe ({method}), "
                          f"so it has no probe serial to choose: leave out --probe-serial "
                          f"({which})")
    if method == "uf2":
        drive = uf2_drive()  # for the command shown; run_step looks again at copy time
        binary, uf2 = build.elf.with_suffix(".bin"), build.elf.with_suffix(".uf2")
        return build, [
            FlashStep("raw image", ["arm-none-eabi-objcopy", "-O", "binary", str(build.elf),
                                    str(binary)]),
            FlashStep("UF2 image", [sys.executable, "-m", "tinysift.device.uf2", str(binary),
                                    str(uf2)]),
            FlashStep("copy the UF2 to the Pico in BOOTSEL mode",
                      ["cp", str(uf2), str(drive or "<RPI-RP2 drive>") + "/"],
                      uf2_copy=True)]
    if method == "pio-upload":
        upload = BuildPlan([*build.cmd, "-t", "upload", *(["--upload-port", port] if port
                                                          else [])],
                           build.env, build.build_dir, build.offline)
        return upload, []
    from tinysift.boards import FLASH_METHODS, board_support, user_boards_dir

    if board_support(board) == "no-port":
        raise DeviceError(f"{board.name} has no firmware port (its profile is for memory "
                          "plans only), so nothing can be built or flashed for it: choose a "
                          "board `tinysift boards` lists as buildable")
    raise DeviceError(f"{board.name} has no flash method in its profile: set flash_method "
                      f"to one of {', '.join(m for m in FLASH_METHODS if m)} in its user "
                      f"profile, {user_boards_dir() / (board.name + '.toml')}")


#: what a flash tool says when no probe is attached, in its own words -> in ours
NO_PROBE_FOUND = "no debug probe found"
NO_PROBE = ("open failed", "couldn't find any st-link", "no connected debug probes",
            "unable to find a matching", "no device found")


def _failure(text: str) -> str:
    """The line a flash tool's failure is best told by (OpenOCD's own "Error:" lines first)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = ([ln for ln in lines if ln.startswith("Error:")]
              or [ln for ln in lines if re.search(r"(?i)\b(error|fatal|failed|not found)\b", ln)]
              or lines or ["no output"])
    line = errors[-1]
    if any(sign in line.lower() for sign in NO_PROBE):
        return f"{NO_PROBE_FOUND} ({line})"
    return line


def run_step(step: FlashStep, board: Board, timeout: float = 300) -> None:
    """Run one step; any failure is one DeviceError line (what failed, what to do)."""
    if step.tool:
        exe, install = TOOLS[step.tool]
        if board.pyocd_target:  # the pack to install is this board's chip, named
            install = install.replace("TARGET", board.pyocd_target)
        if shutil.which(exe) is None:
            raise DeviceError(f"{exe} not found: {install} (or choose another --probe: "
                              f"{', '.join(PROBES)})")
    if step.uf2_copy:
        drive = uf2_drive()
        if drive is None:
            raise DeviceError("no RPI-RP2 drive mounted: hold BOOTSEL while plugging the Pico "
                              "in, then run this again")
        try:
            shutil.copy(step.cmd[1], drive)
        except OSError as exc:  # a full drive, or one unmounted mid-copy: was a traceback
            raise DeviceError(f"{step.what} failed: copying {Path(step.cmd[1]).name} onto "
                              f"{drive}: {exc.strerror or exc}; put the Pico in BOOTSEL mode "
                              "again (hold BOOTSEL while plugging it in) and run this again"
                              ) from exc
        return
    try:
        proc = subprocess.run(step.cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        # the raw image's objcopy is the system's: stock PlatformIO's own toolchain (the
        # Pico's) is not on PATH
        install = STEP_TOOLS.get(step.cmd[0])
        raise DeviceError(f"{step.cmd[0]} not found" + (f": {install}" if install else "")
                          ) from exc
    except subprocess.TimeoutExpired as exc:
        raise DeviceError(f"{step.what} took over {timeout:.0f} s: is the board connected?") \
            from exc
    if proc.returncode != 0:
        failure = _failure(proc.stdout + proc.stderr)
        hint = ""
        if step.tool and step.serial is not None and failure.startswith(NO_PROBE_FOUND):
            # the probe named may be attached under another serial, or not at all
            hint = (f"; no probe with serial {step.serial} answered: check --probe-serial "
                    "against the serials `st-info --probe` or `pyocd list` shows (or leave it "
                    "out to take the one attached)")
        elif step.tool:
            hint = (f"; is {board.name} plugged in over USB (its ST-LINK), and no other "
                    "debugger holding the probe?")
        raise DeviceError(f"{step.what} failed: {failure}{hint}")
