# tinysift: what the SCons builders of the local Cortex-M dev-platforms share
# (boards/platform-qemu: QEMU mps2; boards/platform-stm32: the STM32 ports and their QEMU twin).
#
# build_image() compiles the project with Debian's arm-none-eabi-gcc (PlatformIO package
# toolchain-gccarmnoneeabi, seeded by tools/pio_seed.sh as symlinks), links the shared runtime
# (../src: the portable formatter; .: reset, faults, stack, semihosting, libc glue) and the
# platform's own runtime folders, and makes the ELF, the raw .bin and the `size` target.
# qemu_targets() adds `upload` / `exec` (run the ELF in qemu-system-arm) and `qemu_cmd`.
#
# Board options (board JSON "qemu" section, or `board_qemu.<key> = ...` in platformio.ini):
#   machine       QEMU machine (mps2-an386, mps2-an500, netduinoplus2)
#   serial_index  which -serial the board's console is (0: the first; netduinoplus2's USART2
#                 is the second, so `-serial null` goes first)
#   icount_shift  -icount shift=N (deterministic; ts_cycles() counts instructions either way)
#   timeout       seconds before `timeout` kills QEMU
#   serial        QEMU -serial backend: stdio (default) or e.g.
#                 tcp:127.0.0.1:5555,server=on,wait=on  (host: pyserial socket://127.0.0.1:5555)
# The environment variables TINYSIFT_QEMU_SERIAL, TINYSIFT_QEMU_TIMEOUT and
# TINYSIFT_QEMU_ICOUNT_SHIFT override these for one call.

import os
import shlex

from SCons.Script import COMMAND_LINE_TARGETS, AlwaysBuild  # pylint: disable=import-error

CORTEXM_DIR = os.path.dirname(os.path.abspath(__file__))
COMMON_DIR = os.path.dirname(CORTEXM_DIR)  # boards/runtime


def board_opt(board, key, default=None):
    try:
        value = board.get(key)
    except KeyError:
        return default
    return default if value in (None, "") else value


def machine_flags(board):
    cpu = board_opt(board, "build.cpu", "cortex-m4")
    fpu = board_opt(board, "build.fpu", "")
    float_abi = board_opt(board, "build.float_abi", "hard" if fpu else "soft")
    flags = [f"-mcpu={cpu}", "-mthumb"]
    if fpu and float_abi != "soft":
        return flags + [f"-mfpu={fpu}", f"-mfloat-abi={float_abi}"]
    return flags + ["-mfloat-abi=soft"]


def build_image(env, board, platform_dir, defines, default_ldscript, runtime_dirs):
    """Toolchain, flags, linker script and runtime for one Cortex-M board; returns the ELF
    and .bin targets. ``runtime_dirs``: (build subfolder, source folder) pairs of the
    platform's own runtime, linked as objects (not an archive) so that the vector table and
    the printf replacements always win over newlib's."""
    mflags = machine_flags(board)
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
        # flash = vectors + code + read-only data + .data's load image;
        # RAM = stack + data + bss + noinit
        SIZEPROGREGEXP=r"^(?:\.isr_vector|\.text|\.ARM\.extab|\.ARM\.exidx|\.init_array|\.data)\s+(\d+).*",
        SIZEDATAREGEXP=r"^(?:\.stack|\.data|\.bss|\.noinit)\s+(\d+).*",
        SIZECHECKCMD="$SIZETOOL -A -d $SOURCES",
        SIZEPRINTCMD="$SIZETOOL -B -d $SOURCES",
    )
    env.Append(
        ASFLAGS=mflags,
        ASPPFLAGS=["-x", "assembler-with-cpp"],
        CCFLAGS=mflags
        + ["-O2", "-g", "-ffunction-sections", "-fdata-sections", "-fno-common", "-Wall"],
        CXXFLAGS=["-fno-rtti", "-fno-exceptions"],
        CPPDEFINES=defines,
        CPPPATH=[os.path.join(COMMON_DIR, "include"), CORTEXM_DIR]
        + [src for _, src in runtime_dirs],
        LINKFLAGS=mflags
        + [
            "--specs=nano.specs",
            "-nostartfiles",
            "-Wl,--gc-sections",
            # the path as one word: "$BUILD_DIR" expanded in the flag split a run folder
            # with a space in its path in two ("ld: cannot find u/base/.../firmware.map")
            "-Wl,-Map,"
            + os.path.join(env.subst("$BUILD_DIR", raw=1), env.subst("$PROGNAME") + ".map"),
            "-Wl,--no-warn-rwx-segments",
            "-L" + CORTEXM_DIR,  # INCLUDE ts_sections.ld
        ],
        LIBS=["m"],
    )
    # Linker script: the board's (platform ldscripts/), or a project-relative / absolute path.
    ldscript = board_opt(board, "build.ldscript", default_ldscript)
    if not os.path.isabs(ldscript):
        in_project = os.path.join(env.subst("$PROJECT_DIR"), ldscript)
        ldscript = (
            in_project
            if os.path.isfile(in_project)
            else os.path.join(platform_dir, "ldscripts", ldscript)
        )
    env.Replace(LDSCRIPT_PATH=ldscript)

    env.BuildSources(os.path.join("$BUILD_DIR", "ts_runtime"), os.path.join(COMMON_DIR, "src"))
    env.BuildSources(os.path.join("$BUILD_DIR", "ts_runtime_cm"), CORTEXM_DIR)
    for sub, src in runtime_dirs:
        env.BuildSources(os.path.join("$BUILD_DIR", sub), src)

    target_elf = env.BuildProgram()
    target_bin = env.Command(
        os.path.join("$BUILD_DIR", "${PROGNAME}.bin"),
        target_elf,
        env.VerboseAction("$OBJCOPY -O binary $SOURCES $TARGET", "Building $TARGET"),
    )
    AlwaysBuild(
        env.Alias(
            "size", target_elf, env.VerboseAction("$SIZEPRINTCMD", "Calculating size $SOURCE")
        )
    )
    return target_elf, target_bin


# ---- run in QEMU: upload / exec / qemu_cmd ------------------------------------------------


def qemu_targets(env, board, target_elf, default_machine="mps2-an386"):
    def setting(key, env_var, default):
        return os.environ.get(env_var) or str(board_opt(board, "qemu." + key, default))

    machine = str(board_opt(board, "qemu.machine", board_opt(board, "build.mcu", default_machine)))
    shift = setting("icount_shift", "TINYSIFT_QEMU_ICOUNT_SHIFT", "6")
    timeout = setting("timeout", "TINYSIFT_QEMU_TIMEOUT", "60")
    serial = setting("serial", "TINYSIFT_QEMU_SERIAL", "stdio")
    serial_args = []
    for _ in range(int(board_opt(board, "qemu.serial_index", 0))):
        serial_args += ["-serial", "null"]  # the serial ports before the board's console
    env.Replace(
        UPLOADER="qemu-system-arm",
        QEMU_TIMEOUT=timeout,
        UPLOADERFLAGS=["-machine", machine, "-nographic", "-monitor", "none"]
        + serial_args
        + ["-serial", serial, "-icount", f"shift={shift}"]
        + ["-semihosting-config", "enable=on,target=native"],
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
            f"Running $SOURCE in QEMU {machine} (exit status = firmware's; "
            f"timeout {timeout} s)",
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
