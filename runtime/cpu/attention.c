/* attention.c - causal attention of one query over the KV cache, without
 * positional encoding (Nemotron-H's attention layers have none):
 * o_h = softmax(q_h . k_t / sqrt(head_dim)) over t = 0..pos, times v_t, with
 * grouped-query heads (query head h reads kv head h / (heads / kv_heads)). */
#include "cpu.h"
#include "strbuf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void kt_attend(const kt_config *c, const float *kc, const float *vc, int pos, const float *q, float *o, float *sc) {
    const int hd = c->head_dim, H = c->heads, KV = c->kv_heads, per = H / KV;
    memset(o, 0, (size_t)H * hd * sizeof *o);
    const float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < H; h++) {
        const int kvh = h / per;
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
        for (int t = 0; t <= pos; t++) {
            const float *v = vc + ((size_t)t * KV + kvh) * hd;
            for (int i = 0; i < hd; i++) o[h * hd + i] += sc[t] / sum * v[i];
        }
    }
}
