/* mamba2.c - one Mamba-2 step (the recurrent form of the SSD layer).
 *
 * From the input projection of this token, proj = [z | xBC | dt]:
 *   xBC = silu(causal depthwise conv1d over the last conv_kernel inputs)
 *       = [x | B | C], x split in heads of head_dim, B and C per group;
 *   per head h (group g = h / (heads / n_groups)):
 *     dt    = clamp(softplus(dt_h + dt_bias_h), time_step_limit)
 *     state = exp(dt * -exp(A_log_h)) * state + dt * x_h (outer) B_g
 *     y_h   = state . C_g + D_h * x_h
 *   y = rmsnorm per group of I / n_groups channels (y * silu(z)) * norm.weight
 * mlx-lm's nemotron_h.py evaluates the same sum in chunks over the prompt;
 * token by token it is this recurrence.
 */
#include "cpu.h"
#include "strbuf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { LANES = 16 };

static float silu(float x) { return x / (1.0f + expf(-x)); }
static float softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

/* CONV holds the K-1 previous inputs of the conv, oldest first. */
static void causal_conv(const kt_config *c, const kt_layer *L, float *conv, const float *in, float *out) {
    const int K = c->conv, dim = c->m_heads * c->m_head_dim + 2 * c->n_groups * c->state;
    for (int ch = 0; ch < dim; ch++) {
        float acc = kt_vec_at(&L->conv_b, ch);
        for (int k = 0; k < K - 1; k++) acc += kt_vec_at(&L->conv_w, ch * K + k) * conv[k * dim + ch];
        acc += kt_vec_at(&L->conv_w, ch * K + K - 1) * in[ch];
        out[ch] = silu(acc);
    }
    memmove(conv, conv + dim, (size_t)(K - 2) * dim * sizeof *conv);
    memcpy(conv + (size_t)(K - 2) * dim, in, (size_t)dim * sizeof *in);
}

/* One head H of one token: the state advances, Y receives y_h. DT: the
 * token's dt inputs; XS, B, C: its conv output. */
static void ssm_head(const kt_config *c, const kt_layer *L, int h, float *ssm, const float *dt, const float *xs,
                     const float *B, const float *C, float *y) {
    const int G = c->n_groups, N = c->state, P = c->m_head_dim, g = h / (c->m_heads / G);
    float d = softplus(dt[h] + kt_vec_at(&L->dt_bias, h));
    d = d < c->dt_min ? c->dt_min : (d > c->dt_max ? c->dt_max : d);
    const float dA = expf(d * -expf(kt_vec_at(&L->A_log, h))), Dh = kt_vec_at(&L->D, h);
    const float *Bg = B + (size_t)g * N, *Cg = C + (size_t)g * N;
    for (int p = 0; p < P; p++) {
        const float xv = xs[h * P + p], dx = d * xv;
        float *st = ssm + ((size_t)h * P + p) * N;
        /* state . C in LANES partial sums (n mod LANES), added at the
         * end: the compiler keeps them in vector registers without
         * reordering any float addition (no fast math). */
        float part[LANES] = {0};
        int n = 0;
        for (; n + LANES <= N; n += LANES)
#pragma omp simd
            for (int k = 0; k < LANES; k++) {
                st[n + k] = st[n + k] * dA + dx * Bg[n + k];
                part[k] += st[n + k] * Cg[n + k];
            }
        float acc = 0;
        for (int k = 0; k < LANES; k++) acc += part[k];
        for (; n < N; n++) {
            st[n] = st[n] * dA + dx * Bg[n];
            acc += st[n] * Cg[n];
        }
        y[h * P + p] = acc + Dh * xv;
    }
}

/* y = rmsnorm per group (y * silu(z)) * norm.weight */
static void gate(const kt_config *c, const kt_layer *L, const float *z, float *y) {
    const int I = c->m_heads * c->m_head_dim, G = c->n_groups, per = I / G;
    for (int i = 0; i < I; i++) y[i] *= silu(z[i]);
    for (int g = 0; g < G; g++) kt_rmsnorm(y + g * per, y + g * per, NULL, per, c->eps);
    for (int i = 0; i < I; i++) y[i] *= kt_vec_at(&L->gnorm, i);
}

void kt_mamba2_step(const kt_config *c, const kt_layer *L, float *conv, float *ssm, const float *proj, float *y,
                    float *xbc) {
    const int I = c->m_heads * c->m_head_dim, GN = c->n_groups * c->state, dim = I + 2 * GN;
    causal_conv(c, L, conv, proj + I, xbc);
    /* heads are independent: the 9B shape's 128 heads x 80 x 128 state
     * values are a fifth of a token's arithmetic outside the matrices */
#pragma omp parallel for schedule(static) if ((long)I * c->state >= 65536)
    for (int h = 0; h < c->m_heads; h++) ssm_head(c, L, h, ssm, proj + I + dim, xbc, xbc + I, xbc + I + GN, y);
    gate(c, L, proj, y);
}

/* N tokens: the conv over all of them first, then each head's state runs
 * through every token while it is in the core's cache (at the 9B shape a
 * layer's state is 5 MiB, a head's 40 KiB: token by token, the whole state
 * went through memory once per token), then the gates. The arithmetic of
 * each head and token is kt_mamba2_step's, so the results are the same to
 * the bit. */
void kt_mamba2_steps(const kt_config *c, const kt_layer *L, float *conv, float *ssm, const float *proj, int n,
                     float *y, float *tmp) {
    if (n == 1) {
        kt_mamba2_step(c, L, conv, ssm, proj, y, tmp);
        return;
    }
    const int I = c->m_heads * c->m_head_dim, GN = c->n_groups * c->state, dim = I + 2 * GN;
    const size_t row = (size_t)I + dim + c->m_heads; /* one token's proj */
    float *xbc = kt_xmalloc((size_t)n * dim * sizeof *xbc);
    for (int t = 0; t < n; t++) causal_conv(c, L, conv, proj + t * row + I, xbc + (size_t)t * dim);
#pragma omp parallel for schedule(static)
    for (int h = 0; h < c->m_heads; h++)
        for (int t = 0; t < n; t++) {
            const float *x = xbc + (size_t)t * dim;
            ssm_head(c, L, h, ssm, proj + t * row + I + dim, x, x + I, x + I + GN, y + (size_t)t * I);
        }
#pragma omp parallel for schedule(static)
    for (int t = 0; t < n; t++) gate(c, L, proj + t * row, y + (size_t)t * I);
    free(xbc);
}
