/* perplexity.h - how well a model predicts a set of documents, measured as
 * lm-evaluation-harness 0.4.11 measures it, and how far a quantized model's
 * predictions are from its original's.
 *
 * Each document (documents.h) is encoded without special tokens and scored
 * with lm-eval's rolling windows (loglikelihood_rolling: <s> before the first
 * token, windows of WINDOW tokens, every token predicted once; perplexity.c
 * says how). A window goes through the model as batched passes that return
 * every position's logits (kt_forward_every). The aggregates are lm-eval's
 * wikitext metrics: word perplexity exp(NLL / words), byte perplexity
 * exp(NLL / bytes), bits per byte NLL / bytes / ln 2, with words and bytes of
 * the documents as stored; token perplexity exp(NLL / tokens) beside them.
 * Against a reference model, on the same windows: the mean KL divergence
 * KL(P_ref || P_model) per scored token, the share of tokens where both put
 * the same token first, and the ratio of the two token perplexities. */
#ifndef KT_PERPLEXITY_H
#define KT_PERPLEXITY_H

#include "documents.h"
#include "json.h"
#include "progress.h"
#include "model.h"
#include "tokenizer.h"

typedef struct {
    long tokens, words, bytes, windows, documents;
    double nll;                 /* total, nats */
    double token_ppl, word_ppl, byte_ppl, bits_per_byte;
    /* against a reference (zero when none) */
    double ref_nll, ref_token_ppl, ref_word_ppl, ppl_ratio;
    double kld_mean, kld_max, top1_agreement;
    double *logprob;            /* per scored token, when asked for (else NULL) */
    double *kld;                /* with a reference, when asked for: per scored token */
    unsigned char *agree;       /* the same: 1 where both put the same token first */
} kt_ppl_result;

/* The figures as a JSON object (kintsugi-run --json, kintsugi-verify);
 * WITH_REF adds the comparison with the reference. */
cJSON *kt_ppl_to_json(const kt_ppl_result *r, int with_ref);

typedef struct {
    int window;         /* lm-eval's max_length: tokens a window reads */
    int keep_logprobs;  /* fill r->logprob, and with a reference r->kld and r->agree (kt_ppl_free) */
    int progress;       /* a bar on a terminal: tokens scored, tokens/s, time left */
    const char *label;  /* the bar's label */
} kt_ppl_options;

/* REF may be NULL. Returns -1 with kt_errmsg(). */
int kt_perplexity(const kt_model *m, const kt_model *ref, const kt_tokenizer *tok, const kt_documents *docs,
                  const kt_ppl_options *opt, kt_ppl_result *r);
void kt_ppl_free(kt_ppl_result *r);

#endif
