/*
 * Host driver for tests/test_trainer.py: runs the real trainer (ts_trainer.c, and with
 * -DTS_TEST_EXECUTOR the backbone path in ts_trainer_data.c) on a real export
 * (ts_export_model.c linked in) and prints what it computed as text lines the test parses.
 *
 *   driver info                              model fields the numpy reference needs
 *   driver order N SEED EPOCHS               the sample order of each epoch
 *   driver stream N BATCH STEPS SEED         the sample stream of config.steps, per step
 *   driver lr LR SCHEDULE TOTAL              the learning rate of every step
 *   driver classw K LABEL...                 balance=1's class weights
 *   driver sizes                             ts_trainer_sizes() and the macros, per mode
 *   driver scales                            the .tflite's scales per layer (ts_tflite.h)
 *   driver tflfuzz SEED ROUNDS               corrupted .tflite copies through the reader
 *   driver tflfile PATH CAP FIRST            a .tflite file through the reader
 *   driver train IN.bin EPOCHS BATCH LR MU SEED [nocycles] [KEY=VALUE...]
 *          keys: update=head|last-block|bias steps=S schedule=constant|cosine|step
 *                balance=0|1 split=M (the first M training samples are train, the rest
 *                train_extra)
 *   driver dataset cache|nocache EPOCHS BATCH LR MU SEED [KEY=VALUE...]
 *                                            (needs -DTS_TEST_EXECUTOR)
 *   driver qm                                stdin: one double per line -> "mult shift"
 *   driver mbqm                              stdin: "x mult shift" per line -> ts_mbqm()
 *   driver errors IN.bin                     status codes of malformed calls
 *
 * IN.bin: "TSTR", u32 N, T, D, K, init (0: the export's head, 1: floats follow);
 * int8 train[N*D], u8 y_train[N], int8 test[T*D], u8 y_test[T]; [float W[K*D], b[K]].
 * D is the mode's sample size (ts_trainer_sizes: the features for update=head, the input of
 * the pointwise convolution for last-block, the model input for bias).
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ts_engine.h"
#include "ts_export.h"
#include "ts_fixedpoint.h"
#include "ts_tflite.h"
#include "ts_trainer.h"

static const ts_model_t *M = &ts_export_model;

typedef struct {
    uint32_t n, t, d, k, init;
    int8_t *xtr, *xte;
    uint8_t *ytr, *yte;
    float *w0, *b0;
} input_t;

static void die(const char *msg)
{
    fprintf(stderr, "driver: %s\n", msg);
    exit(3);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n > 0 ? n : 1);
    if (p == NULL) {
        die("out of memory");
    }
    return p;
}

static void read_exact(FILE *fp, void *dst, size_t n)
{
    if (n > 0 && fread(dst, 1, n, fp) != n) {
        die("short input file");
    }
}

static void load_input(const char *path, input_t *in)
{
    char magic[4];
    uint32_t hdr[5];
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        die("cannot open input");
    }
    read_exact(fp, magic, 4);
    if (memcmp(magic, "TSTR", 4) != 0) {
        die("bad magic");
    }
    read_exact(fp, hdr, sizeof(hdr));
    in->n = hdr[0];
    in->t = hdr[1];
    in->d = hdr[2];
    in->k = hdr[3];
    in->init = hdr[4];
    if (in->k != M->num_classes) {
        die("input does not match the linked model");
    }
    in->xtr = xmalloc((size_t)in->n * in->d);
    in->ytr = xmalloc(in->n);
    in->xte = xmalloc((size_t)in->t * in->d);
    in->yte = xmalloc(in->t);
    read_exact(fp, in->xtr, (size_t)in->n * in->d);
    read_exact(fp, in->ytr, in->n);
    read_exact(fp, in->xte, (size_t)in->t * in->d);
    read_exact(fp, in->yte, in->t);
    in->w0 = NULL;
    in->b0 = NULL;
    if (in->init) {
        in->w0 = xmalloc((size_t)in->k * M->feature_dim * sizeof(float));
        in->b0 = xmalloc((size_t)in->k * sizeof(float));
        read_exact(fp, in->w0, (size_t)in->k * M->feature_dim * sizeof(float));
        read_exact(fp, in->b0, (size_t)in->k * sizeof(float));
    }
    fclose(fp);
}

/* The buffers of update=last-block / bias (all exactly the size asked for), and the
 * per-class counts. */
typedef struct {
    uint8_t *ws, *q, *arena;
    size_t ws_bytes, q_bytes, arena_bytes;
    ts_layer_t *layers;
    uint32_t per_class[4u * 256u];
    uint32_t split; /* train = the first split samples, train_extra the rest (0: no split) */
} backbone_t;

static void backbone_alloc(backbone_t *bb, uint32_t update)
{
    ts_trainer_sizes_t sz;
    memset(bb, 0, sizeof *bb);
    if (ts_trainer_sizes(M, update, &sz) != TS_OK) {
        die("mode refused for this model");
    }
    bb->ws_bytes = sz.workspace_bytes;
    bb->q_bytes = sz.q_bytes;
    bb->arena_bytes = ts_arena_size(M);
    bb->ws = xmalloc(bb->ws_bytes);
    bb->q = xmalloc(bb->q_bytes);
    bb->arena = xmalloc(bb->arena_bytes);
    bb->layers = xmalloc((size_t)M->num_layers * sizeof(ts_layer_t));
}

static void backbone_free(backbone_t *bb)
{
    free(bb->ws);
    free(bb->q);
    free(bb->arena);
    free(bb->layers);
}

static void request_backbone(ts_train_request_t *req, backbone_t *bb)
{
    req->backbone_ws = bb->ws;
    req->backbone_ws_bytes = bb->ws_bytes;
    req->backbone_q = bb->q;
    req->backbone_q_bytes = bb->q_bytes;
    req->tflite = ts_export_tflite;
    req->tflite_bytes = ts_export_tflite_len;
    req->layers = bb->layers;
    req->layers_cap = M->num_layers;
    req->arena = bb->arena;
    req->arena_bytes = bb->arena_bytes;
    req->per_class = M->num_classes <= 256u ? bb->per_class : NULL;
}

/* The two parts of a split training set, each moved into its own heap block of exactly its
 * samples and then its labels (a device keeps train in flash and train_extra in RAM): read
 * contiguously, a trainer that takes sample n0 from the first part instead of the second
 * would read the right bytes by luck; apart, it reads the first part's labels or past the
 * block (ASan): a different run. */
typedef struct {
    void *a, *b;
} parts_t;

/* A heap block of bytes + extra bytes, its first bytes copied from src. */
static uint8_t *copy_block(const void *src, size_t bytes, size_t extra)
{
    uint8_t *p = xmalloc(bytes + extra > 0u ? bytes + extra : 1u);
    if (bytes > 0u) {
        memcpy(p, src, bytes);
    }
    return p;
}

static void split_apart(ts_dataset_t *train, ts_dataset_t *extra, parts_t *parts)
{
    size_t x0 = (size_t)train->count * train->sample_bytes;
    size_t x1 = (size_t)extra->count * extra->sample_bytes;
    /* one block each: the samples then their labels (labels NULL only for bad inputs) */
    uint8_t *a = copy_block(train->x, x0, train->y != NULL ? train->count : 0u);
    uint8_t *b = copy_block(extra->x, x1, extra->y != NULL ? extra->count : 0u);
    if (train->y != NULL) {
        memcpy(a + x0, train->y, train->count);
        train->y = a + x0;
    }
    if (extra->y != NULL) {
        memcpy(b + x1, extra->y, extra->count);
        extra->y = b + x1;
    }
    train->x = (const int8_t *)a;
    extra->x = (const int8_t *)b;
    parts->a = a;
    parts->b = b;
}

static void free_parts(parts_t *parts)
{
    free(parts->a);
    free(parts->b);
}

/* ts_train_head_features() on n training samples of `in` (labels ytr) and its test set
 * (bb: the backbone buffers, may be NULL for update=head). */
static ts_status_t train_features(const ts_model_t *model, const ts_trainer_config_t *cfg,
                                  const input_t *in, uint32_t n, const uint8_t *ytr,
                                  uint8_t *ws, size_t ws_bytes, ts_head_q_t *hq,
                                  ts_trainer_result_t *res, backbone_t *bb)
{
    /* sample_bytes from the input file, not from the model: the bad models of cmd_errors
     * (NULL among them) must reach the trainer's own checks */
    uint32_t split = bb != NULL && bb->split > 0 && bb->split < n ? bb->split : n;
    ts_dataset_t train = {split, in->d, in->xtr, ytr};
    ts_dataset_t extra = {n - split, in->d, in->xtr + (size_t)split * in->d,
                          ytr != NULL ? ytr + split : NULL};
    ts_dataset_t test = {in->t, in->d, in->xte, in->yte};
    ts_train_request_t req = {.train = &train, .test = &test, .workspace = ws,
                              .workspace_bytes = ws_bytes, .head_q = hq, .result = res};
    parts_t parts = {NULL, NULL};
    ts_status_t st;
    if (split < n) {
        split_apart(&train, &extra, &parts);
        req.train_extra = &extra;
    }
    if (bb != NULL) {
        request_backbone(&req, bb);
    }
    st = ts_train_head_features(model, cfg, &req);
    free_parts(&parts);
    return st;
}

static void free_input(input_t *in)
{
    free(in->xtr);
    free(in->ytr);
    free(in->xte);
    free(in->yte);
    free(in->w0);
    free(in->b0);
}

static uint32_t clock_cycles(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
}

static int print_epoch(const ts_trainer_epoch_t *e, void *user)
{
    int ph;
    (void)user;
    printf("epoch %" PRIu32 " %.9g %" PRIu32, e->epoch, (double)e->mean_loss, e->correct);
    for (ph = 0; ph < TS_PHASE_COUNT; ++ph) {
        printf(" %" PRIu64, e->cycles[ph]);
    }
    printf("\n");
    return 0;
}

static void print_floats(const char *tag, const float *v, size_t n)
{
    size_t i;
    printf("%s", tag);
    for (i = 0; i < n; ++i) {
        printf(" %.9g", (double)v[i]);
    }
    printf("\n");
}

/* The tuned model's int8 logits of one sample of the trained layers' input (logits: K). */
static void tuned_logits(const ts_trainer_config_t *cfg, const ts_head_q_t *hq,
                         const backbone_t *bb, const int8_t *x, int8_t *logits)
{
    ts_trainer_sizes_t sz;
    ts_model_t tuned;
    ts_status_t st = ts_trainer_sizes(M, cfg->update, &sz);
    int8_t *feat = xmalloc(M->feature_dim);
    if (st == TS_OK && cfg->update != TS_UPDATE_HEAD) {
        st = ts_trainer_patch_model(M, hq, bb->layers, M->num_layers, &tuned);
        if (st == TS_OK) {
            st = ts_trainer_patch_backbone(M, cfg->update, bb->q, bb->q_bytes, bb->layers,
                                           M->num_layers);
        }
        if (st == TS_OK) {
            st = ts_run_layers(&tuned, sz.first_layer, M->head_layer, x, feat, bb->arena,
                               bb->arena_bytes);
        }
        x = feat;
    }
    if (st == TS_OK) {
        st = ts_trainer_head_int8(M, hq, x, logits);
    }
    if (st != TS_OK) {
        die("int8 logits failed");
    }
    free(feat);
}

static void print_result(const ts_trainer_config_t *cfg, const ts_trainer_result_t *r,
                         const ts_head_q_t *hq, const int8_t *test_samples,
                         uint32_t sample_bytes, uint32_t test_count, const backbone_t *bb)
{
    size_t kd = (size_t)M->num_classes * M->feature_dim;
    size_t i;
    uint32_t s;
    int ph;
    int8_t *logits = xmalloc(M->num_classes);
    printf("result %" PRIu32 " %" PRIu32 " %" PRIu32 " %" PRIu32 " %" PRIu32 "\n",
           r->epochs_run, r->test_count, r->test_correct_initial, r->test_correct_float,
           r->test_correct_int8);
    printf("steps_run %" PRIu32 "\n", r->steps_run);
    printf("cycles");
    for (ph = 0; ph < TS_PHASE_COUNT; ++ph) {
        printf(" %" PRIu64, r->cycles[ph]);
    }
    printf("\n");
    print_floats("w", r->weights, kd);
    print_floats("b", r->bias, M->num_classes);
    printf("qw");
    for (i = 0; i < kd; ++i) {
        printf(" %d", hq->weights[i]);
    }
    printf("\nqb");
    for (i = 0; i < M->num_classes; ++i) {
        printf(" %" PRId32, hq->bias[i]);
    }
    printf("\nqs %.9g %.9g %" PRId32 " %" PRId32 "\n", (double)hq->weight_scale,
           (double)hq->bias_scale, hq->multiplier, hq->shift);
    if (bb != NULL && cfg->update != TS_UPDATE_HEAD) {
        ts_trainer_sizes_t sz;
        (void)ts_trainer_sizes(M, cfg->update, &sz);
        print_floats("bp", r->backbone_params, r->backbone_param_count);
        printf("bq");
        for (i = 0; i + 4u <= sz.q_bytes && (cfg->update == TS_UPDATE_BIAS ||
                                            i < 12u * (size_t)sz.out_c);
             i += 4u) {
            int32_t v;
            memcpy(&v, bb->q + i, sizeof v);
            printf(" %" PRId32, v);
        }
        printf("\nbw");
        for (; cfg->update == TS_UPDATE_LAST_BLOCK && i < sz.q_bytes; ++i) {
            printf(" %d", (int)(int8_t)bb->q[i]);
        }
        printf("\n");
    }
    if (bb != NULL) {
        printf("pc");
        for (i = 0; i < 4u * M->num_classes; ++i) {
            printf(" %" PRIu32, bb->per_class[i]);
        }
        printf("\n");
    }
    printf("logits8");
    for (s = 0; s < test_count; ++s) {
        tuned_logits(cfg, hq, bb, test_samples + (size_t)s * sample_bytes, logits);
        for (i = 0; i < M->num_classes; ++i) {
            printf(" %d", logits[i]);
        }
    }
    printf("\n");
    free(logits);
}

/* KEY=VALUE options after the fixed arguments (and the word nocycles). */
static void parse_options(char **argv, int argc, ts_trainer_config_t *cfg, uint32_t *split)
{
    int i;
    for (i = 0; i < argc; ++i) {
        const char *a = argv[i];
        if (strcmp(a, "nocycles") == 0) {
            cfg->cycles = NULL;
        } else if (strncmp(a, "update=", 7) == 0) {
            uint32_t u;
            for (u = 0; u < TS_UPDATE_COUNT && strcmp(a + 7, ts_trainer_update_name(u)) != 0;
                 ++u) {
            }
            cfg->update = u;
        } else if (strncmp(a, "schedule=", 9) == 0) {
            uint32_t u;
            for (u = 0;
                 u < TS_SCHEDULE_COUNT && strcmp(a + 9, ts_trainer_schedule_name(u)) != 0;
                 ++u) {
            }
            cfg->schedule = u;
        } else if (strncmp(a, "steps=", 6) == 0) {
            cfg->steps = (uint32_t)strtoul(a + 6, NULL, 10);
        } else if (strncmp(a, "balance=", 8) == 0) {
            cfg->balance = (uint32_t)strtoul(a + 8, NULL, 10);
        } else if (strncmp(a, "split=", 6) == 0) {
            *split = (uint32_t)strtoul(a + 6, NULL, 10);
        } else {
            die("unknown option");
        }
    }
}

static void parse_config(char **argv, ts_trainer_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->epochs = (uint32_t)strtoul(argv[0], NULL, 10);
    cfg->batch_size = (uint32_t)strtoul(argv[1], NULL, 10);
    cfg->learning_rate = strtof(argv[2], NULL);
    cfg->momentum = strtof(argv[3], NULL);
    cfg->seed = (uint32_t)strtoul(argv[4], NULL, 0);
    cfg->eval_initial = 1;
    cfg->cycles = clock_cycles;
    cfg->on_epoch = print_epoch;
}

static int cmd_info(void)
{
    const ts_layer_t *head = &M->layers[M->head_layer];
    printf("info %" PRIu32 " %" PRIu32 " %" PRIu32 " %.9g %" PRId32 " %.9g %" PRId32
           " %" PRId32 " %" PRId32 "\n",
           M->feature_dim, M->num_classes, M->head_layer, (double)M->feature_scale,
           M->feature_zero_point, (double)M->logit_scale, M->logit_zero_point, head->act_min,
           head->act_max);
    printf("ws %zu\n", ts_trainer_workspace_size(M, 1000));
    return 0;
}

static int cmd_order(char **argv)
{
    uint32_t n = (uint32_t)strtoul(argv[0], NULL, 10);
    uint32_t state = (uint32_t)strtoul(argv[1], NULL, 0);
    uint32_t epochs = (uint32_t)strtoul(argv[2], NULL, 10);
    uint32_t e, i;
    uint16_t *order = xmalloc(n * sizeof(uint16_t));
    if (state == 0) {
        state = TS_TRAINER_SEED_ZERO;
    }
    for (e = 0; e < epochs; ++e) {
        ts_trainer_shuffle(order, n, &state);
        printf("order");
        for (i = 0; i < n; ++i) {
            printf(" %u", (unsigned)order[i]);
        }
        printf("\n");
    }
    free(order);
    return 0;
}

static int cmd_train(char **argv, int argc)
{
    input_t in;
    ts_trainer_config_t cfg;
    ts_trainer_result_t res;
    ts_head_q_t hq;
    backbone_t bb;
    uint8_t *ws;
    size_t ws_bytes;
    ts_status_t st;
    uint32_t split = 0;
    load_input(argv[0], &in);
    parse_config(argv + 1, &cfg);
    parse_options(argv + 6, argc - 6, &cfg, &split);
    cfg.init_weights = in.w0;
    cfg.init_bias = in.b0;
    backbone_alloc(&bb, cfg.update);
    bb.split = split;
    ws_bytes = ts_trainer_workspace_size(M, in.n);
    ws = xmalloc(ws_bytes); /* exactly the size asked for: ASan sees any overflow */
    hq.weights = xmalloc((size_t)M->num_classes * M->feature_dim);
    hq.bias = xmalloc(M->num_classes * sizeof(int32_t));
    printf("ws_size %zu\n", ws_bytes);
    st = train_features(M, &cfg, &in, in.n, in.ytr, ws, ws_bytes, &hq, &res, &bb);
    if (st != TS_OK) {
        printf("status %d\n", (int)st);
        return 1;
    }
    print_result(&cfg, &res, &hq, in.xte, in.d, in.t, &bb);
    backbone_free(&bb);
    free(ws);
    free(hq.weights);
    free(hq.bias);
    free_input(&in);
    return 0;
}

#ifdef TS_TEST_EXECUTOR
static int cmd_dataset(char **argv, int argc)
{
    ts_trainer_config_t cfg;
    ts_trainer_result_t res;
    ts_head_q_t hq;
    ts_train_request_t req;
    ts_trainer_sizes_t sz;
    backbone_t bb;
    uint8_t *ws, *arena;
    int8_t *cache = NULL, *test_inputs;
    size_t ws_bytes, arena_bytes, cache_bytes = 0;
    uint64_t c;
    ts_status_t st;
    uint32_t split = 0;
    int use_cache = strcmp(argv[0], "cache") == 0;
    ts_dataset_t train = ts_export_train, extra;
    parts_t parts = {NULL, NULL};
    parse_config(argv + 1, &cfg);
    parse_options(argv + 6, argc - 6, &cfg, &split);
    if (ts_trainer_sizes(M, cfg.update, &sz) != TS_OK) {
        die("mode refused");
    }
    backbone_alloc(&bb, cfg.update);
    ws_bytes = ts_trainer_workspace_size(M, ts_export_train.count);
    ws = xmalloc(ws_bytes);
    arena_bytes = ts_arena_size(M);
    arena = xmalloc(arena_bytes);
    if (use_cache) {
        cache_bytes = ts_trainer_cache_bytes(M, cfg.update, ts_export_train.count,
                                             ts_export_test.count);
        cache = xmalloc(cache_bytes);
    }
    hq.weights = xmalloc((size_t)M->num_classes * M->feature_dim);
    hq.bias = xmalloc(M->num_classes * sizeof(int32_t));
    printf("ws_size %zu\n", ws_bytes);
    req = (ts_train_request_t){.train = &train, .test = &ts_export_test,
                               .workspace = ws, .workspace_bytes = ws_bytes,
                               .feature_cache = cache, .feature_cache_bytes = cache_bytes,
                               .arena = arena, .arena_bytes = arena_bytes,
                               .head_q = &hq, .result = &res};
    if (cfg.update != TS_UPDATE_HEAD) {
        request_backbone(&req, &bb);
        req.arena = arena; /* the same arena for the frozen layers and the int8 evaluation */
        req.arena_bytes = arena_bytes;
    }
    if (split > 0 && split < train.count) { /* the flash set as replay + "new" samples */
        extra = train;
        extra.count = train.count - split;
        extra.x = train.x + (size_t)split * train.sample_bytes;
        extra.y = train.y + split;
        train.count = split;
        split_apart(&train, &extra, &parts);
        req.train_extra = &extra;
    }
    st = ts_train_head(M, &cfg, &req);
    free_parts(&parts);
    if (st != TS_OK) {
        printf("status %d\n", (int)st);
        return 1;
    }
    test_inputs = xmalloc((size_t)ts_export_test.count * sz.sample_bytes + 1u);
    st = ts_trainer_extract_inputs(M, cfg.update, &ts_export_test, test_inputs,
                                   (size_t)ts_export_test.count * sz.sample_bytes, arena,
                                   arena_bytes, NULL, &c);
    if (st != TS_OK) {
        die("extract failed");
    }
    print_result(&cfg, &res, &hq, test_inputs, sz.sample_bytes, ts_export_test.count,
                 cfg.update != TS_UPDATE_HEAD ? &bb : NULL);
    backbone_free(&bb);
    free(test_inputs);
    free(ws);
    free(arena);
    free(cache);
    free(hq.weights);
    free(hq.bias);
    return 0;
}
#endif

static int cmd_stream(char **argv)
{
    uint32_t n = (uint32_t)strtoul(argv[0], NULL, 10);
    uint32_t batch = (uint32_t)strtoul(argv[1], NULL, 10);
    uint32_t steps = (uint32_t)strtoul(argv[2], NULL, 10);
    uint32_t seed = (uint32_t)strtoul(argv[3], NULL, 0);
    uint16_t *order = xmalloc(n * sizeof(uint16_t));
    ts_trainer_sampler_t smp;
    uint32_t t, i;
    ts_trainer_sampler_init(&smp, order, n, seed);
    for (t = 0; t < steps; ++t) {
        printf("step");
        for (i = 0; i < batch; ++i) {
            printf(" %" PRIu32, ts_trainer_sampler_next(&smp));
        }
        printf("\n");
    }
    free(order);
    return 0;
}

static int cmd_lr(char **argv)
{
    float lr = strtof(argv[0], NULL);
    uint32_t sched = (uint32_t)strtoul(argv[1], NULL, 10);
    uint32_t total = (uint32_t)strtoul(argv[2], NULL, 10), t;
    for (t = 0; t < total; ++t) {
        printf("%.9g\n", (double)ts_trainer_learning_rate(lr, sched, t, total));
    }
    return 0;
}

static int cmd_classw(char **argv, int argc)
{
    uint32_t k = (uint32_t)strtoul(argv[0], NULL, 10), i;
    uint32_t n = (uint32_t)(argc - 1);
    uint8_t *y = xmalloc(n);
    float *w = xmalloc(k * sizeof(float));
    for (i = 0; i < n; ++i) {
        y[i] = (uint8_t)strtoul(argv[1 + i], NULL, 10);
    }
    /* split in two parts, as a replay set and new samples */
    ts_trainer_class_weights(y, n / 2u, y + n / 2u, n - n / 2u, k, w);
    print_floats("cw", w, k);
    free(y);
    free(w);
    return 0;
}

static int cmd_sizes(void)
{
    uint32_t u;
    for (u = 0; u < TS_UPDATE_COUNT + 1u; ++u) {
        ts_trainer_sizes_t z;
        ts_status_t st = ts_trainer_sizes(M, u, &z);
        size_t macro = 0, macro_q = 0;
        if (st == TS_OK && u == TS_UPDATE_LAST_BLOCK) {
            macro = TS_TRAINER_BLOCK_WORKSPACE_BYTES(M->head_layer, z.in_c, z.out_c, z.pixels);
            macro_q = TS_TRAINER_BLOCK_Q_BYTES(z.in_c, z.out_c);
        } else if (st == TS_OK && u == TS_UPDATE_BIAS) {
            macro = TS_TRAINER_BIAS_WORKSPACE_BYTES(M->head_layer, z.channels, z.act_max,
                                                    z.mask_bits);
            macro_q = TS_TRAINER_BIAS_Q_BYTES(z.channels);
        }
        printf("sizes %" PRIu32 " %d %" PRIu32 " %" PRIu32 " %" PRIu32 " %" PRIu32 " %" PRIu32
               " %" PRIu32 " %" PRIu32 " %" PRIu32 " %" PRIu32 " %zu %zu %zu %zu %zu\n",
               u, (int)st, z.first_layer, z.sample_bytes, z.in_c, z.out_c, z.pixels,
               z.channels, z.act_max, z.mask_bits, z.params, z.workspace_bytes, z.q_bytes,
               macro, macro_q, ts_trainer_cache_bytes(M, u, 10, 3));
    }
    return 0;
}

static int cmd_scales(void)
{
    uint32_t n, i, c;
    float ws[4096];
    if (ts_tflite_num_ops(ts_export_tflite, ts_export_tflite_len, &n) != TS_OK) {
        die("not a tflite");
    }
    printf("check %d\n", (int)ts_tflite_check_model(ts_export_tflite, ts_export_tflite_len, M));
    for (i = 0; i < n; ++i) {
        ts_tflite_op_t op;
        ts_status_t st = ts_tflite_op(ts_export_tflite, ts_export_tflite_len, i, &op, ws, 4096u);
        printf("op %" PRIu32 " %d %" PRIu32 " %.9g %" PRId32 " %.9g %" PRId32, i, (int)st,
               op.builtin_code, (double)op.input_scale, op.input_zero_point,
               (double)op.output_scale, op.output_zero_point);
        for (c = 0; c < op.weight_scales; ++c) {
            printf(" %.9g", (double)ws[c]);
        }
        printf("\n");
    }
    return 0;
}

/* A .tflite file (a test's edited copy of the export's) through the reader, in a buffer
 * exactly its size: the op count, ts_tflite_check_model against the export's table with
 * tflite_first_op FIRST, and each op's status, code, zero points and scale count with a
 * weight-scale buffer of CAP floats. */
static int cmd_tflfile(char **argv)
{
    FILE *f = fopen(argv[0], "rb");
    const uint32_t cap = (uint32_t)strtoul(argv[1], NULL, 10);
    ts_model_t m = *M;
    uint8_t *buf;
    float *ws;
    long len;
    uint32_t n = 0, i;
    ts_status_t st;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) <= 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        die("cannot read the .tflite");
    }
    buf = xmalloc((size_t)len);
    if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
        die("short read");
    }
    fclose(f);
    ws = xmalloc(sizeof(float) * (cap > 0u ? cap : 1u));
    m.tflite_first_op = (uint32_t)strtoul(argv[2], NULL, 10);
    st = ts_tflite_num_ops(buf, (size_t)len, &n);
    printf("num %d %" PRIu32 "\n", (int)st, n);
    printf("check %d\n", (int)ts_tflite_check_model(buf, (size_t)len, &m));
    for (i = 0; st == TS_OK && i < n && i < 4096u; ++i) {
        ts_tflite_op_t op;
        const ts_status_t s = ts_tflite_op(buf, (size_t)len, i, &op, ws, cap);
        printf("op %" PRIu32 " %d %" PRIu32 " %" PRId32 " %" PRId32 " %" PRIu32 "\n", i, (int)s,
               op.builtin_code, op.input_zero_point, op.output_zero_point, op.weight_scales);
    }
    free(ws);
    free(buf);
    return 0;
}

/* Corrupted copies of the .tflite (a byte changed, a range zeroed, the buffer cut) through
 * every reader entry point, each copy exactly as long as its buffer (ASan sees any read past
 * it). Prints how many came back OK and how many with each error status. */
static int cmd_tflfuzz(char **argv)
{
    uint32_t state = (uint32_t)strtoul(argv[0], NULL, 0) | 1u;
    uint32_t rounds = (uint32_t)strtoul(argv[1], NULL, 10), r, i, n;
    uint32_t counts[8] = {0};
    size_t len = ts_export_tflite_len;
    float ws[64];
    for (r = 0; r < rounds; ++r) {
        size_t cut = len, pos;
        uint8_t *copy;
        ts_status_t st;
        ts_tflite_op_t op;
        uint32_t kind = ts_trainer_xorshift32(&state) % 3u;
        if (kind == 2u) {
            cut = ts_trainer_xorshift32(&state) % (len + 1u);
        }
        copy = xmalloc(cut);
        memcpy(copy, ts_export_tflite, cut);
        pos = cut > 0 ? ts_trainer_xorshift32(&state) % cut : 0;
        if (kind == 0u && cut > 0) {
            copy[pos] = (uint8_t)ts_trainer_xorshift32(&state);
        } else if (kind == 1u && cut > 0) {
            size_t k, span = ts_trainer_xorshift32(&state) % 16u;
            for (k = pos; k < cut && k < pos + span; ++k) {
                copy[k] = 0xFFu;
            }
        }
        st = ts_tflite_check_model(copy, cut, M);
        counts[st < 8 ? st : 7]++;
        if (ts_tflite_num_ops(copy, cut, &n) == TS_OK) {
            for (i = 0; i < n && i < 64u; ++i) {
                (void)ts_tflite_op(copy, cut, i, &op, ws, 64u);
            }
        }
        free(copy);
    }
    printf("tflfuzz");
    for (i = 0; i < 8u; ++i) {
        printf(" %" PRIu32, counts[i]);
    }
    printf("\n");
    return 0;
}

static int cmd_qm(void)
{
    char line[128];
    while (fgets(line, sizeof(line), stdin) != NULL) {
        int32_t m, s;
        ts_trainer_quantize_multiplier(strtod(line, NULL), &m, &s);
        printf("%" PRId32 " %" PRId32 "\n", m, s);
    }
    return 0;
}

static int cmd_mbqm(void)
{
    char line[128];
    while (fgets(line, sizeof(line), stdin) != NULL) {
        long x, m, s;
        if (sscanf(line, "%ld %ld %ld", &x, &m, &s) != 3) {
            die("bad mbqm line");
        }
        printf("%" PRId32 "\n", ts_mbqm((int32_t)x, (int32_t)m, (int32_t)s));
    }
    return 0;
}

#define EXPECT(name, call, want)                                                          \
    do {                                                                                  \
        ts_status_t got_ = (call);                                                        \
        if (got_ != (want)) {                                                             \
            printf("FAIL %s: got %d want %d\n", name, (int)got_, (int)(want));            \
            ++fails;                                                                      \
        } else {                                                                          \
            printf("ok %s\n", name);                                                      \
        }                                                                                 \
    } while (0)

#ifdef TS_TEST_EXECUTOR
/* update=last-block / bias requests on the export's own datasets (model inputs): each
 * missing, short, misaligned or corrupt buffer gives its status code. Returns the fails. */
static int backbone_errors(const ts_trainer_config_t *base, ts_head_q_t *hq)
{
    int fails = 0;
    uint32_t u;
    for (u = TS_UPDATE_LAST_BLOCK; u <= TS_UPDATE_BIAS; ++u) {
        ts_trainer_config_t cfg = *base;
        backbone_t bb;
        ts_train_request_t req;
        ts_dataset_t train = ts_export_train;
        size_t ws_bytes = ts_trainer_workspace_size(M, 40);
        uint8_t *ws = xmalloc(ws_bytes);
        uint8_t *bad_tfl = xmalloc(ts_export_tflite_len);
        ts_model_t bad;
        ts_layer_t *layers = xmalloc((size_t)M->num_layers * sizeof(ts_layer_t));
        uint32_t l;
        train.count = 40;
        cfg.update = u;
        cfg.epochs = 1;
        backbone_alloc(&bb, u);
        req = (ts_train_request_t){.train = &train, .test = &ts_export_test, .workspace = ws,
                                   .workspace_bytes = ws_bytes, .head_q = hq};
        request_backbone(&req, &bb);
        printf("mode %s\n", ts_trainer_update_name(u));
        EXPECT("valid", ts_train_head(M, &cfg, &req), TS_OK);
        req.tflite = NULL;
        EXPECT("no tflite", ts_train_head(M, &cfg, &req), TS_ERR_NULL);
        req.tflite = ts_export_tflite;
        req.tflite_bytes = ts_export_tflite_len / 2u;
        EXPECT("tflite cut in half", ts_train_head(M, &cfg, &req), TS_ERR_DATA);
        memcpy(bad_tfl, ts_export_tflite, ts_export_tflite_len);
        bad_tfl[4] = 'X'; /* the file identifier */
        req.tflite = bad_tfl;
        req.tflite_bytes = ts_export_tflite_len;
        EXPECT("not a tflite", ts_train_head(M, &cfg, &req), TS_ERR_DATA);
        req.tflite = ts_export_tflite;
        req.backbone_ws_bytes = bb.ws_bytes - 1u;
        EXPECT("backbone workspace one byte short", ts_train_head(M, &cfg, &req),
               TS_ERR_ARENA);
        req.backbone_ws_bytes = bb.ws_bytes;
        req.backbone_ws = bb.ws + 2;
        EXPECT("backbone workspace misaligned", ts_train_head(M, &cfg, &req), TS_ERR_PARAM);
        req.backbone_ws = NULL;
        EXPECT("no backbone workspace", ts_train_head(M, &cfg, &req), TS_ERR_NULL);
        req.backbone_ws = bb.ws;
        req.backbone_q_bytes = bb.q_bytes - 1u;
        EXPECT("re-quantized backbone one byte short", ts_train_head(M, &cfg, &req),
               TS_ERR_ARENA);
        req.backbone_q_bytes = bb.q_bytes;
        req.layers_cap = M->num_layers - 1u;
        EXPECT("layer table short", ts_train_head(M, &cfg, &req), TS_ERR_ARENA);
        req.layers_cap = M->num_layers;
        req.layers = NULL;
        EXPECT("no layer table", ts_train_head(M, &cfg, &req), TS_ERR_NULL);
        req.layers = bb.layers;
        req.arena_bytes = ts_arena_size(M) - 8u;
        EXPECT("arena short", ts_train_head(M, &cfg, &req), TS_ERR_ARENA);
        req.arena_bytes = bb.arena_bytes;
        cfg.learning_rate = 1e30f; /* diverges: non-finite parameters are not re-quantized */
        EXPECT("diverged", ts_train_head(M, &cfg, &req), TS_ERR_PARAM);
        cfg.learning_rate = base->learning_rate;
        /* a model the float layers do not handle: the pooling made a MAX_POOL_2D */
        memcpy(layers, M->layers, (size_t)M->num_layers * sizeof(ts_layer_t));
        for (l = 0; l < M->head_layer; ++l) {
            if (layers[l].op == TS_OP_AVERAGE_POOL_2D) {
                layers[l].op = TS_OP_MAX_POOL_2D;
            }
        }
        bad = *M;
        bad.layers = layers;
        EXPECT("unsupported layer below the head", ts_train_head(&bad, &cfg, &req),
               TS_ERR_UNSUPPORTED_OP);
        {
            ts_trainer_sizes_t sz;
            if (ts_trainer_sizes(&bad, u, &sz) != TS_ERR_UNSUPPORTED_OP ||
                ts_trainer_cache_bytes(&bad, u, 10, 10) != 0) {
                printf("FAIL sizes of an unsupported model\n");
                ++fails;
            }
        }
        EXPECT("patch backbone", ts_trainer_patch_backbone(M, u, bb.q, bb.q_bytes, layers,
                                                           M->num_layers), TS_OK);
        EXPECT("patch backbone short q",
               ts_trainer_patch_backbone(M, u, bb.q, bb.q_bytes - 1u, layers, M->num_layers),
               TS_ERR_ARENA);
        EXPECT("patch backbone null",
               ts_trainer_patch_backbone(M, u, NULL, bb.q_bytes, layers, M->num_layers),
               TS_ERR_NULL);
        backbone_free(&bb);
        free(layers);
        free(bad_tfl);
        free(ws);
    }
    return fails;
}
#endif

/* The model's head alone (head_layer == 0, the features are the input): update=head
 * trains it; last-block and bias have no layer below the head to train and are refused up
 * front (sizes, cache bytes and the trainer itself), before any epoch. */
static int head_only_errors(const ts_trainer_config_t *base, const input_t *in, uint8_t *ws,
                            size_t ws_bytes, ts_head_q_t *hq)
{
    int fails = 0;
    uint32_t u;
    ts_model_t h = *M;
    ts_trainer_config_t cfg = *base;
    ts_trainer_result_t res;
    h.layers = M->layers + M->head_layer;
    h.num_layers = M->num_layers - M->head_layer;
    h.head_layer = 0;
    h.input = h.layers[0].in;
    h.num_tensors = 0;
    h.tensors = NULL;
    EXPECT("head-only model update=head", train_features(&h, &cfg, in, in->n, in->ytr, ws,
                                                         ws_bytes, hq, &res, NULL),
           TS_OK);
    for (u = TS_UPDATE_LAST_BLOCK; u <= TS_UPDATE_BIAS; ++u) {
        ts_trainer_sizes_t sz;
        char name[96];
        cfg.update = u;
        snprintf(name, sizeof name, "head-only model sizes update=%s",
                 ts_trainer_update_name(u));
        EXPECT(name, ts_trainer_sizes(&h, u, &sz), TS_ERR_UNSUPPORTED_OP);
        snprintf(name, sizeof name, "head-only model update=%s", ts_trainer_update_name(u));
        EXPECT(name, train_features(&h, &cfg, in, in->n, in->ytr, ws, ws_bytes, hq, &res, NULL),
               TS_ERR_UNSUPPORTED_OP);
        if (ts_trainer_cache_bytes(&h, u, 10, 10) != 0) {
            printf("FAIL cache bytes of the head-only model update=%s\n",
                   ts_trainer_update_name(u));
            ++fails;
        }
    }
    return fails;
}

/* The int8 head against the engine's FULLY_CONNECTED (ts_run_layers on the patched model):
 * both must accept it and give the same logits. */
static int head_matches_engine(const char *name, const ts_model_t *m, ts_head_q_t *hq,
                               const int8_t *feat)
{
    int fails = 0;
    const uint32_t k_n = m->num_classes;
    ts_layer_t *layers = xmalloc((size_t)m->num_layers * sizeof(ts_layer_t));
    size_t arena_bytes = ts_arena_size(m) + 64u;
    uint8_t *arena = xmalloc(arena_bytes);
    int8_t *z8 = xmalloc(k_n), *ze = xmalloc(k_n);
    ts_model_t patched;
    char what[128];
    snprintf(what, sizeof what, "%s: head_int8", name);
    EXPECT(what, ts_trainer_head_int8(m, hq, feat, z8), TS_OK);
    snprintf(what, sizeof what, "%s: the engine runs it", name);
    EXPECT(what, ts_trainer_patch_model(m, hq, layers, m->num_layers, &patched), TS_OK);
    EXPECT(what, ts_run_layers(&patched, m->head_layer, m->head_layer + 1u, feat, ze, arena,
                               arena_bytes),
           TS_OK);
    if (memcmp(z8, ze, k_n) != 0) {
        printf("FAIL %s: head_int8 %d differs from the engine's %d\n", name, z8[0], ze[0]);
        ++fails;
    }
    free(layers);
    free(arena);
    free(z8);
    free(ze);
    return fails;
}

/* The engine's accumulator bound (D * 255 * 128 + max|bias| <= INT32_MAX, check_quant in
 * ts_executor.c): a re-quantized head beyond it is refused (TS_ERR_PARAM), not clamped into
 * one the engine would not run (and whose int32 accumulator would overflow); one just
 * inside it runs, in ts_trainer_head_int8 as in the engine. The logit zero point is added
 * with wrap-around, as the kernel does. */
static int head_bound_errors(void)
{
    int fails = 0;
    const uint32_t k_n = M->num_classes, d_n = M->feature_dim;
    const int64_t room = (int64_t)INT32_MAX - (int64_t)d_n * 255 * 128;
    float *w = xmalloc((size_t)k_n * d_n * sizeof(float));
    float *b = xmalloc((size_t)k_n * sizeof(float));
    int8_t *feat = xmalloc(d_n);
    ts_head_q_t hq;
    ts_model_t mz;
    size_t j;
    uint32_t k;
    float bias_scale;
    hq.weights = xmalloc((size_t)k_n * d_n);
    hq.bias = xmalloc((size_t)k_n * sizeof(int32_t));
    for (j = 0; j < (size_t)k_n * d_n; ++j) {
        w[j] = 1e-7f; /* a head whose weights shrank: its bias is huge in their scale */
    }
    for (k = 0; k < k_n; ++k) {
        b[k] = 1.0f;
    }
    for (j = 0; j < d_n; ++j) {
        feat[j] = 127;
    }
    EXPECT("head bias beyond the accumulator bound", ts_trainer_requantize_head(M, w, b, &hq),
           TS_ERR_PARAM);
    for (k = 0; k < k_n; ++k) {
        b[k] = 0.0f;
    }
    EXPECT("head bias 0", ts_trainer_requantize_head(M, w, b, &hq), TS_OK);
    bias_scale = hq.bias_scale;
    /* float b: the quantized bias lands within a few hundred of the target */
    b[0] = (float)((double)(room + 4096) * (double)bias_scale);
    EXPECT("head bias just beyond the accumulator bound",
           ts_trainer_requantize_head(M, w, b, &hq), TS_ERR_PARAM);
    b[0] = -b[0];
    EXPECT("negative head bias just beyond the accumulator bound",
           ts_trainer_requantize_head(M, w, b, &hq), TS_ERR_PARAM);
    b[0] = (float)((double)(room - 4096) * (double)bias_scale);
    EXPECT("head bias just inside the accumulator bound",
           ts_trainer_requantize_head(M, w, b, &hq), TS_OK);
    fails += head_matches_engine("bias inside the bound", M, &hq, feat);
    hq.bias[0] = (int32_t)(room + 1);
    EXPECT("head_int8 refuses a bias beyond the bound", ts_trainer_head_int8(M, &hq, feat,
                                                                            (int8_t *)w),
           TS_ERR_PARAM);
    /* ts_mbqm(-2, INT32_MAX, 30) = -(2^31 - 1); + (-128) wraps, as in the kernel */
    mz = *M;
    mz.logit_zero_point = -128;
    memset(hq.weights, 0, (size_t)k_n * d_n);
    for (k = 0; k < k_n; ++k) {
        hq.bias[k] = -2;
    }
    hq.multiplier = INT32_MAX;
    hq.shift = 30;
    for (j = 0; j < d_n; ++j) {
        feat[j] = (int8_t)M->feature_zero_point;
    }
    fails += head_matches_engine("logit zero point wraps", &mz, &hq, feat);
    hq.shift = 31;
    EXPECT("head_int8 refuses a shift of 31", ts_trainer_head_int8(M, &hq, feat, (int8_t *)w),
           TS_ERR_PARAM);
    free(w);
    free(b);
    free(feat);
    free(hq.weights);
    free(hq.bias);
    return fails;
}

/* Every malformed call must come back with its status code (and nothing else happen). */
static int cmd_errors(char **argv)
{
    input_t in;
    ts_trainer_config_t cfg;
    ts_trainer_result_t res;
    ts_head_q_t hq;
    ts_model_t bad;
    ts_layer_t layers[64];
    ts_model_t patched;
    uint8_t *ws, *ws_big;
    size_t ws_bytes;
    int fails = 0;
    char *args[5] = {"2", "16", "0.05", "0.9", "1"};
    load_input(argv[0], &in);
    parse_config(args, &cfg);
    cfg.on_epoch = NULL;
    ws_bytes = ts_trainer_workspace_size(M, in.n);
    ws = xmalloc(ws_bytes);
    ws_big = xmalloc(ws_bytes + 8);
    hq.weights = xmalloc((size_t)M->num_classes * M->feature_dim);
    hq.bias = xmalloc(M->num_classes * sizeof(int32_t));

#define TRAIN(model, cfgp, n, ytr, wsp, wsb, hqp)                                         \
    train_features(model, cfgp, &in, n, ytr, wsp, wsb, hqp, &res, NULL)

    EXPECT("valid", TRAIN(M, &cfg, in.n, in.ytr, ws, ws_bytes, &hq), TS_OK);
    EXPECT("workspace one byte short", TRAIN(M, &cfg, in.n, in.ytr, ws, ws_bytes - 1, &hq),
           TS_ERR_ARENA);
    EXPECT("workspace misaligned", TRAIN(M, &cfg, in.n, in.ytr, ws_big + 1, ws_bytes, &hq),
           TS_ERR_PARAM);
    EXPECT("null workspace", TRAIN(M, &cfg, in.n, in.ytr, NULL, ws_bytes, &hq), TS_ERR_NULL);
    EXPECT("null model", TRAIN(NULL, &cfg, in.n, in.ytr, ws, ws_bytes, &hq), TS_ERR_NULL);
    EXPECT("null config", TRAIN(M, NULL, in.n, in.ytr, ws, ws_bytes, &hq), TS_ERR_NULL);
    EXPECT("null head_q", TRAIN(M, &cfg, in.n, in.ytr, ws, ws_bytes, NULL), TS_ERR_NULL);
    EXPECT("null labels", TRAIN(M, &cfg, in.n, NULL, ws, ws_bytes, &hq), TS_ERR_NULL);
    EXPECT("no training samples", TRAIN(M, &cfg, 0, in.ytr, ws, ws_bytes, &hq), TS_ERR_DATA);
    {
        ts_dataset_t train = ts_trainer_feature_set(M, in.xtr, in.ytr, in.n);
        ts_dataset_t test = train;
        ts_train_request_t req = {.train = &train, .test = &test, .workspace = ws,
                                  .workspace_bytes = ws_bytes, .head_q = &hq};
        EXPECT("null request", ts_train_head_features(M, &cfg, NULL), TS_ERR_NULL);
        EXPECT("valid request, no result", ts_train_head_features(M, &cfg, &req), TS_OK);
        req.test = NULL;
        EXPECT("null test set", ts_train_head_features(M, &cfg, &req), TS_ERR_NULL);
        req.test = &test;
        test.sample_bytes = in.d + 1u;
        EXPECT("test features of the wrong size", ts_train_head_features(M, &cfg, &req),
               TS_ERR_SHAPE);
    }
    {
        ts_trainer_config_t c2 = cfg;
        c2.batch_size = 0;
        EXPECT("batch 0", TRAIN(M, &c2, in.n, in.ytr, ws, ws_bytes, &hq), TS_ERR_PARAM);
        c2 = cfg;
        c2.learning_rate = 0.0f;
        EXPECT("lr 0", TRAIN(M, &c2, in.n, in.ytr, ws, ws_bytes, &hq), TS_ERR_PARAM);
        c2 = cfg;
        c2.momentum = 1.0f;
        EXPECT("momentum 1", TRAIN(M, &c2, in.n, in.ytr, ws, ws_bytes, &hq), TS_ERR_PARAM);
        c2 = cfg;
        c2.learning_rate = 1e30f; /* diverges: inf/NaN weights cannot be re-quantized */
        EXPECT("diverged", TRAIN(M, &c2, in.n, in.ytr, ws, ws_bytes, &hq), TS_ERR_PARAM);
        c2 = cfg;
        c2.epochs = 0;
        EXPECT("epochs 0 (evaluation only)", TRAIN(M, &c2, in.n, in.ytr, ws, ws_bytes, &hq),
               TS_OK);
    }
    {
        ts_trainer_config_t c2 = cfg;
        c2.update = TS_UPDATE_COUNT;
        EXPECT("unknown update", TRAIN(M, &c2, in.n, in.ytr, ws, ws_bytes, &hq), TS_ERR_PARAM);
        c2 = cfg;
        c2.schedule = TS_SCHEDULE_COUNT;
        EXPECT("unknown schedule", TRAIN(M, &c2, in.n, in.ytr, ws, ws_bytes, &hq),
               TS_ERR_PARAM);
        c2 = cfg;
        c2.epochs = 0;
        c2.steps = 3;
        EXPECT("steps without samples", TRAIN(M, &c2, 0, in.ytr, ws, ws_bytes, &hq),
               TS_ERR_DATA);
        EXPECT("steps", TRAIN(M, &c2, in.n, in.ytr, ws, ws_bytes, &hq), TS_OK);
        c2.update = TS_UPDATE_LAST_BLOCK; /* head features are not the block's input */
        EXPECT("features of the wrong mode", TRAIN(M, &c2, in.n, in.ytr, ws, ws_bytes, &hq),
               TS_ERR_SHAPE);
    }
    {
        /* train_extra: a label out of range there, and the total over the sample limit */
        uint8_t *y = xmalloc(in.n);
        ts_dataset_t train = {in.n / 2u, in.d, in.xtr, in.ytr};
        ts_dataset_t extra = {in.n - in.n / 2u, in.d, in.xtr + (size_t)(in.n / 2u) * in.d, y};
        ts_dataset_t test = {in.t, in.d, in.xte, in.yte};
        ts_train_request_t req = {.train = &train, .test = &test, .train_extra = &extra,
                                  .workspace = ws, .workspace_bytes = ws_bytes, .head_q = &hq};
        memcpy(y, in.ytr + in.n / 2u, extra.count);
        EXPECT("train + train_extra", ts_train_head_features(M, &cfg, &req), TS_OK);
        y[0] = (uint8_t)M->num_classes;
        EXPECT("train_extra label out of range", ts_train_head_features(M, &cfg, &req),
               TS_ERR_DATA);
        y[0] = 0;
        extra.count = TS_TRAINER_MAX_SAMPLES;
        EXPECT("train + train_extra above the sample limit",
               ts_train_head_features(M, &cfg, &req), TS_ERR_DATA);
        extra.count = in.n - in.n / 2u;
        extra.x = NULL;
        EXPECT("train_extra without samples", ts_train_head_features(M, &cfg, &req),
               TS_ERR_NULL);
        free(y);
    }
    {
        uint8_t *y = xmalloc(in.n);
        memcpy(y, in.ytr, in.n);
        y[in.n - 1] = (uint8_t)M->num_classes;
        EXPECT("label out of range", TRAIN(M, &cfg, in.n, y, ws, ws_bytes, &hq), TS_ERR_DATA);
        free(y);
    }
    bad = *M;
    bad.format_version = 99;
    EXPECT("wrong version", TRAIN(&bad, &cfg, in.n, in.ytr, ws, ws_bytes, &hq),
           TS_ERR_VERSION);
    bad = *M;
    bad.head_layer = M->num_layers;
    EXPECT("head layer out of range", TRAIN(&bad, &cfg, in.n, in.ytr, ws, ws_bytes, &hq),
           TS_ERR_SHAPE);
    bad = *M;
    bad.feature_dim = M->feature_dim + 1;
    EXPECT("feature dim mismatch", TRAIN(&bad, &cfg, in.n, in.ytr, ws, ws_bytes, &hq),
           TS_ERR_SHAPE);
    bad = *M;
    bad.head_layer = 0; /* layer 0 is not FULLY_CONNECTED */
    EXPECT("head not FULLY_CONNECTED", TRAIN(&bad, &cfg, in.n, in.ytr, ws, ws_bytes, &hq),
           TS_ERR_SHAPE);
    bad = *M;
    bad.feature_scale = 0.0f;
    EXPECT("feature scale 0", TRAIN(&bad, &cfg, in.n, in.ytr, ws, ws_bytes, &hq),
           TS_ERR_PARAM);
    bad = *M;
    bad.head_weights = NULL;
    EXPECT("no head init", TRAIN(&bad, &cfg, in.n, in.ytr, ws, ws_bytes, &hq), TS_ERR_NULL);
    if (ts_trainer_workspace_size(&bad, 10) != 0) {
        printf("FAIL workspace size of a bad model is not 0\n");
        ++fails;
    }
    if (ts_trainer_workspace_size(M, TS_TRAINER_MAX_SAMPLES + 1u) != 0) {
        printf("FAIL workspace size beyond the sample limit is not 0\n");
        ++fails;
    }
    EXPECT("patch model", ts_trainer_patch_model(M, &hq, layers, 64, &patched), TS_OK);
    EXPECT("patch model small table", ts_trainer_patch_model(M, &hq, layers, 1, &patched),
           TS_ERR_ARENA);
    {
        /* the patched head layer points at head_q */
        const ts_layer_t *h = &patched.layers[M->head_layer];
        if (h->weights != hq.weights || h->bias != hq.bias || *h->multiplier != hq.multiplier ||
            *h->shift != hq.shift || h->quant_len != 1u) {
            printf("FAIL patched head does not point at head_q\n");
            ++fails;
        }
    }
    fails += head_only_errors(&cfg, &in, ws, ws_bytes, &hq);
    fails += head_bound_errors();
#ifdef TS_TEST_EXECUTOR
    {
        uint8_t arena[16];
        int8_t cache[8];
        size_t ws_ds_bytes = ts_trainer_workspace_size(M, ts_export_train.count);
        uint8_t *ws_ds = xmalloc(ws_ds_bytes);
        ts_train_request_t req = {.train = &ts_export_train, .test = &ts_export_test,
                                  .workspace = ws_ds, .workspace_bytes = ws_ds_bytes,
                                  .feature_cache = cache, .feature_cache_bytes = sizeof(cache),
                                  .arena = arena, .arena_bytes = sizeof(arena), .head_q = &hq};
        EXPECT("cache too small", ts_train_head(M, &cfg, &req), TS_ERR_ARENA);
        req.arena = NULL; /* the backbone needs one (head_layer > 0) */
        EXPECT("no arena", ts_train_head(M, &cfg, &req),
               M->head_layer > 0 ? TS_ERR_NULL : TS_ERR_ARENA);
        free(ws_ds);
    }
    fails += backbone_errors(&cfg, &hq);
#endif
    free(ws);
    free(ws_big);
    free(hq.weights);
    free(hq.bias);
    free_input(&in);
    printf("fails %d\n", fails);
    return fails == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        die("usage: driver info|order|train|dataset|qm|mbqm|errors ...");
    }
    if (strcmp(argv[1], "info") == 0) {
        return cmd_info();
    }
    if (strcmp(argv[1], "order") == 0 && argc >= 5) {
        return cmd_order(argv + 2);
    }
    if (strcmp(argv[1], "train") == 0 && argc >= 8) {
        return cmd_train(argv + 2, argc - 2);
    }
#ifdef TS_TEST_EXECUTOR
    if (strcmp(argv[1], "dataset") == 0 && argc >= 8) {
        return cmd_dataset(argv + 2, argc - 2);
    }
#endif
    if (strcmp(argv[1], "stream") == 0 && argc >= 6) {
        return cmd_stream(argv + 2);
    }
    if (strcmp(argv[1], "lr") == 0 && argc >= 5) {
        return cmd_lr(argv + 2);
    }
    if (strcmp(argv[1], "classw") == 0 && argc >= 3) {
        return cmd_classw(argv + 2, argc - 2);
    }
    if (strcmp(argv[1], "sizes") == 0) {
        return cmd_sizes();
    }
    if (strcmp(argv[1], "scales") == 0) {
        return cmd_scales();
    }
    if (strcmp(argv[1], "tflfile") == 0 && argc >= 5) {
        return cmd_tflfile(argv + 2);
    }
    if (strcmp(argv[1], "tflfuzz") == 0 && argc >= 4) {
        return cmd_tflfuzz(argv + 2);
    }
    if (strcmp(argv[1], "qm") == 0) {
        return cmd_qm();
    }
    if (strcmp(argv[1], "mbqm") == 0) {
        return cmd_mbqm();
    }
    if (strcmp(argv[1], "errors") == 0 && argc >= 3) {
        return cmd_errors(argv + 2);
    }
    die("unknown command or missing arguments");
    return 2;
}
