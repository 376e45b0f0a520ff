/* repair.c - findings, operations, and carrying them out. */
#include "repair.h"
#include "backup.h"
#include "dtype.h"
#include "error.h"
#include "strbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void fx_find(fx_session *s, const char *rule, const char *file, int fixable, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char buf[1024];
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    s->findings = kt_xrealloc(s->findings, (s->n_findings + 1) * sizeof *s->findings);
    s->findings[s->n_findings++] = (fx_finding){rule, kt_xstrdup(file), kt_xstrdup(buf), fixable};
}

fx_op *fx_add_op(fx_session *s, fx_op_kind kind, const char *file) {
    s->ops = kt_xrealloc(s->ops, (s->n_ops + 1) * sizeof *s->ops);
    fx_op *op = &s->ops[s->n_ops++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->file = kt_xstrdup(file);
    return op;
}

void fx_session_free(fx_session *s) {
    for (size_t i = 0; i < s->n_findings; i++) {
        free(s->findings[i].file);
        free(s->findings[i].reason);
    }
    for (size_t i = 0; i < s->n_ops; i++) {
        fx_op *op = &s->ops[i];
        free(op->file);
        free(op->old_text);
        free(op->new_text);
        for (size_t t = 0; t < op->n_tensors; t++) free(op->tensors[t]);
        free(op->tensors);
        for (size_t t = 0; t < op->n_casts; t++) free(op->casts[t]);
        free(op->casts);
    }
    free(s->findings);
    free(s->ops);
}

static int cmp_begin(const void *a, const void *b) {
    const st_tensor *x = *(st_tensor *const *)a, *y = *(st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static int listed(char *const *names, size_t n, const char *name) {
    for (size_t k = 0; k < n; k++)
        if (!strcmp(names[k], name)) return 1;
    return 0;
}

/* One tensor's bytes cast to DT, as MLX's astype does (round to nearest even). */
static int write_cast(st_writer *w, const st_tensor *t, kt_dtype dt) {
    enum { CHUNK = 1 << 16 };
    float *f = kt_xmalloc(CHUNK * sizeof *f);
    unsigned char *out = kt_xmalloc(CHUNK * 4);
    const size_t in_es = kt_dtype_bits(t->dtype) / 8, out_es = kt_dtype_bits(dt) / 8;
    int rc = 0;
    for (uint64_t i = 0; i < t->nelem && rc == 0; i += CHUNK) {
        size_t n = t->nelem - i < CHUNK ? (size_t)(t->nelem - i) : CHUNK;
        rc = kt_row_to_f32(t->dtype, t->data + i * in_es, f, n) || kt_row_from_f32(dt, f, out, n) ? -1 : 0;
        if (rc == 0) rc = st_writer_write(w, out, n * out_es);
    }
    free(f);
    free(out);
    return rc;
}

/* Rewrite a shard with new shapes for the listed conv1d weights (same bytes,
 * a new header) and the listed casts: the same tensors in the same order,
 * and the same metadata. */
static int relabel_shard(const char *path, const fx_op *op) {
    st_file f;
    if (st_open(&f, path)) return -1;
    st_tensor **order = kt_xcalloc(f.n_tensors + 1, sizeof *order);
    for (size_t i = 0; i < f.n_tensors; i++) order[i] = &f.tensors[i];
    qsort(order, f.n_tensors, sizeof *order, cmp_begin);
    st_spec *specs = kt_xcalloc(f.n_tensors + 1, sizeof *specs);
    uint64_t (*shapes)[3] = kt_xcalloc(f.n_tensors + 1, sizeof *shapes);
    for (size_t i = 0; i < f.n_tensors; i++) {
        const st_tensor *t = order[i];
        specs[i] = (st_spec){t->name, t->dtype, t->ndim, t->shape};
        if (listed(op->tensors, op->n_tensors, t->name)) {
            shapes[i][0] = t->shape[0], shapes[i][1] = t->shape[2], shapes[i][2] = 1;
            specs[i].shape = shapes[i];
        }
        if (listed(op->casts, op->n_casts, t->name)) specs[i].dtype = (kt_dtype)op->cast_to;
    }
    cJSON *meta = f.metadata ? cJSON_Duplicate(f.metadata, 1) : cJSON_CreateObject();
    int rc = fx_keep_original(path);
    st_writer *w = rc ? NULL : st_writer_create(path, specs, f.n_tensors, meta);
    if (!w) rc = -1;
    for (size_t i = 0; i < f.n_tensors && rc == 0; i++)
        rc = specs[i].dtype != order[i]->dtype ? write_cast(w, order[i], specs[i].dtype)
                                               : st_writer_write(w, order[i]->data, order[i]->nbytes);
    if (w) rc = rc ? (st_writer_abort(w), -1) : st_writer_finish(w);
    cJSON_Delete(meta);
    free(shapes);
    free(specs);
    free(order);
    st_close(&f);
    return rc;
}

int fx_apply(fx_session *s) {
    for (size_t i = 0; i < s->n_ops; i++) {
        const fx_op *op = &s->ops[i];
        char *path = kt_path_join(s->dir, op->file);
        int rc = 0;
        if (op->kind == FX_WRITE) {
            rc = fx_replace_file(path, op->new_text, op->new_len);
        } else if (op->kind == FX_SHARD_SHAPES) {
            rc = relabel_shard(path, op);
        } else {
            strbuf sb = {0};
            sb_printf(&sb, "%s.unlisted", path);
            char *to = sb_take(&sb);
            struct stat st;
            if (lstat(to, &st) == 0) rc = kt_fail_io("%s exists; move it away first", to);
            else if (rename(path, to) != 0) rc = kt_fail_io("cannot move %s aside: %s", path, kt_errno_text(errno));
            free(to);
        }
        free(path);
        if (rc) return kt_fail_context("%s", op->file);
    }
    return 0;
}

/* Open the shards even when the index is wrong (that is one of the repairs):
 * the shards the index names that exist, else every model*.safetensors. */
int fx_open_lenient(kt_model_files *m, const char *dir) {
    if (kt_model_open(m, dir) == 0) return 0;
    char *ipath = kt_path_join(dir, "model.safetensors.index.json");
    cJSON *idx = kt_is_file(ipath) ? kt_json_load_file(ipath, KT_JSON_DUP_LAST_WINS) : NULL;
    free(ipath);
    if (!idx) return -1; /* the original error stands */
    char **names = NULL;
    size_t n = 0;
    cJSON *map = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
    for (cJSON *c = map ? map->child : NULL; c; c = c->next) {
        if (!cJSON_IsString(c) || strchr(c->valuestring, '/')) continue;
        int seen = 0;
        for (size_t i = 0; i < n && !seen; i++) seen = !strcmp(names[i], c->valuestring);
        char *p = kt_path_join(dir, c->valuestring);
        int missing = !seen && !kt_is_file(p);
        free(p);
        if (missing) {
            /* Missing data is never rebuilt away: an index without this
             * shard would make an incomplete model look whole. */
            kt_fail("%s/%s: listed in model.safetensors.index.json (tensor %s) but missing; restore the shard or "
                    "reconvert (the index is not rebuilt around missing data)", dir, c->valuestring, c->string);
            for (size_t j = 0; j < n; j++) free(names[j]);
            free(names);
            cJSON_Delete(idx);
            return -1;
        }
        if (!seen) {
            names = kt_xrealloc(names, (n + 1) * sizeof *names);
            names[n++] = kt_xstrdup(c->valuestring);
        }
    }
    cJSON_Delete(idx);
    st_file *shards = kt_xcalloc(n + 1, sizeof *shards);
    for (size_t i = 0; i < n; i++) {
        char *p = kt_path_join(dir, names[i]);
        int rc = st_open(&shards[i], p);
        free(p);
        if (rc) {
            for (size_t j = 0; j < i; j++) st_close(&shards[j]);
            for (size_t j = 0; j < n; j++) free(names[j]);
            free(names);
            free(shards);
            return -1;
        }
    }
    if (n == 0) {
        free(names);
        free(shards);
        return kt_fail("%s: the index names no existing shard", dir);
    }
    if (kt_model_from_shards(m, dir, shards, names, n, NULL)) return -1;
    kt_model_find_unlisted(m); /* what mlx-lm would also load */
    return 0;
}

const fx_rule_info fx_rules[] = {
    {"config-dtype", "config.json names torch_dtype (transformers 5 writes dtype)"},
    {"config-mode", "no \"mode\" key in the quantization entries"},
    {"config-time-step-limit", "time_step_limit is [0.0, Infinity] as numbers"},
    {"config-quantization-twin", "quantization and quantization_config both present"},
    {"config-null-quant-params", "every group_size and bits in the quantization entries a number"},
    {"config-layer-pattern", "layer pattern, layer count and tensors agree"},
    {"tokenizer-class", "tokenizer_config.json names a loadable tokenizer class"},
    {"tokenizer-chat-template", "a chat template is present"},
    {"tensors-conv1d-layout", "conv1d weights in MLX layout [C, K, 1]"},
    {"tensors-cast", "float tensors in config.json's torch_dtype, as mlx_lm.convert casts them"},
    {"shards-unlisted", "no model*.safetensors outside the index"},
    {"index-rebuild", "index weight_map and total_size match the shards"},
    {NULL, NULL},
};

char *fx_conditional(const char *reason) {
    /* the past participles the rules use, each after the word it follows */
    static const char *const from[] = {" was ", " renamed to ", " removed", " added", "; now ", "; moved to ", "; relabelled ",
                                       "; rebuilt from ", " restored from ", " restored byte", " set to ", "; rewritten",
                                       "; restored "};
    static const char *const to[] = {" is ", " would be renamed to ", " would be removed", " would be added", "; would become ",
                                     "; would be moved to ", "; would be relabelled ", "; would be rebuilt from ",
                                     " would be restored from ", " would be restored byte", " would be set to ",
                                     "; would be rewritten", "; would be restored "};
    strbuf sb = {0};
    for (const char *p = reason; *p;) {
        size_t k = 0, n = sizeof from / sizeof *from;
        while (k < n && strncmp(p, from[k], strlen(from[k]))) k++;
        if (k < n) {
            sb_puts(&sb, to[k]);
            p += strlen(from[k]);
        } else {
            sb_putc(&sb, *p++);
        }
    }
    sb_cstr(&sb);
    return sb_take(&sb);
}
