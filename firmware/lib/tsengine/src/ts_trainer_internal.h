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

/* The whole training run over two feature sources. backbone_cycles is added to the
 * backbone total (the feature-cache fill that happened before). */
ts_status_t ts_trainer_run_sources(const ts_model_t *model, const ts_trainer_config_t *config,
                                   const ts_feature_src_t *train_src,
                                   const uint8_t *train_labels, uint32_t train_count,
                                   const ts_feature_src_t *test_src, const uint8_t *test_labels,
                                   uint32_t test_count, uint8_t *workspace,
                                   size_t workspace_bytes, ts_head_q_t *head_q,
                                   ts_trainer_result_t *result, uint64_t backbone_cycles);

/* TS_OK when the config's values are usable (batch size, learning rate, momentum). */
ts_status_t ts_trainer_check_config(const ts_trainer_config_t *cfg);

/* ts_train_head_features() with backbone_cycles added to the backbone total. */
ts_status_t ts_trainer_run_features(const ts_model_t *model, const ts_trainer_config_t *config,
                                    const int8_t *train_features, const uint8_t *train_labels,
                                    uint32_t train_count, const int8_t *test_features,
                                    const uint8_t *test_labels, uint32_t test_count,
                                    uint8_t *workspace, size_t workspace_bytes,
                                    ts_head_q_t *head_q, ts_trainer_result_t *result,
                                    uint64_t backbone_cycles);

/* The int8 feature buffer inside a workspace (D bytes at its end). */
int8_t *ts_trainer_ws_feature_buffer(const ts_model_t *model, uint32_t train_count,
                                     uint8_t *workspace);

#endif /* TS_TRAINER_INTERNAL_H */
