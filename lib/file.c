/* file.c - see file.h. */
#include "file.h"
#include "error.h"
#include "strbuf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int kt_read_file(const char *path, char **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? 0 : kt_fail_io("%s: cannot open: %s", path, kt_errno_text(errno));
    strbuf sb = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) sb_append(&sb, chunk, n);
    int err = ferror(f);
    fclose(f);
    if (err) {
        sb_free(&sb);
        return kt_fail_io("%s: read error", path);
    }
    *len = sb.len;
    *data = sb_take(&sb);
    return 1;
}

int kt_check_dir(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return kt_fail_io("%s: %s", path, kt_errno_text(errno));
    if (!S_ISDIR(st.st_mode)) return kt_fail_io("%s: %s", path, kt_errno_text(ENOTDIR));
    if (access(path, R_OK | X_OK) != 0) return kt_fail_io("%s: %s", path, kt_errno_text(errno));
    return 0;
}

int kt_read_input(const char *path, char **data, size_t *len) {
    if (strcmp(path, "-")) return kt_read_file(path, data, len);
    strbuf sb = {0};
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) sb_append(&sb, buf, n);
    if (ferror(stdin)) {
        sb_free(&sb);
        return kt_fail_io("standard input: %s", kt_errno_text(errno));
    }
    sb_cstr(&sb);
    *len = sb.len;
    *data = sb_take(&sb);
    return 1;
}

int kt_next_line(const char *text, size_t len, size_t *pos, long *line, const char **s, size_t *n) {
    while (*pos < len) {
        const char *at = text + *pos, *nl = memchr(at, '\n', len - *pos);
        const size_t k = nl ? (size_t)(nl - at) : len - *pos;
        *pos += k + 1;
        ++*line;
        size_t blank = 0;
        while (blank < k && (at[blank] == ' ' || at[blank] == '\t' || at[blank] == '\r')) blank++;
        if (blank < k) {
            *s = at, *n = k;
            return 1;
        }
    }
    return 0;
}
