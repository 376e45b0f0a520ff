/* output_dir.c - see output_dir.h. */
#include "output_dir.h"
#include "atomic_file.h"
#include "error.h"
#include "model_dir.h"
#include "output_path.h"
#include "strbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The leftovers of runs that were killed (SIGKILL, power loss) before they
 * could clean up: DST.kintsugi-tmp-PID (a partial output: removed) and
 * DST.kintsugi-old-PID (the previous DST, moved aside just before the final
 * rename: put back when DST is missing, else removed). Only those whose
 * process is gone are touched. */
static void clean_stale(const char *dst) {
    char *slash = strrchr(dst, '/');
    strbuf dir = {0};
    if (slash) sb_append(&dir, dst, slash == dst ? 1 : (size_t)(slash - dst));
    else sb_puts(&dir, ".");
    const char *base = slash ? slash + 1 : dst;
    const size_t blen = strlen(base);
    DIR *d = opendir(sb_cstr(&dir));
    if (!d) {
        sb_free(&dir);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *rest = e->d_name + blen;
        int tmp;
        if (strncmp(e->d_name, base, blen)) continue;
        if (!strncmp(rest, ".kintsugi-tmp-", 14)) tmp = 1;
        else if (!strncmp(rest, ".kintsugi-old-", 14)) tmp = 0;
        else continue;
        char *end;
        long pid = strtol(rest + 14, &end, 10);
        if (*end || pid <= 0 || (kill((pid_t)pid, 0) == 0 || errno != ESRCH)) continue;
        char *path = kt_path_join(sb_cstr(&dir), e->d_name);
        struct stat st;
        if (!tmp && lstat(dst, &st) != 0) rename(path, dst);
        else kt_remove_tree(path);
        free(path);
    }
    closedir(d);
    sb_free(&dir);
}

int cv_outdir_check(cv_outdir *o, const char *dst, const char *const *inputs, int n_inputs, int force) {
    memset(o, 0, sizeof *o);
    size_t n = strlen(dst);
    while (n > 1 && dst[n - 1] == '/') n--;
    strbuf sb = {0};
    sb_append(&sb, dst, n);
    o->dst = sb_take(&sb);
    /* the leftovers first: a DST that a killed --force run had moved aside
     * comes back here, and the check below must see it */
    clean_stale(o->dst);
    return kt_output_dir_ok(o->dst, inputs, n_inputs, force);
}

int cv_outdir_begin(cv_outdir *o) {
    if (kt_make_parents(o->dst)) return -1;
    strbuf sb = {0};
    sb_printf(&sb, "%s.kintsugi-tmp-%ld", o->dst, (long)getpid());
    o->tmp = sb_take(&sb);
    kt_remove_tree(o->tmp); /* a leftover of an earlier run with the same pid */
    if (mkdir(o->tmp, 0755) != 0) return kt_fail_io("cannot create %s: %s", o->tmp, kt_errno_text(errno));
    return 0;
}

char *cv_outdir_path(const cv_outdir *o, const char *name) { return kt_path_join(o->tmp, name); }

static int fsync_dir(const char *path) {
    if (!kt_atomic_durable()) return 0;
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int cv_outdir_commit(cv_outdir *o) {
    if (fsync_dir(o->tmp)) return kt_fail_io("cannot sync %s: %s", o->tmp, kt_errno_text(errno));
    char *old = NULL;
    struct stat st;
    if (lstat(o->dst, &st) == 0) {
        strbuf sb = {0};
        sb_printf(&sb, "%s.kintsugi-old-%ld", o->dst, (long)getpid());
        old = sb_take(&sb);
        if (rename(o->dst, old) != 0) {
            int e = errno;
            free(old);
            return kt_fail_io("cannot move the existing %s aside: %s", o->dst, kt_errno_text(e));
        }
    }
    if (rename(o->tmp, o->dst) != 0) {
        int e = errno;
        if (old) rename(old, o->dst);
        free(old);
        return kt_fail_io("cannot rename %s to %s: %s", o->tmp, o->dst, kt_errno_text(e));
    }
    kt_fsync_parent(o->dst);
    if (old) {
        if (kt_remove_tree(old)) fprintf(stderr, "kintsugi-convert: warning: could not remove %s\n", old);
        free(old);
    }
    free(o->tmp);
    o->tmp = NULL;
    return 0;
}

void cv_outdir_abort(cv_outdir *o) {
    if (o->tmp) kt_remove_tree(o->tmp);
    free(o->tmp);
    free(o->dst);
    memset(o, 0, sizeof *o);
}
