/*
 * tinysift engine: the Armv7E-M DSP instructions the *_dsp kernels use, as inline
 * functions. With __ARM_FEATURE_DSP they are single instructions (inline asm, so the
 * SXTB16 rotation is folded in); elsewhere they are portable C with the architectural
 * semantics (Arm ARM, A7.7: SXTB16, SXTAB16, SMLAD, SMLADX, SMUAD, SMUADX, SMLABB, SMLABT, SMLATB, SMLATT,
 * PKHBT, SMMULR, SSAT), so the same kernels
 * run and are tested on the host.
 *
 * Halfword pairs: bits [15:0] are the "bottom" (B) lane, bits [31:16] the "top" (T) lane.
 */
#ifndef TS_DSP_H
#define TS_DSP_H

#include <stdint.h>
#include <string.h>

/* Four int8 from any address (an unaligned LDR on Armv7E-M). */
static inline uint32_t ts_read_s8x4(const int8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* (b, t) as a halfword pair: b in the bottom lane, t in the top. */
static inline uint32_t ts_pack_q15(int32_t b, int32_t t) {
    return ((uint32_t)(uint16_t)b) | ((uint32_t)(uint16_t)t << 16);
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP

/* bytes 0 and 2, sign-extended to halfwords */
static inline uint32_t ts_sxtb16(uint32_t x) {
    uint32_t r;
    __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(x));
    return r;
}
/* bytes 1 and 3, sign-extended to halfwords */
static inline uint32_t ts_sxtb16_ror8(uint32_t x) {
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
/* a + bytes 0 and 2 (halfword lanes, wrapping) */
static inline uint32_t ts_sxtab16(uint32_t a, uint32_t x) {
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2" : "=r"(r) : "r"(a), "r"(x));
    return r;
}
/* a + bytes 1 and 3 */
static inline uint32_t ts_sxtab16_ror8(uint32_t a, uint32_t x) {
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
}
/* acc + x.B * y.B + x.T * y.T */
static inline int32_t ts_smlad(uint32_t x, uint32_t y, int32_t acc) {
    int32_t r;
    __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(y), "r"(acc));
    return r;
}
/* acc + x.B * y.B */
static inline int32_t ts_smlabb(uint32_t x, uint32_t y, int32_t acc) {
    int32_t r;
    __asm__("smlabb %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(y), "r"(acc));
    return r;
}
/* acc + x.T * y.T */
static inline int32_t ts_smlatt(uint32_t x, uint32_t y, int32_t acc) {
    int32_t r;
    __asm__("smlatt %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(y), "r"(acc));
    return r;
}
/* x.B * y.B + x.T * y.T (SMUAD) */
static inline int32_t ts_smuad(uint32_t x, uint32_t y) {
    int32_t r;
    __asm__("smuad %0, %1, %2" : "=r"(r) : "r"(x), "r"(y));
    return r;
}
/* x.B * y.T + x.T * y.B (SMUADX) */
static inline int32_t ts_smuadx(uint32_t x, uint32_t y) {
    int32_t r;
    __asm__("smuadx %0, %1, %2" : "=r"(r) : "r"(x), "r"(y));
    return r;
}
/* acc + x.B * y.T + x.T * y.B (SMLADX: the second operand's halves exchanged) */
static inline int32_t ts_smladx(uint32_t x, uint32_t y, int32_t acc) {
    int32_t r;
    __asm__("smladx %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(y), "r"(acc));
    return r;
}
/* acc + x.B * y.T */
static inline int32_t ts_smlabt(uint32_t x, uint32_t y, int32_t acc) {
    int32_t r;
    __asm__("smlabt %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(y), "r"(acc));
    return r;
}
/* acc + x.T * y.B */
static inline int32_t ts_smlatb(uint32_t x, uint32_t y, int32_t acc) {
    int32_t r;
    __asm__("smlatb %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(y), "r"(acc));
    return r;
}
/* x.B in the bottom lane, y.T in the top lane (PKHBT) */
static inline uint32_t ts_pkhbt(uint32_t x, uint32_t y) {
    uint32_t r;
    __asm__("pkhbt %0, %1, %2" : "=r"(r) : "r"(x), "r"(y));
    return r;
}
/* x.B in the bottom lane, y.B in the top lane (PKHBT, LSL #16) */
static inline uint32_t ts_pkhbt_lsl16(uint32_t x, uint32_t y) {
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(x), "r"(y));
    return r;
}
/* (a * b + 2^31) >> 32: the rounded high word of the 64-bit product */
static inline int32_t ts_smmulr(int32_t a, int32_t b) {
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
/* saturate to [-128, 127] */
static inline int32_t ts_ssat8(int32_t x) {
    int32_t r;
    __asm__("ssat %0, #8, %1" : "=r"(r) : "r"(x));
    return r;
}

#else /* portable emulation */

static inline int32_t ts_lane_b(uint32_t x) { return (int32_t)(int16_t)(uint16_t)(x & 0xFFFFu); }
static inline int32_t ts_lane_t(uint32_t x) { return (int32_t)(int16_t)(uint16_t)(x >> 16); }
static inline int32_t ts_byte(uint32_t x, int n) { return (int32_t)(int8_t)(uint8_t)(x >> (8 * n)); }

static inline uint32_t ts_sxtb16(uint32_t x) { return ts_pack_q15(ts_byte(x, 0), ts_byte(x, 2)); }
static inline uint32_t ts_sxtb16_ror8(uint32_t x) { return ts_pack_q15(ts_byte(x, 1), ts_byte(x, 3)); }
static inline uint32_t ts_sxtab16(uint32_t a, uint32_t x) {
    return ts_pack_q15(ts_lane_b(a) + ts_byte(x, 0), ts_lane_t(a) + ts_byte(x, 2));
}
static inline uint32_t ts_sxtab16_ror8(uint32_t a, uint32_t x) {
    return ts_pack_q15(ts_lane_b(a) + ts_byte(x, 1), ts_lane_t(a) + ts_byte(x, 3));
}
static inline int32_t ts_smlad(uint32_t x, uint32_t y, int32_t acc) {
    const uint32_t p = (uint32_t)(ts_lane_b(x) * ts_lane_b(y)) + (uint32_t)(ts_lane_t(x) * ts_lane_t(y));
    return (int32_t)((uint32_t)acc + p);
}
static inline int32_t ts_smlabb(uint32_t x, uint32_t y, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(ts_lane_b(x) * ts_lane_b(y)));
}
static inline int32_t ts_smlatt(uint32_t x, uint32_t y, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(ts_lane_t(x) * ts_lane_t(y)));
}
static inline int32_t ts_smladx(uint32_t x, uint32_t y, int32_t acc) {
    const uint32_t p = (uint32_t)(ts_lane_b(x) * ts_lane_t(y)) + (uint32_t)(ts_lane_t(x) * ts_lane_b(y));
    return (int32_t)((uint32_t)acc + p);
}
static inline int32_t ts_smuad(uint32_t x, uint32_t y) { return ts_smlad(x, y, 0); }
static inline int32_t ts_smuadx(uint32_t x, uint32_t y) { return ts_smladx(x, y, 0); }
static inline int32_t ts_smlabt(uint32_t x, uint32_t y, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(ts_lane_b(x) * ts_lane_t(y)));
}
static inline int32_t ts_smlatb(uint32_t x, uint32_t y, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(ts_lane_t(x) * ts_lane_b(y)));
}
static inline uint32_t ts_pkhbt(uint32_t x, uint32_t y) { return (x & 0xFFFFu) | (y & 0xFFFF0000u); }
static inline uint32_t ts_pkhbt_lsl16(uint32_t x, uint32_t y) { return (x & 0xFFFFu) | (y << 16); }
static inline int32_t ts_smmulr(int32_t a, int32_t b) {
    return (int32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32);
}
static inline int32_t ts_ssat8(int32_t x) { return x < -128 ? -128 : (x > 127 ? 127 : x); }

#endif

/* Both halfword lanes set to v. */
static inline uint32_t ts_dup16(int32_t v) {
    return ((uint32_t)(uint16_t)v) | ((uint32_t)(uint16_t)v << 16);
}

#endif /* TS_DSP_H */
