/* gpu_selfcheck.c - see gpu_selfcheck.h.
 *
 * Three kernels on small data, each against the CPU reference the CPU
 * backend uses: qmv (a 4-bit matrix, group 64, bf16 scales: the decode's
 * product), rmsnorm, and ewise (relu2 and add on every special value, where
 * a driver's fast math would show: NaN must stay NaN, -0 and infinities
 * keep their IEEE results). The tolerance of the kernel tests
 * (tests/gpu/test_gpu_kernels.c): a product may differ by float32 rounding
 * of its terms' order, nothing more. Milliseconds on any device.
 */
#include "gpu_selfcheck.h"
#include "backend.h"
#include "cpu.h"
#include "dtype.h"
#include "error.h"
#include "gpu_abi.h"
#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint32_t next32(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return (uint32_t)(*s >> 16);
}

static float uniform(uint64_t *s) { return (float)next32(s) / 4294967296.0f * 2.0f - 1.0f; }

static int check_qmv(const kt_gpu_host *h, kt_gpu *g, uint64_t *rng) {
    enum { ROWS = 72, COLS = 512, GS = 64, GROUPS = ROWS * (COLS / GS) };
    kt_gpu_buffer W, S, B, X, Y;
    if (h->buffer_new(g, ROWS * COLS / 2, &W) || h->buffer_new(g, GROUPS * 2, &S) || h->buffer_new(g, GROUPS * 2, &B) ||
        h->buffer_new(g, COLS * 4, &X) || h->buffer_new(g, ROWS * 4, &Y))
        return -1; /* what was made is freed with the device */
    uint8_t *w = W.map;
    for (int i = 0; i < ROWS * COLS / 2; i++) w[i] = (uint8_t)next32(rng);
    float sf[GROUPS], bf[GROUPS], *x = X.map, ref[ROWS], deq[COLS];
    for (int i = 0; i < GROUPS; i++) sf[i] = uniform(rng) * 0.01f, bf[i] = uniform(rng) * 0.05f;
    kt_row_from_f32(KT_BF16, sf, S.map, GROUPS);
    kt_row_from_f32(KT_BF16, bf, B.map, GROUPS);
    for (int j = 0; j < COLS; j++) x[j] = uniform(rng);
    kt_linear l = {.out = ROWS, .in = COLS, .quantized = 1, .w = w, .dtype = KT_BF16, .scales = S.map, .biases = B.map,
                   .bits = 4, .group_size = GS};
    kt_linear_rows_ref(&l, 0, ROWS, x, ref);
    kt_gpu_qmv_args a = {.rows = ROWS, .cols = COLS, .bits = 4, .group_size = GS, .param_dtype = KT_GPU_BF16};
    const kt_gpu_buffer *bufs[] = {&W, &S, &B, &X, &Y};
    int rc = kt_gpu_run(h, g, KT_GPU_QMV, bufs, 5, &a, sizeof a, ROWS, 1);
    const float *y = Y.map;
    for (int r = 0; r < ROWS && rc == 0; r++) {
        kt_linear_row_ref(&l, r, deq);
        double terms = 0;
        for (int j = 0; j < COLS; j++) terms += fabs((double)deq[j] * x[j]);
        if (!(fabs((double)y[r] - ref[r]) <= 1e-5 * terms + 1e-6))
            rc = kt_fail("qmv row %d: the device gives %.9g, the CPU %.9g", r, (double)y[r], (double)ref[r]);
    }
    h->buffer_free(g, &W), h->buffer_free(g, &S), h->buffer_free(g, &B), h->buffer_free(g, &X), h->buffer_free(g, &Y);
    return rc;
}

static int check_rmsnorm(const kt_gpu_host *h, kt_gpu *g, uint64_t *rng) {
    enum { N = 384 };
    kt_gpu_buffer X, Wt, Y;
    if (h->buffer_new(g, N * 4, &X) || h->buffer_new(g, N * 4, &Wt) || h->buffer_new(g, N * 4, &Y)) return -1;
    float *x = X.map, *w = Wt.map, ref[N];
    for (int i = 0; i < N; i++) x[i] = uniform(rng) * 3.0f, w[i] = 1.0f + uniform(rng) * 0.1f;
    const float eps = 1e-5f;
    kt_vec v = {.data = (const uint8_t *)w, .dtype = KT_F32, .n = N, .f = w};
    kt_rmsnorm(ref, x, &v, N, eps);
    uint32_t eps_bits;
    memcpy(&eps_bits, &eps, 4);
    kt_gpu_rmsnorm_args a = {.n = N, .eps_bits = eps_bits};
    const kt_gpu_buffer *bufs[] = {&X, &Wt, &Y};
    int rc = kt_gpu_run(h, g, KT_GPU_RMSNORM, bufs, 3, &a, sizeof a, 1, 1);
    const float *y = Y.map;
    for (int i = 0; i < N && rc == 0; i++)
        if (!(fabsf(y[i] - ref[i]) <= 1e-5f * fabsf(ref[i]) + 1e-6f))
            rc = kt_fail("rmsnorm [%d]: the device gives %.9g, the CPU %.9g", i, (double)y[i], (double)ref[i]);
    h->buffer_free(g, &X), h->buffer_free(g, &Wt), h->buffer_free(g, &Y);
    return rc;
}

/* relu2 and add, exact: the special values first, then random bits. */
static int check_ewise(const kt_gpu_host *h, kt_gpu *g, uint64_t *rng) {
    static const uint32_t special[] = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00000u,
                                       0x00000001u, 0x80000001u, 0x7f7fffffu, 0xff7fffffu, 0x3f800000u, 0xbf800000u};
    enum { N = 256 };
    const int ns = (int)(sizeof special / sizeof *special);
    kt_gpu_buffer Y, A;
    if (h->buffer_new(g, N * 4, &Y) || h->buffer_new(g, N * 4, &A)) return -1;
    int rc = 0;
    for (uint32_t op = KT_EWISE_RELU2; op <= KT_EWISE_ADD && rc == 0; op++) {
        uint32_t bits[N];
        for (int i = 0; i < N; i++) bits[i] = i < ns ? special[i] : next32(rng) ^ (next32(rng) << 16);
        float *y = Y.map, *a = A.map, want[N];
        memcpy(y, bits, sizeof bits);
        for (int i = 0; i < N; i++) a[i] = i < ns ? y[(i + 1) % ns] : uniform(rng);
        memcpy(want, y, sizeof want);
        if (op == KT_EWISE_RELU2) kt_cpu_backend()->relu2(want, N);
        else kt_cpu_backend()->add(want, a, N);
        kt_gpu_ewise_args args = {.n = N, .op = op};
        const kt_gpu_buffer *bufs[] = {&Y, &A};
        rc = kt_gpu_run(h, g, KT_GPU_EWISE, bufs, 2, &args, sizeof args, (N + 63) / 64, 1);
        for (int i = 0; i < N && rc == 0; i++)
            if (isnan(want[i]) ? !isnan(y[i]) : memcmp(&want[i], &y[i], 4) != 0)
                rc = kt_fail("%s of bits 0x%08x: the device gives %a, the CPU %a (fast math in the driver?)",
                             op == KT_EWISE_RELU2 ? "relu2" : "add", (unsigned)bits[i], (double)y[i], (double)want[i]);
    }
    h->buffer_free(g, &Y), h->buffer_free(g, &A);
    return rc;
}

int kt_gpu_self_check(const kt_gpu_host *h, kt_gpu *g) {
    uint64_t rng = 0x2545f4914f6cdd1dull;
    if (check_qmv(h, g, &rng) || check_rmsnorm(h, g, &rng) || check_ewise(h, g, &rng))
        return kt_fail_context("the start-up self-check on %s", h->device_name(g));
    return 0;
}
