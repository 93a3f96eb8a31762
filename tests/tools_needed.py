"""Tests that need a tool (a compiler, QEMU, PlatformIO): skipped where it is missing, failed
when ``CI`` is set (``.ci/run`` sets ``CI=true``), so that CI never passes a test it skipped;
and the project's own tools/*.py scripts loaded as modules."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

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


def load_tool(name: str) -> ModuleType:
    """``tools/NAME.py`` (not a package) as a module, registered in ``sys.modules`` (a
    script's dataclasses look their module up there), with tools/ on ``sys.path`` as when
    it runs as a script (the scripts share tools/_args.py)."""
    if str(ROOT / "tools") not in sys.path:
        sys.path.insert(0, str(ROOT / "tools"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
