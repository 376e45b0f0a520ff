/* sample.h - choosing the next token from the logits: greedy, or temperature
 * with top-k, top-p (nucleus) and min-p filters, and a repetition penalty;
 * a seeded generator makes every run repeatable. */
#ifndef KT_SAMPLE_H
#define KT_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    float temperature;         /* 0: greedy */
    int top_k;                 /* 0: off */
    float top_p;               /* 1: off */
    float min_p;               /* 0: off */
    float repetition_penalty;  /* 1: off; applied to the last 64 tokens */
    uint64_t rng;              /* the seed, then the generator's state */
} kt_sampler;

/* LOGITS (N floats) may be modified. HISTORY: the tokens so far. */
int32_t kt_sample(kt_sampler *s, float *logits, int n, const int32_t *history, size_t n_history);

#endif
