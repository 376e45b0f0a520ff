/* backend_cpu.c - the CPU backend: the table of backend.h filled with this
 * folder's functions. */
#include "backend.h"
#include "cpu.h"

#include <stdint.h>
#include <string.h>

/* relu(x)^2 of one value without a branch, with MLX's IEEE semantics
 * (nn.relu2 is square(maximum(x, 0)), and MLX's maximum propagates NaN): x
 * is kept where its bits, read as an unsigned integer, lie in 1..0x7fffffff
 * (positive, +inf and positive NaNs included) or above 0xff800000 (negative
 * NaNs), else it becomes +0 (negative values, -inf and both zeros). So NaN
 * in, NaN out: a NaN from up_proj reaches the logits, where it is seen,
 * instead of vanishing here. As a comparison of floats the compiler keeps a
 * branch (it may not turn a float compare into a select while traps are
 * on), and a layer's activations are positive or not at random:
 * mispredicted, the branch gave this loop 0.56% of a decoded token's time at
 * the 9B shape (perf), against 0.1% as integer masks, which vectorize. */
static inline float relu2_one(float x) {
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    b &= 0u - ((uint32_t)(b - 1u < 0x7fffffffu) | (uint32_t)(b > 0xff800000u));
    memcpy(&x, &b, sizeof x);
    return x * x;
}

/* Element-wise, so a prompt's millions of values are shared among the
 * threads with the same results. */
static void relu2(float *u, int n) {
#pragma omp parallel for simd schedule(static) if (n >= 65536)
    for (int i = 0; i < n; i++) u[i] = relu2_one(u[i]);
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
