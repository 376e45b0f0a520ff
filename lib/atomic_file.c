/* atomic_file.c - temp file, fsync, rename. */
#ifdef __linux__
#define _GNU_SOURCE /* sync_file_range */
#endif
#include "atomic_file.h"
#include "error.h"
#include "strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Durable by default; kt_atomic_set_durable(0) trades power-loss safety for
 * not waiting on the disk (a crash of the process still never leaves a
 * short file: the rename happens only after every byte was written). */
static int durable = 1;

void kt_atomic_set_durable(int on) { durable = on; }
int kt_atomic_durable(void) { return durable; }

int kt_fsync_parent(const char *path) {
    if (!durable) return 0;
    char *dir = kt_xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) slash[1] = '\0';
    else if (slash) *slash = '\0';
    else strcpy(dir, ".");
    int fd = open(dir, O_RDONLY);
    int rc = 0;
    if (fd >= 0) {
        if (fsync(fd) != 0 && errno != EINVAL) rc = kt_fail_io("%s: fsync: %s", dir, kt_errno_text(errno));
        close(fd);
    }
    free(dir);
    return rc;
}

int kt_atomic_open(kt_atomic *a, const char *path) {
    memset(a, 0, sizeof *a);
    size_t n = strlen(path) + 16;
    a->tmp_path = kt_xmalloc(n);
    snprintf(a->tmp_path, n, "%s.tmp-XXXXXX", path);
    int fd = mkstemp(a->tmp_path);
    if (fd < 0) {
        kt_fail_io("%s: cannot create a temporary file beside it: %s", path, kt_errno_text(errno));
        free(a->tmp_path);
        a->tmp_path = NULL;
        return -1;
    }
    /* a replaced file keeps its permission bits (fixup rewrites a user's
     * files in place); a new one is rw-r--r-- */
    struct stat st;
    fchmod(fd, stat(path, &st) == 0 && S_ISREG(st.st_mode) ? (st.st_mode & 07777) : 0644);
    a->fp = fdopen(fd, "wb");
    a->final_path = kt_xstrdup(path);
    setvbuf(a->fp, NULL, _IOFBF, 1 << 20);
    return 0;
}

/* Large outputs: start writing back every 64 MiB as we go, so that the fsync
 * at the end has little left to wait for and the disk works while we compute.
 * (Linux only; elsewhere the final fsync does all of it.) */
#define WRITEBACK_STEP (64ull << 20)

int kt_atomic_write(kt_atomic *a, const void *data, size_t n) {
    if (n && fwrite(data, 1, n, a->fp) != n)
        return kt_fail_io("%s: write failed: %s", a->final_path, kt_errno_text(errno));
    a->written += n;
#ifdef __linux__
    if (durable && a->written - a->flushed >= WRITEBACK_STEP && fflush(a->fp) == 0) {
        sync_file_range(fileno(a->fp), (off_t)a->flushed, (off_t)(a->written - a->flushed), SYNC_FILE_RANGE_WRITE);
        a->flushed = a->written;
    }
#endif
    return 0;
}

int kt_atomic_prepare(kt_atomic *a) {
    if (!a->fp) return 0;
    int rc = 0;
    if (fflush(a->fp) != 0) rc = kt_fail_io("%s: write failed: %s", a->final_path, kt_errno_text(errno));
    else if (durable && fsync(fileno(a->fp)) != 0) rc = kt_fail_io("%s: fsync failed: %s", a->final_path, kt_errno_text(errno));
    if (fclose(a->fp) != 0 && rc == 0) rc = kt_fail_io("%s: close failed: %s", a->final_path, kt_errno_text(errno));
    a->fp = NULL;
    return rc;
}

int kt_atomic_commit(kt_atomic *a) {
    int rc = kt_atomic_prepare(a);
    if (rc == 0 && rename(a->tmp_path, a->final_path) != 0)
        rc = kt_fail_io("%s: rename failed: %s", a->final_path, kt_errno_text(errno));
    if (rc == 0) rc = kt_fsync_parent(a->final_path);
    if (rc != 0) unlink(a->tmp_path);
    free(a->tmp_path);
    free(a->final_path);
    a->tmp_path = a->final_path = NULL;
    return rc;
}

void kt_atomic_abort(kt_atomic *a) {
    if (a->fp) fclose(a->fp);
    if (a->tmp_path) unlink(a->tmp_path);
    free(a->tmp_path);
    free(a->final_path);
    memset(a, 0, sizeof *a);
}

int kt_write_file_atomic(const char *path, const void *data, size_t n) {
    kt_atomic a;
    if (kt_atomic_open(&a, path)) return -1;
    if (kt_atomic_write(&a, data, n)) { kt_atomic_abort(&a); return -1; }
    return kt_atomic_commit(&a);
}
