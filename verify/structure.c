/* structure.c - the checks that need nothing but the converted directory.
 *
 *   config            config.json as lib/nemotron_config.h validates it, quantized
 *   tokenizer         tokenizer.json loads, tokenizer_config.json is an object
 *   shards            every shard opens and its header is valid
 *   fixup:RULE        each kintsugi-fixup rule (fixup/repair.h) finds nothing
 *   tensors-expected  the runtime's loader finds every tensor the layer pattern
 *                     needs, with the shapes and dtypes the quantization implies
 *                     (the same names and shapes mlx-lm's strict load expects)
 *   tensors-extra     no tensor the loader did not ask for
 *   scales-biases     scales finite and non-zero (MLX never writes 0: the step
 *                     has a floor), biases finite
 *   values-finite     every other float tensor finite
 */
#include "checks.h"
#include "error.h"
#include "model.h"
#include "repair.h"
#include "strbuf.h"
#include "tokenizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *G = "structure";

cJSON *vr_load_config(const char *dir, int *exists) {
    char *path = kt_path_join(dir, "config.json");
    *exists = kt_is_file(path);
    cJSON *cfg = *exists ? kt_json_load_file(path, KT_JSON_DUP_LAST_WINS) : NULL;
    free(path);
    return cfg;
}

const cJSON *vr_quantization(const cJSON *cfg) {
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(cfg, "quantization");
    return q ? q : cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config");
}

/* config.json as mlx-lm needs it, validated by the one reader every tool
 * shares (lib/nemotron_config.h): the same messages as kintsugi-run's. */
/* The tokenizer files mlx_lm.load reads through transformers: tokenizer.json
 * must load (else "Couldn't instantiate the backend tokenizer"), and
 * tokenizer_config.json, when present, must be a JSON object. Stricter than
 * mlx-lm: no token id may lie past the embedding (the model could be fed an
 * id it has no row for). */
static int check_tokenizer(vr_report *r, const char *dir, const kt_config *c) {
    kt_tokenizer *t = kt_tokenizer_load_dir(dir, c->vocab);
    if (!t) {
        vr_add(r, G, "tokenizer", VR_FAIL, NULL, NULL, "%s", kt_errmsg());
        return 0;
    }
    vr_add(r, G, "tokenizer", VR_PASS, NULL, NULL, "tokenizer.json loads: %zu tokens", kt_tokenizer_vocab_size(t));
    kt_tokenizer_free(t);
    return 0;
}

static int check_config(vr_report *r, const char *dir) {
    int exists;
    cJSON *cfg = vr_load_config(dir, &exists);
    if (!cfg) {
        if (exists) vr_add(r, G, "config", VR_FAIL, NULL, NULL, "%s", kt_errmsg());
        else vr_add(r, G, "config", VR_FAIL, NULL, NULL, "%s/config.json: no such file; not a model directory", dir);
        return -2;
    }
    kt_config c;
    int rc = 0;
    if (kt_config_read(&c, cfg)) {
        vr_add(r, G, "config", VR_FAIL, NULL, NULL, "%s", kt_errmsg());
        rc = -1;
    } else if (!c.quantized) {
        /* mlx-lm loads an original checkpoint too (its sanitize moves the
         * conv1d axis and drops mtp.*): it is checked as such */
        vr_add(r, G, "config", VR_PASS, NULL, NULL, "nemotron_h, %d layers (%s), unquantized: an original "
               "checkpoint, checked as a source (kintsugi-convert makes the MLX conversion)", c.n_layers, c.pattern);
        r->original_checkpoint = 1;
    } else {
        kt_quant_entry q = kt_config_quant_of(cfg, "");
        cJSON *fig = cJSON_CreateObject();
        cJSON_AddItemToObject(fig, "bits", kt_json_new_int(q.bits));
        cJSON_AddItemToObject(fig, "group_size", kt_json_new_int(q.group_size));
        /* per-layer entries (a recipe): how many modules at each width */
        int per_bits[9] = {0}, n_entries = 0;
        const cJSON *qc = vr_quantization(cfg);
        for (const cJSON *e = qc ? qc->child : NULL; e; e = e->next)
            if (cJSON_IsObject(e)) {
                kt_quant_entry pe = kt_config_quant_of(cfg, e->string);
                if (pe.bits >= 2 && pe.bits <= 8) per_bits[pe.bits]++;
                n_entries++;
            }
        char layers[160] = "";
        if (n_entries) {
            size_t len = (size_t)snprintf(layers, sizeof layers, "; %d per-layer entries:", n_entries);
            for (int b = 2; b <= 8 && len < sizeof layers; b++)
                if (per_bits[b]) len += (size_t)snprintf(layers + len, sizeof layers - len, " %d at %d bits", per_bits[b], b);
            cJSON_AddItemToObject(fig, "per_layer_entries", kt_json_new_int(n_entries));
        }
        vr_add(r, G, "config", VR_PASS, NULL, fig, "nemotron_h, %d layers (%s), %d-bit, group size %d%s", c.n_layers,
               c.pattern, q.bits, q.group_size, layers);
    }
    if (rc == 0) rc = check_tokenizer(r, dir, &c);
    kt_config_free(&c);
    cJSON_Delete(cfg);
    return rc;
}

/* One check per fixup rule: pass when the rule finds nothing. */
static void check_rules(vr_report *r, const char *dir, const kt_model_files *m) {
    fx_session s = {.dir = dir, .original = r->original}; /* with --original: its tokenizer files too */
    int rc = fx_rules_config(&s, m) || fx_rules_tokenizer(&s) || (m && fx_rules_tensors(&s, m));
    if (rc) vr_add(r, G, "fixup-rules", VR_FAIL, NULL, NULL, "%s", kt_errmsg());
    for (const fx_rule_info *rule = fx_rules; rule->id; rule++) {
        char name[80], fix[600];
        snprintf(name, sizeof name, "fixup:%s", rule->id);
        if (!m && !strncmp(rule->id, "tensors-", 8)) {
            vr_add(r, G, name, VR_SKIP, NULL, NULL, "shards unreadable");
            continue;
        }
        size_t hits = 0;
        const fx_finding *first = NULL;
        for (size_t i = 0; i < s.n_findings; i++)
            if (!strcmp(s.findings[i].rule, rule->id)) first = first ? first : &s.findings[i], hits++;
        /* a command to run as it is */
        int plain = 1;
        for (const char *c = dir; *c; c++) plain &= !!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./+:@", *c);
        snprintf(fix, sizeof fix, "kintsugi-fixup %s%s%s%s%s%s", plain ? "" : "'", dir, plain ? "" : "'",
                 !strcmp(rule->id, "shards-unlisted") ? " --fix-shards" : "",
                 r->original && !strncmp(rule->id, "tokenizer-", 10) ? " --original " : "",
                 r->original && !strncmp(rule->id, "tokenizer-", 10) ? r->original : "");
        /* verify changes nothing: the finding says what is wrong and what the fix would do */
        char *would = hits ? fx_conditional(first->reason) : NULL;
        if (!hits) vr_add(r, G, name, VR_PASS, NULL, NULL, "%s", rule->checks);
        else if (hits == 1) vr_add(r, G, name, VR_FAIL, fix, NULL, "%s: %s", first->file, would);
        else vr_add(r, G, name, VR_FAIL, fix, NULL, "%s: %s (and %zu more)", first->file, would, hits - 1);
        free(would);
    }
    fx_session_free(&s);
}

static void check_tensors(vr_report *r, const char *dir) {
    kt_model m;
    if (kt_model_load_lenient(&m, dir)) {
        vr_add(r, G, "tensors-expected", VR_FAIL, "reconvert with kintsugi-convert", NULL, "%s", kt_errmsg());
        vr_add(r, G, "tensors-extra", VR_SKIP, NULL, NULL, "the model did not load");
        return;
    }
    vr_add(r, G, "tensors-expected", VR_PASS, NULL, NULL, "%d layers (%s): every tensor present with the expected shape",
           m.cfg.n_layers, m.cfg.pattern);
    char *list;
    size_t extra = kt_model_unused(&m, r->original_checkpoint ? "mtp." : NULL, &list);
    if (!extra) vr_add(r, G, "tensors-extra", VR_PASS, NULL, NULL, "no tensor beyond the %zu the model uses", m.files.n_tensors);
    else vr_add(r, G, "tensors-extra", VR_FAIL, "remove them or reconvert with kintsugi-convert", NULL,
                "%zu tensor%s no layer uses (mlx-lm's strict load rejects them): %s", extra, extra == 1 ? "" : "s",
                list);
    free(list);
    kt_model_free(&m);
}

/* The first bad value of a scales/biases tensor, or -1. */
static long long first_bad(const st_tensor *t, int scales, long long *count) {
    float buf[1024];
    const size_t es = kt_dtype_bits(t->dtype) / 8;
    long long first = -1;
    *count = 0;
    for (uint64_t i = 0; i < t->nelem; i += 1024) {
        size_t n = t->nelem - i < 1024 ? (size_t)(t->nelem - i) : 1024;
        kt_row_to_f32(t->dtype, t->data + i * es, buf, n);
        for (size_t j = 0; j < n; j++)
            if (!isfinite(buf[j]) || (scales && buf[j] == 0.0f)) {
                if (first < 0) first = (long long)(i + j);
                ++*count;
            }
    }
    return first;
}

static void check_scales(vr_report *r, const kt_model_files *m) {
    strbuf sb = {0};
    size_t bad = 0, seen = 0;
    cJSON *fig = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(fig, "bad_tensors");
    for (size_t i = 0; i < m->n_tensors; i++) {
        const st_tensor *t = kt_model_tensor(m, i);
        int scales = kt_ends_with(t->name, ".scales");
        if ((!scales && !kt_ends_with(t->name, ".biases")) || !kt_dtype_is_float(t->dtype)) continue;
        seen++;
        long long count, at = first_bad(t, scales, &count);
        if (at < 0) continue;
        float v;
        kt_row_to_f32(t->dtype, t->data + (size_t)at * (kt_dtype_bits(t->dtype) / 8), &v, 1);
        uint64_t cols = t->ndim ? t->shape[t->ndim - 1] : 1;
        if (bad++ < 3)
            sb_printf(&sb, "%s%s: %s at row %llu, group %llu (%lld value%s)", bad > 1 ? "; " : "", t->name,
                      isnan(v) ? "NaN" : isinf(v) ? "infinite" : "zero", (unsigned long long)(at / cols),
                      (unsigned long long)(at % cols), count, count == 1 ? "" : "s");
        cJSON_AddItemToArray(list, cJSON_CreateString(t->name));
    }
    if (!bad) vr_add(r, G, "scales-biases", VR_PASS, NULL, fig, "%zu scales/biases tensors: scales finite and non-zero, biases finite", seen);
    else vr_add(r, G, "scales-biases", VR_FAIL, "reconvert with kintsugi-convert (or verify --original to find the cause)", fig,
                "%s%s", sb_cstr(&sb), bad > 3 ? "; ..." : "");
    sb_free(&sb);
}

/* Every other float tensor (norms, the conv1d kernel, A_log, D, dt_bias,
 * unquantized weights) finite: one NaN in a norm weight makes every logit
 * NaN. Packed codes are integers and cannot be. */
static void check_values(vr_report *r, const kt_model_files *m) {
    strbuf sb = {0};
    size_t bad = 0, seen = 0;
    for (size_t i = 0; i < m->n_tensors; i++) {
        const st_tensor *t = kt_model_tensor(m, i);
        if (kt_ends_with(t->name, ".scales") || kt_ends_with(t->name, ".biases") || !kt_dtype_is_float(t->dtype)) continue;
        seen++;
        long long count, at = first_bad(t, 0, &count);
        if (at < 0) continue;
        if (bad++ < 3)
            sb_printf(&sb, "%s%s: %lld non-finite value%s, the first at flat index %lld", bad > 1 ? "; " : "", t->name,
                      count, count == 1 ? "" : "s", at);
    }
    if (!bad) vr_add(r, G, "values-finite", VR_PASS, NULL, NULL, "%zu other float tensors: every value finite", seen);
    else vr_add(r, G, "values-finite", VR_FAIL, "reconvert with kintsugi-convert (or verify --original to find the cause)",
                NULL, "%s%s", sb_cstr(&sb), bad > 3 ? "; ..." : "");
    sb_free(&sb);
}

/* kintsugi-convert writes into DST.kintsugi-tmp-PID and renames it to DST
 * last: a directory of that name is a run that never finished, however
 * whole its files look (a kill between the last file and the rename leaves
 * every file complete). It is not an output; the next run removes it. */
static void check_unfinished(vr_report *r, const char *dir) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && dir[b - 1] != '/') b--;
    const char *tag = ".kintsugi-tmp-";
    for (size_t i = b; i + strlen(tag) <= n; i++)
        if (!strncmp(dir + i, tag, strlen(tag))) {
            vr_add(r, G, "unfinished-output", VR_FAIL, "run the conversion again (it removes this directory)", NULL,
                   "%.*s is the temporary directory of a kintsugi run that did not finish, not an output", (int)(n - b),
                   dir + b);
            return;
        }
}

int vr_check_structure(vr_report *r, const vr_options *o) {
    check_unfinished(r, o->dir);
    int config = check_config(r, o->dir);
    if (config == -2) return 0; /* no config.json to check anything against */
    kt_model_files m;
    int opened = fx_open_lenient(&m, o->dir) == 0;
    if (opened) vr_add(r, G, "shards", VR_PASS, NULL, NULL, "%zu shard%s, %zu tensors, headers valid", m.n_shards,
                       m.n_shards == 1 ? "" : "s", m.n_tensors);
    else vr_add(r, G, "shards", VR_FAIL, "reconvert with kintsugi-convert (or restore the shard)", NULL, "%s", kt_errmsg());
    if (r->original_checkpoint)
        vr_add(r, G, "fixup-rules", VR_SKIP, NULL, NULL, "an original checkpoint: the kintsugi-fixup rules are for MLX "
               "conversions");
    else check_rules(r, o->dir, opened ? &m : NULL); /* they name the repair of a bad config too */
    if (opened) {
        check_scales(r, &m);
        check_values(r, &m);
        kt_model_close(&m);
    } else {
        vr_add(r, G, "scales-biases", VR_SKIP, NULL, NULL, "shards unreadable");
        vr_add(r, G, "values-finite", VR_SKIP, NULL, NULL, "shards unreadable");
    }
    if (opened && config == 0) {
        check_tensors(r, o->dir);
    } else {
        const char *why = opened ? "config.json is not valid" : "shards unreadable";
        vr_add(r, G, "tensors-expected", VR_SKIP, NULL, NULL, "%s", why);
        vr_add(r, G, "tensors-extra", VR_SKIP, NULL, NULL, "%s", why);
    }
    return 0;
}
