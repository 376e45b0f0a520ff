/* output_dir.c - see output_dir.h. */
#include "output_dir.h"
#include "atomic_file.h"
#include "error.h"
#include "file.h"
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

/* The journal of a swap: the names of the entries moved from DST into the
 * temporary directory, NUL-terminated, written before the first move. */
#define JOURNAL ".kintsugi-kept"

static void names_add(kt_names *n, const char *name) {
    n->names = kt_xrealloc(n->names, (n->n + 1) * sizeof *n->names);
    n->names[n->n++] = kt_xstrdup(name);
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void names_sort(kt_names *n) {
    if (n->n) qsort(n->names, n->n, sizeof *n->names, cmp_names);
}

static void names_free(kt_names *n) {
    for (size_t i = 0; i < n->n; i++) free(n->names[i]);
    free(n->names);
    memset(n, 0, sizeof *n);
}

static char *names_list(const kt_names *n, size_t max_shown) {
    strbuf sb = {0};
    size_t shown = n->n <= max_shown ? n->n : max_shown;
    for (size_t i = 0; i < shown; i++) {
        if (i) sb_puts(&sb, i + 1 == n->n ? " and " : ", ");
        sb_puts(&sb, n->names[i]);
    }
    if (shown < n->n) sb_printf(&sb, " and %zu more", n->n - shown);
    if (!sb.data) sb_puts(&sb, "");
    return sb_take(&sb);
}

int kt_outdir_stale_model_file(const char *name) {
    return (kt_starts_with(name, "model") && kt_ends_with(name, ".safetensors")) ||
           !strcmp(name, "model.safetensors.index.json");
}

static int exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

/* The entries named in DIR's journal (an empty list when it has none). */
static void read_journal(const char *dir, kt_names *out) {
    char *path = kt_path_join(dir, JOURNAL);
    char *data = NULL;
    size_t len = 0;
    if (kt_read_file(path, &data, &len) == 1)
        for (size_t i = 0; i < len;) {
            size_t n = strnlen(data + i, len - i);
            if (n && i + n < len) names_add(out, data + i);
            i += n + 1;
        }
    free(data);
    free(path);
}

/* Remove a temporary directory TMP for DST, after the user's entries that
 * its journal names went back into DST; when one cannot go back, TMP is left
 * as it is and the user is told where their files are. */
static void discard_tmp(const char *tmp, const char *dst, const char *prog) {
    kt_names kept = {0};
    int lost = 0;
    read_journal(tmp, &kept);
    for (size_t i = 0; i < kept.n; i++) {
        char *from = kt_path_join(tmp, kept.names[i]), *to = kt_path_join(dst, kept.names[i]);
        if (exists(from) && (exists(to) || rename(from, to) != 0)) lost = 1;
        free(from);
        free(to);
    }
    if (lost)
        fprintf(stderr, "%s: warning: %s holds files of yours that could not be moved back into %s; it was "
                        "left as it is\n", prog, tmp, dst);
    else kt_remove_tree(tmp);
    names_free(&kept);
}

/* The leftovers of runs that were killed (SIGKILL, power loss) before they
 * could clean up, only those whose process is gone. First every
 * DST.kintsugi-old-PID (the previous DST, moved aside just before the final
 * rename): put back when DST is missing, else removed (by then it holds only
 * what the tool made). Then every DST.kintsugi-tmp-PID (a partial output):
 * the user's entries its journal names go back into DST, the rest is
 * removed. */
static void clean_stale(const char *dst, const char *prog) {
    char *slash = strrchr(dst, '/');
    strbuf dir = {0};
    if (slash) sb_append(&dir, dst, slash == dst ? 1 : (size_t)(slash - dst));
    else sb_puts(&dir, ".");
    const char *base = slash ? slash + 1 : dst;
    const size_t blen = strlen(base);
    for (int pass = 0; pass < 2; pass++) {
        DIR *d = opendir(sb_cstr(&dir));
        if (!d) break;
        struct dirent *e;
        while ((e = readdir(d))) {
            const char *rest = e->d_name + blen;
            if (strncmp(e->d_name, base, blen)) continue;
            if (strncmp(rest, pass == 0 ? ".kintsugi-old-" : ".kintsugi-tmp-", 14)) continue;
            char *end;
            long pid = strtol(rest + 14, &end, 10);
            if (*end || pid <= 0 || (kill((pid_t)pid, 0) == 0 || errno != ESRCH)) continue;
            char *path = kt_path_join(sb_cstr(&dir), e->d_name);
            if (pass == 0) {
                if (!exists(dst)) rename(path, dst);
                else kt_remove_tree(path);
            } else {
                discard_tmp(path, dst, prog);
            }
            free(path);
        }
        closedir(d);
    }
    /* a journal carried into DST by a run killed just after its final rename */
    char *j = kt_path_join(dst, JOURNAL);
    unlink(j);
    free(j);
    sb_free(&dir);
}

int kt_outdir_check(kt_outdir *o, const char *prog, const char *dst, const char *const *inputs, int n_inputs,
                    int force) {
    memset(o, 0, sizeof *o);
    o->prog = prog;
    o->stale = kt_outdir_stale_model_file;
    size_t n = strlen(dst);
    while (n > 1 && dst[n - 1] == '/') n--;
    strbuf sb = {0};
    sb_append(&sb, dst, n);
    o->dst = sb_take(&sb);
    /* a symlink to a directory: the directory it points to is the output
     * (renaming over the link would leave its target as it was) */
    struct stat st;
    if (lstat(o->dst, &st) == 0 && S_ISLNK(st.st_mode) && stat(o->dst, &st) == 0 && S_ISDIR(st.st_mode)) {
        char *real = realpath(o->dst, NULL);
        if (real) {
            free(o->dst);
            o->dst = real;
        }
    }
    /* the leftovers first: a DST that a killed --force run had moved aside
     * comes back here, and the check below must see it */
    clean_stale(o->dst, prog);
    return kt_output_dir_ok(o->dst, inputs, n_inputs, force);
}

int kt_outdir_begin(kt_outdir *o) {
    if (kt_make_parents(o->dst)) return -1;
    strbuf sb = {0};
    sb_printf(&sb, "%s.kintsugi-tmp-%ld", o->dst, (long)getpid());
    o->tmp = sb_take(&sb);
    kt_remove_tree(o->tmp); /* a leftover of an earlier run with the same pid */
    if (mkdir(o->tmp, 0755) != 0) return kt_fail_io("cannot create %s: %s", o->tmp, kt_errno_text(errno));
    return 0;
}

char *kt_outdir_path(const kt_outdir *o, const char *name) { return kt_path_join(o->tmp, name); }

char *kt_outdir_existing(const kt_outdir *o, const char *name) {
    char *p = kt_path_join(o->dst, name);
    if (exists(p)) return p;
    free(p);
    return NULL;
}

static int fsync_dir(const char *path) {
    if (!kt_atomic_durable()) return 0;
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Sort DST's entries into replaced, removed and kept. */
static int classify(kt_outdir *o) {
    DIR *d = opendir(o->dst);
    if (!d) return kt_fail_io("%s: %s", o->dst, kt_errno_text(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *in_new = kt_path_join(o->tmp, e->d_name);
        if (exists(in_new)) names_add(&o->replaced, e->d_name);
        else if (!strcmp(e->d_name, JOURNAL) || o->stale(e->d_name)) names_add(&o->removed, e->d_name);
        else names_add(&o->kept, e->d_name);
        free(in_new);
    }
    closedir(d);
    names_sort(&o->replaced);
    names_sort(&o->removed);
    names_sort(&o->kept);
    return 0;
}

/* The first N kept entries back from the temporary directory into DST. */
static void move_back(kt_outdir *o, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char *in_dst = kt_path_join(o->dst, o->kept.names[i]), *in_tmp = kt_path_join(o->tmp, o->kept.names[i]);
        rename(in_tmp, in_dst);
        free(in_dst);
        free(in_tmp);
    }
}

/* The kept entries into the temporary directory; on a failure, the ones
 * moved go back and nothing is replaced. */
static int move_in(kt_outdir *o) {
    for (size_t i = 0; i < o->kept.n; i++) {
        char *in_dst = kt_path_join(o->dst, o->kept.names[i]), *in_tmp = kt_path_join(o->tmp, o->kept.names[i]);
        const int rc = rename(in_dst, in_tmp), e = errno;
        free(in_dst);
        free(in_tmp);
        if (rc != 0) {
            move_back(o, i);
            return kt_fail_io("%s: cannot keep %s in the new output: %s; nothing was replaced", o->dst,
                              o->kept.names[i], kt_errno_text(e));
        }
    }
    return 0;
}

static int write_journal(kt_outdir *o) {
    strbuf sb = {0};
    for (size_t i = 0; i < o->kept.n; i++) sb_append(&sb, o->kept.names[i], strlen(o->kept.names[i]) + 1);
    char *path = kt_path_join(o->tmp, JOURNAL);
    int rc = kt_write_file_atomic(path, sb.data ? sb.data : "", sb.len);
    free(path);
    sb_free(&sb);
    return rc;
}

int kt_outdir_commit(kt_outdir *o) {
    if (fsync_dir(o->tmp)) return kt_fail_io("cannot sync %s: %s", o->tmp, kt_errno_text(errno));
    char *old = NULL;
    struct stat st;
    if (lstat(o->dst, &st) == 0) {
        if (classify(o)) return -1;
        if (o->kept.n && (write_journal(o) || move_in(o))) return -1;
        chmod(o->tmp, st.st_mode & 07777);
        strbuf sb = {0};
        sb_printf(&sb, "%s.kintsugi-old-%ld", o->dst, (long)getpid());
        old = sb_take(&sb);
        if (rename(o->dst, old) != 0) {
            int e = errno;
            move_back(o, o->kept.n);
            free(old);
            return kt_fail_io("cannot move the existing %s aside: %s", o->dst, kt_errno_text(e));
        }
    }
    if (rename(o->tmp, o->dst) != 0) {
        int e = errno;
        if (old) {
            rename(old, o->dst);
            move_back(o, o->kept.n);
        }
        free(old);
        return kt_fail_io("cannot rename %s to %s: %s", o->tmp, o->dst, kt_errno_text(e));
    }
    char *journal = kt_path_join(o->dst, JOURNAL);
    unlink(journal);
    free(journal);
    kt_fsync_parent(o->dst);
    if (old) {
        if (kt_remove_tree(old)) fprintf(stderr, "%s: warning: could not remove %s\n", o->prog, old);
        free(old);
    }
    free(o->tmp);
    o->tmp = NULL;
    return 0;
}

void kt_outdir_abort(kt_outdir *o) {
    if (o->tmp) discard_tmp(o->tmp, o->dst, o->prog);
    free(o->tmp);
    free(o->dst);
    names_free(&o->replaced);
    names_free(&o->removed);
    names_free(&o->kept);
    memset(o, 0, sizeof *o);
}

void kt_outdir_summary(const kt_outdir *o, const char *note, FILE *f) {
    if (!o->replaced.n && !o->removed.n && !o->kept.n) return;
    char *rep = names_list(&o->replaced, 6), *rem = names_list(&o->removed, 6), *kept = names_list(&o->kept, 6);
    fprintf(f, "%s: replaced %s", o->dst, o->replaced.n ? rep : "nothing");
    if (o->removed.n) fprintf(f, "; removed %s (stale output of an earlier run)", rem);
    if (o->kept.n) fprintf(f, "; kept %s (not made by %s)", kept, o->prog);
    fprintf(f, "%s%s\n", note ? "; " : "", note ? note : "");
    free(rep);
    free(rem);
    free(kept);
}
