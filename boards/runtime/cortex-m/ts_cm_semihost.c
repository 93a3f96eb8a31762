/*
 * Semihosting exit (Arm "Semihosting for AArch32 and AArch64", SYS_EXIT_EXTENDED 0x20 and
 * SYS_EXIT 0x18): under QEMU with -semihosting-config enable=on,target=native the emulator
 * exits with the code; a debugger with semihosting enabled ends its session.
 */
#include <stdint.h>

#include "ts_cortexm.h"

#define SEMIHOST_SYS_EXIT 0x18
#define SEMIHOST_SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u
#define ADP_STOPPED_RUNTIME_ERROR_UNKNOWN 0x20023u

static int semihost_call(int op, void *arg)
{
    register int r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void ts_cm_semihost_exit(int code)
{
    uint32_t block[2];
    block[0] = ADP_STOPPED_APPLICATION_EXIT;
    block[1] = (uint32_t)code;
    semihost_call(SEMIHOST_SYS_EXIT_EXTENDED, block);
    /* Not reached under QEMU with semihosting; older hosts only know SYS_EXIT. */
    semihost_call(SEMIHOST_SYS_EXIT, (void *)(uintptr_t)(code == 0 ? ADP_STOPPED_APPLICATION_EXIT
                                                                   : ADP_STOPPED_RUNTIME_ERROR_UNKNOWN));
}

int ts_cm_debugger_attached(void)
{
    return (TS_DHCSR & 1u) != 0u; /* DHCSR.C_DEBUGEN, DDI 0403E C1.6.2 */
}
