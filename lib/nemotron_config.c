/* nemotron_config.c - see nemotron_config.h. */
#include "nemotron_config.h"
#include "error.h"
#include "json.h"
#include "strbuf.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds of the sizes (see the header). The 9B model has hidden 4480,
 * vocab 131072, intermediate 15680, 128 Mamba heads of 80, state 128. */
enum {
    MAX_DIM = 1 << 16,        /* hidden, head dims, state, groups, heads */
    MAX_VOCAB = 1 << 22,
    MAX_INTERMEDIATE = 1 << 20,
    MAX_CONV = 64,
    MAX_LAYERS = 1024,
    MAX_EXPERTS = 4096,
    MAX_POSITIONS = 1 << 30,
};

static const kt_json_style ONE_LINE = {-1, ", ", ": ", 0, 0};

/* The JSON text of ITEM for a message, at most about 40 bytes. */
static void value_text(const cJSON *item, char out[64]) {
    if (!item) {
        snprintf(out, 64, "missing");
        return;
    }
    char *t = kt_json_print(item, &ONE_LINE);
    size_t n = strlen(t);
    if (n > 40) snprintf(out, 64, "%.37s...", t);
    else snprintf(out, 64, "%s", t);
    free(t);
}

static int bad(const char *key, const cJSON *item, const char *what) {
    char v[64];
    value_text(item, v);
    if (!item) return kt_fail("config.json: %s is missing (%s)", key, what);
    return kt_fail("config.json: %s is %s, not %s", key, v, what);
}

/* An integer in [LO, HI]; required unless DEF >= LO (then absent gives
 * DEF). null is refused: transformers' config classes, which mlx_lm.load
 * runs when it loads the tokenizer, reject null for head_dim and the other
 * sizes. The one exception (NULL_OK) is mlx-lm's "value or default" key. */
static int get_int_null(const cJSON *cfg, const char *key, long lo, long hi, long def, int null_ok, int *out) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(cfg, key);
    char what[96];
    snprintf(what, sizeof what, "a whole number from %ld to %ld", lo, hi);
    if (!item || (cJSON_IsNull(item) && null_ok && def >= lo)) {
        if (def < lo) return bad(key, item, what);
        *out = (int)def;
        return 0;
    }
    int64_t v;
    if (!kt_json_is_number(item) || kt_json_i64(item, &v) || v < lo || v > hi) return bad(key, item, what);
    *out = (int)v;
    return 0;
}

static int get_int(const cJSON *cfg, const char *key, long lo, long hi, long def, int *out) {
    return get_int_null(cfg, key, lo, hi, def, 0, out);
}

/* A required boolean; *OUT 0 or 1. */
static int get_bool(const cJSON *cfg, const char *key, int *out) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!cJSON_IsBool(item)) return bad(key, item, "true or false");
    *out = cJSON_IsTrue(item);
    return 0;
}

static int read_pattern(kt_config *c, const cJSON *cfg) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(cfg, "hybrid_override_pattern");
    strbuf sb = {0};
    if (pat && !cJSON_IsNull(pat)) {
        /* mlx-lm iterates it: a string of letters, or a list of one-letter strings */
        if (cJSON_IsString(pat)) {
            sb_puts(&sb, pat->valuestring);
        } else if (cJSON_IsArray(pat)) {
            for (const cJSON *t = pat->child; t; t = t->next) {
                if (!cJSON_IsString(t) || strlen(t->valuestring) != 1) {
                    sb_free(&sb);
                    return bad("hybrid_override_pattern", pat, "a string of M, *, - and E");
                }
                sb_putc(&sb, t->valuestring[0]);
            }
        } else {
            return bad("hybrid_override_pattern", pat, "a string of M, *, - and E");
        }
    } else {
        const char *key = "layers_block_type";
        const cJSON *types = cJSON_GetObjectItemCaseSensitive(cfg, key);
        if (!types || cJSON_IsNull(types)) types = cJSON_GetObjectItemCaseSensitive(cfg, key = "layer_types");
        if (!types || cJSON_IsNull(types))
            return kt_fail("config.json: no hybrid_override_pattern or layers_block_type describes the layers");
        if (!cJSON_IsArray(types)) return bad(key, types, "a list of block types");
        static const struct { const char *name; char c; } kinds[] = {
            {"mamba", 'M'}, {"linear_attention", 'M'}, {"conv", 'M'}, {"attention", '*'},
            {"full_attention", '*'}, {"mlp", '-'}, {"moe", 'E'}};
        int i = 0;
        for (const cJSON *t = types->child; t; t = t->next, i++) {
            char ch = 0;
            for (size_t k = 0; cJSON_IsString(t) && k < sizeof kinds / sizeof *kinds && !ch; k++)
                if (!strcmp(t->valuestring, kinds[k].name)) ch = kinds[k].c;
            if (!ch) {
                char v[64];
                value_text(t, v);
                sb_free(&sb);
                return kt_fail("config.json: %s[%d] is %s, not one of mamba, linear_attention, attention, "
                               "full_attention, mlp, moe", key, i, v);
            }
            sb_putc(&sb, ch);
        }
    }
    c->pattern = sb_take(&sb);
    size_t n = strlen(c->pattern);
    if (n == 0 || n > MAX_LAYERS)
        return kt_fail("config.json: the layer pattern (hybrid_override_pattern or layers_block_type) has %zu "
                       "layers, not 1 to %d", n, MAX_LAYERS);
    for (size_t i = 0; i < n; i++)
        if (!strchr("M*-E", c->pattern[i]))
            return kt_fail("config.json: the layer pattern (hybrid_override_pattern or layers_block_type) \"%.40s\" "
                           "has '%c' at layer %zu, not one of M (Mamba-2), * (attention), - (MLP), E (MoE)",
                           c->pattern, c->pattern[i], i);
    c->n_layers = (int)n;
    return 0;
}

static int read_moe(kt_config *c, const cJSON *cfg) {
    const cJSON *latent = cJSON_GetObjectItemCaseSensitive(cfg, "moe_latent_size");
    if (latent && !cJSON_IsNull(latent))
        return kt_fail("config.json: moe_latent_size is set; MoE latent projections are not supported (stricter "
                       "than mlx-lm: the runtime does not compute them)");
    if (get_int(cfg, "n_routed_experts", 1, MAX_EXPERTS, 0, &c->n_experts) ||
        get_int(cfg, "num_experts_per_tok", 1, c->n_experts, 0, &c->top_k) ||
        get_int(cfg, "moe_intermediate_size", 1, MAX_INTERMEDIATE, 0, &c->moe_inter) ||
        get_int(cfg, "n_group", 1, c->n_experts, 0, &c->n_group) ||
        get_int(cfg, "topk_group", 1, c->n_group, 0, &c->topk_group))
        return -1;
    if (c->n_experts % c->n_group)
        return kt_fail("config.json: n_routed_experts %d is not a multiple of n_group %d", c->n_experts, c->n_group);
    if (c->n_group > 1 && c->n_experts / c->n_group < 2)
        return kt_fail("config.json: n_group %d leaves fewer than 2 experts per group (group scores add the top 2)",
                       c->n_group);
    const cJSON *shared = cJSON_GetObjectItemCaseSensitive(cfg, "n_shared_experts");
    c->has_shared = shared && !cJSON_IsNull(shared); /* mlx-lm: any value but None adds the shared expert */
    if (c->has_shared) {
        int n;
        if (get_int(cfg, "n_shared_experts", 0, MAX_EXPERTS, 0, &n)) return -1;
        /* mlx-lm: moe_shared_expert_intermediate_size or, when unset, intermediate_size */
        if (get_int_null(cfg, "moe_shared_expert_intermediate_size", 1, MAX_INTERMEDIATE, c->intermediate, 1,
                         &c->moe_shared_inter))
            return -1;
    }
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(cfg, "norm_topk_prob");
    if (norm && !cJSON_IsNull(norm) && !cJSON_IsBool(norm)) return bad("norm_topk_prob", norm, "true or false");
    c->norm_topk = cJSON_IsTrue(norm);
    const cJSON *scale = cJSON_GetObjectItemCaseSensitive(cfg, "routed_scaling_factor");
    double sc;
    if (!kt_json_is_number(scale) || kt_json_number(scale, &sc) || !isfinite((float)sc) || !((float)sc > 0))
        return bad("routed_scaling_factor", scale, "a number > 0 that float32 holds");
    c->routed_scale = (float)sc;
    return 0;
}

static int read_numbers(kt_config *c, const cJSON *cfg) {
    if (get_int(cfg, "hidden_size", 1, MAX_DIM, 0, &c->hidden) ||
        get_int(cfg, "vocab_size", 1, MAX_VOCAB, 0, &c->vocab) ||
        get_int(cfg, "intermediate_size", 1, MAX_INTERMEDIATE, 0, &c->intermediate) ||
        get_int(cfg, "max_position_embeddings", 1, MAX_POSITIONS, 0, &c->max_positions) ||
        get_int(cfg, "num_attention_heads", 1, MAX_DIM, 0, &c->heads) ||
        get_int(cfg, "num_key_value_heads", 1, c->heads, 0, &c->kv_heads) ||
        get_int(cfg, "head_dim", 1, MAX_DIM, c->hidden / c->heads ? c->hidden / c->heads : 1, &c->head_dim) ||
        get_int(cfg, "mamba_num_heads", 1, MAX_DIM, 0, &c->m_heads) ||
        get_int(cfg, "mamba_head_dim", 1, MAX_DIM, 0, &c->m_head_dim) ||
        get_int(cfg, "ssm_state_size", 1, MAX_DIM, 0, &c->state) ||
        get_int(cfg, "conv_kernel", 1, MAX_CONV, 0, &c->conv) ||
        get_int(cfg, "n_groups", 1, c->m_heads, 0, &c->n_groups))
        return -1;
    /* head_dim absent: mlx-lm takes hidden // heads, which may be 0 */
    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(cfg, "head_dim");
    if ((!hd || cJSON_IsNull(hd)) && c->hidden / c->heads == 0)
        return kt_fail("config.json: head_dim is missing and hidden_size %d // num_attention_heads %d is 0", c->hidden,
                       c->heads);
    if (c->heads % c->kv_heads)
        return kt_fail("config.json: num_attention_heads %d is not a multiple of num_key_value_heads %d", c->heads,
                       c->kv_heads);
    if (c->m_heads % c->n_groups)
        return kt_fail("config.json: mamba_num_heads %d is not a multiple of n_groups %d", c->m_heads, c->n_groups);
    if ((int64_t)c->heads * c->head_dim > MAX_DIM * 16 || (int64_t)c->m_heads * c->m_head_dim > MAX_DIM * 16)
        return kt_fail("config.json: heads x head_dim (%d x %d attention, %d x %d Mamba) is larger than %d", c->heads,
                       c->head_dim, c->m_heads, c->m_head_dim, MAX_DIM * 16);
    if ((int64_t)c->n_groups * c->state > MAX_DIM * 16)
        return kt_fail("config.json: n_groups x ssm_state_size (%d x %d) is larger than %d", c->n_groups, c->state,
                       MAX_DIM * 16);
    return 0;
}

static int read_flags(const cJSON *cfg) {
    static const char *const biases[] = {"attention_bias", "mamba_proj_bias", "mlp_bias", "use_bias"};
    int v = 0;
    for (size_t i = 0; i < sizeof biases / sizeof *biases; i++) {
        if (get_bool(cfg, biases[i], &v)) return -1;
        if (v && strcmp(biases[i], "use_bias"))
            return kt_fail("config.json: %s is true; projection biases are not supported (stricter than mlx-lm: no "
                           "released Nemotron-H checkpoint has them and the runtime does not add them)", biases[i]);
    }
    if (get_bool(cfg, "use_conv_bias", &v)) return -1;
    if (!v)
        return kt_fail("config.json: use_conv_bias is false; a conv1d without bias is not supported (stricter than "
                       "mlx-lm: every released Nemotron-H checkpoint has one)");
    return 0;
}

/* A number, or mlx-lm's tagged non-finite float {"__float__": "Infinity"}
 * (its load_config decodes those before the model sees them). */
static int number_or_tagged(const cJSON *item, double *out) {
    if (kt_json_is_number(item)) return kt_json_number(item, out);
    const cJSON *tag = cJSON_IsObject(item) && item->child && !item->child->next ? item->child : NULL;
    if (!tag || strcmp(tag->string, "__float__") || !cJSON_IsString(tag)) return -1;
    if (!strcmp(tag->valuestring, "Infinity")) *out = INFINITY;
    else if (!strcmp(tag->valuestring, "-Infinity")) *out = -INFINITY;
    else if (!strcmp(tag->valuestring, "NaN")) *out = NAN;
    else return -1;
    return 0;
}

static int read_floats(kt_config *c, const cJSON *cfg) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(cfg, "layer_norm_epsilon");
    double eps;
    /* the runtime computes in float32: 1e-85 would be 0 there (found by fuzz_config) */
    if (!kt_json_is_number(e) || kt_json_number(e, &eps) || !isfinite(eps) || eps >= 1 || !((float)eps >= FLT_MIN))
        return bad("layer_norm_epsilon", e, "a number in (0, 1) that float32 holds (at least 1.2e-38)");
    c->eps = (float)eps;
    double lo = 0, hi = INFINITY;
    const cJSON *tsl = cJSON_GetObjectItemCaseSensitive(cfg, "time_step_limit");
    if (tsl) { /* absent: mlx-lm's default (0, inf); null is refused by mlx-lm's strict config class */
        if (!cJSON_IsArray(tsl) || cJSON_GetArraySize(tsl) != 2 || number_or_tagged(tsl->child, &lo) ||
            number_or_tagged(tsl->child->next, &hi) || isnan(lo) || isnan(hi) || lo < 0 || lo > hi)
            return bad("time_step_limit", tsl, "two numbers [lo, hi] with 0 <= lo <= hi");
    }
    c->dt_min = (float)lo, c->dt_max = (float)hi;
    return 0;
}

int kt_config_read(kt_config *c, const cJSON *cfg) {
    memset(c, 0, sizeof *c);
    if (!cJSON_IsObject(cfg)) return kt_fail("config.json: not a JSON object");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(cfg, "model_type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "nemotron_h"))
        return bad("model_type", type, "\"nemotron_h\"");
    if (read_pattern(c, cfg) || read_numbers(c, cfg) || read_flags(cfg) || read_floats(c, cfg) ||
        (strchr(c->pattern, 'E') && read_moe(c, cfg)) || kt_config_check_quantization(cfg, &c->quantized)) {
        kt_config_free(c);
        return -1;
    }
    return 0;
}

void kt_config_free(kt_config *c) {
    free(c->pattern);
    c->pattern = NULL;
}

/* ---- quantization ---- */

static int check_params(const cJSON *q, const char *where) {
    static const char *const keys[] = {"bits", "group_size"};
    for (int k = 0; k < 2; k++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(q, keys[k]);
        int64_t v;
        /* null is MLX's default for affine (64, 4 bits): mlx_lm.convert
         * --quant-predicate writes group_size null when not given one */
        int ok = cJSON_IsNull(item) ||
                 (kt_json_is_number(item) && kt_json_i64(item, &v) == 0 &&
                  (k == 0 ? (v >= 2 && v <= 8 && v != 7) : (v == 32 || v == 64 || v == 128)));
        if (!ok) {
            char t[64];
            value_text(item, t);
            return kt_fail("config.json: %s.%s is %s, not %s", where, keys[k], t,
                           k == 0 ? "2, 3, 4, 5, 6 or 8" : "32, 64 or 128");
        }
    }
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(q, "mode");
    if (mode && !(cJSON_IsString(mode) && !strcmp(mode->valuestring, "affine"))) {
        char t[64];
        value_text(mode, t);
        return kt_fail("config.json: %s.mode is %s; only affine quantization is supported", where, t);
    }
    return 0;
}

int kt_config_check_quantization(const cJSON *cfg, int *quantized) {
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(cfg, "quantization");
    const cJSON *qc = cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config");
    *quantized = 0;
    if (!q || cJSON_IsNull(q)) {
        if (qc && !cJSON_IsNull(qc))
            return kt_fail("config.json: quantization_config without quantization; mlx-lm reads \"quantization\" "
                           "and takes quantization_config for a Hugging Face method (kintsugi-fixup restores the "
                           "twin, rule config-quantization-twin)");
        return 0;
    }
    if (!cJSON_IsObject(q)) return bad("quantization", q, "an object");
    if (check_params(q, "quantization")) return -1;
    for (const cJSON *e = q->child; e; e = e->next) {
        if (!strcmp(e->string, "bits") || !strcmp(e->string, "group_size") || !strcmp(e->string, "mode")) continue;
        if (cJSON_IsBool(e)) continue;
        if (!cJSON_IsObject(e)) {
            char t[64];
            value_text(e, t);
            return kt_fail("config.json: quantization[\"%.80s\"] is %s, not a per-layer entry (an object, or "
                           "true/false)", e->string, t);
        }
        strbuf where = {0};
        sb_printf(&where, "quantization[\"%.80s\"]", e->string);
        int rc = check_params(e, sb_cstr(&where));
        sb_free(&where);
        if (rc) return -1;
    }
    *quantized = 1;
    return 0;
}

kt_quant_entry kt_config_quant_of(const cJSON *cfg, const char *path) {
    kt_quant_entry r = {0, 0, 0};
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(cfg, "quantization");
    if (!cJSON_IsObject(q)) return r;
    const cJSON *per = cJSON_GetObjectItemCaseSensitive(q, path);
    if (cJSON_IsFalse(per)) return r;
    const cJSON *src = cJSON_IsObject(per) ? per : q;
    int64_t v;
    r.quantized = 1;
    r.bits = kt_json_i64(cJSON_GetObjectItemCaseSensitive(src, "bits"), &v) == 0 ? (int)v : 4;
    r.group_size = kt_json_i64(cJSON_GetObjectItemCaseSensitive(src, "group_size"), &v) == 0 ? (int)v : 64;
    return r;
}
