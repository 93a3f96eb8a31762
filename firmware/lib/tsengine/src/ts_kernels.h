/*
 * tinysift engine: int8 kernels, bit-exact with the TFLite Micro reference kernels
 * (tensorflow/lite/kernels/internal/reference/integer_ops/{conv,depthwise_conv,
 * fully_connected,pooling,add,mul,logistic,mean}.h, reference/{softmax,requantize,pad,
 * concatenation,hard_swish,reduce}.h).
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

/* Bytes of arena (ts_arena_size) a model with `tensors` planned bytes and `scratch` bytes
 * of DSP kernel scratch (an export's TS_EXPORT_ARENA_BYTES and TS_EXPORT_SCRATCH_BYTES)
 * needs on this build: for static arenas. */
#if TS_USE_DSP
#define TS_ARENA_BYTES(tensors, scratch) ((((tensors) + 7u) & ~7u) + (scratch))
#else
#define TS_ARENA_BYTES(tensors, scratch) (((tensors) + 7u) & ~7u)
#endif

/* Largest reduction length (filter_h * filter_w * in_c; twice that for the FC input size)
 * the DSP kernels handle; larger layers fall back to the scalar kernels. It bounds their
 * scratch: a conv needs about 5 * k bytes + 16 per output channel (at most 64 channels). */
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

/* ---- DSP kernels (same semantics) -----------------------------------------------------
 * `scratch`: *_scratch_size(p) bytes, 4-byte aligned, owned by the caller (CMSIS-NN's
 * convention; ts_run_layers takes it from the end of the arena). Conv and FC: NULL, or a
 * size of 0 (a layer the fast path does not take), runs the scalar kernel. Depthwise needs
 * none (size 0): its tables for 16 channels at a time, 544 bytes, are on its stack. Each
 * kernel's stack stays under 1 KB (tools/bench_kernels.py measures it). */
size_t ts_conv2d_s8_dsp_scratch_size(const ts_layer_t *p);
size_t ts_depthwise_conv2d_s8_dsp_scratch_size(const ts_layer_t *p);
size_t ts_fully_connected_s8_dsp_scratch_size(const ts_layer_t *p);
void ts_conv2d_s8_dsp(const ts_layer_t *p, const int8_t *input, int8_t *output, void *scratch);
void ts_depthwise_conv2d_s8_dsp(const ts_layer_t *p, const int8_t *input, int8_t *output,
                                void *scratch);
void ts_fully_connected_s8_dsp(const ts_layer_t *p, const int8_t *input, int8_t *output,
                               void *scratch);

/* ---- the rest (no MAC loops worth a DSP variant) ------------------------------------- */
void ts_average_pool2d_s8(const ts_layer_t *p, const int8_t *input, int8_t *output);
void ts_max_pool2d_s8(const ts_layer_t *p, const int8_t *input, int8_t *output);
void ts_reshape_s8(const ts_layer_t *p, const int8_t *input, int8_t *output);
void ts_softmax_s8(const ts_layer_t *p, const int8_t *input, int8_t *output);
void ts_requantize_s8(const ts_layer_t *p, const int8_t *input, int8_t *output);

/* ---- element-wise, reduction and data movement (ts_kernels_elementwise.c) -------------
 * ADD   (x1 - input_zero_point) and (x2 - input2_zero_point), each << 20 and scaled by
 *       multiplier/shift[0] and [1]; their sum scaled by [2]; + output_zero_point, clamped
 *       to the activation range. `in` and `in2` broadcast to `out` (a dim of 1 repeats).
 * MUL   (x1 - zp1) * (x2 - zp2) scaled by multiplier/shift[0], + output_zero_point, clamped.
 * MEAN  over h and w (out 1x1xC), quant_len 1: MBQM(sum - input_zero_point*h*w,
 *       multiplier[0], shift[0]) + output_zero_point, saturated (TFLM QuantizedMeanOrSum,
 *       also where input and output share quantization; the host folded 1/(h*w) into the
 *       multiplier).
 * PAD   pad_h rows, pad_w columns, pad_c channels before, the rest after, filled with
 *       output_zero_point.
 * CONCATENATION  the inputs side by side along `axis` (bytes copied: TFLM does not rescale).
 * LOGISTIC  gemmlowp logistic of MBQM(x - input_zero_point, softmax_input_multiplier,
 *       softmax_input_left_shift) in Q4.27, saturated beyond softmax_diff_min (the input
 *       range radius); output scale 1/256, zero point -128.
 * HARD_SWISH  TFLM reference_ops::HardSwish in 16-bit fixed point: multiplier[0]/shift[0]
 *       the int16 output multiplier and exponent, multiplier[1]/shift[1] the "reluish" ones.
 */
void ts_add_s8(const ts_layer_t *p, const int8_t *input1, const int8_t *input2, int8_t *output);
void ts_mul_s8(const ts_layer_t *p, const int8_t *input1, const int8_t *input2, int8_t *output);
void ts_mean_s8(const ts_layer_t *p, const int8_t *input, int8_t *output);
void ts_pad_s8(const ts_layer_t *p, const int8_t *input, int8_t *output);
void ts_concatenation_s8(const ts_layer_t *p, const ts_dims_t *in_dims,
                         const int8_t *const *inputs, int8_t *output);
void ts_logistic_s8(const ts_layer_t *p, const int8_t *input, int8_t *output);
void ts_hard_swish_s8(const ts_layer_t *p, const int8_t *input, int8_t *output);

/* Scratch bytes the kernel ts_run_layer picks for this layer needs (the DSP kernels' when
 * TS_USE_DSP, else 0); a multiple of 8. */
size_t ts_layer_scratch_size(const ts_layer_t *p);

/* Run one validated single-input layer (dispatch on op; ADD / MUL with a constant second
 * operand count as single-input); `scratch`: ts_layer_scratch_size(p) bytes or NULL (the
 * scalar kernels). */
ts_status_t ts_run_layer(const ts_layer_t *p, const int8_t *input, int8_t *output,
                         void *scratch);

/* Run one validated layer on its inputs (count of them, in_dims their dims): every op. */
ts_status_t ts_run_layer_inputs(const ts_layer_t *p, const ts_dims_t *in_dims,
                                const int8_t *const *inputs, uint32_t count, int8_t *output,
                                void *scratch);

#ifdef __cplusplus
}
#endif

#endif /* TS_KERNELS_H */
