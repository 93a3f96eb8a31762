/*
 * tinysift engine: the on-device head trainer (float32 head, softmax cross-entropy,
 * mini-batch SGD with momentum, xorshift32 + Fisher-Yates sample order), the test-set
 * evaluation and the int8 re-quantization of the trained head.
 *
 * The exact algorithm is docs/trainer.md; host/tinysift/ondevice/reference.py is the numpy
 * reference of the same steps in the same order. This file needs no executor: it trains
 * from int8 features (precomputed, cached, or produced by a feature source that runs the
 * backbone, see ts_trainer_data.c). C99, no heap, no static state.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ts_fixedpoint.h"
#include "ts_trainer.h"
#include "ts_trainer_internal.h"

/* ---- model and workspace -------------------------------------------------------------- */

ts_status_t ts_trainer_check_model(const ts_model_t *model)
{
    const ts_layer_t *head;
    if (model == NULL || model->layers == NULL || model->head_weights == NULL ||
        model->head_bias == NULL) {
        return TS_ERR_NULL;
    }
    if (model->format_version != TS_FORMAT_VERSION) {
        return TS_ERR_VERSION;
    }
    if (model->head_layer >= model->num_layers || model->feature_dim == 0 ||
        model->num_classes == 0) {
        return TS_ERR_SHAPE;
    }
    /* keep every size product below 2^31 */
    if (model->feature_dim > 65536u || model->num_classes > 65536u ||
        (uint64_t)model->feature_dim * model->num_classes > (1u << 24)) {
        return TS_ERR_SHAPE;
    }
    head = &model->layers[model->head_layer];
    if (head->op != TS_OP_FULLY_CONNECTED) {
        return TS_ERR_SHAPE;
    }
    if ((uint64_t)head->in.h * (uint64_t)head->in.w * (uint64_t)head->in.c !=
            model->feature_dim ||
        (uint64_t)head->out.h * (uint64_t)head->out.w * (uint64_t)head->out.c !=
            model->num_classes) {
        return TS_ERR_SHAPE;
    }
    if (!(model->feature_scale > 0.0f) || !(model->feature_scale <= 3.0e38f) ||
        !(model->logit_scale > 0.0f) || !(model->logit_scale <= 3.0e38f) ||
        model->feature_zero_point < -128 || model->feature_zero_point > 127 ||
        model->logit_zero_point < -128 || model->logit_zero_point > 127 ||
        head->act_min < -128 || head->act_max > 127 || head->act_min > head->act_max) {
        return TS_ERR_PARAM;
    }
    return TS_OK;
}

/* Offsets (bytes) of the workspace parts, in the order TS_TRAINER_WORKSPACE_BYTES counts
 * them: all floats first, so 4-byte alignment holds; the last part (feat8, D bytes) ends at
 * exactly TS_TRAINER_WORKSPACE_BYTES(K, D, N). */
typedef struct {
    size_t w, v, g, b, vb, gb, z, p, f, order, feat8;
} ts_ws_layout_t;

static void ws_layout(const ts_model_t *model, uint32_t train_count, ts_ws_layout_t *l)
{
    size_t kd = (size_t)model->num_classes * model->feature_dim;
    size_t k = model->num_classes;
    size_t d = model->feature_dim;
    l->w = 0;
    l->v = l->w + kd * sizeof(float);
    l->g = l->v + kd * sizeof(float);
    l->b = l->g + kd * sizeof(float);
    l->vb = l->b + k * sizeof(float);
    l->gb = l->vb + k * sizeof(float);
    l->z = l->gb + k * sizeof(float);
    l->p = l->z + k * sizeof(float);
    l->f = l->p + k * sizeof(float);
    l->order = l->f + d * sizeof(float);
    l->feat8 = l->order + (size_t)train_count * sizeof(uint16_t);
}

size_t ts_trainer_workspace_size(const ts_model_t *model, uint32_t train_count)
{
    if (ts_trainer_check_model(model) != TS_OK || train_count > TS_TRAINER_MAX_SAMPLES) {
        return 0;
    }
    return TS_TRAINER_WORKSPACE_BYTES(model->num_classes, model->feature_dim, train_count);
}

size_t ts_trainer_cache_size(const ts_model_t *model, uint32_t train_count,
                             uint32_t test_count)
{
    if (ts_trainer_check_model(model) != TS_OK) {
        return 0;
    }
    return ((size_t)train_count + (size_t)test_count) * model->feature_dim;
}

int8_t *ts_trainer_ws_feature_buffer(const ts_model_t *model, uint32_t train_count,
                                     uint8_t *workspace)
{
    ts_ws_layout_t l;
    ws_layout(model, train_count, &l);
    return (int8_t *)(void *)(workspace + l.feat8);
}

/* ---- QuantizeMultiplier (the fixed-point arithmetic itself: ts_fixedpoint.h) --------- */

/* Round half away from zero of a finite x, saturated to [lo, hi] first. */
static int64_t round_away_clamped(double x, int64_t lo, int64_t hi)
{
    double ax;
    int64_t r;
    if (x >= (double)hi) {
        return hi;
    }
    if (x <= (double)lo) {
        return lo;
    }
    ax = x < 0.0 ? -x : x;
    r = (int64_t)(ax + 0.5); /* truncation == floor for a non-negative value */
    return x < 0.0 ? -r : r;
}

void ts_trainer_quantize_multiplier(double real, int32_t *multiplier, int32_t *shift)
{
    int e = 0;
    double q;
    int64_t q_fixed;
    if (!(real > 0.0) && !(real < 0.0)) { /* zero (or NaN) */
        *multiplier = 0;
        *shift = 0;
        return;
    }
    q = frexp(real, &e);
    q_fixed = round_away_clamped(q * 2147483648.0, -((int64_t)1 << 31), (int64_t)1 << 31);
    if (q_fixed == ((int64_t)1 << 31)) {
        q_fixed /= 2;
        ++e;
    }
    if (e < -31) {
        e = 0;
        q_fixed = 0;
    }
    *multiplier = (int32_t)q_fixed;
    *shift = (int32_t)e;
}

/* ---- float head ---------------------------------------------------------------------------- */

static void dequantize(const ts_model_t *model, const int8_t *q, float *f)
{
    uint32_t d;
    for (d = 0; d < model->feature_dim; ++d) {
        f[d] = model->feature_scale * (float)((int32_t)q[d] - model->feature_zero_point);
    }
}

/* z[k] = (sum_d W[k][d] * f[d], accumulated from 0 in d order) + b[k] */
static void head_logits(uint32_t k_n, uint32_t d_n, const float *w, const float *b,
                        const float *f, float *z)
{
    uint32_t k, d;
    for (k = 0; k < k_n; ++k) {
        const float *row = w + (size_t)k * d_n;
        float acc = 0.0f;
        for (d = 0; d < d_n; ++d) {
            acc += row[d] * f[d];
        }
        z[k] = acc + b[k];
    }
}

static uint32_t argmax_f(const float *z, uint32_t n)
{
    uint32_t k, best = 0;
    for (k = 1; k < n; ++k) {
        if (z[k] > z[best]) {
            best = k;
        }
    }
    return best;
}

void ts_trainer_head_float(const ts_model_t *model, const float *weights, const float *bias,
                           const int8_t *features, float *logits)
{
    /* the same float operations as dequantize() + head_logits(), without scratch */
    uint32_t k, d;
    for (k = 0; k < model->num_classes; ++k) {
        const float *row = weights + (size_t)k * model->feature_dim;
        float acc = 0.0f;
        for (d = 0; d < model->feature_dim; ++d) {
            float f = model->feature_scale *
                      (float)((int32_t)features[d] - model->feature_zero_point);
            acc += row[d] * f;
        }
        logits[k] = acc + bias[k];
    }
}

/* ---- re-quantized head ------------------------------------------------------------------ */

ts_status_t ts_trainer_requantize_head(const ts_model_t *model, const float *weights,
                                       const float *bias, ts_head_q_t *head_q)
{
    size_t j, kd;
    uint32_t k;
    float maxabs = 0.0f;
    float w_scale, bias_scale;
    double real;
    int32_t mult, shift;
    ts_status_t st = ts_trainer_check_model(model);
    if (st != TS_OK) {
        return st;
    }
    if (weights == NULL || bias == NULL || head_q == NULL || head_q->weights == NULL ||
        head_q->bias == NULL) {
        return TS_ERR_NULL;
    }
    kd = (size_t)model->num_classes * model->feature_dim;
    for (j = 0; j < kd; ++j) {
        float a = weights[j] < 0.0f ? -weights[j] : weights[j];
        if (!(a <= 3.0e38f)) { /* NaN or infinite: training diverged */
            return TS_ERR_PARAM;
        }
        if (a > maxabs) {
            maxabs = a;
        }
    }
    for (k = 0; k < model->num_classes; ++k) {
        float a = bias[k] < 0.0f ? -bias[k] : bias[k];
        if (!(a <= 3.0e38f)) {
            return TS_ERR_PARAM;
        }
    }
    w_scale = maxabs > 0.0f ? maxabs / 127.0f : 1.0f;
    bias_scale = model->feature_scale * w_scale;
    if (!(bias_scale > 0.0f)) {
        return TS_ERR_PARAM;
    }
    real = (double)model->feature_scale * (double)w_scale / (double)model->logit_scale;
    ts_trainer_quantize_multiplier(real, &mult, &shift);
    if (shift > 30 || shift < -31) {
        return TS_ERR_PARAM;
    }
    for (j = 0; j < kd; ++j) {
        head_q->weights[j] =
            (int8_t)round_away_clamped((double)weights[j] / (double)w_scale, -127, 127);
    }
    for (k = 0; k < model->num_classes; ++k) {
        head_q->bias[k] = (int32_t)round_away_clamped((double)bias[k] / (double)bias_scale,
                                                      INT32_MIN, INT32_MAX);
    }
    head_q->weight_scale = w_scale;
    head_q->bias_scale = bias_scale;
    head_q->multiplier = mult;
    head_q->shift = shift;
    return TS_OK;
}

ts_status_t ts_trainer_head_int8(const ts_model_t *model, const ts_head_q_t *head_q,
                                 const int8_t *features, int8_t *logits)
{
    const ts_layer_t *head;
    uint32_t k, d;
    if (model == NULL || head_q == NULL || features == NULL || logits == NULL ||
        head_q->weights == NULL || head_q->bias == NULL || model->layers == NULL) {
        return TS_ERR_NULL;
    }
    head = &model->layers[model->head_layer];
    for (k = 0; k < model->num_classes; ++k) {
        const int8_t *row = head_q->weights + (size_t)k * model->feature_dim;
        int32_t acc = head_q->bias[k];
        int32_t out;
        for (d = 0; d < model->feature_dim; ++d) {
            acc += ((int32_t)features[d] - model->feature_zero_point) * (int32_t)row[d];
        }
        out = ts_mbqm(acc, head_q->multiplier, head_q->shift) +
              model->logit_zero_point;
        if (out < head->act_min) {
            out = head->act_min;
        }
        if (out > head->act_max) {
            out = head->act_max;
        }
        logits[k] = (int8_t)out;
    }
    return TS_OK;
}

ts_status_t ts_trainer_patch_model(const ts_model_t *model, const ts_head_q_t *head_q,
                                   ts_layer_t *layers_copy, uint32_t layers_cap,
                                   ts_model_t *out)
{
    ts_layer_t *head;
    ts_status_t st = ts_trainer_check_model(model);
    if (st != TS_OK) {
        return st;
    }
    if (head_q == NULL || layers_copy == NULL || out == NULL || head_q->weights == NULL ||
        head_q->bias == NULL) {
        return TS_ERR_NULL;
    }
    if (layers_cap < model->num_layers) {
        return TS_ERR_ARENA;
    }
    memcpy(layers_copy, model->layers, (size_t)model->num_layers * sizeof(ts_layer_t));
    head = &layers_copy[model->head_layer];
    head->weights = head_q->weights;
    head->weights_len = model->num_classes * model->feature_dim;
    head->bias = head_q->bias;
    head->bias_len = model->num_classes;
    head->multiplier = &head_q->multiplier;
    head->shift = &head_q->shift;
    head->quant_len = 1;
    head->input_zero_point = model->feature_zero_point;
    head->output_zero_point = model->logit_zero_point;
    *out = *model;
    out->layers = layers_copy;
    return TS_OK;
}

/* ---- sample order -------------------------------------------------------------------------- */

uint32_t ts_trainer_xorshift32(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

void ts_trainer_shuffle(uint16_t *order, uint32_t n, uint32_t *state)
{
    uint32_t i;
    for (i = 0; i < n; ++i) {
        order[i] = (uint16_t)i;
    }
    for (i = n; i-- > 1;) {
        uint32_t j = ts_trainer_xorshift32(state) % (i + 1u);
        uint16_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* ---- cycle accounting ---------------------------------------------------------------------- */

typedef struct {
    ts_trainer_cycles_fn fn;
    uint32_t last;
} ts_clock_t;

static void clock_start(ts_clock_t *c)
{
    c->last = c->fn != NULL ? c->fn() : 0u;
}

/* Add the ticks since the last lap to *bucket. */
static void clock_lap(ts_clock_t *c, uint64_t *bucket)
{
    uint32_t now;
    if (c->fn == NULL) {
        return;
    }
    now = c->fn();
    *bucket += (uint32_t)(now - c->last);
    c->last = now;
}

/* ---- evaluation ------------------------------------------------------------------------------ */

/* Float head on the test set; backbone time (when features are recomputed) is counted
 * apart from the evaluation itself. */
static ts_status_t eval_float(const ts_model_t *model, const float *w, const float *b,
                              const ts_feature_src_t *src, const uint8_t *labels,
                              uint32_t count, float *f, float *z, ts_clock_t *clk,
                              uint64_t *cycles, uint32_t *correct)
{
    uint32_t i, n_ok = 0;
    for (i = 0; i < count; ++i) {
        ts_status_t st = TS_OK;
        const int8_t *q;
        clock_lap(clk, &cycles[TS_PHASE_EVAL]);
        q = src->get(src->ctx, i, &st);
        if (q == NULL) {
            return st != TS_OK ? st : TS_ERR_NULL;
        }
        clock_lap(clk, &cycles[TS_PHASE_BACKBONE]);
        dequantize(model, q, f);
        head_logits(model->num_classes, model->feature_dim, w, b, f, z);
        if (argmax_f(z, model->num_classes) == labels[i]) {
            ++n_ok;
        }
    }
    clock_lap(clk, &cycles[TS_PHASE_EVAL]);
    *correct = n_ok;
    return TS_OK;
}

static ts_status_t eval_int8(const ts_model_t *model, const ts_head_q_t *head_q,
                             const ts_feature_src_t *src, const uint8_t *labels,
                             uint32_t count, int8_t *logits, ts_clock_t *clk,
                             uint64_t *cycles, uint32_t *correct)
{
    uint32_t i, k, n_ok = 0;
    for (i = 0; i < count; ++i) {
        ts_status_t st = TS_OK;
        const int8_t *q;
        uint32_t best = 0;
        clock_lap(clk, &cycles[TS_PHASE_EVAL]);
        q = src->get(src->ctx, i, &st);
        if (q == NULL) {
            return st != TS_OK ? st : TS_ERR_NULL;
        }
        clock_lap(clk, &cycles[TS_PHASE_BACKBONE]);
        ts_trainer_head_int8(model, head_q, q, logits);
        for (k = 1; k < model->num_classes; ++k) {
            if (logits[k] > logits[best]) {
                best = k;
            }
        }
        if (best == labels[i]) {
            ++n_ok;
        }
    }
    clock_lap(clk, &cycles[TS_PHASE_EVAL]);
    *correct = n_ok;
    return TS_OK;
}

/* ---- training ------------------------------------------------------------------------------- */

ts_status_t ts_trainer_check_config(const ts_trainer_config_t *cfg)
{
    if (cfg == NULL) {
        return TS_ERR_NULL;
    }
    if (cfg->batch_size == 0 || !(cfg->learning_rate > 0.0f) ||
        !(cfg->learning_rate <= 3.0e38f) || !(cfg->momentum >= 0.0f) ||
        !(cfg->momentum < 1.0f)) {
        return TS_ERR_PARAM;
    }
    return TS_OK;
}

static float accuracy(uint32_t correct, uint32_t count)
{
    return count > 0 ? (float)correct / (float)count : 0.0f;
}

ts_status_t ts_trainer_run_sources(const ts_model_t *model, const ts_trainer_config_t *config,
                                   const ts_feature_src_t *train_src,
                                   const uint8_t *train_labels, uint32_t train_count,
                                   const ts_feature_src_t *test_src, const uint8_t *test_labels,
                                   uint32_t test_count, uint8_t *workspace,
                                   size_t workspace_bytes, ts_head_q_t *head_q,
                                   ts_trainer_result_t *result, uint64_t backbone_cycles)
{
    ts_ws_layout_t l;
    ts_trainer_result_t res;
    ts_clock_t clk;
    ts_status_t st;
    float *w, *v, *g, *b, *vb, *gb, *z, *p, *f;
    uint16_t *order;
    size_t kd, j;
    uint32_t k_n, d_n, i, epoch, state;
    const float *init_w, *init_b;

    st = ts_trainer_check_model(model);
    if (st != TS_OK) {
        return st;
    }
    st = ts_trainer_check_config(config);
    if (st != TS_OK) {
        return st;
    }
    if (workspace == NULL || head_q == NULL || head_q->weights == NULL ||
        head_q->bias == NULL || train_src == NULL || test_src == NULL) {
        return TS_ERR_NULL;
    }
    if ((train_count > 0 && train_labels == NULL) || (test_count > 0 && test_labels == NULL)) {
        return TS_ERR_NULL;
    }
    if (train_count > TS_TRAINER_MAX_SAMPLES || (config->epochs > 0 && train_count == 0)) {
        return TS_ERR_DATA;
    }
    if (((uintptr_t)workspace & 3u) != 0) {
        return TS_ERR_PARAM;
    }
    if (workspace_bytes <
        TS_TRAINER_WORKSPACE_BYTES(model->num_classes, model->feature_dim, train_count)) {
        return TS_ERR_ARENA;
    }
    ws_layout(model, train_count, &l);
    k_n = model->num_classes;
    d_n = model->feature_dim;
    for (i = 0; i < train_count; ++i) {
        if (train_labels[i] >= k_n) {
            return TS_ERR_DATA;
        }
    }
    for (i = 0; i < test_count; ++i) {
        if (test_labels[i] >= k_n) {
            return TS_ERR_DATA;
        }
    }

    kd = (size_t)k_n * d_n;
    w = (float *)(void *)(workspace + l.w);
    v = (float *)(void *)(workspace + l.v);
    g = (float *)(void *)(workspace + l.g);
    b = (float *)(void *)(workspace + l.b);
    vb = (float *)(void *)(workspace + l.vb);
    gb = (float *)(void *)(workspace + l.gb);
    z = (float *)(void *)(workspace + l.z);
    p = (float *)(void *)(workspace + l.p);
    f = (float *)(void *)(workspace + l.f);
    order = (uint16_t *)(void *)(workspace + l.order);

    init_w = config->init_weights != NULL ? config->init_weights : model->head_weights;
    init_b = config->init_bias != NULL ? config->init_bias : model->head_bias;
    memcpy(w, init_w, kd * sizeof(float));
    memcpy(b, init_b, (size_t)k_n * sizeof(float));
    for (j = 0; j < kd; ++j) {
        v[j] = 0.0f;
        g[j] = 0.0f;
    }
    for (j = 0; j < k_n; ++j) {
        vb[j] = 0.0f;
        gb[j] = 0.0f;
    }

    memset(&res, 0, sizeof(res));
    res.train_count = train_count;
    res.test_count = test_count;
    res.cycles[TS_PHASE_BACKBONE] = backbone_cycles;
    res.weights = w;
    res.bias = b;
    clk.fn = config->cycles;
    clock_start(&clk);

    if (config->eval_initial) {
        st = eval_float(model, w, b, test_src, test_labels, test_count, f, z, &clk, res.cycles,
                        &res.test_correct_initial);
        if (st != TS_OK) {
            return st;
        }
        res.test_accuracy_initial = accuracy(res.test_correct_initial, test_count);
    }

    state = config->seed != 0u ? config->seed : TS_TRAINER_SEED_ZERO;
    for (epoch = 0; epoch < config->epochs; ++epoch) {
        ts_trainer_epoch_t es;
        uint32_t start, ph;
        float loss_sum = 0.0f;
        memset(&es, 0, sizeof(es));
        clock_start(&clk);
        ts_trainer_shuffle(order, train_count, &state);
        clock_lap(&clk, &es.cycles[TS_PHASE_UPDATE]);
        for (start = 0; start < train_count; start += config->batch_size) {
            uint32_t bn = train_count - start;
            uint32_t s;
            float den;
            if (bn > config->batch_size) {
                bn = config->batch_size;
            }
            for (s = 0; s < bn; ++s) {
                uint32_t idx = order[start + s];
                uint32_t y = train_labels[idx];
                uint32_t k, d;
                float m, sum;
                const int8_t *q = train_src->get(train_src->ctx, idx, &st);
                if (q == NULL) {
                    return st != TS_OK ? st : TS_ERR_NULL;
                }
                clock_lap(&clk, &es.cycles[TS_PHASE_BACKBONE]);
                /* forward */
                dequantize(model, q, f);
                head_logits(k_n, d_n, w, b, f, z);
                if (argmax_f(z, k_n) == y) {
                    ++es.correct;
                }
                m = z[0];
                for (k = 1; k < k_n; ++k) {
                    if (z[k] > m) {
                        m = z[k];
                    }
                }
                sum = 0.0f;
                for (k = 0; k < k_n; ++k) {
                    p[k] = expf(z[k] - m);
                    sum += p[k];
                }
                loss_sum += logf(sum) - (z[y] - m);
                for (k = 0; k < k_n; ++k) {
                    p[k] = p[k] / sum;
                }
                clock_lap(&clk, &es.cycles[TS_PHASE_HEAD_FORWARD]);
                /* backward: dz = p - onehot(y); G += dz f^T; gb += dz */
                for (k = 0; k < k_n; ++k) {
                    float dz = k == y ? p[k] - 1.0f : p[k];
                    float *grow = g + (size_t)k * d_n;
                    gb[k] += dz;
                    for (d = 0; d < d_n; ++d) {
                        grow[d] += dz * f[d];
                    }
                }
                clock_lap(&clk, &es.cycles[TS_PHASE_BACKWARD]);
            }
            /* update: v = mu v + G / B; w = w - lr v; G = 0 */
            den = (float)bn;
            for (j = 0; j < kd; ++j) {
                v[j] = config->momentum * v[j] + g[j] / den;
                w[j] = w[j] - config->learning_rate * v[j];
                g[j] = 0.0f;
            }
            for (j = 0; j < k_n; ++j) {
                vb[j] = config->momentum * vb[j] + gb[j] / den;
                b[j] = b[j] - config->learning_rate * vb[j];
                gb[j] = 0.0f;
            }
            clock_lap(&clk, &es.cycles[TS_PHASE_UPDATE]);
        }
        es.epoch = epoch;
        es.epochs = config->epochs;
        es.samples = train_count;
        es.mean_loss = loss_sum / (float)train_count;
        es.train_accuracy = accuracy(es.correct, train_count);
        for (ph = 0; ph < TS_PHASE_COUNT; ++ph) {
            res.cycles[ph] += es.cycles[ph];
        }
        res.epochs_run = epoch + 1u;
        res.last_loss = es.mean_loss;
        res.last_train_accuracy = es.train_accuracy;
        if (config->on_epoch != NULL && config->on_epoch(&es, config->user) != 0) {
            break;
        }
    }

    clock_start(&clk);
    st = eval_float(model, w, b, test_src, test_labels, test_count, f, z, &clk, res.cycles,
                    &res.test_correct_float);
    if (st != TS_OK) {
        return st;
    }
    st = ts_trainer_requantize_head(model, w, b, head_q);
    clock_lap(&clk, &res.cycles[TS_PHASE_EVAL]);
    if (st != TS_OK) {
        return st;
    }
    /* z doubles as the int8 logits buffer (K bytes <= K floats) */
    st = eval_int8(model, head_q, test_src, test_labels, test_count, (int8_t *)(void *)z, &clk,
                   res.cycles, &res.test_correct_int8);
    if (st != TS_OK) {
        return st;
    }
    res.test_accuracy_float = accuracy(res.test_correct_float, test_count);
    res.test_accuracy_int8 = accuracy(res.test_correct_int8, test_count);
    if (result != NULL) {
        *result = res;
    }
    return TS_OK;
}

/* ---- precomputed features -------------------------------------------------------------------- */

typedef struct {
    const int8_t *base;
    uint32_t dim;
} ts_array_src_t;

static const int8_t *array_get(void *ctx, uint32_t index, ts_status_t *status)
{
    const ts_array_src_t *a = (const ts_array_src_t *)ctx;
    (void)status;
    return a->base + (size_t)index * a->dim;
}

ts_status_t ts_trainer_run_features(const ts_model_t *model, const ts_trainer_config_t *config,
                                    const int8_t *train_features, const uint8_t *train_labels,
                                    uint32_t train_count, const int8_t *test_features,
                                    const uint8_t *test_labels, uint32_t test_count,
                                    uint8_t *workspace, size_t workspace_bytes,
                                    ts_head_q_t *head_q, ts_trainer_result_t *result,
                                    uint64_t backbone_cycles)
{
    ts_array_src_t tr, te;
    ts_feature_src_t trs, tes;
    ts_status_t st = ts_trainer_check_model(model);
    if (st != TS_OK) {
        return st;
    }
    if ((train_count > 0 && train_features == NULL) ||
        (test_count > 0 && test_features == NULL)) {
        return TS_ERR_NULL;
    }
    tr.base = train_features;
    tr.dim = model->feature_dim;
    te.base = test_features;
    te.dim = model->feature_dim;
    trs.get = array_get;
    trs.ctx = &tr;
    tes.get = array_get;
    tes.ctx = &te;
    return ts_trainer_run_sources(model, config, &trs, train_labels, train_count, &tes,
                                  test_labels, test_count, workspace, workspace_bytes, head_q,
                                  result, backbone_cycles);
}

ts_status_t ts_train_head_features(const ts_model_t *model, const ts_trainer_config_t *config,
                                   const int8_t *train_features, const uint8_t *train_labels,
                                   uint32_t train_count, const int8_t *test_features,
                                   const uint8_t *test_labels, uint32_t test_count,
                                   uint8_t *workspace, size_t workspace_bytes,
                                   ts_head_q_t *head_q, ts_trainer_result_t *result)
{
    return ts_trainer_run_features(model, config, train_features, train_labels, train_count,
                                   test_features, test_labels, test_count, workspace,
                                   workspace_bytes, head_q, result, 0u);
}
