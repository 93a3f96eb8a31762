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

static ts_status_t check_dataset(const ts_model_t *model, const ts_dataset_t *ds)
{
    uint64_t in_bytes;
    if (ds == NULL) {
        return TS_ERR_NULL;
    }
    if (ds->count > 0 && (ds->x == NULL || ds->y == NULL)) {
        return TS_ERR_NULL;
    }
    in_bytes = (uint64_t)model->input.h * (uint64_t)model->input.w * (uint64_t)model->input.c;
    if (ds->sample_bytes != in_bytes) {
        return TS_ERR_SHAPE;
    }
    return TS_OK;
}

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
    st = check_dataset(model, ds);
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

ts_status_t ts_train_head(const ts_model_t *model, const ts_trainer_config_t *config,
                          const ts_dataset_t *train, const ts_dataset_t *test,
                          int8_t *feature_cache, size_t feature_cache_bytes,
                          uint8_t *arena, size_t arena_bytes,
                          uint8_t *workspace, size_t workspace_bytes,
                          ts_head_q_t *head_q, ts_trainer_result_t *result)
{
    ts_status_t st = ts_trainer_check_model(model);
    size_t need_ws;
    if (st != TS_OK) {
        return st;
    }
    if (config == NULL || workspace == NULL) {
        return TS_ERR_NULL;
    }
    st = ts_trainer_check_config(config);
    if (st != TS_OK) {
        return st;
    }
    st = check_dataset(model, train);
    if (st == TS_OK) {
        st = check_dataset(model, test);
    }
    if (st != TS_OK) {
        return st;
    }
    if (model->head_layer > 0 && arena == NULL) {
        return TS_ERR_NULL;
    }
    if (train->count > TS_TRAINER_MAX_SAMPLES) {
        return TS_ERR_DATA;
    }
    need_ws = ts_trainer_workspace_size(model, train->count);
    if (workspace_bytes < need_ws) {
        return TS_ERR_ARENA;
    }

    if (feature_cache != NULL) {
        /* fill the cache once: training samples, then test samples */
        size_t train_bytes = (size_t)train->count * model->feature_dim;
        uint64_t c_train = 0, c_test = 0;
        if (feature_cache_bytes < ts_trainer_cache_size(model, train->count, test->count)) {
            return TS_ERR_ARENA;
        }
        st = ts_trainer_extract_features(model, train, feature_cache, train_bytes, arena,
                                         arena_bytes, config->cycles, &c_train);
        if (st != TS_OK) {
            return st;
        }
        st = ts_trainer_extract_features(model, test, feature_cache + train_bytes,
                                         feature_cache_bytes - train_bytes, arena,
                                         arena_bytes, config->cycles, &c_test);
        if (st != TS_OK) {
            return st;
        }
        return ts_trainer_run_features(model, config, feature_cache, train->y, train->count,
                                       feature_cache + train_bytes, test->y, test->count,
                                       workspace, workspace_bytes, head_q, result,
                                       c_train + c_test);
    }
    {
        ts_recompute_src_t rtr, rte;
        ts_feature_src_t trs, tes;
        int8_t *buf = ts_trainer_ws_feature_buffer(model, train->count, workspace);
        rtr.model = model;
        rtr.ds = train;
        rtr.arena = arena;
        rtr.arena_bytes = arena_bytes;
        rtr.buf = buf;
        rte = rtr;
        rte.ds = test;
        trs.get = recompute_get;
        trs.ctx = &rtr;
        tes.get = recompute_get;
        tes.ctx = &rte;
        return ts_trainer_run_sources(model, config, &trs, train->y, train->count, &tes,
                                      test->y, test->count, workspace, workspace_bytes,
                                      head_q, result, 0u);
    }
}
