/* sample.h - choosing the next token from the logits as mlx-lm does:
 * greedy, or temperature sampling after its top-p, min-p and top-k filters,
 * with its repetition penalty; a seeded generator makes a run repeatable.
 *
 * mlx-lm's order (mlx_lm/sample_utils.py, generate_step), restated:
 *   1. the repetition penalty: each distinct token among the last 20 once,
 *      its logit divided by R (positive) or multiplied by R (negative);
 *   2. temperature 0: the first largest logit;
 *   3. logprobs = logits - logsumexp(logits), at temperature 1;
 *   4. top-p (0 < p < 1): keep the tokens whose strictly larger tokens hold
 *      less than p of the mass (ties kept together); then min-p (> 0): drop
 *      logprobs below the best one's + log(min_p); then top-k (0 < k < n):
 *      the k largest;
 *   5. one draw from softmax(logprobs / temperature) over what is left.
 * The random draw is this project's own generator (splitmix64), not MLX's:
 * the same seed repeats a kintsugi run, not an mlx-lm one. */
#ifndef KT_SAMPLE_H
#define KT_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

/* mlx-lm's repetition_context_size default */
#define KT_REPETITION_CONTEXT 20

typedef struct {
    float temperature;         /* 0: greedy */
    int top_k;                 /* 0: off */
    float top_p;               /* 1: off */
    float min_p;               /* 0: off */
    float repetition_penalty;  /* 1: off; the last KT_REPETITION_CONTEXT tokens */
    uint64_t rng;              /* the seed, then the generator's state */
} kt_sampler;

/* LOGITS (N floats) may be modified. HISTORY: the tokens so far. */
int32_t kt_sample(kt_sampler *s, float *logits, int n, const int32_t *history, size_t n_history);

/* Steps 1 and 3-4 alone, for the tests against mlx-lm's functions: the
 * penalty applied to LOGITS in place, and KEEP[i] = 1 for the tokens the
 * filters leave. */
void kt_sample_penalize(const kt_sampler *s, float *logits, int n, const int32_t *history, size_t n_history);
void kt_sample_filter(const kt_sampler *s, const float *logits, int n, unsigned char *keep);

/* A seed from the clock and the process, for a run that names none (MLX
 * seeds from the clock too); the run reports it so it can be repeated. */
uint64_t kt_sample_seed(void);

#endif
