# tinysift: SCons builder of the local QEMU dev-platform (mps2-an386 / mps2-an500).
#
# Compiles the project with Debian's arm-none-eabi-gcc (PlatformIO package
# toolchain-gccarmnoneeabi, seeded by tools/pio_seed.sh as symlinks), links the runtime in
# ../runtime (portable formatter, ts_platform.h) and ./runtime (start-up, UART, SysTick,
# semihosting), and runs the ELF in qemu-system-arm for the `upload` / `exec` targets.
#
# Board options (board JSON "qemu" section, or `board_qemu.<key> = ...` in platformio.ini):
#   machine       QEMU machine (mps2-an386, mps2-an500)
#   icount_shift  -icount shift=N (deterministic; ts_cycles() counts instructions either way)
#   timeout       seconds before `timeout` kills QEMU
#   serial        QEMU -serial backend: stdio (default) or e.g.
#                 tcp:127.0.0.1:5555,server=on,wait=on  (host: pyserial socket://127.0.0.1:5555)
# The environment variables TINYSIFT_QEMU_SERIAL, TINYSIFT_QEMU_TIMEOUT and
# TINYSIFT_QEMU_ICOUNT_SHIFT override these for one call.

import os
import shlex

from SCons.Script import (  # pylint: disable=import-error
    COMMAND_LINE_TARGETS,
    AlwaysBuild,
    Default,
    DefaultEnvironment,
)

env = DefaultEnvironment()
platform = env.PioPlatform()
board = env.BoardConfig()

PLATFORM_DIR = platform.get_dir()
COMMON_DIR = os.path.normpath(os.path.join(PLATFORM_DIR, os.pardir, "runtime"))
if not os.path.isdir(os.path.join(COMMON_DIR, "include")):
    raise SystemExit(
        f"tinysift platform-qemu: the shared runtime {COMMON_DIR} is missing; the platform must "
        "stay a sibling of boards/runtime (reference it with platform = symlink://...)"
    )


def board_opt(key, default=None):
    try:
        value = board.get(key)
    except KeyError:
        return default
    return default if value in (None, "") else value


cpu = board_opt("build.cpu", "cortex-m4")
fpu = board_opt("build.fpu", "")
float_abi = board_opt("build.float_abi", "hard" if fpu else "soft")
machine_flags = [f"-mcpu={cpu}", "-mthumb"]
if fpu and float_abi != "soft":
    machine_flags += [f"-mfpu={fpu}", f"-mfloat-abi={float_abi}"]
else:
    machine_flags += ["-mfloat-abi=soft"]

if env.get("PROGNAME", "program") == "program":
    env.Replace(PROGNAME="firmware")

env.Replace(
    AR="arm-none-eabi-gcc-ar",
    AS="arm-none-eabi-as",
    CC="arm-none-eabi-gcc",
    CXX="arm-none-eabi-g++",
    OBJCOPY="arm-none-eabi-objcopy",
    RANLIB="arm-none-eabi-gcc-ranlib",
    SIZETOOL="arm-none-eabi-size",
    ARFLAGS=["rc"],
    PROGSUFFIX=".elf",
    # flash = vectors + code + read-only data + .data's load image; RAM = stack + data + bss + noinit
    SIZEPROGREGEXP=r"^(?:\.isr_vector|\.text|\.ARM\.extab|\.ARM\.exidx|\.init_array|\.data)\s+(\d+).*",
    SIZEDATAREGEXP=r"^(?:\.stack|\.data|\.bss|\.noinit)\s+(\d+).*",
    SIZECHECKCMD="$SIZETOOL -A -d $SOURCES",
    SIZEPRINTCMD="$SIZETOOL -B -d $SOURCES",
)

env.Append(
    ASFLAGS=machine_flags,
    ASPPFLAGS=["-x", "assembler-with-cpp"],
    CCFLAGS=machine_flags
    + [
        "-O2",
        "-g",
        "-ffunction-sections",
        "-fdata-sections",
        "-fno-common",
        "-Wall",
    ],
    CXXFLAGS=["-fno-rtti", "-fno-exceptions"],
    CPPDEFINES=[
        "TS_TARGET_QEMU",
        ("F_CPU", "$BOARD_F_CPU"),
        ("TS_MPS2_SYSCLK_HZ", "25000000u"),
    ],
    CPPPATH=[os.path.join(COMMON_DIR, "include"), os.path.join(PLATFORM_DIR, "runtime")],
    LINKFLAGS=machine_flags
    + [
        "--specs=nano.specs",
        "-nostartfiles",
        "-Wl,--gc-sections",
        "-Wl,-Map,${BUILD_DIR}/${PROGNAME}.map",
        "-Wl,--no-warn-rwx-segments",
    ],
    LIBS=["m"],
)

# Linker script: the board's (platform ldscripts/), or a project-relative / absolute path.
ldscript = board_opt("build.ldscript", "qemu_mps2.ld")
if not os.path.isabs(ldscript):
    in_project = os.path.join(env.subst("$PROJECT_DIR"), ldscript)
    ldscript = (
        in_project
        if os.path.isfile(in_project)
        else os.path.join(PLATFORM_DIR, "ldscripts", ldscript)
    )
env.Replace(LDSCRIPT_PATH=ldscript)

# The runtime is linked as objects (not an archive) so the vector table and the printf
# replacements always win over newlib's.
env.BuildSources(os.path.join("$BUILD_DIR", "ts_runtime"), os.path.join(COMMON_DIR, "src"))
env.BuildSources(
    os.path.join("$BUILD_DIR", "ts_runtime_qemu"), os.path.join(PLATFORM_DIR, "runtime")
)

target_elf = env.BuildProgram()

target_bin = env.Command(
    os.path.join("$BUILD_DIR", "${PROGNAME}.bin"),
    target_elf,
    env.VerboseAction("$OBJCOPY -O binary $SOURCES $TARGET", "Building $TARGET"),
)

AlwaysBuild(
    env.Alias("size", target_elf, env.VerboseAction("$SIZEPRINTCMD", "Calculating size $SOURCE"))
)

# ---- run in QEMU: upload / exec ---------------------------------------------------------


def qemu_setting(key, env_var, default):
    return os.environ.get(env_var) or str(board_opt("qemu." + key, default))


qemu_machine = str(board_opt("qemu.machine", board_opt("build.mcu", "mps2-an386")))
qemu_shift = qemu_setting("icount_shift", "TINYSIFT_QEMU_ICOUNT_SHIFT", "6")
qemu_timeout = qemu_setting("timeout", "TINYSIFT_QEMU_TIMEOUT", "60")
qemu_serial = qemu_setting("serial", "TINYSIFT_QEMU_SERIAL", "stdio")

env.Replace(
    UPLOADER="qemu-system-arm",
    QEMU_TIMEOUT=qemu_timeout,
    # fmt: off
    UPLOADERFLAGS=[
        "-machine",
        qemu_machine,
        "-nographic",
        "-monitor",
        "none",
        "-serial",
        qemu_serial,
        "-icount",
        f"shift={qemu_shift}",
        "-semihosting-config",
        "enable=on,target=native",
    ],
    # fmt: on
    UPLOADCMD="timeout --foreground $QEMU_TIMEOUT $UPLOADER $UPLOADERFLAGS -kernel $SOURCE",
)

if "__test" in COMMAND_LINE_TARGETS:
    # `pio test` "uploads" before testing; the test itself runs QEMU (test_testing_command).
    upload_action = env.VerboseAction(
        lambda **_: None, "Nothing to flash: the test command runs $SOURCE in QEMU"
    )
else:
    upload_action = env.VerboseAction(
        "$UPLOADCMD",
        f"Running $SOURCE in QEMU {qemu_machine} (exit status = firmware's; "
        f"timeout {qemu_timeout} s)",
    )

AlwaysBuild(env.Alias("upload", target_elf, upload_action))
AlwaysBuild(env.Alias("exec", target_elf, upload_action))

# The exact command line, for scripts: `pio run -e qemu-m4 -t qemu_cmd`.
AlwaysBuild(
    env.Alias(
        "qemu_cmd",
        target_elf,
        env.VerboseAction(
            lambda target, source, env: print(
                shlex.join(
                    [env.subst("$UPLOADER")]
                    + [env.subst(f) for f in env["UPLOADERFLAGS"]]
                    + ["-kernel", str(source[0].get_abspath())]
                )
            ),
            "",
        ),
    )
)

Default([target_elf, target_bin])
