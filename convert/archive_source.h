/* archive_source.h - a model inside a .tar(.gz/.zst/.xz) or .zip, read with
 * libarchive as a stream: one pass for the headers and small files, a second
 * pass for the tensor data, in stored order. Nothing is extracted to disk. */
#ifndef KT_CONVERT_ARCHIVE_SOURCE_H
#define KT_CONVERT_ARCHIVE_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "model_dir.h"

typedef struct cv_archive cv_archive;

extern const char *const CV_SIDE_FILES[];
int cv_is_side_file(const char *name);

int cv_archive_open(cv_archive **a, const char *path, kt_model_files *m);
void cv_archive_close(cv_archive *a);
int cv_archive_read_file(cv_archive *a, const char *name, char **data, size_t *len);
const char **cv_archive_list_files(cv_archive *a);
uint64_t cv_archive_arrival(const cv_archive *a, const st_tensor *t);
int cv_archive_fetch(cv_archive *a, const st_tensor *t);
void cv_archive_release(cv_archive *a, const st_tensor *t);

#endif
