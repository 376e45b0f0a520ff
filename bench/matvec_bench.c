/* matvec_bench.c - the runtime's 4-bit matrix-vector kernels (float32 and
 * 8-bit integer activations) against this machine's memory read bandwidth,
 * on the same bytes in the same run.
 *
 *   matvec-bench [--rows 15680] [--cols 4480] [--group-size 64] [--copies 8]
 *
 * Decoding one token reads every weight once, so a matrix-vector product can
 * at best run at the memory read bandwidth. The bound is measured as the
 * fastest code would reach it: 256-bit loads into four independent
 * accumulators, and where the CPU has AVX-512 also 512-bit loads with a
 * software prefetch, on every thread, median of 15 passes each, the faster
 * of the two (a scalar XOR loop reads at half of that here and made slow
 * kernels look fast). The
 * matrix has the shape of one Nano-9B-v2 MLP projection; COPIES distinct
 * matrices are cycled so the working set (about 35 MiB each) is far larger
 * than the caches. Figures: weight bytes (codes + bf16 scales + biases) per
 * second, all threads and one thread.
 */
#include "bench_util.h"
#include "cpu.h"
#include "kernels.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__)
#include <immintrin.h>
/* One thread's share, two ways; the bound is the faster. 256-bit loads into
 * four accumulators, and 512-bit loads into four with a software prefetch
 * 8 KiB ahead (what the AVX-512 matrix kernels do). */
__attribute__((target("avx2"))) static uint64_t read_span_avx2(const uint8_t *p, size_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i *)(p + i)));
        a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
        a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
        a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    __m256i a = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    return (uint64_t)_mm256_extract_epi64(a, 0) ^ (uint64_t)_mm256_extract_epi64(a, 3);
}
__attribute__((target("avx512f"))) static uint64_t read_span_avx512(const uint8_t *p, size_t n) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 256 <= n; i += 256) {
        _mm_prefetch((const char *)(p + i + 8192), _MM_HINT_T0);
        _mm_prefetch((const char *)(p + i + 8192 + 128), _MM_HINT_T0);
        a0 = _mm512_xor_si512(a0, _mm512_load_si512((const void *)(p + i)));
        a1 = _mm512_xor_si512(a1, _mm512_load_si512((const void *)(p + i + 64)));
        a2 = _mm512_xor_si512(a2, _mm512_load_si512((const void *)(p + i + 128)));
        a3 = _mm512_xor_si512(a3, _mm512_load_si512((const void *)(p + i + 192)));
    }
    const __m512i a = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
    return (uint64_t)_mm_cvtsi128_si64(_mm512_castsi512_si128(a));
}
static int have_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}
static uint64_t read_span(const uint8_t *p, size_t n, int way) {
    return way ? read_span_avx512(p, n) : read_span_avx2(p, n);
}
#define READ_WAYS (have_avx512() ? 2 : 1)
#else
static uint64_t read_span(const uint8_t *p, size_t n, int way) {
    (void)way;
    const uint64_t *w = (const uint64_t *)p;
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (size_t i = 0; i + 4 <= n / 8; i += 4) a0 ^= w[i], a1 ^= w[i + 1], a2 ^= w[i + 2], a3 ^= w[i + 3];
    return a0 ^ a1 ^ a2 ^ a3;
}
#define READ_WAYS 1
#endif

/* N bytes (a multiple of 4 KiB, 64-byte aligned) read by THREADS threads,
 * each its own contiguous span, the WAY-th way. */
static uint64_t read_pass(const uint8_t *p, size_t n, int threads, int way) {
    uint64_t x = 0;
    const size_t span = n / (size_t)threads / 256 * 256;
#pragma omp parallel for reduction(^ : x) num_threads(threads) schedule(static)
    for (int t = 0; t < threads; t++) x ^= read_span(p + (size_t)t * span, span, way);
    return x;
}

static uint64_t rng = 88172645463325252ull;
static uint32_t next(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

int main(int argc, char **argv) {
    int rows = 15680, cols = 4480, gs = 64, copies = 8;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--rows")) rows = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--cols")) cols = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--group-size")) gs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--copies")) copies = atoi(argv[i + 1]);
    }
    if (rows <= 0 || cols <= 0 || gs <= 0 || cols % gs || copies <= 0) {
        fprintf(stderr, "matvec-bench: bad shape\n");
        return 2;
    }
    const size_t codes = (size_t)rows * cols / 2, sb = (size_t)rows * (cols / gs) * 2;
    const size_t one = codes + 2 * sb, total = one * (size_t)copies;
    uint8_t *buf = aligned_alloc(64, (total + 63) / 64 * 64);
    for (size_t i = 0; i < total; i++) buf[i] = (uint8_t)next();
    kt_linear *l = kt_xcalloc((size_t)copies, sizeof *l);
    for (int c = 0; c < copies; c++) {
        uint8_t *base = buf + one * (size_t)c;
        uint16_t *s = (uint16_t *)(base + codes);
        for (size_t i = 0; i < 2 * sb / 2; i++) s[i] = 0x3c00 | (uint16_t)(next() & 0x7f); /* bf16 ~ 0.0078.. */
        l[c] = (kt_linear){rows, cols, 1, base, KT_BF16, base + codes, base + codes + sb, 4, gs, NULL};
    }
    /* the same matrices interleaved by 8 rows (runtime/cpu/interleave.c),
     * as kintsugi-run decodes them where the kernel table has a kernel for
     * that layout */
    kt_linear *l8 = kt_xcalloc((size_t)copies, sizeof *l8);
    const kt_matvec_kernels_t *kt = kt_kernels_active();
    const int have8 = kt && kt->q4_i8_rows8 && kt_rows8_ok(&l[0]);
    const size_t one8 = have8 ? kt_rows8_bytes(&l[0]) : 0;
    uint8_t *buf8 = have8 ? aligned_alloc(64, (one8 * (size_t)copies + 63) / 64 * 64) : NULL;
    for (int c = 0; c < copies; c++) {
        l8[c] = l[c];
        if (!have8) continue;
        kt_rows8_pack(&l[c], buf8 + one8 * (size_t)c);
        l8[c].rows8 = buf8 + one8 * (size_t)c;
    }
    float *x = kt_xmalloc((size_t)cols * sizeof *x), *y = kt_xmalloc((size_t)rows * sizeof *y);
    for (int i = 0; i < cols; i++) x[i] = (float)(next() % 2001) / 1000.0f - 1.0f;

    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    double t[15], t8[9], bw[2], f32[2], i8[2], i8x[2] = {0, 0};
    volatile uint64_t sink = 0;
    kt_qact qa = {0};
    for (int pass = 0; pass < 2; pass++) { /* all threads, then one */
        const int nt = pass ? 1 : threads;
#ifdef _OPENMP
        omp_set_num_threads(nt);
#endif
        bw[pass] = 0;
        for (int way = 0; way < READ_WAYS; way++) {
            for (int r = 0; r < 15; r++) {
                double t0 = bench_now();
                sink ^= read_pass(buf, total, nt, way);
                t[r] = bench_now() - t0;
            }
            const double b = (double)total / bench_median(t, 15) / 1e9;
            if (b > bw[pass]) bw[pass] = b;
        }
        for (int r = 0; r < 9; r++) { /* alternating with the integer kernel below */
            double t0 = bench_now();
            for (int c = 0; c < copies; c++) kt_linear_apply(&l[c], x, y);
            t[r] = bench_now() - t0;
        }
        f32[pass] = (double)total / bench_median(t, 9) / 1e9;
        for (int r = 0; r < 9; r++) { /* the file's layout and the interleaved one, alternating */
            double t0 = bench_now();
            for (int c = 0; c < copies; c++) {
                kt_qact_quantize(&qa, x, cols); /* per matrix: the cost a token pays */
                kt_linear_apply_q(&l[c], &qa, y);
            }
            t[r] = bench_now() - t0;
            t0 = bench_now();
            for (int c = 0; have8 && c < copies; c++) {
                kt_qact_quantize(&qa, x, cols);
                kt_linear_apply_q(&l8[c], &qa, y);
            }
            t8[r] = bench_now() - t0;
        }
        i8[pass] = (double)total / bench_median(t, 9) / 1e9;
        if (have8) i8x[pass] = (double)total / bench_median(t8, 9) / 1e9;
    }
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    kt_matvec_force_scalar(1);
    for (int r = 0; r < 3; r++) {
        double t0 = bench_now();
        kt_linear_apply(&l[0], x, y);
        t[r] = bench_now() - t0;
    }
    double ref = (double)one / bench_median(t, 3) / 1e9;
    kt_matvec_force_scalar(0);
    printf("{\n  \"shape\": [%d, %d], \"group_size\": %d, \"threads\": %d, \"working_set_MiB\": %.0f, \"kernels\": \"%s\",\n",
           rows, cols, gs, threads, (double)total / 1048576.0, kt_matvec_kernels());
    printf("  \"memory_read_GBps\": %.2f, \"memory_read_GBps_1t\": %.2f,\n", bw[0], bw[1]);
    printf("  \"matvec_f32_GBps\": %.2f, \"matvec_f32_GBps_1t\": %.2f,\n", f32[0], f32[1]);
    printf("  \"matvec_int8_GBps\": %.2f, \"matvec_int8_GBps_1t\": %.2f,\n", i8[0], i8[1]);
    if (have8)
        printf("  \"matvec_int8_interleaved_GBps\": %.2f, \"matvec_int8_interleaved_GBps_1t\": %.2f, "
               "\"share_of_bandwidth_int8_interleaved\": %.2f,\n", i8x[0], i8x[1], i8x[0] / bw[0]);
    printf("  \"scalar_reference_GBps\": %.2f,\n", ref);
    printf("  \"share_of_bandwidth_f32\": %.2f, \"share_of_bandwidth_int8\": %.2f, \"share_of_bandwidth_int8_1t\": %.2f\n}\n",
           f32[0] / bw[0], i8[0] / bw[0], i8[1] / bw[1]);
    kt_qact_free(&qa);
    free(buf), free(buf8), free(l), free(l8), free(x), free(y);
    return (int)(sink & 0);
}
