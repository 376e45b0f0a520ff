/* behaviour.c - the converted model run by the runtime.
 *
 *   generate:think     a fixed question with /think: the chat prompt opens the
 *                      reasoning (ends with "<think>\n"); greedy generation
 *                      gives finite logits and a non-empty text; whether the
 *                      model closes its reasoning (</think>) within the budget
 *                      is reported (a warning when not: small or random models
 *                      rarely do)
 *   generate:no_think  the same with /no_think: the prompt ends with
 *                      "<think></think>", the output is non-empty, logits are
 *                      finite, and no </think> appears (reasoning stays off)
 *   kld                with --original and a text: mean KL divergence, top-1
 *                      agreement and perplexity ratio against the original
 *                      (kintsugi-run --perplexity --kld-against), each within
 *                      its threshold
 */
#include "checks.h"
#include "choices.h"
#include "chat.h"
#include "error.h"
#include "file.h"
#include "backend.h"
#include "model.h"
#ifdef KT_HAVE_GPU
#include "backend_gpu.h"
#endif
#include "perplexity.h"
#include "strbuf.h"
#include "tokenizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *G = "behaviour";

typedef struct {
    char *text;
    int finite, tokens;
} gen_result;

/* Greedy generation of up to MAX tokens after the chat PROMPT, encoded as
 * mlx-lm and apply_chat_template encode it: no <s> added. */
static int generate(const kt_model *m, const kt_tokenizer *tok, const char *prompt, int max, gen_result *g) {
    int32_t *ids;
    long n = kt_tokenizer_encode(tok, prompt, strlen(prompt), 0, &ids);
    if (n < 0) return -1;
    kt_state st;
    if (kt_state_init(&st, m, (int)n + max + 1)) {
        free(ids);
        return -1;
    }
    float *logits = kt_xmalloc((size_t)m->cfg.vocab * sizeof *logits);
    int32_t *out = kt_xmalloc((size_t)max * sizeof *out);
    const int32_t stop1 = kt_tokenizer_id(tok, "<SPECIAL_12>"), stop2 = kt_tokenizer_id(tok, "</s>");
    int rc = kt_forward_batch(m, &st, ids, (int)n, logits), k = 0;
    g->finite = 1;
    while (rc == 0 && k < max) {
        int32_t best = 0;
        for (int v = 0; v < m->cfg.vocab; v++) {
            if (!isfinite(logits[v])) g->finite = 0;
            if (logits[v] > logits[best]) best = v;
        }
        if (best == stop1 || best == stop2) break;
        out[k++] = best;
        rc = kt_forward(m, &st, best, logits);
    }
    size_t len;
    g->text = kt_tokenizer_decode(tok, out, (size_t)k, &len);
    g->tokens = k;
    kt_state_free(&st, m);
    free(ids), free(logits), free(out);
    return rc;
}

static void check_generation(vr_report *r, const vr_options *o, const kt_model *m, const kt_tokenizer *tok, int think) {
    const char *name = think ? "generate:think" : "generate:no_think";
    kt_message msg = {"user", think ? "What is the capital of Japan? Answer briefly. /think"
                                    : "What is the capital of Japan? Answer briefly. /no_think"};
    int on = -1;
    char *prompt = kt_chat_render(&msg, 1, &on);
    const char *want_end = think ? "<think>\n" : "<think></think>";
    if (on != think || !kt_ends_with(prompt, want_end)) {
        vr_add(r, G, name, VR_FAIL, NULL, NULL, "the chat prompt does not end with \"%s\"", think ? "<think>\\n" : want_end);
        free(prompt);
        return;
    }
    gen_result g = {0};
    if (generate(m, tok, prompt, o->max_tokens, &g)) {
        vr_add(r, G, name, VR_FAIL, NULL, NULL, "generation failed: %s", kt_errmsg());
        free(prompt), free(g.text);
        return;
    }
    free(prompt);
    cJSON *fig = cJSON_CreateObject();
    char *shown = kt_utf8_sanitize(g.text, strlen(g.text), NULL);
    cJSON_AddItemToObject(fig, "tokens", kt_json_new_int(g.tokens));
    cJSON_AddStringToObject(fig, "text", shown);
    cJSON_AddStringToObject(fig, "backend", m->backend->name);
    cJSON_AddBoolToObject(fig, "logits_finite", g.finite);
    const int closed = strstr(g.text, "</think>") != NULL;
    cJSON_AddBoolToObject(fig, "closed_reasoning", closed);
    if (!g.finite) vr_add(r, G, name, VR_FAIL, NULL, fig, "non-finite logits");
    else if (g.tokens == 0 || !g.text[0]) vr_add(r, G, name, VR_FAIL, NULL, fig, "empty output");
    else if (!think && closed) vr_add(r, G, name, VR_FAIL, NULL, fig, "</think> in the output with reasoning off");
    else if (think && !closed)
        vr_add(r, G, name, VR_WARN, NULL, fig, "%d tokens, finite logits; reasoning not closed within %d tokens", g.tokens,
               o->max_tokens);
    else vr_add(r, G, name, VR_PASS, NULL, fig, "%d tokens, finite logits%s", g.tokens,
                think ? ", reasoning closed with </think>" : ", no </think>");
    free(shown), free(g.text);
}

static void check_kld(vr_report *r, const vr_options *o, const kt_model *m, const kt_tokenizer *tok) {
    kt_model ref;
    char *text = NULL;
    size_t len = 0;
    int found = kt_read_file(o->kld_text, &text, &len);
    if (found <= 0) {
        vr_add(r, G, "kld", VR_FAIL, NULL, NULL, "%s: %s", o->kld_text, found == 0 ? "no such file" : kt_errmsg());
        return;
    }
    if (kt_model_load(&ref, o->original)) {
        vr_add(r, G, "kld", VR_FAIL, NULL, NULL, "--original: %s", kt_errmsg());
        free(text);
        return;
    }
    kt_ppl_result p;
    if (kt_perplexity(m, &ref, tok, text, len, 512, 0, &p)) {
        vr_add(r, G, "kld", VR_FAIL, NULL, NULL, "%s: %s", o->kld_text, kt_errmsg());
    } else {
        cJSON *fig = kt_ppl_to_json(&p, 1);
        cJSON_AddStringToObject(fig, "activations", "f32");
        cJSON_AddStringToObject(fig, "backend", m->backend->name);
        cJSON_AddItemToObject(fig, "max_kld", kt_json_new_float(o->max_kld));
        cJSON_AddItemToObject(fig, "min_top1", kt_json_new_float(o->min_top1));
        cJSON_AddItemToObject(fig, "max_ppl_ratio", kt_json_new_float(o->max_ppl_ratio));
        /* the ratio both ways: a conversion that predicts the text much better
         * than its original does not behave like it either */
        const int ok = p.kld_mean <= o->max_kld && p.top1_agreement >= o->min_top1 && p.ppl_ratio <= o->max_ppl_ratio &&
                       p.ppl_ratio >= 1.0 / o->max_ppl_ratio;
        vr_add(r, G, "kld", ok ? VR_PASS : VR_FAIL, NULL, fig,
               "%ld tokens: mean KL %.4f (max %.4f), top-1 agreement %.3f (min %.3f), perplexity ratio %.4f (%.4f to %.4f)",
               p.tokens, p.kld_mean, o->max_kld, p.top1_agreement, o->min_top1, p.ppl_ratio, 1.0 / o->max_ppl_ratio,
               o->max_ppl_ratio);
    }
    kt_model_free(&ref);
    free(text);
}

/* Multiple-choice accuracy of the model and of its original on the same
 * items: the model fails when it loses more than --max-accuracy-drop points
 * of acc. */
static void check_choices(vr_report *r, const vr_options *o, const kt_model *m, const kt_tokenizer *tok) {
    const kt_mc_set *set = o->choice_items;
    kt_mc_result mine, orig;
    kt_model ref;
    if (kt_model_load(&ref, o->original)) {
        vr_add(r, G, "choices", VR_FAIL, NULL, NULL, "--original: %s", kt_errmsg());
        return;
    }
    const int ctx = 1 << 20; /* an item is as long as it is: the state grows to fit */
    if (kt_mc_eval(m, tok, set, 0, ctx, &mine) == 0) {
        if (kt_mc_eval(&ref, tok, set, 0, ctx, &orig) == 0) {
            const double drop = 100 * (orig.acc - mine.acc);
            cJSON *fig = cJSON_CreateObject();
            cJSON_AddItemToObject(fig, "items", kt_json_new_int(mine.scored));
            cJSON_AddStringToObject(fig, "activations", "f32");
            cJSON_AddStringToObject(fig, "backend", m->backend->name);
            cJSON_AddItemToObject(fig, "acc", kt_json_new_float(mine.acc));
            cJSON_AddItemToObject(fig, "acc_norm", kt_json_new_float(mine.acc_norm));
            cJSON_AddItemToObject(fig, "original_acc", kt_json_new_float(orig.acc));
            cJSON_AddItemToObject(fig, "original_acc_norm", kt_json_new_float(orig.acc_norm));
            cJSON_AddItemToObject(fig, "accuracy_drop", kt_json_new_float(drop));
            cJSON_AddItemToObject(fig, "max_accuracy_drop", kt_json_new_float(o->max_accuracy_drop));
            vr_add(r, G, "choices", drop <= o->max_accuracy_drop ? VR_PASS : VR_FAIL, NULL, fig,
                   "%d items: acc %.1f%% (original %.1f%%), acc_norm %.1f%% (original %.1f%%), drop %.1f points "
                   "(max %.1f)", mine.scored, 100 * mine.acc, 100 * orig.acc, 100 * mine.acc_norm,
                   100 * orig.acc_norm, drop, o->max_accuracy_drop);
            kt_mc_result_free(&orig);
        } else {
            vr_add(r, G, "choices", VR_FAIL, NULL, NULL, "the original: %s", kt_errmsg());
        }
        kt_mc_result_free(&mine);
    } else {
        vr_add(r, G, "choices", VR_FAIL, NULL, NULL, "%s", kt_errmsg());
    }
    kt_model_free(&ref);
}

int vr_check_behaviour(vr_report *r, const vr_options *o) {
    kt_model m;
    if (kt_model_load(&m, o->dir)) {
        if (o->generate) vr_add(r, G, "generate", VR_FAIL, NULL, NULL, "the model does not load: %s", kt_errmsg());
        if (o->kld_text) vr_add(r, G, "kld", VR_FAIL, NULL, NULL, "the model does not load: %s", kt_errmsg());
        if (o->choices) vr_add(r, G, "choices", VR_FAIL, NULL, NULL, "the model does not load: %s", kt_errmsg());
        return 0;
    }
    if (o->gpu) {
#ifdef KT_HAVE_GPU
        const kt_backend *be = kt_gpu_open(o->gpu);
        if (be) m.backend = be;
#else
        const void *be = NULL;
        kt_fail("this kintsugi-verify was built without GPU hosts");
#endif
        if (!be) {
            const char *names[] = {"generate", "kld", "choices"};
            const int on[] = {o->generate, o->kld_text != NULL, o->choices != NULL};
            for (int i = 0; i < 3; i++)
                if (on[i]) vr_add(r, G, names[i], VR_FAIL, NULL, NULL, "--backend %s: %s", o->gpu, kt_errmsg());
            kt_model_free(&m);
            return 0;
        }
    }
    kt_tokenizer *tok = kt_tokenizer_load_dir(o->dir, m.cfg.vocab);
    if (!tok) {
        vr_add(r, G, "tokenizer", VR_FAIL, NULL, NULL, "%s", kt_errmsg());
    } else {
        if (o->generate) check_generation(r, o, &m, tok, 1), check_generation(r, o, &m, tok, 0);
        if (o->kld_text) check_kld(r, o, &m, tok);
        if (o->choices) check_choices(r, o, &m, tok);
        kt_tokenizer_free(tok);
    }
    kt_model_free(&m);
    return 0;
}
