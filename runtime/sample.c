/* sample.c - see sample.h. */
#include "sample.h"
#include "strbuf.h"

#include <math.h>
#include <stdlib.h>

static double uniform01(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

typedef struct {
    float p;
    int id;
} cand;

static int by_p_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    return x->p > y->p ? -1 : x->p < y->p ? 1 : x->id - y->id;
}

int32_t kt_sample(kt_sampler *s, float *logits, int n, const int32_t *history, size_t n_history) {
    if (s->repetition_penalty != 1.0f && s->repetition_penalty > 0)
        for (size_t i = n_history > 64 ? n_history - 64 : 0; i < n_history; i++) {
            int t = history[i];
            if (t < 0 || t >= n) continue;
            logits[t] = logits[t] < 0 ? logits[t] * s->repetition_penalty : logits[t] / s->repetition_penalty;
        }
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    if (s->temperature <= 0) return best;
    cand *c = kt_xmalloc((size_t)n * sizeof *c);
    double sum = 0;
    for (int i = 0; i < n; i++) {
        c[i].id = i;
        c[i].p = expf((logits[i] - logits[best]) / s->temperature);
        sum += c[i].p;
    }
    for (int i = 0; i < n; i++) c[i].p = (float)(c[i].p / sum);
    qsort(c, (size_t)n, sizeof *c, by_p_desc);
    int keep = n;
    if (s->top_k > 0 && s->top_k < keep) keep = s->top_k;
    if (s->top_p < 1.0f) {
        double cum = 0;
        for (int i = 0; i < keep; i++) {
            cum += c[i].p;
            if (cum >= s->top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    if (s->min_p > 0)
        while (keep > 1 && c[keep - 1].p < s->min_p * c[0].p) keep--;
    double total = 0;
    for (int i = 0; i < keep; i++) total += c[i].p;
    double r = uniform01(&s->rng) * total, acc = 0;
    int32_t pick = c[keep - 1].id;
    for (int i = 0; i < keep; i++) {
        acc += c[i].p;
        if (r < acc) {
            pick = c[i].id;
            break;
        }
    }
    free(c);
    return pick;
}
