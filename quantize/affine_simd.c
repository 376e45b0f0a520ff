/* affine_simd.c - vector kernels for kt_quantize_row(), chosen at run time.
 *
 * Each kernel does what affine_ref.c does, group by group, with the same
 * float32 operations in the same order: a min/max pass, the shared
 * kt_quant_group_params(), then (w - bias) / scale with a true division,
 * the mode's rounding and the clamp. IEEE subtraction, division, rounding
 * and min/max give identical results in a vector lane and in a scalar
 * register, so the bytes are identical; tests/unit/test_quantize.c checks
 * that on millions of random and adversarial groups.
 *
 * The kernels write one byte per code and then pack 8 codes at a time with
 * pack8(), a branch-free bit shuffle that is independent of the reference's
 * bit-stream writer (so the test also checks the packing).
 */
#include "affine.h"
#include "error.h"

#include <math.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "kintsugi assumes a little-endian host (safetensors and MLX are little-endian)"
#endif

#if defined(__x86_64__)
#include <immintrin.h>
#define KT_X86 1
#elif defined(__aarch64__)
#include <arm_neon.h>
#define KT_NEON 1
#endif

/* Eight codes of BITS bits (one per byte of CODES) into BITS bytes of the
 * little-endian bit stream: merge neighbouring bytes, then neighbouring
 * 16-bit and 32-bit lanes, each step halving the number of fields. */
static inline void pack8(int bits, const uint8_t *codes, uint8_t *out) {
    uint64_t x;
    memcpy(&x, codes, 8);
    x = (x & 0x00FF00FF00FF00FFull) | ((x & 0xFF00FF00FF00FF00ull) >> (8 - bits));
    x = (x & 0x0000FFFF0000FFFFull) | ((x & 0xFFFF0000FFFF0000ull) >> (16 - 2 * bits));
    x = (x & 0x00000000FFFFFFFFull) | ((x & 0xFFFFFFFF00000000ull) >> (32 - 4 * bits));
    /* fixed-size copies compile to plain stores; a variable-size memcpy is a call */
    switch (bits) {
    case 2: memcpy(out, &x, 2); break;
    case 3: memcpy(out, &x, 2); out[2] = (uint8_t)(x >> 16); break;
    case 4: memcpy(out, &x, 4); break;
    case 5: memcpy(out, &x, 4); out[4] = (uint8_t)(x >> 32); break;
    case 6: { uint32_t lo = (uint32_t)x; uint16_t hi = (uint16_t)(x >> 32); memcpy(out, &lo, 4); memcpy(out + 4, &hi, 2); } break;
    default: memcpy(out, &x, 8); break;
    }
}

static inline void pack_group(int bits, const uint8_t *codes, int gs, uint8_t *out) {
    for (int j = 0; j < gs; j += 8) pack8(bits, codes + j, out + (size_t)j * bits / 8);
}

#ifdef KT_X86
/* ---------------- AVX2: 8 lanes ---------------- */
__attribute__((target("avx2"))) static inline float hmin8(__m256 v) {
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    m = _mm_min_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

__attribute__((target("avx2"))) static inline float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

/* round() semantics: truncate, then step away from zero when the dropped
 * fraction is at least one half. q - trunc(q) is exact in float32. */
__attribute__((target("avx2"))) static inline __m256 round_away8(__m256 q) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 t = _mm256_round_ps(q, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(q, t));
    __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    __m256 step = _mm256_or_ps(_mm256_and_ps(q, sign), _mm256_set1_ps(1.0f));
    return _mm256_add_ps(t, _mm256_and_ps(up, step));
}

/* kt_quant_group_params() for 8 groups at once: the same float32 operations
 * lane by lane, so the same results, without a chain of scalar divisions
 * per group. */
/* Codes only: round() where the result is then clamped to [0, n_bins].
 * For q < 0 both this and round() give a value <= 0, which clamps to 0, so
 * only q >= 0 matters, where round() is trunc(q) + (q - trunc(q) >= 0.5). */
__attribute__((target("avx2"))) static inline __m256 round_away_nonneg8(__m256 q) {
    __m256 t = _mm256_round_ps(q, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 up = _mm256_cmp_ps(_mm256_sub_ps(q, t), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    return _mm256_add_ps(t, _mm256_and_ps(up, _mm256_set1_ps(1.0f)));
}

__attribute__((target("avx2")))
static void group_params8(int cpu, __m256 n_bins, const float *w_min, const float *w_max, float *scale, float *bias) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 lo = _mm256_loadu_ps(w_min), hi = _mm256_loadu_ps(w_max);
    __m256 s = _mm256_max_ps(_mm256_div_ps(_mm256_sub_ps(hi, lo), n_bins), _mm256_set1_ps(1e-7f));
    __m256 side = _mm256_cmp_ps(_mm256_andnot_ps(sign, lo), _mm256_andnot_ps(sign, hi), _CMP_GT_OQ);
    s = _mm256_blendv_ps(_mm256_xor_ps(s, sign), s, side);
    __m256 edge = _mm256_blendv_ps(hi, lo, side);
    __m256 q0 = _mm256_div_ps(edge, s);
    q0 = cpu ? _mm256_round_ps(q0, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC) : round_away8(q0);
    __m256 nonzero = _mm256_cmp_ps(q0, _mm256_setzero_ps(), _CMP_NEQ_OQ);
    _mm256_storeu_ps(scale, _mm256_blendv_ps(s, _mm256_div_ps(edge, q0), nonzero));
    _mm256_storeu_ps(bias, _mm256_and_ps(edge, nonzero));
}

/* 8 values as float32: from float32, or widened from bf16 (a 16-bit shift). */
__attribute__((target("avx2"), always_inline))
static inline __m256 load8(const void *w, size_t i, int from_bf16) {
    if (!from_bf16) return _mm256_loadu_ps((const float *)w + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* A row in three passes: the minimum and maximum of every group, the scales
 * and biases of 8 groups at a time, then the codes. FROM_BF16 is a constant
 * in each caller, so the compiler makes two specialised copies; reading bf16
 * directly saves a widening pass over the row. */
__attribute__((target("avx2"), always_inline))
static inline int quantize_row_avx2_any(const kt_quant_params *p, const void *w, int from_bf16, size_t k,
                                        uint8_t *packed, float *scales, float *biases) {
    const int gs = p->group_size, bits = p->bits, cpu = p->mode == KT_QUANT_CPU;
    const __m256 zero = _mm256_setzero_ps(), top = _mm256_set1_ps((float)((1 << bits) - 1));
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    const size_t n_groups = k / (size_t)gs;
    enum { CHUNK = 256 };
    float w_min[CHUNK], w_max[CHUNK];
    uint8_t codes[128];
    for (size_t g0 = 0; g0 < n_groups; g0 += CHUNK) {
        size_t n = n_groups - g0 < CHUNK ? n_groups - g0 : CHUNK;
        __m256 bad = zero; /* v - v is 0 for finite v and NaN otherwise */
        for (size_t g = 0; g < n; g++) {
            const size_t x = (g0 + g) * (size_t)gs;
            __m256 lo = _mm256_set1_ps(INFINITY);
            __m256 hi = _mm256_set1_ps(cpu ? -INFINITY : 0.0f);
            for (int j = 0; j < gs; j += 8) {
                __m256 v = load8(w, x + (size_t)j, from_bf16);
                lo = _mm256_min_ps(lo, v);
                hi = _mm256_max_ps(hi, v);
                bad = _mm256_or_ps(bad, _mm256_sub_ps(v, v));
            }
            w_min[g] = hmin8(lo);
            w_max[g] = hmax8(hi);
        }
        if (_mm256_movemask_ps(_mm256_cmp_ps(bad, bad, _CMP_UNORD_Q))) return -1;
        size_t g = 0;
        for (; g + 8 <= n; g += 8)
            group_params8(cpu, top, w_min + g, w_max + g, scales + g0 + g, biases + g0 + g);
        for (; g < n; g++) kt_quant_group_params(p, w_min[g], w_max[g], scales + g0 + g, biases + g0 + g);
        for (g = 0; g < n; g++) {
            const size_t x = (g0 + g) * (size_t)gs;
            const __m256 vs = _mm256_set1_ps(scales[g0 + g]), vb = _mm256_set1_ps(biases[g0 + g]);
            for (int j = 0; j < gs; j += 32) {
                __m256i c[4];
                for (int u = 0; u < 4; u++) {
                    __m256 q = _mm256_div_ps(_mm256_sub_ps(load8(w, x + (size_t)(j + 8 * u), from_bf16), vb), vs);
                    q = cpu ? _mm256_round_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
                            : round_away_nonneg8(q);
                    q = _mm256_min_ps(_mm256_max_ps(q, zero), top);
                    c[u] = _mm256_cvtps_epi32(q);
                }
                /* the packs work within 128-bit lanes; the permute restores order */
                __m256i b = _mm256_packus_epi16(_mm256_packs_epi32(c[0], c[1]), _mm256_packs_epi32(c[2], c[3]));
                b = _mm256_permutevar8x32_epi32(b, order);
                uint8_t *dst = packed + ((g0 + g) * (size_t)gs + (size_t)j) * bits / 8;
                if (bits == 8) {
                    _mm256_storeu_si256((__m256i *)dst, b);
                } else if (bits == 4) {
                    /* each 16-bit lane becomes even + 16 * odd, then bytes; the
                     * 64-bit permute gathers the two lanes' halves */
                    __m256i pairs = _mm256_maddubs_epi16(b, _mm256_set1_epi16(0x1001));
                    __m256i bytes = _mm256_permute4x64_epi64(_mm256_packus_epi16(pairs, pairs), 0x08);
                    _mm_storeu_si128((__m128i *)dst, _mm256_castsi256_si128(bytes));
                } else {
                    _mm256_storeu_si256((__m256i *)(codes + j), b);
                }
            }
            if (bits != 4 && bits != 8) pack_group(bits, codes, gs, packed + (g0 + g) * (size_t)gs * bits / 8);
        }
    }
    return 0;
}

__attribute__((target("avx2")))
static int quantize_row_avx2(const kt_quant_params *p, const float *w, size_t k,
                             uint8_t *packed, float *scales, float *biases) {
    return quantize_row_avx2_any(p, w, 0, k, packed, scales, biases);
}

__attribute__((target("avx2")))
static int quantize_row_bf16_avx2(const kt_quant_params *p, const uint16_t *w, size_t k,
                                  uint8_t *packed, float *scales, float *biases) {
    return quantize_row_avx2_any(p, w, 1, k, packed, scales, biases);
}

/* ---------------- AVX-512F: 16 lanes ---------------- */
__attribute__((target("avx512f"))) static inline __m512 round_away16(__m512 q) {
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    __m512 t = _mm512_roundscale_ps(q, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m512 frac = _mm512_abs_ps(_mm512_sub_ps(q, t));
    __mmask16 up = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    __m512i step = _mm512_or_si512(_mm512_and_si512(_mm512_castps_si512(q), sign),
                                   _mm512_castps_si512(_mm512_set1_ps(1.0f)));
    return _mm512_mask_add_ps(t, up, t, _mm512_castsi512_ps(step));
}

__attribute__((target("avx512f")))
static int quantize_row_avx512(const kt_quant_params *p, const float *w, size_t k,
                               uint8_t *packed, float *scales, float *biases) {
    const int gs = p->group_size, bits = p->bits, cpu = p->mode == KT_QUANT_CPU;
    const __m512 zero = _mm512_setzero_ps(), top = _mm512_set1_ps((float)((1 << bits) - 1));
    uint8_t codes[128];
    for (size_t g = 0; g * (size_t)gs < k; g++) {
        const float *x = w + g * (size_t)gs;
        __m512 lo = _mm512_set1_ps(INFINITY);
        __m512 hi = _mm512_set1_ps(cpu ? -INFINITY : 0.0f);
        __m512i bad = _mm512_setzero_si512();
        for (int j = 0; j < gs; j += 16) {
            __m512 v = _mm512_loadu_ps(x + j);
            lo = _mm512_min_ps(lo, v);
            hi = _mm512_max_ps(hi, v);
            bad = _mm512_or_si512(bad, _mm512_castps_si512(_mm512_sub_ps(v, v)));
        }
        __m512 badf = _mm512_castsi512_ps(bad);
        if (_mm512_cmp_ps_mask(badf, badf, _CMP_UNORD_Q)) return -1;
        float scale, bias;
        kt_quant_group_params(p, _mm512_reduce_min_ps(lo), _mm512_reduce_max_ps(hi), &scale, &bias);
        const __m512 vs = _mm512_set1_ps(scale), vb = _mm512_set1_ps(bias);
        for (int j = 0; j < gs; j += 16) {
            __m512 q = _mm512_div_ps(_mm512_sub_ps(_mm512_loadu_ps(x + j), vb), vs);
            q = cpu ? _mm512_roundscale_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC) : round_away16(q);
            q = _mm512_min_ps(_mm512_max_ps(q, zero), top);
            __m128i b = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(q));
            uint8_t *dst = packed + (g * (size_t)gs + (size_t)j) * bits / 8;
            if (bits == 8) {
                _mm_storeu_si128((__m128i *)dst, b);
            } else if (bits == 4) {
                __m128i pairs = _mm_maddubs_epi16(b, _mm_set1_epi16(0x1001));
                _mm_storel_epi64((__m128i *)dst, _mm_packus_epi16(pairs, pairs));
            } else {
                _mm_storeu_si128((__m128i *)(codes + j), b);
            }
        }
        if (bits != 4 && bits != 8) pack_group(bits, codes, gs, packed + g * (size_t)gs * bits / 8);
        scales[g] = scale;
        biases[g] = bias;
    }
    return 0;
}
#endif /* KT_X86 */

#ifdef KT_NEON
/* ---------------- NEON: 4 lanes, 8 codes per step ---------------- */
static inline uint32x4_t codes4(float32x4_t v, float32x4_t vb, float32x4_t vs, int cpu,
                                float32x4_t zero, float32x4_t top) {
    float32x4_t q = vdivq_f32(vsubq_f32(v, vb), vs);
    q = cpu ? vrndnq_f32(q) : vrndaq_f32(q); /* half to even / half away from zero */
    q = vminq_f32(vmaxq_f32(q, zero), top);
    return vcvtq_u32_f32(q);
}

static int quantize_row_neon(const kt_quant_params *p, const float *w, size_t k,
                             uint8_t *packed, float *scales, float *biases) {
    const int gs = p->group_size, bits = p->bits, cpu = p->mode == KT_QUANT_CPU;
    const float32x4_t zero = vdupq_n_f32(0.0f), top = vdupq_n_f32((float)((1 << bits) - 1));
    const uint32x4_t exp_mask = vdupq_n_u32(0x7f800000u);
    uint8_t codes[128];
    for (size_t g = 0; g * (size_t)gs < k; g++) {
        const float *x = w + g * (size_t)gs;
        float32x4_t lo = vdupq_n_f32(INFINITY);
        float32x4_t hi = vdupq_n_f32(cpu ? -INFINITY : 0.0f);
        uint32x4_t bad = vdupq_n_u32(0);
        for (int j = 0; j < gs; j += 4) {
            float32x4_t v = vld1q_f32(x + j);
            lo = vminq_f32(lo, v);
            hi = vmaxq_f32(hi, v);
            bad = vorrq_u32(bad, vreinterpretq_u32_f32(vsubq_f32(v, v)));
        }
        if (vmaxvq_u32(vceqq_u32(vandq_u32(bad, exp_mask), exp_mask))) return -1;
        float scale, bias;
        kt_quant_group_params(p, vminvq_f32(lo), vmaxvq_f32(hi), &scale, &bias);
        const float32x4_t vs = vdupq_n_f32(scale), vb = vdupq_n_f32(bias);
        for (int j = 0; j < gs; j += 8) {
            uint32x4_t a = codes4(vld1q_f32(x + j), vb, vs, cpu, zero, top);
            uint32x4_t b = codes4(vld1q_f32(x + j + 4), vb, vs, cpu, zero, top);
            vst1_u8(codes + j, vmovn_u16(vcombine_u16(vmovn_u32(a), vmovn_u32(b))));
        }
        uint8_t *dst = packed + g * (size_t)gs * bits / 8;
        if (bits == 8) {
            memcpy(dst, codes, (size_t)gs);
        } else if (bits == 4) {
            for (int j = 0; j < gs; j += 16) { /* even codes | odd codes << 4 */
                uint8x16_t v = vld1q_u8(codes + j);
                uint8x16_t both = vorrq_u8(vuzp1q_u8(v, v), vshlq_n_u8(vuzp2q_u8(v, v), 4));
                vst1_u8(dst + j / 2, vget_low_u8(both));
            }
        } else {
            pack_group(bits, codes, gs, dst);
        }
        scales[g] = scale;
        biases[g] = bias;
    }
    return 0;
}
#endif /* KT_NEON */

/* ---------------- selection ---------------- */
typedef int (*row_kernel)(const kt_quant_params *, const float *, size_t, uint8_t *, float *, float *);

static row_kernel current;
static const char *current_name = "scalar";

int kt_quant_kernel_available(kt_quant_kernel kernel) {
    switch (kernel) {
    case KT_QK_AUTO:
    case KT_QK_SCALAR: return 1;
#ifdef KT_X86
    case KT_QK_AVX2: __builtin_cpu_init(); return __builtin_cpu_supports("avx2");
    case KT_QK_AVX512: __builtin_cpu_init(); return __builtin_cpu_supports("avx512f");
#endif
#ifdef KT_NEON
    case KT_QK_NEON: return 1;
#endif
    default: return 0;
    }
}

int kt_quant_use_kernel(kt_quant_kernel kernel) {
    if (kernel == KT_QK_AUTO) {
        if (kt_quant_kernel_available(KT_QK_AVX512)) kernel = KT_QK_AVX512;
        else if (kt_quant_kernel_available(KT_QK_AVX2)) kernel = KT_QK_AVX2;
        else if (kt_quant_kernel_available(KT_QK_NEON)) kernel = KT_QK_NEON;
        else kernel = KT_QK_SCALAR;
    }
    if (!kt_quant_kernel_available(kernel)) return kt_fail("this CPU cannot run the requested quantization kernel");
    switch (kernel) {
#ifdef KT_X86
    case KT_QK_AVX2: current = quantize_row_avx2; current_name = "avx2"; break;
    case KT_QK_AVX512: current = quantize_row_avx512; current_name = "avx512"; break;
#endif
#ifdef KT_NEON
    case KT_QK_NEON: current = quantize_row_neon; current_name = "neon"; break;
#endif
    default: current = kt_quantize_row_ref; current_name = "scalar"; break;
    }
    return 0;
}

const char *kt_quant_kernel_name(void) {
    if (!current) kt_quant_use_kernel(KT_QK_AUTO);
    return current_name;
}

int kt_quantize_row(const kt_quant_params *p, const float *w, size_t k,
                    uint8_t *packed, float *scales, float *biases) {
    if (!current) kt_quant_use_kernel(KT_QK_AUTO);
    return current(p, w, k, packed, scales, biases);
}

int kt_quantize_row_bf16(const kt_quant_params *p, const uint16_t *w, float *scratch, size_t k,
                         uint8_t *packed, float *scales, float *biases) {
    if (!current) kt_quant_use_kernel(KT_QK_AUTO);
#ifdef KT_X86
    if (current == quantize_row_avx2) return quantize_row_bf16_avx2(p, w, k, packed, scales, biases);
#endif
    kt_bf16_to_f32_row(w, scratch, k);
    return current(p, scratch, k, packed, scales, biases);
}
