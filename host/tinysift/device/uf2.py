"""UF2 images (Microsoft's USB flashing format, github.com/microsoft/uf2): what the Pico's
BOOTSEL drive accepts. A raw binary is cut into 256-byte payloads, one 512-byte block each:

    magic 0x0A324655, magic 0x9E5D5157, flags, target address, payload size, block number,
    block count, family ID (flags bit 0x2000), 476 bytes of data (payload, zero padded),
    magic 0x0AB16F30   (all little-endian 32-bit words)

``python -m tinysift.device.uf2 IN.bin OUT.uf2 [--base 0x10000000] [--family 0xe48bff56]``
"""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

from tinysift.errors import TinysiftError

RP2040_FLASH = 0x10000000
RP2040_FAMILY = 0xE48BFF56
PAYLOAD = 256
_FLAG_FAMILY = 0x00002000
_MAGIC = (0x0A324655, 0x9E5D5157, 0x0AB16F30)


def bin_to_uf2(data: bytes, base: int = RP2040_FLASH, family: int = RP2040_FAMILY) -> bytes:
    """The UF2 image of the raw binary ``data`` written from address ``base``.

    Raises
    ------
    TinysiftError : ``data`` is empty (a broken objcopy step: the drive would take an image
        that writes nothing) or ``base`` is not a multiple of 256 (the bootrom writes whole
        256-byte flash pages)
    """
    if not data:
        raise TinysiftError("the raw image is empty: nothing to write; check the objcopy step "
                            "and the ELF it was made from")
    if base % PAYLOAD:
        raise TinysiftError(f"--base {base:#x} is not a multiple of {PAYLOAD} (the UF2 blocks "
                            f"are whole flash pages): use e.g. {base - base % PAYLOAD:#x}")
    count = (len(data) + PAYLOAD - 1) // PAYLOAD
    # the blocks hold 32-bit addresses: outside them struct.pack ended in a traceback
    if not 0 <= base <= 2**32 - count * PAYLOAD:
        raise TinysiftError(f"--base {base:#x} puts the {len(data):,}-byte image outside the "
                            f"32-bit address space: give the flash's address (the RP2040's: "
                            f"{RP2040_FLASH:#x})")
    if not 0 <= family < 2**32:
        raise TinysiftError(f"--family {family:#x} is not a 32-bit family ID: give the chip's "
                            f"(the RP2040's: {RP2040_FAMILY:#x})")
    blocks = []
    for i in range(count):
        chunk = data[i * PAYLOAD:(i + 1) * PAYLOAD]
        head = struct.pack("<8I", _MAGIC[0], _MAGIC[1], _FLAG_FAMILY, base + i * PAYLOAD,
                           PAYLOAD, i, count, family)
        blocks.append(head + chunk.ljust(476, b"\0") + struct.pack("<I", _MAGIC[2]))
    return b"".join(blocks)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bin", type=Path)
    ap.add_argument("uf2", type=Path)
    ap.add_argument("--base", type=lambda v: int(v, 0), default=RP2040_FLASH)
    ap.add_argument("--family", type=lambda v: int(v, 0), default=RP2040_FAMILY)
    args = ap.parse_args(argv)
    try:
        image = bin_to_uf2(args.bin.read_bytes(), args.base, args.family)
        args.uf2.write_bytes(image)
    except TinysiftError as exc:
        ap.error(str(exc))  # one line on stderr, status 2
    except OSError as exc:  # a missing image or output folder ended in a traceback
        if exc.filename == str(args.uf2):
            ap.error(f"cannot write {args.uf2}: {exc.strerror}; give a path in an existing, "
                     "writable folder")
        ap.error(f"cannot read {args.bin}: {exc.strerror}; give the raw image the objcopy "
                 "step writes (`tinysift device flash --dry-run` shows it)")


if __name__ == "__main__":
    main()
