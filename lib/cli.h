/* cli.h - what every tool's command line needs: a one-line usage error and
 * a strict integer argument. */
#ifndef KT_CLI_H
#define KT_CLI_H

/* Print "PROG: <fmt with arg> (see --help)" on stderr; returns 2, the exit
 * code of a usage error. */
int kt_usage_error(const char *prog, const char *fmt, const char *arg);

/* S as a whole decimal number in [LO, HI]; -1 when it is not. */
int kt_parse_int(const char *s, long lo, long hi, int *out);

#endif
