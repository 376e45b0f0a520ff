/* config_out.c - see config_out.h.
 *
 * mlx-lm 0.32 writes non-finite floats as {"__float__": "Infinity"} (so that
 * the file is strict JSON); older mlx-lm, transformers 4 and other loaders
 * cannot read that, and NVIDIA's own configs use a bare Infinity, which every
 * Python JSON reader accepts. We write bare numbers and list the change.
 */
#include "config_out.h"
#include "error.h"
#include "strbuf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void note(cv_repairs *r, int needed, const char *fmt, const char *arg) {
    if (r->n >= CV_MAX_REPAIRS) return;
    strbuf sb = {0};
    sb_printf(&sb, fmt, arg);
    r->needed[r->n] = needed;
    r->text[r->n++] = sb_take(&sb);
}

int cv_repairs_count(const cv_repairs *r, int needed) {
    int n = 0;
    for (int i = 0; i < r->n; i++) n += r->needed[i] == needed;
    return n;
}

void cv_repairs_free(cv_repairs *r) {
    for (int i = 0; i < r->n; i++) free(r->text[i]);
    r->n = 0;
}

static const char *string_of(const cJSON *config, const char *key) {
    const cJSON *v = kt_json_get(config, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int known_dtype(const char *s) {
    return s && (!strcmp(s, "bfloat16") || !strcmp(s, "float16") || !strcmp(s, "float32"));
}

const char *cv_config_cast_dtype(const cJSON *config) {
    const char *d = string_of(config, "torch_dtype");
    if (!d) d = string_of(config, "dtype");
    if (!d) {
        const cJSON *text = kt_json_get(config, "text_config");
        if (cJSON_IsObject(text)) d = string_of(text, "dtype");
    }
    return known_dtype(d) ? d : NULL;
}

/* {"__float__": "Infinity"} and friends -> the number; returns how many. */
static int decode_tagged_floats(cJSON *item) {
    int n = 0;
    for (cJSON *c = item ? item->child : NULL; c; c = c->next) {
        const cJSON *tag = cJSON_IsObject(c) && c->child && !c->child->next ? kt_json_get(c, "__float__") : NULL;
        const char *s = cJSON_IsString(tag) ? tag->valuestring : NULL;
        double v = 0;
        int known = s && (!strcmp(s, "Infinity") ? (v = INFINITY, 1)
                          : !strcmp(s, "-Infinity") ? (v = -INFINITY, 1)
                          : !strcmp(s, "NaN") ? (v = NAN, 1) : 0);
        if (known) {
            cJSON *num = kt_json_new_float(v);
            if (c->string) cJSON_ReplaceItemInObjectCaseSensitive(item, c->string, num);
            else cJSON_ReplaceItemViaPointer(item, c, num);
            c = num;
            n++;
        } else {
            n += decode_tagged_floats(c);
        }
    }
    return n;
}

/* Python truthiness of a JSON value, for generation_config's eos_token_id. */
static int truthy(const cJSON *v) {
    double d;
    if (!v || cJSON_IsNull(v) || cJSON_IsFalse(v)) return 0;
    if (kt_json_number(v, &d) == 0) return d != 0;
    if (cJSON_IsString(v)) return v->valuestring[0] != 0;
    if (cJSON_IsArray(v) || cJSON_IsObject(v)) return v->child != NULL;
    return 1;
}

/* time_step_limit must be two numbers, low <= high; mlx-lm needs it (older
 * versions fail to load without it, 0.30.6-0.31.1 silently clamp dt). */
static void repair_time_step_limit(cJSON *cfg, cv_repairs *r, int had_tags) {
    cJSON *v = kt_json_get(cfg, "time_step_limit");
    double lo, hi;
    int usable = cJSON_IsArray(v) && cJSON_GetArraySize(v) == 2 && kt_json_number(v->child, &lo) == 0 &&
                 kt_json_number(v->child->next, &hi) == 0 && !isnan(lo) && !isnan(hi) && lo <= hi;
    if (!v) {
        note(r, 1, "time_step_limit: added [0.0, Infinity]%s", " (missing; mlx-lm <= 0.30.5 cannot load the model "
             "and 0.30.6-0.31.1 clamp dt to time_step_min)");
    } else if (!usable) {
        note(r, 1, "time_step_limit: %s", "replaced an unusable value with [0.0, Infinity]");
    } else {
        if (isinf(hi) || isinf(lo) || had_tags)
            note(r, 0, "time_step_limit: %s", "written with a bare Infinity (mlx-lm 0.32 writes {\"__float__\": "
                 "\"Infinity\"}, which older loaders cannot read)");
        return;
    }
    cJSON *fixed = cJSON_CreateArray();
    cJSON_AddItemToArray(fixed, kt_json_new_float(0.0));
    cJSON_AddItemToArray(fixed, kt_json_new_float(INFINITY));
    if (v) cJSON_ReplaceItemInObjectCaseSensitive(cfg, "time_step_limit", fixed);
    else cJSON_AddItemToObject(cfg, "time_step_limit", fixed);
}

static cJSON *quant_object(const kt_quant_params *q) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "group_size", kt_json_new_int(q->group_size));
    cJSON_AddItemToObject(o, "bits", kt_json_new_int(q->bits));
    return o;
}

cJSON *cv_config_make(const cJSON *src, const cJSON *generation, const kt_quant_params *q, cv_repairs *r) {
    const char *type = string_of(src, "model_type");
    if (!type || strcmp(type, "nemotron_h") != 0) {
        kt_fail("config.json: model_type is %s%s%s, not nemotron_h", type ? "\"" : "", type ? type : "missing",
                type ? "\"" : "");
        return NULL;
    }
    if (kt_json_get(src, "quantization") || kt_json_get(src, "quantization_config")) {
        kt_fail("config.json: the source is already quantized (it has quantization or quantization_config)");
        return NULL;
    }
    cJSON *cfg = cJSON_Duplicate(src, 1);
    int tags = decode_tagged_floats(cfg);
    const cJSON *eos = generation ? kt_json_get(generation, "eos_token_id") : NULL;
    if (truthy(eos)) {
        cJSON *copy = cJSON_Duplicate(eos, 1);
        if (kt_json_get(cfg, "eos_token_id")) cJSON_ReplaceItemInObjectCaseSensitive(cfg, "eos_token_id", copy);
        else cJSON_AddItemToObject(cfg, "eos_token_id", copy);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "_name_or_path");
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "vision_config");

    cJSON *dtype = cJSON_DetachItemFromObjectCaseSensitive(cfg, "dtype");
    if (dtype && !kt_json_get(cfg, "torch_dtype")) {
        cJSON_AddItemToObject(cfg, "torch_dtype", dtype);
        note(r, 1, "torch_dtype: %s", "renamed from the transformers-5 key \"dtype\" (mlx_lm.convert reads only "
             "torch_dtype and would skip the cast)");
    } else if (dtype) {
        cJSON_Delete(dtype);
        note(r, 1, "dtype: %s", "removed (torch_dtype is present)");
    }
    /* convert never writes what verify would fail, nor a config.json that
     * says something false about the model */
    const cJSON *td = kt_json_get(cfg, "torch_dtype");
    if (td && !cJSON_IsNull(td) && !known_dtype(string_of(cfg, "torch_dtype"))) {
        char *shown = kt_json_print(td, &KT_JSON_COMPACT_SORTED);
        kt_fail("config.json: torch_dtype is %s, not bfloat16, float16 or float32 (the dtype of a float checkpoint); "
                "fix config.json (mlx_lm.convert would skip the cast and copy the value)", shown);
        free(shown);
        cJSON_Delete(cfg);
        return NULL;
    }
    const char *pattern = string_of(cfg, "hybrid_override_pattern");
    int64_t layers = -1;
    if (pattern && (kt_json_i64(kt_json_get(cfg, "num_hidden_layers"), &layers) || layers != (int64_t)strlen(pattern))) {
        const cJSON *old = kt_json_get(cfg, "num_hidden_layers");
        char *was = old ? kt_json_print(old, &KT_JSON_COMPACT_SORTED) : kt_xstrdup("missing");
        strbuf sb = {0};
        sb_printf(&sb, "was %s; set to %zu, the length of hybrid_override_pattern (mlx-lm's sanitize stacks the "
                  "experts of num_hidden_layers layers; other loaders size the model by it)", was, strlen(pattern));
        free(was);
        cJSON *n = kt_json_new_int((long long)strlen(pattern));
        if (old) cJSON_ReplaceItemInObjectCaseSensitive(cfg, "num_hidden_layers", n);
        else cJSON_AddItemToObject(cfg, "num_hidden_layers", n);
        note(r, 1, "num_hidden_layers: %s", sb_cstr(&sb));
        sb_free(&sb);
    }
    repair_time_step_limit(cfg, r, tags);
    cJSON_AddItemToObject(cfg, "quantization", quant_object(q));
    cJSON_AddItemToObject(cfg, "quantization_config", quant_object(q));
    note(r, 0, "quantization, quantization_config: %s", "written without \"mode\": \"affine\" (older loaders and "
         "mlx-swift reject it; affine is the default)");
    return cfg;
}

void cv_config_add_layer(cJSON *cfg, const char *path, const kt_quant_params *q, cv_repairs *r) {
    cJSON *top = kt_json_get(cfg, "quantization");
    if (cJSON_GetArraySize(top) == 2)
        note(r, 0, "per-layer quantization entries: %s", "group_size written as a number (mlx_lm.convert "
             "--quant-predicate writes null without --q-group-size; MLX reads null as 64, loaders that expect a "
             "number fail)");
    cJSON_AddItemToObject(top, path, quant_object(q));
    cJSON_AddItemToObject(kt_json_get(cfg, "quantization_config"), path, quant_object(q));
}

static int cmp_keys(const void *a, const void *b) {
    return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

char *cv_config_text(const cJSON *config) {
    /* Python sorts str keys by code point, which for UTF-8 is byte order */
    int n = cJSON_GetArraySize(config);
    cJSON **items = kt_xcalloc((size_t)(n ? n : 1), sizeof *items);
    int i = 0;
    for (cJSON *c = config->child; c; c = c->next) items[i++] = c;
    qsort(items, (size_t)n, sizeof *items, cmp_keys);
    cJSON *sorted = cJSON_CreateObject();
    for (i = 0; i < n; i++) cJSON_AddItemReferenceToObject(sorted, items[i]->string, items[i]);
    char *text = kt_json_print(sorted, &KT_JSON_PYTHON_INDENT4);
    cJSON_Delete(sorted);
    free(items);
    return text;
}
