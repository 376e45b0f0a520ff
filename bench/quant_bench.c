/* quant_bench.c - quantization throughput against this machine's memory
 * read bandwidth, measured on the same bytes in the same run.
 *
 *   quant-bench [--rows R] [--cols K] [--bits B] [--group-size G]
 *
 * A bf16 tensor of R x K random values (default 8192 x 8192, 128 MiB) is
 * quantized by every kernel this CPU has, with 1 and 2 threads, in both
 * modes; each figure is the median of 7 runs, in GB/s of bf16 input. The
 * memory figure is the median of 7 passes that XOR every 64-bit word of the
 * same buffer. The peer (mx.quantize) is timed by bench/quant_peers.py on a
 * tensor of the same shape; bench/run.sh prints the ratio.
 */
#include "bench_util.h"
#include "affine.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* One thread reading every word: the bandwidth a single core can pull. */
static uint64_t xor_pass(const uint8_t *p, size_t n, int threads) {
    uint64_t x = 0;
    const uint64_t *w = (const uint64_t *)p;
    size_t words = n / 8;
#pragma omp parallel for reduction(^ : x) num_threads(threads) schedule(static)
    for (size_t i = 0; i < words; i++) x ^= w[i];
    return x;
}

int main(int argc, char **argv) {
    uint64_t rows = 8192, cols = 8192;
    int bits = 4, gs = 64;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--rows")) rows = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--cols")) cols = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--bits")) bits = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--group-size")) gs = atoi(argv[i + 1]);
    }
    size_t n = (size_t)(rows * cols), in_bytes = n * 2;
    uint16_t *in = malloc(in_bytes);
    uint8_t *packed = malloc(n * (size_t)bits / 8);
    uint16_t *scales = malloc(n / (size_t)gs * 2), *biases = malloc(n / (size_t)gs * 2);
    if (!in || !packed || !scales || !biases) {
        fprintf(stderr, "quant-bench: out of memory\n");
        return 2;
    }
    uint64_t s = 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        float v = (float)((int64_t)(s >> 33) - (1ll << 30)) * (1.0f / (1 << 30)) * 0.05f;
        in[i] = kt_f32_to_bf16(v);
    }
    int max_threads = 1;
#ifdef _OPENMP
    max_threads = omp_get_num_procs();
#endif
    double t[7];
    printf("{\n  \"shape\": [%llu, %llu], \"bits\": %d, \"group_size\": %d, \"input_bytes\": %zu,\n",
           (unsigned long long)rows, (unsigned long long)cols, bits, gs, in_bytes);
    /* All one-thread figures first: once a parallel region has run, idle
     * OpenMP workers spin for a while and would slow a single thread. */
    const kt_quant_kernel kernels[] = {KT_QK_SCALAR, KT_QK_AVX2, KT_QK_AVX512, KT_QK_NEON};
    const char *names[] = {"scalar", "avx2", "avx512", "neon"};
    for (int th = 1; th <= max_threads && th <= 2; th++) {
        volatile uint64_t sink = 0;
        for (int r = 0; r < 7; r++) {
            double t0 = bench_now();
            sink ^= xor_pass((const uint8_t *)in, in_bytes, th);
            t[r] = bench_now() - t0;
        }
        (void)sink;
        printf("  \"memory_read_GBps_%dt\": %.2f,\n", th, (double)in_bytes / bench_median(t, 7) / 1e9);
        for (int ki = 0; ki < 4; ki++) {
            if (!kt_quant_kernel_available(kernels[ki])) continue;
            kt_quant_use_kernel(kernels[ki]);
            for (int mode = 0; mode < 2; mode++) {
                kt_quant_params p = {bits, gs, mode ? KT_QUANT_CPU : KT_QUANT_METAL};
                uint64_t bad;
                for (int r = 0; r < 7; r++) {
                    double t0 = bench_now();
                    if (kt_quantize_tensor(&p, KT_BF16, in, rows, cols, packed, scales, biases, th, &bad)) return 1;
                    t[r] = bench_now() - t0;
                }
                printf("  \"%s_%s_GBps_%dt\": %.2f,\n", names[ki], kt_quant_mode_name(p.mode), th,
                       (double)in_bytes / bench_median(t, 7) / 1e9);
            }
        }
    }
    printf("  \"threads_available\": %d\n}\n", max_threads);
    free(in);
    free(packed);
    free(scales);
    free(biases);
    return 0;
}
