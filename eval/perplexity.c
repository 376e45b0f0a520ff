/* perplexity.c - see perplexity.h. */
#include "perplexity.h"
#include "error.h"
#include "strbuf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* log-softmax of LOGITS into LP; returns the index of the largest. */
static int log_softmax(const float *logits, int n, double *lp) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)logits[i] - logits[best]);
    double lse = logits[best] + log(sum);
    for (int i = 0; i < n; i++) lp[i] = logits[i] - lse;
    return best;
}

/* Positions evaluated per batched pass: their logits (CHUNK x vocab floats)
 * are all that is held at once, so a long window needs no more memory than a
 * short one; the state carries over from chunk to chunk. */
enum { CHUNK = 64 };

/* One window: IN[0..n) are fed; from position FIRST on, position t is scored
 * on predicting NEXT[t] (the positions before FIRST are context only). */
static int score_window(const kt_model *m, const kt_model *ref, const int32_t *in, const int32_t *next, long n,
                        long first, kt_ppl_result *r, long *agree, kt_progress *bar) {
    const int V = m->cfg.vocab;
    kt_state st, rs;
    if (kt_state_init(&st, m, (int)n)) return -1;
    if (ref && kt_state_init(&rs, ref, (int)n)) {
        kt_state_free(&st, m);
        return -1;
    }
    float *lg = kt_xmalloc((size_t)CHUNK * V * sizeof *lg), *rg = ref ? kt_xmalloc((size_t)CHUNK * V * sizeof *rg) : NULL;
    double *lp = kt_xmalloc((size_t)V * sizeof *lp), *rp = kt_xmalloc((size_t)V * sizeof *rp);
    int rc = 0;
    for (long c0 = 0; c0 < n && rc == 0; c0 += CHUNK) {
        int cn = (int)(n - c0 < CHUNK ? n - c0 : CHUNK);
        rc = kt_forward_every(m, &st, in + c0, cn, lg);
        if (rc == 0 && ref) rc = kt_forward_every(ref, &rs, in + c0, cn, rg);
        for (int t = c0 < first ? (int)(first - c0 < cn ? first - c0 : cn) : 0; t < cn && rc == 0; t++) {
            int32_t y = next[c0 + t];
            if (y < 0 || y >= V) { /* a tokenizer larger than the embedding (kt_tokenizer_check_vocab) */
                rc = kt_fail("token id %d of the text is outside the vocabulary (%d)", y, V);
                break;
            }
            int top = log_softmax(lg + (size_t)t * V, V, lp);
            r->nll -= lp[y];
            if (r->logprob) r->logprob[r->tokens] = lp[y];
            r->tokens++;
            if (ref) {
                int rtop = log_softmax(rg + (size_t)t * V, V, rp);
                double kl = 0;
                for (int i = 0; i < V; i++) kl += exp(rp[i]) * (rp[i] - lp[i]);
                r->kld_mean += kl;
                if (r->kld) r->kld[r->tokens - 1] = kl, r->agree[r->tokens - 1] = top == rtop;
                if (kl > r->kld_max) r->kld_max = kl;
                r->ref_nll -= rp[y];
                *agree += top == rtop;
            }
        }
        if (c0 + cn > first) kt_progress_add(bar, (uint64_t)(c0 + cn - (c0 > first ? c0 : first)));
    }
    kt_state_free(&st, m);
    if (ref) kt_state_free(&rs, ref);
    free(lg), free(rg), free(lp), free(rp);
    return rc;
}

/* lm-evaluation-harness's loglikelihood_rolling for one document of N tokens
 * (utils.get_rolling_token_windows with context_len 1, then
 * make_disjoint_window, as its Hugging Face model class calls them): the
 * first window feeds PREFIX and the first WINDOW-1 tokens and predicts the
 * first WINDOW; each later window predicts the next WINDOW tokens from the
 * WINDOW tokens before each, so its context is the one token before it; the
 * last, shorter one still reads a whole window, only its new tokens scored.
 * Every token is predicted exactly once. */
static int score_document(const kt_model *m, const kt_model *ref, const int32_t *ids, long n, int32_t prefix,
                          long window, kt_ppl_result *r, long *agree, kt_progress *bar) {
    if (n == 0) return 0;
    const long first = n < window ? n : window;
    int32_t *in = kt_xmalloc((size_t)first * sizeof *in);
    in[0] = prefix;
    memcpy(in + 1, ids, (size_t)(first - 1) * sizeof *in);
    int rc = score_window(m, ref, in, ids, first, 0, r, agree, bar);
    free(in);
    r->windows++;
    for (long done = first; rc == 0 && done < n; r->windows++) {
        const long pred = n - done < window ? n - done : window, end = done + pred;
        /* fed ids[end-window-1 .. end-1), position t predicting ids[end-window+t] */
        rc = score_window(m, ref, ids + end - window - 1, ids + end - window, window, window - pred, r, agree, bar);
        done = end;
    }
    return rc;
}

int kt_perplexity(const kt_model *m, const kt_model *ref, const kt_tokenizer *tok, const kt_documents *docs,
                  const kt_ppl_options *opt, kt_ppl_result *r) {
    memset(r, 0, sizeof *r);
    if (ref && ref->cfg.vocab != m->cfg.vocab) return kt_fail("the reference has another vocabulary size");
    /* lm-eval's prefix token: <s> when the tokenizer has one, else the end of text */
    int32_t prefix = kt_tokenizer_bos(tok);
    if (prefix < 0) prefix = kt_tokenizer_id(tok, "</s>");
    if (prefix < 0) return kt_fail("the tokenizer has neither <s> nor </s> to put before a document");
    int32_t **ids = kt_xcalloc(docs->n ? docs->n : 1, sizeof *ids);
    long *n = kt_xcalloc(docs->n ? docs->n : 1, sizeof *n), total = 0, agree = 0, bytes = 0;
    int rc = 0;
    for (size_t d = 0; d < docs->n && rc == 0; d++) {
        n[d] = kt_tokenizer_encode(tok, docs->doc[d].text, docs->doc[d].len, 0, &ids[d]);
        if (n[d] < 0) rc = -1, n[d] = 0;
        total += n[d];
    }
    if (rc == 0 && opt->keep_logprobs) {
        r->logprob = kt_xmalloc((size_t)(total + 1) * sizeof *r->logprob);
        if (ref) r->kld = kt_xmalloc((size_t)(total + 1) * sizeof *r->kld), r->agree = kt_xmalloc((size_t)total + 1);
    }
    kt_progress bar;
    kt_progress_start_units(&bar, opt->label ? opt->label : "perplexity", "tokens", (uint64_t)total, opt->progress);
    for (size_t d = 0; d < docs->n && rc == 0; d++) {
        rc = score_document(m, ref, ids[d], n[d], prefix, opt->window, r, &agree, &bar);
        r->words += docs->doc[d].words, bytes += docs->doc[d].bytes;
        r->documents++;
    }
    kt_progress_end(&bar);
    for (size_t d = 0; d < docs->n; d++) free(ids[d]);
    free(ids), free(n);
    if (rc == 0 && r->tokens == 0) rc = kt_fail("the text has no tokens to predict");
    if (rc) {
        kt_ppl_free(r);
        return -1;
    }
    r->bytes = bytes;
    r->token_ppl = exp(r->nll / (double)r->tokens);
    r->word_ppl = exp(r->nll / (double)r->words);
    r->byte_ppl = exp(r->nll / (double)r->bytes);
    r->bits_per_byte = r->nll / (double)r->bytes / log(2.0);
    if (ref) {
        r->ref_token_ppl = exp(r->ref_nll / (double)r->tokens);
        r->ref_word_ppl = exp(r->ref_nll / (double)r->words);
        r->ppl_ratio = r->token_ppl / r->ref_token_ppl;
        r->kld_mean /= (double)r->tokens;
        r->top1_agreement = (double)agree / (double)r->tokens;
    }
    return 0;
}

void kt_ppl_free(kt_ppl_result *r) {
    free(r->logprob), free(r->kld), free(r->agree);
    r->logprob = NULL, r->kld = NULL, r->agree = NULL;
}

cJSON *kt_ppl_to_json(const kt_ppl_result *r, int with_ref) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "tokens", kt_json_new_int(r->tokens));
    cJSON_AddItemToObject(o, "words", kt_json_new_int(r->words));
    cJSON_AddItemToObject(o, "documents", kt_json_new_int(r->documents));
    cJSON_AddItemToObject(o, "bytes", kt_json_new_int(r->bytes));
    cJSON_AddItemToObject(o, "windows", kt_json_new_int(r->windows));
    cJSON_AddItemToObject(o, "nll", kt_json_new_float(r->nll));
    cJSON_AddItemToObject(o, "token_perplexity", kt_json_new_float(r->token_ppl));
    cJSON_AddItemToObject(o, "word_perplexity", kt_json_new_float(r->word_ppl));
    cJSON_AddItemToObject(o, "byte_perplexity", kt_json_new_float(r->byte_ppl));
    cJSON_AddItemToObject(o, "bits_per_byte", kt_json_new_float(r->bits_per_byte));
    if (with_ref) {
        cJSON_AddItemToObject(o, "reference_word_perplexity", kt_json_new_float(r->ref_word_ppl));
        cJSON_AddItemToObject(o, "reference_token_perplexity", kt_json_new_float(r->ref_token_ppl));
        cJSON_AddItemToObject(o, "perplexity_ratio", kt_json_new_float(r->ppl_ratio));
        cJSON_AddItemToObject(o, "kld_mean", kt_json_new_float(r->kld_mean));
        cJSON_AddItemToObject(o, "kld_max", kt_json_new_float(r->kld_max));
        cJSON_AddItemToObject(o, "top1_agreement", kt_json_new_float(r->top1_agreement));
    }
    if (r->logprob) {
        cJSON *a = cJSON_AddArrayToObject(o, "token_logprobs");
        for (long i = 0; i < r->tokens; i++) cJSON_AddItemToArray(a, kt_json_new_float(r->logprob[i]));
    }
    return o;
}
