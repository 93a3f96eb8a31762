"""Build (and for real boards upload) the firmware for one run's export with PlatformIO."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tinysift.boards import Board
from tinysift.errors import DeviceError
from tinysift.paths import firmware_dir, offline_pio, project_root

# Everything a firmware build compiles besides the export, relative to the project folder:
# a change here means a rebuild.
FIRMWARE_SOURCES = ("firmware/src", "firmware/lib", "firmware/platformio.ini",
                    "firmware/scripts", "boards/runtime", "boards/platform-qemu",
                    "boards/platform-native")


def firmware_source_hash() -> str:
    """sha256 over the paths and contents of the firmware sources (not the build output)."""
    import hashlib

    root_dir = project_root()
    h = hashlib.sha256()
    for rel in FIRMWARE_SOURCES:
        root = root_dir / rel
        files = [root] if root.is_file() else sorted(f for f in root.rglob("*") if f.is_file())
        for f in files:
            if ".pio" in f.parts or "__pycache__" in f.parts:
                continue
            h.update(str(f.relative_to(root_dir)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


@dataclass
class BuildResult:
    elf: Path
    flash_bytes: int
    ram_bytes: int
    log: str
    seconds: float


def pio_command(board: Board) -> list[str]:
    """Emulated boards build offline through tools/pio; real boards need stock PlatformIO
    (its platforms and toolchains download on first use)."""
    if board.emulated:
        return [str(offline_pio())]
    pio = shutil.which("pio") or str(project_root() / ".venv" / "bin" / "pio")
    return [pio]


def build_firmware(export_dir: Path, board: Board, out_dir: Path, upload: bool = False,
                   port: str | None = None, timeout: float = 900) -> BuildResult:
    """Compile the app with ``export_dir`` compiled in; copy the ELF to ``out_dir``.

    Each run builds in its own folder (``out_dir/build``) so runs never share objects.
    """
    import time

    export_dir = Path(export_dir).resolve()
    if not (export_dir / "ts_export.h").exists():
        raise DeviceError(f"{export_dir} has no ts_export.h; run `tinysift export` first")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TS_EXPORT_DIR=str(export_dir),
               PLATFORMIO_BUILD_DIR=str(out_dir / "build"))
    cmd = pio_command(board) + ["run", "-d", str(firmware_dir()), "-e", board.pio_env]
    if upload and not board.emulated:
        cmd += ["-t", "upload"] + (["--upload-port", port] if port else [])
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise DeviceError(f"the firmware build for {board.name} took over {timeout:.0f} s") \
            from exc
    seconds = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        tail = "\n".join(log.strip().splitlines()[-25:])
        hint = ("" if board.emulated else " (real boards need internet for PlatformIO's "
                "platform and toolchain on first use)")
        raise DeviceError(f"firmware build for {board.name} failed{hint}:\n{tail}")
    elf = out_dir / "build" / board.pio_env / "firmware.elf"
    if not elf.exists():
        raise DeviceError(f"the build reported success but {elf} is missing")
    dest = out_dir / f"firmware-{board.pio_env}.elf"
    shutil.copyfile(elf, dest)
    flash, ram = elf_sizes(dest, board)
    return BuildResult(dest, flash, ram, log, seconds)


def elf_sizes(elf: Path, board: Board) -> tuple[int, int]:
    """(flash, static RAM) bytes from ``size`` (text+data, data+bss)."""
    tool = "arm-none-eabi-size" if board.core.startswith("cortex") else "size"
    try:
        out = subprocess.run([tool, str(elf)], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        return 0, 0
    m = re.search(r"^\s*(\d+)\s+(\d+)\s+(\d+)", out.stdout, re.M)
    if not m:
        return 0, 0
    text, data, bss = (int(v) for v in m.groups())
    return text + data, data + bss
