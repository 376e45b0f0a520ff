/* matvec_avx512.c - the matrix-vector kernels in AVX-512F (x86-64, chosen at
 * run time where the CPU has it): the same sums as the AVX2 kernels with 16
 * lanes. Row dequantization and the prompt's dot products, which are bound
 * by the cache rather than by arithmetic, stay with the AVX2 table.
 */
#include "kernels.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx2,fma")))

enum { PREFETCH = 2048 };

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

AVX512 static void bf16_rows(const kt_linear *l, int r0, int r1, const float *x, float *y) {
    for (int r = r0; r < r1; r++) {
        const uint16_t *w = (const uint16_t *)(l->w + (size_t)r * l->in * 2);
        __m512 acc = _mm512_setzero_ps();
        int i = 0;
        for (; i + 16 <= l->in; i += 16) {
            __m512i a = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(w + i)));
            acc = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(a, 16)), _mm512_loadu_ps(x + i), acc);
        }
        y[r] = kt_bf16_dot_tail(_mm512_reduce_add_ps(acc), w, x, i, l->in);
    }
}

const kt_matvec_kernels_t *kt_kernels_avx512(void) {
    static kt_matvec_kernels_t table = {"avx512", q4_rows, bf16_rows, NULL, NULL};
    __builtin_cpu_init();
    const kt_matvec_kernels_t *avx2 = kt_kernels_avx2();
    if (!avx2 || !__builtin_cpu_supports("avx512f")) return NULL;
    table.q4_row = avx2->q4_row;
    table.dots = avx2->dots;
    return &table;
}

#else
const kt_matvec_kernels_t *kt_kernels_avx512(void) { return NULL; }
#endif
