/* archive_source.c - see archive_source.h.
 *
 * Pass 1 reads every entry's name; of the safetensors files only the 8-byte
 * length and the header (st_open_header checks every rule without the data),
 * of the small files (config, tokenizer, *.py) the whole content; tensor data
 * is skipped. The model's directory is the one holding config.json.
 * Pass 2 reopens the archive and reads the shards' data front to back: a
 * tensor's bytes are read when it is fetched (and those of tensors stored
 * before it, which wait in memory until fetched), and freed on release.
 */
#include "archive_source.h"
#include "error.h"
#include "strbuf.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SIDE_FILE (256u << 20) /* a tokenizer.json is tens of MB */
#ifndef CV_ARCHIVE_BLOCK /* read size; the fuzz build makes it small, each run opens twice */
#define CV_ARCHIVE_BLOCK (1 << 20)
#endif

typedef struct {
    char *dir, *name;   /* entry path = dir + name */
    char *data;
    size_t len;
} small_file;

typedef struct {
    char *dir, *name;
    st_file header;     /* data pointers NULL until read */
    size_t entry_no;    /* position among the archive's entries */
} shard_entry;

struct cv_archive {
    char *path;
    char *root;                 /* directory of config.json inside the archive ("" or "x/") */
    small_file *files;
    size_t n_files;
    const char **file_names;    /* side files of root, NULL-terminated */
    kt_model_files *m;
    /* pass 2 */
    struct archive *a;
    size_t shard;               /* index into m->shards of the entry being read */
    st_tensor **order;          /* its tensors by offset */
    size_t next;                /* next tensor to read */
    int in_entry;
    uint64_t *arrival_base;     /* per shard: arrival rank of its first tensor */
};

/* A libarchive failure as the tools classify it (docs/CLI.md): the system's
 * own errors (no such file, permission denied, a read error, a full disk)
 * are I/O, exit 2; everything else (a truncated or corrupt archive) is
 * malformed input, exit 1. */
static int archive_failure(struct archive *a, const char *label) {
    const int e = archive_errno(a);
    const char *what = archive_error_string(a) ? archive_error_string(a) : "cannot read the archive";
    if (e == EIO || e == ENOSPC || e == EACCES || e == EPERM || e == ENOENT || e == ENOTDIR || e == EISDIR ||
        e == ELOOP || e == ENOMEM)
        return kt_fail_io("%s: %s", label, what);
    return kt_fail("%s: %s (a truncated or corrupt archive)", label, what);
}

static struct archive *open_reader(const char *path) {
    struct archive *a = archive_read_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    archive_read_support_format_zip(a);
    if (archive_read_open_filename(a, path, CV_ARCHIVE_BLOCK) != ARCHIVE_OK) {
        kt_fail_io("%s: %s", path, archive_error_string(a) ? archive_error_string(a) : "cannot open the archive");
        archive_read_free(a);
        return NULL;
    }
    return a;
}

/* Read exactly N bytes of the current entry. */
static int read_exact(struct archive *a, const char *label, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        la_ssize_t r = archive_read_data(a, (char *)buf + got, n - got);
        if (r < 0) return archive_failure(a, label);
        if (r == 0) return kt_fail("%s: the entry ends after %zu of %zu bytes", label, got, n);
        got += (size_t)r;
    }
    return 0;
}

static void split_path(const char *p, char **dir, char **name) {
    const char *slash = strrchr(p, '/');
    size_t d = slash ? (size_t)(slash - p) + 1 : 0;
    strbuf sb = {0};
    sb_append(&sb, p, d);
    *dir = sb_take(&sb);
    *name = kt_xstrdup(p + d);
}

static char *label_of(const cv_archive *A, const char *entry) {
    strbuf sb = {0};
    sb_printf(&sb, "%s:%s", A->path, entry);
    return sb_take(&sb);
}

static int pass1(cv_archive *A, shard_entry **shards, size_t *n_shards) {
    struct archive *a = open_reader(A->path);
    if (!a) return -1;
    struct archive_entry *e;
    int rc = 0, r;
    size_t entry_no = 0;
    while (rc == 0 && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
        entry_no++;
        const char *p = archive_entry_pathname(e);
        if (!p || archive_entry_filetype(e) != AE_IFREG) continue;
        char *dir, *name;
        split_path(p, &dir, &name);
        int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
        char *label = label_of(A, p);
        if (kt_ends_with(name, ".safetensors")) {
            uint8_t len8[8];
            rc = size < 8 ? kt_fail("%s: too short or unknown size", label) : read_exact(a, label, len8, 8);
            uint64_t n = 0;
            for (int i = 7; i >= 0 && rc == 0; i--) n = (n << 8) | len8[i];
            if (rc == 0 && (n > 100000000ull || n > (uint64_t)size - 8))
                rc = kt_fail("%s: header length %llu is impossible", label, (unsigned long long)n);
            if (rc == 0) {
                uint8_t *head = kt_xmalloc((size_t)n + 8);
                memcpy(head, len8, 8);
                rc = read_exact(a, label, head + 8, (size_t)n);
                *shards = kt_xrealloc(*shards, (*n_shards + 1) * sizeof **shards);
                shard_entry *s = &(*shards)[*n_shards];
                memset(s, 0, sizeof *s);
                if (rc == 0) rc = st_open_header(&s->header, label, head, (size_t)n + 8, (uint64_t)size);
                free(head);
                if (rc == 0) {
                    s->dir = dir, s->name = name, s->entry_no = entry_no;
                    (*n_shards)++;
                    dir = name = NULL;
                }
            }
        } else if (!strcmp(name, "config.json") || !strcmp(name, "model.safetensors.index.json") ||
                   cv_is_side_file(name)) {
            if (size < 0 || (uint64_t)size > MAX_SIDE_FILE) {
                rc = kt_fail("%s: %s size for a configuration or tokenizer file", label, size < 0 ? "unknown" : "too large a");
            } else {
                char *data = kt_xmalloc((size_t)size + 1);
                rc = read_exact(a, label, data, (size_t)size);
                data[size] = 0;
                A->files = kt_xrealloc(A->files, (A->n_files + 1) * sizeof *A->files);
                A->files[A->n_files++] = (small_file){dir, name, data, (size_t)size};
                dir = name = NULL;
            }
        }
        free(label);
        free(dir);
        free(name);
    }
    if (rc == 0 && r != ARCHIVE_EOF) rc = archive_failure(a, A->path);
    archive_read_free(a);
    return rc;
}

static int cmp_begin(const void *x, const void *y) {
    const st_tensor *a = *(st_tensor *const *)x, *b = *(st_tensor *const *)y;
    return a->begin < b->begin ? -1 : a->begin > b->begin;
}

int cv_archive_open(cv_archive **out, const char *path, kt_model_files *m) {
    cv_archive *A = kt_xcalloc(1, sizeof *A);
    *out = A;
    A->path = kt_xstrdup(path);
    A->m = m;
    shard_entry *shards = NULL;
    size_t n_shards = 0;
    int rc = pass1(A, &shards, &n_shards);
    /* the model is where config.json is; the shallowest if several */
    const small_file *config = NULL;
    for (size_t i = 0; rc == 0 && i < A->n_files; i++)
        if (!strcmp(A->files[i].name, "config.json") && (!config || strlen(A->files[i].dir) < strlen(config->dir)))
            config = &A->files[i];
    if (rc == 0 && !config) rc = kt_fail("%s: no config.json in the archive", path);
    /* Several model directories: converting one of them silently would be a
     * guess; name them all and let the user unpack the one they mean. */
    size_t n_models = 0;
    for (size_t i = 0; rc == 0 && i < A->n_files; i++) n_models += !strcmp(A->files[i].name, "config.json");
    if (rc == 0 && n_models > 1) {
        strbuf list = {0};
        for (size_t i = 0; i < A->n_files; i++)
            if (!strcmp(A->files[i].name, "config.json"))
                sb_printf(&list, "%s%s", list.len ? ", " : "", *A->files[i].dir ? A->files[i].dir : "./");
        rc = kt_fail("%s: the archive holds %zu model directories (%s); convert one: unpack it or make an archive "
                     "of it alone", path, n_models, sb_cstr(&list));
        sb_free(&list);
    }
    cJSON *index = NULL;
    if (rc == 0) {
        A->root = kt_xstrdup(config->dir);
        for (size_t i = 0; i < A->n_files; i++)
            if (!strcmp(A->files[i].dir, A->root) && !strcmp(A->files[i].name, "model.safetensors.index.json")) {
                index = kt_json_parse(A->files[i].data, A->files[i].len, KT_JSON_DUP_ERROR,
                                      "model.safetensors.index.json");
                if (!index) rc = -1;
            }
    }
    /* the shards of root, in the order they are stored */
    st_file *files = kt_xcalloc(n_shards + 1, sizeof *files);
    char **names = kt_xcalloc(n_shards + 1, sizeof *names);
    size_t n = 0;
    for (size_t i = 0; i < n_shards; i++) {
        shard_entry *s = &shards[i];
        int here = rc == 0 && !strcmp(s->dir, A->root);
        int listed = 0;
        if (here && index) {
            cJSON *map = kt_json_get(index, "weight_map");
            for (cJSON *c = map ? map->child : NULL; c && !listed; c = c->next)
                listed = cJSON_IsString(c) && !strcmp(c->valuestring, s->name);
        } else if (here) {
            listed = !strcmp(s->name, "model.safetensors");
        }
        if (listed) {
            files[n] = s->header;
            names[n++] = s->name;
            s->name = NULL;
        } else {
            if (here && !strncmp(s->name, "model", 5) && rc == 0)
                rc = kt_fail("%s: %s%s is not listed in the index (mlx-lm would load it too)", path, A->root, s->name);
            st_close(&s->header);
        }
        free(s->dir);
        free(s->name);
    }
    free(shards);
    if (rc == 0 && n == 0) rc = kt_fail("%s: no model.safetensors or indexed shards beside %sconfig.json", path, A->root);
    if (rc == 0) {
        rc = kt_model_from_shards(m, path, files, names, n, index);
    } else {
        for (size_t i = 0; i < n; i++) {
            st_close(&files[i]);
            free(names[i]);
        }
        free(files);
        free(names);
        cJSON_Delete(index);
    }
    if (rc == 0) {
        A->arrival_base = kt_xcalloc(n + 1, sizeof *A->arrival_base);
        for (size_t s = 0; s < n; s++) A->arrival_base[s + 1] = A->arrival_base[s] + m->shards[s].n_tensors;
        size_t k = 0;
        A->file_names = kt_xcalloc(A->n_files + 1, sizeof *A->file_names);
        for (size_t i = 0; i < A->n_files; i++)
            if (!strcmp(A->files[i].dir, A->root) && cv_is_side_file(A->files[i].name))
                A->file_names[k++] = A->files[i].name;
    }
    return rc;
}

void cv_archive_close(cv_archive *A) {
    if (!A) return;
    if (A->a) archive_read_free(A->a);
    for (size_t s = 0; A->m && s < A->m->n_shards; s++)
        for (size_t t = 0; t < A->m->shards[s].n_tensors; t++) {
            st_tensor *x = &A->m->shards[s].tensors[t];
            free((void *)x->data);
            x->data = NULL;
        }
    for (size_t i = 0; i < A->n_files; i++) {
        free(A->files[i].dir);
        free(A->files[i].name);
        free(A->files[i].data);
    }
    free(A->files);
    free(A->file_names);
    free(A->order);
    free(A->arrival_base);
    free(A->root);
    free(A->path);
    free(A);
}

int cv_archive_read_file(cv_archive *A, const char *name, char **data, size_t *len) {
    for (size_t i = 0; i < A->n_files; i++)
        if (!strcmp(A->files[i].dir, A->root) && !strcmp(A->files[i].name, name)) {
            *data = kt_xmalloc(A->files[i].len + 1);
            memcpy(*data, A->files[i].data, A->files[i].len + 1);
            *len = A->files[i].len;
            return 1;
        }
    return 0;
}

const char **cv_archive_list_files(cv_archive *A) { return A->file_names; }

/* Which shard holds T, and its rank by offset there. */
static size_t shard_of(const cv_archive *A, const st_tensor *t) {
    for (size_t s = 0; s < A->m->n_shards; s++)
        if (t >= A->m->shards[s].tensors && t < A->m->shards[s].tensors + A->m->shards[s].n_tensors) return s;
    return SIZE_MAX;
}

uint64_t cv_archive_arrival(const cv_archive *A, const st_tensor *t) {
    size_t s = shard_of(A, t);
    const st_file *f = &A->m->shards[s];
    uint64_t before = 0;
    for (size_t i = 0; i < f->n_tensors; i++) before += f->tensors[i].begin < t->begin;
    return A->arrival_base[s] + before;
}

/* Move to the next shard entry of the model; its header is skipped. */
static int next_shard_entry(cv_archive *A) {
    struct archive_entry *e;
    int r;
    while ((r = archive_read_next_header(A->a, &e)) == ARCHIVE_OK) {
        const char *p = archive_entry_pathname(e);
        if (!p || archive_entry_filetype(e) != AE_IFREG) continue;
        char *dir, *name;
        split_path(p, &dir, &name);
        size_t found = SIZE_MAX;
        if (!strcmp(dir, A->root))
            for (size_t s = 0; s < A->m->n_shards; s++)
                if (!strcmp(A->m->shard_names[s], name)) found = s;
        free(dir);
        free(name);
        if (found == SIZE_MAX) continue;
        st_file *f = &A->m->shards[found];
        char *label = label_of(A, p);
        size_t skip = (size_t)(8 + f->header_len);
        char *tmp = kt_xmalloc(skip);
        int rc = read_exact(A->a, label, tmp, skip);
        free(tmp);
        free(label);
        if (rc) return -1;
        A->shard = found;
        free(A->order);
        A->order = kt_xcalloc(f->n_tensors + 1, sizeof *A->order);
        for (size_t i = 0; i < f->n_tensors; i++) A->order[i] = &f->tensors[i];
        qsort(A->order, f->n_tensors, sizeof *A->order, cmp_begin);
        A->next = 0;
        A->in_entry = 1;
        return 0;
    }
    if (r == ARCHIVE_EOF) return kt_fail("%s: a shard ended before all its tensors were read", A->path);
    return archive_failure(A->a, A->path);
}

int cv_archive_fetch(cv_archive *A, const st_tensor *want) {
    if (want->data) return 0;
    if (!A->a && !(A->a = open_reader(A->path))) return -1;
    while (!want->data) {
        if (!A->in_entry || A->next == A->m->shards[A->shard].n_tensors) {
            A->in_entry = 0;
            if (next_shard_entry(A)) return -1;
            continue;
        }
        st_tensor *t = A->order[A->next++];
        void *buf = kt_xmalloc((size_t)t->nbytes + 1);
        char *label = label_of(A, A->m->shard_names[A->shard]);
        int rc = read_exact(A->a, label, buf, (size_t)t->nbytes);
        free(label);
        if (rc) {
            free(buf);
            return kt_fail_context("tensor '%s'", t->name);
        }
        t->data = buf;
    }
    return 0;
}

void cv_archive_release(cv_archive *A, const st_tensor *t) {
    (void)A;
    st_tensor *x = (st_tensor *)t;
    free((void *)x->data);
    x->data = NULL;
}
