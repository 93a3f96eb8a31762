/*
 * tinysift engine: the on-device trainer (float32 head, softmax cross-entropy, mini-batch SGD
 * with momentum, xorshift32 + Fisher-Yates sample order, optional steps / learning-rate
 * schedule / class-balanced loss), the test-set evaluation and the int8 re-quantization of
 * what was trained. With update=last-block or bias the float layers below the head
 * (ts_trainer_tail.c) train with it.
 *
 * The exact algorithm is docs/trainer.md; tests/trainer_reference.py is the numpy
 * reference of the same steps in the same order. It trains from the int8 inputs of the
 * trained layers (features for update=head): precomputed, cached, or produced by a source
 * that runs the frozen int8 layers (ts_trainer_data.c). C99, no heap, no static state.
 *
 * A run (ts_trainer_run) is a sequence of small steps over one ts_run_t: bind the workspace
 * (run_bind), initialize (run_init: the head, the float layers, class weights), the windows
 * (train_loop / train_window: an epoch's shuffle, or the stream of steps, then per batch
 * sample_forward and sample_backward for each sample and batch_update), then the final
 * evaluation (evaluate: float model, re-quantization, int8 model).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ts_engine.h"
#include "ts_fixedpoint.h"
#include "ts_tflite.h"
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
    /* the features are the previous layer's output: [0, head_layer) runs on its own */
    if (!ts_layer_reads_previous(model, model->head_layer)) {
        return TS_ERR_UNSUPPORTED_OP;
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
    size_t w, v, g, b, vb, gb, z, p, cw, f, order, feat8;
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
    l->cw = l->p + k * sizeof(float);
    l->f = l->cw + k * sizeof(float);
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
    uint64_t bytes;
    if (ts_trainer_check_model(model) != TS_OK) {
        return 0;
    }
    /* in 64 bits: the counts are the caller's, a 32-bit size_t product wraps */
    bytes = ((uint64_t)train_count + test_count) * model->feature_dim;
    return bytes < TS_TRAINER_MAX_BYTES ? (size_t)bytes : 0u;
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

const char *ts_trainer_update_name(uint32_t update)
{
    static const char *const names[TS_UPDATE_COUNT] = {"head", "last-block", "bias"};
    return update < (uint32_t)TS_UPDATE_COUNT ? names[update] : NULL;
}

const char *ts_trainer_schedule_name(uint32_t schedule)
{
    static const char *const names[TS_SCHEDULE_COUNT] = {"constant", "cosine", "step"};
    return schedule < (uint32_t)TS_SCHEDULE_COUNT ? names[schedule] : NULL;
}

/* ---- QuantizeMultiplier (the fixed-point arithmetic itself: ts_fixedpoint.h) --------- */

int64_t ts_trainer_round_away(double x, int64_t lo, int64_t hi)
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
    q_fixed = ts_trainer_round_away(q * 2147483648.0, -((int64_t)1 << 31), (int64_t)1 << 31);
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
    int64_t max_bias = 0;
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
    /* the engine's accumulator bound (ts_executor.c check_quant): a bias too large for the
     * int32 accumulator is refused, not clamped into a head the engine would not run */
    for (k = 0; k < model->num_classes; ++k) {
        int64_t q = ts_trainer_round_away((double)bias[k] / (double)bias_scale, INT32_MIN,
                                          INT32_MAX);
        q = q < 0 ? -q : q;
        max_bias = q > max_bias ? q : max_bias;
    }
    if (!ts_acc_bound_ok((int64_t)model->feature_dim, max_bias)) {
        return TS_ERR_PARAM;
    }
    for (j = 0; j < kd; ++j) {
        head_q->weights[j] =
            (int8_t)ts_trainer_round_away((double)weights[j] / (double)w_scale, -127, 127);
    }
    for (k = 0; k < model->num_classes; ++k) {
        head_q->bias[k] = (int32_t)ts_trainer_round_away((double)bias[k] / (double)bias_scale,
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
    int64_t max_bias = 0;
    if (model == NULL || head_q == NULL || features == NULL || logits == NULL ||
        head_q->weights == NULL || head_q->bias == NULL || model->layers == NULL) {
        return TS_ERR_NULL;
    }
    /* what the engine checks of a FULLY_CONNECTED layer (ts_executor.c check_quant) */
    if (head_q->multiplier < 0 || head_q->shift < -31 || head_q->shift > 30) {
        return TS_ERR_PARAM;
    }
    for (k = 0; k < model->num_classes; ++k) {
        const int64_t b = head_q->bias[k] < 0 ? -(int64_t)head_q->bias[k]
                                              : (int64_t)head_q->bias[k];
        max_bias = b > max_bias ? b : max_bias;
    }
    if (!ts_acc_bound_ok((int64_t)model->feature_dim, max_bias)) {
        return TS_ERR_PARAM;
    }
    head = &model->layers[model->head_layer];
    for (k = 0; k < model->num_classes; ++k) {
        const int8_t *row = head_q->weights + (size_t)k * model->feature_dim;
        int32_t acc = head_q->bias[k];
        int32_t out;
        for (d = 0; d < model->feature_dim; ++d) {
            acc += ((int32_t)features[d] - model->feature_zero_point) * (int32_t)row[d];
        }
        /* wraps as the FULLY_CONNECTED kernel does (ts_kernels.c): a shift > 0 can bring
         * ts_mbqm's result near INT32_MIN/MAX */
        out = ts_add_wrap(ts_mbqm(acc, head_q->multiplier, head_q->shift),
                          model->logit_zero_point);
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

void ts_trainer_sampler_init(ts_trainer_sampler_t *s, uint16_t *order, uint32_t n,
                             uint32_t seed)
{
    s->order = order;
    s->n = n;
    s->pos = n;
    s->state = seed != 0u ? seed : TS_TRAINER_SEED_ZERO;
}

uint32_t ts_trainer_sampler_next(ts_trainer_sampler_t *s)
{
    if (s->pos >= s->n) {
        ts_trainer_shuffle(s->order, s->n, &s->state);
        s->pos = 0;
    }
    return s->order[s->pos++];
}

/* ---- recipe: learning rate per step, class weights --------------------------------------- */

float ts_trainer_learning_rate(float lr, uint32_t schedule, uint64_t t, uint64_t total)
{
    if (schedule == TS_SCHEDULE_COSINE && total > 0u) {
        return (float)((double)lr * 0.5 *
                       (1.0 + cos(3.14159265358979323846 * (double)t / (double)total)));
    }
    if (schedule == TS_SCHEDULE_STEP) {
        if (4u * t >= 3u * total) {
            return lr / 100.0f;
        }
        if (2u * t >= total) {
            return lr / 10.0f;
        }
    }
    return lr;
}

void ts_trainer_class_weights(const uint8_t *labels, uint32_t n, const uint8_t *labels2,
                              uint32_t n2, uint32_t num_classes, float *w)
{
    uint32_t i, c, present = 0;
    for (c = 0; c < num_classes; ++c) {
        w[c] = 0.0f; /* the count first (exact in float up to 2^24) */
    }
    for (i = 0; i < n; ++i) {
        w[labels[i]] += 1.0f;
    }
    for (i = 0; i < n2; ++i) {
        w[labels2[i]] += 1.0f;
    }
    for (c = 0; c < num_classes; ++c) {
        present += w[c] > 0.0f;
    }
    for (c = 0; c < num_classes; ++c) {
        w[c] = w[c] > 0.0f ? (float)(n + n2) / ((float)present * w[c]) : 0.0f;
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
    const ts_train_request_t *req;
    uint32_t k_n, d_n;
    size_t kd;
    float *w, *v, *g;   /* [K][D]: weights, momentum, batch gradient sum */
    float *b, *vb, *gb; /* [K]: the same for the bias */
    float *z, *p;       /* [K]: logits, probabilities (then dz) */
    float *cw;          /* [K]: class weights (balance) */
    float *f;           /* [D]: the head's float input of one sample */
    uint16_t *order;    /* [N]: this epoch's sample order */
    int8_t *feat8;      /* [D]: int8 features (the int8 evaluation of the float layers) */
    float lr;           /* this step's learning rate */
    int tail_on;        /* update=last-block / bias: float layers below the head */
    ts_tail_t tail;
    ts_model_t tuned;   /* the re-quantized model (tail_on) */
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
    r->cw = (float *)(void *)(workspace + l.cw);
    r->f = (float *)(void *)(workspace + l.f);
    r->order = (uint16_t *)(void *)(workspace + l.order);
    r->feat8 = (int8_t *)(void *)(workspace + l.feat8);
    r->lr = config->learning_rate;
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

/* The per-class row `row` of req->per_class (NULL when the caller gave none). */
static uint32_t *per_class_row(const ts_run_t *r, uint32_t row)
{
    return r->req->per_class != NULL ? r->req->per_class + (size_t)row * r->k_n : NULL;
}

/* The head's float input of one sample: its dequantized features, or the float layers'
 * output for its int8 input. */
static void head_input(ts_run_t *r, const int8_t *q)
{
    if (r->tail_on) {
        ts_tail_forward(&r->tail, q, r->f);
    } else {
        dequantize(r->model, q, r->f);
    }
}

/* ---- evaluation ------------------------------------------------------------------------------ */

/* The float model on the test set (per class into row `row` of per_class); feature time (a
 * recomputation or a lookup) is counted apart from the evaluation itself. */
static ts_status_t eval_float(ts_run_t *r, const ts_feature_src_t *src, uint32_t row,
                              uint32_t *correct)
{
    uint64_t *cycles = r->res.cycles;
    uint32_t *pc = per_class_row(r, row);
    uint32_t i, n_ok = 0;
    for (i = 0; i < src->count; ++i) {
        ts_status_t st = TS_OK;
        const int8_t *q;
        uint32_t y = ts_src_label(src, i);
        clock_lap(&r->clk, &cycles[TS_PHASE_EVALUATION]);
        q = src->get(src->ctx, i, &st);
        if (q == NULL) {
            return st != TS_OK ? st : TS_ERR_NULL;
        }
        clock_lap(&r->clk, &cycles[TS_PHASE_FEATURES]);
        head_input(r, q);
        head_logits(r->k_n, r->d_n, r->w, r->b, r->f, r->z);
        if (ts_trainer_argmax_f(r->z, r->k_n) == y) {
            ++n_ok;
            if (pc != NULL) {
                ++pc[y];
            }
        }
    }
    clock_lap(&r->clk, &cycles[TS_PHASE_EVALUATION]);
    *correct = n_ok;
    return TS_OK;
}

/* The re-quantized model on the test set; logits: K bytes of scratch. With float layers
 * their int8 form runs first: the tuned layers [first, head_layer) into feat8. */
static ts_status_t eval_int8(ts_run_t *r, const ts_head_q_t *head_q,
                             const ts_feature_src_t *src, int8_t *logits, uint32_t *correct)
{
    const ts_train_request_t *req = r->req;
    uint64_t *cycles = r->res.cycles;
    uint32_t *pc = per_class_row(r, 3u);
    uint32_t i, n_ok = 0;
    for (i = 0; i < src->count; ++i) {
        ts_status_t st = TS_OK;
        const int8_t *q;
        uint32_t y = ts_src_label(src, i);
        clock_lap(&r->clk, &cycles[TS_PHASE_EVALUATION]);
        q = src->get(src->ctx, i, &st);
        if (q == NULL) {
            return st != TS_OK ? st : TS_ERR_NULL;
        }
        clock_lap(&r->clk, &cycles[TS_PHASE_FEATURES]);
        if (r->tail_on) {
            st = ts_run_layers(&r->tuned, r->tail.sz.first_layer, r->model->head_layer, q,
                               r->feat8, req->arena, req->arena_bytes);
            if (st != TS_OK) {
                return st;
            }
            q = r->feat8;
        }
        ts_trainer_head_int8(r->model, head_q, q, logits);
        if (ts_trainer_argmax_q(logits, r->k_n) == y) {
            ++n_ok;
            if (pc != NULL) {
                ++pc[y];
            }
        }
    }
    clock_lap(&r->clk, &cycles[TS_PHASE_EVALUATION]);
    *correct = n_ok;
    return TS_OK;
}

/* The float layers re-quantized into req->backbone_q and the tuned layer table in
 * req->layers (the head from head_q, already re-quantized). */
static ts_status_t requantize_tail(ts_run_t *r, const ts_head_q_t *head_q)
{
    const ts_train_request_t *req = r->req;
    ts_status_t st = ts_tail_requantize(&r->tail, req->backbone_q);
    if (st == TS_OK) {
        st = ts_trainer_patch_model(r->model, head_q, req->layers, req->layers_cap, &r->tuned);
    }
    if (st == TS_OK) {
        st = ts_trainer_patch_backbone(r->model, r->config->update, req->backbone_q,
                                       req->backbone_q_bytes, req->layers, req->layers_cap);
    }
    return st;
}

/* After training: the float model on the test set, its re-quantization into head_q (and
 * the backbone's), and the int8 model on the test set. */
static ts_status_t evaluate(ts_run_t *r, ts_head_q_t *head_q, const ts_feature_src_t *src)
{
    ts_status_t st;
    clock_start(&r->clk);
    st = eval_float(r, src, 2u, &r->res.test_correct_float);
    if (st != TS_OK) {
        return st;
    }
    st = ts_trainer_requantize_head(r->model, r->w, r->b, head_q);
    if (st == TS_OK && r->tail_on) {
        st = requantize_tail(r, head_q);
    }
    clock_lap(&r->clk, &r->res.cycles[TS_PHASE_EVALUATION]);
    if (st != TS_OK) {
        return st;
    }
    /* z doubles as the int8 logits buffer (K bytes <= K floats) */
    st = eval_int8(r, head_q, src, (int8_t *)(void *)r->z, &r->res.test_correct_int8);
    if (st != TS_OK) {
        return st;
    }
    r->res.test_accuracy_float = accuracy(r->res.test_correct_float, src->count);
    r->res.test_accuracy_int8 = accuracy(r->res.test_correct_int8, src->count);
    return TS_OK;
}

/* ---- training ------------------------------------------------------------------------------- */

/* TS_OK when the config's values are usable (batch size, learning rate, momentum, modes). */
static ts_status_t check_config(const ts_trainer_config_t *cfg)
{
    if (cfg == NULL) {
        return TS_ERR_NULL;
    }
    if (cfg->batch_size == 0 || !(cfg->learning_rate > 0.0f) ||
        !(cfg->learning_rate <= 3.0e38f) || !(cfg->momentum >= 0.0f) ||
        !(cfg->momentum < 1.0f) || cfg->schedule >= (uint32_t)TS_SCHEDULE_COUNT ||
        cfg->update >= (uint32_t)TS_UPDATE_COUNT) {
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

/* Forward pass of one training sample with the current parameters: f, z and the
 * probabilities p (left in r->p for the backward pass); *correct counts a right
 * prediction. Returns the sample's loss. */
static float sample_forward(ts_run_t *r, const int8_t *q, uint32_t y, uint32_t *correct)
{
    head_input(r, q);
    head_logits(r->k_n, r->d_n, r->w, r->b, r->f, r->z);
    if (ts_trainer_argmax_f(r->z, r->k_n) == y) {
        ++*correct;
    }
    return softmax_loss(r->z, r->p, r->k_n, y);
}

/* Backward pass of the sample sample_forward saw: dz = (p - onehot(y)) * weight (balance;
 * else no multiplication); G += dz f^T; gb += dz. With float layers dz stays in p, then
 * df = W^T dz (the weights before the batch's update) goes down through them (q: the
 * sample's int8 input again). */
static void sample_backward(ts_run_t *r, const int8_t *q, uint32_t y)
{
    const uint32_t d_n = r->d_n;
    const float *f = r->f;
    const int weighted = r->config->balance != 0u;
    const float weight = weighted ? r->cw[y] : 1.0f;
    uint32_t k, d;
    for (k = 0; k < r->k_n; ++k) {
        float dz = k == y ? r->p[k] - 1.0f : r->p[k];
        float *grow = r->g + (size_t)k * d_n;
        if (weighted) {
            dz = dz * weight;
        }
        r->gb[k] += dz;
        for (d = 0; d < d_n; ++d) {
            grow[d] += dz * f[d];
        }
        r->p[k] = dz;
    }
    if (r->tail_on) {
        float *df = ts_tail_grad_out(&r->tail);
        for (d = 0; d < d_n; ++d) {
            df[d] = 0.0f;
        }
        for (k = 0; k < r->k_n; ++k) {
            const float dz = r->p[k];
            const float *row = r->w + (size_t)k * d_n;
            for (d = 0; d < d_n; ++d) {
                df[d] += dz * row[d];
            }
        }
        ts_tail_backward(&r->tail, q);
    }
}

/* The step after a batch of bn samples, for every parameter (head weights, head biases,
 * then the float layers' parameters): v = mu v + G / B; w = w - lr v; G = 0. */
static void batch_update(ts_run_t *r, uint32_t bn)
{
    const float mu = r->config->momentum;
    const float lr = r->lr;
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
    if (r->tail_on) {
        ts_tail_update(&r->tail, lr, mu, bn);
    }
}

/* Where the samples of a run come from: an epoch's shuffled order, or (config.steps) the
 * stream of ts_trainer_sampler_t running on across epochs. */
typedef struct {
    int stream;
    uint32_t state;               /* epochs: xorshift32 */
    ts_trainer_sampler_t sampler; /* steps */
} ts_order_t;

/* One window: an epoch (its shuffle, then its batches; the last one holds the rest), or
 * (stream) `steps` batches of exactly batch_size samples. t: the run's step counter. */
static ts_status_t train_window(ts_run_t *r, const ts_feature_src_t *src, ts_order_t *o,
                                uint32_t steps, uint64_t *t, uint64_t total,
                                ts_trainer_epoch_t *es)
{
    const ts_trainer_config_t *cfg = r->config;
    const uint32_t batch_size = cfg->batch_size, count = src->count;
    uint32_t step, start = 0;
    float loss_sum = 0.0f;
    memset(es, 0, sizeof(*es));
    clock_start(&r->clk);
    if (!o->stream) {
        ts_trainer_shuffle(r->order, count, &o->state);
        clock_lap(&r->clk, &es->cycles[TS_PHASE_UPDATE]);
    }
    for (step = 0; step < steps; ++step, ++*t) {
        uint32_t bn = batch_size;
        uint32_t s;
        if (!o->stream && bn > count - start) {
            bn = count - start;
        }
        if (cfg->schedule != TS_SCHEDULE_CONSTANT) {
            r->lr = ts_trainer_learning_rate(cfg->learning_rate, cfg->schedule, *t, total);
        }
        for (s = 0; s < bn; ++s) {
            ts_status_t st = TS_OK;
            uint32_t idx, y;
            const int8_t *q;
            float loss;
            if (o->stream) {
                if (o->sampler.pos >= o->sampler.n) { /* the reshuffle counts as update */
                    ts_trainer_shuffle(o->sampler.order, o->sampler.n, &o->sampler.state);
                    o->sampler.pos = 0;
                    clock_lap(&r->clk, &es->cycles[TS_PHASE_UPDATE]);
                }
                idx = ts_trainer_sampler_next(&o->sampler);
            } else {
                idx = r->order[start + s];
            }
            y = ts_src_label(src, idx);
            q = src->get(src->ctx, idx, &st);
            if (q == NULL) {
                return st != TS_OK ? st : TS_ERR_NULL;
            }
            clock_lap(&r->clk, &es->cycles[TS_PHASE_FEATURES]);
            loss = sample_forward(r, q, y, &es->correct);
            if (cfg->balance != 0u) {
                loss = loss * r->cw[y];
            }
            loss_sum += loss;
            clock_lap(&r->clk, &es->cycles[TS_PHASE_HEAD_FORWARD]);
            sample_backward(r, q, y);
            clock_lap(&r->clk, &es->cycles[TS_PHASE_BACKWARD]);
        }
        batch_update(r, bn);
        clock_lap(&r->clk, &es->cycles[TS_PHASE_UPDATE]);
        start += bn;
        es->samples += bn;
    }
    es->mean_loss = loss_sum / (float)es->samples;
    es->train_accuracy = accuracy(es->correct, es->samples);
    return TS_OK;
}

/* config.epochs epochs, or config.steps steps in windows of ceil(N / B) steps (fewer when
 * on_epoch asks to stop), added up into r->res. */
static ts_status_t train_loop(ts_run_t *r, const ts_feature_src_t *src)
{
    const ts_trainer_config_t *config = r->config;
    const uint32_t count = src->count;
    const uint32_t per_epoch = count > 0u ? (count - 1u) / config->batch_size + 1u : 0u;
    ts_order_t o;
    uint64_t t = 0, total;
    uint32_t win, windows, ph;
    uint32_t seed = config->seed != 0u ? config->seed : TS_TRAINER_SEED_ZERO;
    memset(&o, 0, sizeof o);
    o.stream = config->steps > 0u;
    o.state = seed;
    ts_trainer_sampler_init(&o.sampler, r->order, count, seed);
    if (o.stream) {
        total = config->steps;
        windows = (config->steps - 1u) / per_epoch + 1u;
    } else {
        total = (uint64_t)config->epochs * per_epoch;
        windows = config->epochs;
    }
    for (win = 0; win < windows; ++win) {
        ts_trainer_epoch_t es;
        uint32_t steps = per_epoch;
        ts_status_t st;
        if (o.stream && total - t < steps) {
            steps = (uint32_t)(total - t);
        }
        st = train_window(r, src, &o, steps, &t, total, &es);
        if (st != TS_OK) {
            return st;
        }
        es.epoch = win;
        es.epochs = windows;
        for (ph = 0; ph < TS_PHASE_COUNT; ++ph) {
            r->res.cycles[ph] += es.cycles[ph];
        }
        r->res.epochs_run = win + 1u;
        r->res.steps_run = (uint32_t)t;
        r->res.last_loss = es.mean_loss;
        r->res.last_train_accuracy = es.train_accuracy;
        if (config->on_epoch != NULL && config->on_epoch(&es, config->user) != 0) {
            break;
        }
    }
    return TS_OK;
}

/* ---- checks ------------------------------------------------------------------------------------ */

ts_status_t ts_trainer_check_dataset(const ts_dataset_t *ds, uint32_t sample_bytes)
{
    if (ds == NULL) {
        return TS_ERR_NULL;
    }
    if (ds->count > 0 && (ds->x == NULL || ds->y == NULL)) {
        return TS_ERR_NULL;
    }
    if (ds->sample_bytes != sample_bytes) {
        return TS_ERR_SHAPE;
    }
    return TS_OK;
}

static ts_status_t check_labels(const ts_dataset_t *ds, uint32_t num_classes)
{
    uint32_t i;
    if (ds == NULL) {
        return TS_OK;
    }
    for (i = 0; i < ds->count; ++i) {
        if (ds->y[i] >= num_classes) {
            return TS_ERR_DATA;
        }
    }
    return TS_OK;
}

uint32_t ts_trainer_train_count(const ts_train_request_t *req)
{
    return req->train->count + (req->train_extra != NULL ? req->train_extra->count : 0u);
}

/* The datasets: samples of the kind's size, at most TS_TRAINER_MAX_SAMPLES training samples
 * in all, at least one when training. */
static ts_status_t check_datasets(const ts_model_t *model, const ts_trainer_config_t *config,
                                  const ts_train_request_t *req, uint32_t sample_bytes)
{
    uint64_t n;
    ts_status_t st = ts_trainer_check_dataset(req->train, sample_bytes);
    if (st == TS_OK) {
        st = ts_trainer_check_dataset(req->test, sample_bytes);
    }
    if (st == TS_OK && req->train_extra != NULL) {
        st = ts_trainer_check_dataset(req->train_extra, sample_bytes);
    }
    if (st != TS_OK) {
        return st;
    }
    (void)model;
    n = (uint64_t)req->train->count + (req->train_extra != NULL ? req->train_extra->count : 0u);
    if (n > TS_TRAINER_MAX_SAMPLES ||
        ((config->epochs > 0 || config->steps > 0) && n == 0)) {
        return TS_ERR_DATA;
    }
    return TS_OK;
}

/* update=last-block / bias: the backbone workspace and output, the .tflite, the layer table
 * and (for the int8 evaluation of more than one layer) the arena. */
static ts_status_t check_backbone(const ts_model_t *model, const ts_train_request_t *req,
                                  const ts_trainer_sizes_t *sz)
{
    if (req->backbone_ws == NULL || req->backbone_q == NULL || req->tflite == NULL ||
        req->layers == NULL) {
        return TS_ERR_NULL;
    }
    if (model->head_layer - sz->first_layer > 1u && req->arena == NULL) {
        return TS_ERR_NULL;
    }
    if (((uintptr_t)req->backbone_ws & 3u) != 0u || ((uintptr_t)req->backbone_q & 3u) != 0u) {
        return TS_ERR_PARAM;
    }
    if (req->backbone_ws_bytes < sz->workspace_bytes || req->backbone_q_bytes < sz->q_bytes ||
        req->layers_cap < model->num_layers) {
        return TS_ERR_ARENA;
    }
    if (model->head_layer - sz->first_layer > 1u &&
        (((uintptr_t)req->arena & 7u) != 0u || req->arena_bytes < ts_arena_size(model))) {
        return TS_ERR_ARENA;
    }
    return ts_tflite_check_model(req->tflite, req->tflite_bytes, model);
}

ts_status_t ts_trainer_check_request(const ts_model_t *model, const ts_trainer_config_t *config,
                                     const ts_train_request_t *req, ts_sample_kind_t kind)
{
    ts_trainer_sizes_t sz;
    uint32_t sample_bytes;
    ts_status_t st = ts_trainer_check_model(model);
    if (st != TS_OK) {
        return st;
    }
    st = check_config(config);
    if (st != TS_OK) {
        return st;
    }
    st = ts_trainer_sizes(model, config->update, &sz);
    if (st != TS_OK) {
        return st;
    }
    if (req == NULL || req->workspace == NULL || req->head_q == NULL ||
        req->head_q->weights == NULL || req->head_q->bias == NULL) {
        return TS_ERR_NULL;
    }
    sample_bytes = kind == TS_SAMPLES_FEATURES
                       ? sz.sample_bytes
                       : (uint32_t)((uint64_t)model->input.h * (uint64_t)model->input.w *
                                    (uint64_t)model->input.c);
    st = check_datasets(model, config, req, sample_bytes);
    if (st != TS_OK) {
        return st;
    }
    if (((uintptr_t)req->workspace & 3u) != 0) {
        return TS_ERR_PARAM;
    }
    if (req->workspace_bytes < TS_TRAINER_WORKSPACE_BYTES(model->num_classes, model->feature_dim,
                                                          ts_trainer_train_count(req))) {
        return TS_ERR_ARENA;
    }
    if (config->update != TS_UPDATE_HEAD) {
        st = check_backbone(model, req, &sz);
        if (st != TS_OK) {
            return st;
        }
    }
    st = check_labels(req->train, model->num_classes);
    if (st == TS_OK) {
        st = check_labels(req->train_extra, model->num_classes);
    }
    if (st == TS_OK) {
        st = check_labels(req->test, model->num_classes);
    }
    return st;
}

/* ---- the run ------------------------------------------------------------------------------------ */

/* Initial state: the head, the float layers (update=last-block / bias), the class weights
 * and the per-class test totals. */
static ts_status_t run_init(ts_run_t *r, const ts_train_request_t *req,
                            const ts_feature_src_t *train_src, const ts_feature_src_t *test_src)
{
    const ts_model_t *model = r->model;
    const ts_trainer_config_t *config = r->config;
    uint32_t i;
    head_init(r);
    r->tail_on = config->update != TS_UPDATE_HEAD;
    if (r->tail_on) {
        ts_trainer_sizes_t sz;
        ts_status_t st = ts_trainer_sizes(model, config->update, &sz);
        if (st != TS_OK) {
            return st;
        }
        ts_tail_bind(&r->tail, model, config->update, &sz, req->backbone_ws);
        st = ts_tail_init(&r->tail, req->tflite, req->tflite_bytes);
        if (st != TS_OK) {
            return st;
        }
        r->res.backbone_params = r->tail.par;
        r->res.backbone_param_count = sz.params;
    }
    if (config->balance != 0u) {
        ts_trainer_class_weights(train_src->y0, train_src->n0, train_src->y1,
                                 train_src->count - train_src->n0, model->num_classes, r->cw);
    }
    if (req->per_class != NULL) {
        memset(req->per_class, 0, TS_TRAINER_PER_CLASS_COUNT(model->num_classes) *
                                      sizeof(uint32_t));
        for (i = 0; i < test_src->count; ++i) {
            ++req->per_class[ts_src_label(test_src, i)];
        }
    }
    return TS_OK;
}

ts_status_t ts_trainer_run(const ts_model_t *model, const ts_trainer_config_t *config,
                           const ts_train_request_t *req, const ts_feature_src_t *train_src,
                           const ts_feature_src_t *test_src, uint64_t features_cycles)
{
    ts_run_t r;
    ts_status_t st;

    memset(&r, 0, sizeof r);
    run_bind(&r, model, config, req->workspace, train_src->count);
    r.req = req;
    r.res.train_count = train_src->count;
    r.res.test_count = test_src->count;
    r.res.cycles[TS_PHASE_FEATURES] = features_cycles;
    r.res.weights = r.w;
    r.res.bias = r.b;
    st = run_init(&r, req, train_src, test_src);
    if (st != TS_OK) {
        return st;
    }
    r.clk.fn = config->cycles;
    clock_start(&r.clk);

    if (config->eval_initial) {
        st = eval_float(&r, test_src, 1u, &r.res.test_correct_initial);
        if (st != TS_OK) {
            return st;
        }
        r.res.test_accuracy_initial = accuracy(r.res.test_correct_initial, test_src->count);
    }
    st = train_loop(&r, train_src);
    if (st != TS_OK) {
        return st;
    }
    st = evaluate(&r, req->head_q, test_src);
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
    return index < a->n0 ? a->base0 + (size_t)index * a->dim
                         : a->base1 + (size_t)(index - a->n0) * a->dim;
}

void ts_trainer_array_src(ts_array_src_t *arr, const ts_dataset_t *a, const ts_dataset_t *b,
                          uint32_t dim, ts_feature_src_t *src)
{
    arr->base0 = a->x;
    arr->base1 = b != NULL ? b->x : NULL;
    arr->n0 = a->count;
    arr->dim = dim;
    src->get = array_get;
    src->ctx = arr;
    src->y0 = a->y;
    src->y1 = b != NULL ? b->y : NULL;
    src->n0 = a->count;
    src->count = a->count + (b != NULL ? b->count : 0u);
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
    ts_trainer_array_src(&tr, req->train, req->train_extra, req->train->sample_bytes, &trs);
    ts_trainer_array_src(&te, req->test, NULL, req->test->sample_bytes, &tes);
    return ts_trainer_run(model, config, req, &trs, &tes, 0u);
}
