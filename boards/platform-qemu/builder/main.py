# tinysift: SCons builder of the local QEMU dev-platform (mps2-an386 / mps2-an500).
#
# Compiles the project with Debian's arm-none-eabi-gcc, links the shared Cortex-M runtime
# (../../runtime: the formatter, ts_platform.h; reset, faults, stack, libc glue) and ./runtime
# (the vector table, CMSDK UART0, SysTick, semihosting exit), and runs the ELF in
# qemu-system-arm for the `upload` / `exec` targets. What the Cortex-M platforms share, and
# the board options of the QEMU targets, is boards/runtime/cortex-m/ts_pio_cortexm.py.

import os
import sys

from SCons.Script import Default, DefaultEnvironment  # pylint: disable=import-error

env = DefaultEnvironment()
platform = env.PioPlatform()
board = env.BoardConfig()

PLATFORM_DIR = platform.get_dir()
CORTEXM_DIR = os.path.normpath(os.path.join(PLATFORM_DIR, os.pardir, "runtime", "cortex-m"))
if not os.path.isfile(os.path.join(CORTEXM_DIR, "ts_pio_cortexm.py")):
    raise SystemExit(
        f"tinysift platform-qemu: the shared runtime {CORTEXM_DIR} is missing; the platform must "
        "stay a sibling of boards/runtime (reference it with platform = symlink://...)"
    )
sys.path.insert(0, CORTEXM_DIR)
import ts_pio_cortexm  # noqa: E402  pylint: disable=import-error,wrong-import-position

target_elf, target_bin = ts_pio_cortexm.build_image(
    env,
    board,
    PLATFORM_DIR,
    defines=[
        "TS_TARGET_QEMU",
        ("F_CPU", "$BOARD_F_CPU"),
        # SysTick (the counter, boards/runtime/cortex-m/ts_cm_systick.c) runs at the mps2
        # models' SYSCLK: 25 MHz, 40 ns a tick
        ("TS_SYSTICK_HZ", "25000000u"),
        ("TS_SYSTICK_NS_NUM", "40u"),
        ("TS_SYSTICK_NS_DEN", "1u"),
    ],
    default_ldscript="qemu_mps2.ld",
    runtime_dirs=[("ts_runtime_qemu", os.path.join(PLATFORM_DIR, "runtime"))],
)
ts_pio_cortexm.qemu_targets(env, board, target_elf)

Default([target_elf, target_bin])
