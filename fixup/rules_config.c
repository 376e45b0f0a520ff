/* rules_config.c - config.json rules.
 *
 *   config-dtype            transformers 5 writes "dtype"; mlx_lm.convert reads only
 *                           "torch_dtype" (and then skips the cast)
 *   config-mode             "mode": "affine" in quantization, quantization_config or
 *                           per-layer entries: older mlx-lm and mlx-swift reject it
 *   config-time-step-limit  missing (mlx-lm <= 0.30.5 fails to load, 0.30.6-0.31.1
 *                           clamp dt), tagged {"__float__": ...}, a string, null, the
 *                           wrong length or order: becomes [0.0, Infinity]
 *   config-quantization-twin  quantization without quantization_config or the reverse
 *   config-null-quant-params  "group_size": null or "bits": null in a quantization
 *                           entry (mlx_lm.convert --quant-predicate without
 *                           --q-group-size): MLX reads them as 64 and 4, loaders
 *                           that expect a number fail
 *   config-layer-pattern    hybrid_override_pattern / layers_block_type /
 *                           num_hidden_layers disagree with each other or the tensors
 * Unknown keys and the order of keys are kept; the file is rewritten (JSON,
 * indent 4, as mlx-lm writes it) only when a rule fires.
 */
#include "repair.h"
#include "backup.h"
#include "error.h"
#include "file.h"
#include "strbuf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Replace KEY's value, keeping its position; add at the end when absent. */
static void set_item(cJSON *obj, const char *key, cJSON *value) {
    if (cJSON_GetObjectItemCaseSensitive(obj, key)) cJSON_ReplaceItemInObjectCaseSensitive(obj, key, value);
    else cJSON_AddItemToObject(obj, key, value);
}

static void rule_dtype(fx_session *s, cJSON *cfg) {
    cJSON *dtype = cJSON_GetObjectItemCaseSensitive(cfg, "dtype");
    if (!dtype) return;
    if (cJSON_GetObjectItemCaseSensitive(cfg, "torch_dtype")) {
        cJSON_DeleteItemFromObjectCaseSensitive(cfg, "dtype");
        fx_find(s, "config-dtype", "config.json", 1, "\"dtype\" removed: \"torch_dtype\" is present");
        return;
    }
    /* rename in place: same position, same value */
    free(dtype->string);
    dtype->string = kt_xstrdup("torch_dtype");
    fx_find(s, "config-dtype", "config.json", 1,
            "\"dtype\" renamed to \"torch_dtype\" (transformers 5 wrote it; mlx_lm.convert reads only torch_dtype)");
}

static int drop_mode(cJSON *q) {
    int n = 0;
    if (!cJSON_IsObject(q)) return 0;
    if (cJSON_GetObjectItemCaseSensitive(q, "mode")) {
        cJSON_DeleteItemFromObjectCaseSensitive(q, "mode");
        n++;
    }
    for (cJSON *c = q->child; c; c = c->next) /* per-layer entries */
        if (cJSON_IsObject(c) && cJSON_GetObjectItemCaseSensitive(c, "mode")) {
            cJSON_DeleteItemFromObjectCaseSensitive(c, "mode");
            n++;
        }
    return n;
}

static void rule_mode(fx_session *s, cJSON *cfg) {
    int n = drop_mode(cJSON_GetObjectItemCaseSensitive(cfg, "quantization")) +
            drop_mode(cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config"));
    if (n)
        fx_find(s, "config-mode", "config.json", 1,
                "\"mode\" removed from %d quantization entr%s (older mlx-lm and mlx-swift reject it; affine is the default)",
                n, n == 1 ? "y" : "ies");
}

/* null -> MLX's affine default in Q and its per-layer entries; returns how many. */
static int fill_nulls(cJSON *q) {
    int n = 0;
    if (!cJSON_IsObject(q)) return 0;
    for (cJSON *e = q; e; e = e == q ? q->child : e->next) {
        if (!cJSON_IsObject(e)) continue;
        static const char *const keys[] = {"group_size", "bits"};
        static const int defaults[] = {64, 4};
        for (int k = 0; k < 2; k++)
            if (cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(e, keys[k]))) {
                cJSON_ReplaceItemInObjectCaseSensitive(e, keys[k], kt_json_new_int(defaults[k]));
                n++;
            }
    }
    return n;
}

static void rule_null_params(fx_session *s, cJSON *cfg) {
    int n = fill_nulls(cJSON_GetObjectItemCaseSensitive(cfg, "quantization"));
    cJSON *qc = cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config");
    if (qc != cJSON_GetObjectItemCaseSensitive(cfg, "quantization")) n += fill_nulls(qc);
    if (n)
        fx_find(s, "config-null-quant-params", "config.json", 1,
                "%d null group_size/bits in the quantization entries set to 64/4, the values MLX reads them as "
                "(mlx_lm.convert --quant-predicate writes null without --q-group-size; loaders that expect a number "
                "fail)", n);
}

static void rule_twin(fx_session *s, cJSON *cfg) {
    cJSON *q = cJSON_GetObjectItemCaseSensitive(cfg, "quantization");
    cJSON *qc = cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config");
    if (cJSON_IsObject(q) && !qc) {
        cJSON_AddItemToObject(cfg, "quantization_config", cJSON_Duplicate(q, 1));
        fx_find(s, "config-quantization-twin", "config.json", 1, "quantization_config added as a copy of quantization");
    } else if (cJSON_IsObject(qc) && !q) {
        cJSON_AddItemToObject(cfg, "quantization", cJSON_Duplicate(qc, 1));
        fx_find(s, "config-quantization-twin", "config.json", 1, "quantization added as a copy of quantization_config");
    }
}

static void rule_time_step_limit(fx_session *s, cJSON *cfg) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, "time_step_limit");
    double lo, hi;
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 2 && kt_json_number(v->child, &lo) == 0 &&
        kt_json_number(v->child->next, &hi) == 0 && !isnan(lo) && !isnan(hi) && lo <= hi)
        return;
    const char *what = !v ? "missing" : cJSON_IsNull(v) ? "null" : cJSON_IsString(v) ? "a string"
                      : cJSON_IsArray(v) ? "not two ordered numbers (or a tagged {\"__float__\": ...})" : "not a list";
    cJSON *fixed = cJSON_CreateArray();
    cJSON_AddItemToArray(fixed, kt_json_new_float(0.0));
    cJSON_AddItemToArray(fixed, kt_json_new_float(INFINITY));
    set_item(cfg, "time_step_limit", fixed);
    fx_find(s, "config-time-step-limit", "config.json", 1,
            "time_step_limit was %s; now [0.0, Infinity] (mlx-lm <= 0.30.5 fails to load without it, "
            "0.30.6-0.31.1 clamp dt to time_step_min)", what);
}

/* Layer kinds from the tensors: "M", "*", "-", "E" per layer index. */
static char *pattern_from_tensors(const kt_model_files *m) {
    long n = 0;
    for (size_t i = 0; i < m->n_tensors; i++) {
        const char *name = kt_model_tensor(m, i)->name;
        if (strncmp(name, "backbone.layers.", 16)) continue;
        long l = strtol(name + 16, NULL, 10);
        if (l + 1 > n) n = l + 1;
    }
    if (n == 0 || n > 100000) return NULL;
    char *p = kt_xcalloc((size_t)n + 1, 1);
    for (size_t i = 0; i < m->n_tensors; i++) {
        const char *name = kt_model_tensor(m, i)->name;
        if (strncmp(name, "backbone.layers.", 16)) continue;
        char *end;
        long l = strtol(name + 16, &end, 10);
        char kind = strstr(end, ".mixer.A_log") ? 'M' : strstr(end, ".mixer.q_proj.") ? '*'
                  : (strstr(end, ".mixer.switch_mlp.") || strstr(end, ".mixer.gate.")) ? 'E'
                  : strstr(end, ".mixer.up_proj.") ? '-' : 0;
        if (kind) p[l] = kind;
    }
    for (long l = 0; l < n; l++)
        if (!p[l]) {
            free(p);
            return NULL; /* a layer we cannot classify: leave the config alone */
        }
    return p;
}

static const char *block_name(char c, int new_names) {
    switch (c) {
    case 'M': return new_names ? "linear_attention" : "mamba";
    case '*': return new_names ? "full_attention" : "attention";
    case '-': return "mlp";
    default: return "moe";
    }
}

static void rule_layer_pattern(fx_session *s, cJSON *cfg, const kt_model_files *m) {
    char *want = m ? pattern_from_tensors(m) : NULL; /* no shards: nothing to compare with */
    if (!want) return;
    long n = (long)strlen(want);
    cJSON *pat = cJSON_GetObjectItemCaseSensitive(cfg, "hybrid_override_pattern");
    cJSON *types = cJSON_GetObjectItemCaseSensitive(cfg, "layers_block_type");
    cJSON *layers = cJSON_GetObjectItemCaseSensitive(cfg, "num_hidden_layers");
    int64_t nl = -1;
    if (layers) kt_json_i64(layers, &nl);
    if (cJSON_IsString(pat) && strcmp(pat->valuestring, want) != 0) {
        fx_find(s, "config-layer-pattern", "config.json", 1, "hybrid_override_pattern \"%s\" does not match the "
                "tensors' layers \"%s\"; rewritten", pat->valuestring, want);
        set_item(cfg, "hybrid_override_pattern", cJSON_CreateString(want));
    } else if (!pat && !cJSON_IsArray(types)) {
        fx_find(s, "config-layer-pattern", "config.json", 1, "no hybrid_override_pattern or layers_block_type; "
                "\"%s\" added from the tensors", want);
        set_item(cfg, "hybrid_override_pattern", cJSON_CreateString(want));
    }
    if (cJSON_IsArray(types)) {
        int new_names = 0, ok = cJSON_GetArraySize(types) == n;
        for (cJSON *c = types->child; c; c = c->next)
            if (cJSON_IsString(c) && strstr(c->valuestring, "_attention")) new_names = 1;
        long i = 0;
        for (cJSON *c = types->child; c && ok; c = c->next, i++)
            ok = cJSON_IsString(c) && !strcmp(c->valuestring, block_name(want[i], new_names));
        if (!ok) {
            cJSON *list = cJSON_CreateArray();
            for (i = 0; i < n; i++) cJSON_AddItemToArray(list, cJSON_CreateString(block_name(want[i], new_names)));
            set_item(cfg, "layers_block_type", list);
            fx_find(s, "config-layer-pattern", "config.json", 1, "layers_block_type does not match the tensors' "
                    "layers \"%s\"; rewritten", want);
        }
    }
    if (nl != n) {
        set_item(cfg, "num_hidden_layers", kt_json_new_int(n));
        fx_find(s, "config-layer-pattern", "config.json", 1, "num_hidden_layers set to %ld, the number of layers "
                "in the tensors", n);
    }
    free(want);
}

int fx_rules_config(fx_session *s, const kt_model_files *m) {
    char *path = kt_path_join(s->dir, "config.json"), *text = NULL;
    size_t len = 0;
    int found = kt_read_file(path, &text, &len);
    free(path);
    if (found <= 0) return found < 0 ? -1 : kt_fail("%s: no config.json", s->dir);
    cJSON *cfg = kt_json_parse(text, len, KT_JSON_DUP_LAST_WINS, "config.json");
    if (!cfg || !cJSON_IsObject(cfg)) {
        free(text);
        cJSON_Delete(cfg);
        return kt_fail_context("%s", s->dir);
    }
    size_t before = s->n_findings;
    rule_dtype(s, cfg);
    rule_mode(s, cfg);
    rule_twin(s, cfg);
    rule_null_params(s, cfg);
    rule_time_step_limit(s, cfg);
    rule_layer_pattern(s, cfg, m);
    if (s->n_findings > before) {
        fx_op *op = fx_add_op(s, FX_WRITE, "config.json");
        op->old_text = text;
        op->old_len = len;
        op->new_text = kt_json_print(cfg, &KT_JSON_PYTHON_INDENT4);
        op->new_len = strlen(op->new_text);
        text = NULL;
    }
    free(text);
    cJSON_Delete(cfg);
    return 0;
}
