/* kintsugi-verify - prove that a converted model is complete, repaired,
 * faithful to its original, and generates.
 *
 *   kintsugi-verify DIR [--original ORIG] [--generate] [--kld TEXT]
 *                       [--json] [--json-out FILE] [--junit FILE]
 *
 * The checks live in structure.c, fidelity.c and behaviour.c; report.c prints
 * them. Given a single .safetensors file, or a directory that is not a
 * quantized conversion (an original checkpoint), the tool validates the files
 * and lists the tensors instead.
 * Exit codes: 0 every check passed (warnings allowed), 1 a check failed,
 * 2 usage or I/O error.
 */
#include "atomic_file.h"
#include "checks.h"
#include "choices.h"
#include "cli.h"
#include "error.h"
#include "json.h"
#include "file.h"
#include "hub.h"
#include "model_dir.h"
#include "output_path.h"
#include "safetensors.h"
#include "strbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static const char *PROG = "kintsugi-verify";

/* Defaults of the behavioural gate, relative to the RTN reference conversion
 * (reference.c); measured by bench/gate_bounds.py on the trained model's
 * conversions over five texts, two of prose it never saw (docs/VERIFY.md,
 * "How the bounds were chosen"): correct conversions (RTN in either rounding,
 * --fit mse) stay within mean KL 0.78-1.23x the reference's and top-1
 * disagreement 0.87-1.15x; +-5% noise on the scales reaches 1.36-1.87x. The
 * floor: correct 4-bit conversions stay at or below 0.062 of the original's
 * NLL per token in mean KL on every text, 2 bits are at 0.138-0.241. The
 * relative RMSE bound is per bit width: fidelity.c. */
#define DEFAULT_MAX_KLD_RATIO 1.30
#define DEFAULT_MAX_DISAGREEMENT_RATIO 1.50
#define DEFAULT_MAX_PPL_RATIO 1.10
#define DEFAULT_MAX_RELATIVE_KLD 0.10
#define DEFAULT_MAX_ACCURACY_DROP 5.0

static void usage(FILE *out) {
    fprintf(out,
            "usage: %s DIR [--original ORIG_DIR] [--generate] [--kld TEXT] [--json] [--json-out FILE]\n"
            "                          [--junit FILE]\n"
            "       %s FILE.safetensors [--json]\n"
            "\n"
            "Check an MLX conversion of a Nemotron-H model, at least as strictly as mlx_lm.load\n"
            "and a forward pass do:\n"
            "  structure   config.json (every value the model needs), the tokenizer, shards,\n"
            "              index, every tensor the layer pattern needs with its shape and dtype,\n"
            "              no extra tensors, finite non-zero scales, and every kintsugi-fixup\n"
            "              rule (a failure names the command that repairs it)\n"
            "  fidelity    with --original: each tensor re-quantized from the original and\n"
            "              compared bit for bit: identical (metal), identical (cpu) or differs\n"
            "  behaviour   --generate: greedy generation with /think and /no_think;\n"
            "              --kld TEXT (needs --original): KL divergence, top-1 agreement and\n"
            "              perplexity ratio against the original; --choices FILE (needs\n"
            "              --original): multiple-choice accuracy of both\n"
            "An unquantized DIR is checked as an original checkpoint (a source). A single\n"
            ".safetensors file is validated and its tensors listed. DIR and ORIG_DIR may be\n"
            "hub names ORG/NAME in the local Hugging Face cache.\n"
            "\n"
            "  --original DIR        the Hugging Face checkpoint the conversion came from\n"
            "  --generate            run the model (see above)\n"
            "  --max-tokens N        tokens generated per prompt (default 24)\n"
            "  --backend B           cpu (default), vulkan (the device KINTSUGI_VULKAN_DEVICE\n"
            "                        names) or metal (KINTSUGI_METAL_DEVICE) for the model\n"
            "                        under test in --generate, --kld and --choices; the\n"
            "                        original always runs on the CPU\n"
            "  --kld TEXT            documents (as kintsugi-run --perplexity: a text, or .jsonl)\n"
            "                        on which the conversion and the RTN reference conversion of\n"
            "                        the original (the one mlx_lm.convert makes at the same bits,\n"
            "                        derived in memory) are each compared with the original\n"
            "  --max-kld-ratio X     mean KL divergence, at most X times the reference's\n"
            "                        (default %.2f)\n"
            "  --max-disagreement-ratio X  share of tokens whose top-1 differs from the\n"
            "                        original's, at most X times the reference's (default %.2f)\n"
            "  --max-ppl-ratio X     perplexity at most X times the reference's (default %.2f)\n"
            "  --max-relative-kld X  the floor: mean KL at most X times the original's mean NLL\n"
            "                        per token on the text (default %.2f)\n"
            "  --max-kld X, --min-top1 X  absolute bounds on mean KL and top-1 agreement (none\n"
            "                        unless given)\n"
            "  --window N            tokens a window reads (default: max_position_embeddings)\n"
            "  --choices FILE        multiple-choice items (JSON Lines, as kintsugi-run --choices;\n"
            "                        needs --original): acc and acc_norm of the conversion, the\n"
            "                        reference and the original\n"
            "  --num-fewshot K       the first K items are examples, not scored (default 0)\n"
            "  --max-accuracy-drop P accuracy points the model may lose against the reference\n"
            "                        (default %.1f)\n"
            "  --card                write the quality table (benchmark, original, converted,\n"
            "                        degradation, RTN reference, verdict) of --kld and --choices\n"
            "                        into DIR's README.md: only its own section, atomically\n"
            "  --allow-differs       a tensor that differs from the re-quantized original passes\n"
            "                        when its error is within --max-rel-rmse (default: it fails)\n"
            "  --max-rel-rmse X      dequantized RMSE / RMS bound (default 0.15 at 4 bits, halved\n"
            "                        per extra bit)\n"
            "  --json                the report as JSON on stdout (docs/verify-report.schema.json)\n"
            "  --json-out FILE       the same into FILE (- for stdout)\n"
            "  --junit FILE          the report as JUnit XML (- for stdout)\n"
            "  --revision REV        with hub names: the snapshot of REV (default: main)\n"
            "  --threads N           threads for the fidelity checks (default: all cores)\n"
            "  -v, --verbose         list every tensor in the table\n"
            "  -q, --quiet           print nothing but errors\n"

            "  -h, --help            this text\n"
            "  --version             the version\n"
            "\n"
            "An option whose check does not run is refused: the bounds of --kld and\n"
            "--choices need them (and --window, --num-fewshot, --card), --allow-differs\n"
            "and --threads need --original,\n"
            "--max-rel-rmse needs --allow-differs, --max-tokens needs --generate.\n"
            "Report files may not be written inside DIR or ORIG_DIR.\n"
            "exit status: 0 all checks passed (warnings allowed), 1 a check failed, 2 usage or I/O error\n",
            PROG, PROG, DEFAULT_MAX_KLD_RATIO, DEFAULT_MAX_DISAGREEMENT_RATIO, DEFAULT_MAX_PPL_RATIO,
            DEFAULT_MAX_RELATIVE_KLD, DEFAULT_MAX_ACCURACY_DROP);
}

/* Print ROOT as JSON on stdout, and free it. */
static void put_json(cJSON *root) {
    char *text = kt_json_print_report(root, &KT_JSON_PYTHON_INDENT4);
    puts(text);
    free(text);
    cJSON_Delete(root);
}

static void shape_text(const st_tensor *t, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < t->ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, "%s%llu", d ? ", " : "", (unsigned long long)t->shape[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

static cJSON *tensor_json(const st_tensor *t, const char *file) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", t->name);
    cJSON_AddStringToObject(o, "dtype", kt_dtype_name(t->dtype));
    cJSON *shape = cJSON_AddArrayToObject(o, "shape");
    for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(shape, kt_json_new_int((long long)t->shape[d]));
    cJSON_AddItemToObject(o, "bytes", kt_json_new_int((long long)t->nbytes));
    cJSON_AddStringToObject(o, "file", file);
    return o;
}

static void print_table_row(const st_tensor *t) {
    char shape[256];
    shape_text(t, shape, sizeof shape);
    printf("%-60s %-8s %-24s %14llu\n", t->name, kt_dtype_name(t->dtype), shape,
           (unsigned long long)t->nbytes);
}

static int inventory(const kt_model_files *m, const char *path, int json, int quiet) {
    int status = m->n_unlisted ? 1 : 0;
    uint64_t total = 0;
    for (size_t i = 0; i < m->n_tensors; i++) total += kt_model_tensor(m, i)->nbytes;
    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "path", path);
        cJSON_AddBoolToObject(root, "ok", status == 0);
        cJSON *files = cJSON_AddArrayToObject(root, "files");
        for (size_t s = 0; s < m->n_shards; s++) cJSON_AddItemToArray(files, cJSON_CreateString(m->shard_names[s]));
        cJSON *unl = cJSON_AddArrayToObject(root, "unlisted_shards");
        for (size_t s = 0; s < m->n_unlisted; s++) cJSON_AddItemToArray(unl, cJSON_CreateString(m->unlisted[s]));
        cJSON_AddItemToObject(root, "total_bytes", kt_json_new_int((long long)total));
        cJSON *ts = cJSON_AddArrayToObject(root, "tensors");
        for (size_t i = 0; i < m->n_tensors; i++)
            cJSON_AddItemToArray(ts, tensor_json(kt_model_tensor(m, i), m->shard_names[m->refs[i].shard]));
        put_json(root);
    } else if (!quiet) {
        printf("%-60s %-8s %-24s %14s\n", "tensor", "dtype", "shape", "bytes");
        for (size_t i = 0; i < m->n_tensors; i++) print_table_row(kt_model_tensor(m, i));
        printf("%zu tensors in %zu file(s), %llu bytes\n", m->n_tensors, m->n_shards,
               (unsigned long long)total);
    }
    for (size_t s = 0; s < m->n_unlisted; s++)
        fprintf(stderr, "%s: %s/%s: shard not listed in model.safetensors.index.json "
                        "(mlx-lm loads it anyway; move it aside: kintsugi-fixup --fix-shards)\n",
                PROG, m->dir, m->unlisted[s]);
    return status;
}

typedef struct {
    vr_options v;
    const char *path, *json, *junit, *revision;
    int quiet, verbose, json_stdout;
    kt_mc_set choice_items;        /* --choices FILE, read once (v.choice_items points here) */
} options;

enum {
    O_ORIGINAL = 1, O_GENERATE, O_MAX_TOKENS, O_KLD, O_MAX_KLD, O_MIN_TOP1, O_MAX_PPL, O_ALLOW_DIFFERS, O_MAX_RMSE,
    O_JSON, O_JSON_OUT, O_JUNIT, O_THREADS, O_VERBOSE, O_QUIET, O_REVISION, O_CHOICES, O_MAX_ACC_DROP, O_BACKEND,
    O_MAX_KLD_RATIO, O_MAX_DIS_RATIO, O_MAX_REL_KLD, O_WINDOW, O_FEWSHOT, O_CARD
};
static const kt_opt OPTIONS[] = {
    {"--original", 0, 1, O_ORIGINAL}, {"--generate", 0, 0, O_GENERATE}, {"--max-tokens", 0, 1, O_MAX_TOKENS},
    {"--kld", 0, 1, O_KLD}, {"--max-kld", 0, 1, O_MAX_KLD}, {"--min-top1", 0, 1, O_MIN_TOP1},
    {"--max-ppl-ratio", 0, 1, O_MAX_PPL}, {"--allow-differs", 0, 0, O_ALLOW_DIFFERS},
    {"--max-rel-rmse", 0, 1, O_MAX_RMSE}, {"--json", 0, 0, O_JSON}, {"--json-out", 0, 1, O_JSON_OUT},
    {"--junit", 0, 1, O_JUNIT}, {"--threads", 0, 1, O_THREADS}, {"--verbose", 'v', 0, O_VERBOSE},
    {"--quiet", 'q', 0, O_QUIET}, {"--revision", 0, 1, O_REVISION}, {"--choices", 0, 1, O_CHOICES},
    {"--max-accuracy-drop", 0, 1, O_MAX_ACC_DROP}, {"--backend", 0, 1, O_BACKEND},
    {"--max-kld-ratio", 0, 1, O_MAX_KLD_RATIO}, {"--max-disagreement-ratio", 0, 1, O_MAX_DIS_RATIO},
    {"--max-relative-kld", 0, 1, O_MAX_REL_KLD}, {"--window", 0, 1, O_WINDOW}, {"--num-fewshot", 0, 1, O_FEWSHOT},
    {"--card", 0, 0, O_CARD}, {NULL, 0, 0, 0}};

static int usage_needs(const char *opt, const char *need) {
    fprintf(stderr, "%s: %s changes nothing without %s (see --help)\n", PROG, opt, need);
    return KT_EXIT_USAGE;
}

/* -1: go on; otherwise the exit code. */
static int parse_args(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    o->v.max_tokens = 24, o->v.max_rel_rmse = -1, o->v.max_kld = -1, o->v.min_top1 = -1;
    o->v.max_kld_ratio = DEFAULT_MAX_KLD_RATIO, o->v.max_disagreement_ratio = DEFAULT_MAX_DISAGREEMENT_RATIO;
    o->v.max_ppl_ratio = DEFAULT_MAX_PPL_RATIO, o->v.max_relative_kld = DEFAULT_MAX_RELATIVE_KLD;
    o->v.max_accuracy_drop = DEFAULT_MAX_ACCURACY_DROP;
    kt_args a;
    kt_args_init(&a, PROG, argc, argv, OPTIONS);
    int id, rc = 0;
    while (rc == 0 && (id = kt_args_next(&a)) != KT_ARG_END) {
        switch (id) {
        case KT_ARG_HELP: usage(stdout); return 0;
        case KT_ARG_VERSION: kt_print_version(PROG); return 0;
        case KT_ARG_ERROR: return KT_EXIT_USAGE;
        case O_ORIGINAL: o->v.original = a.value; break;
        case O_GENERATE: o->v.generate = 1; break;
        case O_BACKEND: {
            static const char *const backends[] = {"cpu", "vulkan", "metal", NULL};
            int which = 0;
            rc = kt_arg_choice(&a, backends, &which);
            o->v.gpu = which ? backends[which] : NULL;
            break;
        }
        case O_MAX_TOKENS: rc = kt_arg_int(&a, 1, 100000, &o->v.max_tokens); break;
        case O_KLD: o->v.kld_text = a.value; break;
        case O_MAX_KLD: rc = kt_arg_double(&a, 0, 0, INFINITY, 0, &o->v.max_kld); break;
        case O_MIN_TOP1: rc = kt_arg_double(&a, 0, 0, 1, 0, &o->v.min_top1); break;
        case O_MAX_PPL: rc = kt_arg_double(&a, 0, 1, INFINITY, 0, &o->v.max_ppl_ratio); break;
        case O_ALLOW_DIFFERS: o->v.allow_differs = 1; break;
        case O_MAX_RMSE: rc = kt_arg_double(&a, 0, 0, INFINITY, 0, &o->v.max_rel_rmse); break;
        case O_JSON: o->json_stdout = 1; break;
        case O_JSON_OUT: o->json = a.value; break;
        case O_JUNIT: o->junit = a.value; break;
        case O_THREADS: rc = kt_arg_int(&a, 1, 4096, &o->v.threads); break;
        case O_VERBOSE: o->verbose = 1; break;
        case O_QUIET: o->quiet = 1; break;
        case O_REVISION: o->revision = a.value; break;
        case O_CHOICES: o->v.choices = a.value; break;
        case O_MAX_ACC_DROP: rc = kt_arg_double(&a, 0, 0, 100, 0, &o->v.max_accuracy_drop); break;
        case O_MAX_KLD_RATIO: rc = kt_arg_double(&a, 0, 1, INFINITY, 0, &o->v.max_kld_ratio); break;
        case O_MAX_DIS_RATIO: rc = kt_arg_double(&a, 0, 1, INFINITY, 0, &o->v.max_disagreement_ratio); break;
        case O_MAX_REL_KLD: rc = kt_arg_double(&a, 0, 0, INFINITY, 0, &o->v.max_relative_kld); break;
        case O_WINDOW: rc = kt_arg_int(&a, 2, 1 << 24, &o->v.window); break;
        case O_FEWSHOT: rc = kt_arg_int(&a, 0, 64, &o->v.num_fewshot); break;
        case O_CARD: o->v.card = 1; break;
        case KT_ARG_POSITIONAL:
            if (o->path) rc = kt_usage_error(PROG, "more than one PATH given (%s)", a.value);
            else o->path = a.value;
            break;
        }
    }
    if (rc) return rc;
    if (o->quiet && o->verbose) return kt_usage_conflict(PROG, "--quiet", "--verbose");
    if (!o->path) { usage(stderr); return KT_EXIT_USAGE; }
    if (o->json_stdout && o->json) return kt_usage_conflict(PROG, "--json", "--json-out");
    if (o->json_stdout) o->json = "-";
    if (o->json && o->junit && !strcmp(o->json, "-") && !strcmp(o->junit, "-"))
        return kt_usage_error(PROG, "%s", "the JSON and the JUnit report cannot both go to stdout");
    if (o->v.kld_text && !o->v.original) return kt_usage_error(PROG, "--kld needs --original (%s)", o->v.kld_text);
    if (o->v.choices && !o->v.original) return kt_usage_error(PROG, "--choices needs --original (%s)", o->v.choices);
    /* an option whose check does not run would change nothing: refused, naming what it needs */
    static const struct {
        int id, needs;
    } NEEDS[] = {
        {O_MAX_KLD, O_KLD}, {O_MIN_TOP1, O_KLD}, {O_MAX_PPL, O_KLD}, {O_MAX_ACC_DROP, O_CHOICES},
        {O_MAX_KLD_RATIO, O_KLD}, {O_MAX_DIS_RATIO, O_KLD}, {O_MAX_REL_KLD, O_KLD}, {O_WINDOW, O_KLD},
        {O_FEWSHOT, O_CHOICES},
        {O_ALLOW_DIFFERS, O_ORIGINAL}, {O_MAX_RMSE, O_ALLOW_DIFFERS}, {O_THREADS, O_ORIGINAL}, {O_MAX_TOKENS, O_GENERATE},
    };
    for (size_t i = 0; i < sizeof NEEDS / sizeof *NEEDS; i++)
        if (kt_arg_given(&a, NEEDS[i].id) && !kt_arg_given(&a, NEEDS[i].needs))
            return usage_needs(kt_opt_name(OPTIONS, NEEDS[i].id), kt_opt_name(OPTIONS, NEEDS[i].needs));
    if (kt_arg_given(&a, O_BACKEND) && !o->v.generate && !o->v.kld_text && !o->v.choices)
        return usage_needs("--backend", "--generate, --kld or --choices");
    if (o->v.card && !o->v.kld_text && !o->v.choices) return usage_needs("--card", "--kld or --choices");
    o->v.threads = kt_cap_threads(o->v.threads);
    return -1;
}

static int run_inventory(const options *o) {
    kt_model_files m;
    const int json = o->json != NULL;
    int rc = kt_model_open_file(&m, o->path);
    if (rc) {
        kt_print_error(PROG);
        if (json) {
            cJSON *root = cJSON_CreateObject();
            cJSON_AddStringToObject(root, "path", o->path);
            cJSON_AddBoolToObject(root, "ok", 0);
            cJSON_AddStringToObject(root, "error", kt_errmsg());
            put_json(root);
        }
        return kt_errkind() == KT_ERR_IO ? 2 : 1;
    }
    int status = inventory(&m, o->path, json, o->quiet);
    kt_model_close(&m);
    return status;
}

/* The report files may not land in the directories being checked
 * (lib/output_path.h); they may replace an earlier report. */
static int check_report_paths(const options *o) {
    const char *inputs[] = {o->v.dir, o->v.original};
    const char *outs[] = {o->json, o->junit};
    for (int i = 0; i < 2; i++)
        if (outs[i] && strcmp(outs[i], "-") && kt_output_file_ok(outs[i], inputs, 2, 1, NULL)) return -1;
    return 0;
}

/* The reports, all or none: every file is written in full beside its
 * final name and stdout flushed before any file replaces its name. When one
 * cannot be written, none is put in place and an earlier report at those
 * paths is removed: a report left saying "pass" from another run, next to a
 * run that could not say what it found, would be believed. */
static int write_reports(const options *o, const vr_report *r) {
    const char *paths[2] = {o->json, o->junit};
    char *texts[2] = {o->json ? vr_render_json(r) : NULL, o->junit ? vr_render_junit(r) : NULL};
    kt_atomic files[2];
    int staged[2] = {0, 0}, rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++) {
        if (!paths[i]) continue;
        if (!strcmp(paths[i], "-")) {
            fputs(texts[i], stdout);
            continue;
        }
        rc = kt_atomic_open(&files[i], paths[i]);
        if (rc == 0) {
            staged[i] = 1;
            rc = kt_atomic_write(&files[i], texts[i], strlen(texts[i]));
            if (rc == 0) rc = kt_atomic_prepare(&files[i]);
        }
    }
    if (rc == 0) rc = kt_stdout_check();
    for (int i = 0; i < 2; i++) {
        if (staged[i] && rc == 0) rc = kt_atomic_commit(&files[i]);
        else if (staged[i]) kt_atomic_abort(&files[i]);
    }
    if (rc)
        for (int i = 0; i < 2; i++)
            if (paths[i] && strcmp(paths[i], "-")) unlink(paths[i]);
    free(texts[0]);
    free(texts[1]);
    return rc;
}

/* How the card's figures were computed, in its words. */
static const char *activations_path(const vr_options *v) {
    if (v->gpu && !strcmp(v->gpu, "vulkan")) return "float32 activations on the Vulkan backend (the original on the CPU)";
    if (v->gpu) return "float32 activations on the Metal backend (the original on the CPU)";
    return "float32 activations on the CPU (kintsugi-run's exact path, the one equal to mlx-lm's in float32)";
}

static int verify(options *o) {
    struct stat st;
    if (stat(o->path, &st) == 0 && !S_ISDIR(st.st_mode)) {
        if (o->v.original || o->v.generate || o->v.kld_text || o->v.choices || o->junit || (o->json && strcmp(o->json, "-")))
            return kt_usage_error(PROG, "%s is a single file: only --json applies to it", o->path);
        return run_inventory(o);
    }
    int bad = kt_check_dir(o->path);
    if (!bad && o->v.original && kt_check_dir(o->v.original)) bad = kt_fail_context("--original");
    if (bad) {
        kt_print_error(PROG);
        return KT_EXIT_USAGE;
    }
    o->v.dir = o->path;
    if (o->v.choices) { /* a bad items file is a usage error, found before any check runs */
        if (kt_mc_read(o->v.choices, &o->choice_items)) {
            kt_print_error(PROG);
            return KT_EXIT_USAGE;
        }
        o->v.choice_items = &o->choice_items;
    }
    if (check_report_paths(o)) {
        kt_print_error(PROG);
        return KT_EXIT_USAGE;
    }
#ifdef _OPENMP
    if (o->v.threads) omp_set_num_threads(o->v.threads);
#endif
    o->v.progress = !o->quiet && isatty(2);
    vr_report r = {.dir = o->v.dir, .original = o->v.original};
    int io = vr_check_structure(&r, &o->v);
    if (!io && r.original_checkpoint && (o->v.original || o->v.kld_text)) {
        vr_free(&r);
        return kt_usage_error(PROG, "%s is an original (unquantized) checkpoint: --original and --kld compare a "
                              "conversion with it", o->path);
    }
    if (!io && o->v.original) io = vr_check_fidelity(&r, &o->v);
    if (!io && (o->v.generate || o->v.kld_text || o->v.choices)) io = vr_check_behaviour(&r, &o->v);
    if (!io && o->v.card && !r.quality) /* the checks that measure failed: they say why */
        fprintf(stderr, "%s: --card: nothing was measured, %s/README.md is left as it is\n", PROG, o->v.dir);
    else if (!io && o->v.card && vr_write_quality_card(&r, o->v.dir, activations_path(&o->v))) {
        kt_print_error(PROG);
        io = -1;
    }
    const int to_stdout = (o->json && !strcmp(o->json, "-")) || (o->junit && !strcmp(o->junit, "-"));
    if (!o->quiet && !to_stdout) vr_print_table(&r, kt_color_ok(1), o->verbose);
    if (write_reports(o, &r)) {
        kt_print_error(PROG);
        io = -1;
    }
    for (size_t i = 0; i < r.n && o->quiet; i++)
        if (r.checks[i].status == VR_FAIL)
            fprintf(stderr, "%s: %s: %s%s%s\n", PROG, r.checks[i].name, r.checks[i].message,
                    r.checks[i].fix ? "; fix: " : "", r.checks[i].fix ? r.checks[i].fix : "");
    const int failed = vr_count(&r, VR_FAIL) > 0;
    vr_free(&r);
    return io ? KT_EXIT_USAGE : failed ? KT_EXIT_FAILED : KT_EXIT_OK;
}

int main(int argc, char **argv) {
    kt_check_stdout_at_exit(PROG);
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    char *hub_dir = NULL, *hub_orig = NULL;
    o.path = kt_resolve_model_arg(o.path, o.revision, &hub_dir);
    if (o.path && o.v.original) {
        o.v.original = kt_resolve_model_arg(o.v.original, o.revision, &hub_orig);
        if (!o.v.original) o.path = NULL;
    }
    if (!o.path) {
        kt_print_error(PROG);
        free(hub_dir);
        return KT_EXIT_FAILED;
    }
    rc = verify(&o);
    kt_mc_free(&o.choice_items);
    free(hub_dir);
    free(hub_orig);
    return rc;
}
