/*
 * tinysift engine: scalar int8 kernels, bit-exact with the TFLite Micro reference kernels.
 *
 * Semantics follow the TFLite int8 quantization spec and TFLM's reference integer kernels:
 *   conv / depthwise / fully connected:
 *     acc = sum (x - input_zero_point) * w            (weights symmetric, zero point 0;
 *                                                      taps outside the image skipped,
 *                                                      i.e. padded with the zero point)
 *     acc += bias[c]
 *     y = MultiplyByQuantizedMultiplier(acc, multiplier[c], shift[c]) + output_zero_point
 *     y = clamp(y, act_min, act_max)
 *   average pool: rounding division (half away from zero) of the window sum by the number
 *     of window elements inside the image; max pool: maximum over the same elements;
 *     both clamp to the fused activation range. Input and output share quantization.
 *   requantize (QUANTIZE int8 -> int8): y = MBQM(x - in_zp, m, s) + out_zp, saturated.
 * Parameters were validated by ts_layer_check (see ts_executor.c), so these functions only
 * compute.
 */
#include <string.h>

#include "ts_fixedpoint.h"
#include "ts_kernels.h"

static inline int32_t quant_index(const ts_layer_t *p, int32_t channel) {
    return p->quant_len == 1u ? 0 : channel;
}

/* Bias, requantization, output offset and activation clamp for one accumulator. */
static inline int8_t ts_requant_ref(const ts_layer_t *p, int32_t acc, int32_t channel) {
    const int32_t q = quant_index(p, channel);
    if (p->bias != NULL) {
        acc += p->bias[channel];
    }
    acc = ts_mbqm(acc, p->multiplier[q], p->shift[q]);
    /* wraps as TFLM does on the target (a multiplier with shift > 0 can bring acc near
     * INT32_MIN/MAX; signed overflow would be undefined here) */
    acc = ts_add_wrap(acc, p->output_zero_point);
    return (int8_t)ts_clamp_i32(acc, p->act_min, p->act_max);
}

/* CONV_2D, per-output-channel quantization (TFLM reference_integer_ops::ConvPerChannel). */
void ts_conv2d_s8_ref(const ts_layer_t *p, const int8_t *input, int8_t *output) {
    const int32_t in_h = p->in.h, in_w = p->in.w, in_c = p->in.c;
    const int32_t out_h = p->out.h, out_w = p->out.w, out_c = p->out.c;
    const int32_t filter_h = p->filter_h, filter_w = p->filter_w;
    const int32_t input_offset = -p->input_zero_point;
    int32_t oy, ox, oc, ky, kx, ic;

    for (oy = 0; oy < out_h; ++oy) {
        const int32_t in_y0 = oy * p->stride_h - p->pad_h;
        for (ox = 0; ox < out_w; ++ox) {
            const int32_t in_x0 = ox * p->stride_w - p->pad_w;
            int8_t *out = output + ((size_t)oy * (size_t)out_w + (size_t)ox) * (size_t)out_c;
            for (oc = 0; oc < out_c; ++oc) {
                const int8_t *filter = p->weights + (size_t)oc * (size_t)(filter_h * filter_w * in_c);
                int32_t acc = 0;
                for (ky = 0; ky < filter_h; ++ky) {
                    const int32_t iy = in_y0 + p->dilation_h * ky;
                    if (iy < 0 || iy >= in_h) {
                        continue;
                    }
                    for (kx = 0; kx < filter_w; ++kx) {
                        const int32_t ix = in_x0 + p->dilation_w * kx;
                        const int8_t *x;
                        const int8_t *w;
                        if (ix < 0 || ix >= in_w) {
                            continue;
                        }
                        x = input + ((size_t)iy * (size_t)in_w + (size_t)ix) * (size_t)in_c;
                        w = filter + (size_t)(ky * filter_w + kx) * (size_t)in_c;
                        for (ic = 0; ic < in_c; ++ic) {
                            acc += ((int32_t)x[ic] + input_offset) * (int32_t)w[ic];
                        }
                    }
                }
                out[oc] = ts_requant_ref(p, acc, oc);
            }
        }
    }
}

/* DEPTHWISE_CONV_2D (TFLM reference_integer_ops::DepthwiseConvPerChannel): output channel
 * m + ic * depth_multiplier reads input channel ic; weights [fh][fw][in_c * dm]. */
void ts_depthwise_conv2d_s8_ref(const ts_layer_t *p, const int8_t *input, int8_t *output) {
    const int32_t in_h = p->in.h, in_w = p->in.w, in_c = p->in.c;
    const int32_t out_h = p->out.h, out_w = p->out.w, out_c = p->out.c;
    const int32_t filter_h = p->filter_h, filter_w = p->filter_w;
    const int32_t dm = p->depth_multiplier;
    const int32_t input_offset = -p->input_zero_point;
    int32_t oy, ox, ic, m, ky, kx;

    for (oy = 0; oy < out_h; ++oy) {
        const int32_t in_y0 = oy * p->stride_h - p->pad_h;
        for (ox = 0; ox < out_w; ++ox) {
            const int32_t in_x0 = ox * p->stride_w - p->pad_w;
            int8_t *out = output + ((size_t)oy * (size_t)out_w + (size_t)ox) * (size_t)out_c;
            for (ic = 0; ic < in_c; ++ic) {
                for (m = 0; m < dm; ++m) {
                    const int32_t oc = m + ic * dm;
                    int32_t acc = 0;
                    for (ky = 0; ky < filter_h; ++ky) {
                        const int32_t iy = in_y0 + p->dilation_h * ky;
                        if (iy < 0 || iy >= in_h) {
                            continue;
                        }
                        for (kx = 0; kx < filter_w; ++kx) {
                            const int32_t ix = in_x0 + p->dilation_w * kx;
                            int32_t x, w;
                            if (ix < 0 || ix >= in_w) {
                                continue;
                            }
                            x = input[((size_t)iy * (size_t)in_w + (size_t)ix) * (size_t)in_c + (size_t)ic];
                            w = p->weights[(size_t)(ky * filter_w + kx) * (size_t)out_c + (size_t)oc];
                            acc += (x + input_offset) * w;
                        }
                    }
                    out[oc] = ts_requant_ref(p, acc, oc);
                }
            }
        }
    }
}

/* FULLY_CONNECTED (TFLM reference_integer_ops::FullyConnected, and its per-channel form
 * when quant_len == out.c): weights [out][in], the input flattened. */
void ts_fully_connected_s8_ref(const ts_layer_t *p, const int8_t *input, int8_t *output) {
    const int32_t depth = p->in.h * p->in.w * p->in.c;
    const int32_t units = p->out.c;
    const int32_t input_offset = -p->input_zero_point;
    int32_t o, i;

    for (o = 0; o < units; ++o) {
        const int8_t *w = p->weights + (size_t)o * (size_t)depth;
        int32_t acc = 0;
        for (i = 0; i < depth; ++i) {
            acc += ((int32_t)input[i] + input_offset) * (int32_t)w[i];
        }
        output[o] = ts_requant_ref(p, acc, o);
    }
}

/* The window of output position `o` clipped to the input: [start, end) in filter taps. */
static inline void pool_window(int32_t o, int32_t stride, int32_t pad, int32_t filter,
                               int32_t size, int32_t *origin, int32_t *start, int32_t *end) {
    const int32_t org = o * stride - pad;
    *origin = org;
    *start = org < 0 ? -org : 0;
    *end = (size - org) < filter ? (size - org) : filter;
}

/* AVERAGE_POOL_2D (TFLM reference_integer_ops::AveragePool for int8). */
void ts_average_pool2d_s8(const ts_layer_t *p, const int8_t *input, int8_t *output) {
    const int32_t in_w = p->in.w, depth = p->in.c;
    int32_t oy, ox, c, fy, fx;

    for (oy = 0; oy < p->out.h; ++oy) {
        int32_t y0, fy0, fy1;
        pool_window(oy, p->stride_h, p->pad_h, p->filter_h, p->in.h, &y0, &fy0, &fy1);
        for (ox = 0; ox < p->out.w; ++ox) {
            int32_t x0, fx0, fx1;
            pool_window(ox, p->stride_w, p->pad_w, p->filter_w, in_w, &x0, &fx0, &fx1);
            for (c = 0; c < depth; ++c) {
                int32_t acc = 0, count = 0;
                for (fy = fy0; fy < fy1; ++fy) {
                    for (fx = fx0; fx < fx1; ++fx) {
                        const size_t idx = ((size_t)(y0 + fy) * (size_t)in_w + (size_t)(x0 + fx))
                                           * (size_t)depth + (size_t)c;
                        acc += input[idx];
                        ++count;
                    }
                }
                if (count == 0) {
                    /* Cannot happen for a checked layer (every window meets the image);
                     * TFLM fails the invoke here. Write the clamped zero rather than divide. */
                    acc = 0;
                } else {
                    /* Round to the closest integer, half away from zero. */
                    acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                }
                output[((size_t)oy * (size_t)p->out.w + (size_t)ox) * (size_t)depth + (size_t)c] =
                    (int8_t)ts_clamp_i32(acc, p->act_min, p->act_max);
            }
        }
    }
}

/* MAX_POOL_2D (TFLM reference_integer_ops::MaxPool for int8). */
void ts_max_pool2d_s8(const ts_layer_t *p, const int8_t *input, int8_t *output) {
    const int32_t in_w = p->in.w, depth = p->in.c;
    int32_t oy, ox, c, fy, fx;

    for (oy = 0; oy < p->out.h; ++oy) {
        int32_t y0, fy0, fy1;
        pool_window(oy, p->stride_h, p->pad_h, p->filter_h, p->in.h, &y0, &fy0, &fy1);
        for (ox = 0; ox < p->out.w; ++ox) {
            int32_t x0, fx0, fx1;
            pool_window(ox, p->stride_w, p->pad_w, p->filter_w, in_w, &x0, &fx0, &fx1);
            for (c = 0; c < depth; ++c) {
                int32_t max = -128;
                for (fy = fy0; fy < fy1; ++fy) {
                    for (fx = fx0; fx < fx1; ++fx) {
                        const int32_t v = input[((size_t)(y0 + fy) * (size_t)in_w
                                                 + (size_t)(x0 + fx)) * (size_t)depth + (size_t)c];
                        max = v > max ? v : max;
                    }
                }
                output[((size_t)oy * (size_t)p->out.w + (size_t)ox) * (size_t)depth + (size_t)c] =
                    (int8_t)ts_clamp_i32(max, p->act_min, p->act_max);
            }
        }
    }
}

/* RESHAPE: the bytes do not change (memmove: input and output may be the same buffer). */
void ts_reshape_s8(const ts_layer_t *p, const int8_t *input, int8_t *output) {
    if (input != output) {
        memmove(output, input, ts_layer_out_bytes(p));
    }
}

/* QUANTIZE int8 -> int8 (TFLM reference_ops::Requantize). */
void ts_requantize_s8(const ts_layer_t *p, const int8_t *input, int8_t *output) {
    const size_t n = ts_layer_out_bytes(p);
    size_t i;
    for (i = 0; i < n; ++i) {
        const int32_t x = (int32_t)input[i] - p->input_zero_point;
        const int32_t y = ts_add_wrap(ts_mbqm(x, p->multiplier[0], p->shift[0]),
                                      p->output_zero_point);
        output[i] = (int8_t)ts_clamp_i32(y, -128, 127);
    }
}

size_t ts_layer_scratch_size(const ts_layer_t *p) {
    size_t n = 0;
#if TS_USE_DSP
    switch (p->op) {
    case TS_OP_CONV_2D:
        n = ts_conv2d_s8_dsp_scratch_size(p);
        break;
    case TS_OP_DEPTHWISE_CONV_2D:
        n = ts_depthwise_conv2d_s8_dsp_scratch_size(p);
        break;
    case TS_OP_FULLY_CONNECTED:
        n = ts_fully_connected_s8_dsp_scratch_size(p);
        break;
    default:
        break;
    }
#else
    (void)p;
#endif
    return (n + 7u) & ~(size_t)7u;
}

ts_status_t ts_run_layer(const ts_layer_t *p, const int8_t *input, int8_t *output,
                         void *scratch) {
    switch (p->op) {
    case TS_OP_CONV_2D:
#if TS_USE_DSP
        ts_conv2d_s8_dsp(p, input, output, scratch);
#else
        (void)scratch;
        ts_conv2d_s8_ref(p, input, output);
#endif
        return TS_OK;
    case TS_OP_DEPTHWISE_CONV_2D:
#if TS_USE_DSP
        ts_depthwise_conv2d_s8_dsp(p, input, output, scratch);
#else
        ts_depthwise_conv2d_s8_ref(p, input, output);
#endif
        return TS_OK;
    case TS_OP_FULLY_CONNECTED:
#if TS_USE_DSP
        ts_fully_connected_s8_dsp(p, input, output, scratch);
#else
        ts_fully_connected_s8_ref(p, input, output);
#endif
        return TS_OK;
    case TS_OP_AVERAGE_POOL_2D:
        ts_average_pool2d_s8(p, input, output);
        return TS_OK;
    case TS_OP_MAX_POOL_2D:
        ts_max_pool2d_s8(p, input, output);
        return TS_OK;
    case TS_OP_RESHAPE:
        ts_reshape_s8(p, input, output);
        return TS_OK;
    case TS_OP_SOFTMAX:
        ts_softmax_s8(p, input, output);
        return TS_OK;
    case TS_OP_QUANTIZE:
        ts_requantize_s8(p, input, output);
        return TS_OK;
    case TS_OP_MEAN:
        ts_mean_s8(p, input, output);
        return TS_OK;
    case TS_OP_PAD:
        ts_pad_s8(p, input, output);
        return TS_OK;
    case TS_OP_LOGISTIC:
        ts_logistic_s8(p, input, output);
        return TS_OK;
    case TS_OP_HARD_SWISH:
        ts_hard_swish_s8(p, input, output);
        return TS_OK;
    case TS_OP_ADD: /* a constant second operand (checked: weights holds it) */
        ts_add_s8(p, input, p->weights, output);
        return TS_OK;
    case TS_OP_MUL:
        ts_mul_s8(p, input, p->weights, output);
        return TS_OK;
    default:
        return TS_ERR_UNSUPPORTED_OP;
    }
}

ts_status_t ts_run_layer_inputs(const ts_layer_t *p, const ts_dims_t *in_dims,
                                const int8_t *const *inputs, uint32_t count, int8_t *output,
                                void *scratch) {
    if (count == 0u) {
        return TS_ERR_PARAM;
    }
    switch (p->op) {
    case TS_OP_ADD:
    case TS_OP_MUL:
        if (count == 1u) {
            return ts_run_layer(p, inputs[0], output, scratch);
        }
        (p->op == TS_OP_ADD ? ts_add_s8 : ts_mul_s8)(p, inputs[0], inputs[1], output);
        return TS_OK;
    case TS_OP_CONCATENATION:
        ts_concatenation_s8(p, in_dims, inputs, output);
        return TS_OK;
    default:
        return count == 1u ? ts_run_layer(p, inputs[0], output, scratch) : TS_ERR_PARAM;
    }
}
