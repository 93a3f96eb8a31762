/*
 * tinysift firmware app: the measurement windows. Every phase and every epoch of `train`
 * runs between ts_marker(1) and ts_marker(0) (the board's GPIO marker, for a power monitor;
 * a no-op on the emulated boards) and no serial byte is sent inside a window: the UART is
 * drained before a window opens and the records of a window are sent after it closes.
 */
#include "app.h"
#include "ts_platform.h"

void app_window_open(void)
{
    ts_uart_flush();   /* no serial bytes inside a window */
    ts_cycles_align(); /* readings inside the window repeat exactly run to run (-icount) */
    ts_marker(1);
}

void app_window_close(void)
{
    ts_marker(0);
}
