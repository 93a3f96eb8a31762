/* tinysift firmware engine (placeholder: the kernels and the trainer land in this library). */
#ifndef TS_VERSION_H
#define TS_VERSION_H

#define TS_ENGINE_VERSION 1

#ifdef __cplusplus
extern "C" {
#endif

/* TS_ENGINE_VERSION of the compiled library (may differ from the header a caller saw). */
int ts_engine_version(void);

#ifdef __cplusplus
}
#endif

#endif /* TS_VERSION_H */
