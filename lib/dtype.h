/* dtype.h - the safetensors element types and exact conversions between the
 * three floating formats a checkpoint uses (bf16, f16, f32).
 *
 * Conversions to a narrower format round to nearest, ties to even, and turn
 * every NaN into a quiet NaN. For bf16 the NaN is the canonical 0x7FC0, which
 * is what MLX writes (checked against mx.array.astype(mx.bfloat16)); for f16
 * the sign and the top payload bits are kept and the quiet bit set, which is
 * what the F16C instruction does.
 */
#ifndef KT_DTYPE_H
#define KT_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum {
    KT_BOOL, KT_U8, KT_I8, KT_U16, KT_I16, KT_F16, KT_BF16, KT_U32, KT_I32,
    KT_F32, KT_U64, KT_I64, KT_F64, KT_C64,
    KT_F8_E4M3, KT_F8_E5M2, KT_F8_E8M0, KT_F6_E2M3, KT_F6_E3M2, KT_F4,
    KT_DTYPE_COUNT
} kt_dtype;

/* "BF16" -> KT_BF16; returns -1 for an unknown name. */
int kt_dtype_from_name(const char *name);
const char *kt_dtype_name(kt_dtype t);
/* Size of one element in bits (4 and 6 for the sub-byte float formats). */
unsigned kt_dtype_bits(kt_dtype t);
int kt_dtype_is_float(kt_dtype t);

/* ---- scalar conversions (the reference) ---- */

static inline float kt_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t kt_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0; /* NaN */
    /* Round to nearest even: add 0x7fff plus the lowest kept bit. */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float kt_f16_to_f32(uint16_t h);
uint16_t kt_f32_to_f16(float f);

/* ---- row conversions: scalar reference and the dispatched fast path ---- */

void kt_bf16_to_f32_row_ref(const uint16_t *in, float *out, size_t n);
void kt_f32_to_bf16_row_ref(const float *in, uint16_t *out, size_t n);
void kt_f16_to_f32_row_ref(const uint16_t *in, float *out, size_t n);
void kt_f32_to_f16_row_ref(const float *in, uint16_t *out, size_t n);

void kt_bf16_to_f32_row(const uint16_t *in, float *out, size_t n);
void kt_f32_to_bf16_row(const float *in, uint16_t *out, size_t n);
void kt_f16_to_f32_row(const uint16_t *in, float *out, size_t n);
void kt_f32_to_f16_row(const float *in, uint16_t *out, size_t n);

/* Widen a row of bf16, f16 or f32 (raw little-endian bytes, any alignment) to f32.
 * Returns -1 for any other dtype. */
int kt_row_to_f32(kt_dtype t, const void *in, float *out, size_t n);
/* Narrow f32 to bf16, f16 or f32 bytes. Returns -1 for any other dtype. */
int kt_row_from_f32(kt_dtype t, const float *in, void *out, size_t n);

/* Which SIMD path the dispatched functions use: "avx2", "neon" or "scalar". */
const char *kt_dtype_simd_name(void);
/* Force the scalar path (tests compare the two). */
void kt_dtype_force_scalar(int on);

#endif
