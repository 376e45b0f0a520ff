/* model.c - load a Nemotron-H model directory into the structs of model.h. */
#include "model.h"
#include "affine.h"
#include "backend.h"
#include "error.h"
#include "json.h"
#include "strbuf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

float kt_vec_at_slow(const kt_vec *v, int i) {
    float f;
    kt_row_to_f32(v->dtype, v->data + (size_t)i * (kt_dtype_bits(v->dtype) / 8), &f, 1);
    return f;
}

/* Look a tensor up and mark it used (kintsugi-verify reports the unused). */
static const st_tensor *find(const kt_model *m, const char *fmt, const char *a, const char *b) {
    char name[512];
    size_t k;
    snprintf(name, sizeof name, fmt, a, b);
    if (!strmap_get(&m->files.by_name, name, strlen(name), &k)) return NULL;
    m->used[k] = 1;
    return kt_model_tensor(&m->files, k);
}

typedef struct {
    char s[96];
} shape_str;

/* "[a, b, c]" for messages. */
static shape_str shape_text(const st_tensor *t) {
    shape_str r;
    size_t k = (size_t)snprintf(r.s, sizeof r.s, "[");
    for (int d = 0; d < t->ndim && k < sizeof r.s; d++)
        k += (size_t)snprintf(r.s + k, sizeof r.s - k, "%s%llu", d ? ", " : "", (unsigned long long)t->shape[d]);
    if (k < sizeof r.s) snprintf(r.s + k, sizeof r.s - k, "]");
    return r;
}

/* The float dtypes the kernels read (bf16, f16, f32). */
static int float_weight(kt_dtype t) { return t == KT_BF16 || t == KT_F16 || t == KT_F32; }

/* Is T of exactly shape DIMS[0..N)? */
static int has_shape(const st_tensor *t, int n, const uint64_t *dims) {
    if (t->ndim != n) return 0;
    for (int d = 0; d < n; d++)
        if (t->shape[d] != dims[d]) return 0;
    return 1;
}

/* The conv1d kernel of C channels and width K: [C, K, 1] as MLX's Conv1d
 * holds it, or [C, 1, K] as Hugging Face stores it (mlx-lm moves the axis
 * when it loads an original; kintsugi-fixup relabels it in a conversion). */
static float *as_floats(const kt_model *m, const st_tensor *t, int n) {
    if (m->headers_only) return NULL;
    float *f = kt_xmalloc((size_t)n * sizeof *f);
    kt_row_to_f32(t->dtype, t->data, f, (size_t)n);
    return f;
}

static int load_conv(const kt_model *m, kt_vec *v, const char *prefix, int channels, int width) {
    const st_tensor *t = find(m, "%s.%s", prefix, "conv1d.weight");
    if (!t) return kt_fail("tensor %s.conv1d.weight is missing", prefix);
    const uint64_t mlx[3] = {(uint64_t)channels, (uint64_t)width, 1}, hf[3] = {(uint64_t)channels, 1, (uint64_t)width};
    if (!float_weight(t->dtype))
        return kt_fail("tensor %s: %s is not a float type we read", t->name, kt_dtype_name(t->dtype));
    if (!has_shape(t, 3, mlx) && !has_shape(t, 3, hf))
        return kt_fail("tensor %s has shape %s, expected [%d, %d, 1]", t->name, shape_text(t).s, channels, width);
    *v = (kt_vec){t->data, t->dtype, channels * width, as_floats(m, t, channels * width)};
    return 0;
}

static int load_vec(const kt_model *m, kt_vec *v, const char *prefix, const char *name, int n) {
    const st_tensor *t = find(m, "%s.%s", prefix, name);
    if (!t) return kt_fail("tensor %s.%s is missing", prefix, name);
    if (!float_weight(t->dtype))
        return kt_fail("tensor %s: %s is not a float type we read", t->name, kt_dtype_name(t->dtype));
    if (t->ndim != 1 || t->shape[0] != (uint64_t)n)
        return kt_fail("tensor %s has shape %s, expected [%d]", t->name, shape_text(t).s, n);
    *v = (kt_vec){t->data, t->dtype, n, as_floats(m, t, n)};
    return 0;
}

/* The bits and group size of a module that has scales and biases: its
 * config.json entry, which must say it is quantized (mlx-lm would leave the
 * module dense and then reject the scales). */
static int quant_params(const cJSON *cfg, const char *path, kt_linear *l) {
    kt_quant_entry q = kt_config_quant_of(cfg, path);
    if (!q.quantized)
        return kt_fail("tensor %s has scales and biases, but config.json does not quantize it (%s)", path,
                       cJSON_GetObjectItemCaseSensitive(cfg, "quantization") ? "its per-layer entry is false"
                                                                             : "no quantization entry");
    l->bits = q.bits, l->group_size = q.group_size;
    return 0;
}

static int load_linear(const kt_model *m, const cJSON *cfg, kt_linear *l, const char *path, int out, int in) {
    const st_tensor *w = find(m, "%s.%s", path, "weight");
    const st_tensor *s = find(m, "%s.%s", path, "scales"), *b = find(m, "%s.%s", path, "biases");
    if (!w) return kt_fail("tensor %s.weight is missing", path);
    memset(l, 0, sizeof *l);
    l->out = out, l->in = in, l->w = w->data;
    if (s && b) {
        if (quant_params(cfg, path, l)) return -1;
        const uint64_t packed[2] = {(uint64_t)out, (uint64_t)in * (uint64_t)l->bits / 32},
                       groups[2] = {(uint64_t)out, (uint64_t)(in / l->group_size)};
        if (w->dtype != KT_U32 || !has_shape(w, 2, packed) || (uint64_t)in * (uint64_t)l->bits % 32 ||
            in % l->group_size || !has_shape(s, 2, groups) || !has_shape(b, 2, groups) || s->dtype != b->dtype ||
            !kt_dtype_is_float(s->dtype))
            return kt_fail("tensor %s: packed weight, scales or biases do not fit [%d, %d] at %d bits, group %d", path,
                           out, in, l->bits, l->group_size);
        l->quantized = 1;
        l->scales = s->data, l->biases = b->data, l->dtype = s->dtype;
        return 0;
    }
    if (w->ndim != 2 || w->shape[0] != (uint64_t)out || w->shape[1] != (uint64_t)in ||
        !float_weight(w->dtype))
        return kt_fail("tensor %s.weight: expected a float [%d, %d]", path, out, in);
    l->dtype = w->dtype;
    return 0;
}

/* DATA + OFFSET; a tensor known only by its header (an archive read as a
 * stream, kt_model_check_files) has no data, and its slices none either. */
static const uint8_t *slice(const uint8_t *data, size_t offset) { return data ? data + offset : NULL; }

/* Expert E of a stacked [E, out, in] tensor (MLX's switch_mlp), as a Linear. */
static int expert_slice(const kt_model *m, const cJSON *cfg, kt_linear *l, const char *path, int e, int n_exp, int out, int in) {
    const st_tensor *w = find(m, "%s.%s", path, "weight");
    const st_tensor *s = find(m, "%s.%s", path, "scales"), *b = find(m, "%s.%s", path, "biases");
    if (!w || w->ndim != 3 || w->shape[0] != (uint64_t)n_exp || w->shape[1] != (uint64_t)out)
        return kt_fail("tensor %s.weight: expected [%d, %d, ...]", path, n_exp, out);
    memset(l, 0, sizeof *l);
    l->out = out, l->in = in;
    if (s && b) {
        if (quant_params(cfg, path, l)) return -1;
        size_t es = kt_dtype_bits(s->dtype) / 8, groups = (size_t)in / (size_t)l->group_size;
        const uint64_t packed[3] = {(uint64_t)n_exp, (uint64_t)out, (uint64_t)in * (uint64_t)l->bits / 32},
                       gshape[3] = {(uint64_t)n_exp, (uint64_t)out, groups};
        if (w->dtype != KT_U32 || !has_shape(w, 3, packed) || (uint64_t)in * (uint64_t)l->bits % 32 ||
            in % l->group_size || !has_shape(s, 3, gshape) || !has_shape(b, 3, gshape) || s->dtype != b->dtype ||
            !kt_dtype_is_float(s->dtype))
            return kt_fail("tensor %s: does not fit [%d, %d, %d]", path, n_exp, out, in);
        l->quantized = 1, l->dtype = s->dtype;
        l->w = slice(w->data, (size_t)e * out * in * l->bits / 8);
        l->scales = slice(s->data, (size_t)e * out * groups * es);
        l->biases = slice(b->data, (size_t)e * out * groups * es);
        return 0;
    }
    if (w->shape[2] != (uint64_t)in || !float_weight(w->dtype))
        return kt_fail("tensor %s.weight: expected a float [%d, %d, %d]", path, n_exp, out, in);
    l->dtype = w->dtype;
    l->w = slice(w->data, (size_t)e * out * in * (kt_dtype_bits(w->dtype) / 8));
    return 0;
}

static int load_moe(kt_model *m, const cJSON *cfg, kt_layer *L, const char *mx) {
    const kt_config *c = &m->cfg;
    char path[200];
    L->fc1 = kt_xcalloc((size_t)c->n_experts, sizeof *L->fc1);
    L->fc2 = kt_xcalloc((size_t)c->n_experts, sizeof *L->fc2);
    for (int e = 0; e < c->n_experts; e++) {
        char up[200], down[200];
        snprintf(up, sizeof up, "%s.experts.%d.up_proj", mx, e);
        snprintf(down, sizeof down, "%s.experts.%d.down_proj", mx, e);
        if (find(m, "%s.%s", up, "weight")) { /* the original: one tensor per expert */
            if (load_linear(m, cfg, &L->fc1[e], up, c->moe_inter, c->hidden) ||
                load_linear(m, cfg, &L->fc2[e], down, c->hidden, c->moe_inter))
                return -1;
        } else {
            snprintf(up, sizeof up, "%s.switch_mlp.fc1", mx);
            snprintf(down, sizeof down, "%s.switch_mlp.fc2", mx);
            if (expert_slice(m, cfg, &L->fc1[e], up, e, c->n_experts, c->moe_inter, c->hidden) ||
                expert_slice(m, cfg, &L->fc2[e], down, e, c->n_experts, c->hidden, c->moe_inter))
                return -1;
        }
    }
    snprintf(path, sizeof path, "%s.gate", mx);
    if (load_linear(m, cfg, &L->gate, path, c->n_experts, c->hidden) ||
        load_vec(m, &L->e_bias, path, "e_score_correction_bias", c->n_experts))
        return -1;
    if (c->has_shared) {
        L->has_shared = 1;
        snprintf(path, sizeof path, "%s.shared_experts.up_proj", mx);
        if (load_linear(m, cfg, &L->sh_up, path, c->moe_shared_inter, c->hidden)) return -1;
        snprintf(path, sizeof path, "%s.shared_experts.down_proj", mx);
        if (load_linear(m, cfg, &L->sh_down, path, c->hidden, c->moe_shared_inter)) return -1;
    }
    return 0;
}

static int load_layer(kt_model *m, const cJSON *cfg, int i) {
    const kt_config *c = &m->cfg;
    kt_layer *L = &m->layers[i];
    char p[128], mx[160];
    snprintf(p, sizeof p, "backbone.layers.%d", i);
    snprintf(mx, sizeof mx, "%s.mixer", p);
    L->kind = c->pattern[i];
    if (load_vec(m, &L->norm, p, "norm.weight", c->hidden)) return -1;
    char path[200];
#define LIN(field, name, out, in) (snprintf(path, sizeof path, "%s.%s", mx, name), load_linear(m, cfg, &L->field, path, out, in))
    if (L->kind == 'M') {
        int I = c->m_heads * c->m_head_dim, conv_dim = I + 2 * c->n_groups * c->state;
        if (LIN(in_proj, "in_proj", I + conv_dim + c->m_heads, c->hidden) || LIN(out_proj, "out_proj", c->hidden, I) ||
            load_conv(m, &L->conv_w, mx, conv_dim, c->conv) ||
            load_vec(m, &L->conv_b, mx, "conv1d.bias", conv_dim) || load_vec(m, &L->dt_bias, mx, "dt_bias", c->m_heads) ||
            load_vec(m, &L->A_log, mx, "A_log", c->m_heads) || load_vec(m, &L->D, mx, "D", c->m_heads) ||
            load_vec(m, &L->gnorm, mx, "norm.weight", I))
            return kt_fail_context("layer %d (Mamba-2)", i);
    } else if (L->kind == '*') {
        int q = c->heads * c->head_dim, kv = c->kv_heads * c->head_dim;
        if (LIN(q, "q_proj", q, c->hidden) || LIN(k, "k_proj", kv, c->hidden) || LIN(v, "v_proj", kv, c->hidden) ||
            LIN(o, "o_proj", c->hidden, q))
            return kt_fail_context("layer %d (attention)", i);
    } else if (L->kind == '-') {
        if (LIN(up, "up_proj", c->intermediate, c->hidden) || LIN(down, "down_proj", c->hidden, c->intermediate))
            return kt_fail_context("layer %d (MLP)", i);
    } else if (L->kind == 'E') {
        if (load_moe(m, cfg, L, mx)) return kt_fail_context("layer %d (MoE)", i);
    } else {
        return kt_fail("layer %d: unsupported layer type %c", i, L->kind);
    }
#undef LIN
    return 0;
}

/* Every weight the config's layers need, found in M->files with its shape
 * and dtype (M->cfg read already). */
static int bind_weights(kt_model *m, const cJSON *cfg) {
    const kt_config *c = &m->cfg;
    m->layers = kt_xcalloc((size_t)c->n_layers + 1, sizeof *m->layers);
    m->used = kt_xcalloc(m->files.n_tensors + 1, 1);
    int rc = load_linear(m, cfg, &m->embed, "backbone.embeddings", c->vocab, c->hidden) ||
             load_linear(m, cfg, &m->lm_head, "lm_head", c->vocab, c->hidden) ||
             load_vec(m, &m->norm_f, "backbone", "norm_f.weight", c->hidden) ? -1 : 0;
    for (int i = 0; i < c->n_layers && rc == 0; i++) rc = load_layer(m, cfg, i);
    return rc;
}

static void free_layers(kt_model *m) {
    for (int i = 0; m->layers && i < m->cfg.n_layers; i++) {
        kt_layer *L = &m->layers[i];
        kt_vec *v[] = {&L->norm, &L->conv_w, &L->conv_b, &L->dt_bias, &L->A_log, &L->D, &L->gnorm, &L->e_bias};
        for (size_t k = 0; k < sizeof v / sizeof *v; k++) free(v[k]->f);
        free(L->fc1);
        free(L->fc2);
    }
    free(m->norm_f.f);
    m->norm_f.f = NULL;
    free(m->layers);
    free(m->used);
    m->layers = NULL, m->used = NULL;
}

size_t kt_model_unused(const kt_model *m, const char *ignore_prefix, char **list) {
    strbuf sb = {0};
    size_t n = 0;
    for (size_t i = 0; i < m->files.n_tensors; i++) {
        const char *name = kt_model_tensor(&m->files, i)->name;
        if (m->used[i] || (ignore_prefix && kt_starts_with(name, ignore_prefix))) continue;
        if (n++ < 3) sb_printf(&sb, "%s%s", n > 1 ? ", " : "", name);
    }
    if (n > 3) sb_puts(&sb, ", ...");
    if (list) *list = sb.data ? sb_take(&sb) : kt_xstrdup("");
    else sb_free(&sb);
    return n;
}

static int load(kt_model *m, const char *dir, int strict) {
    memset(m, 0, sizeof *m);
    m->backend = kt_cpu_backend();
    char *path = kt_path_join(dir, "config.json");
    cJSON *cfg = kt_json_load_file(path, KT_JSON_DUP_LAST_WINS);
    free(path);
    if (!cfg) return -1;
    int rc = kt_config_read(&m->cfg, cfg);
    if (rc == 0) rc = kt_model_open(&m->files, dir);
    if (rc == 0) rc = bind_weights(m, cfg);
    if (rc == 0 && strict) {
        char *list;
        size_t n = kt_model_unused(m, "mtp.", &list);
        if (n)
            rc = kt_fail("%zu tensor%s belong%s to no layer of config.json's pattern \"%s\" (mlx_lm.load refuses "
                         "them too: parameters not in model): %s; fix config.json or reconvert",
                         n, n == 1 ? "" : "s", n == 1 ? "s" : "", m->cfg.pattern, list);
        free(list);
    }
    cJSON_Delete(cfg);
    if (rc) {
        kt_fail_context("%s", dir);
        kt_model_free(m);
    }
    return rc;
}

int kt_model_load(kt_model *m, const char *dir) { return load(m, dir, 1); }
int kt_model_load_lenient(kt_model *m, const char *dir) { return load(m, dir, 0); }

int kt_model_check_files(const cJSON *cfg, const kt_model_files *files, const char *ignore_prefix, char **unused) {
    kt_model m;
    memset(&m, 0, sizeof m);
    *unused = NULL;
    if (kt_config_read(&m.cfg, cfg)) return -1;
    m.files = *files; /* borrowed: only names, shapes and dtypes are read */
    m.headers_only = 1;
    int rc = bind_weights(&m, cfg);
    for (size_t i = 0; rc == 0 && i < files->n_tensors && !*unused; i++) {
        const char *name = kt_model_tensor(files, i)->name;
        if (!m.used[i] && !(ignore_prefix && kt_starts_with(name, ignore_prefix))) *unused = kt_xstrdup(name);
    }
    free_layers(&m);
    kt_config_free(&m.cfg);
    return rc;
}

void kt_model_free(kt_model *m) {
    if (m->backend && m->backend->unload) m->backend->unload(); /* its copies of the weights go too */
    if (m->files.n_shards || m->files.dir) kt_model_close(&m->files);
    free_layers(m);
    free(m->backend_weights);
    kt_config_free(&m->cfg);
    memset(m, 0, sizeof *m);
}

int kt_model_set_activations(kt_model *m, kt_activations a) {
    m->activations = a;
    return m->backend->prepare ? m->backend->prepare(m) : 0;
}
