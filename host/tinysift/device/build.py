"""Build (and for real boards upload) the firmware for one run's export with PlatformIO."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tinysift.boards import Board, builds_offline
from tinysift.errors import DeviceError, DeviceUnavailable
from tinysift.export.memory import has_backbone_buffers
from tinysift.paths import firmware_dir, offline_pio, project_root

# The flag of a head-only firmware (firmware/src/app.h: no buffers for update=last-block /
# bias, nor the raw .tflite their scales come from), for an export whose export.json says
# ``"backbone_training": false`` (``tinysift export --head-only``, ``tinysift adapt
# --update head``); it is added to PlatformIO's PLATFORMIO_BUILD_FLAGS.
HEAD_ONLY_FLAG = "-DTS_APP_BACKBONE_TRAINING=0"
# Where a head-only build compiles, beside a full build's ``build``: the two never share
# objects.
HEAD_ONLY_BUILD = "build-head-only"

# Everything a firmware build compiles besides the export, relative to the project folder:
# a change here means a rebuild.
FIRMWARE_SOURCES = ("firmware/src", "firmware/lib", "firmware/platformio.ini",
                    "firmware/scripts", "boards/runtime", "boards/platform-qemu",
                    "boards/platform-stm32", "boards/platform-native", "boards/ports")


# The variables of the caller's environment through which PlatformIO changes what a build
# compiles (its `sysenvvar` options: build flags, source filter, extra scripts); the build
# passes them on, so they are part of a build's identity (a stale ELF must not stand in).
BUILD_ENV_VARS = ("PLATFORMIO_BUILD_FLAGS", "PLATFORMIO_BUILD_SRC_FLAGS",
                  "PLATFORMIO_BUILD_UNFLAGS", "PLATFORMIO_BUILD_SRC_FILTER",
                  "PLATFORMIO_SRC_DIR", "PLATFORMIO_EXTRA_SCRIPTS")


def build_environment() -> list[str]:
    """``NAME=value`` of every :data:`BUILD_ENV_VARS` set (non-empty) in this process's
    environment, in that order: what a build takes from the caller besides the sources."""
    return [f"{name}={os.environ[name].strip()}" for name in BUILD_ENV_VARS
            if os.environ.get(name, "").strip()]


#: Where tools/pio keeps the offline PlatformIO core (its $TINYSIFT_PIO_CORE_DIR overrides it).
OFFLINE_CORE_ENV = "TINYSIFT_PIO_CORE_DIR"
#: :func:`toolchain_identity` of a core without a toolchain yet (a build installs one).
NO_TOOLCHAIN = "none"


def pio_core_dir(board: Board) -> Path:
    """The PlatformIO core whose packages a build for ``board`` compiles with: the project's
    offline core (tools/pio: ``$TINYSIFT_PIO_CORE_DIR``, else tools/.pio-core) for emulated
    boards and the project's own ports, else stock PlatformIO's (``$PLATFORMIO_CORE_DIR``,
    else ~/.platformio)."""
    if board.emulated or builds_offline(board):
        env = os.environ.get(OFFLINE_CORE_ENV, "").strip()
        return Path(env).expanduser() if env else project_root() / "tools" / ".pio-core"
    env = os.environ.get("PLATFORMIO_CORE_DIR", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".platformio"


def toolchain_identity(board: Board) -> str:
    """The compilers a build for ``board`` uses: every ``toolchain-*`` package of its
    PlatformIO core (:func:`pio_core_dir`), as ``name@version`` from its package.json and
    the first line of its C compiler's ``--version``; ``none`` when the core has none yet.

    The version line is needed beside package.json: the offline core's toolchain is a folder
    of links to the system's arm-none-eabi binaries, whose package.json keeps the version
    they had when tools/pio_seed.sh ran (an apt upgrade of the compiler leaves it as it was).
    Every toolchain of the core is listed, not the one the board's platform picks: reading
    the platform's choice needs PlatformIO; an installed toolchain only costs a rebuild.
    """
    import json

    items = []
    for pkg in sorted((pio_core_dir(board) / "packages").glob("toolchain-*")):
        try:
            meta = json.loads((pkg / "package.json").read_text())
        except (OSError, ValueError):
            meta = {}
        if not isinstance(meta, dict):
            meta = {}
        compilers = sorted(p for p in (pkg / "bin").glob("*gcc") if p.is_file())
        version = _compiler_version(compilers[0]) if compilers else ""
        items.append(f"{meta.get('name', pkg.name)}@{meta.get('version', '?')}"
                     + (f" ({version})" if version else ""))
    return ",".join(items) or NO_TOOLCHAIN


def _compiler_version(compiler: Path) -> str:
    """The first line of ``compiler --version`` (empty when it does not run), run once per
    binary: the cache is keyed by the file it resolves to, its size and its mtime, which an
    upgrade changes."""
    real = compiler.resolve()
    try:
        st = real.stat()
    except OSError:
        return ""
    return _version_line(str(real), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _version_line(compiler: str, size: int, mtime_ns: int) -> str:
    try:
        out = subprocess.run([compiler, "--version"], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else ""


def firmware_source_hash(extra: tuple[str, ...] = ()) -> str:
    """sha256 over the paths and contents of the firmware sources (not the build output);
    ``extra``: more files or folders (relative to the project root), hashed after them, e.g.
    a bench's own C program."""
    import hashlib

    root_dir = project_root()
    h = hashlib.sha256()
    for rel in (*FIRMWARE_SOURCES, *extra):
        root = root_dir / rel
        if rel in extra and not root.exists():  # a typo would hash nothing, silently
            raise FileNotFoundError(f"firmware_source_hash: {root} does not exist")
        files = [root] if root.is_file() else sorted(f for f in root.rglob("*") if f.is_file())
        for f in files:
            if ".pio" in f.parts or "__pycache__" in f.parts:
                continue
            h.update(str(f.relative_to(root_dir)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


@dataclass
class BuildResult:
    elf: Path
    flash_bytes: int | None  # None: unknown (no size tool for the ELF, :func:`elf_sizes`)
    ram_bytes: int | None
    log: str
    seconds: float


@dataclass
class BuildPlan:
    """The PlatformIO command of one build (``env``: the variables it sets) and where the
    ELF lands; ``offline``: the project's own platforms (tools/pio), else stock PlatformIO."""

    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)
    build_dir: Path = Path()
    offline: bool = True

    @property
    def elf(self) -> Path:
        return self.build_dir / self.cmd[self.cmd.index("-e") + 1] / "firmware.elf"

    def shell(self) -> str:
        """The command as one shell line (what --dry-run prints)."""
        import shlex

        return " ".join([*(f"{k}={shlex.quote(v)}" for k, v in self.env.items()),
                         shlex.join(self.cmd)])


def export_backbone_training(export_dir: Path | None) -> bool:
    """Whether the firmware for ``export_dir`` holds the update=last-block / bias buffers.

    Parameters
    ----------
    export_dir : an export folder (``RUN/export``), or None (the app without a model)

    Returns
    -------
    bool
        export.json's ``backbone_training``: False for a head-only export; True for one that
        says so, one made before the field existed (every firmware then had the buffers), a
        bare ``tinysift engine export`` and no export.

    Raises
    ------
    DeviceError
        export.json is not readable JSON (export again).
    """
    import json

    if export_dir is None or not (Path(export_dir) / "export.json").exists():
        return True
    path = Path(export_dir) / "export.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DeviceError(f"{path} is not readable JSON ({exc}); run `tinysift export` "
                          "again") from exc
    return has_backbone_buffers(info)


def pio_command(board: Board) -> list[str]:
    """Emulated boards and the project's own ports build offline through tools/pio; the
    boards on stock platforms need stock PlatformIO (its platforms and toolchains download on
    first use)."""
    if board.emulated or builds_offline(board):
        return [str(offline_pio())]
    pio = shutil.which("pio") or str(project_root() / ".venv" / "bin" / "pio")
    return [pio]


def build_plan(board: Board, export_dir: Path | None, out_dir: Path, upload: bool = False,
               port: str | None = None) -> BuildPlan:
    """The build of the app for ``board`` with ``export_dir`` compiled in (None: the app
    without a model, which answers name, info, reset and calib) into ``out_dir/build``;
    ``upload``: PlatformIO uploads it too (the boards flashed with ``pio run -t upload``).

    A head-only export (:func:`export_backbone_training` False) builds with
    :data:`HEAD_ONLY_FLAG` appended to the caller's PLATFORMIO_BUILD_FLAGS (PlatformIO adds
    them to every source it compiles, the app's included) into ``out_dir/build-head-only``,
    so its objects never mix with a full build's."""
    head_only = not export_backbone_training(export_dir)
    build = Path(out_dir).resolve() / (HEAD_ONLY_BUILD if head_only else "build")
    env = {"PLATFORMIO_BUILD_DIR": str(build)}
    if export_dir is not None:
        env = {"TS_EXPORT_DIR": str(Path(export_dir).resolve()), **env}
    if head_only:
        flags = os.environ.get("PLATFORMIO_BUILD_FLAGS", "").strip()
        env["PLATFORMIO_BUILD_FLAGS"] = f"{flags} {HEAD_ONLY_FLAG}".strip()
    cmd = pio_command(board) + ["run", "-d", str(firmware_dir()), "-e", board.pio_env]
    if upload:
        cmd += ["-t", "upload"] + (["--upload-port", port] if port else [])
    return BuildPlan(cmd, env, Path(env["PLATFORMIO_BUILD_DIR"]),
                     offline=cmd[0] == str(offline_pio()))


def run_process_group(cmd: list[str], env: dict[str, str], timeout: float
                      ) -> subprocess.CompletedProcess:
    """``cmd`` in a process group of its own, its output captured; on a timeout, Ctrl-C or
    SIGTERM (an exception here) the whole group is killed before the exception goes on.
    PlatformIO runs SCons, which runs the compilers: killing ``pio`` alone left them writing
    into the run's build folder."""
    import signal

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def build_firmware(export_dir: Path | None, board: Board, out_dir: Path, upload: bool = False,
                   port: str | None = None, timeout: float = 900) -> BuildResult:
    """Compile the app with ``export_dir`` compiled in (None: without a model); copy the ELF
    to ``out_dir``.

    Each run builds in its own folder (``out_dir/build``; ``out_dir/build-head-only`` for
    a head-only export, :func:`build_plan`) so runs, and a run's two kinds of firmware,
    never share objects.
    """
    import time

    if export_dir is not None:
        export_dir = Path(export_dir).resolve()
        if not (export_dir / "ts_export.h").exists():
            raise DeviceError(f"{export_dir} has no ts_export.h; run `tinysift export` first")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = build_plan(board, export_dir, out_dir, upload=upload, port=port)
    env = {k: v for k, v in os.environ.items() if k != "TS_EXPORT_DIR"}
    env.update(plan.env)
    start = time.perf_counter()
    try:
        proc = run_process_group(plan.cmd, env, timeout)
    except FileNotFoundError as exc:
        raise DeviceUnavailable(f"{plan.cmd[0]} not found: " + (
            "run tools/setup.sh" if plan.offline else
            "install PlatformIO (pip install platformio); this board builds with stock "
            "PlatformIO, which needs internet on first use")) from exc
    except subprocess.TimeoutExpired as exc:
        raise DeviceUnavailable(
            f"the firmware build for {board.name} took over {timeout:.0f} s") from exc
    seconds = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        tail = "\n".join(log.strip().splitlines()[-25:])
        hint = ("" if plan.offline else " (this board builds with stock PlatformIO, which "
                "needs internet for its platform and toolchain on first use)")
        raise DeviceUnavailable(f"firmware build for {board.name} failed{hint}:\n{tail}")
    elf = plan.elf
    if not elf.exists():
        raise DeviceUnavailable(f"the build reported success but {elf} is missing")
    dest = out_dir / f"firmware-{board.pio_env}.elf"
    shutil.copyfile(elf, dest)
    flash, ram = image_sizes(dest, board, log)
    return BuildResult(dest, flash, ram, log, seconds)


def size_tool(board: Board) -> str:
    """The ``size`` that reads the board's ELF."""
    return "arm-none-eabi-size" if board.core.startswith("cortex") else "size"


#: PlatformIO's own size summary at the end of a build, e.g.
#: ``RAM:   [=         ]   1.7% (used 70512 bytes from 4194304 bytes)``.
PLATFORMIO_SIZE_LINE = re.compile(
    r"^(RAM|Flash):\s*\[.*?\]\s*[\d.]+%\s*\(used (\d+) bytes from (\d+) bytes\)", re.M)


def platformio_sizes(log: str) -> dict[str, dict[str, int]]:
    """PlatformIO's ``RAM:`` and ``Flash:`` lines in a build's log, as
    ``{"ram": {"used": N, "of": M}, "flash": {...}}`` (the kinds the log has)."""
    return {kind.lower(): {"used": int(used), "of": int(of)}
            for kind, used, of in PLATFORMIO_SIZE_LINE.findall(log)}


def elf_sizes(elf: Path, board: Board) -> tuple[int | None, int | None]:
    """(flash, static RAM) bytes from ``size`` (text+data, data+bss); (None, None) when
    unknown: the tool is missing or cannot read the ELF (a size of 0 would read as an
    empty image)."""
    try:
        out = subprocess.run([size_tool(board), str(elf)], capture_output=True, text=True,
                             timeout=60)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None, None
    m = re.search(r"^\s*(\d+)\s+(\d+)\s+(\d+)", out.stdout, re.M)
    if out.returncode != 0 or not m:
        return None, None
    text, data, bss = (int(v) for v in m.groups())
    return text + data, data + bss


def image_sizes(elf: Path, board: Board, log: str) -> tuple[int | None, int | None]:
    """(flash, static RAM) bytes of a built image: :func:`elf_sizes`, else the build log's
    PlatformIO summary (:func:`platformio_sizes`), which the board's own toolchain measured.
    The host's ``size`` reads no Xtensa ELF (the ESP32-S3); on the Cortex-M builds both give
    the same bytes (benchmarks/results/firmware_size.json records both)."""
    flash, ram = elf_sizes(elf, board)
    if flash is not None and ram is not None:
        return flash, ram
    summary = platformio_sizes(log)
    if "flash" not in summary or "ram" not in summary:
        return None, None
    return summary["flash"]["used"], summary["ram"]["used"]


def describe_sizes(res: BuildResult, board: Board) -> str:
    """``flash N B, static RAM M B``, or why they are unknown."""
    if res.flash_bytes is None or res.ram_bytes is None:
        tool = size_tool(board)
        if tool == "size":  # not a Cortex-M: the host's binutils read no other target
            fix = (f"the {board.core} toolchain's size reads it (PlatformIO installs it with "
                   f"the board's platform, under packages/toolchain-*/bin)")
        else:
            fix = "install it, e.g. sudo apt-get install binutils-arm-none-eabi"
        return (f"flash and static RAM unknown ({tool} not found or cannot read the ELF, "
                f"and the build's log has no PlatformIO size summary; {fix})")
    return f"flash {res.flash_bytes:,} B, static RAM {res.ram_bytes:,} B"
