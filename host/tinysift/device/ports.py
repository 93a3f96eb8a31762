"""Finding boards: USB serial ports matched to board profiles by VID:PID.

The pairs come from the profiles (``usb_ids``), plus the probes and bridges that say which
kind of board is behind them without naming one (a DAPLink can sit on any board). A port can
match several profiles (every Nucleo's ST-LINK has the same ID): the user picks with --board.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tinysift.boards import Board

#: VID:PID -> what it is (the probe or USB function), for the ports of any board
ADAPTERS = {
    "0483:374b": "ST-LINK/V2-1 (Nucleo virtual COM port)",
    "0483:374e": "STLINK-V3 (Nucleo virtual COM port)",
    "0483:374f": "STLINK-V3 (Nucleo virtual COM port)",
    "0483:3752": "ST-LINK/V2-1 (Nucleo virtual COM port)",
    "2341:805a": "Arduino Nano 33 BLE",
    "2341:005a": "Arduino Nano 33 BLE (bootloader)",
    "2e8a:000a": "Raspberry Pi Pico (USB serial)",
    "2e8a:00c0": "Raspberry Pi Pico (Arduino-mbed USB serial)",
    "2e8a:0003": "Raspberry Pi RP2 boot (BOOTSEL drive, no serial port)",
    "303a:1001": "Espressif USB Serial/JTAG (ESP32-S3)",
    "0d28:0204": "Arm DAPLink / CMSIS-DAP (any board behind it)",
    "10c4:ea60": "Silicon Labs CP210x USB-UART (e.g. ESP32 DevKitC's UART port)",
}


def usb_id(vid: int | None, pid: int | None) -> str | None:
    """``vvvv:pppp`` in lower-case hex, None for a port that is not USB."""
    if vid is None or pid is None:
        return None
    return f"{vid:04x}:{pid:04x}"


def boards_for(uid: str | None, boards: Iterable[Board]) -> list[str]:
    """The profiles whose serial port has this VID:PID."""
    if uid is None:
        return []
    return [b.name for b in boards if uid in (i.lower() for i in b.usb_ids)]


@dataclass
class PortMatch:
    device: str
    usb_id: str | None
    description: str
    adapter: str
    boards: list[str] = field(default_factory=list)

    @property
    def hint(self) -> str:
        """What to pass to tinysift for this port."""
        if len(self.boards) == 1:
            return f"--board {self.boards[0]} --port {self.device}"
        if self.boards:
            return f"--board <{'|'.join(self.boards)}> --port {self.device}"
        return f"--port {self.device}"

    def to_dict(self) -> dict:
        return {"device": self.device, "usb_id": self.usb_id, "description": self.description,
                "adapter": self.adapter, "boards": self.boards, "pass": self.hint}


def match_ports(ports: Iterable, boards: list[Board]) -> list[PortMatch]:
    """Match serial ports (pyserial ``ListPortInfo``: device, vid, pid, description) to
    profiles; ports of known boards first."""
    out = []
    for p in ports:
        uid = usb_id(getattr(p, "vid", None), getattr(p, "pid", None))
        out.append(PortMatch(p.device, uid, getattr(p, "description", "") or "",
                             ADAPTERS.get(uid or "", ""), boards_for(uid, boards)))
    return sorted(out, key=lambda m: (not m.boards, not m.adapter, m.device))
