/* kintsugi-fixup - repair a broken MLX conversion of Nemotron-H in place,
 * rule by rule, keeping NAME.orig of every file it touches; or, with
 * --lmstudio, patch LM Studio's bundled transformers for KeyError: '-'.
 *
 * Exit codes: 0 nothing (left) to repair; 1 repairs needed (--check) or some
 * could not be made, or DIR is not an MLX Nemotron-H conversion; 2 usage or
 * I/O error.
 */
#include "backup.h"
#include "diff.h"
#include "cli.h"
#include "error.h"
#include "file.h"
#include "hub.h"
#include "json.h"
#include "lmstudio.h"
#include "model_dir.h"
#include "nemotron_config.h"
#include "repair.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *PROG = "kintsugi-fixup";

typedef struct {
    const char *dir, *original, *lmstudio, *revision;
    int dry_run, check, json, fix_shards, lmstudio_mode, quiet, verbose;
} options;

static void usage(FILE *out) {
    fprintf(out,
            "usage: %s DIR [--original ORIG_DIR] [--dry-run] [--check] [--fix-shards] [--json]\n"
            "       %s --lmstudio [PATH] [--dry-run] [--check] [--json]\n"
            "\n"
            "Repair a broken MLX conversion of a Nemotron-H model in place. Every repair is a\n"
            "rule with an id (docs/FIXUP.md); the first original of every file touched is kept\n"
            "as NAME.orig, and writes are atomic. A second run changes nothing. Missing data\n"
            "(a shard the index lists) is reported, never repaired away. DIR may be a hub\n"
            "name ORG/NAME in the local Hugging Face cache.\n"
            "\n"
            "  --original DIR    the Hugging Face source, to restore tokenizer files from\n"
            "  -n, --dry-run     show what would change (a unified diff per file); change nothing\n"
            "  --check           change nothing; exit 1 when any repair would be needed (for CI)\n"
            "  --fix-shards      move model*.safetensors files the index does not list to\n"
            "                    NAME.unlisted (mlx-lm would load them); nothing is deleted\n"
            "  --lmstudio [PATH] patch LM Studio's bundled transformers so that Nemotron-H\n"
            "                    patterns with '-' (MLP layers) load (KeyError: '-'); PATH\n"
            "                    defaults to ~/.cache/lm-studio/extensions/backends\n"
            "  --revision REV    with a hub name: the snapshot of REV (default: main)\n"
            "  --json            a JSON report on stdout\n"
            "  -q, --quiet       print nothing but errors\n"
            "  -v, --verbose     also list the rules that found nothing\n"
            "  -h, --help        this text\n"
            "  --version         the version\n"
            "\n"
            "exit status: 0 nothing (left) to repair, 1 repairs needed or not possible, 2 usage or I/O error\n",
            PROG, PROG);
}

enum { O_ORIGINAL = 1, O_DRY_RUN, O_CHECK, O_JSON, O_FIX_SHARDS, O_LMSTUDIO, O_QUIET, O_VERBOSE, O_REVISION };
static const kt_opt OPTIONS[] = {
    {"--original", 0, 1, O_ORIGINAL}, {"--dry-run", 'n', 0, O_DRY_RUN}, {"--check", 0, 0, O_CHECK},
    {"--json", 0, 0, O_JSON}, {"--fix-shards", 0, 0, O_FIX_SHARDS}, {"--lmstudio", 0, 0, O_LMSTUDIO},
    {"--quiet", 'q', 0, O_QUIET}, {"--verbose", 'v', 0, O_VERBOSE}, {"--revision", 0, 1, O_REVISION},
    {NULL, 0, 0, 0}};

static int parse_args(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    kt_args a;
    kt_args_init(&a, PROG, argc, argv, OPTIONS);
    int id, rc = 0;
    while (rc == 0 && (id = kt_args_next(&a)) != KT_ARG_END) {
        switch (id) {
        case KT_ARG_HELP: usage(stdout); return 0;
        case KT_ARG_VERSION: kt_print_version(PROG); return 0;
        case KT_ARG_ERROR: return KT_EXIT_USAGE;
        case O_ORIGINAL: o->original = a.value; break;
        case O_DRY_RUN: o->dry_run = 1; break;
        case O_CHECK: o->check = 1; break;
        case O_JSON: o->json = 1; break;
        case O_FIX_SHARDS: o->fix_shards = 1; break;
        case O_LMSTUDIO: o->lmstudio_mode = 1; break;
        case O_QUIET: o->quiet = 1; break;
        case O_VERBOSE: o->verbose = 1; break;
        case O_REVISION: o->revision = a.value; break;
        case KT_ARG_POSITIONAL:
            if (o->dir) rc = kt_usage_error(PROG, "unexpected argument '%s'", a.value);
            else o->dir = a.value;
            break;
        }
    }
    if (rc) return rc;
    if (o->quiet && o->verbose) return kt_usage_conflict(PROG, "--quiet", "--verbose");
    /* --lmstudio takes the positional as its PATH */
    if (o->lmstudio_mode) o->lmstudio = o->dir, o->dir = NULL;
    if (!o->lmstudio_mode && !o->dir) return kt_usage_error(PROG, "%s", "DIR is required");
    if (o->lmstudio_mode && (o->original || o->fix_shards))
        return kt_usage_conflict(PROG, "--lmstudio", o->original ? "--original" : "--fix-shards");
    if (o->check && o->dry_run) return kt_usage_conflict(PROG, "--check", "--dry-run");
    return -1;
}

/* The directory must be an MLX conversion of nemotron_h: refuse anything else. */
static int check_is_mlx_nemotron(const char *dir) {
    char *path = kt_path_join(dir, "config.json");
    cJSON *cfg = kt_is_file(path) ? kt_json_load_file(path, KT_JSON_DUP_LAST_WINS) : NULL;
    free(path);
    if (!cfg) return kt_fail("%s: no readable config.json; not a model directory", dir);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(cfg, "model_type");
    int nemotron = cJSON_IsString(type) && !strcmp(type->valuestring, "nemotron_h");
    int quantized = cJSON_GetObjectItemCaseSensitive(cfg, "quantization") ||
                    cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config");
    cJSON_Delete(cfg);
    if (!nemotron) return kt_fail("%s: model_type is not nemotron_h; kintsugi-fixup only repairs Nemotron-H conversions", dir);
    if (!quantized)
        return kt_fail("%s: no quantization in config.json; this is not an MLX conversion (convert it with "
                       "kintsugi-convert instead)", dir);
    return 0;
}

static void print_diffs(const fx_session *s) {
    for (size_t i = 0; i < s->n_ops; i++) {
        const fx_op *op = &s->ops[i];
        if (op->kind == FX_WRITE) {
            strbuf a = {0}, b = {0};
            sb_printf(&a, "%s/%s", s->dir, op->file);
            sb_printf(&b, "%s/%s (repaired)", s->dir, op->file);
            char *d = fx_unified_diff(sb_cstr(&a), op->old_text ? op->old_text : "", op->old_len, sb_cstr(&b),
                                      op->new_text, op->new_len);
            fputs(d, stdout);
            free(d);
            sb_free(&a);
            sb_free(&b);
        } else if (op->kind == FX_SHARD_SHAPES) {
            printf("--- %s/%s (header)\n+++ %s/%s (header, repaired)\n", s->dir, op->file, s->dir, op->file);
            for (size_t t = 0; t < op->n_tensors; t++) printf("-%s: [C, 1, K]\n+%s: [C, K, 1]\n", op->tensors[t], op->tensors[t]);
        } else {
            printf("rename %s/%s -> %s/%s.unlisted\n", s->dir, op->file, s->dir, op->file);
        }
    }
}

static void report_json(const options *o, const fx_session *s, int applied) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "directory", o->dir);
    cJSON_AddStringToObject(root, "mode", o->check ? "check" : o->dry_run ? "dry-run" : "apply");
    cJSON *arr = cJSON_AddArrayToObject(root, "findings");
    for (size_t i = 0; i < s->n_findings; i++) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "rule", s->findings[i].rule);
        cJSON_AddStringToObject(f, "file", s->findings[i].file);
        cJSON_AddStringToObject(f, "reason", s->findings[i].reason);
        cJSON_AddBoolToObject(f, "fixable", s->findings[i].fixable);
        cJSON_AddBoolToObject(f, "applied", applied && s->findings[i].fixable);
        cJSON_AddItemToArray(arr, f);
    }
    cJSON *files = cJSON_AddArrayToObject(root, "files");
    for (size_t i = 0; i < s->n_ops; i++) cJSON_AddItemToArray(files, cJSON_CreateString(s->ops[i].file));
    cJSON_AddItemToObject(root, "warnings", kt_json_new_int(s->warnings));
    char *text = kt_json_print_report(root, &KT_JSON_PYTHON_INDENT4);
    printf("%s\n", text);
    free(text);
    cJSON_Delete(root);
}

/* After the repairs config.json must be one that every tool (and mlx-lm)
 * can build the model from (lib/nemotron_config.h). What no rule repairs is
 * reported as a finding that cannot be fixed, so the exit status says the
 * model is still broken. */
static void check_repaired_config(fx_session *s) {
    const fx_op *op = NULL;
    for (size_t i = 0; i < s->n_ops; i++)
        if (s->ops[i].kind == FX_WRITE && !strcmp(s->ops[i].file, "config.json")) op = &s->ops[i];
    cJSON *cfg;
    if (op) {
        cfg = kt_json_parse(op->new_text, op->new_len, KT_JSON_DUP_LAST_WINS, "config.json");
    } else {
        char *path = kt_path_join(s->dir, "config.json");
        cfg = kt_json_load_file(path, KT_JSON_DUP_LAST_WINS);
        free(path);
    }
    kt_config c;
    int bad = !cfg || kt_config_read(&c, cfg);
    if (!bad) kt_config_free(&c);
    if (bad)
        fx_find(s, "config-values", "config.json", 0, "%s%s", kt_errmsg(),
                op ? " (after the repairs above; no rule repairs this)" : " (no rule repairs this)");
    cJSON_Delete(cfg);
}

static size_t fixable_count(const fx_session *s) {
    size_t n = 0;
    for (size_t i = 0; i < s->n_findings; i++) n += s->findings[i].fixable != 0;
    return n;
}

/* --verbose: the rules that found nothing, with what each checks. */
static void print_clean_rules(const fx_session *s) {
    for (const fx_rule_info *rule = fx_rules; rule->id; rule++) {
        int hit = 0;
        for (size_t i = 0; i < s->n_findings && !hit; i++) hit = !strcmp(s->findings[i].rule, rule->id);
        if (!hit) printf("ok [%s] %s\n", rule->id, rule->checks);
    }
}

/* Errors are returned as these, so that main prints the message only then. */
enum { ERR_FORMAT = 101, ERR_IO = 102 };

static int run_dir(const options *o) {
    if (kt_check_dir(o->dir) || (o->original && kt_check_dir(o->original))) return ERR_IO;
    if (check_is_mlx_nemotron(o->dir)) return kt_errkind() == KT_ERR_IO ? ERR_IO : ERR_FORMAT;
    kt_model_files m;
    if (fx_open_lenient(&m, o->dir)) return kt_errkind() == KT_ERR_IO ? ERR_IO : ERR_FORMAT;
    fx_session s = {.dir = o->dir, .original = o->original, .fix_shards = o->fix_shards};
    int rc = fx_rules_config(&s, &m) || fx_rules_tokenizer(&s) || fx_rules_tensors(&s, &m);
    kt_model_close(&m); /* unmap before rewriting any shard */
    if (rc) {
        fx_session_free(&s);
        return kt_errkind() == KT_ERR_IO ? ERR_IO : ERR_FORMAT;
    }
    check_repaired_config(&s);
    int unfixable = 0, applied = 0;
    for (size_t i = 0; i < s.n_findings; i++) unfixable += !s.findings[i].fixable;
    if (!o->check && !o->dry_run && s.n_ops) {
        if (fx_apply(&s)) {
            fx_session_free(&s);
            return kt_errkind() == KT_ERR_IO ? ERR_IO : ERR_FORMAT;
        }
        applied = 1;
    }
    if (o->json) {
        report_json(o, &s, applied);
    } else if (!o->quiet) {
        if (s.n_findings == 0) printf("%s: nothing to repair\n", o->dir);
        for (size_t i = 0; i < s.n_findings; i++) {
            char *reason = applied || !s.findings[i].fixable ? kt_xstrdup(s.findings[i].reason)
                                                             : fx_conditional(s.findings[i].reason);
            printf("%s [%s] %s: %s\n", !s.findings[i].fixable ? "cannot fix" : applied ? "repaired" : "would repair",
                   s.findings[i].rule, s.findings[i].file, reason);
            free(reason);
        }
        if (o->verbose) print_clean_rules(&s);
        if (o->dry_run) print_diffs(&s);
        if (applied) printf("%s: %zu file%s changed; originals kept as NAME.orig\n", o->dir, s.n_ops, s.n_ops == 1 ? "" : "s");
        else if (s.n_ops && fixable_count(&s))
            printf("to repair: kintsugi-fixup %s%s\n", o->dir, s.fix_shards ? " --fix-shards" : "");
    }
    int status = o->check ? (s.n_findings ? 1 : 0) : unfixable ? 1 : 0;
    fx_session_free(&s);
    return status;
}

/* The card's base_model (README.md's front matter), when it names a model
 * that the local Hugging Face cache holds: the original that the seed's fix
 * restores tokenizer files from. NULL otherwise (malloc'd path). Only a hub
 * name is taken, never a relative path, which would depend on where the
 * command runs. Named on stderr unless QUIET. */
static char *original_from_card(const char *dir, int quiet) {
    char *path = kt_path_join(dir, "README.md"), *text = NULL, *found = NULL;
    size_t len = 0;
    int got = kt_read_file(path, &text, &len);
    free(path);
    if (got != 1 || strncmp(text, "---\n", 4)) {
        free(text);
        return NULL;
    }
    for (char *line = text + 4, *end; *line && strncmp(line, "---", 3); line = end + 1) {
        if (!(end = strchr(line, '\n'))) break;
        *end = 0;
        if (strncmp(line, "base_model:", 11)) continue;
        char *v = line + 11;
        while (*v == ' ' || *v == '"' || *v == '\'') v++;
        size_t n = strlen(v);
        while (n && (v[n - 1] == ' ' || v[n - 1] == '"' || v[n - 1] == '\'' || v[n - 1] == '\r')) v[--n] = 0;
        if (kt_hub_is_name(v)) found = kt_hub_resolve(v, NULL);
        if (found && !quiet) fprintf(stderr, "%s: the original: %s (the card's base_model), from the local Hugging Face "
                                               "cache\n", PROG, v);
        break;
    }
    free(text);
    return found;
}

int main(int argc, char **argv) {
    kt_check_stdout_at_exit(PROG);
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    char *hub_dir = NULL, *hub_orig = NULL;
    if (o.dir && !(o.dir = kt_resolve_model_arg(o.dir, o.revision, &hub_dir))) {
        kt_print_error(PROG);
        return KT_EXIT_FAILED;
    }
    /* the original: --original (a path or a hub name in the local cache), else the card's base_model */
    if (o.original && !(o.original = kt_resolve_model_arg(o.original, o.revision, &hub_orig))) {
        kt_print_error(PROG);
        free(hub_dir);
        return KT_EXIT_FAILED;
    }
    if (!o.original && !o.lmstudio_mode && o.dir) o.original = hub_orig = original_from_card(o.dir, o.quiet || o.json);
    rc = o.lmstudio_mode ? fx_lmstudio(o.lmstudio, o.dry_run, o.check, o.json) : run_dir(&o);
    free(hub_dir);
    free(hub_orig);
    if (rc == ERR_FORMAT || rc == ERR_IO || rc < 0) {
        kt_print_error(PROG);
        return rc == ERR_FORMAT ? 1 : 2;
    }
    return rc;
}
