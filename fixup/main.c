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
    const char *dir, *original, *lmstudio;
    int dry_run, check, json, fix_shards, lmstudio_mode;
} options;

static void usage(FILE *out) {
    fprintf(out,
            "usage: %s DIR [--original ORIG_DIR] [--dry-run] [--check] [--fix-shards] [--json]\n"
            "       %s --lmstudio [PATH] [--dry-run] [--check] [--json]\n"
            "\n"
            "Repair a broken MLX conversion of a Nemotron-H model in place. Every repair is a\n"
            "rule with an id (docs/FIXUP.md); the first original of every file touched is kept\n"
            "as NAME.orig, and writes are atomic. A second run changes nothing.\n"
            "\n"
            "  --original DIR  the Hugging Face source, to restore tokenizer files from\n"
            "  --dry-run       show what would change (a unified diff per file); change nothing\n"
            "  --check         change nothing; exit 1 when any repair is needed (for CI)\n"
            "  --fix-shards    move model*.safetensors files the index does not list to\n"
            "                  NAME.unlisted (mlx-lm would load them)\n"
            "  --lmstudio [PATH]  patch LM Studio's bundled transformers so that Nemotron-H\n"
            "                  patterns with '-' (MLP layers) load (KeyError: '-'); PATH defaults\n"
            "                  to ~/.cache/lm-studio/extensions/backends\n"
            "  --json          a JSON report on stdout\n"
            "  -h, --help      this text\n"
            "\n"
            "exit status: 0 nothing (left) to repair, 1 repairs needed or not possible, 2 usage or I/O error\n",
            PROG, PROG);
}

static int parse_args(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--original")) {
            if (i + 1 >= argc) return kt_usage_error(PROG, "%s needs a directory", a);
            o->original = argv[++i];
        } else if (!strcmp(a, "--dry-run")) o->dry_run = 1;
        else if (!strcmp(a, "--check")) o->check = 1;
        else if (!strcmp(a, "--json")) o->json = 1;
        else if (!strcmp(a, "--fix-shards")) o->fix_shards = 1;
        else if (!strcmp(a, "--lmstudio")) {
            o->lmstudio_mode = 1;
            if (i + 1 < argc && argv[i + 1][0] != '-') o->lmstudio = argv[++i];
        } else if (a[0] == '-' && a[1]) return kt_usage_error(PROG, "unknown option %s", a);
        else if (!o->dir) o->dir = a;
        else return kt_usage_error(PROG, "unexpected argument '%s'", a);
    }
    if (!o->lmstudio_mode && !o->dir) return kt_usage_error(PROG, "%s", "DIR is required");
    if (o->lmstudio_mode && o->dir) return kt_usage_error(PROG, "%s", "--lmstudio takes its own PATH, not DIR");
    if (o->original && !kt_is_dir(o->original)) return kt_usage_error(PROG, "--original: %s is not a directory", o->original);
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
    char *text = kt_json_print(root, &KT_JSON_PYTHON_INDENT4);
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
    int quantized;
    if (!cfg || kt_config_read(&c, cfg) || kt_config_check_quantization(cfg, &quantized))
        fx_find(s, "config-values", "config.json", 0, "%s%s", kt_errmsg(),
                op ? " (after the repairs above; no rule repairs this)" : " (no rule repairs this)");
    else kt_config_free(&c);
    cJSON_Delete(cfg);
}

/* Errors are returned as these, so that main prints the message only then. */
enum { ERR_FORMAT = 101, ERR_IO = 102 };

static int run_dir(const options *o) {
    if (!kt_is_dir(o->dir)) return kt_fail_io("%s: not a directory", o->dir), ERR_IO;
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
    } else {
        if (s.n_findings == 0) printf("%s: nothing to repair\n", o->dir);
        for (size_t i = 0; i < s.n_findings; i++)
            printf("%s [%s] %s: %s\n", !s.findings[i].fixable ? "cannot fix" : applied ? "repaired" : "needs repair",
                   s.findings[i].rule, s.findings[i].file, s.findings[i].reason);
        if (o->dry_run) print_diffs(&s);
        if (applied) printf("%s: %zu file%s changed; originals kept as NAME.orig\n", o->dir, s.n_ops, s.n_ops == 1 ? "" : "s");
    }
    int status = o->check ? (s.n_findings ? 1 : 0) : unfixable ? 1 : 0;
    fx_session_free(&s);
    return status;
}

int main(int argc, char **argv) {
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) return rc;
    rc = o.lmstudio_mode ? fx_lmstudio(o.lmstudio, o.dry_run, o.check, o.json) : run_dir(&o);
    if (rc == ERR_FORMAT || rc == ERR_IO || rc < 0) {
        kt_print_error(PROG);
        return rc == ERR_FORMAT ? 1 : 2;
    }
    return rc;
}
