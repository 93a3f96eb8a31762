/*
 * tinysift engine: a minimal, bounds-checked reader of the quantization parameters in a
 * .tflite flatbuffer (the export's ts_export_tflite[] bytes).
 *
 * The layer table (ts_model.h) holds what int8 inference needs: multipliers, shifts and zero
 * points, but not the float scales behind them. Training a backbone layer in float (the
 * trainer's update=last-block and update=bias, docs/trainer.md) needs them: the activation
 * scales to dequantize, the weight scales to dequantize the frozen weights and the biases, and
 * the output scale to re-quantize. They are read from the model's own .tflite: layer i of an
 * export is operator i + tflite_first_op of its single subgraph (the exporter keeps the
 * operators in order; tflite_first_op is 1 when a float QUANTIZE at the start stays off
 * the table), so
 *
 *   input scale   = scale[0] of operator i's inputs[0] tensor
 *   output scale  = scale[0] of operator i's outputs[0] tensor
 *   weight scales = the scale vector of inputs[1] (CONV_2D, DEPTHWISE_CONV_2D,
 *                   FULLY_CONNECTED): one per output channel, or one (per tensor)
 *
 * Every offset is checked against the buffer before it is read (a truncated or corrupt buffer
 * gives TS_ERR_DATA, never a read out of bounds); values are assembled byte by byte
 * (little-endian, as flatbuffers store them), so the buffer needs no alignment. C99, no heap,
 * no static state.
 */
#ifndef TS_TFLITE_H
#define TS_TFLITE_H

#include <stddef.h>
#include <stdint.h>

#include "ts_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* BuiltinOperator codes of the ops the engine runs (tensorflow/lite/schema/schema.fbs). */
#define TS_TFLITE_ADD 0u
#define TS_TFLITE_AVERAGE_POOL_2D 1u
#define TS_TFLITE_CONCATENATION 2u
#define TS_TFLITE_CONV_2D 3u
#define TS_TFLITE_DEPTHWISE_CONV_2D 4u
#define TS_TFLITE_FULLY_CONNECTED 9u
#define TS_TFLITE_LOGISTIC 14u
#define TS_TFLITE_MAX_POOL_2D 17u
#define TS_TFLITE_MUL 18u
#define TS_TFLITE_RESHAPE 22u
#define TS_TFLITE_SOFTMAX 25u
#define TS_TFLITE_PAD 34u
#define TS_TFLITE_MEAN 40u
#define TS_TFLITE_QUANTIZE 114u
#define TS_TFLITE_HARD_SWISH 117u

/* One operator's quantization, as stored in the .tflite. */
typedef struct {
    uint32_t builtin_code;      /* max(deprecated_builtin_code, builtin_code) */
    float input_scale;          /* scale[0] of inputs[0] */
    int32_t input_zero_point;   /* zero_point[0] of inputs[0] (0 when absent) */
    float output_scale;         /* scale[0] of outputs[0] */
    int32_t output_zero_point;
    uint32_t weight_scales;     /* entries of the weights' scale vector (0: no weights) */
} ts_tflite_op_t;

/* Operators in subgraph 0 (TS_ERR_DATA for a buffer that is not a readable .tflite). */
ts_status_t ts_tflite_num_ops(const uint8_t *tflite, size_t bytes, uint32_t *count);

/* Operator op_index of subgraph 0: its code and scales; the weights' scales (conv,
 * depthwise, fully connected) go to weight_scales[0 .. out->weight_scales) when
 * weight_scales is not NULL (cap entries; TS_ERR_ARENA when there are more). Activation
 * scales must be positive and finite, weight scales too (TS_ERR_PARAM otherwise);
 * TS_ERR_DATA for a malformed buffer, an index out of range or a missing tensor. */
ts_status_t ts_tflite_op(const uint8_t *tflite, size_t bytes, uint32_t op_index,
                         ts_tflite_op_t *out, float *weight_scales, uint32_t cap);

/* TS_OK when the .tflite describes this layer table: one operator per layer, the same ops
 * (TS_OP_* against the builtin codes) and the same input and output zero points. */
ts_status_t ts_tflite_check_model(const uint8_t *tflite, size_t bytes, const ts_model_t *model);

#ifdef __cplusplus
}
#endif

#endif /* TS_TFLITE_H */
