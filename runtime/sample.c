/* sample.c - see sample.h. */
#include "sample.h"
#include "strbuf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t next64(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s) { return (double)(next64(s) >> 11) * (1.0 / 9007199254740992.0); }

uint64_t kt_sample_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t s = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + ((uint64_t)getpid() << 40);
    return next64(&s) >> 1; /* below 2^63: the seed prints and parses as a plain integer */
}

void kt_sample_penalize(const kt_sampler *s, float *logits, int n, const int32_t *history, size_t n_history) {
    if (s->repetition_penalty == 1.0f || !(s->repetition_penalty > 0)) return;
    const size_t from = n_history > KT_REPETITION_CONTEXT ? n_history - KT_REPETITION_CONTEXT : 0;
    for (size_t i = from; i < n_history; i++) {
        int t = history[i], seen = 0;
        if (t < 0 || t >= n) continue;
        for (size_t j = from; j < i && !seen; j++) seen = history[j] == t; /* once per distinct token */
        if (seen) continue;
        logits[t] = logits[t] < 0 ? logits[t] * s->repetition_penalty : logits[t] / s->repetition_penalty;
    }
}

typedef struct {
    float lp;
    int id;
} cand;

static int by_lp_asc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    return x->lp < y->lp ? -1 : x->lp > y->lp ? 1 : x->id - y->id;
}

/* logits - logsumexp(logits), in float32 as MLX computes it */
static void log_softmax(const float *logits, int n, float *lp) {
    float mx = logits[0];
    for (int i = 1; i < n; i++)
        if (logits[i] > mx) mx = logits[i];
    float sum = 0;
    for (int i = 0; i < n; i++) sum += expf(logits[i] - mx);
    const float lse = mx + logf(sum);
    for (int i = 0; i < n; i++) lp[i] = logits[i] - lse;
}

/* top-p, min-p, top-k on LP (-INFINITY marks a dropped token). One sort
 * serves top-p and top-k: every filter drops from the small end, so the
 * tokens left are always a suffix of the ascending order. */
static void filter(const kt_sampler *s, float *lp, int n) {
    const int top_p = s->top_p > 0 && s->top_p < 1.0f, top_k = s->top_k > 0 && s->top_k < n;
    cand *c = top_p || top_k ? kt_xmalloc((size_t)n * sizeof *c) : NULL;
    if (c) {
        for (int i = 0; i < n; i++) c[i] = (cand){lp[i], i};
        qsort(c, (size_t)n, sizeof *c, by_lp_asc);
    }
    if (top_p) {
        /* mass_above[i]: the mass of the tokens sorted after i (the larger
         * ones); the tokens dropped are those with mass_above >= p x total */
        float *above = kt_xmalloc((size_t)n * sizeof *above), acc = 0;
        for (int i = n - 1; i >= 0; i--) {
            above[i] = acc;
            acc += expf(c[i].lp);
        }
        const float total = above[0] + expf(c[0].lp);
        int dropped = 0;
        for (int i = 0; i < n; i++) dropped += above[i] >= s->top_p * total;
        const float threshold = c[dropped < n ? dropped : n - 1].lp;
        for (int i = 0; i < n; i++)
            if (lp[i] < threshold) lp[i] = -INFINITY;
        free(above);
    }
    if (s->min_p > 0) {
        float best = lp[0];
        for (int i = 1; i < n; i++)
            if (lp[i] > best) best = lp[i];
        const float floor_lp = best + logf(s->min_p);
        for (int i = 0; i < n; i++)
            if (lp[i] < floor_lp) lp[i] = -INFINITY;
    }
    if (top_k)
        for (int i = 0; i < n - s->top_k; i++) lp[c[i].id] = -INFINITY;
    free(c);
}

void kt_sample_filter(const kt_sampler *s, const float *logits, int n, unsigned char *keep) {
    float *lp = kt_xmalloc((size_t)n * sizeof *lp);
    log_softmax(logits, n, lp);
    filter(s, lp, n);
    for (int i = 0; i < n; i++) keep[i] = lp[i] != -INFINITY;
    free(lp);
}

int32_t kt_sample(kt_sampler *s, float *logits, int n, const int32_t *history, size_t n_history) {
    kt_sample_penalize(s, logits, n, history, n_history);
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    if (s->temperature <= 0) return best;
    float *lp = kt_xmalloc((size_t)n * sizeof *lp);
    log_softmax(logits, n, lp);
    filter(s, lp, n);
    /* softmax(lp / T) over the survivors, relative to the best one (which
     * every filter keeps) */
    double total = 0;
    for (int i = 0; i < n; i++) total += lp[i] == -INFINITY ? 0 : exp(((double)lp[i] - lp[best]) / s->temperature);
    double r = uniform01(&s->rng) * total, acc = 0;
    int32_t pick = best;
    for (int i = 0; i < n; i++) {
        if (lp[i] == -INFINITY) continue;
        acc += exp(((double)lp[i] - lp[best]) / s->temperature);
        if (r < acc) {
            pick = i;
            break;
        }
    }
    free(lp);
    return pick;
}
