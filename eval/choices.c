/* choices.c - see choices.h. */
#include "choices.h"
#include "progress.h"
#include "error.h"
#include "file.h"
#include "strbuf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* lm-eval's ja_leaderboard_jcommonsenseqa task: its description and
 * doc_to_text, and the "\n" it puts between the prompt and the choice. */
static const char JCQA_DESCRIPTION[] =
    "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。\n\n";

static char *jcqa_context(const char *question, char *const *choice, int n) {
    strbuf sb = {0};
    sb_puts(&sb, "### 指示：\n出力は以下から選択してください：\n");
    for (int i = 0; i < n; i++) sb_printf(&sb, "- %s\n", choice[i]);
    sb_printf(&sb, "\n### 入力：\n%s\n\n### 応答：", question);
    return sb_take(&sb);
}

static const char *string_field(const cJSON *o, const char *key) {
    const cJSON *v = kt_json_get(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* One line into IT; -1 with the problem in kt_errmsg (without file and line). */
static int parse_item(const cJSON *o, int *jcqa, kt_mc_item *it) {
    if (!cJSON_IsObject(o)) return kt_fail("not a JSON object");
    int is_jcqa = kt_json_get(o, "question") != NULL;
    if (*jcqa < 0) *jcqa = is_jcqa;
    if (is_jcqa != *jcqa)
        return kt_fail("%s item in a file of %s items", is_jcqa ? "a JCommonsenseQA" : "a generic",
                       *jcqa ? "JCommonsenseQA" : "generic");
    const cJSON *label;
    int64_t answer;
    if (is_jcqa) {
        const char *q = string_field(o, "question");
        if (!q) return kt_fail("\"question\" is not a string");
        it->n_choices = 5;
        it->choice = kt_xcalloc(5, sizeof *it->choice);
        for (int i = 0; i < 5; i++) {
            char key[32];
            snprintf(key, sizeof key, "choice%d", i);
            const char *c = string_field(o, key);
            if (!c) return kt_fail("\"%s\" is missing or not a string", key);
            it->choice[i] = kt_xstrdup(c);
        }
        label = kt_json_get(o, "label");
        if (!label) return kt_fail("\"label\" is missing");
        it->context = jcqa_context(q, it->choice, 5);
    } else {
        const char *ctx = string_field(o, "context");
        const cJSON *ch = kt_json_get(o, "choices");
        if (!ctx) return kt_fail("\"context\" is missing or not a string (the generic form is {\"context\", \"choices\", \"answer\"}; JCommonsenseQA's is {\"question\", \"choice0\"..\"choice4\", \"label\"})");
        if (!cJSON_IsArray(ch) || cJSON_GetArraySize(ch) < 2) return kt_fail("\"choices\" is not a list of at least two strings");
        it->n_choices = cJSON_GetArraySize(ch);
        it->choice = kt_xcalloc((size_t)it->n_choices, sizeof *it->choice);
        for (int i = 0; i < it->n_choices; i++) {
            const cJSON *c = cJSON_GetArrayItem(ch, i);
            if (!cJSON_IsString(c)) return kt_fail("choice %d is not a string", i);
            it->choice[i] = kt_xstrdup(c->valuestring);
        }
        label = kt_json_get(o, "answer");
        if (!label) return kt_fail("\"answer\" is missing");
        it->context = kt_xstrdup(ctx);
    }
    const char *lname = is_jcqa ? "label" : "answer";
    if (!kt_json_is_integer(label) || kt_json_i64(label, &answer))
        return kt_fail("\"%s\" is not a whole number", lname);
    if (answer < 0 || answer >= it->n_choices)
        return kt_fail("\"%s\" is %lld, not a choice (0 to %d)", lname, (long long)answer, it->n_choices - 1);
    it->answer = (int)answer;
    it->cont = kt_xcalloc((size_t)it->n_choices, sizeof *it->cont);
    for (int i = 0; i < it->n_choices; i++) {
        if (!it->choice[i][0]) return kt_fail("choice %d is empty", i);
        strbuf sb = {0};
        if (is_jcqa) sb_putc(&sb, '\n');
        sb_puts(&sb, it->choice[i]);
        it->cont[i] = sb_take(&sb);
    }
    return 0;
}

static void item_free(kt_mc_item *it) {
    for (int i = 0; i < it->n_choices; i++) {
        if (it->choice) free(it->choice[i]);
        if (it->cont) free(it->cont[i]);
    }
    free(it->choice), free(it->cont), free(it->context);
    memset(it, 0, sizeof *it);
}

int kt_mc_read(const char *path, kt_mc_set *set) {
    char *text;
    size_t len;
    int got = kt_read_input(path, &text, &len);
    if (got == 0) return kt_fail_io("%s: no such file", path);
    if (got < 0) return -1;
    int rc = kt_mc_parse(text, len, path, set);
    free(text);
    return rc;
}

int kt_mc_parse(const char *text, size_t len, const char *path, kt_mc_set *set) {
    memset(set, 0, sizeof *set);
    set->path = path;
    int jcqa = -1, rc = 0;
    long line = 0;
    size_t pos = 0, n;
    const char *s;
    while (rc == 0 && kt_next_line(text, len, &pos, &line, &s, &n)) {
        cJSON *o = kt_json_parse(s, n, KT_JSON_DUP_LAST_WINS, "line");
        set->items = kt_xrealloc(set->items, (size_t)(set->n + 1) * sizeof *set->items);
        kt_mc_item *it = &set->items[set->n];
        memset(it, 0, sizeof *it);
        it->line = line;
        if (!o || parse_item(o, &jcqa, it)) {
            char *why = kt_xstrdup(kt_errmsg());
            rc = kt_fail("%s:%ld: %s", path, line, strncmp(why, "line: ", 6) ? why : why + 6);
            free(why);
            item_free(it);
        } else {
            set->n++;
        }
        cJSON_Delete(o);
    }
    if (rc == 0 && set->n == 0) rc = kt_fail("%s: no items", path);
    if (rc) {
        kt_mc_free(set);
        return -1;
    }
    set->jcqa = jcqa == 1;
    return 0;
}

void kt_mc_free(kt_mc_set *set) {
    for (int i = 0; i < set->n; i++) item_free(&set->items[i]);
    free(set->items);
    set->items = NULL;
    set->n = 0;
}

/* Python's str.rstrip(): ASCII whitespace, the separators 0x1c-0x1f, and
 * U+3000 (the whitespace Japanese text has); returns the kept length. */
static size_t rstrip_len(const char *s, size_t n) {
    for (;;) {
        unsigned char c = n ? (unsigned char)s[n - 1] : 0;
        if (n && (c == ' ' || (c >= 9 && c <= 13) || (c >= 28 && c <= 31))) n--;
        else if (n >= 3 && (unsigned char)s[n - 3] == 0xE3 && (unsigned char)s[n - 2] == 0x80 && c == 0x80) n -= 3;
        else return n;
    }
}

static double log_softmax_at(const float *logits, int n, int32_t y) {
    float mx = logits[0];
    for (int i = 1; i < n; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
    return (double)logits[y] - mx - log(sum);
}

/* The continuation of choice C as tokens: those of CONTEXT + cont past the
 * length of the context's own encoding (N_CTX). */
static long continuation(const kt_tokenizer *tok, const strbuf *context, const char *cont, long n_ctx, int32_t **out) {
    strbuf w = {0};
    sb_append(&w, context->data, context->len); /* the context's trailing whitespace belongs to the continuation */
    sb_puts(&w, cont);
    int32_t *whole;
    long nw = kt_tokenizer_encode(tok, w.data, w.len, 0, &whole);
    sb_free(&w);
    if (nw < 0) return -1;
    long n = nw > n_ctx ? nw - n_ctx : 0;
    *out = kt_xmalloc((size_t)(n ? n : 1) * sizeof **out);
    if (n) memcpy(*out, whole + n_ctx, (size_t)n * sizeof **out);
    free(whole);
    return n;
}

/* The log-likelihood of each continuation of one context: the context runs
 * once, each continuation from a copy of its state. */
static int score_item(const kt_model *m, const kt_tokenizer *tok, const kt_mc_set *set, const kt_mc_item *it,
                      const char *prefix, int max_context, double *ll) {
    const int V = m->cfg.vocab;
    strbuf full = {0};
    sb_puts(&full, prefix);
    sb_puts(&full, it->context);
    size_t ctx_len = rstrip_len(full.data, full.len);
    int32_t *enc = NULL, **cont = kt_xcalloc((size_t)it->n_choices, sizeof *cont);
    long n_enc = kt_tokenizer_encode(tok, full.data, ctx_len, 0, &enc), *cont_n = kt_xcalloc((size_t)it->n_choices, sizeof *cont_n);
    int rc = n_enc < 0 ? -1 : 0, longest = 0;
    /* lm-eval feeds the prefix token when the context encodes to nothing */
    int32_t bos = kt_tokenizer_bos(tok);
    const int32_t *in = n_enc > 0 ? enc : &bos;
    const long n_in = n_enc > 0 ? n_enc : 1;
    if (rc == 0 && n_enc == 0 && bos < 0) rc = kt_fail("%s:%ld: the context is empty and the tokenizer has no <s>", set->path, it->line);
    for (int c = 0; c < it->n_choices && rc == 0; c++) {
        cont_n[c] = continuation(tok, &full, it->cont[c], n_enc, &cont[c]);
        if (cont_n[c] < 0) rc = -1;
        else if (cont_n[c] == 0) rc = kt_fail("%s:%ld: choice %d adds no tokens to the context", set->path, it->line, c);
        else if (n_in + cont_n[c] - 1 > max_context)
            rc = kt_fail("%s:%ld: the context and choice %d are %ld tokens, more than the context window of %d (--context)",
                         set->path, it->line, c, n_in + cont_n[c] - 1, max_context);
        else if (cont_n[c] > longest) longest = (int)cont_n[c];
    }
    if (rc == 0) {
        kt_state st, cs;
        float *first = kt_xmalloc((size_t)V * sizeof *first), *logits = kt_xmalloc((size_t)longest * V * sizeof *logits);
        rc = kt_state_init(&st, m, (int)n_in + longest);
        if (rc == 0 && (rc = kt_state_init(&cs, m, (int)n_in + longest))) kt_state_free(&st, m);
        if (rc) {
            free(first), free(logits);
            goto done;
        }
        rc = kt_forward_batch(m, &st, in, (int)n_in, first);
        for (int c = 0; c < it->n_choices && rc == 0; c++) {
            ll[c] = log_softmax_at(first, V, cont[c][0]);
            if (cont_n[c] == 1) continue;
            rc = kt_state_copy(&cs, &st, m);
            if (rc == 0) rc = kt_forward_every(m, &cs, cont[c], (int)cont_n[c] - 1, logits);
            for (long t = 1; t < cont_n[c] && rc == 0; t++) ll[c] += log_softmax_at(logits + (size_t)(t - 1) * V, V, cont[c][t]);
        }
        kt_state_free(&st, m);
        kt_state_free(&cs, m);
        free(first), free(logits);
    }
done:
    for (int c = 0; c < it->n_choices; c++) free(cont[c]);
    free(cont), free(cont_n), free(enc);
    sb_free(&full);
    return rc;
}

/* The mean of 0/1 outcomes and its standard error as lm-eval reports it:
 * the sample standard deviation (n - 1) over sqrt(n). */
static void mean_stderr(int hits, int n, double *mean, double *se) {
    *mean = (double)hits / n;
    *se = n > 1 ? sqrt(*mean * (1 - *mean) * n / (n - 1) / n) : 0;
}

/* Characters of a UTF-8 string (Python's len). */
static long utf8_chars(const char *s) {
    long n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

int kt_mc_eval(const kt_model *m, const kt_tokenizer *tok, const kt_mc_set *set, int num_fewshot, int max_context,
               const char *progress, kt_mc_result *r) {
    memset(r, 0, sizeof *r);
    if (num_fewshot < 0 || num_fewshot >= set->n)
        return kt_fail("%s: %d few-shot examples leave no item to score (%d items)", set->path, num_fewshot, set->n);
    strbuf prefix = {0};
    if (set->jcqa) sb_puts(&prefix, JCQA_DESCRIPTION);
    for (int i = 0; i < num_fewshot; i++) {
        const kt_mc_item *ex = &set->items[i];
        sb_puts(&prefix, ex->context);
        sb_puts(&prefix, ex->cont[ex->answer]);
        sb_puts(&prefix, "\n\n");
    }
    size_t total = 0;
    for (int i = num_fewshot; i < set->n; i++) total += (size_t)set->items[i].n_choices;
    r->num_fewshot = num_fewshot;
    r->scored = set->n - num_fewshot;
    r->ll = kt_xcalloc(total, sizeof *r->ll);
    r->pick = kt_xcalloc((size_t)r->scored, sizeof *r->pick);
    r->pick_norm = kt_xcalloc((size_t)r->scored, sizeof *r->pick_norm);
    int hits = 0, hits_norm = 0, rc = 0;
    double *ll = r->ll;
    kt_progress bar;
    kt_progress_start_units(&bar, progress ? progress : "", "items", (uint64_t)r->scored, progress != NULL);
    for (int i = num_fewshot, k = 0; i < set->n && rc == 0; i++, k++) {
        const kt_mc_item *it = &set->items[i];
        rc = score_item(m, tok, set, it, sb_cstr(&prefix), max_context, ll);
        if (rc) break;
        int best = 0, best_norm = 0;
        for (int c = 1; c < it->n_choices; c++) { /* the first of equal scores wins, as numpy's argmax */
            if (ll[c] > ll[best]) best = c;
            if (ll[c] / utf8_chars(it->choice[c]) > ll[best_norm] / utf8_chars(it->choice[best_norm])) best_norm = c;
        }
        r->pick[k] = best;
        r->pick_norm[k] = best_norm;
        hits += best == it->answer;
        hits_norm += best_norm == it->answer;
        ll += it->n_choices;
        kt_progress_add(&bar, 1);
    }
    kt_progress_end(&bar);
    sb_free(&prefix);
    if (rc) {
        kt_mc_result_free(r);
        return -1;
    }
    mean_stderr(hits, r->scored, &r->acc, &r->acc_stderr);
    mean_stderr(hits_norm, r->scored, &r->acc_norm, &r->acc_norm_stderr);
    return 0;
}

void kt_mc_result_free(kt_mc_result *r) {
    free(r->ll), free(r->pick), free(r->pick_norm);
    memset(r, 0, sizeof *r);
}

cJSON *kt_mc_to_json(const kt_mc_set *set, const kt_mc_result *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "format", set->jcqa ? "jcommonsenseqa" : "generic");
    cJSON_AddItemToObject(o, "items", kt_json_new_int(r->scored));
    cJSON_AddItemToObject(o, "num_fewshot", kt_json_new_int(r->num_fewshot));
    cJSON_AddItemToObject(o, "acc", kt_json_new_float(r->acc));
    cJSON_AddItemToObject(o, "acc_stderr", kt_json_new_float(r->acc_stderr));
    cJSON_AddItemToObject(o, "acc_norm", kt_json_new_float(r->acc_norm));
    cJSON_AddItemToObject(o, "acc_norm_stderr", kt_json_new_float(r->acc_norm_stderr));
    cJSON *res = cJSON_AddArrayToObject(o, "results");
    const double *ll = r->ll;
    for (int k = 0; k < r->scored; k++) {
        const kt_mc_item *it = &set->items[r->num_fewshot + k];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToObject(e, "line", kt_json_new_int(it->line));
        cJSON_AddItemToObject(e, "answer", kt_json_new_int(it->answer));
        cJSON_AddItemToObject(e, "choice", kt_json_new_int(r->pick[k]));
        cJSON_AddItemToObject(e, "choice_norm", kt_json_new_int(r->pick_norm[k]));
        cJSON *a = cJSON_AddArrayToObject(e, "loglikelihoods");
        for (int c = 0; c < it->n_choices; c++) cJSON_AddItemToArray(a, kt_json_new_float(ll[c]));
        cJSON_AddItemToArray(res, e);
        ll += it->n_choices;
    }
    return o;
}
