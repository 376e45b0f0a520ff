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
enum { ROWS4_PREFETCH = 8192 };

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
    static const kt_matvec_kernels_t table = {"avx2", q4_rows, bf16_rows, q4_row, dots, q4_i8_rows_any, q8_i8_rows, q4_i8_gemm, NULL};
    return avx2_here() ? &table : NULL;
}

/* The same table with AVX-VNNI's integer dot products, where the CPU has them. */
const kt_matvec_kernels_t *kt_kernels_avx2(void) {
    static const kt_matvec_kernels_t table = {"avx2-vnni", q4_rows, bf16_rows, q4_row, dots, q4_i8_rows_any_vnni,
                                              q8_i8_rows_vnni, q4_i8_gemm_vnni, NULL};
    if (!avx2_here()) return NULL;
    return avx_vnni_here() ? &table : kt_kernels_avx2_base();
}

#else
const kt_matvec_kernels_t *kt_kernels_avx2(void) { return NULL; }
const kt_matvec_kernels_t *kt_kernels_avx2_base(void) { return NULL; }
#endif
