/* backend_cpu.c - the CPU backend: the table of backend.h filled with this
 * folder's functions. */
#include "backend.h"
#include "cpu.h"

static void relu2(float *u, int n) {
    for (int i = 0; i < n; i++) u[i] = u[i] > 0 ? u[i] * u[i] : 0;
}

static void add(float *x, const float *y, int n) {
    for (int i = 0; i < n; i++) x[i] += y[i];
}

const kt_backend *kt_cpu_backend(void) {
    static const kt_backend cpu = {"cpu",          kt_linear_apply,   kt_linear_apply_batch, kt_linear_row,
                                   kt_rmsnorm,     kt_mamba2_step,    kt_attend,             kt_qact_quantize,
                                   kt_linear_apply_q, kt_linear_apply_batch_q, kt_linear_int8_ok,
                                   relu2,          add,               NULL,                  NULL,
                                   NULL,           NULL};
    return &cpu;
}
