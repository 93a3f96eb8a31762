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

/* Validate a layer table: version, op codes, shapes that chain (or, for a graph, the
 * tensors each layer reads and the arena plan), parameter ranges, array lengths. Every
 * entry point below calls it (cheaply) or relies on it having passed. */
ts_status_t ts_model_check(const ts_model_t *model);

/* Bytes of arena ts_invoke / ts_run_layers need: the activation tensors (a graph: its
 * planned arena_bytes; a chain: two ping-pong buffers), 8-byte aligned, then the kernels'
 * scratch (ts_scratch_size); 0 for an invalid table (and for a valid graph of one layer
 * whose kernel needs no scratch: its input and output are the caller's, nothing is planned;
 * ts_model_check tells the two apart). */
size_t ts_arena_size(const ts_model_t *model);

/* The largest scratch any layer's kernel needs (the DSP kernels' im2col columns and
 * requantization tables, ts_layer_scratch_size; 0 without TS_USE_DSP). */
size_t ts_scratch_size(const ts_model_t *model);

/* Run layers [first, last) on `input` (the first input of layer `first`), writing the output
 * of layer last-1 to `output`. `arena` must hold ts_arena_size() bytes, 8-byte aligned (it
 * may be NULL for a single layer). In a graph, every tensor the range reads must be that
 * input or produced inside the range (else TS_ERR_PARAM): ranges that start inside a
 * residual block cannot run. */
ts_status_t ts_run_layers(const ts_model_t *model, uint32_t first, uint32_t last,
                          const int8_t *input, int8_t *output, uint8_t *arena,
                          size_t arena_bytes);

/* Whole model: int8 input (input.h*w*c bytes) -> int8 output (last layer's size). */
ts_status_t ts_invoke(const ts_model_t *model, const int8_t *input, int8_t *output,
                      uint8_t *arena, size_t arena_bytes);

/* Dims of tensor t of a (checked) graph: 0 the model input, i + 1 layer i's output. */
ts_dims_t ts_tensor_dims(const ts_model_t *model, uint32_t tensor);

/* 1 when `layer` reads exactly the previous layer's output (or the model input, layer 0)
 * and nothing else: always in a chain; in a graph, what the trainer needs of its layers. */
int ts_layer_reads_previous(const ts_model_t *model, uint32_t layer);

/* The float edges, for models whose .tflite takes or gives float (input_float /
 * output_float): TFLM's QUANTIZE float -> int8 (round(x / input_scale) half away from zero,
 * + input_zero_point, saturated) and DEQUANTIZE int8 -> float ((q - output_zero_point) *
 * output_scale), bit-exact. */
ts_status_t ts_quantize_input(const ts_model_t *model, const float *x, int8_t *q);
ts_status_t ts_dequantize_output(const ts_model_t *model, const int8_t *q, float *y);

#ifdef __cplusplus
}
#endif

#endif /* TS_ENGINE_H */
