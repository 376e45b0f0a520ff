/* test_recurrence.c - the prompt's recurrences over N tokens at once (the
 * Mamba-2 steps, attention of N queries) against N one-token calls of the
 * scalar reference (the build's baseline code): the same arithmetic in
 * another loop order and wider vectors, so the results must be equal to
 * the bit, state included. Also the MLP's relu2 against its definition. */
#include "backend.h"
#include "cpu.h"
#include "harness.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static float urand(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return (float)((*s >> 11) % 2000001) / 1000000.0f - 1.0f;
}

static kt_vec vec_of(float *v, int n) { return (kt_vec){.data = (const uint8_t *)v, .dtype = KT_F32, .n = n, .f = v}; }

/* HEADS heads of P channels, G groups, state N, conv K, T tokens: once as
 * T steps, once as one call, from the same state. */
static void mamba_case(int heads, int P, int G, int N, int K, int T, uint64_t *st) {
    kt_config c;
    memset(&c, 0, sizeof c);
    c.m_heads = heads, c.m_head_dim = P, c.n_groups = G, c.state = N, c.conv = K;
    c.eps = 1e-5f, c.dt_min = 0.0f, c.dt_max = heads % 2 ? INFINITY : 0.05f;
    const int I = heads * P, dim = I + 2 * G * N, row = I + dim + heads;
    float *cw = malloc((size_t)dim * K * 4), *cb = malloc((size_t)dim * 4), *par = malloc((size_t)3 * heads * 4);
    float *gn = malloc((size_t)I * 4);
    for (int i = 0; i < dim * K; i++) cw[i] = urand(st) * 0.5f;
    for (int i = 0; i < dim; i++) cb[i] = urand(st) * 0.1f;
    for (int h = 0; h < heads; h++) {
        par[h] = logf(expm1f(0.001f + 0.05f * (urand(st) + 1)));
        par[heads + h] = logf(1 + 7.5f * (urand(st) + 1));
        par[2 * heads + h] = 1 + 0.1f * urand(st);
    }
    for (int i = 0; i < I; i++) gn[i] = 1 + 0.1f * urand(st);
    kt_layer L;
    memset(&L, 0, sizeof L);
    L.conv_w = vec_of(cw, dim * K), L.conv_b = vec_of(cb, dim), L.dt_bias = vec_of(par, heads);
    L.A_log = vec_of(par + heads, heads), L.D = vec_of(par + 2 * heads, heads), L.gnorm = vec_of(gn, I);
    const size_t wn = (size_t)(K - 1) * dim + 1, sn = (size_t)I * N;
    float *w1 = malloc(wn * 4), *s1 = malloc(sn * 4), *w2 = malloc(wn * 4), *s2 = malloc(sn * 4);
    for (size_t i = 0; i < wn; i++) w1[i] = w2[i] = urand(st);
    for (size_t i = 0; i < sn; i++) s1[i] = s2[i] = urand(st);
    float *proj = malloc((size_t)T * row * 4), *y1 = malloc((size_t)T * I * 4), *y2 = malloc((size_t)T * I * 4);
    float *tmp = malloc((size_t)dim * 4);
    for (int i = 0; i < T * row; i++) proj[i] = urand(st) * 2;
    kt_matvec_force_scalar(1);
    for (int t = 0; t < T; t++) kt_mamba2_step(&c, &L, w1, s1, proj + (size_t)t * row, y1 + (size_t)t * I, tmp);
    kt_matvec_force_scalar(0);
    kt_mamba2_steps(&c, &L, w2, s2, proj, T, y2, tmp);
    CHECK_MSG(memcmp(y1, y2, (size_t)T * I * 4) == 0, "mamba h%d P%d G%d N%d K%d T%d: outputs differ", heads, P, G, N, K, T);
    CHECK_MSG(memcmp(s1, s2, sn * 4) == 0, "mamba T%d: states differ", T);
    CHECK_MSG(memcmp(w1, w2, (size_t)(K - 1) * dim * 4) == 0, "mamba T%d: conv windows differ", T);
    free(cw), free(cb), free(par), free(gn), free(w1), free(s1), free(w2), free(s2);
    free(proj), free(y1), free(y2), free(tmp);
}

void test_mamba_steps_equal_token_steps(void) {
    uint64_t st = 7;
    mamba_case(6, 5, 2, 24, 4, 9, &st);   /* a state not a multiple of 16 lanes */
    mamba_case(3, 16, 3, 16, 4, 2, &st);
    mamba_case(8, 7, 1, 40, 2, 5, &st);   /* conv of 2: the window is one input */
    mamba_case(128, 8, 8, 128, 4, 17, &st); /* Nano-9B's heads, groups and state; the threads split heads */
}

void test_attend_tokens_equal_token_attend(void) {
    static const int shapes[][5] = {{4, 2, 8, 0, 5}, {6, 3, 16, 70, 9}, {40, 8, 128, 3, 33}, {2, 1, 24, 1, 1}};
    uint64_t st = 11;
    for (int s = 0; s < 4; s++) {
        const int H = shapes[s][0], KV = shapes[s][1], hd = shapes[s][2], pos = shapes[s][3], n = shapes[s][4];
        kt_config c;
        memset(&c, 0, sizeof c);
        c.heads = H, c.kv_heads = KV, c.head_dim = hd;
        const size_t kvn = (size_t)(pos + n) * KV * hd, qn = (size_t)n * H * hd;
        float *k = malloc(kvn * 4), *v = malloc(kvn * 4), *q = malloc(qn * 4), *o1 = malloc(qn * 4), *o2 = malloc(qn * 4);
        float *tmp = malloc((size_t)(pos + n) * 4);
        for (size_t i = 0; i < kvn; i++) k[i] = urand(&st) * 3, v[i] = urand(&st);
        for (size_t i = 0; i < qn; i++) q[i] = urand(&st) * 3;
        memset(o2, 0x7f, qn * 4); /* every output must be written */
        kt_matvec_force_scalar(1);
        for (int t = 0; t < n; t++) kt_attend(&c, k, v, pos + t, q + (size_t)t * H * hd, o1 + (size_t)t * H * hd, tmp);
        kt_matvec_force_scalar(0);
        kt_attend_tokens(&c, k, v, pos, n, q, o2, tmp);
        CHECK_MSG(memcmp(o1, o2, qn * 4) == 0, "attend H%d KV%d hd%d pos %d n %d: outputs differ", H, KV, hd, pos, n);
        free(k), free(v), free(q), free(o1), free(o2), free(tmp);
    }
}

/* The CPU backend's relu2 (relu(x)^2, written without a branch) against
 * MLX's definition square(maximum(x, 0)), where maximum propagates NaN:
 * NaN in, NaN out, else x > 0 ? x * x : +0 bit for bit: every special value
 * (signed zeros, infinities, NaNs of both signs, subnormals, the largest
 * finite values) and random bit patterns, in a vector long enough that the
 * threads share it. */
void test_relu2_is_its_definition(void) {
    static const uint32_t special[] = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u,
                                       0xffc00000u, 0x7f800001u, 0xff800001u, 0x00000001u, 0x80000001u,
                                       0x007fffffu, 0x807fffffu, 0x7f7fffffu, 0xff7fffffu, 0x3f800000u,
                                       0xbf800000u, 0x1f800000u, 0x60000000u};
    const int ns = (int)(sizeof special / sizeof special[0]), n = 70001;
    uint32_t *in = malloc((size_t)n * 4);
    float *u = malloc((size_t)n * 4);
    uint64_t st = 5;
    for (int i = 0; i < n; i++) {
        st ^= st << 13, st ^= st >> 7, st ^= st << 17;
        in[i] = i < ns ? special[i] : (uint32_t)(st >> 17);
    }
    memcpy(u, in, (size_t)n * 4);
    kt_cpu_backend()->relu2(u, n);
    int bad = 0;
    for (int i = 0; i < n && bad < 5; i++) {
        float x, want;
        memcpy(&x, &in[i], 4);
        want = x != x ? x * x : x > 0 ? x * x : 0;
        if (want != want ? u[i] == u[i] : memcmp(&want, &u[i], 4) != 0) {
            bad++;
            CHECK_MSG(0, "relu2 of bits 0x%08x: got %a, want %a", (unsigned)in[i], (double)u[i], (double)want);
        }
    }
    CHECK(bad == 0);
    free(in), free(u);
}
