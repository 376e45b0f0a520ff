/* matvec_neon.c - the matrix kernels in NEON (arm64, always present there).
 * The same sums as the scalar reference in float lanes (agreement to
 * rounding) and the row dequantization with its two roundings (bit for bit).
 * tests/cross/neon.sh runs their tests under qemu on x86-64 machines.
 */
#include "kernels.h"

#include <string.h>

#if defined(__aarch64__)
#include <arm_neon.h>
#if defined(__APPLE__)
#include <sys/sysctl.h>
#elif defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

/* 8 bytes = 16 codes: widen to 32-bit lanes, low nibbles (even elements)
 * and high nibbles (odd elements) as floats, 4 lanes at a time. */
static float q4_one(const kt_linear *l, int r, const float *xe, const float *xo, const float *xsum) {
    const int gs = l->group_size, groups = l->in / gs;
    const uint8_t *w = l->w + (size_t)r * l->in / 2;
    const uint8x8_t nib = vdup_n_u8(15);
    float32x4_t acc = vdupq_n_f32(0);
    float bias = 0;
    for (int g = 0; g < groups; g++) {
        float32x4_t d0 = vdupq_n_f32(0), d1 = vdupq_n_f32(0), d2 = vdupq_n_f32(0), d3 = vdupq_n_f32(0);
        const uint8_t *p = w + (size_t)g * gs / 2;
        const float *e = xe + (size_t)g * gs / 2, *o = xo + (size_t)g * gs / 2;
        for (int k = 0; k < gs / 2; k += 8) {
            uint8x8_t v = vld1_u8(p + k);
            uint16x8_t lo = vmovl_u8(vand_u8(v, nib)), hi = vmovl_u8(vshr_n_u8(v, 4));
            d0 = vfmaq_f32(d0, vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo))), vld1q_f32(e + k));
            d1 = vfmaq_f32(d1, vcvtq_f32_u32(vmovl_u16(vget_high_u16(lo))), vld1q_f32(e + k + 4));
            d2 = vfmaq_f32(d2, vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi))), vld1q_f32(o + k));
            d3 = vfmaq_f32(d3, vcvtq_f32_u32(vmovl_u16(vget_high_u16(hi))), vld1q_f32(o + k + 4));
        }
        const size_t i = (size_t)r * groups + g;
        float32x4_t d = vaddq_f32(vaddq_f32(d0, d1), vaddq_f32(d2, d3));
        acc = vfmaq_f32(acc, d, vdupq_n_f32(kt_scale_at(l->dtype, l->scales, i)));
        bias += kt_scale_at(l->dtype, l->biases, i) * xsum[g];
    }
    return vaddvq_f32(acc) + bias;
}

static void q4_rows(const kt_linear *l, int r0, int r1, const float *xe, const float *xo, const float *xsum, float *y) {
    for (int r = r0; r < r1; r++) y[r] = q4_one(l, r, xe, xo, xsum);
}

static void bf16_rows(const kt_linear *l, int r0, int r1, const float *x, float *y) {
    for (int r = r0; r < r1; r++) {
        const uint16_t *w = (const uint16_t *)(l->w + (size_t)r * l->in * 2);
        float32x4_t a0 = vdupq_n_f32(0), a1 = vdupq_n_f32(0);
        int i = 0;
        for (; i + 8 <= l->in; i += 8) {
            uint16x8_t h = vld1q_u16(w + i);
            float32x4_t lo = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
            float32x4_t hi = vreinterpretq_f32_u32(vshll_n_u16(vget_high_u16(h), 16));
            a0 = vfmaq_f32(a0, lo, vld1q_f32(x + i));
            a1 = vfmaq_f32(a1, hi, vld1q_f32(x + i + 4));
        }
        y[r] = kt_bf16_dot_tail(vaddvq_f32(vaddq_f32(a0, a1)), w, x, i, l->in);
    }
}

static void q4_row(const kt_linear *l, int r, float *out) {
    const int gs = l->group_size, groups = l->in / gs;
    const uint8_t *w = l->w + (size_t)r * l->in / 2;
    const uint8x8_t nib = vdup_n_u8(15);
    for (int g = 0; g < groups; g++) {
        const size_t i = (size_t)r * groups + g;
        const float32x4_t s = vdupq_n_f32(kt_scale_at(l->dtype, l->scales, i));
        const float32x4_t b = vdupq_n_f32(kt_scale_at(l->dtype, l->biases, i));
        for (int k = 0; k < gs / 2; k += 8) {
            uint8x8_t v = vld1_u8(w + (size_t)g * gs / 2 + k);
            uint8x8x2_t z = vzip_u8(vand_u8(v, nib), vshr_n_u8(v, 4)); /* codes in element order */
            uint16x8_t c0 = vmovl_u8(z.val[0]), c1 = vmovl_u8(z.val[1]);
            float *o = out + (size_t)g * gs + 2 * k;
            vst1q_f32(o, vaddq_f32(vmulq_f32(vcvtq_f32_u32(vmovl_u16(vget_low_u16(c0))), s), b));
            vst1q_f32(o + 4, vaddq_f32(vmulq_f32(vcvtq_f32_u32(vmovl_u16(vget_high_u16(c0))), s), b));
            vst1q_f32(o + 8, vaddq_f32(vmulq_f32(vcvtq_f32_u32(vmovl_u16(vget_low_u16(c1))), s), b));
            vst1q_f32(o + 12, vaddq_f32(vmulq_f32(vcvtq_f32_u32(vmovl_u16(vget_high_u16(c1))), s), b));
        }
    }
}

/* Two rows by four vectors (kernels.h): 8 accumulators, 6 loads per 8 FMAs. */
static void dots_2x4(const float *w, size_t ldw, const float *x, size_t ldx, int n, float *out, size_t ldo) {
    const float *w0 = w, *w1 = w + ldw, *xk[4] = {x, x + ldx, x + 2 * ldx, x + 3 * ldx};
    float32x4_t a0[4], a1[4];
    for (int k = 0; k < 4; k++) a0[k] = a1[k] = vdupq_n_f32(0);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t v0 = vld1q_f32(w0 + i), v1 = vld1q_f32(w1 + i);
        for (int k = 0; k < 4; k++) {
            const float32x4_t xv = vld1q_f32(xk[k] + i);
            a0[k] = vfmaq_f32(a0[k], v0, xv);
            a1[k] = vfmaq_f32(a1[k], v1, xv);
        }
    }
    for (int k = 0; k < 4; k++) {
        float s0 = vaddvq_f32(a0[k]), s1 = vaddvq_f32(a1[k]);
        for (int j = i; j < n; j++) s0 += w0[j] * xk[k][j], s1 += w1[j] * xk[k][j];
        out[(size_t)k * ldo] = s0, out[(size_t)k * ldo + 1] = s1;
    }
}

static void dots(const float *w, const float *x, size_t ldx, int t, int n, float *out) {
    int k = 0;
    for (; k + 4 <= t; k += 4) {
        const float *x0 = x + (size_t)k * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx, *x3 = x2 + ldx;
        float32x4_t a0 = vdupq_n_f32(0), a1 = vdupq_n_f32(0), a2 = vdupq_n_f32(0), a3 = vdupq_n_f32(0);
        int i = 0;
        for (; i + 4 <= n; i += 4) {
            float32x4_t wv = vld1q_f32(w + i);
            a0 = vfmaq_f32(a0, wv, vld1q_f32(x0 + i));
            a1 = vfmaq_f32(a1, wv, vld1q_f32(x1 + i));
            a2 = vfmaq_f32(a2, wv, vld1q_f32(x2 + i));
            a3 = vfmaq_f32(a3, wv, vld1q_f32(x3 + i));
        }
        float s0 = vaddvq_f32(a0), s1 = vaddvq_f32(a1), s2 = vaddvq_f32(a2), s3 = vaddvq_f32(a3);
        for (; i < n; i++) s0 += w[i] * x0[i], s1 += w[i] * x1[i], s2 += w[i] * x2[i], s3 += w[i] * x3[i];
        out[k] = s0, out[k + 1] = s1, out[k + 2] = s2, out[k + 3] = s3;
    }
    for (; k < t; k++) {
        const float *xk = x + (size_t)k * ldx;
        float32x4_t a0 = vdupq_n_f32(0), a1 = vdupq_n_f32(0);
        int i = 0;
        for (; i + 8 <= n; i += 8) {
            a0 = vfmaq_f32(a0, vld1q_f32(w + i), vld1q_f32(xk + i));
            a1 = vfmaq_f32(a1, vld1q_f32(w + i + 4), vld1q_f32(xk + i + 4));
        }
        float s = vaddvq_f32(vaddq_f32(a0, a1));
        for (; i < n; i++) s += w[i] * xk[i];
        out[k] = s;
    }
}

/* ---- integer kernels (see matvec_avx2.c for the layout) ----
 * 4-bit codes (0..15) fit signed bytes, so both the plain multiply-widen
 * (vmull_s8, pairwise add into 32 bits) and sdot (dotprod) take them as
 * they are. 8-bit codes (0..255) do not: they go in as c - 128 (the top bit
 * flipped) and 128 * sum(q) of the block is added back. */

typedef int32x4_t (*dot16_fn)(int32x4_t acc, int8x16_t a, int8x16_t b);

static inline int32x4_t dot16_plain(int32x4_t acc, int8x16_t a, int8x16_t b) {
    int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b)), hi = vmull_s8(vget_high_s8(a), vget_high_s8(b));
    return vpadalq_s16(vpadalq_s16(acc, lo), hi);
}

#define DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
DOTPROD static inline int32x4_t dot16_sdot(int32x4_t acc, int8x16_t a, int8x16_t b) { return vdotq_s32(acc, a, b); }

#define Q4_I8_ROWS(NAME, ATTR, DOT)                                                                         \
    ATTR static void NAME(const kt_linear *l, int r0, int r1, const kt_qact *a, float *y) {                \
        const int gs = l->group_size, groups = l->in / gs, per = gs / KT_QBLOCK;                            \
        const uint8x16_t nib = vdupq_n_u8(15);                                                              \
        for (int r = r0; r < r1; r++) {                                                                    \
            const uint8_t *w = l->w + (size_t)r * l->in / 2;                                               \
            float32x4_t acc = vdupq_n_f32(0);                                                              \
            float bias = 0;                                                                                \
            for (int g = 0; g < groups; g++) {                                                             \
                float32x4_t gv = vdupq_n_f32(0);                                                           \
                float xsum = 0;                                                                            \
                for (int k = g * per; k < (g + 1) * per; k++) {                                            \
                    const uint8x16_t raw = vld1q_u8(w + (size_t)k * 16);                                   \
                    const int8_t *q = a->qp + (size_t)k * KT_QBLOCK;                                       \
                    int32x4_t s = DOT(vdupq_n_s32(0), vreinterpretq_s8_u8(vandq_u8(raw, nib)), vld1q_s8(q)); \
                    s = DOT(s, vreinterpretq_s8_u8(vshrq_n_u8(raw, 4)), vld1q_s8(q + 16));                 \
                    gv = vfmaq_n_f32(gv, vcvtq_f32_s32(s), a->d[k]);                                       \
                    xsum += a->sum[k];                                                                     \
                }                                                                                          \
                const size_t i = (size_t)r * groups + g;                                                   \
                acc = vfmaq_n_f32(acc, gv, kt_scale_at(l->dtype, l->scales, i));                           \
                bias += kt_scale_at(l->dtype, l->biases, i) * xsum;                                        \
            }                                                                                              \
            y[r] = vaddvq_f32(acc) + bias;                                                                 \
        }                                                                                                  \
    }
Q4_I8_ROWS(q4_i8_rows, , dot16_plain)
Q4_I8_ROWS(q4_i8_rows_sdot, DOTPROD, dot16_sdot)

#define Q8_I8_ROWS(NAME, ATTR, DOT)                                                                         \
    ATTR static void NAME(const kt_linear *l, int r0, int r1, const kt_qact *a, float *y) {                \
        const int gs = l->group_size, groups = l->in / gs, per = gs / KT_QBLOCK;                            \
        const uint8x16_t top = vdupq_n_u8(0x80);                                                            \
        for (int r = r0; r < r1; r++) {                                                                    \
            const uint8_t *w = l->w + (size_t)r * l->in;                                                   \
            float32x4_t acc = vdupq_n_f32(0);                                                              \
            float bias = 0;                                                                                \
            for (int g = 0; g < groups; g++) {                                                             \
                float32x4_t gv = vdupq_n_f32(0);                                                           \
                float xsum = 0;                                                                            \
                for (int k = g * per; k < (g + 1) * per; k++) {                                            \
                    const uint8_t *p = w + (size_t)k * KT_QBLOCK;                                          \
                    const int8_t *q = a->q + (size_t)k * KT_QBLOCK;                                        \
                    int32x4_t s = vsetq_lane_s32(128 * a->qsum[k], vdupq_n_s32(0), 0);                     \
                    s = DOT(s, vreinterpretq_s8_u8(veorq_u8(vld1q_u8(p), top)), vld1q_s8(q));              \
                    s = DOT(s, vreinterpretq_s8_u8(veorq_u8(vld1q_u8(p + 16), top)), vld1q_s8(q + 16));    \
                    gv = vfmaq_n_f32(gv, vcvtq_f32_s32(s), a->d[k]);                                       \
                    xsum += a->sum[k];                                                                     \
                }                                                                                          \
                const size_t i = (size_t)r * groups + g;                                                   \
                acc = vfmaq_n_f32(acc, gv, kt_scale_at(l->dtype, l->scales, i));                           \
                bias += kt_scale_at(l->dtype, l->biases, i) * xsum;                                        \
            }                                                                                              \
            y[r] = vaddvq_f32(acc) + bias;                                                                 \
        }                                                                                                  \
    }
Q8_I8_ROWS(q8_i8_rows, , dot16_plain)
Q8_I8_ROWS(q8_i8_rows_sdot, DOTPROD, dot16_sdot)

/* The prompt: one row, up to four token vectors sharing each block's load. */
#define Q4_I8_GEMM(NAME, ATTR, DOT)                                                                         \
    ATTR static void NAME(const kt_linear *l, int r0, int r1, const kt_qact *a, int t, float *y, size_t ldy) { \
        const int gs = l->group_size, groups = l->in / gs, per = gs / KT_QBLOCK, nb = l->in / KT_QBLOCK;    \
        const uint8x16_t nib = vdupq_n_u8(15);                                                              \
        for (int r = r0; r < r1; r++) {                                                                    \
            const uint8_t *w = l->w + (size_t)r * l->in / 2;                                               \
            float32x4_t acc[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};         \
            float bias[4] = {0, 0, 0, 0};                                                                  \
            for (int g = 0; g < groups; g++) {                                                             \
                float32x4_t gv[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};      \
                float xsum[4] = {0, 0, 0, 0};                                                              \
                for (int k = g * per; k < (g + 1) * per; k++) {                                            \
                    const uint8x16_t raw = vld1q_u8(w + (size_t)k * 16);                                   \
                    const int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(raw, nib));                          \
                    const int8x16_t hi = vreinterpretq_s8_u8(vshrq_n_u8(raw, 4));                          \
                    for (int j = 0; j < t; j++) {                                                          \
                        const size_t kb = (size_t)j * nb + k;                                              \
                        const int8_t *q = a->qp + kb * KT_QBLOCK;                                          \
                        int32x4_t s = DOT(DOT(vdupq_n_s32(0), lo, vld1q_s8(q)), hi, vld1q_s8(q + 16));     \
                        gv[j] = vfmaq_n_f32(gv[j], vcvtq_f32_s32(s), a->d[kb]);                            \
                        xsum[j] += a->sum[kb];                                                             \
                    }                                                                                      \
                }                                                                                          \
                const size_t i = (size_t)r * groups + g;                                                   \
                const float sc = kt_scale_at(l->dtype, l->scales, i), bi = kt_scale_at(l->dtype, l->biases, i); \
                for (int j = 0; j < t; j++) acc[j] = vfmaq_n_f32(acc[j], gv[j], sc), bias[j] += bi * xsum[j]; \
            }                                                                                              \
            for (int j = 0; j < t; j++) y[(size_t)j * ldy + r] = vaddvq_f32(acc[j]) + bias[j];             \
        }                                                                                                  \
    }
Q4_I8_GEMM(q4_i8_gemm, , dot16_plain)
Q4_I8_GEMM(q4_i8_gemm_sdot, DOTPROD, dot16_sdot)

/* ---- the prompt, rows repacked: one lane per row (as matvec_avx2.c) ----
 * Up to 32 rows go in halves of 16, each four blocks of 4 rows: lane i of
 * a block's register holds row i, step s being bytes 4s..4s+3 of each row
 * (4 even elements in the low nibbles, 4 odd in the high ones). sdot by
 * lane (vdotq_laneq_s32) takes the step's 4 activation bytes from one lane
 * of the block's even or odd half, loaded once per block for its 4 steps,
 * so nothing is broadcast. The tile is 4 row blocks x 2 tokens: 8 integer
 * sums, 8 float group sums, 4 activation registers and the step's 2 weight
 * registers of 32. Columns in chunks of 512 elements, as on AVX2; the
 * scratch is laid out as there (kt_packed_scratch_bytes). */
enum { HALF_ROWS = 16, CHUNK_ELEMS = 512 };

/* 4 steps of the 4 rows ROW[i] from byte S0 * 4 on, transposed: register
 * s holds step s0 + s of every row; low and high nibbles into P at
 * P[((s0 + s) * 4 + RB) * 2] and the next. */
static void pack_rows4(const uint8_t *const *row, int steps, int rb, int8x16_t *p) {
    const uint8x16_t nib = vdupq_n_u8(15);
    for (int s0 = 0; s0 < steps; s0 += 4) {
        const int32x4x2_t a = vtrnq_s32(vreinterpretq_s32_u8(vld1q_u8(row[0] + (size_t)s0 * 4)),
                                        vreinterpretq_s32_u8(vld1q_u8(row[1] + (size_t)s0 * 4)));
        const int32x4x2_t b = vtrnq_s32(vreinterpretq_s32_u8(vld1q_u8(row[2] + (size_t)s0 * 4)),
                                        vreinterpretq_s32_u8(vld1q_u8(row[3] + (size_t)s0 * 4)));
        const int32x4_t x[4] = {vcombine_s32(vget_low_s32(a.val[0]), vget_low_s32(b.val[0])),
                                vcombine_s32(vget_low_s32(a.val[1]), vget_low_s32(b.val[1])),
                                vcombine_s32(vget_high_s32(a.val[0]), vget_high_s32(b.val[0])),
                                vcombine_s32(vget_high_s32(a.val[1]), vget_high_s32(b.val[1]))};
        for (int s = 0; s < 4; s++) {
            const uint8x16_t v = vreinterpretq_u8_s32(x[s]);
            int8x16_t *to = p + ((size_t)(s0 + s) * 4 + rb) * 2;
            to[0] = vreinterpretq_s8_u8(vandq_u8(v, nib));
            to[1] = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));
        }
    }
}

/* Step K of block B for the 4 row blocks and both tokens (K a constant:
 * the lane of the activations). */
#define PACKED_STEP(K)                                                                                     \
    _Pragma("GCC unroll 4") for (int rb = 0; rb < 4; rb++) {                                               \
        const int8x16_t lo = ps[((K) * 4 + rb) * 2], hi = ps[((K) * 4 + rb) * 2 + 1];                      \
        i0[rb] = vdotq_laneq_s32(vdotq_laneq_s32(i0[rb], lo, e0, K), hi, o0, K);                          \
        i1[rb] = vdotq_laneq_s32(vdotq_laneq_s32(i1[rb], lo, e1, K), hi, o1, K);                          \
    }

DOTPROD static void q4_i8_packed_run(const kt_linear *l, int r0, int r1, const kt_qact *a, int t, float *y,
                                     size_t ldy, void *scratch) {
    const int gs = l->group_size, groups = l->in / gs, steps = l->in / 8, per = gs / KT_QBLOCK;
    const int nb = l->in / KT_QBLOCK, chunk = gs >= CHUNK_ELEMS ? 1 : CHUNK_ELEMS / gs;
    const size_t stride = (size_t)l->in / 2;
    int8x16_t *p = (int8x16_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    float *sc = (float *)(p + (size_t)steps * 8), *bi = sc + (size_t)groups * HALF_ROWS;
    float *accb = bi + (size_t)groups * HALF_ROWS, *gs_all = accb + ((size_t)t + 1) / 2 * 2 * HALF_ROWS;
    for (int j = 0; j < t; j++) kt_group_sums(a->sum + (size_t)j * nb, gs, groups, gs_all + (size_t)j * groups);
    for (int h0 = r0; h0 < r1; h0 += HALF_ROWS) {
        const int rows = r1 - h0 < HALF_ROWS ? r1 - h0 : HALF_ROWS;
        /* lane i of block rb reads row h0 + 4 rb + i; missing rows repeat row h0, never stored */
        for (int rb = 0; rb < 4; rb++) {
            const uint8_t *row[4];
            for (int i = 0; i < 4; i++) row[i] = l->w + (size_t)(h0 + (rb * 4 + i < rows ? rb * 4 + i : 0)) * stride;
            pack_rows4(row, steps, rb, p);
        }
        for (int g = 0; g < groups; g++)
            for (int i = 0; i < HALF_ROWS; i++) {
                const size_t gi = (size_t)(h0 + (i < rows ? i : 0)) * groups + g;
                sc[(size_t)g * HALF_ROWS + i] = kt_scale_at(l->dtype, l->scales, gi);
                bi[(size_t)g * HALF_ROWS + i] = kt_scale_at(l->dtype, l->biases, gi);
            }
        for (int g0 = 0; g0 < groups; g0 += chunk) {
            const int g1 = g0 + chunk < groups ? g0 + chunk : groups;
            for (int j0 = 0; j0 < t; j0 += 2) {
                /* two tokens per pass (a last odd one goes twice) */
                const int j1 = j0 + 1 < t ? j0 + 1 : j0;
                const int8_t *q0 = a->qp + (size_t)j0 * l->in, *q1 = a->qp + (size_t)j1 * l->in;
                const float *d0 = a->d + (size_t)j0 * nb, *d1 = a->d + (size_t)j1 * nb;
                float *ab = accb + (size_t)j0 * HALF_ROWS; /* token u, block rb: ab + (4u + rb) * 4 */
                if (g0 == 0) memset(ab, 0, 2 * HALF_ROWS * sizeof *ab);
                for (int g = g0; g < g1; g++) {
                    float32x4_t f0[4], f1[4];
                    for (int rb = 0; rb < 4; rb++) f0[rb] = f1[rb] = vdupq_n_f32(0);
                    for (int b = g * per; b < (g + 1) * per; b++) {
                        int32x4_t i0[4], i1[4];
                        for (int rb = 0; rb < 4; rb++) i0[rb] = i1[rb] = vdupq_n_s32(0);
                        const int8x16_t *ps = p + (size_t)b * 32;
                        const int8x16_t e0 = vld1q_s8(q0 + (size_t)b * KT_QBLOCK), o0 = vld1q_s8(q0 + (size_t)b * KT_QBLOCK + 16);
                        const int8x16_t e1 = vld1q_s8(q1 + (size_t)b * KT_QBLOCK), o1 = vld1q_s8(q1 + (size_t)b * KT_QBLOCK + 16);
                        PACKED_STEP(0)
                        PACKED_STEP(1)
                        PACKED_STEP(2)
                        PACKED_STEP(3)
                        for (int rb = 0; rb < 4; rb++) {
                            f0[rb] = vfmaq_n_f32(f0[rb], vcvtq_f32_s32(i0[rb]), d0[b]);
                            f1[rb] = vfmaq_n_f32(f1[rb], vcvtq_f32_s32(i1[rb]), d1[b]);
                        }
                    }
                    const float x0 = gs_all[(size_t)j0 * groups + g], x1 = gs_all[(size_t)j1 * groups + g];
                    for (int rb = 0; rb < 4; rb++) {
                        const float32x4_t sv = vld1q_f32(sc + (size_t)g * HALF_ROWS + rb * 4);
                        const float32x4_t bv = vld1q_f32(bi + (size_t)g * HALF_ROWS + rb * 4);
                        float *a0 = ab + rb * 4, *a1 = ab + HALF_ROWS + rb * 4;
                        vst1q_f32(a0, vfmaq_n_f32(vfmaq_f32(vld1q_f32(a0), f0[rb], sv), bv, x0));
                        vst1q_f32(a1, vfmaq_n_f32(vfmaq_f32(vld1q_f32(a1), f1[rb], sv), bv, x1));
                    }
                }
            }
        }
        for (int j = 0; j < t; j++) memcpy(y + (size_t)j * ldy + h0, accb + (size_t)j * HALF_ROWS, (size_t)rows * sizeof *y);
    }
}

/* The matrices kt_packed_ok accepts (kernels.h), else 0. */
static int q4_i8_packed_sdot(const kt_linear *l, int r0, int r1, const kt_qact *a, int t, float *y, size_t ldy,
                             void *scratch) {
    if (!kt_packed_ok(l, r0, r1)) return 0;
    q4_i8_packed_run(l, r0, r1, a, t, y, ldy, scratch);
    return 1;
}

const kt_matvec_kernels_t *kt_kernels_neon_base(void) {
    static const kt_matvec_kernels_t table = {"neon", q4_rows, bf16_rows, q4_row, dots, q4_i8_rows, q8_i8_rows, q4_i8_gemm, NULL,
                                              dots_2x4, NULL};
    return &table;
}

static int have_dotprod(void) {
#if defined(__APPLE__)
    int v = 0;
    size_t n = sizeof v;
    return sysctlbyname("hw.optional.arm.FEAT_DotProd", &v, &n, NULL, 0) == 0 && v;
#elif defined(__linux__)
    return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#else
    return 0;
#endif
}

/* The same with the dotprod extension's sdot, where the CPU has it. */
const kt_matvec_kernels_t *kt_kernels_neon(void) {
    static const kt_matvec_kernels_t table = {"neon-dotprod", q4_rows, bf16_rows, q4_row, dots, q4_i8_rows_sdot,
                                              q8_i8_rows_sdot, q4_i8_gemm_sdot, q4_i8_packed_sdot, dots_2x4, NULL};
    return have_dotprod() ? &table : kt_kernels_neon_base();
}

#else
const kt_matvec_kernels_t *kt_kernels_neon(void) { return NULL; }
const kt_matvec_kernels_t *kt_kernels_neon_base(void) { return NULL; }
#endif
