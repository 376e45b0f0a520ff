/* rules_tensors.c - rules on the safetensors files and the index.
 *
 *   tensors-conv1d-layout  a conv1d weight left in the Hugging Face layout [C,1,K]:
 *                          MLX's Conv1d holds [C,K,1]; mlx_lm.load moves the axis on
 *                          every load, loaders without that step get the wrong
 *                          shape. Relabelled [C,K,1] (an axis of length 1 moves:
 *                          same bytes, new header)
 *   shards-unlisted        a model*.safetensors the index does not list: mlx-lm
 *                          globs and loads it anyway (duplicate or stale weights);
 *                          reported, moved to NAME.unlisted with --fix-shards
 *   index-rebuild          weight_map or total_size disagree with the shards
 *   tensors-cast           float tensors in another dtype than config.json's
 *                          torch_dtype, beside others in it: what mlx_lm.convert
 *                          leaves when it skips the cast (a transformers-5 source
 *                          names its dtype "dtype", which mlx_lm.convert does not
 *                          read: D and dt_bias stay float32). Cast as mlx_lm.convert
 *                          casts: every float tensor but A_log and
 *                          e_score_correction_bias (nemotron_h's cast_predicate), to
 *                          torch_dtype, rounding to nearest even. A conversion whose
 *                          float tensors are all in one other dtype (a --dtype the
 *                          user chose) is left as it is.
 */
#include "repair.h"
#include "backup.h"
#include "error.h"
#include "file.h"
#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

/* The rewrite of SHARD, shared by the rules that change its tensors. */
static fx_op *shard_op(fx_session *s, const char *shard) {
    for (size_t i = 0; i < s->n_ops; i++)
        if (s->ops[i].kind == FX_SHARD_SHAPES && !strcmp(s->ops[i].file, shard)) return &s->ops[i];
    return fx_add_op(s, FX_SHARD_SHAPES, shard);
}

static int rule_conv1d(fx_session *s, const kt_model_files *m) {
    for (size_t sh = 0; sh < m->n_shards; sh++) {
        fx_op *op = NULL;
        const st_file *f = &m->shards[sh];
        for (size_t i = 0; i < f->n_tensors; i++) {
            const st_tensor *t = &f->tensors[i];
            if (!strstr(t->name, "conv1d.weight") || t->ndim != 3 || t->shape[1] != 1 || t->shape[2] == 1) continue;
            fx_find(s, "tensors-conv1d-layout", m->shard_names[sh], 1, "%s has the Hugging Face shape [%llu, 1, %llu]; "
                    "relabelled [%llu, %llu, 1] as MLX expects (same bytes)", t->name,
                    (unsigned long long)t->shape[0], (unsigned long long)t->shape[2],
                    (unsigned long long)t->shape[0], (unsigned long long)t->shape[2]);
            if (!op) op = shard_op(s, m->shard_names[sh]);
            op->tensors = kt_xrealloc(op->tensors, (op->n_tensors + 1) * sizeof *op->tensors);
            op->tensors[op->n_tensors++] = kt_xstrdup(t->name);
        }
    }
    return 0;
}

/* The tensors mlx_lm.convert casts to torch_dtype: floating, and not those
 * nemotron_h's cast_predicate keeps. */
static int castable(const st_tensor *t) {
    return (t->dtype == KT_BF16 || t->dtype == KT_F16 || t->dtype == KT_F32) && !strstr(t->name, "A_log") &&
           !strstr(t->name, "e_score_correction_bias");
}

/* The dtype a pending tensors-cast gives NAME, or -1. */
static int pending_cast(const fx_session *s, const char *name) {
    for (size_t i = 0; i < s->n_ops; i++)
        for (size_t k = 0; k < s->ops[i].n_casts; k++)
            if (!strcmp(s->ops[i].casts[k], name)) return s->ops[i].cast_to;
    return -1;
}

static int rule_cast(fx_session *s, const kt_model_files *m) {
    char *path = kt_path_join(s->dir, "config.json");
    cJSON *cfg = kt_json_load_file(path, KT_JSON_DUP_LAST_WINS);
    free(path);
    const cJSON *d = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "torch_dtype") : NULL;
    if (!cJSON_IsString(d)) d = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "dtype") : NULL; /* config-dtype renames it */
    const char *name = cJSON_IsString(d) ? d->valuestring : "";
    const int want = !strcmp(name, "bfloat16") ? KT_BF16 : !strcmp(name, "float16") ? KT_F16
                     : !strcmp(name, "float32") ? KT_F32 : -1;
    size_t in_dtype = 0, other = 0;
    for (size_t sh = 0; sh < m->n_shards && want >= 0; sh++)
        for (size_t i = 0; i < m->shards[sh].n_tensors; i++) {
            const st_tensor *t = &m->shards[sh].tensors[i];
            if (castable(t)) (int)t->dtype == want ? in_dtype++ : other++;
        }
    if (want >= 0 && other && in_dtype)
        for (size_t sh = 0; sh < m->n_shards; sh++)
            for (size_t i = 0; i < m->shards[sh].n_tensors; i++) {
                const st_tensor *t = &m->shards[sh].tensors[i];
                if (!castable(t) || (int)t->dtype == want) continue;
                fx_find(s, "tensors-cast", m->shard_names[sh], 1, "%s is %s where config.json's torch_dtype is %s "
                        "(mlx_lm.convert skipped the cast); cast to %s as mlx_lm.convert casts", t->name,
                        kt_dtype_name(t->dtype), name, kt_dtype_name((kt_dtype)want));
                fx_op *op = shard_op(s, m->shard_names[sh]);
                op->casts = kt_xrealloc(op->casts, (op->n_casts + 1) * sizeof *op->casts);
                op->casts[op->n_casts++] = kt_xstrdup(t->name);
                op->cast_to = want;
            }
    cJSON_Delete(cfg);
    return 0;
}

static void rule_unlisted(fx_session *s, const kt_model_files *m) {
    for (size_t i = 0; i < m->n_unlisted; i++) {
        if (s->fix_shards)
            fx_find(s, "shards-unlisted", m->unlisted[i], 1, "%s is not in model.safetensors.index.json but mlx-lm "
                    "loads every model*.safetensors; moved to %s.unlisted (kept, not deleted; mlx-lm no longer loads "
                    "it)", m->unlisted[i], m->unlisted[i]);
        else
            fx_find(s, "shards-unlisted", m->unlisted[i], 0, "%s is not in model.safetensors.index.json but mlx-lm "
                    "loads every model*.safetensors (--fix-shards renames it to %s.unlisted)", m->unlisted[i],
                    m->unlisted[i]);
        if (s->fix_shards) fx_add_op(s, FX_MOVE_ASIDE, m->unlisted[i]);
    }
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int rule_index(fx_session *s, const kt_model_files *m) {
    char *path = kt_path_join(s->dir, "model.safetensors.index.json"), *text = NULL;
    size_t len = 0;
    int found = kt_read_file(path, &text, &len);
    free(path);
    if (found <= 0) return found;
    cJSON *idx = kt_json_parse(text, len, KT_JSON_DUP_LAST_WINS, "model.safetensors.index.json");
    if (!cJSON_IsObject(idx)) {
        cJSON_Delete(idx);
        idx = cJSON_CreateObject();
    }
    uint64_t total = 0, total_now = 0; /* after the pending casts, and as the shards are */
    const char **names = kt_xcalloc(m->n_tensors + 1, sizeof *names);
    for (size_t i = 0; i < m->n_tensors; i++) {
        const st_tensor *t = kt_model_tensor(m, i);
        const int to = pending_cast(s, t->name);
        total += to >= 0 ? t->nelem * (kt_dtype_bits((kt_dtype)to) / 8) : t->nbytes;
        total_now += t->nbytes;
        names[i] = t->name;
    }
    qsort(names, m->n_tensors, sizeof *names, cmp_str);
    cJSON *map = cJSON_CreateObject();
    for (size_t i = 0; i < m->n_tensors; i++) {
        size_t k;
        strmap_get(&m->by_name, names[i], strlen(names[i]), &k);
        cJSON_AddStringToObject(map, names[i], m->shard_names[m->refs[k].shard]);
    }
    free(names);
    cJSON *old_map = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
    cJSON *meta = cJSON_GetObjectItemCaseSensitive(idx, "metadata");
    uint64_t old_total = 0;
    int total_ok = cJSON_IsObject(meta) && kt_json_u64(cJSON_GetObjectItemCaseSensitive(meta, "total_size"), &old_total) == 0 &&
                   old_total == total;
    int map_ok = old_map && cJSON_Compare(old_map, map, 1);
    if (total_ok && map_ok) {
        cJSON_Delete(map);
        cJSON_Delete(idx);
        free(text);
        return 0;
    }
    if (!cJSON_IsObject(meta)) {
        meta = cJSON_CreateObject();
        cJSON_AddItemToObject(idx, "metadata", meta);
    }
    cJSON *t = kt_json_new_int((long long)total);
    if (cJSON_GetObjectItemCaseSensitive(meta, "total_size")) cJSON_ReplaceItemInObjectCaseSensitive(meta, "total_size", t);
    else cJSON_AddItemToObject(meta, "total_size", t);
    if (old_map) cJSON_ReplaceItemInObjectCaseSensitive(idx, "weight_map", map);
    else cJSON_AddItemToObject(idx, "weight_map", map);
    fx_find(s, "index-rebuild", "model.safetensors.index.json", 1, "%s%s%s; rebuilt from the shards",
            map_ok ? "" : "weight_map does not match the shards", !map_ok && !total_ok ? " and " : "",
            total_ok ? "" : old_total == total_now ? "total_size changes with the tensors cast" : "total_size is wrong");
    fx_op *op = fx_add_op(s, FX_WRITE, "model.safetensors.index.json");
    op->old_text = text, op->old_len = len;
    op->new_text = kt_json_print(idx, &KT_JSON_PYTHON_INDENT4);
    op->new_len = strlen(op->new_text);
    cJSON_Delete(idx);
    return 0;
}

int fx_rules_tensors(fx_session *s, const kt_model_files *m) {
    if (rule_conv1d(s, m) || rule_cast(s, m)) return -1;
    rule_unlisted(s, m);
    return rule_index(s, m) < 0 ? -1 : 0;
}
