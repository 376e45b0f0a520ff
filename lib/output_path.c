/* output_path.c - see output_path.h. */
#include "output_path.h"
#include "error.h"
#include "model_dir.h"
#include "strbuf.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Drop the last component of an absolute path in SB ("/a/b" -> "/a"). */
static void pop_component(strbuf *sb) {
    char *s = sb->data;
    char *slash = strrchr(s, '/');
    if (!slash) return;
    sb->len = slash == s ? 1 : (size_t)(slash - s);
    s[sb->len] = 0;
}

char *kt_resolve_path(const char *path) {
    strbuf sb = {0};
    if (path[0] != '/') {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) {
            kt_fail_io("cannot read the current directory: %s", kt_errno_text(errno));
            return NULL;
        }
        sb_puts(&sb, cwd);
    } else {
        sb_puts(&sb, "/");
    }
    /* Walk component by component: while the path exists, each step is put
     * through realpath() so that a symlink is followed before a later ".."
     * applies; once a component is missing, nothing below it can be a link,
     * and the rest is resolved as text. */
    int exists = 1;
    const char *p = path;
    while (*p) {
        while (*p == '/') p++;
        const char *end = p;
        while (*end && *end != '/') end++;
        size_t n = (size_t)(end - p);
        if (n == 0) break;
        if (n == 1 && p[0] == '.') {
            /* nothing */
        } else if (n == 2 && p[0] == '.' && p[1] == '.') {
            pop_component(&sb);
        } else {
            if (sb.len > 1) sb_putc(&sb, '/');
            sb_append(&sb, p, n);
            if (exists) {
                char *real = realpath(sb_cstr(&sb), NULL);
                if (real) {
                    sb.len = 0;
                    sb_puts(&sb, real);
                    free(real);
                } else if (errno == ENOENT) {
                    exists = 0;
                } else {
                    kt_fail_io("%s: %s", path, kt_errno_text(errno));
                    sb_free(&sb);
                    return NULL;
                }
            }
        }
        p = end;
    }
    return sb_take(&sb);
}

int kt_path_within(const char *a, const char *b) {
    size_t n = strlen(b);
    if (n == 1 && b[0] == '/') return 1;
    return strncmp(a, b, n) == 0 && (a[n] == 0 || a[n] == '/');
}

int kt_is_model_dir(const char *path) {
    char *cfg = kt_path_join(path, "config.json");
    int ok = kt_is_file(cfg);
    free(cfg);
    if (!ok) return 0;
    DIR *d = opendir(path);
    if (!d) return 0;
    struct dirent *e;
    ok = 0;
    while (!ok && (e = readdir(d)))
        ok = !strncmp(e->d_name, "model", 5) && kt_ends_with(e->d_name, ".safetensors");
    closedir(d);
    return ok;
}

/* Refuse OUT when it is, lies within, or contains one of the inputs. */
static int check_against_inputs(const char *out, const char *real_out, const char *const *inputs, int n,
                                int file_output) {
    for (int i = 0; i < n; i++) {
        if (!inputs[i]) continue;
        char *in = kt_resolve_path(inputs[i]);
        if (!in) return -1;
        int rc = 0;
        if (!strcmp(real_out, in))
            rc = kt_fail_io("%s: the output is the input %s; inputs are never overwritten", out, inputs[i]);
        else if (kt_path_within(real_out, in) && (kt_is_dir(in) || !file_output))
            rc = kt_fail_io("%s: the output lies inside the input %s; inputs are never modified", out, inputs[i]);
        else if (kt_path_within(in, real_out))
            rc = kt_fail_io("%s: the output contains the input %s; replacing it would delete the input", out,
                            inputs[i]);
        free(in);
        if (rc) return rc;
    }
    return 0;
}

int kt_output_dir_ok(const char *dst, const char *const *inputs, int n, int force) {
    char *real = kt_resolve_path(dst);
    if (!real) return -1;
    int rc = check_against_inputs(dst, real, inputs, n, 0);
    struct stat st;
    if (rc == 0 && lstat(dst, &st) == 0) {
        if (!force) rc = kt_fail_io("%s exists (use --force to replace it)", dst);
        else if (!S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))
            rc = kt_fail_io("%s exists and is not a directory; --force replaces only a model directory", dst);
        else if (!kt_is_model_dir(dst))
            rc = kt_fail_io("%s exists and is not a model directory (no config.json and model*.safetensors); "
                            "--force replaces only a model directory", dst);
    }
    free(real);
    return rc;
}

int kt_output_file_ok(const char *out, const char *const *inputs, int n, int force, const char *suffix) {
    char *real = kt_resolve_path(out);
    if (!real) return -1;
    int rc = check_against_inputs(out, real, inputs, n, 1);
    struct stat st;
    if (rc == 0 && stat(out, &st) == 0) {
        if (S_ISDIR(st.st_mode)) rc = kt_fail_io("%s: is a directory", out);
        else if (!force) rc = kt_fail_io("%s exists (use --force to replace it)", out);
        else if (!S_ISREG(st.st_mode) || (suffix && !kt_ends_with(out, suffix)))
            rc = kt_fail_io("%s exists and is not a %s file; --force replaces only such a file", out,
                            suffix ? suffix : "regular");
    }
    free(real);
    return rc;
}

int kt_remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlink(path);
    DIR *d = opendir(path);
    if (!d) return -1;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *child = kt_path_join(path, e->d_name);
        if (kt_remove_tree(child)) rc = -1;
        free(child);
    }
    closedir(d);
    return rmdir(path) || rc ? -1 : 0;
}

int kt_make_parents(const char *path) {
    strbuf sb = {0};
    sb_puts(&sb, path);
    char *s = sb.data;
    int rc = 0;
    for (char *p = s + 1; *p && rc == 0; p++) { /* every prefix that ends before a '/' */
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(s, 0755) != 0 && errno != EEXIST) rc = kt_fail_io("cannot create %s: %s", s, kt_errno_text(errno));
        *p = '/';
    }
    sb_free(&sb);
    return rc;
}
