/* dtype_simd.c - vector versions of the row conversions, chosen at run time.
 *
 * Each kernel must give exactly the bytes of its scalar reference in dtype.c;
 * tests/unit/test_dtype.c checks every 16-bit input and many f32 ones.
 */
#include "dtype.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define KT_X86 1
#elif defined(__aarch64__)
#include <arm_neon.h>
#define KT_NEON 1
#endif

static int force_scalar;

void kt_dtype_force_scalar(int on) { force_scalar = on; }

#ifdef KT_X86
static int have_avx2(void) {
    static int cached = -1;
    if (cached < 0) {
        unsigned a, b, c, d;
        __builtin_cpu_init();
        /* F16C is CPUID leaf 1, ECX bit 29 (not every compiler's builtin names it) */
        cached = __builtin_cpu_supports("avx2") && __get_cpuid(1, &a, &b, &c, &d) && (c >> 29 & 1);
    }
    return cached;
}

__attribute__((target("avx2")))
static void bf16_to_f32_avx2(const uint16_t *in, float *out, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(in + i));
        __m256i w = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
        _mm256_storeu_ps(out + i, _mm256_castsi256_ps(w));
    }
    kt_bf16_to_f32_row_ref(in + i, out + i, n - i);
}

__attribute__((target("avx2")))
static void f32_to_bf16_avx2(const float *in, uint16_t *out, size_t n) {
    const __m256i bias = _mm256_set1_epi32(0x7fff);
    const __m256i one = _mm256_set1_epi32(1);
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
    const __m256i inf = _mm256_set1_epi32(0x7f800000);
    const __m256i qnan = _mm256_set1_epi32(0x7fc0);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i r[2];
        for (int k = 0; k < 2; k++) {
            __m256i u = _mm256_castps_si256(_mm256_loadu_ps(in + i + 8 * k));
            __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
            __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(bias, lsb)), 16);
            __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs_mask), inf);
            r[k] = _mm256_blendv_epi8(rounded, qnan, nan);
        }
        /* packus works per 128-bit lane: reorder the quadwords afterwards */
        __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r[0], r[1]), 0xd8);
        _mm256_storeu_si256((__m256i *)(out + i), packed);
    }
    kt_f32_to_bf16_row_ref(in + i, out + i, n - i);
}

__attribute__((target("avx2,f16c")))
static void f16_to_f32_f16c(const uint16_t *in, float *out, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(in + i))));
    kt_f16_to_f32_row_ref(in + i, out + i, n - i);
}

__attribute__((target("avx2,f16c")))
static void f32_to_f16_f16c(const float *in, uint16_t *out, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(out + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT));
    kt_f32_to_f16_row_ref(in + i, out + i, n - i);
}
#endif

#ifdef KT_NEON
static void bf16_to_f32_neon(const uint16_t *in, float *out, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint16x8_t h = vld1q_u16(in + i);
        vst1q_f32(out + i, vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16)));
        vst1q_f32(out + i + 4, vreinterpretq_f32_u32(vshll_n_u16(vget_high_u16(h), 16)));
    }
    kt_bf16_to_f32_row_ref(in + i, out + i, n - i);
}

static void f32_to_bf16_neon(const float *in, uint16_t *out, size_t n) {
    const uint32x4_t bias = vdupq_n_u32(0x7fff), one = vdupq_n_u32(1);
    const uint32x4_t inf = vdupq_n_u32(0x7f800000), qnan = vdupq_n_u32(0x7fc0);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint32x4_t u = vreinterpretq_u32_f32(vld1q_f32(in + i));
        uint32x4_t lsb = vandq_u32(vshrq_n_u32(u, 16), one);
        uint32x4_t r = vshrq_n_u32(vaddq_u32(u, vaddq_u32(bias, lsb)), 16);
        uint32x4_t nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffff)), inf);
        vst1_u16(out + i, vmovn_u32(vbslq_u32(nan, qnan, r)));
    }
    kt_f32_to_bf16_row_ref(in + i, out + i, n - i);
}
#endif

const char *kt_dtype_simd_name(void) {
    if (force_scalar) return "scalar";
#ifdef KT_X86
    if (have_avx2()) return "avx2";
#endif
#ifdef KT_NEON
    return "neon";
#endif
    return "scalar";
}

void kt_bf16_to_f32_row(const uint16_t *in, float *out, size_t n) {
#ifdef KT_X86
    if (!force_scalar && have_avx2()) { bf16_to_f32_avx2(in, out, n); return; }
#endif
#ifdef KT_NEON
    if (!force_scalar) { bf16_to_f32_neon(in, out, n); return; }
#endif
    kt_bf16_to_f32_row_ref(in, out, n);
}

void kt_f32_to_bf16_row(const float *in, uint16_t *out, size_t n) {
#ifdef KT_X86
    if (!force_scalar && have_avx2()) { f32_to_bf16_avx2(in, out, n); return; }
#endif
#ifdef KT_NEON
    if (!force_scalar) { f32_to_bf16_neon(in, out, n); return; }
#endif
    kt_f32_to_bf16_row_ref(in, out, n);
}

void kt_f16_to_f32_row(const uint16_t *in, float *out, size_t n) {
#ifdef KT_X86
    if (!force_scalar && have_avx2()) { f16_to_f32_f16c(in, out, n); return; }
#endif
    kt_f16_to_f32_row_ref(in, out, n);
}

void kt_f32_to_f16_row(const float *in, uint16_t *out, size_t n) {
#ifdef KT_X86
    if (!force_scalar && have_avx2()) { f32_to_f16_f16c(in, out, n); return; }
#endif
    kt_f32_to_f16_row_ref(in, out, n);
}
