/*
 * tinysift engine: what ts_trainer.c and ts_trainer_data.c share (not a public API).
 */
#ifndef TS_TRAINER_INTERNAL_H
#define TS_TRAINER_INTERNAL_H

#include "ts_trainer.h"

/* Where the trainer gets sample i's int8 features: a pointer to feature_dim bytes that
 * stay valid until the next call, or NULL with *status set. */
typedef const int8_t *(*ts_feature_get_fn)(void *ctx, uint32_t index, ts_status_t *status);

typedef struct {
    ts_feature_get_fn get;
    void *ctx;
} ts_feature_src_t;

/* What a request's datasets hold: feature vectors (feature_dim bytes a sample) or model
 * inputs (the model's input size a sample). */
typedef enum { TS_SAMPLES_FEATURES, TS_SAMPLES_INPUTS } ts_sample_kind_t;

/* TS_ERR_NULL without the dataset or its arrays (count > 0), TS_ERR_SHAPE when its samples
 * are not of the kind's size. The model must have passed ts_trainer_check_model(). */
ts_status_t ts_trainer_check_dataset(const ts_model_t *model, const ts_dataset_t *ds,
                                     ts_sample_kind_t kind);

/* The checks both entry points share, in this order: the model, the config, the request's
 * pointers (TS_ERR_NULL), the datasets (samples of the kind's size, else TS_ERR_SHAPE),
 * the sample counts (TS_ERR_DATA), the workspace (4-byte aligned, else TS_ERR_PARAM;
 * TS_TRAINER_WORKSPACE_BYTES long, else TS_ERR_ARENA) and every label (TS_ERR_DATA). */
ts_status_t ts_trainer_check_request(const ts_model_t *model, const ts_trainer_config_t *config,
                                     const ts_train_request_t *req, ts_sample_kind_t kind);

/* The whole training run of a checked request over two feature sources (train and test
 * samples, by index). features_cycles is added to the TS_PHASE_FEATURES total (the
 * feature-cache fill that happened before). */
ts_status_t ts_trainer_run(const ts_model_t *model, const ts_trainer_config_t *config,
                           const ts_train_request_t *req, const ts_feature_src_t *train_src,
                           const ts_feature_src_t *test_src, uint64_t features_cycles);

/* A feature source over count x feature_dim int8 features in memory. */
typedef struct {
    const int8_t *base;
    uint32_t dim;
} ts_array_src_t;

void ts_trainer_array_src(ts_array_src_t *arr, const int8_t *base, uint32_t dim,
                          ts_feature_src_t *src);

/* The int8 feature buffer inside a workspace (D bytes at its end). */
int8_t *ts_trainer_ws_feature_buffer(const ts_model_t *model, uint32_t train_count,
                                     uint8_t *workspace);

#endif /* TS_TRAINER_INTERNAL_H */
