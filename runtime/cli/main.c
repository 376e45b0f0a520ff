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
#include "backend.h"
#include "chat.h"
#include "cli.h"
#include "error.h"
#include "file.h"
#include "hub.h"
#include "json.h"
#include "model.h"
#ifdef KT_HAVE_GPU
#include "backend_gpu.h"
#endif
#include "choices.h"
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

enum { BACKEND_AUTO = 0, BACKEND_CPU = 1, BACKEND_VULKAN = 2, BACKEND_METAL = 3 };
static const char *const BACKENDS[] = {"auto", "cpu", "vulkan", "metal", NULL};

typedef struct {
    const char *dir, *prompt, *system, *reasoning, *perplexity, *kld_against, *revision, *choices, *prompts;
    int backend;                  /* BACKEND_AUTO, _CPU, _VULKAN or _METAL */
    char *stdin_prompt;           /* --prompt -: what was read */
    int raw, json, tokenize, bos, max_tokens, max_reasoning, context, window, chat, quiet, verbose, strict_template;
    int num_fewshot, exact;
    kt_sampler sampler;           /* without --seed, a seed from the clock (reported) */
} options;

static void usage(FILE *out) {
    fprintf(out,
            "usage: %s MODEL_DIR --prompt TEXT [options]\n"
            "       %s MODEL_DIR --chat [options] < lines\n"
            "       %s MODEL_DIR --prompts FILE [options]\n"
            "       %s MODEL_DIR --perplexity FILE [--kld-against ORIG_DIR] [--window N]\n"
            "       %s MODEL_DIR --choices FILE [--num-fewshot K]\n"
            "       %s MODEL_DIR --tokenize [--bos] < lines\n"
            "\n"
            "Generate with a Nemotron-H model (MLX quantized or original bf16) on the CPU.\n"
            "The prompt goes through the model's chat format; /think or /no_think in it\n"
            "switch reasoning on (the default) or off. MODEL_DIR may be a hub name ORG/NAME\n"
            "in the local Hugging Face cache.\n"
            "\n"
            "  --prompt TEXT            the user message (- reads it from stdin)\n"
            "  --chat                   a conversation: one user message per line of stdin\n"
            "  --prompts FILE           one user message per line of FILE (- for stdin), each a new\n"
            "                           conversation (the model loads once; with --json, JSON\n"
            "                           Lines with each line's number and prompt)\n"
            "  --system TEXT            a system message\n"
            "  --raw                    no chat format: TEXT is fed as it is\n"
            "  --bos, --no-bos          add <s> in front of the prompt, or not (default: not\n"
            "                           for a chat prompt, as mlx-lm and transformers'\n"
            "                           apply_chat_template; yes with --raw, as mlx-lm)\n"
            "  --strict-template        fail when the model's chat template is not a known\n"
            "                           Nemotron-H one (default: a warning)\n"
            "  --max-tokens N           answer tokens (default 256; exact, 0: none)\n"
            "  --max-reasoning-tokens N reasoning tokens before </think> is fed (default 512;\n"
            "                           exact, 0: none; the fed marker counts as neither)\n"
            "  --reasoning MODE         show (default; dimmed on a terminal), hide, separate (stderr)\n"
            "  --temperature T          0 is greedy (default 0)\n"
            "  --top-k K                keep the K most likely tokens (0: off)\n"
            "  --top-p P                nucleus sampling, P in (0, 1] (1: off)\n"
            "  --min-p P                drop tokens below P x the best one's probability, [0, 1]\n"
            "  --repetition-penalty R   R > 0 (1: off), once per distinct token of the last 20,\n"
            "                           as mlx-lm\n"
            "  --seed S                 the sampler's seed (default: from the clock; the seed that\n"
            "                           ran is in the stats line and --json)\n"
            "  --context N              the longest sequence, prompt included (default 4096)\n"
            "  --backend B              auto (default: Metal on macOS, else a Vulkan GPU if\n"
            "                           there is one and it passes a start-up self-check of\n"
            "                           its kernels, else the CPU; never a CPU Vulkan driver),\n"
            "                           cpu, vulkan (the device KINTSUGI_VULKAN_DEVICE names,\n"
            "                           lavapipe included) or metal (KINTSUGI_METAL_DEVICE)\n"
            "  --exact                  float32 activations for quantized weights (the default\n"
            "                           for --perplexity and --choices; generation uses 8-bit\n"
            "                           integer activations unless KT_ACTIVATIONS=f32)\n"
            "  --perplexity FILE        word and byte perplexity and bits per byte of FILE as\n"
            "                           lm-evaluation-harness measures them (rolling windows,\n"
            "                           each document on its own): a text is one document;\n"
            "                           NAME.jsonl holds one per line, {\"text\": ...} or a\n"
            "                           WikiText {\"page\": ...} (lm-eval's wikitext task)\n"
            "  --window N               tokens a window reads (default: the model's\n"
            "                           max_position_embeddings, lm-eval's max_length)\n"
            "  --kld-against DIR        with --perplexity: mean KL divergence, top-1 agreement\n"
            "                           and perplexity ratio against the model in DIR\n"
            "  --choices FILE           multiple-choice accuracy (acc, acc_norm) on the JSON Lines\n"
            "                           FILE, scored as lm-evaluation-harness does: generic\n"
            "                           {context, choices, answer} or JCommonsenseQA's {question,\n"
            "                           choice0..choice4, label} (ja_leaderboard prompt);\n"
            "                           - reads FILE from stdin, for --perplexity too\n"
            "  --num-fewshot K          with --choices: the first K items as examples (default 0)\n"
            "  --revision REV           with a hub name: the snapshot of REV (default: main)\n"
            "  --json                   ids, text, reasoning, answer and stats as JSON\n"
            "                           (with --chat: one JSON object per line and turn)\n"
            "  --tokenize               print the token ids of each line of stdin\n"
            "  -q, --quiet              no statistics line on stderr\n"
            "  -v, --verbose            also the chosen chat template and the prompt's tokens\n"
            "  -h, --help               this text\n"
            "  --version                the version\n"
            "\n"
            "exit status: 0 done, 1 the model or the input cannot be used, 2 usage or I/O error\n",
            PROG, PROG, PROG, PROG, PROG, PROG);
}

enum {
    O_PROMPT = 1, O_SYSTEM, O_PERPLEXITY, O_KLD_AGAINST, O_REASONING, O_MAX_TOKENS, O_MAX_REASONING, O_CONTEXT,
    O_TOP_K, O_WINDOW, O_TEMPERATURE, O_TOP_P, O_MIN_P, O_REP_PENALTY, O_SEED, O_RAW, O_CHAT, O_JSON, O_TOKENIZE,
    O_BOS, O_NO_BOS, O_QUIET, O_VERBOSE, O_STRICT_TEMPLATE, O_REVISION, O_CHOICES, O_NUM_FEWSHOT, O_PROMPTS, O_EXACT,
    O_BACKEND
};
static const kt_opt OPTIONS[] = {
    {"--prompt", 0, 1, O_PROMPT}, {"--system", 0, 1, O_SYSTEM}, {"--perplexity", 0, 1, O_PERPLEXITY},
    {"--kld-against", 0, 1, O_KLD_AGAINST}, {"--reasoning", 0, 1, O_REASONING}, {"--max-tokens", 0, 1, O_MAX_TOKENS},
    {"--max-reasoning-tokens", 0, 1, O_MAX_REASONING}, {"--context", 0, 1, O_CONTEXT}, {"--top-k", 0, 1, O_TOP_K},
    {"--window", 0, 1, O_WINDOW}, {"--temperature", 0, 1, O_TEMPERATURE}, {"--top-p", 0, 1, O_TOP_P},
    {"--min-p", 0, 1, O_MIN_P}, {"--repetition-penalty", 0, 1, O_REP_PENALTY}, {"--seed", 0, 1, O_SEED},
    {"--raw", 0, 0, O_RAW}, {"--chat", 0, 0, O_CHAT}, {"--json", 0, 0, O_JSON}, {"--tokenize", 0, 0, O_TOKENIZE},
    {"--bos", 0, 0, O_BOS}, {"--no-bos", 0, 0, O_NO_BOS}, {"--quiet", 'q', 0, O_QUIET},
    {"--verbose", 'v', 0, O_VERBOSE}, {"--strict-template", 0, 0, O_STRICT_TEMPLATE},
    {"--revision", 0, 1, O_REVISION}, {"--choices", 0, 1, O_CHOICES}, {"--num-fewshot", 0, 1, O_NUM_FEWSHOT},
    {"--prompts", 0, 1, O_PROMPTS}, {"--exact", 0, 0, O_EXACT},
    {"--backend", 0, 1, O_BACKEND}, {NULL, 0, 0, 0}};

/* The modes, and which options each one reads: an option the chosen mode
 * would ignore is refused (docs/CLI.md), never accepted and dropped. */
enum { M_PROMPT = 1, M_CHAT = 2, M_PROMPTS = 4, M_PPL = 8, M_CHOICES = 16, M_TOKENIZE = 32 };
#define M_GEN (M_PROMPT | M_CHAT | M_PROMPTS)
#define M_MODEL (M_GEN | M_PPL | M_CHOICES)
static const struct {
    int id, modes;
} APPLIES[] = {
    {O_SYSTEM, M_GEN}, {O_RAW, M_PROMPT}, {O_STRICT_TEMPLATE, M_GEN}, {O_REASONING, M_GEN},
    {O_MAX_TOKENS, M_GEN}, {O_MAX_REASONING, M_GEN}, {O_TEMPERATURE, M_GEN}, {O_TOP_K, M_GEN}, {O_TOP_P, M_GEN},
    {O_MIN_P, M_GEN}, {O_REP_PENALTY, M_GEN}, {O_SEED, M_GEN}, {O_VERBOSE, M_GEN}, {O_CONTEXT, M_GEN | M_CHOICES},
    {O_KLD_AGAINST, M_PPL}, {O_WINDOW, M_PPL}, {O_NUM_FEWSHOT, M_CHOICES}, {O_BOS, M_GEN | M_TOKENIZE},
    {O_NO_BOS, M_GEN | M_TOKENIZE}, {O_JSON, M_MODEL}, {O_EXACT, M_MODEL}, {O_BACKEND, M_MODEL},
    {O_QUIET, M_MODEL},
};

/* The modes (--prompt, --chat, --prompts, --perplexity, --choices,
 * --tokenize) exclude each other, and options of one mode are refused in
 * another, never ignored. */
static int check_combinations(const options *o, const kt_args *a) {
    const char *mode = NULL, *modes[6] = {o->prompt ? "--prompt" : NULL, o->chat ? "--chat" : NULL,
                                          o->prompts ? "--prompts" : NULL, o->perplexity ? "--perplexity" : NULL,
                                          o->choices ? "--choices" : NULL, o->tokenize ? "--tokenize" : NULL};
    int bit = 0;
    for (int i = 0; i < 6; i++) {
        if (!modes[i]) continue;
        if (mode) return kt_usage_conflict(PROG, mode, modes[i]);
        mode = modes[i], bit = 1 << i;
    }
    if (!mode) return kt_usage_error(PROG, "%s", "--prompt TEXT is required (or --chat, --tokenize, --perplexity FILE or --choices FILE)");
    for (size_t i = 0; i < sizeof APPLIES / sizeof *APPLIES; i++)
        if (kt_arg_given(a, APPLIES[i].id) && !(APPLIES[i].modes & bit))
            return kt_usage_conflict(PROG, kt_opt_name(OPTIONS, APPLIES[i].id), mode);
    if (o->raw && o->system) return kt_usage_conflict(PROG, "--raw", "--system");
    if (o->raw && o->strict_template) return kt_usage_conflict(PROG, "--raw", "--strict-template");
    if (o->json && kt_arg_given(a, O_REASONING)) return kt_usage_conflict(PROG, "--reasoning", "--json");
    /* greedy decoding draws nothing: the filters and the seed would change nothing
     * (the repetition penalty applies before the choice, greedy or not, as in mlx-lm) */
    static const int draws[] = {O_TOP_K, O_TOP_P, O_MIN_P, O_SEED};
    for (size_t i = 0; i < sizeof draws / sizeof *draws; i++)
        if (kt_arg_given(a, draws[i]) && o->sampler.temperature <= 0)
            return kt_usage_error(PROG, "%s changes nothing at --temperature 0 (greedy decoding); give a "
                                  "temperature > 0 to sample", kt_opt_name(OPTIONS, draws[i]));
    return -1;
}

static int parse_args(int argc, char **argv, options *o) {
    static const char *const reasoning[] = {"show", "hide", "separate", NULL};
    memset(o, 0, sizeof *o);
    o->max_tokens = 256, o->max_reasoning = 512, o->context = 4096, o->reasoning = "show", o->bos = -1, o->window = 0;
    o->sampler = (kt_sampler){0.0f, 0, 1.0f, 0.0f, 1.0f, 0};
    kt_args a;
    kt_args_init(&a, PROG, argc, argv, OPTIONS);
    int id, k, rc = 0;
    double d;
    unsigned long long seed;
    while (rc == 0 && (id = kt_args_next(&a)) != KT_ARG_END) {
        switch (id) {
        case KT_ARG_HELP: usage(stdout); return 0;
        case KT_ARG_VERSION: kt_print_version(PROG); return 0;
        case KT_ARG_ERROR: return KT_EXIT_USAGE;
        case O_PROMPT: o->prompt = a.value; break;
        case O_SYSTEM: o->system = a.value; break;
        case O_PERPLEXITY: o->perplexity = a.value; break;
        case O_KLD_AGAINST: o->kld_against = a.value; break;
        case O_REASONING:
            if (!(rc = kt_arg_choice(&a, reasoning, &k))) o->reasoning = reasoning[k];
            break;
        case O_MAX_TOKENS: rc = kt_arg_int(&a, 0, 1 << 24, &o->max_tokens); break;
        case O_MAX_REASONING: rc = kt_arg_int(&a, 0, 1 << 24, &o->max_reasoning); break;
        case O_CONTEXT: rc = kt_arg_int(&a, 2, 1 << 24, &o->context); break;
        case O_TOP_K: rc = kt_arg_int(&a, 0, 1 << 24, &o->sampler.top_k); break;
        case O_WINDOW: rc = kt_arg_int(&a, 2, 1 << 24, &o->window); break;
        case O_TEMPERATURE:
            if (!(rc = kt_arg_double(&a, 0, 0, 1e6, 0, &d))) o->sampler.temperature = (float)d;
            break;
        case O_TOP_P:
            if (!(rc = kt_arg_double(&a, 0, 1, 1, 0, &d))) o->sampler.top_p = (float)d;
            break;
        case O_MIN_P:
            if (!(rc = kt_arg_double(&a, 0, 0, 1, 0, &d))) o->sampler.min_p = (float)d;
            break;
        case O_REP_PENALTY:
            if (!(rc = kt_arg_double(&a, 0, 1, 1e6, 0, &d))) o->sampler.repetition_penalty = (float)d;
            break;
        case O_SEED:
            if (!(rc = kt_arg_u64(&a, &seed))) o->sampler.rng = seed;
            break;
        case O_RAW: o->raw = 1; break;
        case O_CHAT: o->chat = 1; break;
        case O_JSON: o->json = 1; break;
        case O_TOKENIZE: o->tokenize = 1; break;
        case O_BOS: o->bos = 1; break;
        case O_NO_BOS: o->bos = 0; break;
        case O_QUIET: o->quiet = 1; break;
        case O_VERBOSE: o->verbose = 1; break;
        case O_STRICT_TEMPLATE: o->strict_template = 1; break;
        case O_REVISION: o->revision = a.value; break;
        case O_CHOICES: o->choices = a.value; break;
        case O_PROMPTS: o->prompts = a.value; break;
        case O_EXACT: o->exact = 1; break;
        case O_BACKEND: {
            rc = kt_arg_choice(&a, BACKENDS, &o->backend);
            break;
        }
        case O_NUM_FEWSHOT: rc = kt_arg_int(&a, 0, 1 << 20, &o->num_fewshot); break;
        case KT_ARG_POSITIONAL:
            if (o->dir) rc = kt_usage_error(PROG, "unexpected argument '%s'", a.value);
            else o->dir = a.value;
            break;
        }
    }
    if (rc) return rc;
    if (o->quiet && o->verbose) return kt_usage_conflict(PROG, "--quiet", "--verbose");
    if (!o->dir) return kt_usage_error(PROG, "%s", "MODEL_DIR is required");
    if ((rc = check_combinations(o, &a)) >= 0) return rc;
    if (!kt_arg_given(&a, O_SEED)) o->sampler.rng = kt_sample_seed();
    /* mlx-lm and transformers encode a chat-templated prompt without special
     * tokens (the template decides), a raw prompt with them */
    if (o->bos < 0) o->bos = o->raw; /* --raw never goes with --tokenize */
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

static const kt_json_style ONE_LINE = {-1, ", ", ": ", 0, 0};

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
    strbuf reasoning, answer;   /* decoded text: bytes with a length (a token may decode to NUL) */
    int in_reasoning;
    size_t printed_r, printed_a;
    int tty;
    int sep;                    /* reasoning was printed: the answer starts on a new line */
    FILE *reasoning_to;         /* where the reasoning was printed */
} output;

/* The answer's text: the newlines between "</think>" and its first
 * character are the template's layout, not the answer (--reasoning hide
 * would begin with a blank line). */
static void answer_append(output *out, const char *s, size_t n) {
    if (out->answer.len == 0)
        while (n > 0 && (*s == '\n' || *s == '\r')) s++, n--;
    sb_append(&out->answer, s, n);
}

/* Print what is new and complete (never half a UTF-8 character); -1 when
 * standard output cannot be written. */
static int flush_output(output *out, const options *o, int final) {
    strbuf *bufs[2] = {&out->reasoning, &out->answer};
    size_t *done[2] = {&out->printed_r, &out->printed_a};
    for (int k = 0; k < 2; k++) {
        size_t end = bufs[k]->len;
        if (!final) end -= kt_utf8_incomplete_tail(sb_cstr(bufs[k]), bufs[k]->len);
        if (!final && k == 0 && out->in_reasoning) { /* hold back what may be the start of "</think>" */
            for (size_t m = 7; m > 0; m--)
                if (end >= m && !memcmp(sb_cstr(bufs[k]) + end - m, "</think>", m)) {
                    end -= m;
                    break;
                }
            while (end > 0 && bufs[k]->data[end - 1] == '\n') end--; /* and the newlines before it */
        }
        if (end <= *done[k]) continue;
        const char *s = sb_cstr(bufs[k]) + *done[k];
        size_t n = end - *done[k];
        if (k == 0 && !strcmp(o->reasoning, "hide")) { *done[k] = end; continue; }
        FILE *f = k == 0 && !strcmp(o->reasoning, "separate") ? stderr : stdout;
        if (k == 0) out->sep = 1, out->reasoning_to = f;
        if (k == 0 && out->tty && f == stdout) fputs("\033[2m", f);
        /* the text printed is valid UTF-8 (a cut tail waits for the next
         * token): an invalid sequence becomes U+FFFD, as Python's
         * decode(errors="replace") gives it */
        size_t clean_len;
        char *clean = kt_utf8_sanitize(s, n, &clean_len);
        if (k == 1 && out->sep) { /* the answer after printed reasoning: on a line of its own */
            if (f == out->reasoning_to) fputc('\n', f);
            out->sep = 0;
        }
        fwrite(clean, 1, clean_len, f); /* a token may decode to NUL: text has a length */
        free(clean);
        if (k == 0 && out->tty && f == stdout) fputs("\033[0m", f);
        if (f != stdout) fflush(f); /* stdout: kt_stdout_check below, which keeps the errno */
        *done[k] = end;
    }
    return kt_stdout_check();
}

static cJSON *ids_json(const int32_t *v, size_t n) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(a, kt_json_new_int(v[i]));
    return a;
}

/* A measurement's figures and its time as JSON on stdout (ROOT is freed). */
static void print_figures(cJSON *root, double secs) {
    cJSON_AddItemToObject(root, "seconds", kt_json_new_float(secs));
    char *s = kt_json_print_report(root, &KT_JSON_PYTHON_INDENT4);
    printf("%s\n", s);
    free(s);
    cJSON_Delete(root);
}

static int choices(const options *o, const kt_model *m, const kt_tokenizer *tok, const kt_mc_set *set) {
    kt_mc_result r;
    double t0 = kt_now();
    if (kt_mc_eval(m, tok, set, o->num_fewshot, o->context, o->json || o->quiet ? NULL : "choices", &r)) return 1;
    double secs = kt_now() - t0;
    if (o->json) {
        print_figures(kt_mc_to_json(set, &r), secs);
    } else {
        printf("%d items (%s, %d-shot): acc %.4f +- %.4f, acc_norm %.4f +- %.4f\n", r.scored,
               set->jcqa ? "JCommonsenseQA prompt" : "context + choice", r.num_fewshot, r.acc, r.acc_stderr,
               r.acc_norm, r.acc_norm_stderr);
    }
    if (kt_stdout_check()) {
        kt_mc_result_free(&r);
        return 2;
    }
    if (!o->quiet) fprintf(stderr, "%s: %d items in %.1f s\n", PROG, r.scored, secs);
    kt_mc_result_free(&r);
    return 0;
}

static int perplexity(const options *o, const kt_model *m, const kt_tokenizer *tok) {
    char *text;
    size_t text_len;
    int got = kt_read_input(o->perplexity, &text, &text_len);
    if (got <= 0) {
        if (got == 0) kt_fail_io("cannot open %s", o->perplexity);
        return 2;
    }
    kt_documents docs;
    int rc = kt_documents_parse(&docs, o->perplexity, text, text_len);
    free(text);
    if (rc) return 1;
    kt_model ref;
    int have_ref = 0;
    if (o->kld_against) {
        if (kt_model_load(&ref, o->kld_against)) {
            kt_documents_free(&docs);
            return 1;
        }
        have_ref = 1;
    }
    kt_ppl_result r;
    /* lm-eval's max_length for a Hugging Face model: max_position_embeddings */
    const int window = o->window ? o->window : m->cfg.max_positions;
    kt_ppl_options po = {window, o->json, !o->json && !o->quiet, "perplexity"};
    double t0 = kt_now();
    rc = kt_perplexity(m, have_ref ? &ref : NULL, tok, &docs, &po, &r);
    double secs = kt_now() - t0;
    if (rc == 0 && o->json) {
        print_figures(kt_ppl_to_json(&r, have_ref), secs);
    } else if (rc == 0) {
        printf("%ld tokens of %ld document%s in %ld windows of up to %d: word perplexity %.4f (%ld words), byte "
               "perplexity %.4f, bits per byte %.4f, token perplexity %.4f\n",
               r.tokens, r.documents, r.documents == 1 ? "" : "s", r.windows, window, r.word_ppl, r.words, r.byte_ppl,
               r.bits_per_byte, r.token_ppl);
        if (have_ref)
            printf("against %s: mean KL divergence %.6f (max %.4f), top-1 agreement %.2f%%, perplexity ratio %.4f\n",
                   o->kld_against, r.kld_mean, r.kld_max, 100 * r.top1_agreement, r.ppl_ratio);
    }
    if (rc == 0) kt_ppl_free(&r);
    if (have_ref) kt_model_free(&ref);
    kt_documents_free(&docs);
    if (rc == 0 && kt_stdout_check()) return 2;
    return rc ? 1 : 0;
}

/* Where a prompt of --prompts FILE came from: its line and its text, which
 * its JSON object carries. */
typedef struct {
    long line;
    const char *text;
} prompt_source;

/* Generate from PROMPT (already in the chat format unless --raw). THINK:
 * the prompt opens the reasoning. *REPLY (if not NULL) receives the generated
 * text, for the next turn of a chat; FROM (if not NULL) names the prompt's
 * line of --prompts. */
static int generate_from(const options *o, const kt_model *m, const kt_tokenizer *tok, char *prompt, int think,
                         char **reply, const prompt_source *from) {
    int32_t *ids;
    long n_prompt = kt_tokenizer_encode(tok, prompt, strlen(prompt), o->bos != 0, &ids);
    free(prompt);
    if (n_prompt < 0) return 1;
    if (o->verbose) {
        if (o->raw) fprintf(stderr, "%s: template: none (--raw)\n", PROG);
        fprintf(stderr, "%s: prompt: %ld tokens%s:", PROG, n_prompt, o->bos ? " (<s> added)" : "");
        for (long i = 0; i < n_prompt; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    if (n_prompt >= o->context) {
        free(ids);
        return kt_fail("the prompt has %ld tokens; --context %d leaves no room to generate (raise --context)",
                       n_prompt, o->context), 1;
    }
    size_t cap = (size_t)n_prompt + (size_t)o->max_tokens + (size_t)o->max_reasoning + 16, n_all = (size_t)n_prompt;
    ids = kt_xrealloc(ids, cap * sizeof *ids);
    kt_state st;
    if (kt_state_init(&st, m, (int)(cap < (size_t)o->context ? cap : (size_t)o->context))) {
        free(ids);
        return 2;
    }
    float *logits = kt_xmalloc((size_t)m->cfg.vocab * sizeof *logits);
    const int32_t stop1 = kt_tokenizer_id(tok, "<SPECIAL_12>"), stop2 = kt_tokenizer_id(tok, "</s>");
    int rc = 0;
    double t0 = kt_now();
    /* the prompt as matrix-matrix work, in chunks that bound the activations */
    for (long i = 0; i < n_prompt && rc == 0; i += 256)
        rc = kt_forward_batch(m, &st, ids + i, (int)(n_prompt - i < 256 ? n_prompt - i : 256), logits);
    double t_prompt = kt_now() - t0;
    output out = {.in_reasoning = think, .tty = kt_color_ok(1) && !o->json};
    kt_sampler sampler = o->sampler;
    int n_reason = 0, n_answer = 0;
    const char *stop = "max_tokens";
    int32_t *forced = NULL;
    long n_forced = 0, k_forced = 0;
    int budget_closed = 0; /* the reasoning budget ran out and "</think>" was fed */
    double t1 = kt_now();
    /* Budgets are exact: --max-reasoning-tokens N samples N reasoning tokens
     * (0: none), then "</think>" is fed; --max-tokens N samples N answer
     * tokens. The tokens fed to close the reasoning count as neither. */
    while (rc == 0 && (out.in_reasoning || n_answer < o->max_tokens) && st.pos < st.max_pos) {
        if (out.in_reasoning && n_reason >= o->max_reasoning && k_forced >= n_forced) {
            if (budget_closed) { /* the fed marker did not close it: end the reasoning here */
                out.in_reasoning = 0;
                continue;
            }
            free(forced);
            budget_closed = 1;
            k_forced = 0;
            if ((n_forced = kt_tokenizer_encode(tok, "\n</think>\n", 10, 0, &forced)) < 0) {
                rc = -1;
                break;
            }
        }
        const int fed = k_forced < n_forced;
        const int32_t next = fed ? forced[k_forced++] : kt_sample(&sampler, logits, m->cfg.vocab, ids, n_all);
        if (!fed && (next == stop1 || next == stop2)) {
            stop = "eos";
            break;
        }
        ids[n_all++] = next;
        size_t len = 0;
        const char *piece = kt_tokenizer_token_bytes(tok, next, &len);
        if (!piece) piece = "", len = 0;
        if (out.in_reasoning) {
            n_reason += !fed;
            const size_t from = out.reasoning.len > 7 ? out.reasoning.len - 7 : 0; /* the marker may span tokens */
            sb_append(&out.reasoning, piece, len);
            const char *end = kt_find_bytes(out.reasoning.data + from, out.reasoning.len - from, "</think>", 8);
            if (end) { /* the answer starts after the marker */
                size_t cut = (size_t)(end - out.reasoning.data);
                answer_append(&out, end + 8, out.reasoning.len - cut - 8);
                while (cut > 0 && (out.reasoning.data[cut - 1] == '\n' || out.reasoning.data[cut - 1] == '\r'))
                    cut--; /* the template's layout before "</think>", as after it */
                out.reasoning.len = cut;
                out.reasoning.data[cut] = 0;
                out.in_reasoning = 0;
            }
        } else {
            n_answer += !fed;
            answer_append(&out, piece, len);
        }
        if (!o->json && rc == 0) rc = flush_output(&out, o, 0);
        if (rc == 0) rc = kt_forward(m, &st, next, logits);
    }
    double t_gen = kt_now() - t1;
    if (rc == 0 && strcmp(stop, "eos") && (out.in_reasoning || n_answer < o->max_tokens)) {
        stop = "context";
        fprintf(stderr, "%s: stopped at the context limit of %d tokens (--context)\n", PROG, st.max_pos);
    }
    /* a stop never ends inside a character: a cut tail is held back */
    out.reasoning.len -= kt_utf8_incomplete_tail(sb_cstr(&out.reasoning), out.reasoning.len);
    out.answer.len -= kt_utf8_incomplete_tail(sb_cstr(&out.answer), out.answer.len);
    sb_cstr(&out.reasoning), sb_cstr(&out.answer);
    if (!o->json && rc == 0) {
        rc = flush_output(&out, o, 1);
        printf("\n");
        if (rc == 0) rc = kt_stdout_check();
    }
    size_t n_gen = n_all - (size_t)n_prompt;
    char seed[24] = ""; /* the seed that ran, so that a sampled run can be repeated */
    if (o->sampler.temperature > 0) snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->sampler.rng);
    if (rc == 0 && o->json) {
        cJSON *root = cJSON_CreateObject();
        if (from) {
            cJSON_AddItemToObject(root, "line", kt_json_new_int(from->line));
            cJSON_AddItemToObject(root, "prompt", kt_json_new_string_n(from->text, strlen(from->text)));
        }
        cJSON_AddItemToObject(root, "prompt_ids", ids_json(ids, (size_t)n_prompt));
        cJSON_AddItemToObject(root, "generated_ids", ids_json(ids + n_prompt, n_gen));
        size_t tl, text_n, reasoning_n, answer_n;
        char *raw = kt_tokenizer_decode(tok, ids + n_prompt, n_gen, &tl);
        tl -= kt_utf8_incomplete_tail(raw, tl);
        /* JSON holds valid UTF-8: an invalid sequence becomes U+FFFD; NUL is \u0000 */
        char *text = kt_utf8_sanitize(raw, tl, &text_n);
        char *reasoning = kt_utf8_sanitize(sb_cstr(&out.reasoning), out.reasoning.len, &reasoning_n);
        char *answer = kt_utf8_sanitize(sb_cstr(&out.answer), out.answer.len, &answer_n);
        cJSON_AddItemToObject(root, "text", kt_json_new_string_n(text, text_n));
        cJSON_AddBoolToObject(root, "thinking", think);
        cJSON_AddItemToObject(root, "reasoning", kt_json_new_string_n(reasoning, reasoning_n));
        cJSON_AddItemToObject(root, "answer", kt_json_new_string_n(answer, answer_n));
        cJSON_AddStringToObject(root, "stop_reason", stop);
        cJSON_AddBoolToObject(root, "reasoning_forced_closed", budget_closed);
        cJSON_AddItemToObject(root, "seed", *seed ? cJSON_CreateRaw(seed) : cJSON_CreateNull());
        free(raw);
        free(text);
        free(reasoning);
        free(answer);
        cJSON *stats = cJSON_AddObjectToObject(root, "stats");
        cJSON_AddItemToObject(stats, "prompt_tokens_per_s", kt_json_new_float(t_prompt > 0 ? n_prompt / t_prompt : 0));
        cJSON_AddItemToObject(stats, "generation_tokens_per_s", kt_json_new_float(t_gen > 0 ? n_gen / t_gen : 0));
        cJSON_AddItemToObject(stats, "peak_rss_mib", kt_json_new_float(peak_rss_mib()));
        cJSON_AddStringToObject(stats, "backend", m->backend->name);
        cJSON_AddItemToObject(stats, "reasoning_tokens", kt_json_new_int(n_reason));
        cJSON_AddItemToObject(stats, "answer_tokens", kt_json_new_int(n_answer));
        /* --chat --json: JSON Lines, one object per turn */
        char *s = kt_json_print_report(root, o->chat || o->prompts ? &ONE_LINE : &KT_JSON_PYTHON_INDENT4);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(root);
        rc = kt_stdout_check();
    }
    if (!o->quiet && rc == 0) {
        fprintf(stderr, "%s: prompt %ld tokens, %.1f tok/s; generated %zu tokens (%d reasoning, %d answer), %.1f tok/s; "
            "peak RSS %.0f MiB; %s", PROG, n_prompt, t_prompt > 0 ? n_prompt / t_prompt : 0, n_gen, n_reason, n_answer,
            t_gen > 0 ? n_gen / t_gen : 0, peak_rss_mib(), m->backend->name);
        fprintf(stderr, "%s%s\n", *seed ? "; seed " : "", seed);
    }
    if (reply) {
        size_t rl;
        char *raw = kt_tokenizer_decode(tok, ids + n_prompt, n_gen, &rl);
        *reply = kt_utf8_sanitize(raw, rl, NULL);
        free(raw);
    }
    free(forced);
    sb_free(&out.reasoning);
    sb_free(&out.answer);
    free(logits);
    free(ids);
    kt_state_free(&st, m);
    return rc ? (kt_errkind() == KT_ERR_IO ? 2 : 1) : 0;
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
    return generate_from(o, m, tok, prompt, think, NULL, NULL);
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
        rc = generate_from(o, m, tok, prompt, think, &reply, NULL);
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

/* --prompts FILE: every non-empty line a conversation of its own. */
static int prompts(const options *o, const kt_model *m, const kt_tokenizer *tok) {
    char *text;
    size_t len;
    int got = kt_read_input(o->prompts, &text, &len);
    if (got <= 0) {
        if (got == 0) kt_fail_io("%s: no such file", o->prompts);
        return 2;
    }
    int rc = 0;
    long number = 0;
    for (char *line = text, *next; rc == 0 && line < text + len; line = next) {
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        next = nl ? nl + 1 : text + len;
        if (nl) *nl = 0;
        number++;
        if (!*line) continue;
        kt_message msgs[2];
        size_t n = 0;
        if (o->system) msgs[n++] = (kt_message){"system", o->system};
        msgs[n++] = (kt_message){"user", line};
        int think;
        char *prompt = kt_chat_render(msgs, n, &think);
        const prompt_source from = {number, line};
        rc = generate_from(o, m, tok, prompt, think, NULL, &from);
    }
    free(text);
    return rc;
}


/* The model's own chat template: tokenizer_config.json's chat_template (a
 * string, or a list of named templates: "default"), else chat_template.jinja.
 * NULL when it has none. */
static char *model_template(const char *dir) {
    char *path = kt_path_join(dir, "tokenizer_config.json"), *result = NULL;
    cJSON *tc = kt_is_file(path) ? kt_json_load_file(path, KT_JSON_DUP_LAST_WINS) : NULL;
    free(path);
    const cJSON *t = tc ? cJSON_GetObjectItemCaseSensitive(tc, "chat_template") : NULL;
    if (cJSON_IsString(t)) result = kt_xstrdup(t->valuestring);
    for (const cJSON *e = cJSON_IsArray(t) ? t->child : NULL; e && !result; e = e->next) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name"), *tpl = cJSON_GetObjectItemCaseSensitive(e, "template");
        if (cJSON_IsString(name) && !strcmp(name->valuestring, "default") && cJSON_IsString(tpl))
            result = kt_xstrdup(tpl->valuestring);
    }
    cJSON_Delete(tc);
    if (!result) {
        size_t len;
        path = kt_path_join(dir, "chat_template.jinja");
        if (kt_read_file(path, &result, &len) <= 0) result = NULL;
        free(path);
    }
    return result;
}

/* kintsugi-run renders prompts with its built-in Nemotron-H format
 * (runtime/chat.c). A model whose template is something else would be
 * prompted in a format it was not trained on: say so once, or refuse with
 * --strict-template. */
static int check_template(const options *o) {
    if (o->raw || o->tokenize || o->perplexity || o->choices) return 0;
    char *tpl = model_template(o->dir);
    int known = tpl && kt_chat_template_is_nemotron(tpl);
    free(tpl);
    if (known && o->verbose)
        fprintf(stderr, "%s: template: the model's own is a known Nemotron-H template; rendered by the built-in "
                        "Nemotron-H format\n", PROG);
    if (known) return 0;
    const char *what = tpl ? "is not a known Nemotron-H template" : "is missing (no chat_template in "
                                                                     "tokenizer_config.json, no chat_template.jinja)";
    if (o->strict_template) return kt_fail("%s: the model's chat template %s (--strict-template)", o->dir, what);
    fprintf(stderr, "%s: warning: the model's chat template %s; the built-in Nemotron-H format is used\n", PROG, what);
    return 0;
}

/* --backend: the device where the model runs. auto takes Metal on macOS,
 * else a Vulkan GPU when there is one (a CPU implementation such as
 * lavapipe is never chosen by auto), when the model can run there; else the
 * CPU. */
static int choose_backend(const options *o, kt_model *m) {
    if (o->backend == BACKEND_CPU) return 0;
#ifdef KT_HAVE_GPU
    char *note = NULL;
    const kt_backend *be = o->backend == BACKEND_AUTO ? kt_gpu_auto(&note) : kt_gpu_open(BACKENDS[o->backend]);
    if (note) fprintf(stderr, "%s: note: --backend auto: %s; the model runs on the CPU\n", PROG, note);
    free(note);
    if (be) m->backend = be;
    return be || o->backend == BACKEND_AUTO ? 0 : kt_fail_context("--backend %s", BACKENDS[o->backend]);
#else
    (void)m;
    if (o->backend == BACKEND_AUTO) return 0;
    return kt_fail("--backend %s: this kintsugi-run was built without GPU hosts (glslangValidator and the Vulkan "
                   "headers were missing: scripts/bootstrap.sh --tests installs them; Metal is built on macOS)",
                   BACKENDS[o->backend]);
#endif
}

/* Integer activations for generation, float32 for measurements (they are
 * compared with mlx-lm's float32 figures); KT_ACTIVATIONS=f32|int8 chooses
 * for every mode, --exact for this run. A --kld-against reference is always
 * float32. */
static int choose_activations(const options *o, kt_activations *out) {
    const char *env = getenv("KT_ACTIVATIONS");
    *out = o->perplexity || o->choices ? KT_ACT_F32 : KT_ACT_INT8;
    if (env && !strcmp(env, "f32")) *out = KT_ACT_F32;
    else if (env && !strcmp(env, "int8")) *out = KT_ACT_INT8;
    else if (env && *env) return kt_fail("KT_ACTIVATIONS is '%s', not f32 or int8", env);
    if (o->exact) *out = KT_ACT_F32;
    return 0;
}

static int run(options *o) {
    if (kt_check_model_dir(o->dir) || (o->kld_against && kt_check_model_dir(o->kld_against)))
        return kt_errkind() == KT_ERR_IO ? 2 : 1;
    if (check_template(o)) return 1;
    kt_tokenizer *tok = kt_tokenizer_load_dir(o->dir, 0); /* its size against the model's below */
    if (!tok) return kt_errkind() == KT_ERR_IO ? 2 : 1;
    int rc;
    kt_mc_set set = {0};
    if (o->choices && kt_mc_read(o->choices, &set)) { /* a bad file is found before the model loads */
        kt_tokenizer_free(tok);
        return kt_errkind() == KT_ERR_IO ? 2 : 1;
    }
    if (o->tokenize) {
        rc = tokenize_lines(tok, o->bos);
    } else {
        kt_model m;
        kt_activations act;
        if (choose_activations(o, &act)) {
            rc = 2;
        } else if (kt_model_load(&m, o->dir)) {
            rc = kt_errkind() == KT_ERR_IO ? 2 : 1;
        } else if (kt_tokenizer_check_vocab(tok, o->dir, m.cfg.vocab)) {
            rc = 1;
            kt_model_free(&m);
        } else if (choose_backend(o, &m)) {
            rc = 1;
            kt_model_free(&m);
        } else if (kt_model_set_activations(&m, act)) { /* a bad KT_INTERLEAVE */
            rc = 2;
            kt_model_free(&m);
        } else {
            rc = o->perplexity ? perplexity(o, &m, tok)
                 : o->choices  ? choices(o, &m, tok, &set)
                 : o->chat     ? chat(o, &m, tok)
                 : o->prompts  ? prompts(o, &m, tok)
                               : generate(o, &m, tok);
            kt_model_free(&m);
        }
    }
    kt_mc_free(&set);
    kt_tokenizer_free(tok);
    return rc;
}

int main(int argc, char **argv) {
    kt_check_stdout_at_exit(PROG);
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    char *hub_dir = NULL, *hub_ref = NULL;
    o.dir = kt_resolve_model_arg(o.dir, o.revision, &hub_dir);
    if (o.dir && o.kld_against && !(o.kld_against = kt_resolve_model_arg(o.kld_against, o.revision, &hub_ref)))
        o.dir = NULL;
    if (!o.dir) {
        kt_print_error(PROG);
        free(hub_dir);
        return KT_EXIT_FAILED;
    }
    if (o.prompt && !strcmp(o.prompt, "-")) { /* all of stdin, as mlx_lm.generate reads it: as it is */
        size_t len;
        if (kt_read_input("-", &o.stdin_prompt, &len) != 1) {
            kt_print_error(PROG);
            free(hub_dir);
            free(hub_ref);
            return KT_EXIT_USAGE;
        }
        o.prompt = o.stdin_prompt;
    }
    rc = run(&o);
    if (rc) kt_print_error(PROG);
    free(o.stdin_prompt);
    free(hub_dir);
    free(hub_ref);
    return rc;
}
