# tinysift: SCons builder of the local STM32 dev-platform (the bare-metal STM32 ports).
#
# Compiles the project with Debian's arm-none-eabi-gcc, links the shared Cortex-M runtime
# (../../runtime: the formatter, ts_platform.h; reset, faults, stack, libc glue) and the port:
# ./runtime/common (serial ring, DWT counter, marker, exit) plus the chip family's folder
# (./runtime/f4 or ./runtime/l4: vector table, clock set-up, serial port registers).
#
# Board JSON (boards/*.json):
#   build.ts_family              f4 | l4: the runtime folder
#   build.extra_flags            -DTS_BOARD_<NAME>: the board (clock, pins) inside the family
#   upload.maximum_size / _ram_size  the chip's flash and SRAM: the linker script's MEMORY
#   qemu.machine                 set for the emulated board (netduinoplus2): the same port
#                                built with TS_STM32_EMULATED (no clock set-up, SysTick under
#                                -icount as the counter) and run in QEMU by `upload` / `exec`
#   debug.openocd_board          the OpenOCD board script `upload` flashes a real board with
# What the Cortex-M platforms share, and the QEMU options, is
# boards/runtime/cortex-m/ts_pio_cortexm.py.

import os
import sys

from SCons.Script import AlwaysBuild, Default, DefaultEnvironment  # pylint: disable=import-error

env = DefaultEnvironment()
platform = env.PioPlatform()
board = env.BoardConfig()

PLATFORM_DIR = platform.get_dir()
SHARED = os.path.normpath(os.path.join(PLATFORM_DIR, os.pardir, "runtime", "cortex-m"))
if not os.path.isfile(os.path.join(SHARED, "ts_pio_cortexm.py")):
    raise SystemExit(
        f"tinysift platform-stm32: the shared Cortex-M runtime {SHARED} is missing; keep the "
        "platform next to boards/runtime and reference it with platform = symlink://..."
    )
sys.path.insert(0, SHARED)
import ts_pio_cortexm as cm  # noqa: E402  pylint: disable=import-error,wrong-import-position

family = cm.board_opt(board, "build.ts_family")
if family not in ("f4", "l4"):
    raise SystemExit(f"tinysift platform-stm32: board {board.id} has no build.ts_family (f4|l4)")
emulated = cm.board_opt(board, "qemu.machine") is not None

defines = ["TS_TARGET_STM32", "TS_TARGET_BAREMETAL", ("F_CPU", "$BOARD_F_CPU")]
if emulated:
    # QEMU netduinoplus2: SYSCLK 168 MHz, so a SysTick tick is 125/21 ns
    defines += [
        "TS_TARGET_QEMU",
        "TS_STM32_EMULATED",
        ("TS_SYSTICK_HZ", "168000000u"),
        ("TS_SYSTICK_NS_NUM", "125u"),
        ("TS_SYSTICK_NS_DEN", "21u"),
    ]
env.Append(
    LINKFLAGS=[
        f"-Wl,--defsym=__ts_flash_bytes={int(cm.board_opt(board, 'upload.maximum_size'))}",
        f"-Wl,--defsym=__ts_ram_bytes={int(cm.board_opt(board, 'upload.maximum_ram_size'))}",
    ]
)
runtime = os.path.join(PLATFORM_DIR, "runtime")
target_elf, target_bin = cm.build_image(
    env,
    board,
    PLATFORM_DIR,
    defines=defines,
    default_ldscript="stm32.ld",
    runtime_dirs=[
        ("ts_runtime_stm32", os.path.join(runtime, "common")),
        ("ts_runtime_" + family, os.path.join(runtime, family)),
    ],
)

if emulated:
    cm.qemu_targets(env, board, target_elf)
else:
    # A real board: OpenOCD (Debian package `openocd`) with the board's stock script.
    # `tinysift device flash` does the same and offers pyOCD and st-flash too.
    openocd_board = cm.board_opt(board, "debug.openocd_board", "")
    env.Replace(
        UPLOADER="openocd",
        UPLOADCMD=f'$UPLOADER -f board/{openocd_board}.cfg -c "program $SOURCE verify reset exit"',
    )
    AlwaysBuild(
        env.Alias(
            "upload",
            target_elf,
            env.VerboseAction("$UPLOADCMD", f"Flashing $SOURCE with OpenOCD ({openocd_board})"),
        )
    )

Default([target_elf, target_bin])
