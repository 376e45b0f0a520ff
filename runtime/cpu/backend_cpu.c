/* backend_cpu.c - the CPU backend: the table of backend.h filled with this
 * folder's functions. */
#include "backend.h"
#include "cpu.h"

/* Element-wise, so a prompt's millions of values are shared among the
 * threads with the same results. */
static void relu2(float *u, int n) {
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (int i = 0; i < n; i++) u[i] = u[i] > 0 ? u[i] * u[i] : 0;
}

static void add(float *x, const float *y, int n) {
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (int i = 0; i < n; i++) x[i] += y[i];
}

static void weigh(float *x, const float *weight, int k, const float *y, int n, int first) {
    const float f = weight[k];
    for (int i = 0; i < n; i++) x[i] = first ? f * y[i] : x[i] + f * y[i];
}

const kt_backend *kt_cpu_backend(void) {
    static const kt_backend cpu = {
        .name = "cpu", .matvec = kt_linear_apply, .matmul = kt_linear_apply_batch, .row = kt_linear_row,
        .rmsnorm = kt_rmsnorm, .mamba_steps = kt_mamba2_steps, .attend = kt_attend_tokens, .quantize = kt_qact_quantize,
        .matvec_q = kt_linear_apply_q, .matmul_q = kt_linear_apply_batch_q, .int8_ok = kt_linear_int8_ok,
        .relu2 = relu2, .add = add, .route = kt_moe_route, .weigh = weigh, .prepare = kt_cpu_prepare,
        /* sync, alloc, release, unload, expert: NULL, see backend.h */
    };
    return &cpu;
}
