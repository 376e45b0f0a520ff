/* cli.h - the one command-line language of every kintsugi tool (docs/CLI.md).
 *
 * Each tool describes its options in a table of kt_opt and reads them with
 * kt_args_next(), which gives every tool the same grammar:
 *   --name value  and  --name=value   (an option that takes a value)
 *   --flag                            (a flag; --flag=x is an error)
 *   -h, --help, --version             (built in)
 *   --                                (everything after it is positional)
 *   -                                 (a positional: stdin or stdout)
 * Errors are one line, "PROG: --name: 'value' is not ... (see --help)", and
 * exit code 2. The value readers below keep the wording of each kind of
 * value the same everywhere.
 */
#ifndef KT_CLI_H
#define KT_CLI_H

#define KINTSUGI_VERSION "0.2.0"

/* The exit codes of every tool. */
enum { KT_EXIT_OK = 0, KT_EXIT_FAILED = 1, KT_EXIT_USAGE = 2, KT_EXIT_INTERRUPTED = 130 };

typedef struct {
    const char *name; /* "--max-tokens" */
    char alias;       /* 'q' for -q, or 0 */
    int has_value;    /* 1: takes a value */
    int id;           /* > 0, returned by kt_args_next */
} kt_opt;

/* What kt_args_next returns besides an option's id. */
enum { KT_ARG_END = 0, KT_ARG_POSITIONAL = -1, KT_ARG_HELP = -2, KT_ARG_VERSION = -3, KT_ARG_ERROR = -4 };

typedef struct {
    const char *prog;
    int argc, i;
    char **argv;
    const kt_opt *opts; /* ended by an entry with name NULL */
    int positional_only;
    unsigned long long given; /* bit ID: the option with id ID (< 64) was on the command line */
    const char *name;   /* the option just read, as its table spells it */
    const char *value;  /* its value, or the positional argument */
} kt_args;

void kt_args_init(kt_args *a, const char *prog, int argc, char **argv, const kt_opt *opts);
/* The next item. KT_ARG_ERROR has printed its usage line already. */
int kt_args_next(kt_args *a);

/* Was option ID on the command line (kt_args_next has read it)? */
int kt_arg_given(const kt_args *a, int id);
/* Option ID's name as OPTS spells it ("--max-tokens"). */
const char *kt_opt_name(const kt_opt *opts, int id);

/* The value readers: 0 and *OUT set, or a usage line printed and 2. */
int kt_arg_int(const kt_args *a, long lo, long hi, int *out);
int kt_arg_u64(const kt_args *a, unsigned long long *out);
/* A finite number in the range; LO_OPEN/HI_OPEN exclude the bound itself. */
int kt_arg_double(const kt_args *a, double lo, int lo_open, double hi, int hi_open, double *out);
/* One of CHOICES (ended by NULL); *OUT its index. */
int kt_arg_choice(const kt_args *a, const char *const *choices, int *out);

/* Print "PROG: <fmt with arg> (see --help)" on stderr; returns 2. */
int kt_usage_error(const char *prog, const char *fmt, const char *arg);
/* Two options that do not go together; returns 2. */
int kt_usage_conflict(const char *prog, const char *a, const char *b);

/* Every tool calls this first in main(): at exit, standard output is
 * flushed and closed, and a write that failed at any point (a full disk, a
 * closed pipe's EIO, /dev/full) turns the exit status into 2 with one line,
 * "PROG: cannot write to standard output: no space left on the device",
 * whatever the tool was about to return. */
void kt_check_stdout_at_exit(const char *prog);
/* Flush standard output: 0, or -1 with the one line recorded (kt_fail_io)
 * when a write to it has failed so far. For output written as it is made:
 * stop early instead of computing what cannot be written (the exit check
 * then stays silent, the tool having said it). */
int kt_stdout_check(void);

/* "PROG VERSION" on stdout. */
void kt_print_version(const char *prog);

/* May output on FD use colour or dim text? A terminal, NO_COLOR unset or
 * empty (no-color.org), and TERM not "dumb". */
int kt_color_ok(int fd);

/* N worker threads capped at the number of online CPUs (0 stays 0: all). */
int kt_cap_threads(int n);

/* S as a whole decimal number in [LO, HI]; -1 when it is not. */
int kt_parse_int(const char *s, long lo, long hi, int *out);

#endif
