/* attention.c - causal attention of one query over the KV cache, without
 * positional encoding (Nemotron-H's attention layers have none):
 * o_h = softmax(q_h . k_t / sqrt(head_dim)) over t = 0..pos, times v_t, with
 * grouped-query heads (query head h reads kv head h / (heads / kv_heads)). */
#include "cpu.h"
#include "strbuf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Head H of query Q at position POS into O; SC: POS + 1 floats. */
static void attend_head(const kt_config *c, const float *kc, const float *vc, int pos, int h, const float *q, float *o,
                        float *sc) {
    const int hd = c->head_dim, KV = c->kv_heads, kvh = h / (c->heads / KV);
    const float scale = 1.0f / sqrtf((float)hd);
    float mx = -INFINITY;
    for (int t = 0; t <= pos; t++) {
        const float *k = kc + ((size_t)t * KV + kvh) * hd;
        float s = 0;
        for (int i = 0; i < hd; i++) s += q[h * hd + i] * k[i];
        sc[t] = s * scale;
        if (sc[t] > mx) mx = sc[t];
    }
    float sum = 0;
    for (int t = 0; t <= pos; t++) sum += sc[t] = expf(sc[t] - mx);
    memset(o + (size_t)h * hd, 0, (size_t)hd * sizeof *o);
    for (int t = 0; t <= pos; t++) {
        const float *v = vc + ((size_t)t * KV + kvh) * hd;
        for (int i = 0; i < hd; i++) o[h * hd + i] += sc[t] / sum * v[i];
    }
}

void kt_attend(const kt_config *c, const float *kc, const float *vc, int pos, const float *q, float *o, float *sc) {
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
