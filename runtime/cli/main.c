/* kintsugi-run - generate text with a Nemotron-H model on the CPU: an MLX
 * quantized directory or the original Hugging Face one.
 *
 * The prompt is put in the model's chat format (runtime/chat.c) unless --raw;
 * generation starts inside the reasoning when it is on, and everything up to
 * "</think>" is reasoning, the rest the answer. Each has its own token budget,
 * so reasoning can never leave the answer empty: when the reasoning budget is
 * spent, "</think>" is fed to the model and the answer begins.
 * Exit codes: 0 done, 1 the model or input cannot be used, 2 usage or I/O.
 */
#include "chat.h"
#include "cli.h"
#include "error.h"
#include "file.h"
#include "json.h"
#include "model.h"
#include "perplexity.h"
#include "progress.h"
#include "sample.h"
#include "strbuf.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static const char *PROG = "kintsugi-run";

typedef struct {
    const char *dir, *prompt, *system, *reasoning, *perplexity, *kld_against;
    int raw, json, tokenize, bos, max_tokens, max_reasoning, context, window, chat;
    kt_sampler sampler;
} options;

static void usage(FILE *out) {
    fprintf(out,
            "usage: %s MODEL_DIR --prompt TEXT [options]\n"
            "       %s MODEL_DIR --tokenize [--bos] < lines\n"
            "\n"
            "Generate with a Nemotron-H model (MLX quantized or original bf16) on the CPU.\n"
            "The prompt goes through the model's chat format; /think or /no_think in it\n"
            "switch reasoning on (the default) or off.\n"
            "\n"
            "  --prompt TEXT            the user message\n"
            "  --chat                   a conversation: one user message per line of stdin\n"
            "  --system TEXT            a system message\n"
            "  --raw                    no chat format: TEXT is fed as it is\n"
            "  --max-tokens N           answer tokens (default 256)\n"
            "  --max-reasoning-tokens N reasoning tokens before </think> is forced (default 512)\n"
            "  --reasoning MODE         show (default; dimmed on a terminal), hide, separate (stderr)\n"
            "  --temperature T          0 is greedy (default 0)\n"
            "  --top-k K, --top-p P, --min-p P, --repetition-penalty R, --seed S\n"
            "  --context N              the longest sequence (default 4096)\n"
            "  --perplexity FILE        token and word perplexity of FILE, in windows of\n"
            "  --window N               N tokens (default 512), each from a fresh state\n"
            "  --kld-against DIR        with --perplexity: mean KL divergence, top-1 agreement\n"
            "                           and perplexity ratio against the model in DIR\n"
            "  --json                   ids, text, reasoning, answer and stats as JSON\n"
            "  --tokenize [--bos]       print the token ids of each line of stdin\n"
            "  -h, --help               this text\n"
            "\n"
            "exit status: 0 done, 1 the model or the input cannot be used, 2 usage or I/O error\n",
            PROG, PROG);
}

static int parse_args(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    o->max_tokens = 256, o->max_reasoning = 512, o->context = 4096, o->reasoning = "show", o->bos = -1, o->window = 512;
    o->sampler = (kt_sampler){0.0f, 0, 1.0f, 0.0f, 1.0f, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
#define NEEDS_VALUE() if (!v) return kt_usage_error(PROG, "%s needs a value", a); i++
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--prompt")) { NEEDS_VALUE(); o->prompt = v; }
        else if (!strcmp(a, "--system")) { NEEDS_VALUE(); o->system = v; }
        else if (!strcmp(a, "--perplexity")) { NEEDS_VALUE(); o->perplexity = v; }
        else if (!strcmp(a, "--kld-against")) { NEEDS_VALUE(); o->kld_against = v; }
        else if (!strcmp(a, "--reasoning")) {
            NEEDS_VALUE();
            if (strcmp(v, "show") && strcmp(v, "hide") && strcmp(v, "separate"))
                return kt_usage_error(PROG, "--reasoning: '%s' is not show, hide or separate", v);
            o->reasoning = v;
        } else if (!strcmp(a, "--max-tokens") || !strcmp(a, "--max-reasoning-tokens") || !strcmp(a, "--context") ||
                   !strcmp(a, "--top-k") || !strcmp(a, "--window")) {
            NEEDS_VALUE();
            long n = strtol(v, &end, 10);
            if (!*v || *end || n < 0 || n > 1 << 24) return kt_usage_error(PROG, "'%s' is not a count", v);
            if (!strcmp(a, "--max-tokens")) o->max_tokens = (int)n;
            else if (!strcmp(a, "--context")) o->context = (int)n;
            else if (!strcmp(a, "--top-k")) o->sampler.top_k = (int)n;
            else if (!strcmp(a, "--window")) o->window = (int)n;
            else o->max_reasoning = (int)n;
        } else if (!strcmp(a, "--temperature") || !strcmp(a, "--top-p") || !strcmp(a, "--min-p") ||
                   !strcmp(a, "--repetition-penalty")) {
            NEEDS_VALUE();
            float f = strtof(v, &end);
            if (!*v || *end || f < 0) return kt_usage_error(PROG, "'%s' is not a non-negative number", v);
            if (!strcmp(a, "--temperature")) o->sampler.temperature = f;
            else if (!strcmp(a, "--top-p")) o->sampler.top_p = f;
            else if (!strcmp(a, "--min-p")) o->sampler.min_p = f;
            else o->sampler.repetition_penalty = f;
        } else if (!strcmp(a, "--seed")) {
            NEEDS_VALUE();
            o->sampler.rng = strtoull(v, &end, 10);
            if (!*v || *end) return kt_usage_error(PROG, "--seed: '%s' is not a number", v);
        } else if (!strcmp(a, "--raw")) o->raw = 1;
        else if (!strcmp(a, "--chat")) o->chat = 1;
        else if (!strcmp(a, "--json")) o->json = 1;
        else if (!strcmp(a, "--tokenize")) o->tokenize = 1;
        else if (!strcmp(a, "--bos")) o->bos = 1;
        else if (!strcmp(a, "--no-bos")) o->bos = 0;
        else if (a[0] == '-' && a[1]) return kt_usage_error(PROG, "unknown option %s", a);
        else if (!o->dir) o->dir = a;
        else return kt_usage_error(PROG, "unexpected argument '%s'", a);
#undef NEEDS_VALUE
    }
    if (!o->dir) return kt_usage_error(PROG, "%s", "MODEL_DIR is required");
    if (!o->tokenize && !o->prompt && !o->perplexity && !o->chat)
        return kt_usage_error(PROG, "%s", "--prompt TEXT is required (or --chat, --tokenize, or --perplexity FILE)");
    if (o->kld_against && !o->perplexity) return kt_usage_error(PROG, "%s", "--kld-against goes with --perplexity");
    if (o->window < 2) o->window = 2;
    if (o->context < 16) o->context = 16;
    return -1;
}

static int tokenize_lines(const kt_tokenizer *t, int bos) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        if (n > 0 && line[n - 1] == '\n') line[--n] = 0;
        int32_t *ids;
        long k = kt_tokenizer_encode(t, line, (size_t)n, bos == 1, &ids);
        if (k < 0) {
            free(line);
            return 1;
        }
        for (long i = 0; i < k; i++) printf("%s%d", i ? " " : "", ids[i]);
        printf("\n");
        free(ids);
    }
    free(line);
    return 0;
}

static double peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
#ifdef __APPLE__
    return (double)ru.ru_maxrss / (1024.0 * 1024.0);
#else
    return (double)ru.ru_maxrss / 1024.0;
#endif
}

typedef struct {
    strbuf reasoning, answer;   /* decoded text */
    int in_reasoning;
    size_t printed_r, printed_a;
    int tty;
} output;

/* Print what is new and complete (never half a UTF-8 character). */
static void flush_output(output *out, const options *o, int final) {
    strbuf *bufs[2] = {&out->reasoning, &out->answer};
    size_t *done[2] = {&out->printed_r, &out->printed_a};
    for (int k = 0; k < 2; k++) {
        size_t end = bufs[k]->len;
        if (!final) end -= kt_utf8_incomplete_tail(sb_cstr(bufs[k]), bufs[k]->len);
        if (end <= *done[k]) continue;
        const char *s = sb_cstr(bufs[k]) + *done[k];
        size_t n = end - *done[k];
        if (k == 0 && !strcmp(o->reasoning, "hide")) { *done[k] = end; continue; }
        FILE *f = k == 0 && !strcmp(o->reasoning, "separate") ? stderr : stdout;
        if (k == 0 && out->tty && f == stdout) fputs("\033[2m", f);
        fwrite(s, 1, n, f);
        if (k == 0 && out->tty && f == stdout) fputs("\033[0m", f);
        fflush(f);
        *done[k] = end;
    }
}

static cJSON *ids_json(const int32_t *v, size_t n) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(a, kt_json_new_int(v[i]));
    return a;
}

static int perplexity(const options *o, const kt_model *m, const kt_tokenizer *tok) {
    char *text;
    size_t text_len;
    int got = kt_read_file(o->perplexity, &text, &text_len);
    if (got <= 0) {
        if (got == 0) kt_fail_io("cannot open %s", o->perplexity);
        return 2;
    }
    kt_model ref;
    int have_ref = 0;
    if (o->kld_against) {
        if (kt_model_load(&ref, o->kld_against)) {
            free(text);
            return 1;
        }
        have_ref = 1;
    }
    kt_ppl_result r;
    double t0 = kt_now();
    int rc = kt_perplexity(m, have_ref ? &ref : NULL, tok, text, text_len, o->window, &r);
    double secs = kt_now() - t0;
    if (rc == 0 && o->json) {
        cJSON *root = kt_ppl_to_json(&r, have_ref);
        cJSON_AddItemToObject(root, "seconds", kt_json_new_float(secs));
        char *s = kt_json_print(root, &KT_JSON_PYTHON_INDENT4);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(root);
    } else if (rc == 0) {
        printf("%ld tokens in %ld windows of %d: token perplexity %.4f, word perplexity %.4f (%ld words)\n", r.tokens,
               r.windows, o->window, r.token_ppl, r.word_ppl, r.words);
        if (have_ref)
            printf("against %s: mean KL divergence %.6f (max %.4f), top-1 agreement %.2f%%, perplexity ratio %.4f\n",
                   o->kld_against, r.kld_mean, r.kld_max, 100 * r.top1_agreement, r.ppl_ratio);
    }
    if (have_ref) kt_model_free(&ref);
    free(text);
    return rc ? 1 : 0;
}

/* Generate from PROMPT (already in the chat format unless --raw). THINK:
 * the prompt opens the reasoning. *REPLY (if not NULL) receives the generated
 * text, for the next turn of a chat. */
static int generate_from(const options *o, const kt_model *m, const kt_tokenizer *tok, char *prompt, int think,
                         char **reply) {
    int32_t *ids;
    long n_prompt = kt_tokenizer_encode(tok, prompt, strlen(prompt), o->bos != 0, &ids);
    free(prompt);
    if (n_prompt < 0) return 1;
    size_t cap = (size_t)n_prompt + (size_t)o->max_tokens + (size_t)o->max_reasoning + 16, n_all = (size_t)n_prompt;
    ids = kt_xrealloc(ids, cap * sizeof *ids);
    kt_state st;
    kt_state_init(&st, m, (int)(cap < (size_t)o->context ? cap : (size_t)o->context));
    float *logits = kt_xmalloc((size_t)m->cfg.vocab * sizeof *logits);
    const int32_t stop1 = kt_tokenizer_id(tok, "<SPECIAL_12>"), stop2 = kt_tokenizer_id(tok, "</s>");
    int rc = 0;
    double t0 = kt_now();
    /* the prompt as matrix-matrix work, in chunks that bound the activations */
    for (long i = 0; i < n_prompt && rc == 0; i += 256)
        rc = kt_forward_batch(m, &st, ids + i, (int)(n_prompt - i < 256 ? n_prompt - i : 256), logits);
    double t_prompt = kt_now() - t0;
    output out = {.in_reasoning = think, .tty = isatty(1) && !o->json};
    kt_sampler sampler = o->sampler;
    int n_reason = 0, n_answer = 0;
    int32_t *forced = NULL;
    long n_forced = 0, k_forced = 0;
    double t1 = kt_now();
    while (rc == 0 && n_answer < o->max_tokens && (size_t)st.pos < (size_t)st.max_pos) {
        int32_t next;
        if (k_forced < n_forced) {
            next = forced[k_forced++];
        } else {
            next = kt_sample(&sampler, logits, m->cfg.vocab, ids, n_all);
        }
        if (next == stop1 || next == stop2) break;
        ids[n_all++] = next;
        size_t len;
        const char *piece = kt_tokenizer_token_bytes(tok, next, &len);
        if (out.in_reasoning) {
            n_reason++;
            sb_append(&out.reasoning, piece ? piece : "", piece ? len : 0);
            const char *end = strstr(sb_cstr(&out.reasoning), "</think>");
            if (end) { /* the answer starts after the marker */
                size_t cut = (size_t)(end - out.reasoning.data);
                sb_puts(&out.answer, end + 8);
                out.reasoning.len = cut;
                out.reasoning.data[cut] = 0;
                out.in_reasoning = 0;
            } else if (n_reason >= o->max_reasoning && k_forced >= n_forced) {
                free(forced);
                n_forced = kt_tokenizer_encode(tok, "\n</think>\n", 10, 0, &forced);
                k_forced = 0;
                if (n_forced < 0) rc = -1;
            }
        } else {
            n_answer++;
            sb_append(&out.answer, piece ? piece : "", piece ? len : 0);
        }
        if (!o->json) flush_output(&out, o, 0);
        if (rc == 0) rc = kt_forward(m, &st, next, logits);
    }
    double t_gen = kt_now() - t1;
    if (!o->json) {
        flush_output(&out, o, 1);
        printf("\n");
        fflush(stdout);
    }
    size_t n_gen = n_all - (size_t)n_prompt;
    fprintf(stderr, "%s: prompt %ld tokens, %.1f tok/s; generated %zu tokens (%d reasoning, %d answer), %.1f tok/s; "
            "peak RSS %.0f MiB\n", PROG, n_prompt, t_prompt > 0 ? n_prompt / t_prompt : 0, n_gen, n_reason, n_answer,
            t_gen > 0 ? n_gen / t_gen : 0, peak_rss_mib());
    if (rc == 0 && o->json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddItemToObject(root, "prompt_ids", ids_json(ids, (size_t)n_prompt));
        cJSON_AddItemToObject(root, "generated_ids", ids_json(ids + n_prompt, n_gen));
        size_t tl;
        char *raw = kt_tokenizer_decode(tok, ids + n_prompt, n_gen, &tl);
        /* JSON holds valid UTF-8: a cut or invalid sequence becomes U+FFFD */
        char *text = kt_utf8_sanitize(raw, tl);
        char *reasoning = kt_utf8_sanitize(sb_cstr(&out.reasoning), out.reasoning.len);
        char *answer = kt_utf8_sanitize(sb_cstr(&out.answer), out.answer.len);
        cJSON_AddStringToObject(root, "text", text);
        cJSON_AddBoolToObject(root, "thinking", think);
        cJSON_AddStringToObject(root, "reasoning", reasoning);
        cJSON_AddStringToObject(root, "answer", answer);
        free(raw);
        free(text);
        free(reasoning);
        free(answer);
        cJSON *stats = cJSON_AddObjectToObject(root, "stats");
        cJSON_AddItemToObject(stats, "prompt_tokens_per_s", kt_json_new_float(t_prompt > 0 ? n_prompt / t_prompt : 0));
        cJSON_AddItemToObject(stats, "generation_tokens_per_s", kt_json_new_float(t_gen > 0 ? n_gen / t_gen : 0));
        cJSON_AddItemToObject(stats, "peak_rss_mib", kt_json_new_float(peak_rss_mib()));
        char *s = kt_json_print(root, &KT_JSON_PYTHON_INDENT4);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(root);
    }
    if (reply) {
        size_t rl;
        char *raw = kt_tokenizer_decode(tok, ids + n_prompt, n_gen, &rl);
        *reply = kt_utf8_sanitize(raw, rl);
        free(raw);
    }
    free(forced);
    sb_free(&out.reasoning);
    sb_free(&out.answer);
    free(logits);
    free(ids);
    kt_state_free(&st, m);
    return rc ? 1 : 0;
}

static int generate(const options *o, const kt_model *m, const kt_tokenizer *tok) {
    int think = 0;
    char *prompt;
    if (o->raw) {
        prompt = kt_xstrdup(o->prompt);
    } else {
        kt_message msgs[2];
        size_t n = 0;
        if (o->system) msgs[n++] = (kt_message){"system", o->system};
        msgs[n++] = (kt_message){"user", o->prompt};
        prompt = kt_chat_render(msgs, n, &think);
    }
    return generate_from(o, m, tok, prompt, think, NULL);
}

/* A conversation on stdin, one user line per turn. Every turn renders the
 * whole conversation again (the template keeps only the answers of earlier
 * turns, not their reasoning) and starts from a fresh state. */
static int chat(const options *o, const kt_model *m, const kt_tokenizer *tok) {
    kt_message *msgs = kt_xcalloc(2, sizeof *msgs);
    char **owned = NULL;
    size_t n = 0, n_owned = 0;
    if (o->system) msgs[n++] = (kt_message){"system", o->system};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0, tty = isatty(0);
    while (rc == 0) {
        if (tty) fputs("> ", stderr);
        if ((len = getline(&line, &cap, stdin)) < 0) break;
        if (len > 0 && line[len - 1] == '\n') line[--len] = 0;
        if (len == 0) continue;
        msgs = kt_xrealloc(msgs, (n + 2) * sizeof *msgs);
        owned = kt_xrealloc(owned, (n_owned + 2) * sizeof *owned);
        owned[n_owned++] = kt_xstrdup(line);
        msgs[n++] = (kt_message){"user", owned[n_owned - 1]};
        int think;
        char *prompt = kt_chat_render(msgs, n, &think), *reply = NULL;
        rc = generate_from(o, m, tok, prompt, think, &reply);
        if (reply) {
            owned[n_owned++] = reply;
            msgs[n++] = (kt_message){"assistant", reply};
        }
    }
    free(line);
    for (size_t i = 0; i < n_owned; i++) free(owned[i]);
    free(owned);
    free(msgs);
    return rc;
}

int main(int argc, char **argv) {
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    char *tpath = kt_path_join(o.dir, "tokenizer.json");
    kt_tokenizer *tok = kt_tokenizer_load(tpath);
    free(tpath);
    if (!tok) {
        kt_print_error(PROG);
        return kt_errkind() == KT_ERR_IO ? 2 : 1;
    }
    if (o.tokenize) {
        rc = tokenize_lines(tok, o.bos);
    } else {
        kt_model m;
        if (kt_model_load(&m, o.dir)) {
            rc = kt_errkind() == KT_ERR_IO ? 2 : 1;
        } else {
            rc = o.perplexity ? perplexity(&o, &m, tok) : o.chat ? chat(&o, &m, tok) : generate(&o, &m, tok);
            kt_model_free(&m);
        }
    }
    if (rc) kt_print_error(PROG);
    kt_tokenizer_free(tok);
    return rc;
}
