/*
 * tinysift engine: the on-device head trainer (float32 head, softmax cross-entropy,
 * mini-batch SGD with momentum, xorshift32 + Fisher-Yates sample order), the test-set
 * evaluation and the int8 re-quantization of the trained head.
 *
 * The exact algorithm is docs/trainer.md; tests/trainer_reference.py is the numpy
 * reference of the same steps in the same order. This file needs no executor: it trains
 * from int8 features (precomputed, cached, or produced by a feature source that runs the
 * backbone, see ts_trainer_data.c). C99, no heap, no static state.
 *
 * A run (ts_trainer_run) is a sequence of small steps over one ts_run_t: bind the workspace
 * (run_bind), initialize the head (head_init), the epochs (train_epoch: shuffle, then per
 * batch sample_forward and sample_backward for each sample and batch_update), then the final
 * evaluation (evaluate: float head, re-quantization, int8 head).
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

const char *ts_trainer_phase_name(ts_trainer_phase_t phase)
{
    static const char *const names[TS_PHASE_COUNT] = {"features", "head_forward", "backward",
                                                      "update", "evaluation"};
    return (unsigned)phase < (unsigned)TS_PHASE_COUNT ? names[phase] : "unknown";
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

uint32_t ts_trainer_argmax_f(const float *logits, uint32_t n)
{
    uint32_t k, best = 0;
    for (k = 1; k < n; ++k) {
        best = logits[k] > logits[best] ? k : best;
    }
    return best;
}

uint32_t ts_trainer_argmax_q(const int8_t *logits, uint32_t n)
{
    uint32_t k, best = 0;
    for (k = 1; k < n; ++k) {
        best = logits[k] > logits[best] ? k : best;
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

/* ---- one run ---------------------------------------------------------------------------------- */

/* One training run: what it trains, its workspace's parts, its clock and the result it
 * fills. Lives on the caller's stack (ts_trainer_run). */
typedef struct {
    const ts_model_t *model;
    const ts_trainer_config_t *config;
    uint32_t k_n, d_n;
    size_t kd;
    float *w, *v, *g;   /* [K][D]: weights, momentum, batch gradient sum */
    float *b, *vb, *gb; /* [K]: the same for the bias */
    float *z, *p;       /* [K]: logits, probabilities */
    float *f;           /* [D]: the dequantized features of one sample */
    uint16_t *order;    /* [N]: this epoch's sample order */
    ts_clock_t clk;
    ts_trainer_result_t res;
} ts_run_t;

/* The workspace's parts (ws_layout) as typed pointers. */
static void run_bind(ts_run_t *r, const ts_model_t *model, const ts_trainer_config_t *config,
                     uint8_t *workspace, uint32_t train_count)
{
    ts_ws_layout_t l;
    ws_layout(model, train_count, &l);
    r->model = model;
    r->config = config;
    r->k_n = model->num_classes;
    r->d_n = model->feature_dim;
    r->kd = (size_t)r->k_n * r->d_n;
    r->w = (float *)(void *)(workspace + l.w);
    r->v = (float *)(void *)(workspace + l.v);
    r->g = (float *)(void *)(workspace + l.g);
    r->b = (float *)(void *)(workspace + l.b);
    r->vb = (float *)(void *)(workspace + l.vb);
    r->gb = (float *)(void *)(workspace + l.gb);
    r->z = (float *)(void *)(workspace + l.z);
    r->p = (float *)(void *)(workspace + l.p);
    r->f = (float *)(void *)(workspace + l.f);
    r->order = (uint16_t *)(void *)(workspace + l.order);
}

/* W, b from the config's init arrays (or the model's head); momentum and gradients 0. */
static void head_init(ts_run_t *r)
{
    const ts_trainer_config_t *config = r->config;
    const float *init_w = config->init_weights != NULL ? config->init_weights
                                                       : r->model->head_weights;
    const float *init_b = config->init_bias != NULL ? config->init_bias : r->model->head_bias;
    size_t j;
    memcpy(r->w, init_w, r->kd * sizeof(float));
    memcpy(r->b, init_b, (size_t)r->k_n * sizeof(float));
    for (j = 0; j < r->kd; ++j) {
        r->v[j] = 0.0f;
        r->g[j] = 0.0f;
    }
    for (j = 0; j < r->k_n; ++j) {
        r->vb[j] = 0.0f;
        r->gb[j] = 0.0f;
    }
}

static float accuracy(uint32_t correct, uint32_t count)
{
    return count > 0 ? (float)correct / (float)count : 0.0f;
}

/* ---- evaluation ------------------------------------------------------------------------------ */

/* Float head on the test set; feature time (a recomputation or a lookup) is counted apart
 * from the evaluation itself. */
static ts_status_t eval_float(ts_run_t *r, const ts_feature_src_t *src, const uint8_t *labels,
                              uint32_t count, uint32_t *correct)
{
    uint64_t *cycles = r->res.cycles;
    uint32_t i, n_ok = 0;
    for (i = 0; i < count; ++i) {
        ts_status_t st = TS_OK;
        const int8_t *q;
        clock_lap(&r->clk, &cycles[TS_PHASE_EVALUATION]);
        q = src->get(src->ctx, i, &st);
        if (q == NULL) {
            return st != TS_OK ? st : TS_ERR_NULL;
        }
        clock_lap(&r->clk, &cycles[TS_PHASE_FEATURES]);
        dequantize(r->model, q, r->f);
        head_logits(r->k_n, r->d_n, r->w, r->b, r->f, r->z);
        if (ts_trainer_argmax_f(r->z, r->k_n) == labels[i]) {
            ++n_ok;
        }
    }
    clock_lap(&r->clk, &cycles[TS_PHASE_EVALUATION]);
    *correct = n_ok;
    return TS_OK;
}

/* The re-quantized head on the test set; logits: K bytes of scratch. */
static ts_status_t eval_int8(ts_run_t *r, const ts_head_q_t *head_q,
                             const ts_feature_src_t *src, const uint8_t *labels,
                             uint32_t count, int8_t *logits, uint32_t *correct)
{
    uint64_t *cycles = r->res.cycles;
    uint32_t i, n_ok = 0;
    for (i = 0; i < count; ++i) {
        ts_status_t st = TS_OK;
        const int8_t *q;
        clock_lap(&r->clk, &cycles[TS_PHASE_EVALUATION]);
        q = src->get(src->ctx, i, &st);
        if (q == NULL) {
            return st != TS_OK ? st : TS_ERR_NULL;
        }
        clock_lap(&r->clk, &cycles[TS_PHASE_FEATURES]);
        ts_trainer_head_int8(r->model, head_q, q, logits);
        if (ts_trainer_argmax_q(logits, r->k_n) == labels[i]) {
            ++n_ok;
        }
    }
    clock_lap(&r->clk, &cycles[TS_PHASE_EVALUATION]);
    *correct = n_ok;
    return TS_OK;
}

/* After training: the float head on the test set, its re-quantization into head_q, and the
 * int8 head on the test set. */
static ts_status_t evaluate(ts_run_t *r, ts_head_q_t *head_q, const ts_feature_src_t *src,
                            const uint8_t *labels, uint32_t count)
{
    ts_status_t st;
    clock_start(&r->clk);
    st = eval_float(r, src, labels, count, &r->res.test_correct_float);
    if (st != TS_OK) {
        return st;
    }
    st = ts_trainer_requantize_head(r->model, r->w, r->b, head_q);
    clock_lap(&r->clk, &r->res.cycles[TS_PHASE_EVALUATION]);
    if (st != TS_OK) {
        return st;
    }
    /* z doubles as the int8 logits buffer (K bytes <= K floats) */
    st = eval_int8(r, head_q, src, labels, count, (int8_t *)(void *)r->z,
                   &r->res.test_correct_int8);
    if (st != TS_OK) {
        return st;
    }
    r->res.test_accuracy_float = accuracy(r->res.test_correct_float, count);
    r->res.test_accuracy_int8 = accuracy(r->res.test_correct_int8, count);
    return TS_OK;
}

/* ---- training ------------------------------------------------------------------------------- */

/* TS_OK when the config's values are usable (batch size, learning rate, momentum). */
static ts_status_t check_config(const ts_trainer_config_t *cfg)
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

/* softmax_loss is kept out of line: inlined into the sample loop, GCC 12 (-O2, Cortex-M4F)
 * spills three registers around every expf call, about 60 instructions a sample. Out of
 * line an epoch costs what the trainer did as one function (tools/bench_trainer.sh, digits:
 * 15.47 M instructions an epoch, against 15.50 M before the split and 15.54 M inlined).
 * The results are the same either way (nothing inside is a multiply-add to contract). */
#if defined(__GNUC__)
#define TS_NOINLINE __attribute__((noinline))
#else
#define TS_NOINLINE
#endif

/* Softmax cross-entropy of logits z[0..K) against label y: p[k] = e^(z[k] - m) / sum,
 * returns the loss log(sum) - (z[y] - m) (m = max z). */
TS_NOINLINE static float softmax_loss(const float *z, float *p, uint32_t k_n, uint32_t y)
{
    uint32_t k;
    float m, sum, loss;
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
    loss = logf(sum) - (z[y] - m);
    for (k = 0; k < k_n; ++k) {
        p[k] = p[k] / sum;
    }
    return loss;
}

/* Forward pass of one training sample with the current head: f, z and the probabilities p
 * (left in r->p for the backward pass); *correct counts a right prediction. Returns the
 * sample's loss. */
static float sample_forward(ts_run_t *r, const int8_t *q, uint32_t y, uint32_t *correct)
{
    dequantize(r->model, q, r->f);
    head_logits(r->k_n, r->d_n, r->w, r->b, r->f, r->z);
    if (ts_trainer_argmax_f(r->z, r->k_n) == y) {
        ++*correct;
    }
    return softmax_loss(r->z, r->p, r->k_n, y);
}

/* Backward pass of the sample sample_forward saw: dz = p - onehot(y); G += dz f^T; gb += dz. */
static void sample_backward(ts_run_t *r, uint32_t y)
{
    const uint32_t d_n = r->d_n;
    const float *f = r->f;
    uint32_t k, d;
    for (k = 0; k < r->k_n; ++k) {
        float dz = k == y ? r->p[k] - 1.0f : r->p[k];
        float *grow = r->g + (size_t)k * d_n;
        r->gb[k] += dz;
        for (d = 0; d < d_n; ++d) {
            grow[d] += dz * f[d];
        }
    }
}

/* The step after a batch of bn samples, for every parameter (weights, then biases):
 * v = mu v + G / B; w = w - lr v; G = 0. */
static void batch_update(ts_run_t *r, uint32_t bn)
{
    const float mu = r->config->momentum;
    const float lr = r->config->learning_rate;
    const float den = (float)bn;
    size_t j;
    for (j = 0; j < r->kd; ++j) {
        r->v[j] = mu * r->v[j] + r->g[j] / den;
        r->w[j] = r->w[j] - lr * r->v[j];
        r->g[j] = 0.0f;
    }
    for (j = 0; j < r->k_n; ++j) {
        r->vb[j] = mu * r->vb[j] + r->gb[j] / den;
        r->b[j] = r->b[j] - lr * r->vb[j];
        r->gb[j] = 0.0f;
    }
}

/* One epoch over count samples: the shuffle, then per batch every sample's forward and
 * backward pass and the update. es receives the epoch's statistics and cycles. */
static ts_status_t train_epoch(ts_run_t *r, const ts_feature_src_t *src, const uint8_t *labels,
                               uint32_t count, uint32_t *state, ts_trainer_epoch_t *es)
{
    const uint32_t batch_size = r->config->batch_size;
    uint32_t start;
    float loss_sum = 0.0f;
    memset(es, 0, sizeof(*es));
    clock_start(&r->clk);
    ts_trainer_shuffle(r->order, count, state);
    clock_lap(&r->clk, &es->cycles[TS_PHASE_UPDATE]);
    for (start = 0; start < count; start += batch_size) {
        uint32_t bn = count - start;
        uint32_t s;
        if (bn > batch_size) {
            bn = batch_size;
        }
        for (s = 0; s < bn; ++s) {
            ts_status_t st = TS_OK;
            uint32_t idx = r->order[start + s];
            uint32_t y = labels[idx];
            const int8_t *q = src->get(src->ctx, idx, &st);
            if (q == NULL) {
                return st != TS_OK ? st : TS_ERR_NULL;
            }
            clock_lap(&r->clk, &es->cycles[TS_PHASE_FEATURES]);
            loss_sum += sample_forward(r, q, y, &es->correct);
            clock_lap(&r->clk, &es->cycles[TS_PHASE_HEAD_FORWARD]);
            sample_backward(r, y);
            clock_lap(&r->clk, &es->cycles[TS_PHASE_BACKWARD]);
        }
        batch_update(r, bn);
        clock_lap(&r->clk, &es->cycles[TS_PHASE_UPDATE]);
    }
    es->samples = count;
    es->mean_loss = loss_sum / (float)count;
    es->train_accuracy = accuracy(es->correct, count);
    return TS_OK;
}

/* config.epochs epochs (fewer when on_epoch asks to stop), added up into r->res. */
static ts_status_t train_epochs(ts_run_t *r, const ts_feature_src_t *src, const uint8_t *labels,
                                uint32_t count)
{
    const ts_trainer_config_t *config = r->config;
    uint32_t epoch, ph;
    uint32_t state = config->seed != 0u ? config->seed : TS_TRAINER_SEED_ZERO;
    for (epoch = 0; epoch < config->epochs; ++epoch) {
        ts_trainer_epoch_t es;
        ts_status_t st = train_epoch(r, src, labels, count, &state, &es);
        if (st != TS_OK) {
            return st;
        }
        es.epoch = epoch;
        es.epochs = config->epochs;
        for (ph = 0; ph < TS_PHASE_COUNT; ++ph) {
            r->res.cycles[ph] += es.cycles[ph];
        }
        r->res.epochs_run = epoch + 1u;
        r->res.last_loss = es.mean_loss;
        r->res.last_train_accuracy = es.train_accuracy;
        if (config->on_epoch != NULL && config->on_epoch(&es, config->user) != 0) {
            break;
        }
    }
    return TS_OK;
}

ts_status_t ts_trainer_check_dataset(const ts_model_t *model, const ts_dataset_t *ds,
                                     ts_sample_kind_t kind)
{
    uint64_t sample_bytes = kind == TS_SAMPLES_FEATURES
                                ? (uint64_t)model->feature_dim
                                : (uint64_t)model->input.h * (uint64_t)model->input.w *
                                      (uint64_t)model->input.c;
    if (ds == NULL) {
        return TS_ERR_NULL;
    }
    if (ds->count > 0 && (ds->x == NULL || ds->y == NULL)) {
        return TS_ERR_NULL;
    }
    if ((uint64_t)ds->sample_bytes != sample_bytes) {
        return TS_ERR_SHAPE;
    }
    return TS_OK;
}

static ts_status_t check_labels(const ts_dataset_t *ds, uint32_t num_classes)
{
    uint32_t i;
    for (i = 0; i < ds->count; ++i) {
        if (ds->y[i] >= num_classes) {
            return TS_ERR_DATA;
        }
    }
    return TS_OK;
}

ts_status_t ts_trainer_check_request(const ts_model_t *model, const ts_trainer_config_t *config,
                                     const ts_train_request_t *req, ts_sample_kind_t kind)
{
    ts_status_t st = ts_trainer_check_model(model);
    if (st != TS_OK) {
        return st;
    }
    st = check_config(config);
    if (st != TS_OK) {
        return st;
    }
    if (req == NULL || req->workspace == NULL || req->head_q == NULL ||
        req->head_q->weights == NULL || req->head_q->bias == NULL) {
        return TS_ERR_NULL;
    }
    st = ts_trainer_check_dataset(model, req->train, kind);
    if (st == TS_OK) {
        st = ts_trainer_check_dataset(model, req->test, kind);
    }
    if (st != TS_OK) {
        return st;
    }
    if (req->train->count > TS_TRAINER_MAX_SAMPLES ||
        (config->epochs > 0 && req->train->count == 0)) {
        return TS_ERR_DATA;
    }
    if (((uintptr_t)req->workspace & 3u) != 0) {
        return TS_ERR_PARAM;
    }
    if (req->workspace_bytes <
        TS_TRAINER_WORKSPACE_BYTES(model->num_classes, model->feature_dim, req->train->count)) {
        return TS_ERR_ARENA;
    }
    st = check_labels(req->train, model->num_classes);
    if (st == TS_OK) {
        st = check_labels(req->test, model->num_classes);
    }
    return st;
}

ts_status_t ts_trainer_run(const ts_model_t *model, const ts_trainer_config_t *config,
                           const ts_train_request_t *req, const ts_feature_src_t *train_src,
                           const ts_feature_src_t *test_src, uint64_t features_cycles)
{
    const ts_dataset_t *train = req->train;
    const ts_dataset_t *test = req->test;
    ts_run_t r;
    ts_status_t st;

    run_bind(&r, model, config, req->workspace, train->count);
    head_init(&r);
    memset(&r.res, 0, sizeof(r.res));
    r.res.train_count = train->count;
    r.res.test_count = test->count;
    r.res.cycles[TS_PHASE_FEATURES] = features_cycles;
    r.res.weights = r.w;
    r.res.bias = r.b;
    r.clk.fn = config->cycles;
    clock_start(&r.clk);

    if (config->eval_initial) {
        st = eval_float(&r, test_src, test->y, test->count, &r.res.test_correct_initial);
        if (st != TS_OK) {
            return st;
        }
        r.res.test_accuracy_initial = accuracy(r.res.test_correct_initial, test->count);
    }
    st = train_epochs(&r, train_src, train->y, train->count);
    if (st != TS_OK) {
        return st;
    }
    st = evaluate(&r, req->head_q, test_src, test->y, test->count);
    if (st != TS_OK) {
        return st;
    }
    if (req->result != NULL) {
        *req->result = r.res;
    }
    return TS_OK;
}

/* ---- precomputed features -------------------------------------------------------------------- */

static const int8_t *array_get(void *ctx, uint32_t index, ts_status_t *status)
{
    const ts_array_src_t *a = (const ts_array_src_t *)ctx;
    (void)status;
    return a->base + (size_t)index * a->dim;
}

void ts_trainer_array_src(ts_array_src_t *arr, const int8_t *base, uint32_t dim,
                          ts_feature_src_t *src)
{
    arr->base = base;
    arr->dim = dim;
    src->get = array_get;
    src->ctx = arr;
}

ts_dataset_t ts_trainer_feature_set(const ts_model_t *model, const int8_t *features,
                                    const uint8_t *labels, uint32_t count)
{
    ts_dataset_t ds;
    ds.count = count;
    ds.sample_bytes = model->feature_dim;
    ds.x = features;
    ds.y = labels;
    return ds;
}

ts_status_t ts_train_head_features(const ts_model_t *model, const ts_trainer_config_t *config,
                                   const ts_train_request_t *req)
{
    ts_array_src_t tr, te;
    ts_feature_src_t trs, tes;
    ts_status_t st = ts_trainer_check_request(model, config, req, TS_SAMPLES_FEATURES);
    if (st != TS_OK) {
        return st;
    }
    ts_trainer_array_src(&tr, req->train->x, model->feature_dim, &trs);
    ts_trainer_array_src(&te, req->test->x, model->feature_dim, &tes);
    return ts_trainer_run(model, config, req, &trs, &tes, 0u);
}
