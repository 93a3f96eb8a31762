/*
 * tinysift engine: the trainer's backbone side. Runs layers [0, head_layer) with the
 * executor (ts_run_layers) to produce int8 features, either once into a caller's feature
 * cache or again each time a sample is needed when there is no cache (RAM too small).
 * Kept apart from ts_trainer.c so that training from precomputed features links without
 * the executor.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ts_engine.h"
#include "ts_trainer.h"
#include "ts_trainer_internal.h"

/* Features of one sample into out (feature_dim bytes). head_layer 0 means the input is the
 * feature vector. */
static ts_status_t backbone_one(const ts_model_t *model, const ts_dataset_t *ds,
                                uint32_t index, int8_t *out, uint8_t *arena,
                                size_t arena_bytes)
{
    const int8_t *x = ds->x + (size_t)index * ds->sample_bytes;
    if (model->head_layer == 0) {
        memcpy(out, x, model->feature_dim);
        return TS_OK;
    }
    return ts_run_layers(model, 0, model->head_layer, x, out, arena, arena_bytes);
}

ts_status_t ts_trainer_extract_features(const ts_model_t *model, const ts_dataset_t *ds,
                                        int8_t *out, size_t out_bytes, uint8_t *arena,
                                        size_t arena_bytes, ts_trainer_cycles_fn cycles_fn,
                                        uint64_t *cycles)
{
    uint32_t i;
    uint32_t t0 = 0;
    ts_status_t st = ts_trainer_check_model(model);
    if (cycles != NULL) {
        *cycles = 0;
    }
    if (st != TS_OK) {
        return st;
    }
    st = ts_trainer_check_dataset(model, ds, TS_SAMPLES_INPUTS);
    if (st != TS_OK) {
        return st;
    }
    if (ds->count > 0 && out == NULL) {
        return TS_ERR_NULL;
    }
    if (out_bytes < (size_t)ds->count * model->feature_dim) {
        return TS_ERR_ARENA;
    }
    if (cycles_fn != NULL) {
        t0 = cycles_fn();
    }
    for (i = 0; i < ds->count; ++i) {
        st = backbone_one(model, ds, i, out + (size_t)i * model->feature_dim, arena,
                          arena_bytes);
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

/* ---- feature sources -------------------------------------------------------------------- */

/* Recompute source: runs the backbone into the workspace's int8 feature buffer. */
typedef struct {
    const ts_model_t *model;
    const ts_dataset_t *ds;
    uint8_t *arena;
    size_t arena_bytes;
    int8_t *buf;
} ts_recompute_src_t;

static const int8_t *recompute_get(void *ctx, uint32_t index, ts_status_t *status)
{
    const ts_recompute_src_t *r = (const ts_recompute_src_t *)ctx;
    ts_status_t st = backbone_one(r->model, r->ds, index, r->buf, r->arena, r->arena_bytes);
    if (st != TS_OK) {
        *status = st;
        return NULL;
    }
    return r->buf;
}

static void recompute_src(ts_recompute_src_t *rs, const ts_model_t *model,
                          const ts_dataset_t *ds, const ts_train_request_t *req,
                          ts_feature_src_t *src)
{
    rs->model = model;
    rs->ds = ds;
    rs->arena = req->arena;
    rs->arena_bytes = req->arena_bytes;
    rs->buf = ts_trainer_ws_feature_buffer(model, req->train->count, req->workspace);
    src->get = recompute_get;
    src->ctx = rs;
}

/* Fill the cache once (training samples, then test samples), then train from it. */
static ts_status_t train_cached(const ts_model_t *model, const ts_trainer_config_t *config,
                                const ts_train_request_t *req)
{
    const ts_dataset_t *train = req->train;
    const ts_dataset_t *test = req->test;
    size_t train_bytes = (size_t)train->count * model->feature_dim;
    int8_t *test_cache;
    uint64_t c_train = 0, c_test = 0;
    ts_array_src_t tr, te;
    ts_feature_src_t trs, tes;
    ts_status_t st;
    if (req->feature_cache_bytes < ts_trainer_cache_size(model, train->count, test->count)) {
        return TS_ERR_ARENA;
    }
    test_cache = req->feature_cache + train_bytes;
    st = ts_trainer_extract_features(model, train, req->feature_cache, train_bytes, req->arena,
                                     req->arena_bytes, config->cycles, &c_train);
    if (st != TS_OK) {
        return st;
    }
    st = ts_trainer_extract_features(model, test, test_cache,
                                     req->feature_cache_bytes - train_bytes, req->arena,
                                     req->arena_bytes, config->cycles, &c_test);
    if (st != TS_OK) {
        return st;
    }
    ts_trainer_array_src(&tr, req->feature_cache, model->feature_dim, &trs);
    ts_trainer_array_src(&te, test_cache, model->feature_dim, &tes);
    return ts_trainer_run(model, config, req, &trs, &tes, c_train + c_test);
}

/* No cache: the backbone runs every time a sample's features are needed. */
static ts_status_t train_recomputed(const ts_model_t *model, const ts_trainer_config_t *config,
                                    const ts_train_request_t *req)
{
    ts_recompute_src_t rtr, rte;
    ts_feature_src_t trs, tes;
    recompute_src(&rtr, model, req->train, req, &trs);
    recompute_src(&rte, model, req->test, req, &tes);
    return ts_trainer_run(model, config, req, &trs, &tes, 0u);
}

ts_status_t ts_train_head(const ts_model_t *model, const ts_trainer_config_t *config,
                          const ts_train_request_t *req)
{
    ts_status_t st = ts_trainer_check_request(model, config, req, TS_SAMPLES_INPUTS);
    if (st != TS_OK) {
        return st;
    }
    if (model->head_layer > 0 && req->arena == NULL) {
        return TS_ERR_NULL;
    }
    return req->feature_cache != NULL ? train_cached(model, config, req)
                                      : train_recomputed(model, config, req);
}
