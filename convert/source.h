/* source.h - where a conversion reads from: a model directory (mapped) or an
 * archive read as a stream, never extracted.
 *
 * Both give the same kt_model_files (tensor names, dtypes, shapes) before any
 * tensor data is read. A directory's tensors are mapped and readable at any
 * time; an archive's arrive in the order they are stored, so the converter
 * asks for them in that order (cv_source_arrival) and each tensor's bytes
 * are in memory only from cv_source_fetch until cv_source_release.
 */
#ifndef KT_CONVERT_SOURCE_H
#define KT_CONVERT_SOURCE_H

#include <stddef.h>

#include "model_dir.h"

typedef struct cv_archive cv_archive;

typedef struct {
    char *path;
    kt_model_files m;
    cv_archive *archive;   /* NULL for a directory */
    const char **files;    /* a directory's side files, from cv_source_list_files */
} cv_source;

/* PATH: a directory, or a .tar, .tar.gz, .tgz, .tar.zst, .tar.xz or .zip file. */
int cv_source_open(cv_source *s, const char *path);
void cv_source_close(cv_source *s);

/* A side file by name (config.json, tokenizer.json, ...): a malloc'd copy in
 * *DATA. Returns 1 when it exists, 0 when not, -1 on error. */
int cv_source_read_file(cv_source *s, const char *name, char **data, size_t *len);
/* The names of the side files present, for copying (NULL-terminated; owned
 * by the source). */
const char **cv_source_list_files(cv_source *s);

/* Position of T in the stream: for an archive the stored order, for a
 * directory the shards by name, each by offset. */
uint64_t cv_source_arrival(const cv_source *s, const st_tensor *t);
/* Make T->data valid. */
int cv_source_fetch(cv_source *s, const st_tensor *t);
/* T's bytes are no longer needed (a directory: drop them from memory). */
void cv_source_release(cv_source *s, const st_tensor *t);
/* For a directory: bytes [OFFSET, OFFSET + LEN) of T will be needed soon
 * (WILL_NEED: the kernel starts reading) or are done (dropped from the
 * process, kept in the page cache). Nothing for an archive. */
void cv_source_advise(cv_source *s, const st_tensor *t, uint64_t offset, uint64_t len, int will_need);
/* For a directory: map bytes [OFFSET, OFFSET + LEN) of T now, in one call,
 * rather than page fault by page fault while computing (Linux 5.14+). */
void cv_source_map(cv_source *s, const st_tensor *t, uint64_t offset, uint64_t len);

int cv_source_is_archive_name(const char *path);

#endif
