/* matvec.c - y = W x for the runtime's weights: affine-quantized (any bits,
 * any group size) or dense bf16/f16/f32.
 *
 * A quantized row is a sum over groups of  s * (codes . x_g) + b * sum(x_g):
 * the scale and bias factor out of each group, so the codes are never
 * expanded to floats one by one. kt_matvec_ref is that sum, plainly; the
 * AVX2 kernel (4 and 8 bits, and dense bf16) computes the same sum with
 * 8-lane fused multiply-adds in a different order, so the two agree to
 * rounding (tests/unit/test_matvec.c), not bit for bit. Rows run in parallel.
 */
#include "affine.h"
#include "model.h"
#include "strbuf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define KT_X86 1
#endif

void kt_linear_row(const kt_linear *l, int r, float *out) {
    if (!l->quantized) {
        kt_row_to_f32(l->dtype, l->w + (size_t)r * (size_t)l->in * (kt_dtype_bits(l->dtype) / 8), out, (size_t)l->in);
        return;
    }
    const int groups = l->in / l->group_size, es = (int)kt_dtype_bits(l->dtype) / 8;
    uint8_t codes[128];
    for (int g = 0; g < groups; g++) {
        float s, b;
        kt_row_to_f32(l->dtype, l->scales + ((size_t)r * groups + g) * es, &s, 1);
        kt_row_to_f32(l->dtype, l->biases + ((size_t)r * groups + g) * es, &b, 1);
        kt_unpack_codes_ref(l->bits, l->w + ((size_t)r * l->in + (size_t)g * l->group_size) * l->bits / 8,
                            (size_t)l->group_size, codes);
        for (int j = 0; j < l->group_size; j++) out[g * l->group_size + j] = s * codes[j] + b;
    }
}

/* One output of the reference: row R of W times X (XSUM: sums of x per group). */
static float row_ref(const kt_linear *l, int r, const float *x, const float *xsum) {
    if (!l->quantized) {
        float w[256];
        double acc = 0;
        const size_t es = kt_dtype_bits(l->dtype) / 8;
        for (int i0 = 0; i0 < l->in; i0 += 256) {
            int n = l->in - i0 < 256 ? l->in - i0 : 256;
            kt_row_to_f32(l->dtype, l->w + ((size_t)r * l->in + i0) * es, w, (size_t)n);
            for (int i = 0; i < n; i++) acc += (double)w[i] * x[i0 + i];
        }
        return (float)acc;
    }
    const int gs = l->group_size, groups = l->in / gs, es = (int)kt_dtype_bits(l->dtype) / 8;
    uint8_t codes[128];
    double acc = 0;
    for (int g = 0; g < groups; g++) {
        float s, b;
        kt_row_to_f32(l->dtype, l->scales + ((size_t)r * groups + g) * es, &s, 1);
        kt_row_to_f32(l->dtype, l->biases + ((size_t)r * groups + g) * es, &b, 1);
        kt_unpack_codes_ref(l->bits, l->w + ((size_t)r * l->in + (size_t)g * gs) * l->bits / 8, (size_t)gs, codes);
        double dot = 0;
        for (int j = 0; j < gs; j++) dot += (double)codes[j] * x[g * gs + j];
        acc += s * dot + (double)b * xsum[g];
    }
    return (float)acc;
}

#ifdef KT_X86
static float hsum8(__m256 v) __attribute__((target("avx2")));
static float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

/* A scale or bias as float: bf16 inline (the common case), else converted. */
static inline float scale_at(const kt_linear *l, size_t i, int es, const uint8_t *base) {
    if (l->dtype == KT_BF16) {
        uint16_t h;
        memcpy(&h, base + i * 2, 2);
        return kt_bf16_to_f32(h);
    }
    float f;
    kt_row_to_f32(l->dtype, base + i * (size_t)es, &f, 1);
    return f;
}

/* 4 bits: byte k of a group holds elements 2k (low nibble) and 2k+1 (high);
 * XE/XO are x's even and odd elements, prepared once per matrix-vector. */
__attribute__((target("avx2,fma")))
static float row_q4_avx2(const kt_linear *l, int r, const float *xe, const float *xo, const float *xsum) {
    const int gs = l->group_size, groups = l->in / gs, es = (int)kt_dtype_bits(l->dtype) / 8;
    const uint8_t *w = l->w + (size_t)r * l->in / 2;
    float acc = 0;
    for (int g = 0; g < groups; g++) {
        __m256 dot = _mm256_setzero_ps();
        const uint8_t *p = w + (size_t)g * gs / 2;
        const float *e = xe + (size_t)g * gs / 2, *o = xo + (size_t)g * gs / 2;
        for (int k = 0; k < gs / 2; k += 8) {
            __m128i b = _mm_loadl_epi64((const __m128i *)(p + k));
            __m256i v = _mm256_cvtepu8_epi32(b);
            __m256 lo = _mm256_cvtepi32_ps(_mm256_and_si256(v, _mm256_set1_epi32(15)));
            __m256 hi = _mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4));
            dot = _mm256_fmadd_ps(lo, _mm256_loadu_ps(e + k), dot);
            dot = _mm256_fmadd_ps(hi, _mm256_loadu_ps(o + k), dot);
        }
        acc += scale_at(l, (size_t)r * groups + g, es, l->scales) * hsum8(dot) +
               scale_at(l, (size_t)r * groups + g, es, l->biases) * xsum[g];
    }
    return acc;
}

__attribute__((target("avx2,fma")))
static float row_bf16_avx2(const kt_linear *l, int r, const float *x) {
    const uint16_t *w = (const uint16_t *)(l->w + (size_t)r * l->in * 2);
    __m256 acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= l->in; i += 8) {
        __m256i v = _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(w + i))), 16);
        acc = _mm256_fmadd_ps(_mm256_castsi256_ps(v), _mm256_loadu_ps(x + i), acc);
    }
    float sum = hsum8(acc);
    for (; i < l->in; i++) {
        uint16_t h;
        memcpy(&h, w + i, 2);
        sum += kt_bf16_to_f32(h) * x[i];
    }
    return sum;
}

static int have_avx2_fma(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return cached;
}
#endif

static int force_ref;
void kt_matvec_force_scalar(int on) { force_ref = on; }

void kt_linear_apply(const kt_linear *l, const float *x, float *y) {
    const int gs = l->quantized ? l->group_size : 1, groups = l->quantized ? l->in / gs : 0;
    float *xsum = kt_xcalloc((size_t)groups + 1, sizeof *xsum);
    for (int g = 0; g < groups; g++)
        for (int j = 0; j < gs; j++) xsum[g] += x[g * gs + j];
    int fast = 0;
    float *xe = NULL, *xo = NULL;
#ifdef KT_X86
    fast = !force_ref && have_avx2_fma() && ((l->quantized && l->bits == 4 && gs % 16 == 0) || (!l->quantized && l->dtype == KT_BF16));
    if (fast && l->quantized) {
        xe = kt_xmalloc((size_t)l->in / 2 * sizeof *xe);
        xo = kt_xmalloc((size_t)l->in / 2 * sizeof *xo);
        for (int i = 0; i < l->in / 2; i++) xe[i] = x[2 * i], xo[i] = x[2 * i + 1];
    }
#endif
#pragma omp parallel for schedule(static) if (l->out >= 64)
    for (int o = 0; o < l->out; o++) {
#ifdef KT_X86
        if (fast) {
            y[o] = l->quantized ? row_q4_avx2(l, o, xe, xo, xsum) : row_bf16_avx2(l, o, x);
            continue;
        }
#endif
        y[o] = row_ref(l, o, x, xsum);
    }
    free(xe);
    free(xo);
    free(xsum);
}

float kt_dot_ref(const float *a, const float *b, int n) {
    double acc = 0;
    for (int i = 0; i < n; i++) acc += (double)a[i] * b[i];
    return (float)acc;
}

#ifdef KT_X86
__attribute__((target("avx2,fma")))
static float dot_avx2(const float *a, const float *b, int n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    float s = hsum8(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}
#endif

float kt_dot(const float *a, const float *b, int n) {
#ifdef KT_X86
    if (!force_ref && have_avx2_fma()) return dot_avx2(a, b, n);
#endif
    return kt_dot_ref(a, b, n);
}

void kt_linear_apply_batch(const kt_linear *l, const float *x, int t, float *y) {
    if (t == 1) {
        kt_linear_apply(l, x, y);
        return;
    }
#pragma omp parallel
    {
        float *row = kt_xmalloc((size_t)l->in * sizeof *row);
#pragma omp for schedule(static)
        for (int o = 0; o < l->out; o++) {
            kt_linear_row(l, o, row);
            for (int k = 0; k < t; k++) y[(size_t)k * l->out + o] = kt_dot(row, x + (size_t)k * l->in, l->in);
        }
        free(row);
    }
}
