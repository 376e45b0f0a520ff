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

/* len(re.split(r"\s+", text)): the separators' count plus one (Python's \s
 * in str patterns is Unicode whitespace; ASCII whitespace and U+3000 here). */
static long count_words(const char *s, size_t n) {
    long pieces = 1;
    size_t i = 0;
    while (i < n) {
        size_t k = 0;
        while (i + k < n) {
            unsigned char c = (unsigned char)s[i + k];
            if (c == ' ' || (c >= 9 && c <= 13) || (c >= 28 && c <= 31)) k++;
            else if (i + k + 2 < n && c == 0xE3 && (unsigned char)s[i + k + 1] == 0x80 && (unsigned char)s[i + k + 2] == 0x80) k += 3;
            else break;
        }
        if (k) {
            pieces++;
            i += k;
        } else {
            i++;
        }
    }
    return pieces;
}

/* Positions evaluated per batched pass: their logits (CHUNK x vocab floats)
 * are all that is held at once, so a long window needs no more memory than a
 * short one; the state carries over from chunk to chunk. */
enum { CHUNK = 64 };

/* One window: IN[0..n) are fed, position t predicts NEXT[t]. */
static int score_window(const kt_model *m, const kt_model *ref, const int32_t *in, const int32_t *next, long n,
                        kt_ppl_result *r, long *agree) {
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
        for (int t = 0; t < cn && rc == 0; t++) {
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
                if (kl > r->kld_max) r->kld_max = kl;
                r->ref_nll -= rp[y];
                *agree += top == rtop;
            }
        }
    }
    kt_state_free(&st, m);
    if (ref) kt_state_free(&rs, ref);
    free(lg), free(rg), free(lp), free(rp);
    return rc;
}

int kt_perplexity(const kt_model *m, const kt_model *ref, const kt_tokenizer *tok, const char *text, size_t len,
                  int window, int keep_logprobs, kt_ppl_result *r) {
    memset(r, 0, sizeof *r);
    if (ref && ref->cfg.vocab != m->cfg.vocab) return kt_fail("the reference has another vocabulary size");
    int32_t *ids;
    long n = kt_tokenizer_encode(tok, text, len, 0, &ids);
    if (n < 0) return -1;
    const int32_t bos = kt_tokenizer_bos(tok);
    if (n == 0 || (bos < 0 && n < 2)) {
        free(ids);
        return kt_fail("the text has no tokens to predict");
    }
    if (keep_logprobs) r->logprob = kt_xmalloc((size_t)n * sizeof *r->logprob);
    int32_t *in = kt_xmalloc((size_t)window * sizeof *in);
    long agree = 0;
    int rc = 0;
    for (long w0 = 0; w0 < n && rc == 0; w0 += window) {
        long wn = n - w0 < window ? n - w0 : window;
        /* with <s>: fed <s> t0 .. t(n-2), predicting t0 .. t(n-1); without, the
         * window's first token is context only */
        long fed = bos >= 0 ? wn : wn - 1;
        if (fed <= 0) break;
        if (bos >= 0) {
            in[0] = bos;
            memcpy(in + 1, ids + w0, (size_t)(wn - 1) * sizeof *in);
        } else {
            memcpy(in, ids + w0, (size_t)fed * sizeof *in);
        }
        rc = score_window(m, ref, in, ids + w0 + (bos >= 0 ? 0 : 1), fed, r, &agree);
        r->windows++;
    }
    free(in), free(ids);
    if (rc) {
        kt_ppl_free(r);
        return -1;
    }
    r->words = count_words(text, len);
    r->token_ppl = exp(r->nll / (double)r->tokens);
    r->word_ppl = exp(r->nll / (double)r->words);
    if (ref) {
        r->ref_token_ppl = exp(r->ref_nll / (double)r->tokens);
        r->ppl_ratio = r->token_ppl / r->ref_token_ppl;
        r->kld_mean /= (double)r->tokens;
        r->top1_agreement = (double)agree / (double)r->tokens;
    }
    return 0;
}

void kt_ppl_free(kt_ppl_result *r) {
    free(r->logprob);
    r->logprob = NULL;
}

cJSON *kt_ppl_to_json(const kt_ppl_result *r, int with_ref) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "tokens", kt_json_new_int(r->tokens));
    cJSON_AddItemToObject(o, "words", kt_json_new_int(r->words));
    cJSON_AddItemToObject(o, "windows", kt_json_new_int(r->windows));
    cJSON_AddItemToObject(o, "nll", kt_json_new_float(r->nll));
    cJSON_AddItemToObject(o, "token_perplexity", kt_json_new_float(r->token_ppl));
    cJSON_AddItemToObject(o, "word_perplexity", kt_json_new_float(r->word_ppl));
    if (with_ref) {
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
