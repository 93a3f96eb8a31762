"""Board profiles: one TOML file per board in the project's ``boards/`` folder."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass

from tinysift.errors import TinysiftError
from tinysift.paths import boards_dir

DEFAULT_BOARD = "qemu-mps2-an386"
COUNTERS = ("dwt", "systick-icount", "timer", "ccount")


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

    def energy_mj(self, cycles: int) -> float:
        """Estimated energy E = V * I_active * cycles / f, in millijoules."""
        return self.supply_v * self.active_current_ma * cycles / self.clock_hz

    def seconds(self, cycles: int) -> float:
        return cycles / self.clock_hz

    def to_dict(self) -> dict:
        return asdict(self)


def load_board(name: str) -> Board:
    path = boards_dir() / f"{name}.toml"
    if not path.exists():
        known = ", ".join(b.name for b in list_boards())
        raise TinysiftError(f"unknown board {name!r}; known boards: {known}")
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    try:
        board = Board(**data)
    except TypeError as exc:
        raise TinysiftError(f"board profile {path} is malformed: {exc}") from exc
    if board.counter not in COUNTERS:
        raise TinysiftError(f"board profile {path}: counter must be one of {COUNTERS}")
    return board


def list_boards() -> list[Board]:
    return [load_board(p.stem) for p in sorted(boards_dir().glob("*.toml"))]
