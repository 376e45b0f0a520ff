/* error.h - one-line error messages shared by the library and the tools.
 *
 * Library functions report failure by returning a non-zero value (or NULL)
 * after recording a single human-readable line with kt_fail(). The tool that
 * called them prints that line with its own name in front and exits non-zero.
 * Keeping the message in one place means every failure path names the file,
 * the tensor and the rule exactly once, at the place that knows them.
 */
#ifndef KT_ERROR_H
#define KT_ERROR_H

#include <stdarg.h>

#if defined(__GNUC__)
#define KT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define KT_PRINTF(a, b)
#endif

/* What kind of failure was recorded: the tools map these to exit codes. */
enum { KT_ERR_FORMAT = 1, KT_ERR_IO = 2 };

/* Record an I/O failure (cannot open, read, write). Returns -1. */
int kt_fail_io(const char *fmt, ...) KT_PRINTF(1, 2);
/* KT_ERR_FORMAT or KT_ERR_IO for the last recorded line. */
int kt_errkind(void);

/* Record the error line (printf format). Always returns -1 so that callers can
 * write `return kt_fail(...)`. */
int kt_fail(const char *fmt, ...) KT_PRINTF(1, 2);

/* Prefix the recorded line with more context: "PREFIX: old message", unless
 * the message starts with PREFIX already (a path: "PREFIX/file: ..."). Returns -1. */
int kt_fail_context(const char *fmt, ...) KT_PRINTF(1, 2);

/* Replace every FROM in the recorded line with TO (a temporary directory's
 * name with the destination's: users never see internal paths). */
void kt_errmsg_replace(const char *from, const char *to);

/* The last recorded line (empty string when none). */
const char *kt_errmsg(void);

/* The one wording of each error class, the same in every tool: "no such
 * file or directory", "not a directory", "permission denied", "a symlink
 * loop", "is a directory", "no space left on the device", ...; other errors
 * as strerror() gives them, in lower case. */
const char *kt_errno_text(int err);

/* Print "PROG: message" to stderr. */
void kt_print_error(const char *prog);

#endif
