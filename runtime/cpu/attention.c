/* attention.c - causal attention of one query over the KV cache, without
 * positional encoding (Nemotron-H's attention layers have none):
 * o_h = softmax(q_h . k_t / sqrt(head_dim)) over t = 0..pos, times v_t, with
 * grouped-query heads (query head h reads kv head h / (heads / kv_heads)). */
#include "cpu.h"
#include "kernels.h"
#include "strbuf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { LANES = 16 };

/* Head H of query Q at position POS into O; SC: POS + 1 floats. Each
 * score q . k is summed in LANES partial sums (i mod LANES), added at the
 * end: vector registers without reordering any float addition, the same
 * bits in every clone below. */
static inline __attribute__((always_inline)) void attend_head_body(const kt_config *c, const float *kc, const float *vc,
                                                                   int pos, int h, const float *q, float *o, float *sc) {
    const int hd = c->head_dim, KV = c->kv_heads, kvh = h / (c->heads / KV);
    const float scale = 1.0f / sqrtf((float)hd), *qh = q + (size_t)h * hd;
    float *oh = o + (size_t)h * hd;
    float mx = -INFINITY;
    for (int t = 0; t <= pos; t++) {
        const float *k = kc + ((size_t)t * KV + kvh) * hd;
        float part[LANES] = {0};
        int i = 0;
        for (; i + LANES <= hd; i += LANES)
#pragma omp simd
            for (int j = 0; j < LANES; j++) part[j] += qh[i + j] * k[i + j];
        float s = 0;
        for (int j = 0; j < LANES; j++) s += part[j];
        for (; i < hd; i++) s += qh[i] * k[i];
        sc[t] = s * scale;
        if (sc[t] > mx) mx = sc[t];
    }
    float sum = 0;
    for (int t = 0; t <= pos; t++) sum += sc[t] = expf(sc[t] - mx);
    memset(oh, 0, (size_t)hd * sizeof *oh);
    for (int t = 0; t <= pos; t++) {
        const float *v = vc + ((size_t)t * KV + kvh) * hd, w = sc[t] / sum;
#pragma omp simd
        for (int i = 0; i < hd; i++) oh[i] += w * v[i];
    }
}

/* The same C for wider vectors, chosen at run time (as mamba2.c does);
 * kt_matvec_force_scalar selects the build's baseline. */
typedef void attend_head_fn(const kt_config *, const float *, const float *, int, int, const float *, float *, float *);
#define ATTEND_HEAD(NAME, ATTR)                                                                                     \
    ATTR static void NAME(const kt_config *c, const float *kc, const float *vc, int pos, int h, const float *q,    \
                          float *o, float *sc) {                                                                    \
        attend_head_body(c, kc, vc, pos, h, q, o, sc);                                                              \
    }
ATTEND_HEAD(attend_head_ref, )
#if defined(__x86_64__) && defined(__GNUC__)
ATTEND_HEAD(attend_head_avx2, __attribute__((target("avx2"))))
ATTEND_HEAD(attend_head_avx512, __attribute__((target("avx512f"))))
#endif

static attend_head_fn *attend_head_kernel(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    attend_head_fn *const by_level[] = {attend_head_ref, attend_head_avx2, attend_head_avx512};
    return by_level[kt_clone_level()];
#else
    return attend_head_ref;
#endif
}

void kt_attend(const kt_config *c, const float *kc, const float *vc, int pos, const float *q, float *o, float *sc) {
    attend_head_fn *attend_head = attend_head_kernel();
    for (int h = 0; h < c->heads; h++) attend_head(c, kc, vc, pos, h, q, o, sc);
}

/* N queries at positions POS.. POS + N - 1, the cache already holding
 * their keys and values: every (token, head) pair is independent, so they
 * are shared among the threads, each with its own scores. */
void kt_attend_tokens(const kt_config *c, const float *kc, const float *vc, int pos, int n, const float *q, float *o,
                      float *sc) {
    if (n == 1) {
        kt_attend(c, kc, vc, pos, q, o, sc);
        return;
    }
    const int Q = c->heads * c->head_dim;
    attend_head_fn *attend_head = attend_head_kernel();
#pragma omp parallel
    {
        float *mine = kt_xmalloc((size_t)(pos + n) * sizeof *mine);
#pragma omp for schedule(dynamic, 8)
        for (long i = 0; i < (long)n * c->heads; i++) {
            const int t = (int)(i / c->heads), h = (int)(i % c->heads);
            attend_head(c, kc, vc, pos + t, h, q + (size_t)t * Q, o + (size_t)t * Q, mine);
        }
        free(mine);
    }
}
