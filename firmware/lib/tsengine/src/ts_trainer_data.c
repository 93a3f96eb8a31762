/*
 * tinysift engine: the trainer's data side. The trained layers start at `first`
 * (ts_trainer_sizes: head_layer for update=head, the last pointwise convolution for
 * last-block, 0 for bias); their int8 input is the output of the frozen layers [0, first),
 * run with the executor (ts_run_layers) either once into a caller's cache or again each time
 * a sample is needed when there is no cache (RAM too small). With first == 0 the input is
 * the sample itself. Training sets come in two parts (train, then train_extra).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ts_engine.h"
#include "ts_trainer.h"
#include "ts_trainer_internal.h"

/* The int8 input of layer `first` for one sample into out. first == 0: the sample itself. */
static ts_status_t prefix_one(const ts_model_t *model, uint32_t first, const ts_dataset_t *ds,
                              uint32_t index, int8_t *out, uint8_t *arena, size_t arena_bytes)
{
    const int8_t *x = ds->x + (size_t)index * ds->sample_bytes;
    if (first == 0) {
        memcpy(out, x, ds->sample_bytes);
        return TS_OK;
    }
    return ts_run_layers(model, 0, first, x, out, arena, arena_bytes);
}

/* The int8 inputs of layer `first` (sample_bytes each) of every sample of ds into out. */
static ts_status_t extract(const ts_model_t *model, uint32_t first, uint32_t sample_bytes,
                           const ts_dataset_t *ds, int8_t *out, size_t out_bytes,
                           uint8_t *arena, size_t arena_bytes, ts_trainer_cycles_fn cycles_fn,
                           uint64_t *cycles)
{
    uint32_t i;
    uint32_t t0 = 0;
    uint64_t need;
    ts_status_t st = ts_trainer_check_dataset(
        ds, (uint32_t)((uint64_t)model->input.h * (uint64_t)model->input.w *
                       (uint64_t)model->input.c));
    if (st != TS_OK) {
        return st;
    }
    if (ds->count > 0 && out == NULL) {
        return TS_ERR_NULL;
    }
    /* in 64 bits, refused from 2^31: a 32-bit size_t product wrapped for a large count, and
     * a buffer far too short passed */
    need = (uint64_t)ds->count * sample_bytes;
    if (need >= TS_TRAINER_MAX_BYTES || out_bytes < need) {
        return TS_ERR_ARENA;
    }
    if (cycles_fn != NULL) {
        t0 = cycles_fn();
    }
    for (i = 0; i < ds->count; ++i) {
        st = prefix_one(model, first, ds, i, out + (size_t)i * sample_bytes, arena, arena_bytes);
        if (st != TS_OK) {
            return st;
        }
        if (cycles_fn != NULL && cycles != NULL) {
            uint32_t now = cycles_fn();
            *cycles += (uint32_t)(now - t0);
            t0 = now;
        }
    }
    return TS_OK;
}

ts_status_t ts_trainer_extract_features(const ts_model_t *model, const ts_dataset_t *ds,
                                        int8_t *out, size_t out_bytes, uint8_t *arena,
                                        size_t arena_bytes, ts_trainer_cycles_fn cycles_fn,
                                        uint64_t *cycles)
{
    return ts_trainer_extract_inputs(model, TS_UPDATE_HEAD, ds, out, out_bytes, arena,
                                     arena_bytes, cycles_fn, cycles);
}

ts_status_t ts_trainer_extract_inputs(const ts_model_t *model, uint32_t update,
                                      const ts_dataset_t *ds, int8_t *out, size_t out_bytes,
                                      uint8_t *arena, size_t arena_bytes,
                                      ts_trainer_cycles_fn cycles_fn, uint64_t *cycles)
{
    ts_trainer_sizes_t sz;
    ts_status_t st;
    if (cycles != NULL) {
        *cycles = 0;
    }
    st = ts_trainer_sizes(model, update, &sz);
    if (st != TS_OK) {
        return st;
    }
    return extract(model, sz.first_layer, sz.sample_bytes, ds, out, out_bytes, arena,
                   arena_bytes, cycles_fn, cycles);
}

/* ---- sample sources ------------------------------------------------------------------------ */

/* Recompute source: runs the frozen layers into buf (two datasets: a, then b). */
typedef struct {
    const ts_model_t *model;
    uint32_t first;
    const ts_dataset_t *a;
    const ts_dataset_t *b;
    uint8_t *arena;
    size_t arena_bytes;
    int8_t *buf;
} ts_recompute_src_t;

static const int8_t *recompute_get(void *ctx, uint32_t index, ts_status_t *status)
{
    const ts_recompute_src_t *r = (const ts_recompute_src_t *)ctx;
    const ts_dataset_t *ds = r->a;
    ts_status_t st;
    if (index >= r->a->count) {
        index -= r->a->count;
        ds = r->b;
    }
    st = prefix_one(r->model, r->first, ds, index, r->buf, r->arena, r->arena_bytes);
    if (st != TS_OK) {
        *status = st;
        return NULL;
    }
    return r->buf;
}

static void recompute_src(ts_recompute_src_t *rs, const ts_model_t *model, uint32_t first,
                          const ts_dataset_t *a, const ts_dataset_t *b,
                          const ts_train_request_t *req, int8_t *buf, ts_feature_src_t *src)
{
    rs->model = model;
    rs->first = first;
    rs->a = a;
    rs->b = b;
    rs->arena = req->arena;
    rs->arena_bytes = req->arena_bytes;
    rs->buf = buf;
    src->get = recompute_get;
    src->ctx = rs;
    src->y0 = a->y;
    src->y1 = b != NULL ? b->y : NULL;
    src->n0 = a->count;
    src->count = a->count + (b != NULL ? b->count : 0u);
}

/* Fill the cache once (train, train_extra, then test samples), then train from it. */
static ts_status_t train_cached(const ts_model_t *model, const ts_trainer_config_t *config,
                                const ts_train_request_t *req, const ts_trainer_sizes_t *sz)
{
    const ts_dataset_t *parts[3];
    ts_dataset_t cached[3];
    int8_t *at = req->feature_cache;
    size_t left = req->feature_cache_bytes;
    uint64_t total = 0, need;
    ts_array_src_t tr, te;
    ts_feature_src_t trs, tes;
    uint32_t i;
    parts[0] = req->train;
    parts[1] = req->train_extra;
    parts[2] = req->test;
    /* the whole cache first, in 64 bits (test->count is not bounded by the sample limit):
     * every part's bytes below are then below 2^31 too */
    need = ((uint64_t)ts_trainer_train_count(req) + req->test->count) * sz->sample_bytes;
    if (need >= TS_TRAINER_MAX_BYTES || req->feature_cache_bytes < need) {
        return TS_ERR_ARENA;
    }
    for (i = 0; i < 3u; ++i) {
        uint64_t c = 0;
        size_t bytes;
        ts_status_t st;
        if (parts[i] == NULL) {
            continue;
        }
        bytes = (size_t)parts[i]->count * sz->sample_bytes;
        st = extract(model, sz->first_layer, sz->sample_bytes, parts[i], at, left, req->arena,
                     req->arena_bytes, config->cycles, &c);
        if (st != TS_OK) {
            return st;
        }
        cached[i].count = parts[i]->count;
        cached[i].sample_bytes = sz->sample_bytes;
        cached[i].x = at;
        cached[i].y = parts[i]->y;
        at += bytes;
        left -= bytes;
        total += c;
    }
    ts_trainer_array_src(&tr, &cached[0], req->train_extra != NULL ? &cached[1] : NULL,
                         sz->sample_bytes, &trs);
    ts_trainer_array_src(&te, &cached[2], NULL, sz->sample_bytes, &tes);
    return ts_trainer_run(model, config, req, &trs, &tes, total);
}

/* No cache: the frozen layers run every time a sample is needed (into the head
 * workspace's feature buffer, or the backbone workspace's input buffer for last-block);
 * with first == 0 the samples are read where they are. */
static ts_status_t train_recomputed(const ts_model_t *model, const ts_trainer_config_t *config,
                                    const ts_train_request_t *req, const ts_trainer_sizes_t *sz)
{
    ts_recompute_src_t rtr, rte;
    ts_array_src_t atr, ate;
    ts_feature_src_t trs, tes;
    int8_t *buf;
    if (sz->first_layer == 0) {
        ts_trainer_array_src(&atr, req->train, req->train_extra, sz->sample_bytes, &trs);
        ts_trainer_array_src(&ate, req->test, NULL, sz->sample_bytes, &tes);
        return ts_trainer_run(model, config, req, &trs, &tes, 0u);
    }
    if (config->update == TS_UPDATE_HEAD) {
        buf = ts_trainer_ws_feature_buffer(model, ts_trainer_train_count(req), req->workspace);
    } else {
        ts_tail_t t;
        ts_tail_bind(&t, model, config->update, sz, req->backbone_ws);
        buf = t.x8;
    }
    recompute_src(&rtr, model, sz->first_layer, req->train, req->train_extra, req, buf, &trs);
    recompute_src(&rte, model, sz->first_layer, req->test, NULL, req, buf, &tes);
    return ts_trainer_run(model, config, req, &trs, &tes, 0u);
}

ts_status_t ts_train_head(const ts_model_t *model, const ts_trainer_config_t *config,
                          const ts_train_request_t *req)
{
    ts_trainer_sizes_t sz;
    ts_status_t st = ts_trainer_check_request(model, config, req, TS_SAMPLES_INPUTS);
    if (st != TS_OK) {
        return st;
    }
    st = ts_trainer_sizes(model, config->update, &sz);
    if (st != TS_OK) {
        return st;
    }
    if (sz.first_layer > 0 && req->arena == NULL) {
        return TS_ERR_NULL;
    }
    return req->feature_cache != NULL && config->update != TS_UPDATE_BIAS
               ? train_cached(model, config, req, &sz)
               : train_recomputed(model, config, req, &sz);
}
