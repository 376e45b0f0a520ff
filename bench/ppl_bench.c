/* ppl_bench.c - perplexity through the batched pass (kt_perplexity: every
 * position's logits from one matrix-matrix pass per chunk) against the
 * one-token path it replaced (kt_forward per position), on the same model,
 * text and window, in alternating rounds.
 *
 *   ppl-bench MODEL_DIR TEXT_FILE [--window N] [--rounds R]
 *
 * Prints JSON: tokens scored, the median seconds of each path, tokens/s and
 * the ratio; both paths' total NLL (they must agree: the same sums in another
 * order). */
#include "bench_util.h"
#include "error.h"
#include "file.h"
#include "model.h"
#include "perplexity.h"
#include "tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The token-by-token reference: <s>, then each token fed after it is scored. */
static double nll_one_token_at_a_time(const kt_model *m, const int32_t *ids, long n, int window, int32_t bos) {
    const int V = m->cfg.vocab;
    float *lg = malloc((size_t)V * sizeof *lg);
    double nll = 0;
    for (long w0 = 0; w0 < n; w0 += window) {
        long wn = n - w0 < window ? n - w0 : window;
        kt_state st;
        kt_state_init(&st, m, (int)wn + 1);
        int32_t prev = bos;
        for (long t = 0; t < wn; t++) {
            if (kt_forward(m, &st, prev, lg)) {
                fprintf(stderr, "ppl-bench: %s\n", kt_errmsg());
                exit(1);
            }
            float mx = lg[0];
            for (int i = 1; i < V; i++) mx = lg[i] > mx ? lg[i] : mx;
            double s = 0;
            for (int i = 0; i < V; i++) s += exp((double)lg[i] - mx);
            nll -= (double)lg[ids[w0 + t]] - mx - log(s);
            prev = ids[w0 + t];
        }
        kt_state_free(&st, m);
    }
    free(lg);
    return nll;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: ppl-bench MODEL_DIR TEXT_FILE [--window N] [--rounds R]\n");
        return 2;
    }
    int window = 1 << 20, rounds = 3; /* one window over the text: both paths score it alike */
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--window")) window = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[i + 1]);
    }
    if (window < 2 || rounds < 1 || rounds > 99) {
        fprintf(stderr, "ppl-bench: --window >= 2, --rounds 1..99\n");
        return 2;
    }
    kt_model m;
    char *tpath = malloc(strlen(argv[1]) + 32), *text;
    sprintf(tpath, "%s/tokenizer.json", argv[1]);
    kt_tokenizer *tok = kt_tokenizer_load(tpath);
    size_t len;
    if (!tok || kt_model_load(&m, argv[1]) || kt_read_file(argv[2], &text, &len) != 1) {
        fprintf(stderr, "ppl-bench: %s\n", kt_errmsg());
        return 1;
    }
    int32_t *ids;
    long n = kt_tokenizer_encode(tok, text, len, 0, &ids);
    int32_t bos = kt_tokenizer_bos(tok);
    if (n < 2 || bos < 0) {
        fprintf(stderr, "ppl-bench: the text needs tokens and the tokenizer a <s>\n");
        return 1;
    }
    /* one document: the rolling windows of kt_perplexity equal the fresh
     * windows below when WINDOW covers the text */
    kt_documents docs = {&(kt_document){text, len, 1, (long)len}, 1, 0};
    const kt_ppl_options po = {window, 0, 0, NULL};
    double tb[99], tt[99], nll_b = 0, nll_t = 0;
    for (int r = 0; r < rounds; r++) {
        kt_ppl_result res;
        double t0 = bench_now();
        if (kt_perplexity(&m, NULL, tok, &docs, &po, &res)) {
            fprintf(stderr, "ppl-bench: %s\n", kt_errmsg());
            return 1;
        }
        tb[r] = bench_now() - t0;
        nll_b = res.nll;
        t0 = bench_now();
        nll_t = nll_one_token_at_a_time(&m, ids, n, window, bos);
        tt[r] = bench_now() - t0;
        fprintf(stderr, "ppl-bench: round %d: batched %.2f s, token by token %.2f s\n", r + 1, tb[r], tt[r]);
    }
    double mb = bench_median(tb, rounds), mt = bench_median(tt, rounds);
    printf("{\"tokens\": %ld, \"window\": %d, \"rounds\": %d, \"batched_s\": %.3f, \"token_by_token_s\": %.3f, "
           "\"batched_tok_s\": %.2f, \"token_by_token_tok_s\": %.2f, \"speedup\": %.2f, \"nll_batched\": %.6f, "
           "\"nll_token_by_token\": %.6f}\n",
           n, window, rounds, mb, mt, n / mb, n / mt, mt / mb, nll_b, nll_t);
    free(ids), free(text), free(tpath);
    kt_tokenizer_free(tok);
    kt_model_free(&m);
    return 0;
}
