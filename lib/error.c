/* error.c - the last error line, kept per thread. */
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

enum { KT_ERR_MAX = 1024 };
static _Thread_local char last_error[KT_ERR_MAX];
static _Thread_local int last_kind = KT_ERR_FORMAT;

int kt_errkind(void) { return last_kind; }

int kt_fail_io(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    last_kind = KT_ERR_IO;
    return -1;
}

int kt_fail(const char *fmt, ...) {
    last_kind = KT_ERR_FORMAT;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return -1;
}

int kt_fail_context(const char *fmt, ...) {
    char prefix[KT_ERR_MAX], old[KT_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    /* Truncation is acceptable: the line is for people. */
    size_t n = strlen(prefix);
    /* a message that already names the path needs no second copy of it
     * ("vi: vi/model.safetensors: ...") */
    if (n && !strncmp(old, prefix, n) && (old[n] == ':' || old[n] == '/')) return -1;
    if (n > KT_ERR_MAX - 3) n = KT_ERR_MAX - 3;
    memcpy(last_error, prefix, n);
    memcpy(last_error + n, ": ", 2);
    size_t room = KT_ERR_MAX - n - 3, m = strlen(old);
    if (m > room) m = room;
    memcpy(last_error + n + 2, old, m);
    last_error[n + 2 + m] = '\0';
    return -1;
}

const char *kt_errmsg(void) { return last_error; }

void kt_print_error(const char *prog) {
    fprintf(stderr, "%s: %s\n", prog, last_error[0] ? last_error : "unknown error");
}

const char *kt_errno_text(int err) {
    switch (err) {
    case ENOENT: return "no such file or directory";
    case ENOTDIR: return "not a directory";
    case EACCES:
    case EPERM: return "permission denied";
    case ELOOP: return "a symlink loop";
    case EISDIR: return "is a directory";
    case ENOSPC: return "no space left on the device";
    case EROFS: return "read-only file system";
    case EEXIST: return "exists";
    case ENAMETOOLONG: return "name too long";
    default: {
        static _Thread_local char buf[128];
        snprintf(buf, sizeof buf, "%s", strerror(err));
        if (buf[0] >= 'A' && buf[0] <= 'Z') buf[0] = (char)(buf[0] - 'A' + 'a');
        return buf;
    }
    }
}

void kt_errmsg_replace(const char *from, const char *to) {
    size_t nf = strlen(from), nt = strlen(to);
    if (!nf) return;
    char out[KT_ERR_MAX];
    size_t k = 0;
    for (const char *p = last_error; *p && k < sizeof out - 1;) {
        if (!strncmp(p, from, nf)) {
            for (size_t i = 0; i < nt && k < sizeof out - 1; i++) out[k++] = to[i];
            p += nf;
        } else {
            out[k++] = *p++;
        }
    }
    out[k] = 0;
    memcpy(last_error, out, k + 1);
}
