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

int kt_perplexity(const kt_model *m, const kt_model *ref, const kt_tokenizer *tok, const char *text, size_t len,
                  int window, kt_ppl_result *r) {
    memset(r, 0, sizeof *r);
    if (ref && ref->cfg.vocab != m->cfg.vocab) return kt_fail("the reference has another vocabulary size");
    int32_t *ids;
    long n = kt_tokenizer_encode(tok, text, len, 0, &ids);
    if (n < 0) return -1;
    if (n == 0) {
        free(ids);
        return kt_fail("the text has no tokens");
    }
    const int V = m->cfg.vocab;
    float *lg = kt_xmalloc((size_t)V * sizeof *lg), *rg = kt_xmalloc((size_t)V * sizeof *rg);
    double *lp = kt_xmalloc((size_t)V * sizeof *lp), *rp = kt_xmalloc((size_t)V * sizeof *rp);
    long agree = 0;
    int rc = 0;
    for (long w0 = 0; w0 < n && rc == 0; w0 += window) {
        long wn = n - w0 < window ? n - w0 : window;
        kt_state st, rs;
        kt_state_init(&st, m, (int)wn + 1);
        if (ref) kt_state_init(&rs, ref, (int)wn + 1);
        int32_t prev = kt_tokenizer_bos(tok) >= 0 ? kt_tokenizer_bos(tok) : ids[w0];
        for (long t = (kt_tokenizer_bos(tok) >= 0 ? 0 : 1); t < wn && rc == 0; t++) {
            rc = kt_forward(m, &st, prev, lg);
            if (rc == 0 && ref) rc = kt_forward(ref, &rs, prev, rg);
            if (rc) break;
            int32_t next = ids[w0 + t];
            int top = log_softmax(lg, V, lp);
            r->nll -= lp[next];
            r->tokens++;
            if (ref) {
                int rtop = log_softmax(rg, V, rp);
                double kl = 0;
                for (int i = 0; i < V; i++) kl += exp(rp[i]) * (rp[i] - lp[i]);
                r->kld_mean += kl;
                if (kl > r->kld_max) r->kld_max = kl;
                r->ref_nll -= rp[next];
                agree += top == rtop;
            }
            prev = next;
        }
        kt_state_free(&st, m);
        if (ref) kt_state_free(&rs, ref);
        r->windows++;
    }
    free(lg), free(rg), free(lp), free(rp), free(ids);
    if (rc) return -1;
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
    return o;
}
