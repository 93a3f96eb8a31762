"""TSP/1 framing and records (docs/protocol.md), host side.

Every line is ``<payload> *<CRC>\\n`` with CRC-16/CCITT-FALSE over the payload and the space
before ``*``. Device records are ``@type key=value ...``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from tinysift.errors import DeviceError

PROTOCOL_VERSION = 1
MAX_LINE = 255
_CRC_DIGITS = re.compile(rb"[0-9A-F]{4}")


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final XOR."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def frame(payload: str) -> bytes:
    """``payload`` -> ``payload *CRC\\n`` (bytes)."""
    # what unframe() refuses on the other side is refused here: '*', a newline or another
    # control byte (a tab or CR was framed and then dropped as non-printable), non-ASCII
    if "*" in payload or any(not " " <= ch <= "~" for ch in payload):
        raise ValueError(f"a payload may not contain '*' or a newline, and holds printable "
                         f"ASCII only (0x20..0x7E), got {payload!r}")
    body = f"{payload} ".encode("ascii")
    return body + f"*{crc16(body):04X}\n".encode("ascii")


class FrameError(ValueError):
    """A line that fails framing (no CRC, wrong CRC, bad bytes)."""


def unframe(line: bytes, max_len: int = MAX_LINE) -> str:
    """Validate one received line (without its newline); returns the payload."""
    line = line.rstrip(b"\r")
    if not line:
        raise FrameError("empty line")
    if len(line) > max_len:
        raise FrameError(f"line of {len(line)} bytes exceeds {max_len}")
    if any(b < 0x20 or b > 0x7E for b in line):
        raise FrameError("non-printable byte")
    if len(line) < 7 or line[-6:-4] != b" *":
        raise FrameError("no ' *XXXX' checksum")
    # four upper-case hex digits (docs/protocol.md), read strictly: int(x, 16) alone also
    # takes a sign, a space, an underscore or '0x' (b"+1AB" read as 0x01AB)
    if not _CRC_DIGITS.fullmatch(line[-4:]):
        raise FrameError("checksum is not four upper-case hex digits")
    want = int(line[-4:], 16)
    body = line[:-5]  # payload plus the space before '*'
    if crc16(body) != want:
        raise FrameError("checksum mismatch")
    return body[:-1].decode("ascii")


@dataclass
class Record:
    """A device record: ``@type k=v ...``."""

    type: str
    fields: dict[str, str] = field(default_factory=dict)

    def int(self, key: str, default: int | None = None, low: int | None = None) -> int:
        """``key`` as a decimal integer (TSP/1's form: Python's int() also takes
        ``1_000``), at least ``low`` when given."""
        return self._number(key, default, int, low, None)

    def float(self, key: str, default: float | None = None, low: float | None = None,
              high: float | None = None) -> float:
        """``key`` as a real; with ``low`` or ``high`` a finite one in that range."""
        return self._number(key, default, float, low, high)

    def _number(self, key: str, default, kind, low, high):
        if key not in self.fields:
            if default is None:
                raise RecordError(self, f"has no field {key!r}")
            return default
        text = self.fields[key]
        try:
            # Python's int() and float() also read `1_000`, which the firmware never sends
            if not (_INTEGER if kind is int else _REAL).fullmatch(text):
                raise ValueError(text)
            value = kind(text)
        except ValueError:
            raise RecordError(self, f"has {key}={text!r}, not "
                              f"{'an integer' if kind is int else 'a number'}") from None
        # CRC-valid but impossible (negative cycles, an accuracy of 7.5 or inf) went into
        # the results as measured: negative seconds and energy, a complete result
        if (low is not None or high is not None) and not (
                math.isfinite(value) and (low is None or value >= low)
                and (high is None or value <= high)):
            bounds = (f"in {low:g}..{high:g}" if low is not None and high is not None
                      else f"of at least {low:g}" if low is not None else f"of at most {high:g}")
            raise RecordError(self, f"has {key}={text!r}, not a finite number {bounds}")
        return value

    def to_dict(self) -> dict:
        return {"type": self.type, **self.fields}


_INTEGER = re.compile(r"-?[0-9]+")
#: what C's %.6g prints: decimal, an exponent, or nan/inf
_REAL = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?(?:nan|inf)",
                   re.IGNORECASE)


class RecordError(DeviceError):
    """A record with a valid CRC but a field the host cannot use (missing or not a number):
    the firmware and the host disagree on TSP/1, so the session stops instead of guessing."""

    def __init__(self, rec: Record, problem: str):
        super().__init__(f"the device sent @{rec.type} that {problem} "
                         f"({' '.join(f'{k}={v}' for k, v in rec.fields.items())}); the firmware "
                         "and this host disagree on TSP/1 (docs/protocol.md): rebuild and flash "
                         "the firmware from this checkout (`tinysift device flash`)")
        self.record = rec


def parse_record(payload: str) -> Record:
    if not payload.startswith("@"):
        raise FrameError("device lines start with '@'")
    parts = payload[1:].split(" ")
    rtype, fields = parts[0], {}
    if not rtype:
        raise FrameError("record without a type")
    for part in parts[1:]:
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise FrameError(f"field {part!r} is not key=value")
        fields[key] = value
    return Record(rtype, fields)


def data_line(label: int, sample: bytes) -> bytes:
    """A ``db load`` data line: ``<label>:<hex>`` framed."""
    return frame(f"{int(label)}:{sample.hex().upper()}")
