/* cli.c - see cli.h. */
#include "cli.h"
#include "error.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int kt_usage_error(const char *prog, const char *fmt, const char *arg) {
    fprintf(stderr, "%s: ", prog);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see --help)\n");
    return KT_EXIT_USAGE;
}

int kt_usage_conflict(const char *prog, const char *a, const char *b) {
    fprintf(stderr, "%s: %s and %s do not go together (see --help)\n", prog, a, b);
    return KT_EXIT_USAGE;
}

static const char *stdout_prog;
static int stdout_errno;    /* the first failed write's errno */
static int stdout_reported; /* a tool has reported it already */

int kt_stdout_check(void) {
    int prior = errno; /* a write that failed just before (a large one bypasses the buffer) */
    errno = 0;
    int failed = fflush(stdout) != 0;
    if (!failed && !ferror(stdout)) return 0;
    if (!stdout_errno) stdout_errno = failed && errno ? errno : prior ? prior : EIO;
    stdout_reported = 1;
    return kt_fail_io("cannot write to standard output: %s", kt_errno_text(stdout_errno));
}

static void close_stdout(void) {
    int prior = errno;
    int failed = ferror(stdout);
    /* an earlier write failed: retry what is left once, for its errno */
    clearerr(stdout);
    errno = 0;
    if (fflush(stdout) != 0) failed = 1;
    int err = errno ? errno : failed ? prior : 0;
    if (fclose(stdout) != 0 && !failed) {
        failed = errno != EBADF; /* stdout closed by the caller and never written: nothing was lost */
        err = errno;
    }
    if (!failed) return;
    if (!stdout_reported) {
        if (stdout_errno) err = stdout_errno;
        fprintf(stderr, "%s: cannot write to standard output: %s\n", stdout_prog,
                kt_errno_text(err ? err : EIO));
        fflush(stderr);
    }
    _exit(KT_EXIT_USAGE);
}

void kt_check_stdout_at_exit(const char *prog) {
    stdout_prog = prog;
    atexit(close_stdout);
}

void kt_print_version(const char *prog) { printf("%s %s\n", prog, KINTSUGI_VERSION); }

int kt_color_ok(int fd) {
    const char *no = getenv("NO_COLOR"), *term = getenv("TERM");
    return isatty(fd) && !(no && *no) && !(term && !strcmp(term, "dumb"));
}

int kt_cap_threads(int n) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && cpus > 0 && n > cpus ? (int)cpus : n;
}

int kt_parse_int(const char *s, long lo, long hi, int *out) {
    char *end;
    if (!((*s >= '0' && *s <= '9') || *s == '-')) return -1; /* strtol would skip spaces and take '+' */
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

void kt_args_init(kt_args *a, const char *prog, int argc, char **argv, const kt_opt *opts) {
    *a = (kt_args){.prog = prog, .argc = argc, .i = 1, .argv = argv, .opts = opts};
}

static const kt_opt *find_long(const kt_opt *opts, const char *s, size_t n) {
    for (const kt_opt *o = opts; o->name; o++)
        if (strlen(o->name) == n && !strncmp(o->name, s, n)) return o;
    return NULL;
}

static const kt_opt *find_short(const kt_opt *opts, char c) {
    for (const kt_opt *o = opts; o->name; o++)
        if (o->alias && o->alias == c) return o;
    return NULL;
}

int kt_args_next(kt_args *a) {
    a->name = NULL, a->value = NULL;
    if (a->i >= a->argc) return KT_ARG_END;
    const char *s = a->argv[a->i++];
    if (a->positional_only || s[0] != '-' || !s[1]) { /* "-" alone is a positional */
        a->value = s;
        return KT_ARG_POSITIONAL;
    }
    if (!strcmp(s, "--")) {
        a->positional_only = 1;
        return kt_args_next(a);
    }
    if (!strcmp(s, "-h") || !strcmp(s, "--help")) return KT_ARG_HELP;
    if (!strcmp(s, "--version")) return KT_ARG_VERSION;
    const kt_opt *o;
    const char *eq = NULL;
    if (s[1] == '-') {
        eq = strchr(s, '=');
        o = find_long(a->opts, s, eq ? (size_t)(eq - s) : strlen(s));
    } else {
        o = s[2] ? NULL : find_short(a->opts, s[1]);
    }
    if (!o) {
        if (eq) fprintf(stderr, "%s: unknown option %.*s (see --help)\n", a->prog, (int)(eq - s), s);
        else kt_usage_error(a->prog, "unknown option %s", s);
        return KT_ARG_ERROR;
    }
    a->name = o->name;
    if (o->id < 64) a->given |= 1ull << o->id;
    if (!o->has_value) {
        if (eq) {
            kt_usage_error(a->prog, "%s takes no value", o->name);
            return KT_ARG_ERROR;
        }
        return o->id;
    }
    if (eq) {
        a->value = eq + 1;
    } else if (a->i < a->argc) {
        a->value = a->argv[a->i++];
    } else {
        kt_usage_error(a->prog, "%s needs a value", o->name);
        return KT_ARG_ERROR;
    }
    return o->id;
}

int kt_arg_given(const kt_args *a, int id) { return id > 0 && id < 64 && (a->given >> id & 1); }

const char *kt_opt_name(const kt_opt *opts, int id) {
    for (const kt_opt *p = opts; p->name; p++)
        if (p->id == id) return p->name;
    return "?";
}

/* "PROG: --name: 'value' is not WHAT (see --help)" */
static int bad_value(const kt_args *a, const char *what) {
    fprintf(stderr, "%s: %s: '%s' is not %s (see --help)\n", a->prog, a->name, a->value, what);
    return KT_EXIT_USAGE;
}

int kt_arg_int(const kt_args *a, long lo, long hi, int *out) {
    if (kt_parse_int(a->value, lo, hi, out) == 0) return 0;
    char what[96];
    if (hi >= (1L << 24)) snprintf(what, sizeof what, "a %s >= %ld", lo == 0 ? "count" : "whole number", lo);
    else snprintf(what, sizeof what, "a whole number from %ld to %ld", lo, hi);
    return bad_value(a, what);
}

int kt_arg_u64(const kt_args *a, unsigned long long *out) {
    const char *s = a->value;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || s[0] == '+' || isspace((unsigned char)s[0]))
        return bad_value(a, "a whole number >= 0");
    *out = v;
    return 0;
}

int kt_arg_double(const kt_args *a, double lo, int lo_open, double hi, int hi_open, double *out) {
    char *end;
    errno = 0;
    double d = strtod(a->value, &end);
    int ok = *a->value && !isspace((unsigned char)*a->value) && !*end && isfinite(d) && (lo_open ? d > lo : d >= lo) && (hi_open ? d < hi : d <= hi);
    if (ok) {
        *out = d;
        return 0;
    }
    char what[128], lo_s[32], hi_s[32];
    snprintf(lo_s, sizeof lo_s, "%g", lo);
    snprintf(hi_s, sizeof hi_s, "%g", hi);
    if (isinf(hi)) snprintf(what, sizeof what, "a number %s %s", lo_open ? ">" : ">=", lo_s);
    else snprintf(what, sizeof what, "a number in %s%s, %s%s", lo_open ? "(" : "[", lo_s, hi_s, hi_open ? ")" : "]");
    return bad_value(a, what);
}

int kt_arg_choice(const kt_args *a, const char *const *choices, int *out) {
    for (int i = 0; choices[i]; i++)
        if (!strcmp(a->value, choices[i])) {
            *out = i;
            return 0;
        }
    char what[256];
    size_t k = (size_t)snprintf(what, sizeof what, "one of");
    for (int i = 0; choices[i] && k < sizeof what; i++)
        k += (size_t)snprintf(what + k, sizeof what - k, "%s %s", i ? "," : "", choices[i]);
    return bad_value(a, what);
}
