"""Board profiles: one TOML file per board in the project's ``boards/`` folder.

A user's own copy of a profile (``tinysift device calibrate`` writes one, with the measured
active current) lives outside the repository, in :func:`user_boards_dir`, and takes the place
of the project's profile of the same name in every later command.

Where a board can be built and run is read off ``firmware/platformio.ini``
(:func:`board_support`): an emulated board is built and run here; a board whose env uses one
of the project's local platforms (``symlink://``) is built here (offline) but not run; a board
on a stock PlatformIO platform needs internet to build.
"""

from __future__ import annotations

import configparser
import json
import math
import os
import re
import tomllib
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from tinysift.errors import TinysiftError, did_you_mean
from tinysift.params import describe_annotation, value_fits
from tinysift.paths import boards_dir, firmware_dir

DEFAULT_BOARD = "qemu-mps2-an386"
#: The cycle counters a board profile may name (what its firmware reads).
COUNTERS = ("dwt", "systick-icount", "timer", "ccount")
#: Counters that count core clock cycles (their rate is the core clock), as the firmware
#: names them ("systick" too: a SysTick without icount); the others (the Pico's ``timer``)
#: count time at their own rate.
CORE_COUNTERS = ("dwt", "ccount", "systick-icount", "systick")
#: How ``device flash`` writes a board (tinysift.device.flash); empty: not flashable yet.
FLASH_METHODS = ("", "probe", "uf2", "pio-upload")
#: Where a user's board profiles live: ``$TINYSIFT_CONFIG_DIR/boards``, else
#: ``$XDG_CONFIG_HOME/tinysift/boards``, else ``~/.config/tinysift/boards``.
CONFIG_ENV = "TINYSIFT_CONFIG_DIR"
_USB_ID = re.compile(r"[0-9a-f]{4}:[0-9a-f]{4}", re.IGNORECASE)


@dataclass(frozen=True)
class Board:
    """A board: core, clock, memories and the numbers behind the energy estimate."""

    name: str
    description: str
    core: str
    fpu: bool
    dsp: bool
    clock_hz: int
    ram_bytes: int
    flash_bytes: int
    supply_v: float
    active_current_ma: float
    current_source: str
    current_is_estimate: bool
    counter: str
    pio_env: str
    emulated: bool
    qemu_machine: str = ""
    #: which ``-serial`` of the QEMU machine is the board's console (netduinoplus2: USART2,
    #: the second)
    qemu_serial_index: int = 0
    #: the code behind ts_platform.h: stm32f4, stm32l4, arduino, esp-idf, qemu-mps2; empty
    #: where there is none yet
    port: str = ""
    #: the stack the memory plan reserves: the firmware's linker script's (16 KiB on the
    #: STM32 boards, 64 KiB on the QEMU mps2 image); 8 KiB where the profile does not say
    stack_bytes: int = 8 * 1024
    #: USB VID:PID pairs (lower-case hex) of the board's serial port, for ``device list``
    usb_ids: list[str] = field(default_factory=list)
    #: how ``device flash`` writes it: probe (OpenOCD / pyOCD / st-flash), uf2, pio-upload
    flash_method: str = ""
    openocd_config: str = ""
    pyocd_target: str = ""
    marker_pin: str = ""
    serial: str = ""
    #: the cycle counter's rate where it is not the core clock (the Pico's ``timer``:
    #: micros(), 1 MHz); 0: the counter counts core cycles at ``clock_hz``. The device reports
    #: its counter's rate (``@info hz``), which the host uses first.
    counter_hz: int = 0
    #: a profile of the user's own board (none in boards/): the active current it gave before
    #: its first ``device calibrate``, which keeps it here (the ratio's base); 0: not set
    estimated_current_ma: float = 0.0
    #: where the profile was read from (the project's boards/ or the user's folder)
    source_file: str = ""

    @property
    def counter_rate(self) -> int:
        """The rate the profile expects the cycle counter to count at (Hz)."""
        return self.counter_hz or self.clock_hz

    def energy_mj(self, cycles: int, hz: int | None = None) -> float:
        """Estimated energy E = V * I_active * cycles / f, in millijoules: the active current
        over the counted time. ``hz``: the counter's rate as the device reports it (default:
        the profile's :attr:`counter_rate`)."""
        return self.supply_v * self.active_current_ma * cycles / (hz or self.counter_rate)

    def seconds(self, cycles: int, hz: int | None = None) -> float:
        """Counted ``cycles`` in seconds, at the counter's rate ``hz`` (default: the
        profile's :attr:`counter_rate`)."""
        return cycles / (hz or self.counter_rate)

    @property
    def firmware_names(self) -> tuple[str, ...]:
        """The names its firmware may give in ``@boot board=``: the profile's (the STM32
        platforms), its PlatformIO env's (the Arduino and ESP-IDF ports: the env name) or,
        on QEMU's MPS2 platform, ``qemu-`` and the machine (a user profile of it may have
        another name)."""
        machine = (f"qemu-{self.qemu_machine}",) if self.qemu_machine else ()
        return tuple(dict.fromkeys((self.name, self.pio_env, *machine)))

    @property
    def user_profile(self) -> bool:
        return bool(self.source_file) and Path(self.source_file).parent == user_boards_dir()

    def to_dict(self) -> dict:
        return asdict(self)


def user_boards_dir() -> Path:
    """The user's board profiles (outside the repository)."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env).expanduser() / "boards"
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base).expanduser() / "tinysift" / "boards"


def _read_toml(path: Path) -> dict:
    with open(path, "rb") as fh:
        try:
            return tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            # the fix was left unsaid; a broken user profile stops every command on any board
            raise TinysiftError(f"board profile {path} is not valid TOML ({exc}); fix the "
                                f"file (see boards/{DEFAULT_BOARD}.toml){_or_delete(path)}"
                                ) from exc


def _or_delete(path: Path) -> str:
    """The other fix of a broken user profile of a project board: without it the project's
    profile applies."""
    mine = path.parent == user_boards_dir() and (boards_dir() / path.name).is_file()
    return ", or delete it to use the project's profile" if mine else ""


def load_board(name: str) -> Board:
    """The profile ``name``: the project's, with the user's copy (its keys) on top."""
    project, user = boards_dir() / f"{name}.toml", user_boards_dir() / f"{name}.toml"
    data: dict = {}
    path = None
    for candidate in (project, user):
        if candidate.is_file():
            data.update(_read_toml(candidate))
            path = candidate
    if path is None:
        known = ", ".join(b.name for b in list_boards())
        raise TinysiftError(f"unknown board {name!r}"
                            f"{did_you_mean(name, [b.name for b in list_boards()])}; known "
                            f"boards: {known}")
    known_keys = {f.name for f in fields(Board)} - {"source_file"}
    unknown = sorted(set(data) - known_keys)
    if unknown:
        raise TinysiftError(f"board profile {path}: unknown keys {', '.join(unknown)}; "
                            f"remove them (the keys are those of boards/{DEFAULT_BOARD}.toml)"
                            f"{_or_delete(path)}")
    required = {f.name for f in fields(Board) if f.default is MISSING
                and f.default_factory is MISSING}
    missing = sorted(required - set(data))
    if missing:
        raise TinysiftError(f"board profile {path}: missing keys {', '.join(missing)}; add "
                            f"them (see boards/{DEFAULT_BOARD}.toml)")
    _check_values(path, data)
    if data["name"] != name:  # a copied profile kept its name: calibrate wrote the other's
        raise TinysiftError(f"board profile {path}: name = {data['name']!r}, but the file is "
                            f"{name}.toml; set name = \"{name}\" (a profile's name is its "
                            f"file's){_or_delete(path)}")
    return Board(**data, source_file=str(path))


def _check_values(path: Path, data: dict) -> None:
    """Every key's type and range (TOML's types: a quoted number is a string, and would
    only fail later, or silently give wrong seconds and energy)."""
    def bad(key: str, want: str) -> TinysiftError:
        return TinysiftError(f"board profile {path}: {key} = {data[key]!r} is not {want}; "
                             f"set {key} to {want}")

    hints = typing.get_type_hints(Board)
    for key, value in data.items():
        kind = hints[key]
        if key == "usb_ids":  # checked below, with its own form
            continue
        if not value_fits(value, kind):
            raise bad(key, describe_annotation(kind) + (" (no quotes)" if kind in (int, float)
                                                        else " (in quotes)" if kind is str
                                                        else ""))
        if kind is int:
            may_be_zero = key in ("qemu_serial_index", "counter_hz")
            if value < (0 if may_be_zero else 1):
                raise bad(key, "0 or more" if may_be_zero else "a positive whole number")
        # inf passed `> 0` (TOML reads `inf`): every energy became inf without a word
        if kind is float and not (value > 0 and math.isfinite(value)):
            raise bad(key, "a positive number")
    ids = data.get("usb_ids", [])
    if not isinstance(ids, list) or not all(
            isinstance(i, str) and _USB_ID.fullmatch(i) for i in ids):
        raise bad("usb_ids", 'a list of "vid:pid" strings in hex, '
                             'e.g. ["2e8a:000a"]')
    if data["counter"] not in COUNTERS:
        raise bad("counter", f"one of {', '.join(COUNTERS)}")
    if data.get("flash_method", "") not in FLASH_METHODS:
        raise bad("flash_method", f"one of {', '.join(m for m in FLASH_METHODS if m)} "
                                  "(or leave it out)")


def list_boards() -> list[Board]:
    return [load_board(p.stem) for p in sorted(boards_dir().glob("*.toml"))]


def check_emulated_board(name: str) -> Board:
    """The profile ``name`` when it is an emulated board (what the commands that start QEMU
    themselves run on: adapt, demo, the device benches); otherwise one TinysiftError naming
    the emulated ones, before any stage runs."""
    board = load_board(name)
    if not board.emulated:
        emulated = ", ".join(b.name for b in list_boards() if b.emulated)
        raise TinysiftError(f"--board {name} is a real board; this command runs on an emulated "
                            f"board that it starts in QEMU: choose one of {emulated} (a real "
                            "board: `tinysift export`, `tinysift device flash`, then "
                            "`tinysift device run --port PORT`)")
    return board


# ---- where a board is built and run ----------------------------------------------------------

#: (code, what ``tinysift boards`` says)
SUPPORT = {
    "run-here": "built and run here (emulated)",
    "build-here": "built here, not run (no board on these machines)",
    "internet": "needs internet (stock PlatformIO); not built here",
    "no-port": "no port of ts_platform.h yet",
}


def _pio_envs() -> dict[str, dict[str, str]]:
    """``[env:NAME]`` sections of firmware/platformio.ini with ``extends`` resolved."""
    ini = configparser.ConfigParser(interpolation=None, strict=False)
    ini.read(firmware_dir() / "platformio.ini")

    def section(name: str, seen: tuple = ()) -> dict[str, str]:
        if name in seen or not ini.has_section(name):
            return {}
        own = dict(ini.items(name))
        base = {}
        for parent in own.get("extends", "").replace(",", " ").split():
            base.update(section(parent, (*seen, name)))
        return {**base, **own}

    return {s[4:]: section(s) for s in ini.sections() if s.startswith("env:")}


def builds_offline(board: Board) -> bool:
    """True when the board's env uses one of the project's local platforms."""
    env = _pio_envs().get(board.pio_env, {})
    return env.get("platform", "").startswith("symlink://")


def board_support(board: Board) -> str:
    """One of :data:`SUPPORT`'s codes."""
    if not board.port:
        return "no-port"
    if board.emulated:
        return "run-here"
    return "build-here" if builds_offline(board) else "internet"


# ---- the user's profiles ----------------------------------------------------------------------

def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a TOML basic string: JSON's escapes are valid TOML


def user_board_keys(name: str) -> dict:
    """What the user's own profile of board ``name`` sets (nothing when there is none), without
    the project's profile under it."""
    path = user_boards_dir() / f"{name}.toml"
    return _read_toml(path) if path.is_file() else {}


def save_user_board(name: str, changes: dict, header: str = "") -> Path:
    """Write ``changes`` (profile keys) into the user's profile of board ``name``, on top of
    what it already holds, atomically; later :func:`load_board` calls apply them over the
    project's profile. Returns the path."""
    known_keys = {f.name for f in fields(Board)} - {"source_file"}
    bad = sorted(set(changes) - known_keys)
    if bad:
        raise TinysiftError(f"not board profile keys: {', '.join(bad)}")
    path = user_boards_dir() / f"{name}.toml"
    data = {**user_board_keys(name), **changes}
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    lines += [f"{key} = {_toml_value(value)}" for key, value in data.items()]
    old = path.read_bytes() if path.is_file() else None
    _write_profile(path, ("\n".join(lines) + "\n").encode(), name)
    try:
        load_board(name)  # what was written must load
    except Exception:
        # a profile that no longer loads stops every later command on this board: put the
        # one that loaded back (or none), then say why
        if old is None:
            path.unlink(missing_ok=True)
        else:
            _write_profile(path, old, name)
        raise
    return path


def _write_profile(path: Path, content: bytes, name: str) -> None:
    """Write a user profile atomically (a temporary file renamed over it)."""
    tmp = path.with_suffix(".toml.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(content)
        tmp.replace(path)
    except OSError as exc:  # a read-only home, a config path through a file: a traceback
        raise TinysiftError(f"cannot write your profile of {name} into {path.parent}: "
                            f"{exc.strerror or exc}; set {CONFIG_ENV} to a writable folder "
                            "(or make that one writable), then run it again") from exc
