"""Whether a process still runs, for the tests that check a child was stopped with its parent
(tests/test_boards.py, test_device_build.py, test_faults_qemu.py, test_qemu_start.py)."""

from __future__ import annotations

from pathlib import Path


def running(pid: int) -> bool:
    """Whether ``pid`` runs: a zombie (dead, not yet reaped by its new parent) does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        state = stat[stat.rfind(")") + 2:].split()[0]  # after the name, which may hold ")"
    except (OSError, IndexError):
        return False
    return state != "Z"
