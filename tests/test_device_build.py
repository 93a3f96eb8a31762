"""device/build.py's own logic, without a PlatformIO build: the build variables and the
toolchain that make a build's identity, the firmware sources' hash, the plan's paths, and
build_firmware's refusals and messages. A stand-in `pio` only for the stock-PlatformIO boards,
which cannot build here (their platforms download on first use, and there is no internet);
the offline boards' refusals run the real tools/pio or its absence."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from processes import running
from tinysift.boards import load_board
from tinysift.device.build import (
    BuildResult,
    build_environment,
    build_firmware,
    build_plan,
    describe_sizes,
    elf_sizes,
    export_backbone_training,
    firmware_source_hash,
    image_sizes,
    pio_core_dir,
    platformio_sizes,
    run_process_group,
    toolchain_identity,
)
from tinysift.errors import DeviceError, DeviceUnavailable
from tools_needed import need_tools

ROOT = Path(__file__).resolve().parents[1]
# PlatformIO's variables that change what a build compiles (its sysenvvar options), in the
# order build.py documents them
PIO_VARS = ("PLATFORMIO_BUILD_FLAGS", "PLATFORMIO_BUILD_SRC_FLAGS", "PLATFORMIO_BUILD_UNFLAGS",
            "PLATFORMIO_BUILD_SRC_FILTER", "PLATFORMIO_SRC_DIR", "PLATFORMIO_EXTRA_SCRIPTS")


@pytest.fixture(autouse=True)
def _no_build_variables(monkeypatch):
    """None of the caller's PlatformIO variables leak into a test."""
    for name in PIO_VARS:
        monkeypatch.delenv(name, raising=False)


# ---- a build's identity --------------------------------------------------------------------

@pytest.mark.parametrize("name", PIO_VARS)
def test_each_platformio_build_variable_is_in_the_build_environment(name, monkeypatch):
    """Each variable through which PlatformIO changes a build is part of its environment,
    its value without the surrounding blanks; a blank one is as if unset."""
    assert build_environment() == []
    monkeypatch.setenv(name, "  -DX=1 ")
    assert build_environment() == [f"{name}=-DX=1"]
    monkeypatch.setenv(name, "   ")
    assert build_environment() == []


def test_the_build_environment_lists_the_variables_in_their_documented_order(monkeypatch):
    """All set: one ``NAME=value`` each, in BUILD_ENV_VARS' order whatever the environment's
    (the identity must not change with the order they were exported in)."""
    for i, name in enumerate(reversed(PIO_VARS)):
        monkeypatch.setenv(name, f"v{i}")
    assert build_environment() == [f"{name}=v{len(PIO_VARS) - 1 - i}"
                                   for i, name in enumerate(PIO_VARS)]


def test_pio_core_dir_per_kind_of_board(tmp_path, monkeypatch):
    """Emulated boards and the project's own ports (a Nucleo) compile with the offline core
    ($TINYSIFT_PIO_CORE_DIR, ~ expanded, else tools/.pio-core); a stock-PlatformIO board
    (the Nano 33 BLE) with stock PlatformIO's ($PLATFORMIO_CORE_DIR, else ~/.platformio)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("TINYSIFT_PIO_CORE_DIR", raising=False)
    monkeypatch.delenv("PLATFORMIO_CORE_DIR", raising=False)
    qemu, nucleo, nano = (load_board(n) for n in ("qemu-mps2-an386", "nucleo_f411re",
                                                  "nano33ble"))
    assert pio_core_dir(qemu) == pio_core_dir(nucleo) == ROOT / "tools" / ".pio-core"
    assert pio_core_dir(nano) == tmp_path / ".platformio"
    monkeypatch.setenv("TINYSIFT_PIO_CORE_DIR", "~/offline")
    monkeypatch.setenv("PLATFORMIO_CORE_DIR", "~/stock")
    assert pio_core_dir(qemu) == pio_core_dir(nucleo) == tmp_path / "offline"
    assert pio_core_dir(nano) == tmp_path / "stock"


def _package(core: Path, name: str, package_json: str, gcc: str | None) -> None:
    """A toolchain package of an offline core: its package.json text and a compiler script
    (``gcc``: the shell body of bin/x-gcc; None: no compiler)."""
    pkg = core / "packages" / name
    (pkg / "bin").mkdir(parents=True)
    (pkg / "package.json").write_text(package_json)
    if gcc is not None:
        script = pkg / "bin" / "x-gcc"
        script.write_text(f"#!/bin/sh\n{gcc}\n")
        script.chmod(0o755)


def test_toolchain_identity_reads_what_it_can(tmp_path, monkeypatch):
    """The first line of a real compiler's multi-line --version (its name and version, not
    the copyright after it); nothing from a compiler that fails, even one that prints; the
    folder's name and version ``?`` for a package.json that is not JSON or not an object."""
    core = tmp_path / "core"
    monkeypatch.setenv("TINYSIFT_PIO_CORE_DIR", str(core))
    _package(core, "toolchain-a", "[1, 2]",
             "echo 'x-gcc (GCC) 13.2.1'; echo 'Copyright (C) 2023'; echo ''")
    _package(core, "toolchain-b", "{not json", "echo 'x-gcc: broken'; exit 1")
    _package(core, "toolchain-c", json.dumps({"name": "gcc-c", "version": "1.2"}), None)
    assert toolchain_identity(load_board("qemu-mps2-an386")) == (
        "toolchain-a@? (x-gcc (GCC) 13.2.1),toolchain-b@?,gcc-c@1.2")


def test_a_compiler_that_cannot_run_leaves_its_package_without_a_version(tmp_path,
                                                                        monkeypatch):
    """A toolchain whose compiler cannot be executed (no execute permission: a half-copied
    package) is listed by its package.json alone, as one whose compiler fails: the identity
    is still made, not a PermissionError out of every build and result lookup."""
    core = tmp_path / "core"
    monkeypatch.setenv("TINYSIFT_PIO_CORE_DIR", str(core))
    _package(core, "toolchain-a", json.dumps({"name": "gcc-a", "version": "2.0"}),
             "echo 'x-gcc (GCC) 13.2.1'")
    (core / "packages" / "toolchain-a" / "bin" / "x-gcc").chmod(0o644)
    assert toolchain_identity(load_board("qemu-mps2-an386")) == "gcc-a@2.0"


# ---- the firmware sources' hash --------------------------------------------------------------

def test_firmware_source_hash_follows_paths_and_contents_only(tmp_path, monkeypatch):
    """In a project folder of its own: an edit or a renamed file changes the hash, build
    output (.pio) and Python caches under the sources do not; a missing ``extra`` path is
    refused by name (a typo hashed nothing), an existing one changes the hash; a source folder
    the project lacks is hashed as empty."""
    (tmp_path / "firmware" / "src").mkdir(parents=True)
    (tmp_path / "firmware" / "platformio.ini").write_text("[env:x]\n")
    (tmp_path / "boards" / "ports" / "p").mkdir(parents=True)
    app = tmp_path / "firmware" / "src" / "app.c"
    app.write_text("int main(void) { return 0; }\n")
    (tmp_path / "boards" / "ports" / "p" / "port.c").write_text("void port(void) {}\n")
    monkeypatch.setenv("TINYSIFT_ROOT", str(tmp_path))
    first = firmware_source_hash()
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    app.write_text("int main(void) { return 1; }\n")
    assert firmware_source_hash() != first
    app.write_text("int main(void) { return 0; }\n")
    assert firmware_source_hash() == first
    for junk in ("firmware/src/.pio/build/app.o", "boards/ports/p/__pycache__/x.pyc"):
        (tmp_path / junk).parent.mkdir(parents=True)
        (tmp_path / junk).write_bytes(b"\x7fELF built")
    assert firmware_source_hash() == first
    app.rename(app.with_name("main.c"))  # the same bytes under another name
    assert firmware_source_hash() != first
    app.with_name("main.c").rename(app)
    with pytest.raises(FileNotFoundError, match=r"bench/prog\.c does not exist"):
        firmware_source_hash(("bench/prog.c",))
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "prog.c").write_text("int bench;\n")
    assert firmware_source_hash(("bench/prog.c",)) not in (first, firmware_source_hash())


# ---- the plan ------------------------------------------------------------------------------

def test_build_plan_paths_and_offline(tmp_path, monkeypatch):
    """The ELF is BUILD_DIR/<pio_env>/firmware.elf; an export given relative to the working
    folder reaches PlatformIO as an absolute path (it runs in firmware/); the project's own
    platforms build offline (tools/pio), a stock-PlatformIO board does not; an upload names
    its port."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run" / "export").mkdir(parents=True)
    qemu = build_plan(load_board("qemu-mps2-an386"), Path("run/export"), Path("run/device"))
    build = tmp_path / "run" / "device" / "build"
    assert qemu.build_dir == build and qemu.elf == build / "qemu-m4" / "firmware.elf"
    assert qemu.env["TS_EXPORT_DIR"] == str(tmp_path / "run" / "export")
    assert qemu.offline and qemu.cmd[0] == str(ROOT / "tools" / "pio")
    assert build_plan(load_board("nucleo_f411re"), None, tmp_path).offline
    nano = build_plan(load_board("nano33ble"), None, tmp_path, upload=True, port="/dev/ttyACM0")
    assert not nano.offline
    assert nano.cmd[-4:] == ["-t", "upload", "--upload-port", "/dev/ttyACM0"]


def test_an_upload_without_a_port_leaves_the_board_to_platformio(tmp_path):
    """`device flash` on a pio-upload board without --port builds with ``-t upload`` and no
    --upload-port (PlatformIO finds the board); a port without an upload uploads nothing."""
    nano = load_board("nano33ble")
    upload = build_plan(nano, None, tmp_path, upload=True)
    assert upload.cmd[-2:] == ["-t", "upload"] and "--upload-port" not in upload.cmd
    assert "-t" not in build_plan(nano, None, tmp_path, port="/dev/ttyACM0").cmd


def test_export_backbone_training_without_or_with_an_unreadable_export_json(tmp_path):
    """No export, or one without export.json (made before the field existed): the full
    firmware; an export.json that is not JSON: one DeviceError naming it and the fix."""
    assert export_backbone_training(None) is True
    assert export_backbone_training(tmp_path) is True
    (tmp_path / "export.json").write_text('{"backbone_training": fal')
    with pytest.raises(DeviceError, match=r"export\.json is not readable JSON \(.+\); run "
                                          r"`tinysift export` again$"):
        export_backbone_training(tmp_path)


# ---- build_firmware's refusals and messages ------------------------------------------------

def test_an_export_without_its_header_is_refused_before_any_build(tmp_path):
    """An export folder without ts_export.h: one line naming it and `tinysift export`, and
    nothing built (no build folder)."""
    export = tmp_path / "export"
    export.mkdir()
    with pytest.raises(DeviceError, match=r"export has no ts_export\.h; run `tinysift export` "
                                          r"first$"):
        build_firmware(export, load_board("qemu-mps2-an386"), tmp_path / "device")
    assert not (tmp_path / "device" / "build").exists()


def _project(folder: Path) -> Path:
    """A project folder of its own (``folder``): the repository's board profiles and
    platformio.ini, no tools/pio."""
    (folder / "firmware").mkdir(parents=True)
    (folder / "boards").symlink_to(ROOT / "boards")
    (folder / "firmware" / "platformio.ini").symlink_to(ROOT / "firmware" / "platformio.ini")
    return folder


def test_a_missing_platformio_names_the_fix_for_its_kind_of_board(tmp_path, monkeypatch):
    """A project folder without tools/pio (offline boards: run tools/setup.sh) and no `pio`
    anywhere (a stock board: install PlatformIO, which needs internet on first use)."""
    qemu, nano = load_board("qemu-mps2-an386"), load_board("nano33ble")
    monkeypatch.setenv("TINYSIFT_ROOT", str(_project(tmp_path / "project")))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(DeviceUnavailable, match=r"tools/pio not found: run tools/setup\.sh$"):
        build_firmware(None, qemu, tmp_path / "out")
    with pytest.raises(DeviceUnavailable, match=r"pio not found: install PlatformIO \(pip "
                                                 r"install platformio\); this board builds "
                                                 r"with stock PlatformIO, which needs "
                                                 r"internet on first use$"):
        build_firmware(None, nano, tmp_path / "out")


# A stand-in for stock PlatformIO (`pio run -d FIRMWARE -e ENV`), which cannot build here:
# it records its environment, then does what $FAKE_PIO says.
FAKE_PIO = """#!/bin/sh
env > "$FAKE_PIO_ENV"
case "$FAKE_PIO" in
  fail) i=1; while [ $i -le 30 ]; do echo "out $i"; i=$((i + 1)); done
        echo "Error: Unknown development platform" >&2; exit 1 ;;
  no-elf) exit 0 ;;
  slow) exec sleep 30 ;;
  *) mkdir -p "$PLATFORMIO_BUILD_DIR/$5"
     printf 'an ELF' > "$PLATFORMIO_BUILD_DIR/$5/firmware.elf" ;;
esac
"""


@pytest.fixture
def stock_pio(tmp_path, monkeypatch):
    """The stand-in `pio` first on PATH; returns the file where it records its
    environment."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pio").write_text(FAKE_PIO)
    (bin_dir / "pio").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PIO_ENV", str(tmp_path / "pio.env"))
    return tmp_path / "pio.env"


def _recorded(env_file: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)


def test_a_failed_stock_build_shows_its_last_25_lines_and_the_internet_hint(tmp_path,
                                                                            monkeypatch,
                                                                            stock_pio):
    """The failure's message is the last 25 lines of the build's stdout then stderr (where
    PlatformIO's error is), after the hint that a stock board needs internet."""
    monkeypatch.setenv("FAKE_PIO", "fail")
    with pytest.raises(DeviceUnavailable) as err:
        build_firmware(None, load_board("nano33ble"), tmp_path / "out")
    assert str(err.value) == (
        "firmware build for nano33ble failed (this board builds with stock PlatformIO, which "
        "needs internet for its platform and toolchain on first use):\n"
        + "\n".join(f"out {i}" for i in range(7, 31)) + "\nError: Unknown development platform")


def test_a_failed_offline_build_has_no_internet_hint(tmp_path, monkeypatch):
    """An emulated board builds offline (tools/pio, here a stand-in in a project folder of its
    own that fails as a compile error does): the message is its output, stdout then stderr,
    without the stock boards' hint about internet, which an offline build never needs."""
    project = _project(tmp_path / "project")
    (project / "tools").mkdir()
    pio = project / "tools" / "pio"
    pio.write_text("#!/bin/sh\necho 'Compiling app.o'\necho 'app.c:1:1: error: x' >&2\nexit 1\n")
    pio.chmod(0o755)
    monkeypatch.setenv("TINYSIFT_ROOT", str(project))
    with pytest.raises(DeviceUnavailable) as err:
        build_firmware(None, load_board("qemu-mps2-an386"), tmp_path / "out")
    assert str(err.value) == ("firmware build for qemu-mps2-an386 failed:\nCompiling app.o\n"
                              "app.c:1:1: error: x")


def test_a_stock_build_without_its_elf_or_past_its_time(tmp_path, monkeypatch, stock_pio):
    """A build that says it succeeded but wrote no ELF names the missing file; one past its
    timeout names the board and the time."""
    nano = load_board("nano33ble")
    monkeypatch.setenv("FAKE_PIO", "no-elf")
    elf = (tmp_path / "out" / "build" / "nano33ble" / "firmware.elf").resolve()
    with pytest.raises(DeviceUnavailable, match=rf"^the build reported success but "
                                                rf"{re.escape(str(elf))} is missing$"):
        build_firmware(None, nano, tmp_path / "out")
    monkeypatch.setenv("FAKE_PIO", "slow")
    with pytest.raises(DeviceUnavailable, match=r"^the firmware build for nano33ble took over "
                                                r"1 s$"):
        build_firmware(None, nano, tmp_path / "out", timeout=0.6)


def test_a_build_copies_its_elf_and_passes_only_its_own_export(tmp_path, monkeypatch,
                                                               stock_pio):
    """The ELF is copied to OUT/firmware-<pio_env>.elf; PlatformIO gets the export's absolute
    folder, and without an export none at all: a TS_EXPORT_DIR left in the caller's shell
    would have compiled another run's model into the app."""
    nano = load_board("nano33ble")
    monkeypatch.setenv("FAKE_PIO", "ok")
    monkeypatch.setenv("TS_EXPORT_DIR", str(tmp_path / "another-run" / "export"))
    res = build_firmware(None, nano, tmp_path / "out")
    assert res.elf == (tmp_path / "out" / "firmware-nano33ble.elf").resolve()
    assert res.elf.read_bytes() == b"an ELF" and (res.flash_bytes, res.ram_bytes) == (None, None)
    seen = _recorded(stock_pio)
    assert "TS_EXPORT_DIR" not in seen
    assert seen["PLATFORMIO_BUILD_DIR"] == str((tmp_path / "out" / "build").resolve())
    export = tmp_path / "run" / "export"
    export.mkdir(parents=True)
    (export / "ts_export.h").write_text("/* an export */\n")
    build_firmware(export, nano, tmp_path / "out")
    assert _recorded(stock_pio)["TS_EXPORT_DIR"] == str(export.resolve())


def _interrupt(signum: int, frame: object) -> None:
    """A SIGALRM handler standing in for Ctrl-C."""
    raise KeyboardInterrupt


@pytest.mark.parametrize("stopped_by", ["timeout", "ctrl-c"])
def test_a_stopped_build_leaves_none_of_its_processes(stopped_by, tmp_path):
    """run_process_group on a timeout or Ctrl-C kills the command's whole process group, not
    only the command: PlatformIO runs SCons, which runs the compilers (here the shell's
    background child), and those kept writing into the run's build folder. The exception goes
    on at once, not after the child that held the output pipes open."""
    pid_file = tmp_path / "child.pid"
    cmd = ["sh", "-c", f'sleep 30 & echo $! > "{pid_file}"; wait']
    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, _interrupt)
    try:
        if stopped_by == "timeout":
            with pytest.raises(subprocess.TimeoutExpired):
                run_process_group(cmd, dict(os.environ), timeout=1)
        else:
            signal.setitimer(signal.ITIMER_REAL, 1)
            with pytest.raises(KeyboardInterrupt):
                run_process_group(cmd, dict(os.environ), timeout=30)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 10
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while running(child):
        assert time.monotonic() < deadline, "the build's child outlived it"
        time.sleep(0.02)


# ---- image sizes ---------------------------------------------------------------------------

def tables_object(tmp_path: Path) -> Path:
    """A Cortex-M object of 4,000 bytes of data and 2,000 of bss, no code."""
    need_tools("arm-none-eabi-gcc", "arm-none-eabi-size")
    src = tmp_path / "tables.c"
    src.write_text("int table[1000] = {1};\nint zeros[500];\n")
    obj = tmp_path / "tables.o"
    subprocess.run(["arm-none-eabi-gcc", "-c", "-O1", str(src), "-o", str(obj)], check=True,
                   timeout=60)
    return obj


def test_image_sizes_are_text_and_data_in_flash_data_and_bss_in_ram(tmp_path):
    """elf_sizes: flash holds the code and the data's initial values (text + data), static
    RAM the data and the zeroed bss (data + bss); here an object of 4,000 bytes of data and
    2,000 of bss, no code. describe_sizes prints both with thousands separators."""
    obj = tables_object(tmp_path)
    brd = load_board("nucleo_f411re")
    assert elf_sizes(obj, brd) == (4000, 6000)
    assert describe_sizes(BuildResult(obj, 4000, 6000, "", 0.0), brd) == (
        "flash 4,000 B, static RAM 6,000 B")


def test_unknown_image_sizes_name_the_tool_and_its_package(tmp_path):
    """Sizes unknown (the ELF's size tool missing or unable to read it, and no PlatformIO
    summary in the build's log): the line names the tool that reads this board's ELF and
    how to get it. A Cortex-M's comes from Debian; the host's binutils read no Xtensa ELF
    (the ESP32-S3), so installing them is no fix: its toolchain is PlatformIO's."""
    def line(board: str) -> str:
        return describe_sizes(BuildResult(tmp_path / "firmware.elf", None, None, "", 0.0),
                              load_board(board))

    assert line("nucleo_f411re") == (
        "flash and static RAM unknown (arm-none-eabi-size not found or cannot read the ELF, "
        "and the build's log has no PlatformIO size summary; install it, e.g. sudo apt-get "
        "install binutils-arm-none-eabi)")
    assert line("esp32-s3") == (
        "flash and static RAM unknown (size not found or cannot read the ELF, and the build's "
        "log has no PlatformIO size summary; the xtensa-lx7 toolchain's size reads it "
        "(PlatformIO installs it with the board's platform, under packages/toolchain-*/bin))")


#: The end of an ESP32-S3 build's log (espressif32 platform), which the host's ``size``
#: cannot measure.
ESP32_BUILD_TAIL = """\
Building .pio/build/esp32-s3/firmware.bin
RAM:   [=         ]   9.8% (used 32100 bytes from 327680 bytes)
Flash: [==        ]  15.2% (used 508123 bytes from 3342336 bytes)
esptool.py v4.5.1
"""


def test_image_sizes_fall_back_to_platformio_s_summary(tmp_path):
    """An ELF the host's tools cannot read (here not an ELF at all, as an Xtensa image is
    to Debian's `size`): the sizes are PlatformIO's own lines from the build's log, flash and
    RAM each from its line; a log without both lines leaves them unknown, never 0 or half
    known. A readable ELF's own sizes come first."""
    image = tmp_path / "firmware.elf"
    image.write_bytes(b"\x7fELF not a Cortex-M image")
    esp32 = load_board("esp32-s3")
    assert platformio_sizes(ESP32_BUILD_TAIL) == {
        "ram": {"used": 32100, "of": 327680}, "flash": {"used": 508123, "of": 3342336}}
    assert image_sizes(image, esp32, ESP32_BUILD_TAIL) == (508123, 32100)
    flash_only = "\n".join(x for x in ESP32_BUILD_TAIL.splitlines() if not x.startswith("RAM"))
    assert image_sizes(image, esp32, flash_only) == (None, None)
    assert image_sizes(image, esp32, "") == (None, None)
    assert image_sizes(tables_object(tmp_path), load_board("nucleo_f411re"),
                       ESP32_BUILD_TAIL) == (4000, 6000)
