/* plan.c - mlx-lm's Nemotron-H conversion as a list of output tensors.
 *
 * Facts from mlx-lm 0.32 (models/nemotron_h.py, utils.py), checked by
 * tests/oracle/test_convert_oracle.py against mlx_lm.convert itself:
 *   - sanitize drops "mtp.*", turns conv1d weights [C,1,K] into [C,K,1] (the
 *     same bytes) and stacks experts.{e}.up_proj/down_proj into
 *     switch_mlp.fc1/fc2 [E, out, in];
 *   - the cast skips names containing A_log or e_score_correction_bias;
 *   - Linear, Embedding and SwitchLinear weights whose last dimension is a
 *     multiple of the group size are quantized (not conv1d, norms, the MoE
 *     gate, dt_bias, A_log, D);
 *   - outputs follow the module tree's parameter order; shards are filled
 *     greedily in that order.
 */
#include "plan.h"
#include "error.h"
#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

/* Module names whose weight mlx-lm quantizes (they have to_quantized). */
static const char *QUANTIZABLE[] = {"embeddings", "lm_head", "in_proj", "out_proj", "q_proj", "k_proj",
                                    "v_proj", "o_proj", "up_proj", "down_proj", "fc1", "fc2",
                                    "fc1_latent_proj", "fc2_latent_proj"};

/* The module a weight belongs to is quantizable: "x.in_proj.weight" -> "in_proj". */
static int quantizable_module(const char *name) {
    if (!kt_ends_with(name, ".weight")) return 0;
    size_t end = strlen(name) - 7, start = end;
    while (start > 0 && name[start - 1] != '.') start--;
    for (size_t i = 0; i < sizeof QUANTIZABLE / sizeof *QUANTIZABLE; i++)
        if (strlen(QUANTIZABLE[i]) == end - start && strncmp(name + start, QUANTIZABLE[i], end - start) == 0)
            return 1;
    return 0;
}

/* Position of a parameter inside its layer, in the order the mixers create
 * their members (a missing member simply never occurs). */
static const struct { const char *member; long rank; } LAYER_ORDER[] = {
    {"norm.", 0},
    {"mixer.conv1d.weight", 10}, {"mixer.conv1d.bias", 11}, {"mixer.in_proj.", 12},
    {"mixer.dt_bias", 13}, {"mixer.A_log", 14}, {"mixer.D", 15}, {"mixer.norm.", 16}, {"mixer.out_proj.", 17},
    {"mixer.q_proj.", 20}, {"mixer.k_proj.", 21}, {"mixer.v_proj.", 22}, {"mixer.o_proj.", 23},
    {"mixer.up_proj.", 30}, {"mixer.down_proj.", 31},
    {"mixer.switch_mlp.fc1.", 40}, {"mixer.switch_mlp.fc2.", 41}, {"mixer.gate.weight", 42},
    {"mixer.gate.e_score_correction_bias", 43}, {"mixer.shared_experts.up_proj.", 44},
    {"mixer.shared_experts.down_proj.", 45}, {"mixer.fc1_latent_proj.", 46}, {"mixer.fc2_latent_proj.", 47},
};

/* Inside a (quantized) Linear: weight, scales, biases, then bias. */
static long leaf_rank(const char *name) {
    if (kt_ends_with(name, ".weight")) return 0;
    if (kt_ends_with(name, ".scales")) return 1;
    if (kt_ends_with(name, ".biases")) return 2;
    if (kt_ends_with(name, ".bias")) return 3;
    return 4;
}

/* order[] = {part of the model, layer, member, leaf}; unknown names last. */
static void parameter_order(const char *name, long order[4]) {
    order[0] = 9, order[1] = order[2] = order[3] = 0;
    if (kt_starts_with(name, "backbone.embeddings.")) order[0] = 0;
    else if (kt_starts_with(name, "backbone.norm_f.")) order[0] = 2;
    else if (kt_starts_with(name, "lm_head.")) order[0] = 3;
    else if (kt_starts_with(name, "backbone.layers.")) {
        char *end;
        long layer = strtol(name + 16, &end, 10);
        if (*end != '.') return;
        const char *member = end + 1;
        for (size_t i = 0; i < sizeof LAYER_ORDER / sizeof *LAYER_ORDER; i++)
            if (kt_starts_with(member, LAYER_ORDER[i].member)) {
                order[0] = 1, order[1] = layer, order[2] = LAYER_ORDER[i].rank;
                break;
            }
        if (order[0] != 1) return;
    }
    order[3] = leaf_rank(name);
}

static int cmp_items(const void *a, const void *b) {
    const cv_item *x = a, *y = b;
    for (int i = 0; i < 4; i++)
        if (x->order[i] != y->order[i]) return x->order[i] < y->order[i] ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int config_int(const cJSON *config, const char *key, long *out) {
    int64_t v;
    const cJSON *item = kt_json_get(config, key);
    if (!item || kt_json_i64(item, &v)) return -1;
    *out = (long)v;
    return 0;
}

static void set_output(cv_output *o, char *name, kt_dtype t, int ndim, const uint64_t *shape) {
    o->name = name;
    o->dtype = t;
    o->ndim = ndim;
    memcpy(o->shape, shape, (size_t)ndim * sizeof *shape);
    uint64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    o->nbytes = n * kt_dtype_bits(t) / 8;
}

/* Fill in dtype, quantization and outputs of IT from its name, shape and parts. */
static int finish_item(cv_item *it, const cv_options *o) {
    const st_tensor *t = it->parts[0];
    it->src_dtype = t->dtype;
    it->dtype = t->dtype;
    int floating = t->dtype == KT_BF16 || t->dtype == KT_F16 || t->dtype == KT_F32;
    if (kt_dtype_is_float(t->dtype) && !floating)
        return kt_fail("tensor '%s': %s is not supported (bf16, f16 or f32 expected)", t->name,
                       kt_dtype_name(t->dtype));
    if (o->cast_to != KT_DTYPE_COUNT && floating && !strstr(it->name, "A_log") &&
        !strstr(it->name, "e_score_correction_bias"))
        it->dtype = o->cast_to;
    it->nelem = 1;
    for (int d = 0; d < it->ndim; d++) it->nelem *= it->shape[d];
    /* mlx-lm asks its predicate only about modules whose last dimension
     * the default group size divides */
    it->quantized = floating && it->ndim >= 2 && quantizable_module(it->name) &&
                    it->shape[it->ndim - 1] % (uint64_t)o->q.group_size == 0 && it->nelem > 0;
    it->q = o->q;
    if (it->quantized && o->quant_of) {
        strbuf path = {0};
        sb_append(&path, it->name, strlen(it->name) - 7);
        int rc = o->quant_of(o->quant_ctx, sb_cstr(&path), &o->q, &it->q);
        sb_free(&path);
        if (rc < 0) return kt_fail_context("tensor '%s'", it->name);
        it->quantized = rc;
        if (rc && it->shape[it->ndim - 1] % (uint64_t)it->q.group_size)
            return kt_fail("tensor '%s': its last dimension %llu is not a multiple of its group size %d", it->name,
                           (unsigned long long)it->shape[it->ndim - 1], it->q.group_size);
    }
    if (!it->quantized) {
        set_output(&it->out[0], kt_xstrdup(it->name), it->dtype, it->ndim, it->shape);
        it->n_out = 1;
        return 0;
    }
    size_t base = strlen(it->name) - 7; /* without ".weight" */
    uint64_t shape[CV_MAX_DIMS];
    memcpy(shape, it->shape, sizeof shape);
    shape[it->ndim - 1] = it->shape[it->ndim - 1] * (uint64_t)it->q.bits / 32;
    set_output(&it->out[0], kt_xstrdup(it->name), KT_U32, it->ndim, shape);
    shape[it->ndim - 1] = it->shape[it->ndim - 1] / (uint64_t)it->q.group_size;
    strbuf sb = {0};
    sb_append(&sb, it->name, base);
    sb_puts(&sb, ".scales");
    set_output(&it->out[1], sb_take(&sb), it->dtype, it->ndim, shape);
    sb_append(&sb, it->name, base);
    sb_puts(&sb, ".biases");
    set_output(&it->out[2], sb_take(&sb), it->dtype, it->ndim, shape);
    it->n_out = 3;
    return 0;
}

/* "P.experts.E.M.weight": set *prefix_len to the length of "P", *e and *m. */
static int expert_name(const char *name, size_t *prefix_len, long *e, const char **m) {
    const char *x = strstr(name, ".experts.");
    if (!x) return 0;
    char *end;
    *e = strtol(x + 9, &end, 10);
    if (end == x + 9 || *end != '.') return 0;
    if (strcmp(end, ".up_proj.weight") == 0) *m = "fc1";
    else if (strcmp(end, ".down_proj.weight") == 0) *m = "fc2";
    else return 0;
    *prefix_len = (size_t)(x - name);
    return 1;
}

/* Stack experts 0..E-1 of (prefix, which) into one item, as mlx-lm does. */
static int stack_experts(cv_item *it, const kt_model_files *m, const char *first, size_t prefix_len,
                         const char *which, long n_experts) {
    const char *proj = strcmp(which, "fc1") == 0 ? "up_proj" : "down_proj";
    it->parts = kt_xcalloc((size_t)n_experts, sizeof *it->parts);
    it->n_parts = (size_t)n_experts;
    for (long e = 0; e < n_experts; e++) {
        strbuf sb = {0};
        sb_append(&sb, first, prefix_len);
        sb_printf(&sb, ".experts.%ld.%s.weight", e, proj);
        const st_tensor *t = kt_model_find(m, sb_cstr(&sb));
        if (!t) {
            kt_fail("tensor '%s' is missing (n_routed_experts is %ld)", sb_cstr(&sb), n_experts);
            sb_free(&sb);
            return -1;
        }
        sb_free(&sb);
        const st_tensor *t0 = e ? it->parts[0] : t;
        if (t->dtype != t0->dtype || t->ndim != 2 || t0->ndim != 2 || t->shape[0] != t0->shape[0] ||
            t->shape[1] != t0->shape[1])
            return kt_fail("tensor '%s': experts differ in dtype or shape, or are not 2-D", t->name);
        it->parts[e] = t;
    }
    strbuf sb = {0};
    sb_append(&sb, first, prefix_len);
    sb_printf(&sb, ".switch_mlp.%s.weight", which);
    it->name = sb_take(&sb);
    it->ndim = 3;
    it->shape[0] = (uint64_t)n_experts;
    it->shape[1] = it->parts[0]->shape[0];
    it->shape[2] = it->parts[0]->shape[1];
    return 0;
}

static int add_items(cv_plan *p, const kt_model_files *m, const cJSON *config, const cv_options *o) {
    long n_experts = 0;
    config_int(config, "n_routed_experts", &n_experts);
    p->items = kt_xcalloc(m->n_tensors + 1, sizeof *p->items);
    for (size_t i = 0; i < m->n_tensors; i++) {
        const st_tensor *t = kt_model_tensor(m, i);
        p->source_bytes += t->nbytes;
        if (kt_starts_with(t->name, "mtp.")) {
            p->n_dropped++;
            continue;
        }
        if (t->ndim > CV_MAX_DIMS) return kt_fail("tensor '%s': more than %d dimensions", t->name, CV_MAX_DIMS);
        cv_item *it = &p->items[p->n_items];
        size_t prefix_len;
        long e;
        const char *which;
        if (expert_name(t->name, &prefix_len, &e, &which)) {
            if (e != 0) continue; /* taken with expert 0 */
            if (n_experts <= 0) return kt_fail("tensor '%s': experts present but no n_routed_experts in config.json", t->name);
            if (stack_experts(it, m, t->name, prefix_len, which, n_experts)) return -1;
        } else {
            it->name = kt_xstrdup(t->name);
            it->parts = kt_xcalloc(1, sizeof *it->parts);
            it->parts[0] = t;
            it->n_parts = 1;
            it->ndim = t->ndim;
            memcpy(it->shape, t->shape, (size_t)t->ndim * sizeof *t->shape);
            /* conv1d: [C, 1, K] -> [C, K, 1] moves an axis of length 1: same bytes */
            if (strstr(t->name, "conv1d.weight") && t->ndim == 3 && t->shape[2] != 1) {
                if (t->shape[1] != 1)
                    return kt_fail("tensor '%s': conv1d weight of shape [%llu, %llu, %llu], expected [C, 1, K]",
                                   t->name, (unsigned long long)t->shape[0], (unsigned long long)t->shape[1],
                                   (unsigned long long)t->shape[2]);
                it->shape[1] = t->shape[2];
                it->shape[2] = 1;
            }
        }
        parameter_order(it->name, it->order);
        p->n_items++;
        if (finish_item(it, o)) return -1;
    }
    /* every expert must have been taken by a stack */
    for (size_t i = 0; i < m->n_tensors; i++) {
        const st_tensor *t = kt_model_tensor(m, i);
        size_t prefix_len;
        long e;
        const char *which;
        if (!kt_starts_with(t->name, "mtp.") && expert_name(t->name, &prefix_len, &e, &which) &&
            (e < 0 || e >= n_experts))
            return kt_fail("tensor '%s': expert %ld is outside n_routed_experts %ld", t->name, e, n_experts);
    }
    return 0;
}

/* mlx-lm's count: leaf modules only; a quantized weight counts as its
 * original elements and its scales and biases not at all; dt_bias, A_log and
 * D belong to the mixer itself, not to a leaf, and are not counted. */
static uint64_t parameters_of(const cv_item *it) {
    if (kt_ends_with(it->name, "mixer.dt_bias") || kt_ends_with(it->name, "mixer.A_log") || kt_ends_with(it->name, "mixer.D"))
        return 0;
    return it->nelem;
}

static void assign_shards(cv_plan *p, const cv_options *o) {
    uint64_t in_shard = 0;
    size_t n = 0;
    for (size_t i = 0; i < p->n_items; i++)
        for (int j = 0; j < p->items[i].n_out; j++) {
            cv_output *out = &p->items[i].out[j];
            if (n == 0 || in_shard + out->nbytes > o->shard_size) {
                n++;
                in_shard = 0;
            }
            out->shard = n - 1;
            in_shard += out->nbytes;
            p->total_size += out->nbytes;
        }
    if (n == 0) n = 1;
    p->n_shards = n;
    p->shard_names = kt_xcalloc(n, sizeof *p->shard_names);
    for (size_t s = 0; s < n; s++) {
        strbuf sb = {0};
        if (n == 1) sb_puts(&sb, "model.safetensors");
        else sb_printf(&sb, "model-%05zu-of-%05zu.safetensors", s + 1, n);
        p->shard_names[s] = sb_take(&sb);
    }
}

int cv_plan_make(cv_plan *p, const kt_model_files *m, const cJSON *config, const cv_options *o) {
    memset(p, 0, sizeof *p);
    if (add_items(p, m, config, o)) return -1;
    qsort(p->items, p->n_items, sizeof *p->items, cmp_items);
    for (size_t i = 0; i < p->n_items; i++) {
        p->total_parameters += parameters_of(&p->items[i]);
        if (p->items[i].quantized) {
            p->quantized_elems += p->items[i].nelem;
            for (int j = 0; j < 3; j++) p->quantized_bytes += p->items[i].out[j].nbytes;
        }
    }
    assign_shards(p, o);
    return 0;
}

void cv_plan_free(cv_plan *p) {
    for (size_t i = 0; i < p->n_items; i++) {
        free(p->items[i].name);
        free((void *)p->items[i].parts);
        for (int j = 0; j < p->items[i].n_out; j++) free(p->items[i].out[j].name);
    }
    free(p->items);
    for (size_t s = 0; s < p->n_shards; s++) free(p->shard_names[s]);
    free(p->shard_names);
    memset(p, 0, sizeof *p);
}
