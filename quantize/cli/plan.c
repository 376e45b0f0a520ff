/* plan.c - choose what happens to each tensor (see plan.h).
 *
 * Default rule, the one mlx_lm applies to Linear and Embedding layers: a
 * floating tensor named "*.weight" with at least two dimensions whose last
 * dimension is a multiple of the group size. --only selects by name instead
 * (then a selected tensor that cannot be quantized is an error, not a quiet
 * copy); --skip removes names from either selection.
 */
#include "plan.h"
#include "error.h"
#include "strbuf.h"
#include "strmap.h"

#include <stdlib.h>
#include <string.h>

pcre2_code *plan_regex(const char *pattern, const char *option) {
    int code;
    PCRE2_SIZE at;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &code, &at, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        kt_fail("%s '%s': %s at offset %zu", option, pattern, (const char *)msg, (size_t)at);
    }
    return re;
}

static int matches(pcre2_code *re, const char *name) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int rc = pcre2_match(re, (PCRE2_SPTR)name, strlen(name), 0, 0, md, NULL);
    pcre2_match_data_free(md);
    return rc >= 0;
}

/* "x.weight" -> "x.<part>"; a name without ".weight" gets ".<part>" appended. */
static char *sibling_name(const char *name, const char *part) {
    size_t base = kt_ends_with(name, ".weight") ? strlen(name) - 7 : strlen(name);
    strbuf sb = {0};
    sb_append(&sb, name, base);
    sb_printf(&sb, ".%s", part);
    return sb_take(&sb);
}

static void set_copy(plan_item *it, const st_tensor *t, const char *reason) {
    it->act = ACT_COPY;
    it->src = t;
    it->reason = reason;
    it->out_name[0] = kt_xstrdup(t->name);
    it->out_dtype[0] = t->dtype;
    memcpy(it->out_shape[0], t->shape, (size_t)t->ndim * sizeof(uint64_t));
    it->n_out = 1;
}

/* NULL when T can be quantized with O, else why not. */
static const char *cannot_quantize(const st_tensor *t, const plan_options *o) {
    if (t->dtype != KT_BF16 && t->dtype != KT_F16 && t->dtype != KT_F32) return "not bf16, f16 or f32";
    if (t->ndim < 2) return "fewer than 2 dimensions";
    if (t->ndim > 8) return "more than 8 dimensions";
    if (t->shape[t->ndim - 1] % (uint64_t)o->group_size != 0) return "last dimension not a multiple of the group size";
    if (t->nelem == 0) return "empty";
    return NULL;
}

static void set_quantize(plan_item *it, const st_tensor *t, const plan_options *o) {
    uint64_t k = t->shape[t->ndim - 1];
    it->act = ACT_QUANTIZE;
    it->src = t;
    it->bits = o->bits;
    it->group_size = o->group_size;
    it->k = k;
    it->rows = t->nelem / k;
    it->out_name[0] = kt_xstrdup(t->name);
    it->out_name[1] = sibling_name(t->name, "scales");
    it->out_name[2] = sibling_name(t->name, "biases");
    for (int i = 0; i < 3; i++) memcpy(it->out_shape[i], t->shape, (size_t)t->ndim * sizeof(uint64_t));
    it->out_shape[0][t->ndim - 1] = k * (uint64_t)o->bits / 32;
    it->out_shape[1][t->ndim - 1] = it->out_shape[2][t->ndim - 1] = k / (uint64_t)o->group_size;
    it->out_dtype[0] = KT_U32;
    it->out_dtype[1] = it->out_dtype[2] = t->dtype;
    it->n_out = 3;
}

static int is_supported_bits(int b) { return b == 2 || b == 3 || b == 4 || b == 5 || b == 6 || b == 8; }
static int is_supported_gs(int g) { return g == 32 || g == 64 || g == 128; }

/* Packed weight P with its scales S: bits * group_size = packed columns * 32 / scale columns. */
static int infer_bits(const st_tensor *p, const st_tensor *s, const plan_options *o, int *bits, int *gs) {
    uint64_t pc = p->shape[p->ndim - 1], sc = s->shape[s->ndim - 1];
    if (sc == 0 || (pc * 32) % sc != 0)
        return kt_fail("tensor '%s': %llu packed columns do not match %llu scale columns", p->name,
                       (unsigned long long)pc, (unsigned long long)sc);
    uint64_t product = pc * 32 / sc;
    if (o->bits_given && o->group_size_given) {
        *bits = o->bits;
        *gs = o->group_size;
    } else if (o->bits_given) {
        *bits = o->bits;
        *gs = (int)(product / (uint64_t)o->bits);
    } else {
        *gs = o->group_size;
        *bits = (int)(product / (uint64_t)o->group_size);
    }
    if ((uint64_t)*bits * (uint64_t)*gs != product || !is_supported_bits(*bits) || !is_supported_gs(*gs))
        return kt_fail("tensor '%s': shapes imply bits x group size = %llu, which does not fit --bits %d "
                       "--group-size %d; give the right values", p->name, (unsigned long long)product,
                       o->bits, o->group_size);
    return 0;
}

static int same_outer_shape(const st_tensor *a, const st_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int d = 0; d + 1 < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

static int set_dequantize(plan_item *it, const st_tensor *w, const st_tensor *s, const st_tensor *b,
                          const plan_options *o) {
    if (s->dtype != b->dtype || s->ndim != b->ndim || !same_outer_shape(s, b) ||
        s->shape[s->ndim - 1] != b->shape[b->ndim - 1])
        return kt_fail("tensor '%s': scales and biases differ in dtype or shape", w->name);
    if (s->dtype != KT_BF16 && s->dtype != KT_F16 && s->dtype != KT_F32)
        return kt_fail("tensor '%s': scales are %s (bf16, f16 or f32 expected)", s->name, kt_dtype_name(s->dtype));
    if (w->ndim < 2 || w->ndim > 8 || !same_outer_shape(w, s))
        return kt_fail("tensor '%s': shape does not match its scales '%s'", w->name, s->name);
    if (infer_bits(w, s, o, &it->bits, &it->group_size)) return -1;
    it->act = ACT_DEQUANTIZE;
    it->src = w;
    it->scales = s;
    it->biases = b;
    it->k = w->shape[w->ndim - 1] * 32 / (uint64_t)it->bits;
    it->rows = it->k ? w->nelem / w->shape[w->ndim - 1] : 0;
    it->out_name[0] = kt_xstrdup(w->name);
    memcpy(it->out_shape[0], w->shape, (size_t)w->ndim * sizeof(uint64_t));
    it->out_shape[0][w->ndim - 1] = it->k;
    it->out_dtype[0] = s->dtype;
    it->n_out = 1;
    return 0;
}

static int plan_quantize(plan *pl, const st_file *f, const plan_options *o) {
    for (size_t i = 0; i < f->n_tensors; i++) {
        const st_tensor *t = &f->tensors[i];
        plan_item *it = &pl->items[pl->n++];
        if (o->skip && matches(o->skip, t->name)) {
            set_copy(it, t, "--skip");
        } else if (o->only) {
            if (!matches(o->only, t->name)) {
                set_copy(it, t, "not matched by --only");
                continue;
            }
            const char *why = cannot_quantize(t, o);
            if (why) return kt_fail("tensor '%s' (selected by --only) cannot be quantized: %s", t->name, why);
            set_quantize(it, t, o);
        } else {
            const char *why = kt_ends_with(t->name, ".weight") ? cannot_quantize(t, o) : "name does not end in .weight";
            if (why) set_copy(it, t, why);
            else set_quantize(it, t, o);
        }
    }
    return 0;
}

static int plan_dequantize(plan *pl, const st_file *f, const plan_options *o) {
    strmap consumed; /* tensors already taken, by name */
    strmap_init(&consumed, f->n_tensors);
    int rc = 0;
    /* First pass: the packed weights and the scales/biases they consume. */
    for (size_t i = 0; i < f->n_tensors && rc == 0; i++) {
        const st_tensor *t = &f->tensors[i];
        if (t->dtype != KT_U32) continue;
        if ((o->only && !matches(o->only, t->name)) || (o->skip && matches(o->skip, t->name))) continue;
        char *sn = sibling_name(t->name, "scales"), *bn = sibling_name(t->name, "biases");
        const st_tensor *s = st_find(f, sn), *b = st_find(f, bn);
        if (s && b) {
            rc = set_dequantize(&pl->items[pl->n++], t, s, b, o);
            strmap_put(&consumed, t->name, strlen(t->name), 1, NULL);
            strmap_put(&consumed, s->name, strlen(s->name), 1, NULL);
            strmap_put(&consumed, b->name, strlen(b->name), 1, NULL);
        } else if (o->only) {
            rc = kt_fail("tensor '%s' (selected by --only) has no '%s' and '%s' beside it", t->name, sn, bn);
        }
        free(sn);
        free(bn);
    }
    /* Second pass: everything else is copied. */
    for (size_t i = 0; i < f->n_tensors && rc == 0; i++) {
        const st_tensor *t = &f->tensors[i];
        if (strmap_get(&consumed, t->name, strlen(t->name), NULL)) continue;
        set_copy(&pl->items[pl->n++], t, "not a quantized weight");
    }
    strmap_free(&consumed);
    return rc;
}

int plan_make(plan *pl, const st_file *f, const plan_options *o) {
    pl->items = calloc(f->n_tensors ? f->n_tensors : 1, sizeof *pl->items);
    pl->n = 0;
    if (!pl->items) return kt_fail("out of memory");
    int rc = o->dequantize ? plan_dequantize(pl, f, o) : plan_quantize(pl, f, o);
    if (rc) return -1;
    /* Every output name once: "x.scales" may already exist beside "x.weight". */
    strmap names;
    strmap_init(&names, 3 * pl->n);
    for (size_t i = 0; i < pl->n && rc == 0; i++)
        for (int j = 0; j < pl->items[i].n_out && rc == 0; j++) {
            const char *name = pl->items[i].out_name[j];
            if (strmap_put(&names, name, strlen(name), i, NULL))
                rc = kt_fail("output tensor '%s' would be written twice (it exists in the input already)", name);
        }
    strmap_free(&names);
    return rc;
}

void plan_free(plan *pl) {
    for (size_t i = 0; i < pl->n; i++)
        for (int j = 0; j < 3; j++) free(pl->items[i].out_name[j]);
    free(pl->items);
    pl->items = NULL;
    pl->n = 0;
}
