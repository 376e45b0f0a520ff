/* cpu.h - the CPU backend's operations, callable directly (tests, benches).
 *
 * Every vector kernel has a scalar reference beside it: kt_matvec_force_scalar
 * switches the dispatched functions to the references, and the unit tests
 * check that every kernel set this CPU can run agrees with them.
 */
#ifndef KT_CPU_H
#define KT_CPU_H

#include "model.h"
#include "qact.h"

/* y = W x */
void kt_linear_apply(const kt_linear *l, const float *x, float *y);
/* Y[t] = W X[t] for T vectors (X: T x in, Y: T x out); each row of W is
 * dequantized once for all T. */
void kt_linear_apply_batch(const kt_linear *l, const float *x, int t, float *y);
/* y = W x with x quantized to 8-bit integers (qact.h); any bit width whose
 * rows and groups are whole blocks of 32 (kt_linear_int8_ok). */
void kt_linear_apply_q(const kt_linear *l, const kt_qact *a, float *y);
/* Y[t] = W A[t] for the T vectors of A (quantized together: T x in values). */
void kt_linear_apply_batch_q(const kt_linear *l, const kt_qact *a, int t, float *y);
int kt_linear_int8_ok(const kt_linear *l);
/* Row R of W as floats: s * code + b for a quantized row (bit-identical in
 * every kernel set), the values themselves for a dense one. */
void kt_linear_row(const kt_linear *l, int r, float *out);
void kt_linear_row_ref(const kt_linear *l, int r, float *out);
/* sum a[i] b[i]: the reference accumulates in double. */
float kt_dot(const float *a, const float *b, int n);
float kt_dot_ref(const float *a, const float *b, int n);
/* Use the scalar references only (1), or the best kernels again (0). */
void kt_matvec_force_scalar(int on);
/* The name of the kernel set in use: "avx512", "avx2", "neon" or "scalar". */
const char *kt_matvec_kernels(void);

/* The 4-bit matrices interleaved by 8 rows (interleave.c): which matrices
 * take the layout, its bytes in all (per block: kernels.h), the copy, and
 * the scalar reference on it for rows [8 B0, 8 B1). kt_cpu_prepare makes
 * the copy of every such matrix of M when the table has a kernel for it
 * and M runs with integer activations (KT_INTERLEAVE=0: never). */
int kt_rows8_ok(const kt_linear *l);
size_t kt_rows8_bytes(const kt_linear *l);
void kt_rows8_pack(const kt_linear *l, uint8_t *dst);
void kt_rows8_ref(const kt_linear *l, int b0, int b1, const kt_qact *a, float *y);
int kt_cpu_prepare(kt_model *m);

void kt_rmsnorm(float *out, const float *x, const kt_vec *w, int n, float eps);
void kt_mamba2_step(const kt_config *c, const kt_layer *L, float *conv, float *ssm, const float *proj, float *y,
                    float *tmp);
/* N Mamba-2 steps for N consecutive tokens (PROJ: N rows of in_proj's
 * output, Y: N rows of I), the same to the bit as N calls of the step. */
void kt_mamba2_steps(const kt_config *c, const kt_layer *L, float *conv, float *ssm, const float *proj, int n,
                     float *y, float *tmp);
void kt_attend(const kt_config *c, const float *k, const float *v, int pos, const float *q, float *o, float *tmp);
/* N queries (rows of Q) at positions POS..POS + N - 1 into rows of O, the
 * same to the bit as N calls of kt_attend. */
void kt_attend_tokens(const kt_config *c, const float *k, const float *v, int pos, int n, const float *q, float *o,
                      float *tmp);
/* MoE routing (moe_route.c): SCORE, the gate's E logits, becomes the sigmoid
 * scores; CHOSEN and WEIGHT receive the top_k experts and their factors;
 * SCRATCH: E + n_group floats. */
void kt_moe_route(const kt_config *c, const kt_vec *bias, float *score, int *chosen, float *weight, float *scratch);

#endif
