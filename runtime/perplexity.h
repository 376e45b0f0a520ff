/* perplexity.h - how well a model predicts a text, and how far a quantized
 * model's predictions are from its original's.
 *
 * The text is tokenized once and cut into windows of WINDOW tokens; each
 * window is evaluated from a fresh state with <s> in front, and every token of
 * the window is predicted from the ones before it. A window goes through the
 * model as batched passes that return every position's logits (the prompt
 * path, kt_forward_every), not one token at a time. Token perplexity is
 * exp(mean negative log-likelihood); word perplexity is exp(total NLL /
 * words), words counted as lm-evaluation-harness counts them (the pieces of
 * re.split(r"\s+", text)). Against a reference model, the mean KL divergence
 * KL(P_ref || P_model) per token, the share of tokens where both put the same
 * token first, and the ratio of the two perplexities. */
#ifndef KT_PERPLEXITY_H
#define KT_PERPLEXITY_H

#include "json.h"
#include "model.h"
#include "tokenizer.h"

typedef struct {
    long tokens, words, windows;
    double nll;                 /* total, nats */
    double token_ppl, word_ppl;
    /* against a reference (zero when none) */
    double ref_nll, ref_token_ppl, ppl_ratio;
    double kld_mean, kld_max, top1_agreement;
    double *logprob;            /* per scored token, when asked for (else NULL) */
} kt_ppl_result;

/* The figures as a JSON object (kintsugi-run --json, kintsugi-verify);
 * WITH_REF adds the comparison with the reference. */
cJSON *kt_ppl_to_json(const kt_ppl_result *r, int with_ref);

/* REF may be NULL; KEEP_LOGPROBS fills r->logprob (free with kt_ppl_free).
 * Returns -1 with kt_errmsg(). */
int kt_perplexity(const kt_model *m, const kt_model *ref, const kt_tokenizer *tok, const char *text, size_t len,
                  int window, int keep_logprobs, kt_ppl_result *r);
void kt_ppl_free(kt_ppl_result *r);

#endif
