/* matvec_bench.c - the runtime's 4-bit matrix-vector kernel against this
 * machine's memory read bandwidth, on the same bytes in the same run.
 *
 *   matvec-bench [--rows 15680] [--cols 4480] [--group-size 64] [--copies 8]
 *
 * Decoding one token reads every weight once, so a matrix-vector product can
 * at best run at the memory read bandwidth. The matrix here has the shape of
 * one Nano-9B-v2 MLP projection; COPIES distinct matrices are cycled so the
 * working set (about 35 MiB each) is far larger than the caches. Each figure
 * is the median of 9 passes: weight bytes (codes + bf16 scales + biases) per
 * second, for the dispatched kernel and for the scalar reference.
 */
#include "bench_util.h"
#include "cpu.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static uint64_t xor_pass(const uint8_t *p, size_t n) {
    uint64_t x = 0;
    const uint64_t *w = (const uint64_t *)p;
#pragma omp parallel for reduction(^ : x) schedule(static)
    for (size_t i = 0; i < n / 8; i++) x ^= w[i];
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
    uint8_t *buf = kt_xmalloc(total);
    for (size_t i = 0; i < total; i++) buf[i] = (uint8_t)next();
    kt_linear *l = kt_xcalloc((size_t)copies, sizeof *l);
    for (int c = 0; c < copies; c++) {
        uint8_t *base = buf + one * (size_t)c;
        uint16_t *s = (uint16_t *)(base + codes);
        for (size_t i = 0; i < 2 * sb / 2; i++) s[i] = 0x3c00 | (uint16_t)(next() & 0x7f); /* bf16 ~ 0.0078.. */
        l[c] = (kt_linear){rows, cols, 1, base, KT_BF16, base + codes, base + codes + sb, 4, gs};
    }
    float *x = kt_xmalloc((size_t)cols * sizeof *x), *y = kt_xmalloc((size_t)rows * sizeof *y);
    for (int i = 0; i < cols; i++) x[i] = (float)(next() % 2001) / 1000.0f - 1.0f;

    double t[9];
    volatile uint64_t sink = 0;
    for (int r = 0; r < 9; r++) {
        double t0 = bench_now();
        sink ^= xor_pass(buf, total);
        t[r] = bench_now() - t0;
    }
    double bw = (double)total / bench_median(t, 9) / 1e9;
    for (int r = 0; r < 9; r++) {
        double t0 = bench_now();
        for (int c = 0; c < copies; c++) kt_linear_apply(&l[c], x, y);
        t[r] = bench_now() - t0;
    }
    double fast = (double)total / bench_median(t, 9) / 1e9;
    kt_matvec_force_scalar(1);
    for (int r = 0; r < 3; r++) {
        double t0 = bench_now();
        kt_linear_apply(&l[0], x, y);
        t[r] = bench_now() - t0;
    }
    double ref = (double)one / bench_median(t, 3) / 1e9;
    kt_matvec_force_scalar(0);
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    printf("{\n  \"shape\": [%d, %d], \"group_size\": %d, \"threads\": %d, \"working_set_MiB\": %.0f,\n", rows, cols,
           gs, threads, (double)total / 1048576.0);
    printf("  \"memory_read_GBps\": %.2f,\n  \"matvec_GBps\": %.2f,\n  \"scalar_reference_GBps\": %.2f,\n", bw, fast,
           ref);
    printf("  \"share_of_bandwidth\": %.2f\n}\n", fast / bw);
    free(buf), free(l), free(x), free(y);
    return (int)(sink & 0);
}
