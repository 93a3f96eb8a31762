/*
 * tinysift engine: public API of the int8 executor and the on-device trainer.
 * Portable C99, no heap: every buffer is caller-provided and sized by a *_size() function.
 * (Contract between the executor and the trainer; implementations in ts_executor.c,
 * ts_kernels*.c and ts_trainer.c.)
 */
#ifndef TS_ENGINE_H
#define TS_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "ts_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- executor ------------------------------------------------------------------------ */

/* Validate a layer table: version, op codes, shapes that chain, parameter ranges, array
 * lengths. Every entry point below calls it (cheaply) or relies on it having passed. */
ts_status_t ts_model_check(const ts_model_t *model);

/* Bytes of arena ts_invoke / ts_run_layers need (two ping-pong activation buffers). */
size_t ts_arena_size(const ts_model_t *model);

/* Run layers [first, last) on `input` (the input of layer `first`), writing the output of
 * layer last-1 to `output`. `arena` must hold ts_arena_size() bytes, 8-byte aligned. */
ts_status_t ts_run_layers(const ts_model_t *model, uint32_t first, uint32_t last,
                          const int8_t *input, int8_t *output, uint8_t *arena,
                          size_t arena_bytes);

/* Whole model: int8 input (input.h*w*c bytes) -> int8 output (last layer's size). */
ts_status_t ts_invoke(const ts_model_t *model, const int8_t *input, int8_t *output,
                      uint8_t *arena, size_t arena_bytes);

#ifdef __cplusplus
}
#endif

#endif /* TS_ENGINE_H */
