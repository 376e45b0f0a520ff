/* test_gpu_kernels.c - every GPU kernel through a host (Vulkan, Metal) against the CPU
 * reference, on odd shapes: rows not a multiple of anything, every bit width
 * 2-8 but 7, group sizes 32/64/128, f32/f16/bf16 scales, tensors at an
 * offset inside their buffers, more rows than one dispatch dimension holds.
 *
 * The device is the host's variable's, e.g. KINTSUGI_VULKAN_DEVICE (tests/run.sh names lavapipe,
 * "llvmpipe", which runs the real SPIR-V on the CPU). A device that cannot
 * be opened is a failure, never a skip. Prints one line per test and
 * "N passed, N failed".
 *
 * Tolerance: the kernels sum in float32 in another order than the CPU
 * reference (per group scale * sum(q x) + bias * sum(x), then a tree over
 * the workgroup), so a row may differ by a few float32 rounding errors of
 * its terms: |gpu - cpu| <= 1e-5 * sum of |terms|.
 */
#include "cpu.h"
#include "nemotron_config.h"
#include "error.h"
#include "gpu_abi.h"
#include "harness.h"
#include "kernels.h"
#include "model.h"
#include "backend_gpu.h"
#include "gpu_host.h"
#include "gpu_selfcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int harness_failures;
static const kt_gpu_host *HOST; /* the host under test: argv[1], "vulkan" or "metal" */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next32(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}
static float uniform(void) { return (float)next32() / 4294967296.0f * 2.0f - 1.0f; }

static kt_dtype dtype_of(int gpu) { return gpu == KT_GPU_F32 ? KT_F32 : gpu == KT_GPU_F16 ? KT_F16 : KT_BF16; }

/* One qmv case, the codes from byte W_OFF of their buffer, the scales from
 * byte P_OFF of theirs and the biases from byte P_OFF ^ 1 (a tensor of a
 * safetensors file may start at any byte); returns the number of rows out
 * of tolerance. */
static long qmv_case(kt_gpu *dev, int rows, int cols, int bits, int gs, int pdt, uint32_t w_off, uint32_t p_off) {
    const kt_dtype t = dtype_of(pdt);
    const size_t es = kt_dtype_bits(t) / 8, groups = (size_t)rows * (size_t)(cols / gs);
    const size_t wbytes = (size_t)rows * (size_t)cols * (size_t)bits / 8;
    const uint32_t b_off = p_off ^ 1u; /* the biases elsewhere in their buffer than the scales in theirs */
    kt_gpu_buffer W, S, B, X, Y;
    int rc = HOST->buffer_new(dev, w_off + wbytes + 4, &W) | HOST->buffer_new(dev, p_off + groups * es + 4, &S) |
             HOST->buffer_new(dev, b_off + groups * es + 4, &B) | HOST->buffer_new(dev, (size_t)cols * 4, &X) |
             HOST->buffer_new(dev, (size_t)rows * 4, &Y);
    CHECK_MSG(rc == 0, "buffers: %s", kt_errmsg());
    if (rc) return rows;
    uint8_t *w = (uint8_t *)W.map + w_off;
    for (size_t i = 0; i < wbytes; i++) w[i] = (uint8_t)next32();
    float *sf = malloc(groups * sizeof *sf), *bf = malloc(groups * sizeof *bf);
    for (size_t g = 0; g < groups; g++) sf[g] = uniform() * 0.01f, bf[g] = uniform() * 0.05f;
    kt_row_from_f32(t, sf, (uint8_t *)S.map + p_off, groups);
    kt_row_from_f32(t, bf, (uint8_t *)B.map + b_off, groups);
    float *x = X.map;
    for (int j = 0; j < cols; j++) x[j] = uniform();
    kt_linear l = {.out = rows, .in = cols, .quantized = 1, .w = w, .dtype = t,
                   .scales = (uint8_t *)S.map + p_off, .biases = (uint8_t *)B.map + b_off,
                   .bits = bits, .group_size = gs};
    float *ref = malloc((size_t)rows * sizeof *ref), *deq = malloc((size_t)cols * sizeof *deq);
    kt_linear_rows_ref(&l, 0, rows, x, ref);
    kt_gpu_qmv_args a = {.rows = (uint32_t)rows, .cols = (uint32_t)cols, .bits = (uint32_t)bits, .group_size = (uint32_t)gs,
                         .param_dtype = (uint32_t)pdt, .w_offset = w_off, .s_offset = p_off, .b_offset = b_off};
    const kt_gpu_buffer *bufs[] = {&W, &S, &B, &X, &Y};
    const uint32_t gx = rows < 65535 ? (uint32_t)rows : 65535, gy = (uint32_t)((rows + 65534) / 65535);
    rc = kt_gpu_run(HOST, dev, KT_GPU_QMV, bufs, 5, &a, sizeof a, gx, gy);
    CHECK_MSG(rc == 0, "qmv: %s", kt_errmsg());
    long bad = 0;
    const float *y = Y.map;
    for (int r = 0; r < rows && rc == 0; r++) {
        kt_linear_row_ref(&l, r, deq);
        double mag = 0;
        for (int j = 0; j < cols; j++) mag += fabs((double)deq[j] * x[j]);
        if (!(fabs((double)y[r] - ref[r]) <= 1e-5 * mag + 1e-30)) {
            if (bad < 3)
                fprintf(stderr, "  qmv %dx%d bits %d group %d dtype %d row %d: gpu %.9g cpu %.9g\n", rows, cols, bits, gs,
                        pdt, r, y[r], ref[r]);
            bad++;
        }
    }
    free(sf), free(bf), free(ref), free(deq);
    HOST->buffer_free(dev, &W), HOST->buffer_free(dev, &S), HOST->buffer_free(dev, &B);
    HOST->buffer_free(dev, &X), HOST->buffer_free(dev, &Y);
    return bad + (rc != 0);
}

static void test_qmv(kt_gpu *dev) {
    static const int bits[] = {2, 3, 4, 5, 6, 8}, gss[] = {32, 64, 128}, rows[] = {1, 7, 67}, mult[] = {1, 3, 5};
    long bad = 0, cases = 0;
    for (int b = 0; b < 6; b++)
        for (int g = 0; g < 3; g++)
            for (int d = 0; d < 3; d++)
                for (int r = 0; r < 3; r++) {
                    const int cols = gss[g] * mult[(b + r) % 3];
                    bad += qmv_case(dev, rows[r], cols, bits[b], gss[g], d, (uint32_t)(r * 5 + b), (uint32_t)(r * 3 + d));
                    cases++;
                }
    /* more rows than one dispatch dimension holds, and a Nano-9B row length */
    bad += qmv_case(dev, 70001, 32, 4, 32, KT_GPU_BF16, 0, 0);
    bad += qmv_case(dev, 33, 4480, 4, 64, KT_GPU_BF16, 1, 1);
    bad += qmv_case(dev, 9, 4480, 8, 128, KT_GPU_F16, 0, 2);
    CHECK_MSG(bad == 0, "%ld rows out of tolerance", bad);
    fprintf(stderr, "  qmv: %ld cases plus 3 large ones, every row within tolerance\n", cases);
}

/* The prompt's product: 13 tokens as a block of 8 and one of 5 (the
 * offsets into X and Y), each token's row equal to the matvec's reference. */
static void test_qmm(kt_gpu *dev) {
    static const int cfgs[][4] = {{4, 64, KT_GPU_BF16, 37}, {3, 32, KT_GPU_F16, 5}, {8, 128, KT_GPU_F32, 20},
                                  {6, 64, KT_GPU_BF16, 70001}};
    long bad = 0;
    for (int c = 0; c < 4; c++) {
        const int bits = cfgs[c][0], gs = cfgs[c][1], pdt = cfgs[c][2], rows = cfgs[c][3];
        const int cols = c == 3 ? 64 : gs * 3, T = c == 3 ? 3 : 13;
        const kt_dtype t = dtype_of(pdt);
        const size_t es = kt_dtype_bits(t) / 8, groups = (size_t)rows * (cols / gs), wbytes = (size_t)rows * cols * bits / 8;
        kt_gpu_buffer W, S, B, X, Y;
        int rc = HOST->buffer_new(dev, wbytes + 8, &W) | HOST->buffer_new(dev, groups * es + 4, &S) |
                 HOST->buffer_new(dev, groups * es + 1 + 4, &B) | HOST->buffer_new(dev, (size_t)T * cols * 4, &X) |
                 HOST->buffer_new(dev, (size_t)T * rows * 4, &Y);
        CHECK_MSG(rc == 0, "buffers: %s", kt_errmsg());
        if (rc) return;
        uint8_t *w = W.map;
        for (size_t i = 0; i < wbytes; i++) w[i] = (uint8_t)next32();
        float *tmp = malloc(groups * sizeof *tmp), *deq = malloc((size_t)cols * 4);
        for (size_t i = 0; i < groups; i++) tmp[i] = uniform() * 0.01f;
        kt_row_from_f32(t, tmp, S.map, groups);
        for (size_t i = 0; i < groups; i++) tmp[i] = uniform() * 0.05f;
        kt_row_from_f32(t, tmp, (uint8_t *)B.map + 1, groups); /* the biases from byte 1 */
        float *x = X.map;
        for (int i = 0; i < T * cols; i++) x[i] = uniform();
        kt_linear l = {.out = rows, .in = cols, .quantized = 1, .w = w, .dtype = t, .scales = S.map,
                       .biases = (uint8_t *)B.map + 1, .bits = bits, .group_size = gs};
        const kt_gpu_buffer *bufs[] = {&W, &S, &B, &X, &Y};
        for (int t0 = 0; t0 < T && rc == 0; t0 += KT_QMM_MAX_TOKENS) {
            const int n = T - t0 < KT_QMM_MAX_TOKENS ? T - t0 : KT_QMM_MAX_TOKENS;
            kt_gpu_qmm_args a = {.rows = (uint32_t)rows, .cols = (uint32_t)cols, .bits = (uint32_t)bits,
                                 .group_size = (uint32_t)gs, .param_dtype = (uint32_t)pdt, .b_offset = 1,
                                 .tokens = (uint32_t)n, .x_offset = (uint32_t)(t0 * cols), .y_offset = (uint32_t)(t0 * rows)};
            rc = kt_gpu_run(HOST, dev, KT_GPU_QMM, bufs, 5, &a, sizeof a, rows < 65535 ? (uint32_t)rows : 65535,
                           (uint32_t)((rows + 65534) / 65535));
            CHECK_MSG(rc == 0, "qmm: %s", kt_errmsg());
        }
        const float *y = Y.map;
        float *refs = malloc((size_t)T * rows * sizeof *refs);
        for (int tk = 0; tk < T; tk++) kt_linear_rows_ref(&l, 0, rows, x + (size_t)tk * cols, refs + (size_t)tk * rows);
        for (int r = 0; r < rows && rc == 0; r++) {
            kt_linear_row_ref(&l, r, deq);
            for (int tk = 0; tk < T; tk++) {
                double mag = 0;
                for (int j = 0; j < cols; j++) mag += fabs((double)deq[j] * x[(size_t)tk * cols + j]);
                const float got = y[(size_t)tk * rows + r], want = refs[(size_t)tk * rows + r];
                if (!(fabs((double)got - want) <= 1e-5 * mag + 1e-30)) {
                    if (bad < 3) fprintf(stderr, "  qmm bits %d group %d token %d row %d: gpu %.9g cpu %.9g\n", bits, gs, tk, r, got, want);
                    bad++;
                }
            }
        }
        free(refs);
        free(tmp), free(deq);
        HOST->buffer_free(dev, &W), HOST->buffer_free(dev, &S), HOST->buffer_free(dev, &B);
        HOST->buffer_free(dev, &X), HOST->buffer_free(dev, &Y);
    }
    CHECK_MSG(bad == 0, "%ld outputs out of tolerance", bad);
}

/* The original's prompt product: 13 tokens as a block of 8 and one of 5,
 * every dtype, the matrix from an unaligned byte, and 70,001 rows; each
 * token's row within the dense matvec's tolerance of the CPU's. */
static void test_mm_dense(kt_gpu *dev) {
    static const int shapes[][2] = {{7, 33}, {67, 200}, {70001, 3}};
    long bad = 0;
    for (int d = 0; d < 3; d++)
        for (int c = 0; c < 3; c++) {
            const int rows = shapes[c][0], cols = shapes[c][1], T = 13;
            const kt_dtype t = dtype_of(d);
            const size_t es = kt_dtype_bits(t) / 8, n = (size_t)rows * cols, off = (size_t)(d + c + 1); /* bytes */
            kt_gpu_buffer W, X, Y;
            int rc = HOST->buffer_new(dev, n * es + off + 4, &W) | HOST->buffer_new(dev, (size_t)T * cols * 4, &X) |
                     HOST->buffer_new(dev, (size_t)T * rows * 4, &Y);
            CHECK_MSG(rc == 0, "buffers: %s", kt_errmsg());
            if (rc) return;
            float *wf = malloc(n * sizeof *wf), *ref = malloc((size_t)rows * sizeof *ref);
            for (size_t i = 0; i < n; i++) wf[i] = uniform();
            kt_row_from_f32(t, wf, (uint8_t *)W.map + off, n);
            kt_row_to_f32(t, (uint8_t *)W.map + off, wf, n);
            float *x = X.map;
            for (int i = 0; i < T * cols; i++) x[i] = uniform();
            kt_linear l = {.out = rows, .in = cols, .w = (uint8_t *)W.map + off, .dtype = t};
            const kt_gpu_buffer *bufs[] = {&W, &X, &Y};
            for (int t0 = 0; t0 < T && rc == 0; t0 += KT_QMM_MAX_TOKENS) {
                const int k = T - t0 < KT_QMM_MAX_TOKENS ? T - t0 : KT_QMM_MAX_TOKENS;
                kt_gpu_mm_dense_args a = {.rows = (uint32_t)rows, .cols = (uint32_t)cols, .w_dtype = (uint32_t)d,
                                          .w_offset = (uint32_t)off, .tokens = (uint32_t)k,
                                          .x_offset = (uint32_t)(t0 * cols), .y_offset = (uint32_t)(t0 * rows)};
                rc = kt_gpu_run(HOST, dev, KT_GPU_MM_DENSE, bufs, 3, &a, sizeof a, rows < 65535 ? (uint32_t)rows : 65535,
                               (uint32_t)((rows + 65534) / 65535));
                CHECK_MSG(rc == 0, "mm_dense: %s", kt_errmsg());
            }
            const float *y = Y.map;
            for (int tk = 0; tk < T && rc == 0; tk++) {
                kt_linear_rows_ref(&l, 0, rows, x + (size_t)tk * cols, ref);
                for (int r = 0; r < rows; r++) {
                    double mag = 0;
                    for (int j = 0; j < cols; j++) mag += fabs((double)wf[(size_t)r * cols + j] * x[(size_t)tk * cols + j]);
                    const float got = y[(size_t)tk * rows + r];
                    if (!(fabs((double)got - ref[r]) <= 1e-5 * mag + 1e-30)) {
                        if (bad < 3) fprintf(stderr, "  mm_dense %dx%d dtype %d token %d row %d: gpu %.9g cpu %.9g\n", rows, cols, d, tk, r, got, ref[r]);
                        bad++;
                    }
                }
            }
            free(wf), free(ref);
            HOST->buffer_free(dev, &W), HOST->buffer_free(dev, &X), HOST->buffer_free(dev, &Y);
        }
    CHECK_MSG(bad == 0, "%ld outputs out of tolerance", bad);
}

/* The dense matvec of the original (bf16, f16, f32 weights). */
static void test_mv_dense(kt_gpu *dev) {
    static const int shapes[][2] = {{1, 1}, {7, 33}, {67, 200}, {70001, 3}, {5, 4480}};
    long bad = 0;
    for (int d = 0; d < 3; d++)
        for (int c = 0; c < 5; c++) {
            const int rows = shapes[c][0], cols = shapes[c][1];
            const kt_dtype t = dtype_of(d);
            const size_t es = kt_dtype_bits(t) / 8, n = (size_t)rows * cols, off = (size_t)c; /* bytes */
            kt_gpu_buffer W, X, Y;
            int rc = HOST->buffer_new(dev, n * es + off + 4, &W) | HOST->buffer_new(dev, (size_t)cols * 4, &X) |
                     HOST->buffer_new(dev, (size_t)rows * 4, &Y);
            CHECK_MSG(rc == 0, "buffers: %s", kt_errmsg());
            if (rc) return;
            float *wf = malloc(n * sizeof *wf), *ref = malloc((size_t)rows * sizeof *ref);
            for (size_t i = 0; i < n; i++) wf[i] = uniform();
            kt_row_from_f32(t, wf, (uint8_t *)W.map + off, n);
            float *x = X.map;
            for (int j = 0; j < cols; j++) x[j] = uniform();
            kt_linear l = {.out = rows, .in = cols, .w = (uint8_t *)W.map + off, .dtype = t};
            kt_linear_rows_ref(&l, 0, rows, x, ref);
            kt_row_to_f32(t, (uint8_t *)W.map + off, wf, n);
            kt_gpu_mv_dense_args a = {.rows = (uint32_t)rows, .cols = (uint32_t)cols, .w_dtype = (uint32_t)d,
                                      .w_offset = (uint32_t)off};
            const kt_gpu_buffer *bufs[] = {&W, &X, &Y};
            rc = kt_gpu_run(HOST, dev, KT_GPU_MV_DENSE, bufs, 3, &a, sizeof a, rows < 65535 ? (uint32_t)rows : 65535,
                           (uint32_t)((rows + 65534) / 65535));
            CHECK_MSG(rc == 0, "mv_dense: %s", kt_errmsg());
            const float *y = Y.map;
            for (int r = 0; r < rows && rc == 0; r++) {
                double mag = 0;
                for (int j = 0; j < cols; j++) mag += fabs((double)wf[(size_t)r * cols + j] * x[j]);
                if (!(fabs((double)y[r] - ref[r]) <= 1e-5 * mag + 1e-30)) {
                    if (bad < 3) fprintf(stderr, "  mv_dense %dx%d dtype %d row %d: gpu %.9g cpu %.9g\n", rows, cols, d, r, y[r], ref[r]);
                    bad++;
                }
            }
            free(wf), free(ref);
            HOST->buffer_free(dev, &W), HOST->buffer_free(dev, &X), HOST->buffer_free(dev, &Y);
        }
    CHECK_MSG(bad == 0, "%ld rows out of tolerance", bad);
}

/* The embedding lookup: a dequantized row equals the CPU's value for value
 * (one product and one sum, each rounded to float32). */
static void test_qrow(kt_gpu *dev) {
    static const int bits[] = {2, 3, 4, 5, 6, 8}, gss[] = {32, 64, 128};
    long bad = 0;
    for (int b = 0; b < 6; b++)
        for (int g = 0; g < 3; g++)
            for (int d = 0; d < 3; d++) {
                const int rows = 11, cols = gss[g] * (1 + (b + d) % 3), gs = gss[g];
                const kt_dtype t = dtype_of(d);
                const size_t es = kt_dtype_bits(t) / 8, groups = (size_t)rows * (cols / gs);
                const size_t wbytes = (size_t)rows * cols * bits[b] / 8;
                const uint32_t w_off = (uint32_t)(d + b), p_off = (uint32_t)(b % 3), b_off = p_off ^ 1u; /* bytes */
                kt_gpu_buffer W, S, B, Y;
                int rc = HOST->buffer_new(dev, w_off + wbytes + 4, &W) | HOST->buffer_new(dev, p_off + groups * es + 4, &S) |
                         HOST->buffer_new(dev, b_off + groups * es + 4, &B) | HOST->buffer_new(dev, (size_t)cols * 4, &Y);
                CHECK_MSG(rc == 0, "buffers: %s", kt_errmsg());
                if (rc) return;
                uint8_t *w = (uint8_t *)W.map + w_off;
                for (size_t i = 0; i < wbytes; i++) w[i] = (uint8_t)next32();
                float *sf = malloc(groups * sizeof *sf), *ref = malloc((size_t)cols * sizeof *ref);
                for (size_t i = 0; i < groups; i++) sf[i] = uniform() * 0.01f;
                kt_row_from_f32(t, sf, (uint8_t *)S.map + p_off, groups);
                for (size_t i = 0; i < groups; i++) sf[i] = uniform() * 0.05f;
                kt_row_from_f32(t, sf, (uint8_t *)B.map + b_off, groups);
                kt_linear l = {.out = rows, .in = cols, .quantized = 1, .w = w, .dtype = t,
                               .scales = (uint8_t *)S.map + p_off, .biases = (uint8_t *)B.map + b_off,
                               .bits = bits[b], .group_size = gs};
                for (int r = 0; r < rows; r += 5) {
                    kt_linear_row_ref(&l, r, ref);
                    kt_gpu_qrow_args a = {.row = (uint32_t)r, .cols = (uint32_t)cols, .bits = (uint32_t)bits[b],
                                          .group_size = (uint32_t)gs, .param_dtype = (uint32_t)d, .w_offset = w_off,
                                          .s_offset = p_off, .b_offset = b_off};
                    const kt_gpu_buffer *bufs[] = {&W, &S, &B, &Y};
                    rc = kt_gpu_run(HOST, dev, KT_GPU_QROW, bufs, 4, &a, sizeof a, (uint32_t)(cols + KT_QROW_THREADS - 1) / KT_QROW_THREADS, 1);
                    CHECK_MSG(rc == 0, "qrow: %s", kt_errmsg());
                    bad += rc != 0 || memcmp(Y.map, ref, (size_t)cols * 4) != 0;
                }
                free(sf), free(ref);
                HOST->buffer_free(dev, &W), HOST->buffer_free(dev, &S), HOST->buffer_free(dev, &B), HOST->buffer_free(dev, &Y);
            }
    CHECK_MSG(bad == 0, "%ld rows differ from the CPU's", bad);
}

/* The original's embedding lookup: a dense row of f32, f16 or bf16 widened
 * to float32 equals the CPU's bit for bit, the matrix from any byte. */
static void test_drow(kt_gpu *dev) {
    long bad = 0;
    for (int d = 0; d < 3; d++)
        for (uint32_t off = 0; off < 4; off++) {
            const int rows = 6, cols = 77 + (int)off;
            const kt_dtype t = dtype_of(d);
            const size_t es = kt_dtype_bits(t) / 8, n = (size_t)rows * cols;
            kt_gpu_buffer W, Y;
            int rc = HOST->buffer_new(dev, off + n * es + 4, &W) | HOST->buffer_new(dev, (size_t)cols * 4, &Y);
            CHECK_MSG(rc == 0, "buffers: %s", kt_errmsg());
            if (rc) return;
            float *wf = malloc(n * sizeof *wf), *ref = malloc((size_t)cols * sizeof *ref);
            for (size_t i = 0; i < n; i++) wf[i] = uniform() * 100.0f;
            kt_row_from_f32(t, wf, (uint8_t *)W.map + off, n);
            kt_linear l = {.out = rows, .in = cols, .w = (uint8_t *)W.map + off, .dtype = t};
            for (int r = 0; r < rows; r++) {
                kt_linear_row_ref(&l, r, ref);
                kt_gpu_drow_args a = {.row = (uint32_t)r, .cols = (uint32_t)cols, .w_dtype = (uint32_t)d, .w_offset = off};
                const kt_gpu_buffer *bufs[] = {&W, &Y};
                rc = kt_gpu_run(HOST, dev, KT_GPU_DROW, bufs, 2, &a, sizeof a, (uint32_t)(cols + KT_QROW_THREADS - 1) / KT_QROW_THREADS, 1);
                CHECK_MSG(rc == 0, "drow: %s", kt_errmsg());
                bad += rc != 0 || memcmp(Y.map, ref, (size_t)cols * 4) != 0;
            }
            free(wf), free(ref);
            HOST->buffer_free(dev, &W), HOST->buffer_free(dev, &Y);
        }
    CHECK_MSG(bad == 0, "%ld rows differ from the CPU's", bad);
}

static void test_rmsnorm(kt_gpu *dev) {
    static const int ns[] = {1, 7, 100, 257, 4480};
    long bad = 0;
    for (int c = 0; c < 5; c++) {
        const int n = ns[c], xo = c, yo = 2 * c + 1; /* one token's row of a prompt's matrix */
        kt_gpu_buffer X, Wt, Y;
        int rc = HOST->buffer_new(dev, (size_t)(n + xo) * 4, &X) | HOST->buffer_new(dev, (size_t)n * 4, &Wt) |
                 HOST->buffer_new(dev, (size_t)(n + yo) * 4, &Y);
        CHECK_MSG(rc == 0, "buffers: %s", kt_errmsg());
        if (rc) return;
        float *x = (float *)X.map + xo, *w = Wt.map, *ref = malloc((size_t)n * sizeof *ref);
        for (int i = 0; i < n; i++) x[i] = uniform() * 3, w[i] = 1 + uniform() * 0.1f;
        const float eps = 1e-5f;
        kt_vec v = {.data = (const uint8_t *)w, .dtype = KT_F32, .n = n, .f = w};
        kt_rmsnorm(ref, x, &v, n, eps);
        uint32_t eps_bits;
        memcpy(&eps_bits, &eps, 4);
        kt_gpu_rmsnorm_args a = {.n = (uint32_t)n, .eps_bits = eps_bits, .x_offset = (uint32_t)xo, .y_offset = (uint32_t)yo};
        const kt_gpu_buffer *bufs[] = {&X, &Wt, &Y};
        rc = kt_gpu_run(HOST, dev, KT_GPU_RMSNORM, bufs, 3, &a, sizeof a, 1, 1);
        CHECK_MSG(rc == 0, "rmsnorm: %s", kt_errmsg());
        const float *y = (const float *)Y.map + yo;
        for (int i = 0; i < n && rc == 0; i++)
            if (!(fabsf(y[i] - ref[i]) <= 1e-5f * fabsf(ref[i]) + 1e-6f)) {
                if (bad < 3) fprintf(stderr, "  rmsnorm n %d [%d]: gpu %.9g cpu %.9g\n", n, i, y[i], ref[i]);
                bad++;
            }
        free(ref);
        HOST->buffer_free(dev, &X), HOST->buffer_free(dev, &Wt), HOST->buffer_free(dev, &Y);
    }
    CHECK_MSG(bad == 0, "%ld values out of tolerance", bad);
}

/* A float32 kt_vec over V (N values). */
static kt_vec vec_of(float *v, int n) { return (kt_vec){.data = (const uint8_t *)v, .dtype = KT_F32, .n = n, .f = v}; }

/* The Mamba-2 step: the three kernels against kt_mamba2_step over several
 * tokens (the window and the state carried on the device), odd sizes: a
 * state not a multiple of the CPU's 16 lanes, groups of several heads. */
static void mamba_case(kt_gpu *dev, int heads, int P, int G, int N, int K, int steps, long *bad) {
    kt_config c;
    memset(&c, 0, sizeof c);
    c.m_heads = heads, c.m_head_dim = P, c.n_groups = G, c.state = N, c.conv = K;
    c.eps = 1e-5f, c.dt_min = 0.0f, c.dt_max = (heads % 2) ? INFINITY : 0.05f;
    const int I = heads * P, dim = I + 2 * G * N, nproj = I + dim + heads;
    kt_gpu_buffer Proj, Win, Wt, Bs, Xbc, St, Par, Y, Gn;
    int rc = HOST->buffer_new(dev, (size_t)nproj * 4, &Proj) | HOST->buffer_new(dev, (size_t)(K - 1) * dim * 4 + 4, &Win) |
             HOST->buffer_new(dev, (size_t)dim * K * 4, &Wt) | HOST->buffer_new(dev, (size_t)dim * 4, &Bs) |
             HOST->buffer_new(dev, (size_t)dim * 4, &Xbc) | HOST->buffer_new(dev, (size_t)I * N * 4, &St) |
             HOST->buffer_new(dev, (size_t)3 * heads * 4, &Par) | HOST->buffer_new(dev, (size_t)I * 4, &Y) |
             HOST->buffer_new(dev, (size_t)I * 4, &Gn);
    CHECK_MSG(rc == 0, "buffers: %s", kt_errmsg());
    if (rc) return;
    float *cw = Wt.map, *cb = Bs.map, *par = Par.map, *gn = Gn.map;
    for (int i = 0; i < dim * K; i++) cw[i] = uniform() * 0.5f;
    for (int i = 0; i < dim; i++) cb[i] = uniform() * 0.1f;
    for (int h = 0; h < heads; h++) {
        par[h] = logf(expm1f(0.001f + 0.05f * (uniform() + 1)));   /* dt_bias */
        par[heads + h] = logf(1 + 7.5f * (uniform() + 1));        /* A_log */
        par[2 * heads + h] = 1 + 0.1f * uniform();                /* D */
    }
    for (int i = 0; i < I; i++) gn[i] = 1 + 0.1f * uniform();
    kt_layer L;
    memset(&L, 0, sizeof L);
    L.conv_w = vec_of(cw, dim * K), L.conv_b = vec_of(cb, dim), L.dt_bias = vec_of(par, heads);
    L.A_log = vec_of(par + heads, heads), L.D = vec_of(par + 2 * heads, heads), L.gnorm = vec_of(gn, I);
    float *win = calloc((size_t)(K - 1) * dim + 1, 4), *st = calloc((size_t)I * N, 4), *y = malloc((size_t)I * 4);
    float *tmp = malloc((size_t)dim * 4), *proj = Proj.map;
    memset(Win.map, 0, Win.size), memset(St.map, 0, St.size);
    uint32_t dmin, dmax, eps;
    memcpy(&dmin, &c.dt_min, 4), memcpy(&dmax, &c.dt_max, 4), memcpy(&eps, &c.eps, 4);
    kt_gpu_mamba_args a = {.heads = (uint32_t)heads, .head_dim = (uint32_t)P, .groups = (uint32_t)G, .state = (uint32_t)N,
                           .conv = (uint32_t)K, .dt_min_bits = dmin, .dt_max_bits = dmax, .eps_bits = eps};
    for (int t = 0; t < steps && rc == 0; t++) {
        for (int i = 0; i < nproj; i++) proj[i] = uniform() * 2;
        kt_mamba2_step(&c, &L, win, st, proj, y, tmp);
        const kt_gpu_buffer *conv_bufs[] = {&Proj, &Win, &Wt, &Bs, &Xbc};
        const kt_gpu_buffer *ssm_bufs[] = {&Proj, &Xbc, &St, &Par, &Y};
        const kt_gpu_buffer *gate_bufs[] = {&Proj, &Gn, &Y};
        rc = kt_gpu_run(HOST, dev, KT_GPU_MAMBA_CONV, conv_bufs, 5, &a, sizeof a, (uint32_t)(dim + 63) / 64, 1) ||
             kt_gpu_run(HOST, dev, KT_GPU_MAMBA_SSM, ssm_bufs, 5, &a, sizeof a, (uint32_t)(I + 63) / 64, 1) ||
             kt_gpu_run(HOST, dev, KT_GPU_MAMBA_GATE, gate_bufs, 3, &a, sizeof a, (uint32_t)G, 1);
        CHECK_MSG(rc == 0, "mamba: %s", kt_errmsg());
        const float *gy = Y.map, *gst = St.map, *gw = Win.map;
        for (int i = 0; i < I && rc == 0; i++)
            if (!(fabsf(gy[i] - y[i]) <= 2e-4f * (fabsf(y[i]) + 1e-2f))) {
                if (*bad < 3) fprintf(stderr, "  mamba h%d P%d G%d N%d K%d step %d y[%d]: gpu %.9g cpu %.9g\n", heads, P, G, N, K, t, i, gy[i], y[i]);
                ++*bad;
            }
        for (int i = 0; i < I * N && rc == 0; i++)
            if (!(fabsf(gst[i] - st[i]) <= 2e-4f * (fabsf(st[i]) + 1e-3f))) {
                if (*bad < 3) fprintf(stderr, "  mamba state[%d] step %d: gpu %.9g cpu %.9g\n", i, t, gst[i], st[i]);
                ++*bad;
            }
        *bad += memcmp(gw, win, (size_t)(K - 1) * dim * 4) != 0; /* the window only moves values */
    }
    free(win), free(st), free(y), free(tmp);
    kt_gpu_buffer *all[] = {&Proj, &Win, &Wt, &Bs, &Xbc, &St, &Par, &Y, &Gn};
    for (int i = 0; i < 9; i++) HOST->buffer_free(dev, all[i]);
}

static void test_mamba(kt_gpu *dev) {
    long bad = 0;
    mamba_case(dev, 6, 5, 2, 24, 4, 3, &bad);
    mamba_case(dev, 3, 16, 3, 16, 4, 3, &bad);
    mamba_case(dev, 8, 7, 1, 40, 2, 2, &bad);
    mamba_case(dev, 128, 8, 8, 128, 4, 2, &bad); /* Nano-9B's heads, groups and state (head_dim 80 cut to 8) */
    CHECK_MSG(bad == 0, "%ld values out of tolerance", bad);
}

/* Attention of one token over the cache against kt_attend: grouped
 * query heads, one position or many (more than a workgroup's threads). */
static void test_attend(kt_gpu *dev) {
    static const int shapes[][4] = {{4, 2, 8, 0}, {6, 3, 16, 70}, {40, 8, 128, 200}, {2, 1, 24, 1}};
    long bad = 0;
    for (int c = 0; c < 4; c++) {
        const int H = shapes[c][0], KV = shapes[c][1], hd = shapes[c][2], pos = shapes[c][3], n = pos + 1;
        kt_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.heads = H, cfg.kv_heads = KV, cfg.head_dim = hd;
        kt_gpu_buffer Q, K, V, S, O;
        int rc = HOST->buffer_new(dev, (size_t)H * hd * 4, &Q) | HOST->buffer_new(dev, (size_t)n * KV * hd * 4, &K) |
                 HOST->buffer_new(dev, (size_t)n * KV * hd * 4, &V) | HOST->buffer_new(dev, (size_t)H * n * 4, &S) |
                 HOST->buffer_new(dev, (size_t)H * hd * 4, &O);
        CHECK_MSG(rc == 0, "buffers: %s", kt_errmsg());
        if (rc) return;
        float *q = Q.map, *k = K.map, *v = V.map, *ref = malloc((size_t)H * hd * 4), *tmp = malloc((size_t)n * 4);
        for (int i = 0; i < H * hd; i++) q[i] = uniform();
        for (int i = 0; i < n * KV * hd; i++) k[i] = uniform(), v[i] = uniform();
        kt_attend(&cfg, k, v, pos, q, ref, tmp);
        kt_gpu_attend_args a = {.heads = (uint32_t)H, .kv_heads = (uint32_t)KV, .head_dim = (uint32_t)hd, .pos = (uint32_t)pos};
        const kt_gpu_buffer *bufs[] = {&Q, &K, &V, &S, &O};
        rc = kt_gpu_run(HOST, dev, KT_GPU_ATTEND, bufs, 5, &a, sizeof a, (uint32_t)H, 1);
        CHECK_MSG(rc == 0, "attend: %s", kt_errmsg());
        const float *o = O.map;
        for (int i = 0; i < H * hd && rc == 0; i++)
            if (!(fabsf(o[i] - ref[i]) <= 2e-5f)) { /* a weighted mean of values in [-1, 1] */
                if (bad < 3) fprintf(stderr, "  attend H%d KV%d hd%d pos %d [%d]: gpu %.9g cpu %.9g\n", H, KV, hd, pos, i, o[i], ref[i]);
                bad++;
            }
        free(ref), free(tmp);
        HOST->buffer_free(dev, &Q), HOST->buffer_free(dev, &K), HOST->buffer_free(dev, &V);
        HOST->buffer_free(dev, &S), HOST->buffer_free(dev, &O);
    }
    CHECK_MSG(bad == 0, "%ld values out of tolerance", bad);
}

/* ReLU^2 and the residual add: exactly the CPU's float operations. */
static void test_ewise(kt_gpu *dev) {
    const int n = 1000, yo = 7, ao = 2; /* rows of a prompt's matrices */
    kt_gpu_buffer Y, A;
    int rc = HOST->buffer_new(dev, (size_t)(n + yo) * 4, &Y) | HOST->buffer_new(dev, (size_t)(n + ao) * 4, &A);
    CHECK_MSG(rc == 0, "buffers: %s", kt_errmsg());
    if (rc) return;
    float *y = (float *)Y.map + yo, *a = (float *)A.map + ao, want[1000];
    long bad = 0;
    for (int op = 0; op < 2; op++) {
        for (int i = 0; i < n; i++) y[i] = uniform() * 3, a[i] = uniform();
        y[0] = -0.0f, y[1] = NAN, y[2] = 0.0f;
        /* MLX's relu2: square(maximum(x, 0)), NaN propagated */
        for (int i = 0; i < n; i++)
            want[i] = op == KT_EWISE_RELU2 ? (y[i] > 0 || isnan(y[i]) ? y[i] * y[i] : 0) : y[i] + a[i];
        kt_gpu_ewise_args args = {.n = (uint32_t)n, .op = (uint32_t)op, .y_offset = yo, .a_offset = ao};
        const kt_gpu_buffer *bufs[] = {&Y, &A};
        rc = kt_gpu_run(HOST, dev, KT_GPU_EWISE, bufs, 2, &args, sizeof args, (uint32_t)(n + 63) / 64, 1);
        CHECK_MSG(rc == 0, "ewise: %s", kt_errmsg());
        for (int i = 0; i < n; i++) bad += memcmp(&y[i], &want[i], 4) != 0 && !(isnan(y[i]) && isnan(want[i]));
    }
    CHECK_MSG(bad == 0, "%ld values differ from the CPU's", bad);
    HOST->buffer_free(dev, &Y), HOST->buffer_free(dev, &A);
}

/* The router against kt_moe_route: the same experts in the same order and
 * the same factors up to exp()'s rounding, with and without expert groups,
 * normalised or not; ties included (equal logits: the lowest index wins). */
static void test_moe_route(kt_gpu *dev) {
    static const int shapes[][5] = {/* E, K, n_group, topk_group, norm */
                                    {4, 2, 1, 1, 1}, {8, 1, 1, 1, 0}, {64, 6, 8, 4, 1}, {128, 8, 8, 2, 1},
                                    {16, 4, 4, 2, 0}, {6, 3, 2, 1, 1}};
    long bad = 0;
    for (int c = 0; c < 6; c++) {
        for (int trial = 0; trial < 20; trial++) {
            const int E = shapes[c][0], K = shapes[c][1], G = shapes[c][2];
            kt_config cfg;
            memset(&cfg, 0, sizeof cfg);
            cfg.n_experts = E, cfg.top_k = K, cfg.n_group = G, cfg.topk_group = shapes[c][3];
            cfg.norm_topk = shapes[c][4], cfg.routed_scale = 2.5f;
            kt_gpu_buffer S, B, C, W, X;
            int rc = HOST->buffer_new(dev, (size_t)E * 4, &S) | HOST->buffer_new(dev, (size_t)E * 4, &B) |
                     HOST->buffer_new(dev, (size_t)K * 4, &C) | HOST->buffer_new(dev, (size_t)K * 4, &W) |
                     HOST->buffer_new(dev, (size_t)(E + G + K) * 4, &X);
            CHECK_MSG(rc == 0, "buffers: %s", kt_errmsg());
            if (rc) return;
            float *logits = S.map, *bias = B.map, score[128], weight[8], scratch[128 + 8 + 8];
            int chosen[8];
            for (int e = 0; e < E; e++) logits[e] = uniform() * 4, bias[e] = uniform() * 0.1f;
            if (trial % 4 == 1) /* ties: every logit and bias equal */
                for (int e = 0; e < E; e++) logits[e] = 0.5f, bias[e] = 0.0f;
            memcpy(score, logits, (size_t)E * 4);
            kt_vec bv = {.data = (const uint8_t *)bias, .dtype = KT_F32, .n = E, .f = bias};
            kt_moe_route(&cfg, &bv, score, chosen, weight, scratch);
            kt_gpu_moe_route_args a = {(uint32_t)E, (uint32_t)K, (uint32_t)G, (uint32_t)cfg.topk_group,
                                       (uint32_t)cfg.norm_topk, 0};
            memcpy(&a.routed_scale_bits, &cfg.routed_scale, 4);
            const kt_gpu_buffer *bufs[] = {&S, &B, &C, &W, &X};
            rc = kt_gpu_run(HOST, dev, KT_GPU_MOE_ROUTE, bufs, 5, &a, sizeof a, 1, 1);
            CHECK_MSG(rc == 0, "moe_route: %s", kt_errmsg());
            const uint32_t *gc = C.map;
            const float *gw = W.map, *gs = S.map;
            for (int k = 0; k < K && rc == 0; k++)
                if (gc[k] != (uint32_t)chosen[k] || !(fabsf(gw[k] - weight[k]) <= 1e-6f * fabsf(weight[k]))) {
                    if (bad < 3)
                        fprintf(stderr, "  moe_route E%d K%d G%d trial %d slot %d: gpu %u (%.9g) cpu %d (%.9g)\n", E, K,
                                G, trial, k, gc[k], gw[k], chosen[k], weight[k]);
                    bad++;
                }
            for (int e = 0; e < E && rc == 0; e++) bad += !(fabsf(gs[e] - score[e]) <= 1e-6f);
            kt_gpu_buffer *all[] = {&S, &B, &C, &W, &X};
            for (int i = 0; i < 5; i++) HOST->buffer_free(dev, all[i]);
        }
    }
    CHECK_MSG(bad == 0, "%ld choices or factors differ", bad);
}

/* One expert of a packed layer, picked by the device-side choice: the same
 * rows as qmv / the dense reference on that expert alone, for every slot. */
static void test_expert_matvec(kt_gpu *dev) {
    const int E = 5, rows = 37, cols = 128, K = 3;
    long bad = 0;
    for (int quant = 0; quant < 2; quant++) {
        const int bits = 4, gs = 32;
        const kt_dtype t = quant ? KT_BF16 : KT_F16;
        const size_t es = 2, groups = (size_t)rows * (cols / gs);
        const size_t wbytes = quant ? (size_t)rows * cols * bits / 8 : (size_t)rows * cols * es;
        kt_gpu_buffer Wb, Sb, Bb, X, Y, C;
        int rc = HOST->buffer_new(dev, E * wbytes, &Wb) | HOST->buffer_new(dev, E * groups * es, &Sb) |
                 HOST->buffer_new(dev, E * groups * es, &Bb) | HOST->buffer_new(dev, (size_t)cols * 4, &X) |
                 HOST->buffer_new(dev, (size_t)rows * 4, &Y) | HOST->buffer_new(dev, (size_t)K * 4, &C);
        CHECK_MSG(rc == 0, "buffers: %s", kt_errmsg());
        if (rc) return;
        uint8_t *w = Wb.map;
        for (size_t i = 0; i < E * wbytes; i++) w[i] = (uint8_t)next32();
        if (!quant) /* dense f16 values in a sane range: random halves may be Inf or NaN */
            for (size_t i = 0; i < E * wbytes / 2; i++) {
                float f = uniform();
                kt_row_from_f32(KT_F16, &f, w + 2 * i, 1);
            }
        for (size_t g = 0; g < E * groups; g++) {
            float sc = uniform() * 0.01f, bi = uniform() * 0.05f;
            kt_row_from_f32(t, &sc, (uint8_t *)Sb.map + g * es, 1);
            kt_row_from_f32(t, &bi, (uint8_t *)Bb.map + g * es, 1);
        }
        float *x = X.map, ref[37];
        for (int j = 0; j < cols; j++) x[j] = uniform();
        uint32_t *chosen = C.map;
        chosen[0] = 3, chosen[1] = 0, chosen[2] = 4;
        for (int k = 0; k < K; k++) {
            const int e = (int)chosen[k];
            kt_linear l = {.out = rows, .in = cols, .quantized = quant, .w = w + e * wbytes, .dtype = t,
                           .scales = (uint8_t *)Sb.map + e * groups * es, .biases = (uint8_t *)Bb.map + e * groups * es,
                           .bits = bits, .group_size = gs};
            kt_linear_rows_ref(&l, 0, rows, x, ref);
            if (quant) {
                kt_gpu_qmv_expert_args a = {.rows = rows, .cols = cols, .bits = bits, .group_size = gs,
                                            .param_dtype = KT_GPU_BF16, .slot = (uint32_t)k,
                                            .expert_bytes = (uint32_t)wbytes, .expert_param_bytes = (uint32_t)(groups * es)};
                const kt_gpu_buffer *bufs[] = {&Wb, &Sb, &Bb, &X, &Y, &C};
                rc = kt_gpu_run(HOST, dev, KT_GPU_QMV_EXPERT, bufs, 6, &a, sizeof a, rows, 1);
            } else {
                kt_gpu_mv_dense_expert_args a = {.rows = rows, .cols = cols, .w_dtype = KT_GPU_F16, .slot = (uint32_t)k,
                                                 .expert_bytes = (uint32_t)wbytes};
                const kt_gpu_buffer *bufs[] = {&Wb, &X, &Y, &C};
                rc = kt_gpu_run(HOST, dev, KT_GPU_MV_DENSE_EXPERT, bufs, 4, &a, sizeof a, rows, 1);
            }
            CHECK_MSG(rc == 0, "expert matvec: %s", kt_errmsg());
            const float *y = Y.map;
            for (int r = 0; r < rows && rc == 0; r++)
                if (!(fabsf(y[r] - ref[r]) <= 1e-4f * (fabsf(ref[r]) + 1.0f))) {
                    if (bad < 3) fprintf(stderr, "  expert %d (%s) row %d: gpu %.9g cpu %.9g\n", e, quant ? "qmv" : "dense", r, y[r], ref[r]);
                    bad++;
                }
        }
        kt_gpu_buffer *all[] = {&Wb, &Sb, &Bb, &X, &Y, &C};
        for (int i = 0; i < 6; i++) HOST->buffer_free(dev, all[i]);
    }
    CHECK_MSG(bad == 0, "%ld rows out of tolerance", bad);
}

/* The weighted sum of the experts: exactly the CPU backend's operations. */
static void test_weigh(kt_gpu *dev) {
    const int n = 777;
    kt_gpu_buffer Y, A, W;
    int rc = HOST->buffer_new(dev, (size_t)n * 4, &Y) | HOST->buffer_new(dev, (size_t)n * 4, &A) |
             HOST->buffer_new(dev, 3 * 4, &W);
    CHECK_MSG(rc == 0, "buffers: %s", kt_errmsg());
    if (rc) return;
    float *y = Y.map, *a = A.map, *wt = W.map, want[777];
    long bad = 0;
    wt[0] = 0.3f, wt[1] = -1.7f, wt[2] = 0.61f;
    for (int i = 0; i < n; i++) y[i] = NAN, want[i] = 0;
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < n; i++) a[i] = uniform() * 5;
        for (int i = 0; i < n; i++) want[i] = k == 0 ? wt[k] * a[i] : want[i] + wt[k] * a[i];
        kt_gpu_weigh_args args = {.n = (uint32_t)n, .slot = (uint32_t)k, .first = k == 0};
        const kt_gpu_buffer *bufs[] = {&Y, &A, &W};
        rc = kt_gpu_run(HOST, dev, KT_GPU_WEIGH, bufs, 3, &args, sizeof args, (uint32_t)(n + 63) / 64, 1);
        CHECK_MSG(rc == 0, "weigh: %s", kt_errmsg());
    }
    for (int i = 0; i < n; i++) bad += memcmp(&y[i], &want[i], 4) != 0;
    CHECK_MSG(bad == 0, "%ld values differ from the CPU's", bad);
    HOST->buffer_free(dev, &Y), HOST->buffer_free(dev, &A), HOST->buffer_free(dev, &W);
}

/* A device that is not there is one clear error, not a crash. */
static void test_missing_device(kt_gpu *dev) {
    (void)dev;
    kt_gpu *none = HOST->open("no-such-device");
    CHECK(none == NULL && strstr(kt_errmsg(), "no-such-device"));
    none = HOST->open("99");
    CHECK(none == NULL && strstr(kt_errmsg(), HOST->device_env));
}

/* usage: gpu-kernel-tests [vulkan|metal]  (the device: the host's variable,
 * KINTSUGI_VULKAN_DEVICE or KINTSUGI_METAL_DEVICE) */
/* The start-up self-check of --backend auto passes on this device, and
 * fails, naming the kernel, on a host whose results are spoiled after the
 * fact (a stand-in for a driver that computes differently). */
static kt_gpu_host spoiled;
static kt_gpu_buffer *last_new;
static int spoil_new(kt_gpu *g, size_t size, kt_gpu_buffer *out) {
    last_new = out;
    return HOST->buffer_new(g, size, out);
}
static int spoil_submit(kt_gpu *g) {
    int rc = HOST->submit(g);
    if (last_new && last_new->map) ((float *)last_new->map)[1] += 1.0f; /* the output: made last */
    return rc;
}
static void test_self_check(kt_gpu *dev) {
    CHECK_MSG(kt_gpu_self_check(HOST, dev) == 0, "%s", kt_errmsg());
    spoiled = *HOST;
    spoiled.buffer_new = spoil_new, spoiled.submit = spoil_submit;
    CHECK(kt_gpu_self_check(&spoiled, dev) != 0 && strstr(kt_errmsg(), "qmv row 1") &&
          strstr(kt_errmsg(), HOST->device_name(dev)));
}

int main(int argc, char **argv) {
    HOST = kt_gpu_host_named(argc > 1 ? argv[1] : "vulkan");
    kt_gpu *dev = HOST ? HOST->open(getenv(HOST->device_env)) : NULL;
    if (!dev) {
        printf("FAIL opening the %s device: %s\n0 passed, 1 failed\n", argc > 1 ? argv[1] : "vulkan", kt_errmsg());
        return 1;
    }
    fprintf(stderr, "  device: %s, subgroup size %u\n", HOST->device_name(dev), HOST->simd_width(dev));
    static const struct { const char *name; void (*fn)(kt_gpu *); } TESTS[] = {
        {"test_gpu_qmv_matches_cpu", test_qmv},
        {"test_gpu_qmm_matches_cpu", test_qmm},
        {"test_gpu_mv_dense_matches_cpu", test_mv_dense},
        {"test_gpu_mm_dense_matches_cpu", test_mm_dense},
        {"test_gpu_qrow_equals_cpu", test_qrow},
        {"test_gpu_drow_equals_cpu", test_drow},
        {"test_gpu_rmsnorm_matches_cpu", test_rmsnorm},
        {"test_gpu_mamba2_step_matches_cpu", test_mamba},
        {"test_gpu_attention_matches_cpu", test_attend},
        {"test_gpu_relu2_and_add_equal_cpu", test_ewise},
        {"test_gpu_moe_route_equals_cpu", test_moe_route},
        {"test_gpu_expert_matvec_matches_cpu", test_expert_matvec},
        {"test_gpu_weigh_equals_cpu", test_weigh},
        {"test_gpu_missing_device_is_an_error", test_missing_device},
        {"test_gpu_self_check_of_backend_auto", test_self_check},
    };
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof TESTS / sizeof *TESTS; i++) {
        const int before = harness_failures;
        TESTS[i].fn(dev);
        const int ok = harness_failures == before;
        printf("%s %s (%s: %s)\n", ok ? "ok  " : "FAIL", TESTS[i].name, HOST->api, HOST->device_name(dev));
        ok ? passed++ : failed++;
    }
    HOST->close(dev);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
