/*
 * tinysift engine: the on-device trainer. Portable C99, no heap, status codes; every
 * buffer is caller-provided (a ts_train_request_t) and the workspace is sized by
 * TS_TRAINER_WORKSPACE_BYTES() / ts_trainer_workspace_size().
 *
 * The algorithm is specified exactly in docs/trainer.md and reproduced by the numpy
 * reference tests/trainer_reference.py (tests/test_trainer.py checks one against
 * the other). In short:
 *
 *  1. Backbone features: layers [0, head_layer) run once per training and test sample
 *     (ts_run_layers) and are cached as int8, feature_dim bytes each, when the caller gives
 *     a cache; without one they are recomputed every time they are needed (each epoch).
 *     Dequantized in float32: f[d] = feature_scale * (float)(q[d] - feature_zero_point).
 *  2. Head: float32 W[K][D], b[K] (from model->head_weights / head_bias or the config's
 *     init arrays), softmax cross-entropy, mini-batch SGD with momentum
 *     (v = mu * v + G / B; w = w - lr * v; G the batch's summed gradient, B its actual size).
 *  3. Sample order: every epoch, order = 0..N-1, then a Fisher-Yates shuffle
 *     (for i = N-1 down to 1: j = xorshift32() % (i + 1); swap order[i], order[j]) with
 *     xorshift32 (x ^= x << 13; x ^= x >> 17; x ^= x << 5) seeded once from config.seed
 *     (0 -> 0x6D2B79F5) and never reseeded between epochs.
 *  4. Evaluation on the test subset with the float head, then the head is re-quantized
 *     (per-tensor symmetric int8 weights, int32 bias, TFLite QuantizeMultiplier for
 *     feature_scale * w_scale / logit_scale) and evaluated again with the int8
 *     FULLY_CONNECTED arithmetic (ts_mbqm of ts_fixedpoint.h, as the kernels). The
 *     re-quantized head lands in caller buffers.
 *
 * What is trained (config.update, docs/trainer.md "Modes"): the head only (above), or
 * the last pointwise convolution before the pooling and the head (TS_UPDATE_LAST_BLOCK), or
 * every bias of the backbone's convolutions and the head (TS_UPDATE_BIAS). Those two train
 * the layers [first, head_layer) in float32 on dequantized activations (the float "tail":
 * ts_trainer_tail.c; scales read from the model's .tflite, ts_tflite.h), below them the int8
 * layers are frozen; afterwards the trained layers are re-quantized and the model patched.
 * Optional: steps instead of epochs, a learning-rate schedule, class-balanced loss weights,
 * a second training set appended to the first (replay + new samples), per-class test counts.
 *
 * Cycle counts come from config.cycles (the platform's ts_cycles() on the firmware; NULL
 * gives zero counts), per phase (ts_trainer_phase_t): features, head forward, backward,
 * update, evaluation.
 */
#ifndef TS_TRAINER_H
#define TS_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "ts_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 2: ts_train_head*() take a ts_train_request_t; the phases TS_PHASE_BACKBONE and
 * TS_PHASE_EVAL are named TS_PHASE_FEATURES and TS_PHASE_EVALUATION; ts_trainer_mbqm() is
 * gone (ts_mbqm() of ts_fixedpoint.h is the one implementation).
 * 3: config.steps / schedule / balance / update; request.train_extra, backbone buffers,
 * tflite, layers, per_class (all optional: zero-initialized fields keep version 2's
 * behaviour bit for bit). */
#define TS_TRAINER_API_VERSION 3

/* Seed used when config.seed is 0 (xorshift32 must not start at 0). */
#define TS_TRAINER_SEED_ZERO 0x6D2B79F5u

/* Most training samples one run accepts (the shuffle order is stored as uint16_t). */
#define TS_TRAINER_MAX_SAMPLES 65535u

/* Every buffer the trainer sizes or fills is below this many bytes: the products of counts
 * (samples x sample bytes, mask bits, parameters) are taken in uint64_t and refused at or
 * above it, on every build, so that none can wrap the 32-bit size_t of the target (where a
 * wrapped size passed the length check of a buffer far too short). */
#define TS_TRAINER_MAX_BYTES ((uint64_t)1 << 31)

/* Phases whose cycles are counted. The firmware app reports the same phases under the
 * names of ts_trainer_phase_name() (its `@phase` records). */
typedef enum {
    TS_PHASE_FEATURES = 0,  /* getting the int8 input of the trained layers:
                               ts_run_layers(0, first) (the cache fill or every
                               recomputation), or a cache lookup */
    TS_PHASE_HEAD_FORWARD,  /* dequantize, the float layers' forward pass (last-block, bias),
                               logits, softmax, loss (training) */
    TS_PHASE_BACKWARD,      /* dlogits, the head's and the float layers' gradients */
    TS_PHASE_UPDATE,        /* momentum SGD step, once per batch (and the shuffles) */
    TS_PHASE_EVALUATION,    /* test-set evaluation (float and int8) and re-quantization */
    TS_PHASE_COUNT
} ts_trainer_phase_t;

/* "features", "head_forward", "backward", "update", "evaluation"; "unknown" otherwise. */
const char *ts_trainer_phase_name(ts_trainer_phase_t phase);

/* One finished epoch, handed to config.on_epoch. cycles[] covers this epoch only. With
 * config.steps an "epoch" is a window of ceil(N / batch_size) steps (the last one may be
 * shorter) and samples counts the samples of those steps. */
typedef struct {
    uint32_t epoch;          /* 0-based */
    uint32_t epochs;         /* config.epochs, or the number of windows with config.steps */
    uint32_t samples;        /* training samples seen (N; with steps: steps * batch_size) */
    uint32_t correct;        /* predictions right before their batch's update */
    float mean_loss;         /* sum of per-sample losses (float32, sample order) / N */
    float train_accuracy;    /* correct / N */
    uint64_t cycles[TS_PHASE_COUNT];
} ts_trainer_epoch_t;

/* Return nonzero to stop training after this epoch (evaluation still runs). */
typedef int (*ts_trainer_epoch_fn)(const ts_trainer_epoch_t *stats, void *user);

/* The platform's counter: free-running 32-bit, wraps (differences taken as uint32_t). */
typedef uint32_t (*ts_trainer_cycles_fn)(void);

typedef struct {
    uint32_t epochs;               /* 0 trains nothing (evaluation only) */
    uint32_t batch_size;           /* >= 1; the last batch of an epoch may be smaller */
    float learning_rate;           /* > 0 */
    float momentum;                /* in [0, 1) */
    uint32_t seed;                 /* xorshift32 seed; 0 -> TS_TRAINER_SEED_ZERO */
    uint32_t eval_initial;         /* nonzero: evaluate the float head before training */
    const float *init_weights;     /* [K][D]; NULL -> model->head_weights */
    const float *init_bias;        /* [K];    NULL -> model->head_bias */
    ts_trainer_cycles_fn cycles;   /* NULL -> every cycle count is 0 */
    ts_trainer_epoch_fn on_epoch;  /* NULL -> no per-epoch report */
    void *user;                    /* passed to on_epoch */
    /* API version 3; 0 in each keeps version 2's behaviour */
    uint32_t steps;                /* > 0: this many optimizer steps of exactly batch_size
                                      samples, the sample order running on across epoch
                                      boundaries (epochs is then ignored); 0: epochs */
    uint32_t schedule;             /* ts_trainer_schedule_t: the learning rate per step */
    uint32_t balance;              /* nonzero: each sample's loss weighted N / (C * n_c) */
    uint32_t update;               /* ts_trainer_update_t: what is trained */
} ts_trainer_config_t;

/* What a run trains (docs/trainer.md, "Modes"). */
typedef enum {
    TS_UPDATE_HEAD = 0,       /* the FULLY_CONNECTED head (weights and bias) */
    TS_UPDATE_LAST_BLOCK = 1, /* the last pointwise CONV_2D before the average pooling
                                 (weights and bias) and the head */
    TS_UPDATE_BIAS = 2,       /* the biases of every CONV_2D / DEPTHWISE_CONV_2D below the
                                 head (TinyTL) and the head */
    TS_UPDATE_COUNT
} ts_trainer_update_t;

/* The learning rate of step t of T (0-based; T = the run's total steps). */
typedef enum {
    TS_SCHEDULE_CONSTANT = 0, /* lr */
    TS_SCHEDULE_COSINE = 1,   /* (float)((double)lr * 0.5 * (1 + cos(pi * t / T))) */
    TS_SCHEDULE_STEP = 2,     /* lr; lr / 10 from 2t >= T; lr / 100 from 4t >= 3T */
    TS_SCHEDULE_COUNT
} ts_trainer_schedule_t;

/* "head", "last-block", "bias" (NULL otherwise); "constant", "cosine", "step". */
const char *ts_trainer_update_name(uint32_t update);
const char *ts_trainer_schedule_name(uint32_t schedule);

/* The re-quantized head: weights and bias point to caller buffers of K*D int8 and K int32;
 * the scalars are filled in. Use it with ts_trainer_patch_model() for inference. */
typedef struct {
    int8_t *weights;         /* [K][D], symmetric, zero point 0 */
    int32_t *bias;           /* [K], scale feature_scale * weight_scale, zero point 0 */
    float weight_scale;      /* max|W| / 127 (1.0 when W is all zero) */
    float bias_scale;        /* feature_scale * weight_scale (float32 product) */
    int32_t multiplier;      /* QuantizeMultiplier(feature_scale * weight_scale / logit_scale) */
    int32_t shift;           /* TFLite convention: > 0 left, < 0 right */
} ts_head_q_t;

typedef struct {
    uint32_t epochs_run;              /* epochs (or windows of steps) completed */
    uint32_t steps_run;               /* optimizer steps taken */
    uint32_t train_count;             /* N: train->count + train_extra->count */
    uint32_t test_count;
    float last_loss;                  /* mean loss of the last epoch run (0 if none) */
    float last_train_accuracy;
    uint32_t test_correct_initial;    /* float head before training (eval_initial only) */
    uint32_t test_correct_float;      /* float head after training */
    uint32_t test_correct_int8;       /* re-quantized int8 head after training */
    float test_accuracy_initial;
    float test_accuracy_float;
    float test_accuracy_int8;
    uint64_t cycles[TS_PHASE_COUNT];  /* totals over the whole call */
    const float *weights;             /* trained float head, inside the workspace [K][D] */
    const float *bias;                /* [K] */
    const float *backbone_params;     /* last-block / bias: the trained float parameters,
                                         inside the backbone workspace (layer order; per
                                         layer the weights, then the biases) */
    uint32_t backbone_param_count;
} ts_trainer_result_t;

/* Bytes of workspace ts_train_head*() need for K classes, D features and N training
 * samples: the one definition of the formula (ts_trainer_workspace_size() returns it for a
 * model; the firmware app sizes its static workspace with it; the host's memory plan,
 * tinysift.export.memory.trainer_workspace_bytes(), is its Python twin, checked against
 * it by tests/test_trainer.py). A constant expression (of type size_t) when K, D and N are:
 *   4 * (3*K*D + 6*K + D)   W, momentum V, gradient sum G (K*D floats each); b, vb, gb,
 *                           logits z, probabilities p, class weights (K floats each); one
 *                           dequantized feature vector f (D floats)
 *   + 2 * N                 the shuffle order (uint16_t per training sample)
 *   + D                     one int8 feature vector (the backbone's output when features
 *                           are recomputed)
 * The workspace must be 4-byte aligned (TS_ERR_PARAM otherwise). */
#define TS_TRAINER_WORKSPACE_BYTES(K, D, N)                                                 \
    (sizeof(float) * (3u * (size_t)(K) * (size_t)(D) + 6u * (size_t)(K) + (size_t)(D)) +   \
     sizeof(uint16_t) * (size_t)(N) + (size_t)(D))

/* The extra buffers of update=last-block and update=bias, each one definition (a constant
 * expression for static arrays; ts_trainer_sizes() gives the same numbers for a model; the
 * Python twins are in tinysift.export.memory, checked against these by tests/test_trainer.py).
 *
 * The backbone workspace of the float layers [first, head_layer) (4-byte aligned):
 *   32 * H       one 32-byte record per layer below the head (scales, clamp, offsets)
 *   + 4 * SC     the weight scale of every output channel of the conv/depthwise layers
 *   + 8 * A      two float activation (and gradient) buffers of A values: the largest input
 *                or output of a float layer
 *   + 12 * NP    the trained parameters, their momentum and their gradient sums
 *   + 4 * ceil(MB / 32)   the ReLU / clamp masks: one bit per conv/depthwise output value
 *   + align4(X8) the int8 input of the first float layer when it is recomputed
 * computed in uint64_t: the counts of a large model wrap a 32-bit size_t (ts_trainer_sizes
 * refuses a workspace of TS_TRAINER_MAX_BYTES or more). */
#define TS_TRAINER_TAIL_BYTES(H, SC, A, MB, NP, X8)                                          \
    (32u * (uint64_t)(H) +                                                                    \
     4u * ((uint64_t)(SC) + 2u * (uint64_t)(A) + 3u * (uint64_t)(NP) + ((uint64_t)(MB) + 31u) / 32u) + \
     (((uint64_t)(X8) + 3u) & ~(uint64_t)3u))
/* update=last-block: H = head_layer; the pointwise convolution has CIN input channels, COUT
 * output channels (= feature_dim) and PIX = h * w pixels. Its float layers are the
 * convolution, the pooling and what follows (RESHAPE, QUANTIZE). */
#define TS_TRAINER_BLOCK_WORKSPACE_BYTES(H, CIN, COUT, PIX)                                  \
    TS_TRAINER_TAIL_BYTES(H, COUT,                                                          \
                          (uint64_t)(PIX) * ((uint64_t)(CIN) > (uint64_t)(COUT) ? (uint64_t)(CIN)     \
                                                                        : (uint64_t)(COUT)),  \
                          (uint64_t)(PIX) * (uint64_t)(COUT),                                   \
                          (uint64_t)(CIN) * (uint64_t)(COUT) + (uint64_t)(COUT),                  \
                          (uint64_t)(PIX) * (uint64_t)(CIN))
/* update=bias: H = head_layer; SUMC output channels of all conv/depthwise layers below the
 * head, AMAX the largest input or output (values) of a layer below the head, MBITS the
 * output values of all conv/depthwise layers below the head. */
#define TS_TRAINER_BIAS_WORKSPACE_BYTES(H, SUMC, AMAX, MBITS)                                \
    TS_TRAINER_TAIL_BYTES(H, SUMC, AMAX, MBITS, SUMC, 0u)
/* The re-quantized backbone layers (4-byte aligned), what ts_trainer_patch_backbone() points
 * the layer table at. last-block: int32 bias, multiplier and shift per output channel, then
 * the int8 weights; bias: one int32 bias per output channel of every conv/depthwise layer. */
#define TS_TRAINER_BLOCK_Q_BYTES(CIN, COUT) (12u * (size_t)(COUT) + (size_t)(CIN) * (size_t)(COUT))
#define TS_TRAINER_BIAS_Q_BYTES(SUMC) (4u * (size_t)(SUMC))
/* uint32 entries of req->per_class: per class, the test samples, then the correct
 * predictions of the initial float model, the trained float model and the trained int8
 * model (four rows of K). */
#define TS_TRAINER_PER_CLASS_COUNT(K) (4u * (size_t)(K))

/* A model's numbers for one update mode (ts_trainer_sizes()). */
typedef struct {
    uint32_t first_layer;   /* the first trained (float) layer: head_layer for head */
    uint32_t sample_bytes;  /* int8 input of first_layer per sample (feature_dim for head,
                               the model input for bias) */
    uint32_t in_c, out_c, pixels; /* last-block: the pointwise convolution (else 0) */
    uint32_t channels;      /* SC: output channels of the float conv/depthwise layers */
    uint32_t act_max;       /* A */
    uint32_t mask_bits;     /* MB */
    uint32_t params;        /* NP: trained backbone parameters */
    size_t workspace_bytes; /* the backbone workspace (0 for head) */
    size_t q_bytes;         /* the re-quantized backbone (0 for head) */
} ts_trainer_sizes_t;

/* The sizes of an update mode for a model, and whether the trainer supports it:
 * TS_ERR_UNSUPPORTED_OP when the model has no layer below the head (head_layer == 0:
 * last-block and bias), no last pointwise convolution before an AVERAGE_POOL_2D
 * (last-block), or a layer below the head the float layers do not handle (bias: only
 * CONV_2D, DEPTHWISE_CONV_2D, AVERAGE_POOL_2D without activation, RESHAPE and QUANTIZE);
 * TS_ERR_PARAM for an unknown mode; TS_ERR_SHAPE when a count or the backbone workspace
 * reaches 2^31 (TS_TRAINER_MAX_BYTES). */
ts_status_t ts_trainer_sizes(const ts_model_t *model, uint32_t update, ts_trainer_sizes_t *out);

/* Bytes of the optional cache of the int8 inputs of the trained layers, per mode:
 * (train_count + test_count) * sizes.sample_bytes for head and last-block; 0 for bias (its
 * input is the sample itself), an unsupported mode, or a cache of TS_TRAINER_MAX_BYTES or
 * more (ts_train_head refuses such a cache: TS_ERR_ARENA). */
size_t ts_trainer_cache_bytes(const ts_model_t *model, uint32_t update, uint32_t train_count,
                              uint32_t test_count);

/* TS_TRAINER_WORKSPACE_BYTES(num_classes, feature_dim, train_count) for a model; 0 when the
 * model is unusable or train_count > TS_TRAINER_MAX_SAMPLES. */
size_t ts_trainer_workspace_size(const ts_model_t *model, uint32_t train_count);

/* Bytes of the optional int8 feature cache: (train_count + test_count) * feature_dim; 0 for
 * an unusable model or TS_TRAINER_MAX_BYTES or more. */
size_t ts_trainer_cache_size(const ts_model_t *model, uint32_t train_count,
                             uint32_t test_count);

/* Checks what the trainer needs from the model: the head layer is a FULLY_CONNECTED with
 * feature_dim inputs and num_classes outputs, positive scales, head init arrays. */
ts_status_t ts_trainer_check_model(const ts_model_t *model);

/* One training run's data, caller memory and outputs: the caller owns every buffer, the
 * trainer checks them first and allocates nothing (the layout of CMSIS-NN's and TFLM's
 * reference kernels: checks, then work in caller buffers, a status returned). Fields an entry
 * point does not read may stay 0 (designated initializers leave them so). */
typedef struct {
    /* data; labels (y) in [0, num_classes) */
    const ts_dataset_t *train;   /* ts_train_head: model inputs (sample_bytes = the model's
                                    input size); ts_train_head_features: int8 features
                                    (sample_bytes = feature_dim) */
    const ts_dataset_t *test;    /* the same for the test subset (count may be 0) */
    const ts_dataset_t *train_extra; /* NULL, or more training samples of the same kind,
                                    appended after train: sample i >= train->count is
                                    train_extra's i - train->count (a replay set in flash
                                    plus samples streamed into RAM) */
    /* caller memory */
    uint8_t *workspace;          /* TS_TRAINER_WORKSPACE_BYTES(K, D, N) bytes (N: train and
                                    train_extra samples), 4-byte aligned; holds the trained
                                    float head afterwards */
    size_t workspace_bytes;
    int8_t *feature_cache;       /* ts_train_head only: ts_trainer_cache_bytes() bytes (the
                                    trained layers' inputs: features for head), filled once
                                    (train, train_extra, then test samples); shorter:
                                    TS_ERR_ARENA; NULL -> recomputed each time they are
                                    needed; update=bias ignores it */
    size_t feature_cache_bytes;
    uint8_t *arena;              /* ts_arena_size(model) bytes, 8-byte aligned: ts_train_head
                                    when the frozen layers are not empty, and the int8
                                    evaluation of last-block / bias */
    size_t arena_bytes;
    /* update=last-block / bias only */
    uint8_t *backbone_ws;        /* sizes.workspace_bytes, 4-byte aligned: the float layers;
                                    holds the trained float parameters afterwards */
    size_t backbone_ws_bytes;
    const uint8_t *tflite;       /* the model's .tflite (ts_export_tflite): the scales */
    size_t tflite_bytes;
    ts_layer_t *layers;          /* num_layers entries: the tuned layer table (the int8
                                    evaluation runs it; ts_trainer_patch_model and
                                    ts_trainer_patch_backbone make the same afterwards) */
    uint32_t layers_cap;
    /* outputs */
    ts_head_q_t *head_q;         /* the re-quantized head (weights and bias buffers set) */
    ts_trainer_result_t *result; /* may be NULL */
    uint8_t *backbone_q;         /* last-block / bias: sizes.q_bytes, 4-byte aligned */
    size_t backbone_q_bytes;
    uint32_t *per_class;         /* NULL, or TS_TRAINER_PER_CLASS_COUNT(K) counts */
} ts_train_request_t;

/* A dataset of count int8 feature vectors (feature_dim bytes each) and their labels: what
 * ts_train_head_features() reads (a filled feature cache, for instance). */
ts_dataset_t ts_trainer_feature_set(const ts_model_t *model, const int8_t *features,
                                    const uint8_t *labels, uint32_t count);

/* Train from precomputed int8 inputs of the trained layers: req->train (and train_extra)
 * and req->test hold them (sample_bytes == ts_trainer_sizes().sample_bytes: feature vectors
 * for update=head). This is the path the firmware app takes once its feature cache is
 * filled, and the one the host tests drive directly. feature_cache is not used; the arena
 * only by the int8 evaluation of last-block / bias. */
ts_status_t ts_train_head_features(const ts_model_t *model, const ts_trainer_config_t *config,
                                   const ts_train_request_t *req);

/* Train from the int8 datasets (model inputs), running the frozen layers [0, first) with
 * ts_run_layers (ts_trainer_data.c): with req->feature_cache their output for every sample
 * (the features for update=head, the pointwise convolution's input for last-block) is
 * computed once into it (it must hold ts_trainer_cache_bytes(), else TS_ERR_ARENA) and
 * training continues as ts_train_head_features(); without one they are recomputed each time
 * they are needed (RAM too small). update=bias reads the samples themselves. */
ts_status_t ts_train_head(const ts_model_t *model, const ts_trainer_config_t *config,
                          const ts_train_request_t *req);

/* Backbone features of samples [0, ds->count) into out (count x feature_dim int8; out_bytes
 * shorter, or that product TS_TRAINER_MAX_BYTES or more: TS_ERR_ARENA, nothing written).
 * *cycles (may be NULL) receives the counter ticks spent (0 when cycles_fn is NULL). */
ts_status_t ts_trainer_extract_features(const ts_model_t *model, const ts_dataset_t *ds,
                                        int8_t *out, size_t out_bytes, uint8_t *arena,
                                        size_t arena_bytes, ts_trainer_cycles_fn cycles_fn,
                                        uint64_t *cycles);

/* The int8 inputs of the trained layers of an update mode (sizes.sample_bytes a sample: the
 * output of the frozen layers [0, sizes.first_layer), the sample itself for bias) of samples
 * [0, ds->count) into out: what ts_train_head_features() reads for that mode, and what the
 * cache of ts_train_head() holds. extract_features is this with TS_UPDATE_HEAD. */
ts_status_t ts_trainer_extract_inputs(const ts_model_t *model, uint32_t update,
                                      const ts_dataset_t *ds, int8_t *out, size_t out_bytes,
                                      uint8_t *arena, size_t arena_bytes,
                                      ts_trainer_cycles_fn cycles_fn, uint64_t *cycles);

/* ---- pieces, exposed for tests and for apps that run the head themselves ------------- */

/* xorshift32 (Marsaglia 13/17/5): advances *state (never 0) and returns the new value. */
uint32_t ts_trainer_xorshift32(uint32_t *state);

/* One epoch's sample order: order[i] = i, then for i = n-1 down to 1:
 * j = ts_trainer_xorshift32(state) % (i + 1); swap order[i], order[j]. n <= 65535. */
void ts_trainer_shuffle(uint16_t *order, uint32_t n, uint32_t *state);

/* TFLite QuantizeMultiplier: real = multiplier * 2^(shift - 31), multiplier in [2^30, 2^31)
 * (frexp, round half away from zero, the 2^31 carry; shift < -31 gives 0, 0). The only
 * float-to-fixed-point conversion on the device (the kernels' multipliers come precomputed
 * in the export); MultiplyByQuantizedMultiplier is ts_mbqm() of ts_fixedpoint.h. */
void ts_trainer_quantize_multiplier(double real, int32_t *multiplier, int32_t *shift);

/* Re-quantize a float head W[K][D], b[K] into head_q (buffers provided by the caller).
 * TS_ERR_PARAM for non-finite parameters, a multiplier shift outside [-31, 30], or a bias
 * the engine's FULLY_CONNECTED refuses (ts_acc_bound_ok: D * 255 * 128 + max|bq| above
 * INT32_MAX, so that the int32 accumulator could overflow). */
ts_status_t ts_trainer_requantize_head(const ts_model_t *model, const float *weights,
                                       const float *bias, ts_head_q_t *head_q);

/* The head's int8 output for one feature vector, as the FULLY_CONNECTED kernel computes it:
 * acc = bias[k] + sum_d (q[d] - feature_zero_point) * w[k][d];
 * out = clamp(ts_mbqm(acc, multiplier, shift) + logit_zero_point, act_min, act_max), the
 * zero point added with two's-complement wrap as the kernel does. TS_ERR_PARAM for a head_q
 * the engine refuses (a multiplier below 0, a shift outside [-31, 30], a bias beyond the
 * accumulator bound of ts_trainer_requantize_head). */
ts_status_t ts_trainer_head_int8(const ts_model_t *model, const ts_head_q_t *head_q,
                                 const int8_t *features, int8_t *logits);

/* The prediction: the first index of the largest of n logits (float, or int8). */
uint32_t ts_trainer_argmax_f(const float *logits, uint32_t n);
uint32_t ts_trainer_argmax_q(const int8_t *logits, uint32_t n);

/* Float logits z = W f + b for one int8 feature vector (dequantized first). */
void ts_trainer_head_float(const ts_model_t *model, const float *weights, const float *bias,
                           const int8_t *features, float *logits);

/* A copy of the model whose head layer uses head_q: layers_copy (capacity layers_cap
 * entries) receives the layer table with the head's weights, bias, multiplier and shift
 * pointing into head_q, and *out the model pointing at layers_copy. */
ts_status_t ts_trainer_patch_model(const ts_model_t *model, const ts_head_q_t *head_q,
                                   ts_layer_t *layers_copy, uint32_t layers_cap,
                                   ts_model_t *out);

/* After ts_trainer_patch_model(): points the backbone rows of layers_copy (num_layers
 * entries) at a run's re-quantized backbone (req->backbone_q of update=last-block: the
 * pointwise convolution's weights, bias, multipliers and shifts; update=bias: every
 * conv/depthwise bias). Nothing to do (TS_OK) for update=head. */
ts_status_t ts_trainer_patch_backbone(const ts_model_t *model, uint32_t update,
                                      const uint8_t *backbone_q, size_t backbone_q_bytes,
                                      ts_layer_t *layers_copy, uint32_t layers_cap);

/* The learning rate of step t of total (ts_trainer_schedule_t, above). */
float ts_trainer_learning_rate(float lr, uint32_t schedule, uint64_t t, uint64_t total);

/* The class weights of balance=1 for n labels (num_classes K): w[c] = (float)n /
 * ((float)C * (float)n_c) for the C classes present, 0 for the others. */
void ts_trainer_class_weights(const uint8_t *labels, uint32_t n, const uint8_t *labels2,
                              uint32_t n2, uint32_t num_classes, float *w);

/* The sample stream of config.steps: order[] (n entries) is reshuffled (ts_trainer_shuffle)
 * whenever it is used up, the xorshift32 state running on. */
typedef struct {
    uint16_t *order;
    uint32_t n;
    uint32_t pos;   /* next position in order; n: reshuffle first */
    uint32_t state; /* xorshift32 */
} ts_trainer_sampler_t;

void ts_trainer_sampler_init(ts_trainer_sampler_t *s, uint16_t *order, uint32_t n,
                             uint32_t seed);
uint32_t ts_trainer_sampler_next(ts_trainer_sampler_t *s);

#ifdef __cplusplus
}
#endif

#endif /* TS_TRAINER_H */
