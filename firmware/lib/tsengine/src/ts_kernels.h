/*
 * tinysift engine: int8 kernels, bit-exact with the TFLite Micro reference kernels
 * (tensorflow/lite/kernels/internal/reference/integer_ops/{conv,depthwise_conv,
 * fully_connected,pooling}.h, reference/softmax.h, reference/requantize.h).
 *
 * Each kernel is a small pure function over a parameter block (a ts_layer_t row of the
 * exported table, see ts_model.h) and raw int8 buffers, batch 1, NHWC. Kernels do no
 * checking: ts_layer_check() validates a row once (the executor calls it for every layer
 * through ts_model_check), after which a kernel cannot index out of bounds or overflow.
 *
 * Two implementations of the MAC-heavy kernels:
 *   *_ref  portable scalar C, written to read like the TFLM reference kernels;
 *   *_dsp  dual 16-bit MACs (SMLAD/SMLABB on Cortex-M4/M7 with __ARM_FEATURE_DSP; portable
 *          emulations of the same instructions elsewhere, so the host tests check it too).
 * TS_USE_DSP (0/1, default 1 where __ARM_FEATURE_DSP is defined) picks the one ts_invoke
 * uses. Both are bit-exact with TFLM.
 */
#ifndef TS_KERNELS_H
#define TS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "ts_model.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef TS_USE_DSP
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define TS_USE_DSP 1
#else
#define TS_USE_DSP 0
#endif
#endif

/* Largest reduction length (filter_h * filter_w * in_c, or the FC input size) the DSP
 * kernels handle with their on-stack q15 buffer of 2 * TS_DSP_MAX_K int16; larger layers
 * fall back to the scalar kernels. Stack cost: 4 * TS_DSP_MAX_K + TS_DSP_MAX_K bytes. */
#ifndef TS_DSP_MAX_K
#define TS_DSP_MAX_K 512
#endif

/* Validate one layer row on its own (op, dims, parameter ranges, array lengths, and that
 * no int32 accumulator can overflow). The chain between rows is checked by
 * ts_model_check. */
ts_status_t ts_layer_check(const ts_layer_t *layer);

/* Output bytes of a layer (out.h * out.w * out.c). */
size_t ts_layer_out_bytes(const ts_layer_t *layer);
size_t ts_layer_in_bytes(const ts_layer_t *layer);

/* MAC count of a layer (0 for ops without multiply-accumulates). */
uint32_t ts_layer_macs(const ts_layer_t *layer);

/* ---- scalar reference kernels --------------------------------------------------------- */
void ts_conv2d_s8_ref(const ts_layer_t *p, const int8_t *input, int8_t *output);
void ts_depthwise_conv2d_s8_ref(const ts_layer_t *p, const int8_t *input, int8_t *output);
void ts_fully_connected_s8_ref(const ts_layer_t *p, const int8_t *input, int8_t *output);

/* ---- DSP kernels (same semantics) ----------------------------------------------------- */
void ts_conv2d_s8_dsp(const ts_layer_t *p, const int8_t *input, int8_t *output);
void ts_depthwise_conv2d_s8_dsp(const ts_layer_t *p, const int8_t *input, int8_t *output);
void ts_fully_connected_s8_dsp(const ts_layer_t *p, const int8_t *input, int8_t *output);

/* ---- the rest (no MAC loops worth a DSP variant) ------------------------------------- */
void ts_average_pool2d_s8(const ts_layer_t *p, const int8_t *input, int8_t *output);
void ts_max_pool2d_s8(const ts_layer_t *p, const int8_t *input, int8_t *output);
void ts_reshape_s8(const ts_layer_t *p, const int8_t *input, int8_t *output);
void ts_softmax_s8(const ts_layer_t *p, const int8_t *input, int8_t *output);
void ts_requantize_s8(const ts_layer_t *p, const int8_t *input, int8_t *output);

#if TS_USE_DSP
#define ts_conv2d_s8 ts_conv2d_s8_dsp
#define ts_depthwise_conv2d_s8 ts_depthwise_conv2d_s8_dsp
#define ts_fully_connected_s8 ts_fully_connected_s8_dsp
#else
#define ts_conv2d_s8 ts_conv2d_s8_ref
#define ts_depthwise_conv2d_s8 ts_depthwise_conv2d_s8_ref
#define ts_fully_connected_s8 ts_fully_connected_s8_ref
#endif

/* Run one validated layer (dispatch on op). */
ts_status_t ts_run_layer(const ts_layer_t *p, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TS_KERNELS_H */
