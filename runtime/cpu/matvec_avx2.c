/* matvec_avx2.c - the matrix kernels in AVX2 + FMA (x86-64, chosen at run
 * time). Each computes what the scalar reference in matvec.c computes:
 * the same group sums in float lanes (agreement to rounding), and the row
 * dequantization with the reference's two roundings (bit for bit).
 */
#include "kernels.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#include <cpuid.h>

#define AVX2 __attribute__((target("avx2,fma")))

/* Bytes ahead of the 4-bit rows to prefetch: the hardware prefetcher alone
 * leaves the kernel waiting on memory (bench/matvec_bench.c measures it). */
enum { PREFETCH = 2048 };

AVX2 static float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

/* Rows R and R+1 at once: each x vector loaded serves both rows, and four
 * independent accumulators keep the FMA units busy instead of waiting on one
 * dependency chain. The scale multiplies the group's dot product as a vector
 * (one horizontal sum per row, not per group); the bias term b * sum(x_g) is
 * summed apart. GS and SD are constants where inlined (see q4_pair). */
__attribute__((target("avx2,fma"), always_inline)) static inline void
q4_pair_body(const kt_linear *l, int r, const float *xe, const float *xo, const float *xsum, float *y, const int gs,
             const kt_dtype sd) {
    const int groups = l->in / gs;
    const uint8_t *w0 = l->w + (size_t)r * l->in / 2, *w1 = w0 + l->in / 2;
    const __m256i nib = _mm256_set1_epi32(15);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    float bias0 = 0, bias1 = 0;
    for (int g = 0; g < groups; g++) {
        __m256 d0a = _mm256_setzero_ps(), d0b = _mm256_setzero_ps();
        __m256 d1a = _mm256_setzero_ps(), d1b = _mm256_setzero_ps();
        const uint8_t *p0 = w0 + (size_t)g * gs / 2, *p1 = w1 + (size_t)g * gs / 2;
        const float *e = xe + (size_t)g * gs / 2, *o = xo + (size_t)g * gs / 2;
        _mm_prefetch((const char *)(p0 + PREFETCH), _MM_HINT_T0);
        _mm_prefetch((const char *)(p1 + PREFETCH), _MM_HINT_T0);
        for (int k = 0; k < gs / 2; k += 8) {
            __m256 ev = _mm256_loadu_ps(e + k), ov = _mm256_loadu_ps(o + k);
            __m256i v0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p0 + k)));
            __m256i v1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p1 + k)));
            d0a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v0, nib)), ev, d0a);
            d0b = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v0, 4)), ov, d0b);
            d1a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v1, nib)), ev, d1a);
            d1b = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v1, 4)), ov, d1b);
        }
        const size_t i0 = (size_t)r * groups + g, i1 = i0 + (size_t)groups;
        acc0 = _mm256_fmadd_ps(_mm256_add_ps(d0a, d0b), _mm256_set1_ps(kt_scale_at(sd, l->scales, i0)), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_add_ps(d1a, d1b), _mm256_set1_ps(kt_scale_at(sd, l->scales, i1)), acc1);
        bias0 += kt_scale_at(sd, l->biases, i0) * xsum[g];
        bias1 += kt_scale_at(sd, l->biases, i1) * xsum[g];
    }
    y[r] = hsum8(acc0) + bias0;
    y[r + 1] = hsum8(acc1) + bias1;
}

/* The common cases with constants, so the inner loop unrolls and the scale
 * load is inline (twice the speed of the general body, measured). */
AVX2 static void q4_pair(const kt_linear *l, int r, const float *xe, const float *xo, const float *xsum, float *y) {
    if (l->dtype != KT_BF16) q4_pair_body(l, r, xe, xo, xsum, y, l->group_size, l->dtype);
    else if (l->group_size == 64) q4_pair_body(l, r, xe, xo, xsum, y, 64, KT_BF16);
    else if (l->group_size == 128) q4_pair_body(l, r, xe, xo, xsum, y, 128, KT_BF16);
    else if (l->group_size == 32) q4_pair_body(l, r, xe, xo, xsum, y, 32, KT_BF16);
    else q4_pair_body(l, r, xe, xo, xsum, y, l->group_size, KT_BF16);
}

/* One row: the same sums as q4_pair_body (for an odd row count). */
AVX2 static float q4_one(const kt_linear *l, int r, const float *xe, const float *xo, const float *xsum) {
    const int gs = l->group_size, groups = l->in / gs;
    const uint8_t *w = l->w + (size_t)r * l->in / 2;
    const __m256i nib = _mm256_set1_epi32(15);
    __m256 acc = _mm256_setzero_ps();
    float bias = 0;
    for (int g = 0; g < groups; g++) {
        __m256 da = _mm256_setzero_ps(), db = _mm256_setzero_ps();
        const uint8_t *p = w + (size_t)g * gs / 2;
        const float *e = xe + (size_t)g * gs / 2, *o = xo + (size_t)g * gs / 2;
        for (int k = 0; k < gs / 2; k += 8) {
            __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + k)));
            da = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v, nib)), _mm256_loadu_ps(e + k), da);
            db = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4)), _mm256_loadu_ps(o + k), db);
        }
        const size_t i = (size_t)r * groups + g;
        acc = _mm256_fmadd_ps(_mm256_add_ps(da, db), _mm256_set1_ps(kt_scale_at(l->dtype, l->scales, i)), acc);
        bias += kt_scale_at(l->dtype, l->biases, i) * xsum[g];
    }
    return hsum8(acc) + bias;
}

AVX2 static void q4_rows(const kt_linear *l, int r0, int r1, const float *xe, const float *xo, const float *xsum,
                         float *y) {
    int r = r0;
    for (; r + 2 <= r1; r += 2) q4_pair(l, r, xe, xo, xsum, y);
    if (r < r1) y[r] = q4_one(l, r, xe, xo, xsum);
}

AVX2 static void bf16_rows(const kt_linear *l, int r0, int r1, const float *x, float *y) {
    for (int r = r0; r < r1; r++) {
        const uint16_t *w = (const uint16_t *)(l->w + (size_t)r * l->in * 2);
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
        int i = 0;
        for (; i + 16 <= l->in; i += 16) {
            __m256i a = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + i)));
            __m256i b = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + i + 8)));
            acc0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(a, 16)), _mm256_loadu_ps(x + i), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(b, 16)), _mm256_loadu_ps(x + i + 8), acc1);
        }
        y[r] = kt_bf16_dot_tail(hsum8(_mm256_add_ps(acc0, acc1)), w, x, i, l->in);
    }
}

/* Nibbles to bytes in element order (low nibble first), 16 elements per
 * 8 bytes; then s * code + b with the reference's two roundings. */
AVX2 static void q4_row(const kt_linear *l, int r, float *out) {
    const int gs = l->group_size, groups = l->in / gs;
    const uint8_t *w = l->w + (size_t)r * l->in / 2;
    const __m128i nib = _mm_set1_epi8(15);
    for (int g = 0; g < groups; g++) {
        const size_t i = (size_t)r * groups + g;
        const __m256 s = _mm256_set1_ps(kt_scale_at(l->dtype, l->scales, i));
        const __m256 b = _mm256_set1_ps(kt_scale_at(l->dtype, l->biases, i));
        for (int k = 0; k < gs / 2; k += 8) {
            __m128i v = _mm_loadl_epi64((const __m128i *)(w + (size_t)g * gs / 2 + k));
            __m128i codes = _mm_unpacklo_epi8(_mm_and_si128(v, nib), _mm_and_si128(_mm_srli_epi16(v, 4), nib));
            __m256 c0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(codes));
            __m256 c1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(codes, 8)));
            float *o = out + (size_t)g * gs + 2 * k;
            _mm256_storeu_ps(o, _mm256_add_ps(_mm256_mul_ps(c0, s), b));
            _mm256_storeu_ps(o + 8, _mm256_add_ps(_mm256_mul_ps(c1, s), b));
        }
    }
}

/* Four vectors at a time: each loaded w serves four products. */
AVX2 static void dots(const float *w, const float *x, size_t ldx, int t, int n, float *out) {
    int k = 0;
    for (; k + 4 <= t; k += 4) {
        const float *x0 = x + (size_t)k * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx, *x3 = x2 + ldx;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        int i = 0;
        for (; i + 8 <= n; i += 8) {
            __m256 wv = _mm256_loadu_ps(w + i);
            a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x0 + i), a0);
            a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x1 + i), a1);
            a2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x2 + i), a2);
            a3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x3 + i), a3);
        }
        float s0 = hsum8(a0), s1 = hsum8(a1), s2 = hsum8(a2), s3 = hsum8(a3);
        for (; i < n; i++) s0 += w[i] * x0[i], s1 += w[i] * x1[i], s2 += w[i] * x2[i], s3 += w[i] * x3[i];
        out[k] = s0, out[k + 1] = s1, out[k + 2] = s2, out[k + 3] = s3;
    }
    for (; k < t; k++) {
        const float *xk = x + (size_t)k * ldx;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        int i = 0;
        for (; i + 16 <= n; i += 16) {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(xk + i), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(xk + i + 8), a1);
        }
        float s = hsum8(_mm256_add_ps(a0, a1));
        for (; i < n; i++) s += w[i] * xk[i];
        out[k] = s;
    }
}

/* Two rows by four vectors: 8 accumulators, as many as the two FMA units
 * need to hide their latency, and 6 loads per 8 FMAs (dots: 5 per 4). */
AVX2 static void dots_2x4(const float *w, size_t ldw, const float *x, size_t ldx, int n, float *out, size_t ldo) {
    const float *w0 = w, *w1 = w + ldw, *xk[4] = {x, x + ldx, x + 2 * ldx, x + 3 * ldx};
    __m256 a0[4], a1[4];
    for (int k = 0; k < 4; k++) a0[k] = a1[k] = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v0 = _mm256_loadu_ps(w0 + i), v1 = _mm256_loadu_ps(w1 + i);
        _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
            const __m256 xv = _mm256_loadu_ps(xk[k] + i);
            a0[k] = _mm256_fmadd_ps(v0, xv, a0[k]);
            a1[k] = _mm256_fmadd_ps(v1, xv, a1[k]);
        }
    }
    for (int k = 0; k < 4; k++) {
        float s0 = hsum8(a0[k]), s1 = hsum8(a1[k]);
        for (int j = i; j < n; j++) s0 += w0[j] * xk[k][j], s1 += w1[j] * xk[k][j];
        out[(size_t)k * ldo] = s0, out[(size_t)k * ldo + 1] = s1;
    }
}

/* ---- integer kernels: codes (u8) times the quantized activations (s8) ----
 *
 * Per block of 32: the 16 bytes of a 4-bit row hold the block's even
 * elements in their low nibbles and the odd ones in their high nibbles, so
 * [low nibbles | high nibbles] meets the activations' paired order (qp) in
 * one 256-bit register. vpmaddubsw multiplies unsigned by signed bytes and
 * adds neighbours into 16-bit lanes (15 * 127 * 2 fits), vpmaddwd by ones
 * widens to 32-bit sums; AVX-VNNI's vpdpbusd does both at once. The block's
 * integer sums times its d accumulate per group, and the group's scale
 * multiplies them once. Two rows share every activation load. */

#define DOT_U8S8(NAME, TARGET, BODY)                                                                     \
    __attribute__((target(TARGET), always_inline)) static inline __m256i NAME(__m256i c, __m256i x) { \
        BODY                                                                                            \
    }
DOT_U8S8(dot_maddubs, "avx2,fma", return _mm256_madd_epi16(_mm256_maddubs_epi16(c, x), _mm256_set1_epi16(1));)
DOT_U8S8(dot_vnni, "avx2,fma,avxvnni", return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), c, x);)

__attribute__((target("avx2,fma"), always_inline)) static inline __m256i q4_block(const uint8_t *p) {
    const __m128i raw = _mm_loadu_si128((const __m128i *)p), nib = _mm_set1_epi8(15);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), nib), _mm_and_si128(raw, nib));
}

#define Q4_I8_ROWS(NAME, TARGET, DOT)                                                                       \
    __attribute__((target(TARGET))) static void NAME(const kt_linear *l, int r0, int r1, const kt_qact *a,  \
                                                     float *y) {                                           \
        const int gs = l->group_size, groups = l->in / gs, per = gs / KT_QBLOCK;                            \
        for (int r = r0; r < r1; r += 2) {                                                                 \
            const int two = r + 1 < r1;                                                                    \
            const uint8_t *w0 = l->w + (size_t)r * l->in / 2, *w1 = two ? w0 + l->in / 2 : w0;             \
            __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();                                 \
            float bias0 = 0, bias1 = 0;                                                                    \
            for (int g = 0; g < groups; g++) {                                                             \
                __m256 g0 = _mm256_setzero_ps(), g1 = _mm256_setzero_ps();                                 \
                float xsum = 0;                                                                            \
                _mm_prefetch((const char *)(w0 + (size_t)g * gs / 2 + PREFETCH), _MM_HINT_T0);             \
                _mm_prefetch((const char *)(w1 + (size_t)g * gs / 2 + PREFETCH), _MM_HINT_T0);             \
                for (int k = g * per; k < (g + 1) * per; k++) {                                            \
                    const __m256i x = _mm256_loadu_si256((const __m256i *)(a->qp + (size_t)k * KT_QBLOCK)); \
                    const __m256 d = _mm256_set1_ps(a->d[k]);                                              \
                    g0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(DOT(q4_block(w0 + (size_t)k * 16), x)), d, g0); \
                    g1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(DOT(q4_block(w1 + (size_t)k * 16), x)), d, g1); \
                    xsum += a->sum[k];                                                                     \
                }                                                                                          \
                const size_t i0 = (size_t)r * groups + g, i1 = two ? i0 + (size_t)groups : i0;             \
                acc0 = _mm256_fmadd_ps(g0, _mm256_set1_ps(kt_scale_at(l->dtype, l->scales, i0)), acc0);    \
                acc1 = _mm256_fmadd_ps(g1, _mm256_set1_ps(kt_scale_at(l->dtype, l->scales, i1)), acc1);    \
                bias0 += kt_scale_at(l->dtype, l->biases, i0) * xsum;                                      \
                bias1 += kt_scale_at(l->dtype, l->biases, i1) * xsum;                                      \
            }                                                                                              \
            y[r] = hsum8(acc0) + bias0;                                                                    \
            if (two) y[r + 1] = hsum8(acc1) + bias1;                                                       \
        }                                                                                                  \
    }
Q4_I8_ROWS(q4_i8_rows, "avx2,fma", dot_maddubs)
Q4_I8_ROWS(q4_i8_rows_vnni, "avx2,fma,avxvnni", dot_vnni)

/* ---- 4 bits, four rows at a time (decode), as in matvec_avx512.c ----
 * 32 bytes of a row are 64 elements, two blocks: their low nibbles are the
 * even elements of both blocks, the high nibbles the odd ones, and x's
 * paired layout is rearranged once per 64 elements into the same orders
 * (XE, XO) for the four rows. Lane j of the dot products sums 8 elements of
 * block j / 4; the block's d and the group's s multiply the lane. Scales and
 * biases are read 8 groups at a time, the bias term as a dot product with
 * the groups' float sums of x. */
enum { ROWS4_PREFETCH = 8192, ROWS8_PREFETCH = 8192 };

/* N (<= 8) scales or biases from I on, as float; lanes past N are 0. */
__attribute__((target("avx2,fma,f16c"), always_inline)) static inline __m256 params8(kt_dtype dt, const uint8_t *base,
                                                                                    size_t i, int n) {
    const int size = dt == KT_F32 ? 4 : 2;
    uint8_t tmp[32] = {0};
    const uint8_t *p = base + i * size;
    if (n < 8) memcpy(tmp, p, (size_t)n * size), p = tmp; /* never read past the last group */
    if (dt == KT_F32) return _mm256_loadu_ps((const float *)p);
    const __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (dt == KT_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

__attribute__((target("avx2,fma"), always_inline)) static inline __m256i dot2_maddubs(__m256i lo, __m256i xe, __m256i hi,
                                                                                     __m256i xo) {
    /* pairs of u8 x s8 sum to at most 2 * 15 * 128 per 16-bit lane: no saturation */
    const __m256i s = _mm256_add_epi16(_mm256_maddubs_epi16(lo, xe), _mm256_maddubs_epi16(hi, xo));
    return _mm256_madd_epi16(s, _mm256_set1_epi16(1));
}
__attribute__((target("avx2,fma,avxvnni"), always_inline)) static inline __m256i dot2_vnni(__m256i lo, __m256i xe,
                                                                                          __m256i hi, __m256i xo) {
    return _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), lo, xe), hi, xo);
}

#define Q4_I8_ROWS4(NAME, TARGET, DOT2)                                                                     \
    __attribute__((target(TARGET))) static void NAME(const kt_linear *l, int r0, int r1, const kt_qact *a,  \
                                                     float *y) {                                           \
        const int gs = l->group_size, groups = l->in / gs, shift = __builtin_ctz(gs);                      \
        const int chunks = (l->in + 63) / 64;                                                              \
        float gsum[KT_GSUM_MAX];                                                                           \
        kt_group_sums(a->sum, gs, groups, gsum);                                                           \
        const __m256i nib = _mm256_set1_epi8(15);                                                          \
        const __m256i lane8 = _mm256_setr_epi32(0, 8, 16, 24, 32, 40, 48, 56);                             \
        const size_t stride = (size_t)l->in / 2;                                                           \
        for (int r = r0; r < r1; r += 4) {                                                                 \
            const uint8_t *w[4];                                                                           \
            _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) w[i] = l->w + (size_t)(r + i < r1 ? r + i : r) * stride; \
            __m256 acc[4], bacc[4];                                                                        \
            _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) acc[i] = bacc[i] = _mm256_setzero_ps();    \
            for (int g0 = 0; g0 < groups; g0 += 8) {                                                       \
                const int ng = groups - g0 < 8 ? groups - g0 : 8;                                          \
                float xs8[8] = {0};                                                                        \
                memcpy(xs8, gsum + g0, (size_t)ng * sizeof *xs8);                                          \
                const __m256 xs = _mm256_loadu_ps(xs8);                                                    \
                __m256 sv[4];                                                                              \
                _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {                                      \
                    const size_t gi = (size_t)(r + i < r1 ? r + i : r) * groups + g0;                      \
                    sv[i] = params8(l->dtype, l->scales, gi, ng);                                          \
                    bacc[i] = _mm256_fmadd_ps(params8(l->dtype, l->biases, gi, ng), xs, bacc[i]);         \
                }                                                                                          \
                const int e1 = (g0 + ng) * gs, c1 = (e1 + 63) / 64 < chunks ? (e1 + 63) / 64 : chunks;     \
                for (int c = g0 * gs / 64; c < c1; c++) {                                                  \
                    const int two = l->in - c * 64 >= 64; /* else one block, the row's last */             \
                    const int8_t *q = a->qp + (size_t)c * 64;                                              \
                    const __m256i x0 = _mm256_loadu_si256((const __m256i *)q);                             \
                    const __m256i x1 = two ? _mm256_loadu_si256((const __m256i *)(q + 32)) : _mm256_setzero_si256(); \
                    const __m256i xe = _mm256_permute2x128_si256(x0, x1, 0x20);                            \
                    const __m256i xo = _mm256_permute2x128_si256(x0, x1, 0x31);                            \
                    const __m256 dv = _mm256_set_m128(_mm_set1_ps(two ? a->d[2 * c + 1] : 0.0f), _mm_set1_ps(a->d[2 * c])); \
                    const __m256i gidx = _mm256_sub_epi32(                                                 \
                        _mm256_srli_epi32(_mm256_add_epi32(lane8, _mm256_set1_epi32(c * 64)), shift), _mm256_set1_epi32(g0)); \
                    _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {                                  \
                        const uint8_t *p = w[i] + (size_t)c * 32;                                          \
                        _mm_prefetch((const char *)(p + ROWS4_PREFETCH), _MM_HINT_T0);                     \
                        const __m256i raw = two ? _mm256_loadu_si256((const __m256i *)p)                   \
                                                : _mm256_zextsi128_si256(_mm_loadu_si128((const __m128i *)p)); \
                        const __m256i lo = _mm256_and_si256(raw, nib);                                     \
                        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), nib);               \
                        const __m256 ds = _mm256_mul_ps(dv, _mm256_permutevar8x32_ps(sv[i], gidx));        \
                        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(DOT2(lo, xe, hi, xo)), ds, acc[i]);    \
                    }                                                                                      \
                }                                                                                          \
            }                                                                                              \
            for (int i = 0; i < 4 && r + i < r1; i++) y[r + i] = hsum8(acc[i]) + hsum8(bacc[i]);           \
        }                                                                                                  \
    }
Q4_I8_ROWS4(q4_i8_rows4, "avx2,fma,f16c", dot2_maddubs)
Q4_I8_ROWS4(q4_i8_rows4_vnni, "avx2,fma,f16c,avxvnni", dot2_vnni)

static void q4_i8_rows_any(const kt_linear *l, int r0, int r1, const kt_qact *a, float *y) {
    if (kt_rows4_ok(l)) q4_i8_rows4(l, r0, r1, a, y);
    else q4_i8_rows(l, r0, r1, a, y);
}
static void q4_i8_rows_any_vnni(const kt_linear *l, int r0, int r1, const kt_qact *a, float *y) {
    if (kt_rows4_ok(l)) q4_i8_rows4_vnni(l, r0, r1, a, y);
    else q4_i8_rows_vnni(l, r0, r1, a, y);
}

/* The prompt: one row, up to four token vectors; each 4-bit block is loaded
 * and unpacked once for all of them (the activations of four tokens stay in
 * the cache while the row streams). */
#define Q4_I8_GEMM(NAME, TARGET, DOT)                                                                       \
    __attribute__((target(TARGET))) static void NAME(const kt_linear *l, int r0, int r1, const kt_qact *a,  \
                                                     int t, float *y, size_t ldy) {                         \
        const int gs = l->group_size, groups = l->in / gs, per = gs / KT_QBLOCK, nb = l->in / KT_QBLOCK;    \
        for (int r = r0; r < r1; r++) {                                                                    \
            const uint8_t *w = l->w + (size_t)r * l->in / 2;                                               \
            __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()}; \
            float bias[4] = {0, 0, 0, 0};                                                                  \
            for (int g = 0; g < groups; g++) {                                                             \
                __m256 gv[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()}; \
                float xsum[4] = {0, 0, 0, 0};                                                              \
                _mm_prefetch((const char *)(w + (size_t)g * gs / 2 + PREFETCH), _MM_HINT_T0);              \
                for (int k = g * per; k < (g + 1) * per; k++) {                                            \
                    const __m256i c = q4_block(w + (size_t)k * 16);                                        \
                    for (int j = 0; j < t; j++) {                                                          \
                        const size_t kb = (size_t)j * nb + k;                                              \
                        const __m256i x = _mm256_loadu_si256((const __m256i *)(a->qp + kb * KT_QBLOCK));   \
                        gv[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(DOT(c, x)), _mm256_set1_ps(a->d[kb]), gv[j]); \
                        xsum[j] += a->sum[kb];                                                             \
                    }                                                                                      \
                }                                                                                          \
                const size_t i = (size_t)r * groups + g;                                                   \
                const __m256 sc = _mm256_set1_ps(kt_scale_at(l->dtype, l->scales, i));                     \
                const float bi = kt_scale_at(l->dtype, l->biases, i);                                      \
                for (int j = 0; j < t; j++) acc[j] = _mm256_fmadd_ps(gv[j], sc, acc[j]), bias[j] += bi * xsum[j]; \
            }                                                                                              \
            for (int j = 0; j < t; j++) y[(size_t)j * ldy + r] = hsum8(acc[j]) + bias[j];                  \
        }                                                                                                  \
    }
Q4_I8_GEMM(q4_i8_gemm, "avx2,fma", dot_maddubs)
Q4_I8_GEMM(q4_i8_gemm_vnni, "avx2,fma,avxvnni", dot_vnni)

/* 8-bit codes reach 255: vpmaddubsw would saturate its 16-bit pair sums, so
 * without VNNI both operands widen to 16 bits for vpmaddwd. */
__attribute__((target("avx2,fma"), always_inline)) static inline __m256i dot8_widen(const uint8_t *p, const int8_t *q) {
    const __m256i c0 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p));
    const __m256i c1 = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(p + 16)));
    const __m256i x0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)q));
    const __m256i x1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(q + 16)));
    return _mm256_add_epi32(_mm256_madd_epi16(c0, x0), _mm256_madd_epi16(c1, x1));
}
__attribute__((target("avx2,fma,avxvnni"), always_inline)) static inline __m256i dot8_vnni(const uint8_t *p,
                                                                                         const int8_t *q) {
    return dot_vnni(_mm256_loadu_si256((const __m256i *)p), _mm256_loadu_si256((const __m256i *)q));
}

#define Q8_I8_ROWS(NAME, TARGET, DOT8)                                                                      \
    __attribute__((target(TARGET))) static void NAME(const kt_linear *l, int r0, int r1, const kt_qact *a,  \
                                                     float *y) {                                           \
        const int gs = l->group_size, groups = l->in / gs, per = gs / KT_QBLOCK;                            \
        for (int r = r0; r < r1; r++) {                                                                    \
            const uint8_t *w = l->w + (size_t)r * l->in;                                                   \
            __m256 acc = _mm256_setzero_ps();                                                              \
            float bias = 0;                                                                                \
            for (int g = 0; g < groups; g++) {                                                             \
                __m256 gv = _mm256_setzero_ps();                                                           \
                float xsum = 0;                                                                            \
                _mm_prefetch((const char *)(w + (size_t)g * gs + PREFETCH), _MM_HINT_T0);                  \
                for (int k = g * per; k < (g + 1) * per; k++) {                                            \
                    const __m256i s = DOT8(w + (size_t)k * KT_QBLOCK, a->q + (size_t)k * KT_QBLOCK);        \
                    gv = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(a->d[k]), gv);              \
                    xsum += a->sum[k];                                                                     \
                }                                                                                          \
                const size_t i = (size_t)r * groups + g;                                                   \
                acc = _mm256_fmadd_ps(gv, _mm256_set1_ps(kt_scale_at(l->dtype, l->scales, i)), acc);       \
                bias += kt_scale_at(l->dtype, l->biases, i) * xsum;                                        \
            }                                                                                              \
            y[r] = hsum8(acc) + bias;                                                                      \
        }                                                                                                  \
    }
Q8_I8_ROWS(q8_i8_rows, "avx2,fma", dot8_widen)
Q8_I8_ROWS(q8_i8_rows_vnni, "avx2,fma,avxvnni", dot8_vnni)

/* ---- the prompt, rows repacked: one lane per row (as matvec_avx512.c) ----
 * Up to 32 rows go in halves of 16, each two blocks of 8: register lane i
 * of a block holds row i, step s being bytes 4s..4s+3 of each row (8
 * elements: 4 even in the low nibbles, 4 odd in the high ones). A token's
 * activations for a step are two broadcast dwords (4 even, 4 odd values in
 * the paired layout).
 *
 * Without VNNI the products of a block of 32 stay in 16-bit lanes: each
 * vpmaddubsw adds two u8 x s8 products (at most 2 * 15 * 128 = 3840), and
 * the 8 of a block (4 steps, low and high nibbles) sum to at most 30720, so
 * they add with vpaddw and widen once per block (vpmaddwd by ones): one
 * multiply and one add per 32 multiply-adds, the instruction's throughput,
 * where widening every product costs three instructions. AVX-VNNI's
 * vpdpbusd accumulates into 32 bits directly.
 *
 * The register tile is 2 row blocks x 2 tokens: per step 4 weight registers
 * serve 8 products, 2 broadcasts each serve both blocks; 4 integer sums, 4
 * float group sums, the weights, the broadcasts and the constant fill the
 * 16 registers. The packed half (70 KiB at 4480 inputs) exceeds L1, so the
 * columns go in chunks of 512 elements (8 KiB of packed rows, held while
 * every token passes over them) and the row sums wait in memory between
 * chunks; SCRATCH (kt_packed_scratch_bytes) holds all of it. */
enum { HALF_ROWS = 16, CHUNK_ELEMS = 512 };

/* Steps s0..s0+7 of 8 rows: 8 registers of 8 dwords, row i in register i,
 * transposed so that register s holds step s0+s of every row. */
__attribute__((target("avx2"), always_inline)) static inline void transpose8(__m256i x[8]) {
    __m256i t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_epi32(x[i], x[i + 1]);     /* steps 0,1 | 4,5 of rows i, i+1 */
        t[i + 1] = _mm256_unpackhi_epi32(x[i], x[i + 1]); /* steps 2,3 | 6,7 */
    }
    for (int h = 0; h < 8; h += 4) {
        u[h] = _mm256_unpacklo_epi64(t[h], t[h + 2]);     /* step 0 | 4 of four rows */
        u[h + 1] = _mm256_unpackhi_epi64(t[h], t[h + 2]); /* step 1 | 5 */
        u[h + 2] = _mm256_unpacklo_epi64(t[h + 1], t[h + 3]);
        u[h + 3] = _mm256_unpackhi_epi64(t[h + 1], t[h + 3]);
    }
    for (int s = 0; s < 4; s++) {
        x[s] = _mm256_permute2x128_si256(u[s], u[s + 4], 0x20);
        x[s + 4] = _mm256_permute2x128_si256(u[s], u[s + 4], 0x31);
    }
}

/* STEPS steps (a multiple of 4) of the 8 rows ROW[i] into P: step s of
 * block RB at P[(s * 2 + RB) * 2] (low nibbles) and the next (high). */
__attribute__((target("avx2"))) static void pack_rows8(const uint8_t *const *row, int steps, int rb, __m256i *p) {
    const __m256i nib = _mm256_set1_epi8(15);
    for (int s0 = 0; s0 < steps; s0 += 8) {
        const int n = steps - s0 < 8 ? steps - s0 : 8;
        __m256i x[8];
        for (int i = 0; i < 8; i++)
            x[i] = n == 8 ? _mm256_loadu_si256((const __m256i *)(row[i] + (size_t)s0 * 4))
                          : _mm256_zextsi128_si256(_mm_loadu_si128((const __m128i *)(row[i] + (size_t)s0 * 4)));
        transpose8(x);
        for (int s = 0; s < n; s++) {
            __m256i *to = p + ((size_t)(s0 + s) * 2 + rb) * 2;
            to[0] = _mm256_and_si256(x[s], nib);
            to[1] = _mm256_and_si256(_mm256_srli_epi16(x[s], 4), nib);
        }
    }
}

/* The same from the copy interleaved by 8 rows (interleave.c), where step
 * s of the 8 rows is already one register, at SRC + kt_rows8_step_at(L, s). */
__attribute__((target("avx2"))) static void pack_interleaved(const kt_linear *l, const uint8_t *src, int steps, int rb,
                                                             __m256i *p) {
    const __m256i nib = _mm256_set1_epi8(15);
    for (int s = 0; s < steps; s++) {
        const __m256i x = _mm256_loadu_si256((const __m256i *)(src + kt_rows8_step_at(l, s)));
        __m256i *to = p + ((size_t)s * 2 + rb) * 2;
        to[0] = _mm256_and_si256(x, nib);
        to[1] = _mm256_and_si256(_mm256_srli_epi16(x, 4), nib);
    }
}

/* The two ways to sum a block: 16-bit partial sums widened at its end, or
 * VNNI's 32-bit ones. */
#define ACC_MADDUBS(acc, c, x) _mm256_add_epi16(acc, _mm256_maddubs_epi16(c, x))
#define END_MADDUBS(acc) _mm256_madd_epi16(acc, _mm256_set1_epi16(1))
#define ACC_VNNI(acc, c, x) _mm256_dpbusd_avx_epi32(acc, c, x)
#define END_VNNI(acc) (acc)

#define Q4_I8_PACKED(NAME, TARGET, ACC, END)                                                               \
    __attribute__((target(TARGET))) static void NAME(const kt_linear *l, int r0, int r1, const kt_qact *a, \
                                                     int t, float *y, size_t ldy, void *scratch) {         \
        const int gs = l->group_size, groups = l->in / gs, steps = l->in / 8, per = gs / KT_QBLOCK;        \
        const int nb = l->in / KT_QBLOCK, chunk = gs >= CHUNK_ELEMS ? 1 : CHUNK_ELEMS / gs;                \
        const size_t stride = (size_t)l->in / 2;                                                           \
        __m256i *p = (__m256i *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);                              \
        float *sc = (float *)(p + (size_t)steps * 4), *bi = sc + (size_t)groups * HALF_ROWS;               \
        float *accb = bi + (size_t)groups * HALF_ROWS, *gs_all = accb + ((size_t)t + 1) / 2 * 2 * HALF_ROWS; \
        for (int j = 0; j < t; j++) kt_group_sums(a->sum + (size_t)j * nb, gs, groups, gs_all + (size_t)j * groups); \
        for (int h0 = r0; h0 < r1; h0 += HALF_ROWS) {                                                      \
            const int rows = r1 - h0 < HALF_ROWS ? r1 - h0 : HALF_ROWS;                                    \
            /* lane i of block rb reads row h0 + 8 rb + i; missing rows repeat row h0, never stored */     \
            for (int rb = 0; rb < 2; rb++) {                                                               \
                const int first = h0 + rb * 8;                                                             \
                if (l->rows8 && first % 8 == 0 && first + 8 <= l->out / 8 * 8 && rb * 8 < rows) {          \
                    pack_interleaved(l, l->rows8 + (size_t)(first / 8) * kt_rows8_block_bytes(l), steps, rb, p); \
                    continue;                                                                              \
                }                                                                                          \
                const uint8_t *row[8];                                                                     \
                for (int i = 0; i < 8; i++) row[i] = l->w + (size_t)(h0 + (rb * 8 + i < rows ? rb * 8 + i : 0)) * stride; \
                pack_rows8(row, steps, rb, p);                                                             \
            }                                                                                              \
            for (int g = 0; g < groups; g++)                                                               \
                for (int i = 0; i < HALF_ROWS; i++) {                                                      \
                    const size_t gi = (size_t)(h0 + (i < rows ? i : 0)) * groups + g;                      \
                    sc[(size_t)g * HALF_ROWS + i] = kt_scale_at(l->dtype, l->scales, gi);                  \
                    bi[(size_t)g * HALF_ROWS + i] = kt_scale_at(l->dtype, l->biases, gi);                  \
                }                                                                                          \
            for (int g0 = 0; g0 < groups; g0 += chunk) {                                                   \
                const int g1 = g0 + chunk < groups ? g0 + chunk : groups;                                  \
                for (int j0 = 0; j0 < t; j0 += 2) {                                                        \
                    /* two tokens per pass (a last odd one goes twice) */                                  \
                    const int j1 = j0 + 1 < t ? j0 + 1 : j0;                                               \
                    const int8_t *q0 = a->qp + (size_t)j0 * l->in, *q1 = a->qp + (size_t)j1 * l->in;       \
                    const float *d0 = a->d + (size_t)j0 * nb, *d1 = a->d + (size_t)j1 * nb;                \
                    float *ab = accb + (size_t)j0 * HALF_ROWS; /* token u, block rb: ab + (2u + rb) * 8 */ \
                    if (g0 == 0)                                                                           \
                        for (int i = 0; i < 4; i++) _mm256_store_ps(ab + i * 8, _mm256_setzero_ps());      \
                    for (int g = g0; g < g1; g++) {                                                        \
                        __m256 f00 = _mm256_setzero_ps(), f01 = f00, f10 = f00, f11 = f00; /* f[rb][u] */  \
                        for (int b = g * per; b < (g + 1) * per; b++) {                                    \
                            __m256i i00 = _mm256_setzero_si256(), i01 = i00, i10 = i00, i11 = i00;         \
                            const __m256i *ps = p + (size_t)b * 16;                                        \
                            _Pragma("GCC unroll 1") for (int k = 0; k < 4; k++) {                          \
                                const __m256i lo0 = _mm256_load_si256(ps + k * 4), hi0 = _mm256_load_si256(ps + k * 4 + 1); \
                                const __m256i lo1 = _mm256_load_si256(ps + k * 4 + 2), hi1 = _mm256_load_si256(ps + k * 4 + 3); \
                                int32_t e, o;                                                              \
                                memcpy(&e, q0 + (size_t)b * KT_QBLOCK + 4 * k, 4);                         \
                                memcpy(&o, q0 + (size_t)b * KT_QBLOCK + 16 + 4 * k, 4);                    \
                                __m256i ev = _mm256_set1_epi32(e), ov = _mm256_set1_epi32(o);              \
                                i00 = ACC(ACC(i00, lo0, ev), hi0, ov);                                     \
                                i10 = ACC(ACC(i10, lo1, ev), hi1, ov);                                     \
                                memcpy(&e, q1 + (size_t)b * KT_QBLOCK + 4 * k, 4);                         \
                                memcpy(&o, q1 + (size_t)b * KT_QBLOCK + 16 + 4 * k, 4);                    \
                                ev = _mm256_set1_epi32(e), ov = _mm256_set1_epi32(o);                      \
                                i01 = ACC(ACC(i01, lo0, ev), hi0, ov);                                     \
                                i11 = ACC(ACC(i11, lo1, ev), hi1, ov);                                     \
                            }                                                                              \
                            const __m256 dv0 = _mm256_set1_ps(d0[b]), dv1 = _mm256_set1_ps(d1[b]);         \
                            f00 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(END(i00)), dv0, f00);                 \
                            f10 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(END(i10)), dv0, f10);                 \
                            f01 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(END(i01)), dv1, f01);                 \
                            f11 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(END(i11)), dv1, f11);                 \
                        }                                                                                  \
                        const __m256 s0 = _mm256_load_ps(sc + (size_t)g * HALF_ROWS), s1 = _mm256_load_ps(sc + (size_t)g * HALF_ROWS + 8); \
                        const __m256 b0 = _mm256_load_ps(bi + (size_t)g * HALF_ROWS), b1 = _mm256_load_ps(bi + (size_t)g * HALF_ROWS + 8); \
                        const __m256 x0 = _mm256_set1_ps(gs_all[(size_t)j0 * groups + g]);                 \
                        const __m256 x1 = _mm256_set1_ps(gs_all[(size_t)j1 * groups + g]);                 \
                        _mm256_store_ps(ab, _mm256_fmadd_ps(b0, x0, _mm256_fmadd_ps(f00, s0, _mm256_load_ps(ab)))); \
                        _mm256_store_ps(ab + 8, _mm256_fmadd_ps(b1, x0, _mm256_fmadd_ps(f10, s1, _mm256_load_ps(ab + 8)))); \
                        _mm256_store_ps(ab + 16, _mm256_fmadd_ps(b0, x1, _mm256_fmadd_ps(f01, s0, _mm256_load_ps(ab + 16)))); \
                        _mm256_store_ps(ab + 24, _mm256_fmadd_ps(b1, x1, _mm256_fmadd_ps(f11, s1, _mm256_load_ps(ab + 24)))); \
                    }                                                                                      \
                }                                                                                          \
            }                                                                                              \
            for (int j = 0; j < t; j++) memcpy(y + (size_t)j * ldy + h0, accb + (size_t)j * HALF_ROWS, (size_t)rows * sizeof *y); \
        }                                                                                                  \
    }
Q4_I8_PACKED(q4_i8_packed_run, "avx2,fma", ACC_MADDUBS, END_MADDUBS)
Q4_I8_PACKED(q4_i8_packed_run_vnni, "avx2,fma,avxvnni", ACC_VNNI, END_VNNI)

/* ---- decode from the copy interleaved by 8 rows (interleave.c) ----
 * A step's 32 bytes are 8 elements of each of 8 rows, lane i row i: its
 * low nibbles meet the token's 4 even activations of the step, its high
 * nibbles the 4 odd ones, each a broadcast dword of the paired layout (qp),
 * exactly as in the repacked prompt kernel above, whose 16-bit block sums
 * this shares. Two blocks of 8 rows share every broadcast. Lane i of the
 * sums is row i's, so the rows leave as one store each: no reduction
 * across lanes, no gather of scales (they are interleaved too, right after
 * each group's codes, so each block is read as one stream). Per step and
 * block: a load, three instructions for the nibbles, two multiplies and
 * two adds; the four-row kernel needs about 13 per 64 elements of a row,
 * this about 10. DT, the scales' dtype, is a constant in each instance. */
#define Q4_I8_ROWS8(NAME, TARGET, ACC, END)                                                                \
    __attribute__((target(TARGET), always_inline)) static inline void NAME##_as(                           \
        const kt_linear *l, int b0, int b1, const kt_qact *a, float *y, kt_dtype dt) {                     \
        const int gs = l->group_size, groups = l->in / gs, per = gs / KT_QBLOCK;                            \
        const size_t bb = kt_rows8_block_bytes(l), gb = kt_rows8_group_bytes(l);                            \
        const size_t sa = kt_rows8_scales_at(l, 0), ba = kt_rows8_biases_at(l, 0);                          \
        float gsum[KT_GSUM_MAX];                                                                           \
        kt_group_sums(a->sum, gs, groups, gsum);                                                           \
        const __m256i nib = _mm256_set1_epi8(15);                                                          \
        for (int b = b0; b < b1; b += 2) {                                                                 \
            const size_t next = b + 1 < b1 ? bb : 0; /* the second block, or the first again */           \
            const uint8_t *p = l->rows8 + (size_t)b * bb; /* group g of the first block */                \
            __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();                                 \
            for (int g = 0; g < groups; g++, p += gb) {                                                    \
                /* every cache line of both blocks' group, ROWS8_PREFETCH ahead */                         \
                for (size_t o = 0; o < gb; o += 64) {                                                      \
                    _mm_prefetch((const char *)(p + ROWS8_PREFETCH + o), _MM_HINT_T0);                     \
                    _mm_prefetch((const char *)(p + next + ROWS8_PREFETCH + o), _MM_HINT_T0);              \
                }                                                                                          \
                __m256 f0 = _mm256_setzero_ps(), f1 = _mm256_setzero_ps();                                 \
                for (int j = 0; j < per; j++) {                                                            \
                    const int k = g * per + j;                                                             \
                    const int8_t *q = a->qp + (size_t)k * KT_QBLOCK;                                       \
                    const uint8_t *c0 = p + (size_t)j * 128, *c1 = c0 + next;                              \
                    __m256i i0 = _mm256_setzero_si256(), i1 = i0;                                          \
                    _Pragma("GCC unroll 4") for (int st = 0; st < 4; st++) {                               \
                        int32_t e, o;                                                                      \
                        memcpy(&e, q + 4 * st, 4);                                                         \
                        memcpy(&o, q + 16 + 4 * st, 4);                                                    \
                        const __m256i ev = _mm256_set1_epi32(e), ov = _mm256_set1_epi32(o);                \
                        const __m256i r0 = _mm256_loadu_si256((const __m256i *)(c0 + st * 32));            \
                        const __m256i r1 = _mm256_loadu_si256((const __m256i *)(c1 + st * 32));            \
                        i0 = ACC(ACC(i0, _mm256_and_si256(r0, nib), ev), _mm256_and_si256(_mm256_srli_epi16(r0, 4), nib), ov); \
                        i1 = ACC(ACC(i1, _mm256_and_si256(r1, nib), ev), _mm256_and_si256(_mm256_srli_epi16(r1, 4), nib), ov); \
                    }                                                                                      \
                    const __m256 dv = _mm256_set1_ps(a->d[k]);                                             \
                    f0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(END(i0)), dv, f0);                             \
                    f1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(END(i1)), dv, f1);                             \
                }                                                                                          \
                const __m256 xs = _mm256_set1_ps(gsum[g]);                                                 \
                acc0 = _mm256_fmadd_ps(f0, params8(dt, p + sa, 0, 8), acc0);                               \
                acc1 = _mm256_fmadd_ps(f1, params8(dt, p + next + sa, 0, 8), acc1);                        \
                acc0 = _mm256_fmadd_ps(params8(dt, p + ba, 0, 8), xs, acc0);                               \
                acc1 = _mm256_fmadd_ps(params8(dt, p + next + ba, 0, 8), xs, acc1);                        \
            }                                                                                              \
            _mm256_storeu_ps(y + (size_t)b * 8, acc0);                                                     \
            if (next) _mm256_storeu_ps(y + (size_t)b * 8 + 8, acc1);                                       \
        }                                                                                                  \
    }                                                                                                      \
    /* the scales' dtype as a constant, so no test of it is left in the loop */                           \
    __attribute__((target(TARGET))) static void NAME(const kt_linear *l, int b0, int b1, const kt_qact *a, \
                                                     float *y) {                                           \
        if (l->dtype == KT_BF16) NAME##_as(l, b0, b1, a, y, KT_BF16);                                      \
        else NAME##_as(l, b0, b1, a, y, l->dtype);                                                         \
    }
Q4_I8_ROWS8(q4_i8_rows8, "avx2,fma,f16c", ACC_MADDUBS, END_MADDUBS)
Q4_I8_ROWS8(q4_i8_rows8_vnni, "avx2,fma,f16c,avxvnni", ACC_VNNI, END_VNNI)

/* The matrices kt_packed_ok accepts (kernels.h), else 0. */
static int q4_i8_packed(const kt_linear *l, int r0, int r1, const kt_qact *a, int t, float *y, size_t ldy, void *scratch) {
    if (!kt_packed_ok(l, r0, r1)) return 0;
    q4_i8_packed_run(l, r0, r1, a, t, y, ldy, scratch);
    return 1;
}
static int q4_i8_packed_vnni(const kt_linear *l, int r0, int r1, const kt_qact *a, int t, float *y, size_t ldy, void *scratch) {
    if (!kt_packed_ok(l, r0, r1)) return 0;
    q4_i8_packed_run_vnni(l, r0, r1, a, t, y, ldy, scratch);
    return 1;
}

static int avx2_here(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* AVX-VNNI is CPUID leaf 7, sub-leaf 1, EAX bit 4. Asked of CPUID directly:
 * older compilers (clang 14) do not know the feature's name in
 * __builtin_cpu_supports. The YMM state it needs is checked with AVX2. */
static int avx_vnni_here(void) {
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 4 & 1);
}

const kt_matvec_kernels_t *kt_kernels_avx2_base(void) {
    static const kt_matvec_kernels_t table = {"avx2", q4_rows, bf16_rows, q4_row, dots, q4_i8_rows_any, q8_i8_rows, q4_i8_gemm,
                                              q4_i8_packed, dots_2x4, q4_i8_rows8};
    return avx2_here() ? &table : NULL;
}

/* The same table with AVX-VNNI's integer dot products, where the CPU has them. */
const kt_matvec_kernels_t *kt_kernels_avx2(void) {
    static const kt_matvec_kernels_t table = {"avx2-vnni", q4_rows, bf16_rows, q4_row, dots, q4_i8_rows_any_vnni,
                                              q8_i8_rows_vnni, q4_i8_gemm_vnni, q4_i8_packed_vnni, dots_2x4,
                                              q4_i8_rows8_vnni};
    if (!avx2_here()) return NULL;
    return avx_vnni_here() ? &table : kt_kernels_avx2_base();
}

#else
const kt_matvec_kernels_t *kt_kernels_avx2(void) { return NULL; }
const kt_matvec_kernels_t *kt_kernels_avx2_base(void) { return NULL; }
#endif
