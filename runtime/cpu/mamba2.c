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
#include "kernels.h"
#include "strbuf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { LANES = 16 };

static float silu(float x) { return x / (1.0f + expf(-x)); }
static float softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

/* CONV holds the K-1 previous inputs of the conv, oldest first. One
 * channel CH of one token: its output, and its column of CONV moves on by
 * one input. Channels share nothing, so threads may take any of them. */
static void causal_conv_channel(const kt_config *c, const kt_layer *L, float *conv, const float *in, float *out,
                                int ch) {
    const int K = c->conv, dim = c->m_heads * c->m_head_dim + 2 * c->n_groups * c->state;
    float acc = kt_vec_at(&L->conv_b, ch);
    for (int k = 0; k < K - 1; k++) acc += kt_vec_at(&L->conv_w, ch * K + k) * conv[k * dim + ch];
    acc += kt_vec_at(&L->conv_w, ch * K + K - 1) * in[ch];
    out[ch] = silu(acc);
    for (int k = 0; k + 1 < K - 1; k++) conv[k * dim + ch] = conv[(k + 1) * dim + ch];
    if (K > 1) conv[(K - 2) * dim + ch] = in[ch];
}

/* The conv over N tokens (row t of IN, ROW floats apart, into row t of
 * OUT): each channel on its own, so the channels are shared among the
 * threads; per output the same sum in the same order as causal_conv_channel. */
static void conv_tokens(const kt_config *c, const kt_layer *L, float *conv, const float *in, size_t row, int n,
                        float *out) {
    const int K = c->conv, dim = c->m_heads * c->m_head_dim + 2 * c->n_groups * c->state;
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < dim; ch++) {
        float win[64]; /* the last K - 1 inputs, oldest first (conv_kernel <= 64: lib/nemotron_config.c) */
        const float *w = L->conv_w.f + (size_t)ch * K, b = kt_vec_at(&L->conv_b, ch);
        for (int k = 0; k < K - 1; k++) win[k] = conv[k * dim + ch];
        for (int t = 0; t < n; t++) {
            const float x = in[t * row + ch];
            float acc = b;
            for (int k = 0; k < K - 1; k++) acc += w[k] * win[k];
            acc += w[K - 1] * x;
            out[(size_t)t * dim + ch] = silu(acc);
            for (int k = 0; k + 1 < K - 1; k++) win[k] = win[k + 1];
            if (K > 1) win[K - 2] = x;
        }
        for (int k = 0; k < K - 1; k++) conv[k * dim + ch] = win[k];
    }
}

/* One head H of one token: the state advances, Y receives y_h. DT: the
 * token's dt inputs; XS, B, C: its conv output. */
static inline __attribute__((always_inline)) void ssm_head_body(const kt_config *c, const kt_layer *L, int h, float *ssm, const float *dt, const float *xs,
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

/* The same C compiled for wider vectors, chosen at run time: a layer's
 * state update is most of a prompt's work outside the matrices, and the
 * build's baseline (SSE2 on x86-64) gives it 4 lanes of 16. Every clone
 * does the same IEEE operations in the same order (no contraction into
 * FMA, -ffp-contract=off), so all of them give the reference's bits
 * (tests/unit/test_recurrence.c); kt_matvec_force_scalar selects the
 * reference. */
typedef void ssm_head_fn(const kt_config *, const kt_layer *, int, float *, const float *, const float *, const float *,
                         const float *, float *);
#define SSM_HEAD(NAME, ATTR)                                                                                        \
    ATTR static void NAME(const kt_config *c, const kt_layer *L, int h, float *ssm, const float *dt, const float *xs, \
                          const float *B, const float *C, float *y) {                                              \
        ssm_head_body(c, L, h, ssm, dt, xs, B, C, y);                                                               \
    }
SSM_HEAD(ssm_head_ref, )
#if defined(__x86_64__) && defined(__GNUC__)
SSM_HEAD(ssm_head_avx2, __attribute__((target("avx2"))))
SSM_HEAD(ssm_head_avx512, __attribute__((target("avx512f"))))
#endif

static ssm_head_fn *ssm_head_kernel(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    ssm_head_fn *const by_level[] = {ssm_head_ref, ssm_head_avx2, ssm_head_avx512};
    return by_level[kt_clone_level()];
#else
    return ssm_head_ref;
#endif
}

/* Group G of y = rmsnorm per group (y * silu(z)) * norm.weight: groups
 * share nothing, so threads may take any of them. */
static void gate_group(const kt_config *c, const kt_layer *L, const float *z, float *y, int g) {
    const int per = c->m_heads * c->m_head_dim / c->n_groups, i0 = g * per;
    for (int i = i0; i < i0 + per; i++) y[i] *= silu(z[i]);
    kt_rmsnorm(y + i0, y + i0, NULL, per, c->eps);
    for (int i = i0; i < i0 + per; i++) y[i] *= kt_vec_at(&L->gnorm, i);
}

static void gate(const kt_config *c, const kt_layer *L, const float *z, float *y) {
    for (int g = 0; g < c->n_groups; g++) gate_group(c, L, z, y, g);
}

/* One token. The conv, the heads and the gate run in one team of threads
 * (a team per stage cost a start and an end each, and the conv and gate,
 * left to one thread, kept the others waiting); each stage needs all of
 * the one before it, hence the barrier at the end of each loop. Every
 * value is computed as the one-thread loop computes it. */
void kt_mamba2_step(const kt_config *c, const kt_layer *L, float *conv, float *ssm, const float *proj, float *y,
                    float *xbc) {
    const int I = c->m_heads * c->m_head_dim, GN = c->n_groups * c->state, dim = I + 2 * GN;
    ssm_head_fn *ssm_head = ssm_head_kernel();
#pragma omp parallel if ((long)I * c->state >= 65536)
    {
#pragma omp for schedule(static)
        for (int ch = 0; ch < dim; ch++) causal_conv_channel(c, L, conv, proj + I, xbc, ch);
        /* heads are independent: the 9B shape's 128 heads x 80 x 128 state
         * values are a fifth of a token's arithmetic outside the matrices */
#pragma omp for schedule(static)
        for (int h = 0; h < c->m_heads; h++) ssm_head(c, L, h, ssm, proj + I + dim, xbc, xbc + I, xbc + I + GN, y);
#pragma omp for schedule(static)
        for (int g = 0; g < c->n_groups; g++) gate_group(c, L, proj, y, g);
    }
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
    conv_tokens(c, L, conv, proj + I, row, n, xbc);
    ssm_head_fn *ssm_head = ssm_head_kernel();
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
