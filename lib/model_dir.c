/* model_dir.c - open the safetensors files of a model directory and check
 * the index against them. */
#include "model_dir.h"
#include "error.h"
#include "file.h"
#include "strbuf.h"

#include <dirent.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"

char *kt_path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = kt_xmalloc(n);
    const int slash = dir[0] && dir[strlen(dir) - 1] == '/'; /* "/" and "dir/" need no other */
    snprintf(p, n, "%s%s%s", dir, slash ? "" : "/", name);
    return p;
}

int kt_is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

int kt_is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

void kt_model_close(kt_model_files *m) {
    for (size_t i = 0; i < m->n_shards; i++) {
        st_close(&m->shards[i]);
        free(m->shard_names[i]);
    }
    for (size_t i = 0; i < m->n_unlisted; i++) free(m->unlisted[i]);
    free(m->shards);
    free(m->shard_names);
    free(m->unlisted);
    free(m->refs);
    if (m->by_name.cap) strmap_free(&m->by_name);
    if (m->index) cJSON_Delete(m->index);
    free(m->dir);
    memset(m, 0, sizeof *m);
}

const st_tensor *kt_model_tensor(const kt_model_files *m, size_t i) {
    return &m->shards[m->refs[i].shard].tensors[m->refs[i].tensor];
}

const st_tensor *kt_model_find(const kt_model_files *m, const char *name) {
    size_t i;
    if (!strmap_get(&m->by_name, name, strlen(name), &i)) return NULL;
    return kt_model_tensor(m, i);
}

static int add_shard(kt_model_files *m, const char *name) {
    for (size_t i = 0; i < m->n_shards; i++)
        if (strcmp(m->shard_names[i], name) == 0) return 0;
    m->shards = kt_xrealloc(m->shards, (m->n_shards + 1) * sizeof *m->shards);
    m->shard_names = kt_xrealloc(m->shard_names, (m->n_shards + 1) * sizeof *m->shard_names);
    char *path = kt_path_join(m->dir, name);
    int rc = st_open(&m->shards[m->n_shards], path);
    free(path);
    if (rc) return -1;
    m->shard_names[m->n_shards++] = kt_xstrdup(name);
    return 0;
}

/* Every tensor of every shard, once, in the by-name map. */
static int collect_tensors(kt_model_files *m) {
    size_t total = 0;
    for (size_t s = 0; s < m->n_shards; s++) total += m->shards[s].n_tensors;
    m->refs = kt_xcalloc(total ? total : 1, sizeof *m->refs);
    strmap_init(&m->by_name, total);
    for (size_t s = 0; s < m->n_shards; s++) {
        for (size_t t = 0; t < m->shards[s].n_tensors; t++) {
            const char *name = m->shards[s].tensors[t].name;
            size_t prev;
            if (strmap_put(&m->by_name, name, strlen(name), m->n_tensors, &prev))
                return kt_fail("%s: tensor \"%s\" is in both %s and %s", m->dir, name,
                               m->shard_names[m->refs[prev].shard], m->shard_names[s]);
            m->refs[m->n_tensors++] = (kt_tensor_ref){s, t};
        }
    }
    return 0;
}

static int check_index(kt_model_files *m, cJSON *map) {
    for (cJSON *c = map->child; c; c = c->next) {
        size_t i;
        if (!strmap_get(&m->by_name, c->string, strlen(c->string), &i))
            return kt_fail("%s: %s lists tensor \"%s\" in %s, which does not contain it", m->dir,
                           INDEX_NAME, c->string, c->valuestring);
        const char *actual = m->shard_names[m->refs[i].shard];
        if (strcmp(actual, c->valuestring) != 0)
            return kt_fail("%s: %s puts tensor \"%s\" in %s but it is in %s", m->dir, INDEX_NAME,
                           c->string, c->valuestring, actual);
    }
    for (size_t i = 0; i < m->n_tensors; i++) {
        const st_tensor *t = kt_model_tensor(m, i);
        if (!kt_json_get(map, t->name))
            return kt_fail("%s: tensor \"%s\" of %s is missing from %s", m->dir, t->name,
                           m->shard_names[m->refs[i].shard], INDEX_NAME);
    }
    return 0;
}

void kt_model_find_unlisted(kt_model_files *m) {
    DIR *d = opendir(m->dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (fnmatch("model*.safetensors", e->d_name, 0) != 0) continue;
        int listed = 0;
        for (size_t i = 0; i < m->n_shards && !listed; i++) listed = !strcmp(m->shard_names[i], e->d_name);
        if (listed) continue;
        m->unlisted = kt_xrealloc(m->unlisted, (m->n_unlisted + 1) * sizeof *m->unlisted);
        m->unlisted[m->n_unlisted++] = kt_xstrdup(e->d_name);
    }
    closedir(d);
}

static int open_indexed(kt_model_files *m, const char *index_path) {
    m->index = kt_json_load_file(index_path, KT_JSON_DUP_ERROR);
    if (!m->index) return -1;
    cJSON *map = kt_json_get(m->index, "weight_map");
    if (!cJSON_IsObject(map))
        return kt_fail("%s: no \"weight_map\" object", index_path);
    for (cJSON *c = map->child; c; c = c->next) {
        if (!cJSON_IsString(c) || strchr(c->valuestring, '/') || !strcmp(c->valuestring, "..") ||
            !c->valuestring[0])
            return kt_fail("%s: weight_map entry \"%s\" is not a plain file name", index_path, c->string);
        char *path = kt_path_join(m->dir, c->valuestring);
        int exists = kt_is_file(path);
        free(path);
        if (!exists)
            return kt_fail("%s: shard %s listed for tensor \"%s\" does not exist", m->dir, c->valuestring,
                           c->string);
        if (add_shard(m, c->valuestring)) return -1;
    }
    if (collect_tensors(m)) return -1;
    if (check_index(m, map)) return -1;
    kt_model_find_unlisted(m);
    return 0;
}

int kt_model_from_shards(kt_model_files *m, const char *label, st_file *shards, char **names, size_t n,
                         cJSON *index) {
    memset(m, 0, sizeof *m);
    m->dir = kt_xstrdup(label);
    m->shards = shards;
    m->shard_names = names;
    m->n_shards = n;
    m->index = index;
    int rc = collect_tensors(m);
    if (rc == 0 && index) {
        cJSON *map = kt_json_get(index, "weight_map");
        if (!cJSON_IsObject(map)) rc = kt_fail("%s: %s has no \"weight_map\" object", label, INDEX_NAME);
        for (cJSON *c = map ? map->child : NULL; c && rc == 0; c = c->next) {
            int found = 0;
            for (size_t i = 0; i < n && !found; i++) found = cJSON_IsString(c) && !strcmp(names[i], c->valuestring);
            if (!found)
                rc = kt_fail("%s: shard %s listed for tensor \"%s\" is not there", label,
                             cJSON_IsString(c) ? c->valuestring : "?", c->string);
        }
        if (rc == 0) rc = check_index(m, map);
    }
    if (rc) kt_model_close(m);
    return rc;
}

int kt_model_open_file(kt_model_files *m, const char *path) {
    memset(m, 0, sizeof *m);
    const char *slash = strrchr(path, '/');
    if (slash) {
        m->dir = kt_xmalloc((size_t)(slash - path) + 1);
        memcpy(m->dir, path, (size_t)(slash - path));
        m->dir[slash - path] = '\0';
        if (!m->dir[0]) strcpy(m->dir, "/");
    } else {
        m->dir = kt_xstrdup(".");
    }
    int rc = add_shard(m, slash ? slash + 1 : path);
    if (rc == 0) rc = collect_tensors(m);
    if (rc) kt_model_close(m);
    return rc;
}

int kt_model_open(kt_model_files *m, const char *dir) {
    memset(m, 0, sizeof *m);
    m->dir = kt_xstrdup(dir);
    if (!kt_is_dir(dir)) {
        kt_fail_io("%s: not a directory", dir);
        kt_model_close(m);
        return -1;
    }
    char *index_path = kt_path_join(dir, INDEX_NAME);
    char *single_path = kt_path_join(dir, SINGLE_NAME);
    int rc;
    if (kt_is_file(index_path)) {
        rc = open_indexed(m, index_path);
    } else if (kt_is_file(single_path)) {
        rc = add_shard(m, SINGLE_NAME);
        if (rc == 0) rc = collect_tensors(m);
        if (rc == 0) kt_model_find_unlisted(m);
    } else {
        rc = kt_fail_io("%s: no %s and no %s", dir, SINGLE_NAME, INDEX_NAME);
    }
    free(index_path);
    free(single_path);
    if (rc) kt_model_close(m);
    return rc;
}

int kt_check_model_dir(const char *dir) {
    if (kt_check_dir(dir)) return -1;
    char *cfg = kt_path_join(dir, "config.json");
    struct stat st;
    int rc = stat(cfg, &st) == 0 ? 0 : kt_fail("%s: no such file; not a model directory", cfg);
    free(cfg);
    return rc;
}
