/* gemm_bench.c - the prompt's 4-bit matrix product with integer activations
 * (kt_linear_apply_batch_q) against this machine's integer dot-product peak,
 * in the same run.
 *
 *   gemm-bench [--rows 15680] [--cols 4480] [--group-size 64] [--tokens 64] [--exact | --dense]
 *
 * --exact: the float32-activation product instead (kt_linear_apply_batch,
 * the measuring path of --perplexity and --kld-against), 4-bit weights;
 * --dense: the same with bf16 weights (the original model). Both against
 * the FMA peak: vfmadd231ps (AVX-512 or AVX2) or fmla, 16 chains.
 *
 * A prompt of T tokens reads each weight once and multiplies it with T
 * activations, so from a few tokens on the product is bound by arithmetic,
 * not memory. The bound is measured as the fastest code reaches it: the
 * widest integer dot-product instruction the CPU has (AVX-512 VNNI
 * vpdpbusd, AVX-VNNI, else vpmaddubsw with 16-bit sums (vpaddw), as the
 * AVX2 prompt kernel sums a block; arm64 sdot),
 * register operands, 16 independent accumulators, on every thread, median
 * of 9 passes. Figures: multiply-adds per second (rows x cols x tokens per
 * product), all threads and one thread.
 */
#include "bench_util.h"
#include "cpu.h"
#include "strbuf.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

enum { PEAK_ITERS = 1 << 22 };

/* 16 chains of the instruction, each operand a register (constraint REG):
 * ITERS x 16 instructions, returned so nothing is optimised away. The
 * operands C and X start as SEED_C and SEED_X (not const), of their own type. */
#define PEAK_LOOP(VEC, ZERO, STEP, LANES, REG)                                                                    \
    VEC a[16];                                                                                                     \
    for (int i = 0; i < 16; i++) a[i] = ZERO;                                                                      \
    __typeof__(seed_c) c = seed_c, x = seed_x;                                                                     \
    for (long it = 0; it < iters; it++) {                                                                          \
        _Pragma("GCC unroll 16") for (int i = 0; i < 16; i++) a[i] = STEP(a[i], c, x);                           \
        __asm__ volatile("" : "+" REG(c), "+" REG(x));                                                           \
    }                                                                                                              \
    VEC s = a[0];                                                                                                  \
    for (int i = 1; i < 16; i++) s = ADD(s, a[i]);                                                                 \
    *macs = (double)iters * 16 * (LANES);                                                                          \
    return (uint32_t)EXTRACT(s);

#if defined(__x86_64__)
#include <immintrin.h>
#define ADD _mm512_add_epi32
#define EXTRACT(v) _mm_cvtsi128_si32(_mm512_castsi512_si128(v))
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static uint32_t peak_avx512vnni(long iters, double *macs) {
    __m512i seed_c = _mm512_set1_epi8(3), seed_x = _mm512_set1_epi8(-2);
    PEAK_LOOP(__m512i, _mm512_setzero_si512(), _mm512_dpbusd_epi32, 64, "v")
}
/* Without VNNI the fastest code widens a block's sums once, not every
 * product: one vpmaddubsw and one 16-bit add per LANES products
 * (the sums wrap here; only the rate counts). */
static inline __attribute__((target("avx512f,avx512bw"))) __m512i bw_step(__m512i a, __m512i c, __m512i x) {
    return _mm512_add_epi16(a, _mm512_maddubs_epi16(c, x));
}
__attribute__((target("avx512f,avx512bw"))) static uint32_t peak_avx512bw(long iters, double *macs) {
    __m512i seed_c = _mm512_set1_epi8(3), seed_x = _mm512_set1_epi8(-2);
    PEAK_LOOP(__m512i, _mm512_setzero_si512(), bw_step, 64, "v")
}
#undef ADD
#undef EXTRACT
#define ADD _mm256_add_epi32
#define EXTRACT(v) _mm_cvtsi128_si32(_mm256_castsi256_si128(v))
__attribute__((target("avx2,avxvnni"))) static uint32_t peak_avxvnni(long iters, double *macs) {
    __m256i seed_c = _mm256_set1_epi8(3), seed_x = _mm256_set1_epi8(-2);
    PEAK_LOOP(__m256i, _mm256_setzero_si256(), _mm256_dpbusd_avx_epi32, 32, "v")
}
static inline __attribute__((target("avx2"))) __m256i avx2_step(__m256i a, __m256i c, __m256i x) {
    return _mm256_add_epi16(a, _mm256_maddubs_epi16(c, x));
}
__attribute__((target("avx2"))) static uint32_t peak_avx2(long iters, double *macs) {
    __m256i seed_c = _mm256_set1_epi8(3), seed_x = _mm256_set1_epi8(-2);
    PEAK_LOOP(__m256i, _mm256_setzero_si256(), avx2_step, 32, "v")
}
#undef ADD
#undef EXTRACT
#define ADD _mm512_add_ps
#define EXTRACT(v) (uint32_t)_mm_cvtss_f32(_mm512_castps512_ps128(v))
__attribute__((target("avx512f"))) static uint32_t peak_fma512(long iters, double *macs) {
    __m512 seed_c = _mm512_set1_ps(1.0f), seed_x = _mm512_set1_ps(0.0f);
    PEAK_LOOP(__m512, _mm512_setzero_ps(), _mm512_fmadd_ps, 16, "v")
}
#undef ADD
#undef EXTRACT
#define ADD _mm256_add_ps
#define EXTRACT(v) (uint32_t)_mm_cvtss_f32(_mm256_castps256_ps128(v))
__attribute__((target("avx2,fma"))) static uint32_t peak_fma256(long iters, double *macs) {
    __m256 seed_c = _mm256_set1_ps(1.0f), seed_x = _mm256_set1_ps(0.0f);
    PEAK_LOOP(__m256, _mm256_setzero_ps(), _mm256_fmadd_ps, 8, "v")
}
static uint32_t peak_fma(long iters, double *macs, const char **name) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return *name = "avx512 vfmadd231ps", peak_fma512(iters, macs);
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return *name = "avx2 vfmadd231ps", peak_fma256(iters, macs);
    *name = "none";
    *macs = 0;
    return 0;
}
static uint32_t peak(long iters, double *macs, const char **name) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512vnni")) return *name = "avx512-vnni vpdpbusd", peak_avx512vnni(iters, macs);
    if (__builtin_cpu_supports("avx512bw")) return *name = "avx512bw vpmaddubsw", peak_avx512bw(iters, macs);
    if (__builtin_cpu_supports("avxvnni")) return *name = "avx-vnni vpdpbusd", peak_avxvnni(iters, macs);
    if (__builtin_cpu_supports("avx2")) return *name = "avx2 vpmaddubsw", peak_avx2(iters, macs);
    *name = "none";
    *macs = 0;
    return 0;
}
#elif defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#include <arm_neon.h>
#define ADD vaddq_s32
#define EXTRACT(v) vgetq_lane_s32(v, 0)
static uint32_t peak(long iters, double *macs, const char **name) {
    int8x16_t seed_c = vdupq_n_s8(3), seed_x = vdupq_n_s8(-2);
    *name = "neon sdot";
    PEAK_LOOP(int32x4_t, vdupq_n_s32(0), vdotq_s32, 16, "w")
}
#undef ADD
#undef EXTRACT
#define ADD vaddq_f32
#define EXTRACT(v) vgetq_lane_f32(v, 0)
static uint32_t peak_fma(long iters, double *macs, const char **name) {
    float32x4_t seed_c = vdupq_n_f32(1), seed_x = vdupq_n_f32(0);
    *name = "neon fmla";
    PEAK_LOOP(float32x4_t, vdupq_n_f32(0), vfmaq_f32, 4, "w")
}
#else
static uint32_t peak(long iters, double *macs, const char **name) {
    (void)iters;
    *name = "none";
    *macs = 0;
    return 0;
}
#define peak_fma peak
#endif

/* Multiply-adds per second of the peak loop (integer, or FMA with FLOAT)
 * on NT threads (median of 9). */
static double peak_rate(int nt, int fl, const char **name) {
    double t[9], macs = 0;
    volatile uint32_t sink = 0;
    for (int r = 0; r < 9; r++) {
        double m = 0, t0 = bench_now();
#pragma omp parallel num_threads(nt) reduction(+ : m)
        {
            double mine;
            sink ^= fl ? peak_fma(PEAK_ITERS / 16, &mine, name) : peak(PEAK_ITERS / 16, &mine, name);
            m += mine;
        }
        t[r] = bench_now() - t0;
        macs = m;
    }
    return macs / bench_median(t, 9);
}

static uint64_t rng = 88172645463325252ull;
static uint32_t next(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

int main(int argc, char **argv) {
    int rows = 15680, cols = 4480, gs = 64, tokens = 64, exact = 0, dense = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--exact")) exact = 1;
        else if (!strcmp(argv[i], "--dense")) exact = dense = 1;
        else if (i + 1 == argc) break;
        else if (!strcmp(argv[i], "--rows")) rows = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cols")) cols = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--group-size")) gs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tokens")) tokens = atoi(argv[++i]);
    }
    if (rows <= 0 || cols <= 0 || gs <= 0 || cols % gs || gs % 32 || tokens <= 0) {
        fprintf(stderr, "gemm-bench: bad shape\n");
        return 2;
    }
    const size_t codes = (size_t)rows * cols / 2, sb = (size_t)rows * (cols / gs) * 2;
    uint8_t *w = kt_xmalloc(codes + 2 * sb);
    for (size_t i = 0; i < codes; i++) w[i] = (uint8_t)next();
    uint16_t *s = (uint16_t *)(w + codes);
    for (size_t i = 0; i < sb; i++) s[i] = 0x3c00 | (uint16_t)(next() & 0x7f);
    kt_linear l = {rows, cols, 1, w, KT_BF16, w + codes, w + codes + sb, 4, gs, NULL};
    uint16_t *wd = NULL;
    if (dense) { /* bf16 values in [-2, 2) */
        wd = kt_xmalloc((size_t)rows * cols * sizeof *wd);
        for (size_t i = 0; i < (size_t)rows * cols; i++) wd[i] = (uint16_t)(0x3f00 | (next() & 0x80ff));
        l = (kt_linear){rows, cols, 0, (const uint8_t *)wd, KT_BF16, NULL, NULL, 0, 0, NULL};
    }
    float *x = kt_xmalloc((size_t)tokens * cols * sizeof *x), *y = kt_xmalloc((size_t)tokens * rows * sizeof *y);
    for (size_t i = 0; i < (size_t)tokens * cols; i++) x[i] = (float)(next() % 2001) / 1000.0f - 1.0f;
    kt_qact qa = {0};
    kt_qact_quantize(&qa, x, tokens * cols);

    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    const char *name = "none";
    const double macs = (double)rows * cols * tokens;
    double t[9], rate[2], bound[2];
    for (int pass = 0; pass < 2; pass++) { /* all threads, then one */
        const int nt = pass ? 1 : threads;
#ifdef _OPENMP
        omp_set_num_threads(nt);
#endif
        bound[pass] = peak_rate(nt, exact, &name);
        for (int r = -1; r < 9; r++) { /* -1 warms: the weights in the page cache, code paged in */
            double t0 = bench_now();
            if (exact) kt_linear_apply_batch(&l, x, tokens, y);
            else kt_linear_apply_batch_q(&l, &qa, tokens, y);
            if (r < 0) continue;
            t[r] = bench_now() - t0;
        }
        rate[pass] = macs / bench_median(t, 9);
    }
    printf("{\n  \"shape\": [%d, %d], \"weights\": \"%s\", \"activations\": \"%s\", \"group_size\": %d, \"tokens\": %d,\n",
           rows, cols, dense ? "bf16" : "4-bit", exact ? "f32" : "int8", gs, tokens);
    printf("  \"threads\": %d, \"kernels\": \"%s\",\n", threads, kt_matvec_kernels());
    printf("  \"peak_instruction\": \"%s\", \"peak_GMACps\": %.1f, \"peak_GMACps_1t\": %.1f,\n", name, bound[0] / 1e9,
           bound[1] / 1e9);
    printf("  \"gemm_GMACps\": %.1f, \"gemm_GMACps_1t\": %.1f,\n", rate[0] / 1e9, rate[1] / 1e9);
    printf("  \"share_of_peak\": %.3f, \"share_of_peak_1t\": %.3f\n}\n", bound[0] > 0 ? rate[0] / bound[0] : 0,
           bound[1] > 0 ? rate[1] / bound[1] : 0);
    kt_qact_free(&qa);
    free(w), free(wd), free(x), free(y);
    return 0;
}
