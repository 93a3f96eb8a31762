/*
 * tinysift engine: what ts_trainer.c, ts_trainer_data.c and ts_trainer_tail.c share (not a
 * public API).
 */
#ifndef TS_TRAINER_INTERNAL_H
#define TS_TRAINER_INTERNAL_H

#include "ts_trainer.h"

/* Where the trainer gets sample i's int8 input (of the first trained layer: the features
 * for update=head): a pointer to sample_bytes bytes that stay valid until the next call, or
 * NULL with *status set. */
typedef const int8_t *(*ts_feature_get_fn)(void *ctx, uint32_t index, ts_status_t *status);

/* A sample source: count samples by index, their labels in two parts (the request's train
 * and train_extra: index i < n0 is y0[i], else y1[i - n0]). */
typedef struct {
    ts_feature_get_fn get;
    void *ctx;
    const uint8_t *y0;
    const uint8_t *y1;
    uint32_t n0;
    uint32_t count;
} ts_feature_src_t;

static inline uint32_t ts_src_label(const ts_feature_src_t *s, uint32_t i)
{
    return i < s->n0 ? s->y0[i] : s->y1[i - s->n0];
}

/* What a request's datasets hold: the int8 inputs of the first trained layer
 * (sizes.sample_bytes a sample: features for update=head) or model inputs. */
typedef enum { TS_SAMPLES_FEATURES, TS_SAMPLES_INPUTS } ts_sample_kind_t;

/* TS_ERR_NULL without the dataset or its arrays (count > 0), TS_ERR_SHAPE when its samples
 * are not sample_bytes long. */
ts_status_t ts_trainer_check_dataset(const ts_dataset_t *ds, uint32_t sample_bytes);

/* The checks both entry points share, in this order: the model, the config, the mode
 * (ts_trainer_sizes), the request's pointers (TS_ERR_NULL), the datasets (samples of the
 * kind's size, else TS_ERR_SHAPE), the sample counts (TS_ERR_DATA), the workspaces (4-byte
 * aligned, else TS_ERR_PARAM; long enough, else TS_ERR_ARENA), the .tflite against the
 * model (TS_ERR_DATA), and every label (TS_ERR_DATA). */
ts_status_t ts_trainer_check_request(const ts_model_t *model, const ts_trainer_config_t *config,
                                     const ts_train_request_t *req, ts_sample_kind_t kind);

/* The whole training run of a checked request over two sample sources (training samples,
 * test samples). features_cycles is added to the TS_PHASE_FEATURES total (the cache fill
 * that happened before). */
ts_status_t ts_trainer_run(const ts_model_t *model, const ts_trainer_config_t *config,
                           const ts_train_request_t *req, const ts_feature_src_t *train_src,
                           const ts_feature_src_t *test_src, uint64_t features_cycles);

/* A sample source over int8 vectors of dim bytes in memory, in two parts (base0: n0
 * vectors, then base1; base1 may be NULL when there is no second part). */
typedef struct {
    const int8_t *base0;
    const int8_t *base1;
    uint32_t n0;
    uint32_t dim;
} ts_array_src_t;

void ts_trainer_array_src(ts_array_src_t *arr, const ts_dataset_t *a, const ts_dataset_t *b,
                          uint32_t dim, ts_feature_src_t *src);

/* Total training samples of a request (train plus train_extra). */
uint32_t ts_trainer_train_count(const ts_train_request_t *req);

/* Round half away from zero of a finite x, saturated to [lo, hi] first. */
int64_t ts_trainer_round_away(double x, int64_t lo, int64_t hi);

/* The int8 feature buffer inside a workspace (D bytes at its end). */
int8_t *ts_trainer_ws_feature_buffer(const ts_model_t *model, uint32_t train_count,
                                     uint8_t *workspace);

/* ---- the float layers [first, head_layer) of update=last-block and bias (ts_trainer_tail.c) */

/* One layer below the head in the backbone workspace: 32 bytes. */
typedef struct {
    float s_in, s_out;      /* activation scales (the .tflite) */
    float lo, hi;           /* the fused activation's clamp in float (conv/depthwise) */
    uint32_t sc_off;        /* first weight scale in ts_tail_t.wscale (conv/depthwise) */
    uint32_t mask_off;      /* first mask bit */
    uint32_t w_off;         /* first trained weight in par (TS_TAIL_WEIGHTS) */
    uint32_t b_off;         /* first trained bias in par (conv/depthwise) */
} ts_tail_layer_t;

typedef struct {
    const ts_model_t *model;
    uint32_t update;
    ts_trainer_sizes_t sz;
    ts_tail_layer_t *layers;  /* [head_layer]; entries [first, head_layer) used */
    float *wscale;            /* [SC] */
    float *buf[2];            /* [A] each */
    float *par, *vel, *grad;  /* [NP] each */
    uint32_t *mask;           /* [ceil(MB / 32)] */
    int8_t *x8;               /* [sample_bytes] when first > 0 */
    uint32_t grad_buf;        /* which buf[] ts_tail_grad_out() returns */
} ts_tail_t;

/* The backbone workspace's parts (checked by the caller: long enough, aligned). */
void ts_tail_bind(ts_tail_t *t, const ts_model_t *model, uint32_t update,
                  const ts_trainer_sizes_t *sz, uint8_t *ws);
/* Scales from the .tflite; the trained parameters from the export (dequantized); momentum
 * and gradient sums 0. */
ts_status_t ts_tail_init(ts_tail_t *t, const uint8_t *tflite, size_t tflite_bytes);
/* Forward pass of one sample: x = the int8 input of the first float layer; f receives the
 * D float inputs of the head; the masks are kept for ts_tail_backward. */
void ts_tail_forward(ts_tail_t *t, const int8_t *x, float *f);
/* Where the caller writes dL/df (D floats) before ts_tail_backward. */
float *ts_tail_grad_out(ts_tail_t *t);
/* Backward pass of the sample ts_tail_forward saw (x again): the trained parameters'
 * gradients are added to the batch sums. */
void ts_tail_backward(ts_tail_t *t, const int8_t *x);
/* v = mu v + G / bn; p = p - lr v; G = 0, for every trained backbone parameter. */
void ts_tail_update(ts_tail_t *t, float lr, float mu, uint32_t bn);
/* The trained layers into q (sizes.q_bytes): TS_ERR_PARAM for non-finite parameters or a
 * multiplier out of range. */
ts_status_t ts_tail_requantize(const ts_tail_t *t, uint8_t *q);

#endif /* TS_TRAINER_INTERNAL_H */
