/* backup.c - see backup.h. */
#include "backup.h"
#include "atomic_file.h"
#include "error.h"
#include "file.h"
#include "strbuf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int copy_file(const char *from, const char *to) {
    char *data = NULL;
    size_t len = 0;
    int rc = kt_read_file(from, &data, &len);
    if (rc == 1) rc = kt_write_file_atomic(to, data, len);
    free(data);
    return rc < 0 ? -1 : 0;
}

int fx_keep_original(const char *path) {
    strbuf sb = {0};
    sb_printf(&sb, "%s.orig", path);
    char *orig = sb_take(&sb);
    struct stat st;
    int rc = 0;
    if (lstat(orig, &st) != 0 && lstat(path, &st) == 0) {
        if (link(path, orig) != 0) rc = copy_file(path, orig); /* another filesystem or no links: copy */
        if (rc == 0) rc = kt_fsync_parent(orig);
    }
    free(orig);
    return rc;
}

int fx_replace_file(const char *path, const void *data, size_t len) {
    if (fx_keep_original(path)) return -1;
    return kt_write_file_atomic(path, data, len);
}
