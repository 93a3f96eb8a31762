"""Where the project's non-Python parts live: board profiles, the firmware, the offline
PlatformIO wrapper.

They are not Python package data (the firmware is a PlatformIO project, built in place), so
tinysift needs a project folder: ``$TINYSIFT_ROOT`` when set, else the source checkout the
package was installed from (``pip install -e .``), else the current folder or one above it.
Nothing is looked up at import time, so an installed wheel imports fine and only the commands
that need the project folder say what is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

from tinysift.errors import TinysiftError

ROOT_ENV = "TINYSIFT_ROOT"
#: What makes a folder a tinysift project folder.
MARKERS = ("boards", "firmware/platformio.ini")


def is_project_root(path: Path) -> bool:
    return all((path / m).exists() for m in MARKERS)


def project_root() -> Path:
    """The project folder (see the module docstring for the search order)."""
    env = os.environ.get(ROOT_ENV)
    if env:
        root = Path(env).expanduser().resolve()
        if not is_project_root(root):
            raise TinysiftError(
                f"${ROOT_ENV}={env} is not a tinysift project folder (it needs "
                f"{' and '.join(MARKERS)}); point it at a clone of the tinysift repository")
        return root
    checkout = Path(__file__).resolve().parents[2]  # ROOT/host/tinysift/paths.py
    if is_project_root(checkout):
        return checkout
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if is_project_root(folder):
            return folder
    raise TinysiftError(
        "cannot find the tinysift project folder (board profiles in boards/ and the firmware "
        f"in firmware/); run from inside a clone of the repository or set {ROOT_ENV}=PATH")


def boards_dir() -> Path:
    return project_root() / "boards"


def firmware_dir() -> Path:
    return project_root() / "firmware"


def offline_pio() -> Path:
    """The wrapper that runs PlatformIO offline with the project's seeded core."""
    return project_root() / "tools" / "pio"


#: Where tinysift keeps what it can compute again (decoded image folders):
#: ``$TINYSIFT_CACHE_DIR``, else ``$XDG_CACHE_HOME/tinysift``, else ``~/.cache/tinysift``.
CACHE_ENV = "TINYSIFT_CACHE_DIR"


def cache_dir() -> Path:
    """The user's cache folder (:data:`CACHE_ENV`); anything in it may be deleted at any
    time, and is computed again when next needed."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "tinysift"
