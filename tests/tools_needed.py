"""Tests that need a tool (a compiler, QEMU, PlatformIO): skipped where it is missing, failed
when ``CI`` is set (``.ci/run`` sets ``CI=true``), so that CI never passes a test it skipped."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE_TOOLS = ("qemu-system-arm", "arm-none-eabi-gcc", "arm-none-eabi-size")


def need_tools(*tools: str, pio: bool = False) -> None:
    """Skip (fail under CI) the calling test or fixture when a tool is not on PATH, or, with
    ``pio``, when the project's PlatformIO (.venv/bin/pio, tools/setup.sh) is missing."""
    missing = [t for t in tools if shutil.which(t) is None]
    if pio and not (ROOT / ".venv" / "bin" / "pio").exists():
        missing.append(".venv/bin/pio")
    if missing:
        msg = f"tools missing ({', '.join(missing)}): run tools/setup.sh"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
