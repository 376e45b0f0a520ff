/* source.c - the directory half of source.h, and the dispatch to archive.c. */
#include "source.h"
#include "archive_source.h"
#include "error.h"
#include "file.h"
#include "strbuf.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <unistd.h>

/* The side files a conversion copies (besides *.py). */
const char *const CV_SIDE_FILES[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                     "chat_template.jinja", "added_tokens.json", "tokenizer.model",
                                     "generation_config.json", NULL};

int cv_is_side_file(const char *name) {
    size_t n = strlen(name);
    if (n > 3 && !strcmp(name + n - 3, ".py")) return 1;
    for (int i = 0; CV_SIDE_FILES[i]; i++)
        if (!strcmp(name, CV_SIDE_FILES[i])) return 1;
    return 0;
}

int cv_source_is_archive_name(const char *path) {
    static const char *ext[] = {".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.xz", ".tar.bz2", ".zip"};
    size_t n = strlen(path);
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++) {
        size_t e = strlen(ext[i]);
        if (n > e && !strcmp(path + n - e, ext[i])) return 1;
    }
    return 0;
}

int cv_source_open(cv_source *s, const char *path) {
    memset(s, 0, sizeof *s);
    s->path = kt_xstrdup(path);
    if (kt_is_dir(path)) return kt_check_model_dir(path) ? -1 : kt_model_open(&s->m, path);
    struct stat st;
    if (stat(path, &st) != 0) return kt_fail_io("%s: %s", path, kt_errno_text(errno));
    if (!S_ISREG(st.st_mode) || !cv_source_is_archive_name(path))
        return kt_fail_io("%s: not a directory or an archive (.tar, .tar.gz, .tar.zst, .zip)", path);
    return cv_archive_open(&s->archive, path, &s->m);
}

void cv_source_close(cv_source *s) {
    if (s->archive) cv_archive_close(s->archive);
    for (size_t i = 0; s->files && s->files[i]; i++) free((void *)s->files[i]);
    free(s->files);
    kt_model_close(&s->m);
    free(s->path);
    memset(s, 0, sizeof *s);
}

int cv_source_read_file(cv_source *s, const char *name, char **data, size_t *len) {
    if (s->archive) return cv_archive_read_file(s->archive, name, data, len);
    char *p = kt_path_join(s->path, name);
    int rc = kt_is_file(p) ? kt_read_file(p, data, len) : 0;
    free(p);
    return rc;
}

const char **cv_source_list_files(cv_source *s) {
    if (s->archive) return cv_archive_list_files(s->archive);
    if (s->files) return s->files;
    size_t n = 0;
    const char **names = kt_xcalloc(1, sizeof *names);
    DIR *d = opendir(s->path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!cv_is_side_file(e->d_name)) continue;
        char *p = kt_path_join(s->path, e->d_name);
        int ok = kt_is_file(p);
        free(p);
        if (!ok) continue;
        names = kt_xrealloc(names, (n + 2) * sizeof *names);
        names[n++] = kt_xstrdup(e->d_name);
        names[n] = NULL;
    }
    if (d) closedir(d);
    s->files = names;
    return names;
}

/* A directory is read in the order an archive of it usually stores it: the
 * shards by name, each front to back. The converter writes in arrival order,
 * so a directory and an archive whose shards are stored by name give the same
 * bytes, and the source is read sequentially. */
uint64_t cv_source_arrival(const cv_source *s, const st_tensor *t) {
    if (s->archive) return cv_archive_arrival(s->archive, t);
    const kt_model_files *m = &s->m;
    size_t shard = 0;
    for (size_t i = 0; i < m->n_shards; i++)
        if (t >= m->shards[i].tensors && t < m->shards[i].tensors + m->shards[i].n_tensors) shard = i;
    uint64_t before = 0;
    for (size_t i = 0; i < m->n_shards; i++)
        if (strcmp(m->shard_names[i], m->shard_names[shard]) < 0) before += m->shards[i].n_tensors;
    const st_file *f = &m->shards[shard];
    for (size_t i = 0; i < f->n_tensors; i++) before += f->tensors[i].begin < t->begin;
    return before;
}

int cv_source_fetch(cv_source *s, const st_tensor *t) {
    return s->archive ? cv_archive_fetch(s->archive, t) : 0;
}

void cv_source_release(cv_source *s, const st_tensor *t) {
    if (s->archive) cv_archive_release(s->archive, t);
    else cv_source_advise(s, t, 0, t->nbytes, 0);
}

void cv_source_advise(cv_source *s, const st_tensor *t, uint64_t offset, uint64_t len, int will_need) {
    if (s->archive || !t->data || offset >= t->nbytes) return;
    if (len > t->nbytes - offset) len = t->nbytes - offset;
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)(t->data + offset), b = a + len;
    /* only whole pages inside the range may be dropped: a neighbour's bytes
     * would merely be read again, but keep the rule simple and exact */
    if (will_need) {
        a &= ~(uintptr_t)(page - 1);
        madvise((void *)a, b - a, MADV_WILLNEED); /* the kernel reads ahead while we compute */
    } else {
        a = (a + (uintptr_t)page - 1) & ~(uintptr_t)(page - 1);
        b &= ~(uintptr_t)(page - 1);
        if (b > a) madvise((void *)a, b - a, MADV_DONTNEED); /* out of our RSS, still in the page cache */
    }
}

void cv_source_map(cv_source *s, const st_tensor *t, uint64_t offset, uint64_t len) {
#ifdef MADV_POPULATE_READ
    if (s->archive || !t->data || offset >= t->nbytes) return;
    if (len > t->nbytes - offset) len = t->nbytes - offset;
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)(t->data + offset) & ~(uintptr_t)(page - 1), b = (uintptr_t)(t->data + offset + len);
    /* one call maps the window's pages instead of one page fault per few pages;
     * on kernels before 5.14 it fails harmlessly and the faults happen instead */
    madvise((void *)a, b - a, MADV_POPULATE_READ);
#else
    (void)s, (void)t, (void)offset, (void)len;
#endif
}
