/*
 * tinysift engine: the exported model format (layer table) shared by the host exporter
 * (host/tinysift/export) and the firmware engine. Format version 1; see docs/format.md.
 *
 * Every number the integer kernels need is precomputed on the host exactly as the
 * TensorFlow Lite for Microcontrollers runtime computes it in Prepare (multipliers, shifts,
 * padding, activation ranges), so the device does no float math for inference (float only
 * at the edges, for models whose .tflite takes or gives float: ts_quantize_input /
 * ts_dequantize_output).
 *
 * Format version 2 adds the graph: a tensor table (one arena offset and last reader per
 * activation tensor) and each layer's input tensors, so that tensors may have several readers
 * (residual connections) and layers several inputs (ADD, MUL, CONCATENATION). A model
 * without a tensor table (num_tensors 0) is a chain: layer i reads layer i-1's output.
 */
#ifndef TS_MODEL_H
#define TS_MODEL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TS_FORMAT_VERSION 2u

/* Most tensors one layer reads (TFLM's CONCATENATION takes at most 10 too). */
#define TS_MAX_INPUTS 10
/* ts_tensor_t.offset of the model input and output: the caller's buffers, not the arena. */
#define TS_TENSOR_EXTERNAL 0xFFFFFFFFu

/* Status codes returned by every engine function. */
typedef enum {
    TS_OK = 0,
    TS_ERR_NULL = 1,           /* a required pointer is NULL */
    TS_ERR_VERSION = 2,        /* format_version does not match TS_FORMAT_VERSION */
    TS_ERR_SHAPE = 3,          /* shapes do not chain or do not match the op */
    TS_ERR_ARENA = 4,          /* caller's arena or scratch is too small */
    TS_ERR_UNSUPPORTED_OP = 5, /* op code unknown to this engine */
    TS_ERR_PARAM = 6,          /* a parameter is out of range (stride 0, bad shift...) */
    TS_ERR_DATA = 7            /* a dataset is malformed (label out of range...) */
} ts_status_t;

typedef enum {
    TS_OP_CONV_2D = 1,
    TS_OP_DEPTHWISE_CONV_2D = 2,
    TS_OP_FULLY_CONNECTED = 3,
    TS_OP_AVERAGE_POOL_2D = 4,
    TS_OP_MAX_POOL_2D = 5,
    TS_OP_RESHAPE = 6,
    TS_OP_SOFTMAX = 7,
    TS_OP_MEAN = 8,
    TS_OP_QUANTIZE = 9,         /* int8 -> int8 requantize: multiplier[0], shift[0] */
    TS_OP_ADD = 10,
    TS_OP_MUL = 11,
    TS_OP_PAD = 12,
    TS_OP_CONCATENATION = 13,
    TS_OP_LOGISTIC = 14,
    TS_OP_HARD_SWISH = 15
} ts_op_t;

typedef enum { TS_PAD_VALID = 0, TS_PAD_SAME = 1 } ts_padding_t;

/* Activation shape, batch 1, NHWC. A flat vector of D values is {1, 1, D}. */
typedef struct {
    int32_t h, w, c;
} ts_dims_t;

/*
 * One activation tensor of a graph (format version 2). Tensor 0 is the model input, tensor
 * i + 1 the output of layer i (every op has one output), so a tensor's producer is implied;
 * its dims are the model input's or its producer's `out`.
 */
typedef struct {
    uint32_t offset;   /* byte offset in the arena (8-byte aligned); TS_TENSOR_EXTERNAL for the
                        * model input (tensor 0) and output (tensor num_layers) */
    uint32_t last_use; /* the last layer that reads it (num_layers for the model output) */
} ts_tensor_t;

/*
 * One layer. In a graph (the model has a tensor table) layer i reads the tensors inputs[0 ..
 * num_inputs) and writes tensor i + 1; in a chain (no tensor table) it reads layer i-1's
 * output (layer 0 the model input). `in` is the dims of the first input. Weight layouts
 * follow TFLite:
 *   CONV_2D            [out_c][filter_h][filter_w][in_c], per-output-channel quantized
 *   DEPTHWISE_CONV_2D  [filter_h][filter_w][in_c * depth_multiplier]
 *   FULLY_CONNECTED    [out][in]
 *   ADD / MUL          a constant second operand (num_inputs 1), dims in2
 * multiplier/shift hold quant_len entries: one per output channel, or one (per-tensor); the
 * element-wise ops keep their few constants there (see ts_kernels.h for each op).
 * shift follows TFLite's convention: > 0 is a left shift, < 0 a right shift.
 */
typedef struct {
    uint8_t op;                 /* ts_op_t */
    uint8_t padding;            /* ts_padding_t */
    uint8_t stride_h, stride_w;
    uint8_t dilation_h, dilation_w;
    uint8_t filter_h, filter_w; /* kernel size (conv) or window (pool) */
    uint16_t depth_multiplier;
    int16_t pad_h, pad_w;       /* top/left padding as TFLM's ComputePaddingHeightWidth */
    ts_dims_t in, out;
    int32_t input_zero_point;
    int32_t output_zero_point;
    int32_t act_min, act_max;   /* fused activation clamp in the output's int8 domain */
    const int8_t *weights;
    uint32_t weights_len;
    const int32_t *bias;
    uint32_t bias_len;
    const int32_t *multiplier;
    const int32_t *shift;
    uint32_t quant_len;
    int32_t softmax_input_multiplier; /* SOFTMAX (TFLM PreprocessSoftmaxScaling) and LOGISTIC */
    int32_t softmax_input_left_shift; /* (its input multiplier, left shift and input range */
    int32_t softmax_diff_min;         /* radius) */
    /* ---- format version 2 ---- */
    uint16_t num_inputs;              /* tensors read (graph only): 1, 2 (ADD, MUL), up to
                                       * TS_MAX_INPUTS (CONCATENATION) */
    uint16_t inputs[TS_MAX_INPUTS];   /* tensor indices (0 = model input, i + 1 = layer i) */
    ts_dims_t in2;                    /* ADD / MUL: the second operand; a dim of 1 broadcasts */
    int32_t input2_zero_point;        /* ADD / MUL */
    int32_t axis;                     /* CONCATENATION: 0 = h, 1 = w, 2 = c */
    int16_t pad_c;                    /* PAD: channels before (pad_h / pad_w: rows / columns
                                       * before; the rest after) */
} ts_layer_t;

/* The whole exported model plus what the on-device trainer needs. */
typedef struct {
    uint32_t format_version;
    uint32_t num_layers;
    const ts_layer_t *layers;
    uint32_t arena_bytes;       /* graph: the planned arena (every tensor fits below it); chain:
                                 * unused (ts_arena_size computes the two ping-pong buffers) */
    ts_dims_t input;
    float input_scale;
    int32_t input_zero_point;
    uint32_t head_layer;        /* index of the FULLY_CONNECTED classifier head */
    uint32_t feature_dim;       /* the head's input size */
    float feature_scale;        /* quantization of the head's input (backbone features) */
    int32_t feature_zero_point;
    uint32_t num_classes;
    float logit_scale;          /* quantization of the head's output */
    int32_t logit_zero_point;
    const float *head_weights;  /* [num_classes][feature_dim], dequantized head weights */
    const float *head_bias;     /* [num_classes] */
    const char *content_hash;   /* sha256 prefix of the .tflite */
    /* ---- format version 2 ---- */
    uint32_t num_tensors;       /* 0: the layers are a chain (two ping-pong buffers); else
                                 * num_layers + 1 */
    const ts_tensor_t *tensors;
    uint32_t tflite_first_op;   /* .tflite operators before layer 0 (1 when the .tflite
                                 * starts with a float -> int8 QUANTIZE, kept off the table) */
    uint8_t input_float;        /* the .tflite takes float (QUANTIZE at its start) */
    uint8_t output_float;       /* the .tflite gives float (DEQUANTIZE at its end) */
    float output_scale;         /* quantization of the int8 output */
    int32_t output_zero_point;
} ts_model_t;

/* An int8 dataset: count samples of sample_bytes each, labels in [0, num_classes). */
typedef struct {
    uint32_t count;
    uint32_t sample_bytes;
    const int8_t *x;
    const uint8_t *y;
} ts_dataset_t;

#ifdef __cplusplus
}
#endif

#endif /* TS_MODEL_H */
