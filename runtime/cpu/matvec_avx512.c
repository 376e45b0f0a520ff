/* matvec_avx512.c - the matrix-vector kernels in AVX-512F (x86-64, chosen at
 * run time where the CPU has it): the same sums as the AVX2 kernels with 16
 * lanes. Row dequantization and the float prompt's 2 x 4 tile stay with the
 * AVX2 table.
 */
#include "kernels.h"
#include "strbuf.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx2,fma")))

enum { PREFETCH = 8192 };

/* One row, 32 elements (16 bytes) per step: the low nibbles meet x's even
 * elements, the high nibbles the odd ones; scale per group as a vector,
 * bias term apart (as in the AVX2 kernel). */
AVX512 static float q4_one(const kt_linear *l, int r, const float *xe, const float *xo, const float *xsum) {
    const int gs = l->group_size, groups = l->in / gs;
    const uint8_t *w = l->w + (size_t)r * l->in / 2;
    const __m512i nib = _mm512_set1_epi32(15);
    __m512 acc = _mm512_setzero_ps();
    float bias = 0;
    for (int g = 0; g < groups; g++) {
        __m512 da = _mm512_setzero_ps(), db = _mm512_setzero_ps();
        const uint8_t *p = w + (size_t)g * gs / 2;
        const float *e = xe + (size_t)g * gs / 2, *o = xo + (size_t)g * gs / 2;
        _mm_prefetch((const char *)(p + PREFETCH), _MM_HINT_T0);
        for (int k = 0; k < gs / 2; k += 16) {
            __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p + k)));
            da = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(v, nib)), _mm512_loadu_ps(e + k), da);
            db = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(v, 4)), _mm512_loadu_ps(o + k), db);
        }
        const size_t i = (size_t)r * groups + g;
        acc = _mm512_fmadd_ps(_mm512_add_ps(da, db), _mm512_set1_ps(kt_scale_at(l->dtype, l->scales, i)), acc);
        bias += kt_scale_at(l->dtype, l->biases, i) * xsum[g];
    }
    return _mm512_reduce_add_ps(acc) + bias;
}

AVX512 static void q4_rows(const kt_linear *l, int r0, int r1, const float *xe, const float *xo, const float *xsum,
                           float *y) {
    if (l->group_size % 32) {
        kt_kernels_avx2()->q4_rows(l, r0, r1, xe, xo, xsum, y);
        return;
    }
    for (int r = r0; r < r1; r++) y[r] = q4_one(l, r, xe, xo, xsum);
}

/* Dense bf16 rows (the original model, the reference of --kld): bound by
 * memory, so two accumulators hide the FMA latency and the row is
 * prefetched ahead. */
AVX512 static void bf16_rows(const kt_linear *l, int r0, int r1, const float *x, float *y) {
    for (int r = r0; r < r1; r++) {
        const uint16_t *w = (const uint16_t *)(l->w + (size_t)r * l->in * 2);
        __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
        int i = 0;
        for (; i + 32 <= l->in; i += 32) {
            _mm_prefetch((const char *)(w + i) + PREFETCH, _MM_HINT_T0);
            const __m512i a = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(w + i)));
            const __m512i b = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(w + i + 16)));
            acc0 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(a, 16)), _mm512_loadu_ps(x + i), acc0);
            acc1 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(b, 16)), _mm512_loadu_ps(x + i + 16), acc1);
        }
        for (; i + 16 <= l->in; i += 16) {
            const __m512i a = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(w + i)));
            acc0 = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(a, 16)), _mm512_loadu_ps(x + i), acc0);
        }
        y[r] = kt_bf16_dot_tail(_mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)), w, x, i, l->in);
    }
}

/* ---- integer kernels (see matvec_avx2.c): two blocks of 32 per register ----
 * 32 bytes of a 4-bit row are two blocks; their low and high nibbles are
 * rearranged into [even0 | odd0 | even1 | odd1], the activations' paired
 * order for two consecutive blocks. Lanes 0-7 sum block k, lanes 8-15 block
 * k+1, so the d vector holds d_k eight times, then d_k+1. Groups of 64 and
 * 128 (an even count of blocks); groups of 32 go to the AVX2 kernels. */

#define AVX512I(EXTRA) __attribute__((target("avx512f,avx512bw,avx512dq,avx2,fma" EXTRA), always_inline)) static inline

AVX512I("") __m512i dot_bw(__m512i c, __m512i x) {
    return _mm512_madd_epi16(_mm512_maddubs_epi16(c, x), _mm512_set1_epi16(1));
}
AVX512I(",avx512vnni") __m512i dot_vnni(__m512i c, __m512i x) {
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), c, x);
}
AVX512I("") __m512i q4_pair_blocks(const uint8_t *p) {
    const __m256i raw = _mm256_loadu_si256((const __m256i *)p), nib = _mm256_set1_epi8(15);
    const __m256i lo = _mm256_and_si256(raw, nib), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), nib);
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_permute2x128_si256(lo, hi, 0x20)),
                              _mm256_permute2x128_si256(lo, hi, 0x31), 1);
}
AVX512I("") __m512 two_scales(const float *d) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_set1_ps(d[0])), _mm256_set1_ps(d[1]), 1);
}

#define Q4_I8_ROWS(NAME, EXTRA, DOT)                                                                        \
    __attribute__((target("avx512f,avx512bw,avx512dq,avx2,fma" EXTRA))) static void NAME(                  \
        const kt_linear *l, int r0, int r1, const kt_qact *a, float *y) {                                   \
        const int gs = l->group_size, groups = l->in / gs, per = gs / KT_QBLOCK;                            \
        for (int r = r0; r < r1; r += 2) {                                                                 \
            const int two = r + 1 < r1;                                                                    \
            const uint8_t *w0 = l->w + (size_t)r * l->in / 2, *w1 = two ? w0 + l->in / 2 : w0;             \
            __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();                                 \
            float bias0 = 0, bias1 = 0;                                                                    \
            for (int g = 0; g < groups; g++) {                                                             \
                __m512 g0 = _mm512_setzero_ps(), g1 = _mm512_setzero_ps();                                 \
                float xsum = 0;                                                                            \
                _mm_prefetch((const char *)(w0 + (size_t)g * gs / 2 + PREFETCH), _MM_HINT_T0);             \
                _mm_prefetch((const char *)(w1 + (size_t)g * gs / 2 + PREFETCH), _MM_HINT_T0);             \
                for (int k = g * per; k < (g + 1) * per; k += 2) {                                         \
                    const __m512i x = _mm512_loadu_si512(a->qp + (size_t)k * KT_QBLOCK);                   \
                    const __m512 d = two_scales(a->d + k);                                                 \
                    g0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(DOT(q4_pair_blocks(w0 + (size_t)k * 16), x)), d, g0); \
                    g1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(DOT(q4_pair_blocks(w1 + (size_t)k * 16), x)), d, g1); \
                    xsum += a->sum[k] + a->sum[k + 1];                                                     \
                }                                                                                          \
                const size_t i0 = (size_t)r * groups + g, i1 = two ? i0 + (size_t)groups : i0;             \
                acc0 = _mm512_fmadd_ps(g0, _mm512_set1_ps(kt_scale_at(l->dtype, l->scales, i0)), acc0);    \
                acc1 = _mm512_fmadd_ps(g1, _mm512_set1_ps(kt_scale_at(l->dtype, l->scales, i1)), acc1);    \
                bias0 += kt_scale_at(l->dtype, l->biases, i0) * xsum;                                      \
                bias1 += kt_scale_at(l->dtype, l->biases, i1) * xsum;                                      \
            }                                                                                              \
            y[r] = _mm512_reduce_add_ps(acc0) + bias0;                                                     \
            if (two) y[r + 1] = _mm512_reduce_add_ps(acc1) + bias1;                                        \
        }                                                                                                  \
    }
Q4_I8_ROWS(q4_i8_bw, "", dot_bw)
Q4_I8_ROWS(q4_i8_vnni, ",avx512vnni", dot_vnni)

/* ---- 4 bits, four rows at a time (decode) ----
 * 64 bytes of a row are 128 elements, four blocks. Their low nibbles are
 * the even elements of the four blocks in order, the high nibbles the odd
 * ones; x's paired layout ([even | odd] per block) is rearranged once per
 * 128 elements into the same two orders (XE, XO), shared by the four rows.
 * Then lane j of vpdpbusd(lo, XE) + vpdpbusd(hi, XO) sums 8 elements of
 * block j / 4: the block's scale d and the group's scale s multiply the
 * lane, and the bias term is a dot product of the row's biases with the
 * groups' float sums of x. Four rows share every load of x and d, and the
 * scales and biases are read 16 groups at a time as vectors. */

/* N (<= 16) scales or biases from I on, as float; lanes past N are 0. */
AVX512I("") __m512 params16(kt_dtype dt, const uint8_t *base, size_t i, int n) {
    const __mmask16 m = (__mmask16)((1u << n) - 1);
    if (dt == KT_F32) return _mm512_maskz_loadu_ps(m, base + i * 4);
    /* a masked load reads only its lanes: nothing past the last group */
    const __m256i h = _mm512_castsi512_si256(_mm512_maskz_loadu_epi16((__mmask32)m, base + i * 2));
    if (dt == KT_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* The constants of a 128-element chunk: the nibble mask; the qwords of
 * two 64-byte activation loads that hold the four blocks' even (odd)
 * elements; per lane its block (lane j sums elements 8j..8j+7) and its
 * group for groups of GS. */
typedef struct {
    __m512i nib, even, odd, dlane, glane;
} chunk_lanes;
AVX512I("") chunk_lanes chunk_lanes_for(int gs) {
    chunk_lanes c;
    c.nib = _mm512_set1_epi8(15);
    c.even = _mm512_setr_epi64(0, 1, 4, 5, 8, 9, 12, 13);
    c.odd = _mm512_setr_epi64(2, 3, 6, 7, 10, 11, 14, 15);
    c.dlane = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    c.glane = _mm512_srli_epi32(_mm512_setr_epi32(0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120),
                                __builtin_ctz(gs));
    return c;
}

#define Q4_I8_ROWS4(NAME, EXTRA, DOT2)                                                                      \
    __attribute__((target("avx512f,avx512bw,avx512dq,avx2,fma,f16c" EXTRA))) static void NAME(             \
        const kt_linear *l, int r0, int r1, const kt_qact *a, float *y) {                                   \
        const int gs = l->group_size, groups = l->in / gs, gpc = 128 / gs, chunks = (l->in + 127) / 128;   \
        float gsum[KT_GSUM_MAX];                                                                           \
        kt_group_sums(a->sum, gs, groups, gsum);                                                           \
        const chunk_lanes cl = chunk_lanes_for(gs);                                                        \
        const __m512i nib = cl.nib, even = cl.even, odd = cl.odd, dlane = cl.dlane, glane = cl.glane;      \
        const size_t stride = (size_t)l->in / 2;                                                           \
        for (int r = r0; r < r1; r += 4) {                                                                 \
            const uint8_t *w[4];                                                                           \
            _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) w[i] = l->w + (size_t)(r + i < r1 ? r + i : r) * stride;           \
            __m512 acc[4], bacc[4];                                                                        \
            _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) acc[i] = bacc[i] = _mm512_setzero_ps();                            \
            for (int g0 = 0; g0 < groups; g0 += 16) {                                                      \
                const int ng = groups - g0 < 16 ? groups - g0 : 16;                                        \
                const __m512 xs = _mm512_maskz_loadu_ps((__mmask16)((1u << ng) - 1), gsum + g0);            \
                __m512 sv[4];                                                                              \
                _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {                                                              \
                    const size_t gi = (size_t)(r + i < r1 ? r + i : r) * groups + g0;                      \
                    sv[i] = params16(l->dtype, l->scales, gi, ng);                                         \
                    bacc[i] = _mm512_fmadd_ps(params16(l->dtype, l->biases, gi, ng), xs, bacc[i]);        \
                }                                                                                          \
                const int c1 = (g0 + ng + gpc - 1) / gpc < chunks ? (g0 + ng + gpc - 1) / gpc : chunks;    \
                for (int c = g0 / gpc; c < c1; c++) {                                                      \
                    const int nblk = (l->in - c * 128) / KT_QBLOCK < 4 ? (l->in - c * 128) / KT_QBLOCK : 4; \
                    const __mmask16 dm = (__mmask16)((1u << nblk) - 1);                                    \
                    const __mmask64 wm = nblk == 4 ? ~(__mmask64)0 : ((__mmask64)1 << (nblk * 16)) - 1;    \
                    const int8_t *q = a->qp + (size_t)c * 128;                                             \
                    const __m512i x0 = _mm512_maskz_loadu_epi8(nblk >= 2 ? ~(__mmask64)0 : ((__mmask64)1 << (nblk * 32)) - 1, q); \
                    const __m512i x1 = nblk > 2 ? _mm512_maskz_loadu_epi8(nblk == 4 ? ~(__mmask64)0 : ((__mmask64)1 << 32) - 1, q + 64) \
                                                : _mm512_setzero_si512();                                  \
                    const __m512i xe = _mm512_permutex2var_epi64(x0, even, x1);                            \
                    const __m512i xo = _mm512_permutex2var_epi64(x0, odd, x1);                             \
                    const __m512 dv = _mm512_permutexvar_ps(dlane, _mm512_maskz_loadu_ps(dm, a->d + (size_t)c * 4)); \
                    const __m512i gidx = _mm512_add_epi32(glane, _mm512_set1_epi32(c * gpc - g0));         \
                    _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {                                                          \
                        const __m512i raw = _mm512_maskz_loadu_epi8(wm, w[i] + (size_t)c * 64);            \
                        _mm_prefetch((const char *)(w[i] + (size_t)c * 64 + PREFETCH), _MM_HINT_T0);       \
                        const __m512i lo = _mm512_and_si512(raw, nib);                                     \
                        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), nib);               \
                        const __m512 ds = _mm512_mul_ps(dv, _mm512_permutexvar_ps(gidx, sv[i]));           \
                        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(DOT2(lo, xe, hi, xo)), ds, acc[i]);    \
                    }                                                                                      \
                }                                                                                          \
            }                                                                                              \
            for (int i = 0; i < 4 && r + i < r1; i++)                                                      \
                y[r + i] = _mm512_reduce_add_ps(acc[i]) + _mm512_reduce_add_ps(bacc[i]);                   \
        }                                                                                                  \
    }


AVX512I("") __m512i dot2_bw(__m512i lo, __m512i xe, __m512i hi, __m512i xo) {
    /* pairs of u8 x s8 sum to at most 2 * 15 * 128 per 16-bit lane: no saturation */
    const __m512i s = _mm512_add_epi16(_mm512_maddubs_epi16(lo, xe), _mm512_maddubs_epi16(hi, xo));
    return _mm512_madd_epi16(s, _mm512_set1_epi16(1));
}
AVX512I(",avx512vnni") __m512i dot2_vnni(__m512i lo, __m512i xe, __m512i hi, __m512i xo) {
    return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xe), hi, xo);
}
Q4_I8_ROWS4(q4_i8_rows4_bw, "", dot2_bw)
Q4_I8_ROWS4(q4_i8_rows4_vnni, ",avx512vnni", dot2_vnni)

/* The prompt: four rows x two tokens per pass, the same lane layout as
 * the four-row kernel. The rows' nibbles are split once per chunk and serve
 * both tokens; each token's rearranged activations serve the four rows.
 * Tokens go in pairs (an odd last one alone); the rows' bytes stay in L1
 * between the pairs. */
#define Q4_I8_GEMM4(NAME, EXTRA, DOT2)                                                                      \
    __attribute__((target("avx512f,avx512bw,avx512dq,avx2,fma,f16c" EXTRA))) static void NAME(             \
        const kt_linear *l, int r0, int r1, const kt_qact *a, int t, float *y, size_t ldy) {                 \
        const int gs = l->group_size, groups = l->in / gs, gpc = 128 / gs, chunks = (l->in + 127) / 128;   \
        const int nb = l->in / KT_QBLOCK;                                                                  \
        float gsum[4][KT_GSUM_MAX];                                                                        \
        for (int j = 0; j < t; j++) kt_group_sums(a->sum + (size_t)j * nb, gs, groups, gsum[j]);           \
        const chunk_lanes cl = chunk_lanes_for(gs);                                                        \
        const __m512i nib = cl.nib, even = cl.even, odd = cl.odd, dlane = cl.dlane, glane = cl.glane;      \
        const size_t stride = (size_t)l->in / 2;                                                           \
        for (int r = r0; r < r1; r += 4) {                                                                 \
            const uint8_t *w[4];                                                                           \
            _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) w[i] = l->w + (size_t)(r + i < r1 ? r + i : r) * stride; \
            for (int j0 = 0; j0 < t; j0 += 2) {                                                            \
                const int j1 = j0 + 1 < t ? j0 + 1 : j0;                                                   \
                __m512 acc[2][4], bacc[2][4];                                                              \
                _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) acc[0][i] = acc[1][i] = bacc[0][i] = bacc[1][i] = _mm512_setzero_ps(); \
                for (int g0 = 0; g0 < groups; g0 += 16) {                                                  \
                    const int ng = groups - g0 < 16 ? groups - g0 : 16;                                    \
                    const __mmask16 gm = (__mmask16)((1u << ng) - 1);                                      \
                    const __m512 xs0 = _mm512_maskz_loadu_ps(gm, gsum[j0] + g0);                           \
                    const __m512 xs1 = _mm512_maskz_loadu_ps(gm, gsum[j1] + g0);                           \
                    __m512 sv[4];                                                                          \
                    _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {                                  \
                        const size_t gi = (size_t)(r + i < r1 ? r + i : r) * groups + g0;                  \
                        sv[i] = params16(l->dtype, l->scales, gi, ng);                                     \
                        const __m512 bv = params16(l->dtype, l->biases, gi, ng);                           \
                        bacc[0][i] = _mm512_fmadd_ps(bv, xs0, bacc[0][i]);                                 \
                        bacc[1][i] = _mm512_fmadd_ps(bv, xs1, bacc[1][i]);                                 \
                    }                                                                                      \
                    const int c1 = (g0 + ng + gpc - 1) / gpc < chunks ? (g0 + ng + gpc - 1) / gpc : chunks; \
                    for (int c = g0 / gpc; c < c1; c++) {                                                  \
                        const int nblk = (l->in - c * 128) / KT_QBLOCK < 4 ? (l->in - c * 128) / KT_QBLOCK : 4; \
                        const __mmask16 dm = (__mmask16)((1u << nblk) - 1);                                \
                        const __mmask64 wm = nblk == 4 ? ~(__mmask64)0 : ((__mmask64)1 << (nblk * 16)) - 1; \
                        const __mmask64 m0 = nblk >= 2 ? ~(__mmask64)0 : ((__mmask64)1 << (nblk * 32)) - 1; \
                        const __mmask64 m1 = nblk == 4 ? ~(__mmask64)0 : nblk == 3 ? ((__mmask64)1 << 32) - 1 : 0; \
                        __m512i xe[2], xo[2];                                                              \
                        __m512 dv[2];                                                                      \
                        _Pragma("GCC unroll 2") for (int u = 0; u < 2; u++) {                              \
                            const size_t kb = (size_t)(u ? j1 : j0) * nb + (size_t)c * 4;                  \
                            const int8_t *q = a->qp + kb * KT_QBLOCK;                                      \
                            const __m512i x0 = _mm512_maskz_loadu_epi8(m0, q);                             \
                            const __m512i x1 = _mm512_maskz_loadu_epi8(m1, q + 64);                        \
                            xe[u] = _mm512_permutex2var_epi64(x0, even, x1);                               \
                            xo[u] = _mm512_permutex2var_epi64(x0, odd, x1);                                \
                            dv[u] = _mm512_permutexvar_ps(dlane, _mm512_maskz_loadu_ps(dm, a->d + kb));    \
                        }                                                                                  \
                        const __m512i gidx = _mm512_add_epi32(glane, _mm512_set1_epi32(c * gpc - g0));     \
                        _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {                              \
                            const __m512i raw = _mm512_maskz_loadu_epi8(wm, w[i] + (size_t)c * 64);        \
                            const __m512i lo = _mm512_and_si512(raw, nib);                                 \
                            const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), nib);           \
                            const __m512 sp = _mm512_permutexvar_ps(gidx, sv[i]);                          \
                            acc[0][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(DOT2(lo, xe[0], hi, xo[0])),    \
                                                        _mm512_mul_ps(dv[0], sp), acc[0][i]);              \
                            acc[1][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(DOT2(lo, xe[1], hi, xo[1])),    \
                                                        _mm512_mul_ps(dv[1], sp), acc[1][i]);              \
                        }                                                                                  \
                    }                                                                                      \
                }                                                                                          \
                for (int i = 0; i < 4 && r + i < r1; i++) {                                                \
                    y[(size_t)j0 * ldy + r + i] = _mm512_reduce_add_ps(acc[0][i]) + _mm512_reduce_add_ps(bacc[0][i]); \
                    if (j1 != j0)                                                                          \
                        y[(size_t)j1 * ldy + r + i] = _mm512_reduce_add_ps(acc[1][i]) + _mm512_reduce_add_ps(bacc[1][i]); \
                }                                                                                          \
            }                                                                                              \
        }                                                                                                  \
    }
Q4_I8_GEMM4(q4_i8_gemm4_bw, "", dot2_bw)
Q4_I8_GEMM4(q4_i8_gemm4_vnni, ",avx512vnni", dot2_vnni)

/* The 16 x 16 dwords of X transposed in registers: four stages, each
 * swapping the off-diagonal blocks of 8, 4, 2 and 1 dwords between pairs
 * of registers (two vpermt2d per pair). */
static const int32_t transpose_idx[4][2][16] = {
    {{0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},
     {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31}}, /* blocks of 8 */
    {{0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27},
     {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31}}, /* blocks of 4 */
    {{0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29},
     {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31}}, /* blocks of 2 */
    {{0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30},
     {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31}}, /* blocks of 1 */
};

AVX512I("") void transpose16(__m512i x[16]) {
    _Pragma("GCC unroll 4") for (int st = 0; st < 4; st++) {
        const int b = 8 >> st;
        const __m512i i1 = _mm512_loadu_si512(transpose_idx[st][0]), i2 = _mm512_loadu_si512(transpose_idx[st][1]);
        _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) {
            if (i & b) continue;
            const __m512i a = x[i], c = x[i + b];
            x[i] = _mm512_permutex2var_epi32(a, i1, c);
            x[i + b] = _mm512_permutex2var_epi32(a, i2, c);
        }
    }
}

/* STEPS 4-byte steps of 16 rows ROW[i] into one register per step, lane i
 * row i, split into low and high nibbles: LO[s * PITCH], HI[s * PITCH].
 * Each row is read front to back, 64 bytes at a time (a gather per step
 * touched 16 rows at once and waited on memory for each). */
AVX512I("") void pack_rows16(const uint8_t *const *row, int steps, __m512i *lo, __m512i *hi, size_t pitch) {
    const __m512i nib = _mm512_set1_epi8(15);
    for (int s0 = 0; s0 < steps; s0 += 16) {
        const int n = steps - s0 < 16 ? steps - s0 : 16;
        const __mmask16 m = (__mmask16)(n == 16 ? 0xffff : (1u << n) - 1);
        __m512i x[16];
        _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) x[i] = _mm512_maskz_loadu_epi32(m, row[i] + (size_t)s0 * 4);
        transpose16(x);
        for (int s = 0; s < n; s++) {
            lo[(size_t)(s0 + s) * pitch] = _mm512_and_si512(x[s], nib);
            hi[(size_t)(s0 + s) * pitch] = _mm512_and_si512(_mm512_srli_epi16(x[s], 4), nib);
        }
    }
}

/* ---- the prompt, rows repacked: one lane per row ----
 * For a prompt the weights of up to 32 rows are rearranged once so that
 * register lane i of a 16-row block holds row i: step s is [row 0 bytes
 * 4s..4s+3 | row 1 ... | row 15], 8 elements of each row, split into low
 * nibbles (its even elements) and high nibbles (its odd ones). A token's
 * activations for the step are one broadcast dword each (4 even, 4 odd
 * values in the paired layout), so vpdpbusd adds 8 products per lane and
 * the int32 lanes sum a whole block of 32 before anything becomes float:
 * one conversion and one FMA by the block's d per 16 rows x 32 elements,
 * two FMAs per group (its 16 scales times the group's sum, its 16 biases
 * times the group's float sum of x).
 *
 * The register tile is 2 row blocks x 4 tokens: per step 4 weight
 * registers serve 16 dot products, and each token's broadcast serves both
 * row blocks. 8 int32 chains (latency 5) keep the dot-product units busy;
 * 8 group sums and 8 row sums live in registers, 24 of the 32 vector
 * registers. The packed rows of 32 (140 KiB at the 9B shape's 4480 inputs)
 * would have to come from L2 again for every 4 tokens, at about the rate
 * the dot products consume them (vpdpbusd issues twice per cycle on recent
 * Xeons); so the columns go in chunks of about 256 elements (16 KiB of
 * packed rows, held in L1 while every token passes over them) and the row
 * sums wait in memory between chunks. SCRATCH (kt_packed_scratch_bytes)
 * holds the packed rows and the sums, so nothing is allocated per call. */
enum { PACK_ROWS = 16 };

#define Q4_I8_PACKED(NAME, EXTRA, DOT4, RB)                                                                   \
    __attribute__((target("avx512f,avx512bw,avx512dq,avx2,fma" EXTRA))) static void NAME(                    \
        const kt_linear *l, int r0, int r1, const kt_qact *a, int t, float *y, size_t ldy, void *scratch) {  \
        const int gs = l->group_size, groups = l->in / gs, steps = l->in / 8, per = gs / KT_QBLOCK;         \
        const int nb = l->in / KT_QBLOCK, rows = r1 - r0;                                                   \
        const size_t stride = (size_t)l->in / 2;                                                            \
        __m512i *lo = (__m512i *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63), *hi = lo + (size_t)RB * steps; \
        float *sc = (float *)(hi + (size_t)RB * steps), *bi = sc + (size_t)groups * RB * PACK_ROWS;         \
        float *xs = bi + (size_t)groups * RB * PACK_ROWS;                                                   \
        /* lane i of block rb reads row r0 + 16 rb + i; missing rows repeat row r0 and are not stored */   \
        for (int rb = 0; rb < RB; rb++) {                                                                   \
            const uint8_t *row[PACK_ROWS];                                                                  \
            for (int i = 0; i < PACK_ROWS; i++) {                                                           \
                const int r = rb * PACK_ROWS + i;                                                           \
                row[i] = l->w + (size_t)(r0 + (r < rows ? r : 0)) * stride;                                 \
            }                                                                                               \
            pack_rows16(row, steps, lo + rb, hi + rb, RB);                                                  \
            for (int g = 0; g < groups; g++)                                                                \
                for (int i = 0; i < PACK_ROWS; i++) {                                                       \
                    const int r = rb * PACK_ROWS + i;                                                       \
                    const size_t gi = (size_t)(r0 + (r < rows ? r : 0)) * groups + g;                       \
                    sc[((size_t)g * RB + rb) * PACK_ROWS + i] = kt_scale_at(l->dtype, l->scales, gi);       \
                    bi[((size_t)g * RB + rb) * PACK_ROWS + i] = kt_scale_at(l->dtype, l->biases, gi);       \
                }                                                                                           \
        }                                                                                                   \
        /* Columns in chunks of CHUNK groups (about 256 elements: 16 KiB of                                  \
         * packed rows, which stay in L1 while every token passes over                                       \
         * them); the row sums of every token wait in ACCB between chunks.                                   \
         * Each sum still adds its groups in order, as in one pass. */                                       \
        const int chunk = gs >= 256 ? 1 : 256 / gs;                                                          \
        float *accb = xs, *gs_all = accb + ((size_t)t + 3) / 4 * 4 * RB * PACK_ROWS; /* every token's group sums */ \
        for (int j = 0; j < t; j++) kt_group_sums(a->sum + (size_t)j * nb, gs, groups, gs_all + (size_t)j * groups); \
        for (int g0 = 0; g0 < groups; g0 += chunk) {                                                        \
            const int g1 = g0 + chunk < groups ? g0 + chunk : groups;                                       \
            for (int j0 = 0; j0 < t; j0 += 4) {                                                             \
                /* four tokens per pass (the last pass repeats its last token) */                           \
                const int8_t *q[4];                                                                         \
                const float *d[4], *gsum[4];                                                                \
                for (int u = 0; u < 4; u++) {                                                               \
                    const int j = j0 + u < t ? j0 + u : t - 1;                                              \
                    q[u] = a->qp + (size_t)j * l->in, d[u] = a->d + (size_t)j * nb, gsum[u] = gs_all + (size_t)j * groups; \
                }                                                                                           \
                float *ab = accb + (size_t)j0 * RB * PACK_ROWS;                                             \
                if (g0 == 0)                                                                                \
                    for (int i = 0; i < 4 * RB; i++) _mm512_store_ps(ab + (size_t)i * PACK_ROWS, _mm512_setzero_ps()); \
                for (int g = g0; g < g1; g++) {                                                             \
                    __m512 gv[RB][4];                                                                       \
                    _Pragma("GCC unroll 2") for (int rb = 0; rb < RB; rb++)                                 \
                        _Pragma("GCC unroll 4") for (int u = 0; u < 4; u++) gv[rb][u] = _mm512_setzero_ps(); \
                    for (int b = g * per; b < (g + 1) * per; b++) {                                         \
                        __m512i ivl[RB][4], ivh[RB][4];                                                     \
                        _Pragma("GCC unroll 2") for (int rb = 0; rb < RB; rb++)                             \
                            _Pragma("GCC unroll 4") for (int u = 0; u < 4; u++)                             \
                                ivl[rb][u] = ivh[rb][u] = _mm512_setzero_si512();                           \
                        _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {                               \
                            const size_t st = ((size_t)b * 4 + k) * RB;                                     \
                            _Pragma("GCC unroll 4") for (int u = 0; u < 4; u++) {                           \
                                int32_t e, o;                                                               \
                                memcpy(&e, q[u] + (size_t)b * KT_QBLOCK + 4 * k, 4);                        \
                                memcpy(&o, q[u] + (size_t)b * KT_QBLOCK + 16 + 4 * k, 4);                   \
                                const __m512i ev = _mm512_set1_epi32(e), ov = _mm512_set1_epi32(o);         \
                                _Pragma("GCC unroll 2") for (int rb = 0; rb < RB; rb++) {                   \
                                    ivl[rb][u] = DOT4(ivl[rb][u], lo[st + rb], ev);                         \
                                    ivh[rb][u] = DOT4(ivh[rb][u], hi[st + rb], ov);                         \
                                }                                                                           \
                            }                                                                               \
                        }                                                                                   \
                        _Pragma("GCC unroll 4") for (int u = 0; u < 4; u++) {                               \
                            const __m512 dv = _mm512_set1_ps(d[u][b]);                                      \
                            _Pragma("GCC unroll 2") for (int rb = 0; rb < RB; rb++)                         \
                                gv[rb][u] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(ivl[rb][u], ivh[rb][u])), dv, gv[rb][u]); \
                        }                                                                                   \
                    }                                                                                       \
                    _Pragma("GCC unroll 2") for (int rb = 0; rb < RB; rb++) {                               \
                        const __m512 sv = _mm512_load_ps(sc + ((size_t)g * RB + rb) * PACK_ROWS);           \
                        const __m512 bv = _mm512_load_ps(bi + ((size_t)g * RB + rb) * PACK_ROWS);           \
                        _Pragma("GCC unroll 4") for (int u = 0; u < 4; u++) {                               \
                            float *to = ab + ((size_t)u * RB + rb) * PACK_ROWS;                             \
                            __m512 acc = _mm512_fmadd_ps(gv[rb][u], sv, _mm512_load_ps(to));                \
                            _mm512_store_ps(to, _mm512_fmadd_ps(bv, _mm512_set1_ps(gsum[u][g]), acc));         \
                        }                                                                                   \
                    }                                                                                       \
                }                                                                                           \
            }                                                                                               \
        }                                                                                                   \
        for (int rb = 0; rb < RB; rb++) {                                                                   \
            const int left = rows - rb * PACK_ROWS;                                                         \
            const __mmask16 keep = (__mmask16)(left >= PACK_ROWS ? 0xffff : (1u << left) - 1);              \
            for (int j = 0; j < t; j++)                                                                     \
                _mm512_mask_storeu_ps(y + (size_t)j * ldy + r0 + rb * PACK_ROWS, keep,                      \
                                      _mm512_load_ps(accb + ((size_t)j * RB + rb) * PACK_ROWS));            \
        }                                                                                                   \
    }

AVX512I("") __m512i dot4_bw(__m512i acc, __m512i c, __m512i x) {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(c, x), _mm512_set1_epi16(1)));
}
AVX512I(",avx512vnni") __m512i dot4_vnni(__m512i acc, __m512i c, __m512i x) { return _mm512_dpbusd_epi32(acc, c, x); }
Q4_I8_PACKED(q4_i8_packed16_bw, "", dot4_bw, 1)
Q4_I8_PACKED(q4_i8_packed32_bw, "", dot4_bw, 2)
Q4_I8_PACKED(q4_i8_packed16_vnni, ",avx512vnni", dot4_vnni, 1)
Q4_I8_PACKED(q4_i8_packed32_vnni, ",avx512vnni", dot4_vnni, 2)

/* The repacked prompt kernel takes what the four-row kernels take, rows of
 * whole 4-byte steps (every width here: in % 32 == 0), and at most 32 rows;
 * 16 or fewer go through the one-block tile. */
static int q4_i8_packed_bw(const kt_linear *l, int r0, int r1, const kt_qact *a, int t, float *y, size_t ldy, void *scratch) {
    if (!kt_packed_ok(l, r0, r1)) return 0;
    if (r1 - r0 > PACK_ROWS) q4_i8_packed32_bw(l, r0, r1, a, t, y, ldy, scratch);
    else q4_i8_packed16_bw(l, r0, r1, a, t, y, ldy, scratch);
    return 1;
}
static int q4_i8_packed_vnni(const kt_linear *l, int r0, int r1, const kt_qact *a, int t, float *y, size_t ldy, void *scratch) {
    if (!kt_packed_ok(l, r0, r1)) return 0;
    if (r1 - r0 > PACK_ROWS) q4_i8_packed32_vnni(l, r0, r1, a, t, y, ldy, scratch);
    else q4_i8_packed16_vnni(l, r0, r1, a, t, y, ldy, scratch);
    return 1;
}

/* 8 bits: 64 bytes are two blocks in x's own order. Without VNNI the codes
 * and activations widen to 16 bits (vpmaddubsw would saturate). */
AVX512I("") __m512i dot8_bw(const uint8_t *p, const int8_t *q) {
    const __m512i c0 = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)p));
    const __m512i c1 = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(p + 32)));
    const __m512i x0 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)q));
    const __m512i x1 = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(q + 32)));
    /* s0: 16 pair sums of block k, s1: of block k+1; folded into 8 + 8 lanes */
    const __m512i s0 = _mm512_madd_epi16(c0, x0), s1 = _mm512_madd_epi16(c1, x1);
    const __m512i idx_lo = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i idx_hi = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    return _mm512_add_epi32(_mm512_permutex2var_epi32(s0, idx_lo, s1), _mm512_permutex2var_epi32(s0, idx_hi, s1));
}
AVX512I(",avx512vnni") __m512i dot8_vnni(const uint8_t *p, const int8_t *q) {
    return dot_vnni(_mm512_loadu_si512(p), _mm512_loadu_si512(q));
}

#define Q8_I8_ROWS(NAME, EXTRA, DOT8)                                                                       \
    __attribute__((target("avx512f,avx512bw,avx512dq,avx2,fma" EXTRA))) static void NAME(                  \
        const kt_linear *l, int r0, int r1, const kt_qact *a, float *y) {                                   \
        const int gs = l->group_size, groups = l->in / gs, per = gs / KT_QBLOCK;                            \
        for (int r = r0; r < r1; r++) {                                                                    \
            const uint8_t *w = l->w + (size_t)r * l->in;                                                   \
            __m512 acc = _mm512_setzero_ps();                                                              \
            float bias = 0;                                                                                \
            for (int g = 0; g < groups; g++) {                                                             \
                __m512 gv = _mm512_setzero_ps();                                                           \
                float xsum = 0;                                                                            \
                _mm_prefetch((const char *)(w + (size_t)g * gs + PREFETCH), _MM_HINT_T0);                  \
                for (int k = g * per; k < (g + 1) * per; k += 2) {                                         \
                    const __m512i s = DOT8(w + (size_t)k * KT_QBLOCK, a->q + (size_t)k * KT_QBLOCK);        \
                    gv = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), two_scales(a->d + k), gv);                 \
                    xsum += a->sum[k] + a->sum[k + 1];                                                     \
                }                                                                                          \
                const size_t i = (size_t)r * groups + g;                                                   \
                acc = _mm512_fmadd_ps(gv, _mm512_set1_ps(kt_scale_at(l->dtype, l->scales, i)), acc);       \
                bias += kt_scale_at(l->dtype, l->biases, i) * xsum;                                        \
            }                                                                                              \
            y[r] = _mm512_reduce_add_ps(acc) + bias;                                                       \
        }                                                                                                  \
    }
Q8_I8_ROWS(q8_i8_bw, "", dot8_bw)
Q8_I8_ROWS(q8_i8_vnni, ",avx512vnni", dot8_vnni)

/* Groups of 32 (an odd block count per group) go to the AVX2 kernels. */
static void q4_i8_rows_bw(const kt_linear *l, int r0, int r1, const kt_qact *a, float *y) {
    if (kt_rows4_ok(l)) q4_i8_rows4_bw(l, r0, r1, a, y);
    else if (l->group_size % 64) kt_kernels_avx2_base()->q4_i8_rows(l, r0, r1, a, y);
    else q4_i8_bw(l, r0, r1, a, y);
}
static void q8_i8_rows_bw(const kt_linear *l, int r0, int r1, const kt_qact *a, float *y) {
    if (l->group_size % 64) kt_kernels_avx2_base()->q8_i8_rows(l, r0, r1, a, y);
    else q8_i8_bw(l, r0, r1, a, y);
}
static void q4_i8_rows_vnni(const kt_linear *l, int r0, int r1, const kt_qact *a, float *y) {
    if (kt_rows4_ok(l)) q4_i8_rows4_vnni(l, r0, r1, a, y);
    else if (l->group_size % 64) kt_kernels_avx2()->q4_i8_rows(l, r0, r1, a, y);
    else q4_i8_vnni(l, r0, r1, a, y);
}
static void q8_i8_rows_vnni(const kt_linear *l, int r0, int r1, const kt_qact *a, float *y) {
    if (l->group_size % 64) kt_kernels_avx2()->q8_i8_rows(l, r0, r1, a, y);
    else q8_i8_vnni(l, r0, r1, a, y);
}

/* The prompt: one row, up to four token vectors, two blocks per register. */
#define Q4_I8_GEMM(NAME, EXTRA, DOT)                                                                        \
    __attribute__((target("avx512f,avx512bw,avx512dq,avx2,fma" EXTRA))) static void NAME(                  \
        const kt_linear *l, int r0, int r1, const kt_qact *a, int t, float *y, size_t ldy) {                 \
        const int gs = l->group_size, groups = l->in / gs, per = gs / KT_QBLOCK, nb = l->in / KT_QBLOCK;    \
        for (int r = r0; r < r1; r++) {                                                                    \
            const uint8_t *w = l->w + (size_t)r * l->in / 2;                                               \
            __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()}; \
            float bias[4] = {0, 0, 0, 0};                                                                  \
            for (int g = 0; g < groups; g++) {                                                             \
                __m512 gv[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()}; \
                float xsum[4] = {0, 0, 0, 0};                                                              \
                _mm_prefetch((const char *)(w + (size_t)g * gs / 2 + PREFETCH), _MM_HINT_T0);              \
                for (int k = g * per; k < (g + 1) * per; k += 2) {                                         \
                    const __m512i c = q4_pair_blocks(w + (size_t)k * 16);                                  \
                    for (int j = 0; j < t; j++) {                                                          \
                        const size_t kb = (size_t)j * nb + k;                                              \
                        const __m512i x = _mm512_loadu_si512(a->qp + kb * KT_QBLOCK);                      \
                        gv[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(DOT(c, x)), two_scales(a->d + kb), gv[j]); \
                        xsum[j] += a->sum[kb] + a->sum[kb + 1];                                            \
                    }                                                                                      \
                }                                                                                          \
                const size_t i = (size_t)r * groups + g;                                                   \
                const __m512 sc = _mm512_set1_ps(kt_scale_at(l->dtype, l->scales, i));                     \
                const float bi = kt_scale_at(l->dtype, l->biases, i);                                      \
                for (int j = 0; j < t; j++) acc[j] = _mm512_fmadd_ps(gv[j], sc, acc[j]), bias[j] += bi * xsum[j]; \
            }                                                                                              \
            for (int j = 0; j < t; j++) y[(size_t)j * ldy + r] = _mm512_reduce_add_ps(acc[j]) + bias[j];   \
        }                                                                                                  \
    }
Q4_I8_GEMM(q4_i8_gemm_bw, "", dot_bw)
Q4_I8_GEMM(q4_i8_gemm_v, ",avx512vnni", dot_vnni)
static void q4_i8_gemm_base(const kt_linear *l, int r0, int r1, const kt_qact *a, int t, float *y, size_t ldy) {
    if (kt_rows4_ok(l)) q4_i8_gemm4_bw(l, r0, r1, a, t, y, ldy);
    else if (l->group_size % 64) kt_kernels_avx2_base()->q4_i8_gemm(l, r0, r1, a, t, y, ldy);
    else q4_i8_gemm_bw(l, r0, r1, a, t, y, ldy);
}
static void q4_i8_gemm_vnni(const kt_linear *l, int r0, int r1, const kt_qact *a, int t, float *y, size_t ldy) {
    if (kt_rows4_ok(l)) q4_i8_gemm4_vnni(l, r0, r1, a, t, y, ldy);
    else if (l->group_size % 64) kt_kernels_avx2()->q4_i8_gemm(l, r0, r1, a, t, y, ldy);
    else q4_i8_gemm_v(l, r0, r1, a, t, y, ldy);
}

/* The prompt's float products (the exact path of measurements, and every
 * dense original): one expanded row against four token vectors, 16 lanes
 * per load, so each step is 5 loads for 4 FMAs of 16 products (the AVX2
 * version's 5 loads serve 8 products each). */
AVX512 static void dots(const float *w, const float *x, size_t ldx, int t, int n, float *out) {
    int k = 0;
    for (; k + 4 <= t; k += 4) {
        const float *x0 = x + (size_t)k * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx, *x3 = x2 + ldx;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
        int i = 0;
        for (; i + 16 <= n; i += 16) {
            const __m512 wv = _mm512_loadu_ps(w + i);
            a0 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x0 + i), a0);
            a1 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x1 + i), a1);
            a2 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x2 + i), a2);
            a3 = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x3 + i), a3);
        }
        float s0 = _mm512_reduce_add_ps(a0), s1 = _mm512_reduce_add_ps(a1), s2 = _mm512_reduce_add_ps(a2),
              s3 = _mm512_reduce_add_ps(a3);
        for (; i < n; i++) s0 += w[i] * x0[i], s1 += w[i] * x1[i], s2 += w[i] * x2[i], s3 += w[i] * x3[i];
        out[k] = s0, out[k + 1] = s1, out[k + 2] = s2, out[k + 3] = s3;
    }
    for (; k < t; k++) {
        const float *xk = x + (size_t)k * ldx;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        int i = 0;
        for (; i + 32 <= n; i += 32) {
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(xk + i), a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(xk + i + 16), a1);
        }
        float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
        for (; i < n; i++) s += w[i] * xk[i];
        out[k] = s;
    }
}

/* AVX-512F with BW and DQ (the integer kernels need both). */
const kt_matvec_kernels_t *kt_kernels_avx512_base(void) {
    static kt_matvec_kernels_t table = {"avx512", q4_rows, bf16_rows, NULL, dots, q4_i8_rows_bw, q8_i8_rows_bw,
                                        q4_i8_gemm_base, q4_i8_packed_bw, NULL, NULL};
    const kt_matvec_kernels_t *avx2 = kt_kernels_avx2_base();
    if (!avx2 || !__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512dq"))
        return NULL;
    table.q4_row = avx2->q4_row;
    table.dots_2x4 = avx2->dots_2x4;
    return &table;
}

/* The same with AVX-512 VNNI's vpdpbusd, where the CPU has it. */
const kt_matvec_kernels_t *kt_kernels_avx512(void) {
    static kt_matvec_kernels_t table = {"avx512-vnni", q4_rows, bf16_rows, NULL, dots, q4_i8_rows_vnni,
                                        q8_i8_rows_vnni, q4_i8_gemm_vnni, q4_i8_packed_vnni, NULL, NULL};
    const kt_matvec_kernels_t *base = kt_kernels_avx512_base();
    if (!base || !__builtin_cpu_supports("avx512vnni")) return base;
    table.q4_row = base->q4_row;
    table.dots_2x4 = base->dots_2x4;
    return &table;
}

#else
const kt_matvec_kernels_t *kt_kernels_avx512(void) { return NULL; }
const kt_matvec_kernels_t *kt_kernels_avx512_base(void) { return NULL; }
#endif
