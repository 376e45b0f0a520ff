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
 *   kld                with --original and a text: the conversion and the RTN
 *                      reference conversion of the same original (reference.c)
 *                      each measured against the original on the same windows
 *                      (mean KL divergence, top-1 agreement, perplexity); the
 *                      conversion is judged by its ratios to the reference,
 *                      with an absolute floor for a model that is broken
 *   choices            with --original and items: acc of the conversion, the
 *                      reference and the original; judged against the reference
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

/* The models the conversion is compared with, each loaded once for --kld and
 * --choices: the original, and the reference conversion (reference.c), which
 * is NULL when DIR is bit for bit the reference (fidelity found every tensor
 * as RTN makes it): then the conversion is its own reference. */
typedef struct {
    kt_model original, reference;
    int have_original, have_reference, reference_failed;
    char *why;
} peers;

static const kt_model *original_of(peers *p, const vr_options *o) {
    if (!p->have_original && kt_model_load(&p->original, o->original) == 0) p->have_original = 1;
    return p->have_original ? &p->original : NULL;
}

static const kt_model *reference_of(peers *p, const vr_report *r, const vr_options *o) {
    if (r->rtn_identical) return NULL;
    if (!p->have_reference && !p->reference_failed) {
        if (vr_reference_load(&p->reference, o->dir, o->original, o->progress) == 0) p->have_reference = 1;
        else p->reference_failed = 1, p->why = kt_xstrdup(kt_errmsg());
    }
    return p->have_reference ? &p->reference : NULL;
}

static void peers_free(peers *p) {
    if (p->have_original) kt_model_free(&p->original);
    if (p->have_reference) kt_model_free(&p->reference);
    free(p->why);
}

/* A ratio of two error figures, each with EPS added: a reference that is
 * nearly exact (8 bits: mean KL 0.0002) must not turn a difference of
 * noise into a large ratio. */
static double ratio(double candidate, double reference, double eps) { return (candidate + eps) / (reference + eps); }

/* How sure a difference is: the mean of the per-token (or per-item)
 * differences D[0..n) over its standard error. Consecutive tokens share their
 * context, so they are not independent draws and the standard error is an
 * underestimate; the gate asks for Z_SURE, not the usual 2. */
#define Z_SURE 3.0

static double paired_z(const double *d, long n) {
    if (n < 2) return 0;
    double mean = 0, ss = 0;
    for (long i = 0; i < n; i++) mean += d[i];
    mean /= (double)n;
    for (long i = 0; i < n; i++) ss += (d[i] - mean) * (d[i] - mean);
    const double se = sqrt(ss / (double)(n - 1) / (double)n);
    return se > 0 ? mean / se : (mean > 0 ? INFINITY : 0);
}

/* One figure of the gate: the conversion against the reference. */
typedef struct {
    const char *what;   /* "mean KL" */
    double ratio, bound, z;
} gate_figure;

/* Worse than the reference beyond the bound, and surely so: a fail. Beyond
 * the bound but within the noise of a short text: a warning. */
static vr_status judge(const gate_figure *g) {
    if (g->ratio <= g->bound) return VR_PASS;
    return g->z >= Z_SURE ? VR_FAIL : VR_WARN;
}

static void add_figures(cJSON *fig, const char *prefix, const kt_ppl_result *p) {
    char key[64];
    const struct {
        const char *name;
        double v;
    } f[] = {{"kld_mean", p->kld_mean}, {"kld_max", p->kld_max}, {"top1_agreement", p->top1_agreement},
             {"word_perplexity", p->word_ppl}, {"token_perplexity", p->token_ppl}, {"perplexity_ratio", p->ppl_ratio}};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
        snprintf(key, sizeof key, "%s%s", prefix, f[i].name);
        cJSON_AddItemToObject(fig, key, kt_json_new_float(f[i].v));
    }
}

/* The gate on the conversion's figures P and its reference's Q (the same
 * text, windows and tokens; Q is P when the conversion is the reference). */
static void judge_kld(vr_report *r, const vr_options *o, const char *backend, int window, const kt_ppl_result *p,
                      const kt_ppl_result *q, int identical) {
    cJSON *fig = kt_ppl_to_json(p, 1);
    cJSON_AddStringToObject(fig, "activations", "f32");
    cJSON_AddStringToObject(fig, "backend", backend);
    cJSON_AddItemToObject(fig, "window", kt_json_new_int(window));
    add_figures(fig, "reference_rtn_", q);
    cJSON_AddBoolToObject(fig, "identical_to_reference", identical);
    /* relative to the reference: the judgement, each figure a mean over
     * the same tokens, so the differences are paired token by token */
    const long n = p->tokens;
    double *d = kt_xmalloc((size_t)(n + 1) * sizeof *d);
    gate_figure g[3] = {{"mean KL", ratio(p->kld_mean, q->kld_mean, 1e-3), o->max_kld_ratio, 0},
                        {"top-1 disagreement", ratio(1 - p->top1_agreement, 1 - q->top1_agreement, 1e-3),
                         o->max_disagreement_ratio, 0},
                        {"perplexity", p->token_ppl / q->token_ppl, o->max_ppl_ratio, 0}};
    if (!identical) {
        for (long i = 0; i < n; i++) d[i] = p->kld[i] - q->kld[i];
        g[0].z = paired_z(d, n);
        for (long i = 0; i < n; i++) d[i] = (double)q->agree[i] - (double)p->agree[i];
        g[1].z = paired_z(d, n);
        for (long i = 0; i < n; i++) d[i] = q->logprob[i] - p->logprob[i];
        g[2].z = paired_z(d, n);
    }
    free(d);
    /* the floor: divergence as a share of what the original itself
     * finds uncertain in the text (its mean NLL per token) */
    const double rel = p->kld_mean / (p->ref_nll / (double)p->tokens);
    static const char *const keys[3][3] = {{"kld_ratio", "kld_ratio_z", "max_kld_ratio"},
                                           {"disagreement_ratio", "disagreement_ratio_z", "max_disagreement_ratio"},
                                           {"perplexity_vs_reference", "perplexity_vs_reference_z", "max_ppl_ratio"}};
    vr_status st = VR_PASS;
    strbuf why = {0};
    for (int i = 0; i < 3; i++) {
        cJSON_AddItemToObject(fig, keys[i][0], kt_json_new_float(g[i].ratio));
        cJSON_AddItemToObject(fig, keys[i][1], kt_json_new_float(g[i].z));
        cJSON_AddItemToObject(fig, keys[i][2], kt_json_new_float(g[i].bound));
        const vr_status s1 = judge(&g[i]);
        if (s1 == VR_PASS) continue;
        sb_printf(&why, "; %s %.2fx the reference's (max %.2fx)%s", g[i].what, g[i].ratio, g[i].bound,
                  s1 == VR_FAIL ? "" : ", not surely worse on a text this short");
        if (s1 == VR_FAIL || st == VR_PASS) st = s1;
    }
    cJSON_AddItemToObject(fig, "relative_kld", kt_json_new_float(rel));
    cJSON_AddItemToObject(fig, "max_relative_kld", kt_json_new_float(o->max_relative_kld));
    if (rel > o->max_relative_kld) {
        sb_printf(&why, "; mean KL %.3f is %.3f of the original's %.3f nats per token (max %.3f): the model is "
                        "broken on this text", p->kld_mean, rel, p->ref_nll / (double)p->tokens, o->max_relative_kld);
        st = VR_FAIL;
    }
    if (o->max_kld >= 0 && p->kld_mean > o->max_kld) {
        sb_printf(&why, "; mean KL %.4f (max %.4f)", p->kld_mean, o->max_kld);
        st = VR_FAIL;
    }
    if (o->min_top1 >= 0 && p->top1_agreement < o->min_top1) {
        sb_printf(&why, "; top-1 agreement %.3f (min %.3f)", p->top1_agreement, o->min_top1);
        st = VR_FAIL;
    }
    char detail[160];
    snprintf(detail, sizeof detail, "%ld document%s, %ld tokens, windows of %d", p->documents,
             p->documents == 1 ? "" : "s", p->tokens, window);
    vr_quality_row(r, "Word perplexity", "perplexity", p->ref_word_ppl, p->word_ppl, q->word_ppl, o->kld_text, detail);
    char against[96];
    if (!identical) snprintf(against, sizeof against, "RTN reference: KL %.4f, top-1 %.3f", q->kld_mean, q->top1_agreement);
    else snprintf(against, sizeof against, "identical to the RTN reference");
    vr_add(r, G, "kld", st, NULL, fig,
           "%ld tokens: mean KL %.4f (%.2fx the reference), top-1 agreement %.3f, perplexity %.3fx the "
           "reference's (%s)%s",
           p->tokens, p->kld_mean, g[0].ratio, p->top1_agreement, g[2].ratio, against, why.len ? sb_cstr(&why) : "");
    sb_free(&why);
}

static void check_kld(vr_report *r, const vr_options *o, const kt_model *m, const kt_tokenizer *tok, peers *pm) {
    char *text = NULL;
    size_t len = 0;
    int found = kt_read_file(o->kld_text, &text, &len);
    if (found <= 0) {
        vr_add(r, G, "kld", VR_FAIL, NULL, NULL, "%s: %s", o->kld_text, found == 0 ? "no such file" : kt_errmsg());
        return;
    }
    kt_documents docs;
    int bad = kt_documents_parse(&docs, o->kld_text, text, len);
    free(text);
    if (bad) {
        vr_add(r, G, "kld", VR_FAIL, NULL, NULL, "%s", kt_errmsg());
        return;
    }
    const kt_model *orig = original_of(pm, o);
    if (!orig) {
        vr_add(r, G, "kld", VR_FAIL, NULL, NULL, "--original: %s", kt_errmsg());
        kt_documents_free(&docs);
        return;
    }
    const kt_model *refm = reference_of(pm, r, o);
    const int window = o->window ? o->window : m->cfg.max_positions;
    const kt_ppl_options mine = {window, 1, o->progress, "kld: the conversion"},
                         theirs = {window, 1, o->progress, "kld: the RTN reference"};
    kt_ppl_result p, q;
    if (pm->reference_failed) {
        vr_add(r, G, "kld", VR_FAIL, NULL, NULL, "the reference conversion: %s", pm->why);
    } else if (kt_perplexity(m, orig, tok, &docs, &mine, &p)) {
        vr_add(r, G, "kld", VR_FAIL, NULL, NULL, "%s: %s", o->kld_text, kt_errmsg());
    } else if (refm && kt_perplexity(refm, orig, tok, &docs, &theirs, &q)) {
        vr_add(r, G, "kld", VR_FAIL, NULL, NULL, "the reference conversion on %s: %s", o->kld_text, kt_errmsg());
        kt_ppl_free(&p);
    } else {
        judge_kld(r, o, m->backend->name, window, &p, refm ? &q : &p, !refm);
        if (refm) kt_ppl_free(&q);
        kt_ppl_free(&p);
    }
    kt_documents_free(&docs);
}

/* Multiple-choice accuracy of the model, of the reference conversion and of
 * the original on the same items: the model fails when it loses more than
 * --max-accuracy-drop points of acc against the reference. */
static void check_choices(vr_report *r, const vr_options *o, const kt_model *m, const kt_tokenizer *tok, peers *pm) {
    const kt_mc_set *set = o->choice_items;
    kt_mc_result mine, orig, refr;
    const kt_model *om = original_of(pm, o);
    if (!om) {
        vr_add(r, G, "choices", VR_FAIL, NULL, NULL, "--original: %s", kt_errmsg());
        return;
    }
    const kt_model *refm = reference_of(pm, r, o);
    const int ctx = 1 << 20; /* an item is as long as it is: the state grows to fit */
    if (pm->reference_failed) {
        vr_add(r, G, "choices", VR_FAIL, NULL, NULL, "the reference conversion: %s", pm->why);
    } else if (kt_mc_eval(m, tok, set, o->num_fewshot, ctx, o->progress ? "choices: the conversion" : NULL, &mine)) {
        vr_add(r, G, "choices", VR_FAIL, NULL, NULL, "%s", kt_errmsg());
    } else {
        if (kt_mc_eval(om, tok, set, o->num_fewshot, ctx, o->progress ? "choices: the original" : NULL, &orig)) {
            vr_add(r, G, "choices", VR_FAIL, NULL, NULL, "the original: %s", kt_errmsg());
        } else if (refm && kt_mc_eval(refm, tok, set, o->num_fewshot, ctx,
                                      o->progress ? "choices: the RTN reference" : NULL, &refr)) {
            vr_add(r, G, "choices", VR_FAIL, NULL, NULL, "the reference conversion: %s", kt_errmsg());
            kt_mc_result_free(&orig);
        } else {
            const double ref_acc = refm ? refr.acc : mine.acc, ref_norm = refm ? refr.acc_norm : mine.acc_norm;
            const double drop = 100 * (ref_acc - mine.acc);
            /* items are independent draws: the usual paired test, same Z_SURE */
            double z = 0;
            if (refm) {
                double *d = kt_xmalloc((size_t)mine.scored * sizeof *d + 1);
                for (int i = 0; i < mine.scored; i++) {
                    const int answer = set->items[o->num_fewshot + i].answer;
                    d[i] = (double)(refr.pick[i] == answer) - (double)(mine.pick[i] == answer);
                }
                z = paired_z(d, mine.scored);
                free(d);
            }
            const gate_figure g = {"acc", drop, o->max_accuracy_drop, z};
            const vr_status st = judge(&g);
            cJSON *fig = cJSON_CreateObject();
            cJSON_AddItemToObject(fig, "items", kt_json_new_int(mine.scored));
            cJSON_AddItemToObject(fig, "num_fewshot", kt_json_new_int(o->num_fewshot));
            cJSON_AddStringToObject(fig, "activations", "f32");
            cJSON_AddStringToObject(fig, "backend", m->backend->name);
            cJSON_AddItemToObject(fig, "acc", kt_json_new_float(mine.acc));
            cJSON_AddItemToObject(fig, "acc_norm", kt_json_new_float(mine.acc_norm));
            cJSON_AddItemToObject(fig, "acc_stderr", kt_json_new_float(mine.acc_stderr));
            cJSON_AddItemToObject(fig, "original_acc", kt_json_new_float(orig.acc));
            cJSON_AddItemToObject(fig, "original_acc_norm", kt_json_new_float(orig.acc_norm));
            cJSON_AddItemToObject(fig, "reference_rtn_acc", kt_json_new_float(ref_acc));
            cJSON_AddItemToObject(fig, "reference_rtn_acc_norm", kt_json_new_float(ref_norm));
            cJSON_AddBoolToObject(fig, "identical_to_reference", !refm);
            cJSON_AddItemToObject(fig, "accuracy_drop", kt_json_new_float(100 * (orig.acc - mine.acc)));
            cJSON_AddItemToObject(fig, "accuracy_drop_vs_reference", kt_json_new_float(drop));
            cJSON_AddItemToObject(fig, "accuracy_drop_vs_reference_z", kt_json_new_float(z));
            char detail[96];
            snprintf(detail, sizeof detail, "%d items, %d-shot", mine.scored, o->num_fewshot);
            vr_quality_row(r, set->jcqa ? "JCommonsenseQA accuracy" : "Multiple-choice accuracy", "accuracy", orig.acc,
                           mine.acc, ref_acc, o->choices, detail);
            cJSON_AddItemToObject(fig, "max_accuracy_drop", kt_json_new_float(o->max_accuracy_drop));
            vr_add(r, G, "choices", st, NULL, fig,
                   "%d items: acc %.1f%% (original %.1f%%, RTN reference %.1f%%), %.1f points below the reference "
                   "(max %.1f)%s", mine.scored, 100 * mine.acc, 100 * orig.acc, 100 * ref_acc, drop,
                   o->max_accuracy_drop, st == VR_WARN ? ", not surely worse on this few items" : "");
            kt_mc_result_free(&orig);
            if (refm) kt_mc_result_free(&refr);
        }
        kt_mc_result_free(&mine);
    }
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
        peers pm = {0};
        if (o->kld_text) check_kld(r, o, &m, tok, &pm);
        if (o->choices) check_choices(r, o, &m, tok, &pm);
        peers_free(&pm);
        kt_tokenizer_free(tok);
    }
    kt_model_free(&m);
    return 0;
}
