/* atomic_file.h - write a file so that it either appears whole or not at all.
 * Data goes to a temporary sibling "NAME.tmp-XXXXXX", which is flushed,
 * fsync'ed and renamed over NAME; the directory is fsync'ed after. A crash at
 * any point leaves at most a stray temporary file, never a short NAME. */
#ifndef KT_ATOMIC_FILE_H
#define KT_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    FILE *fp;
    char *final_path;
    char *tmp_path;
    unsigned long long written, flushed; /* bytes; writeback started up to `flushed` */
} kt_atomic;

int kt_atomic_open(kt_atomic *a, const char *path);
/* 0: skip fsync (for tools run with --no-fsync). */
void kt_atomic_set_durable(int on);
int kt_atomic_durable(void);
int kt_atomic_write(kt_atomic *a, const void *data, size_t n);
/* Everything but the rename: flushed, fsync'ed, closed (for several files
 * that must all be written before any of them replaces its NAME). */
int kt_atomic_prepare(kt_atomic *a);
int kt_atomic_commit(kt_atomic *a);
void kt_atomic_abort(kt_atomic *a);
/* The whole job for a small file. */
int kt_write_file_atomic(const char *path, const void *data, size_t n);
/* fsync the directory that holds PATH. */
int kt_fsync_parent(const char *path);

#endif
