/* progress.h - a one-line progress bar on stderr, drawn only on a terminal.
 *
 * Long jobs (quantizing or converting gigabytes) report bytes done; the bar
 * shows the fraction, the rate and the time left, redrawn at most ten times a
 * second. When stderr is not a terminal, or the tool runs with --json or
 * --quiet, nothing is drawn, so logs and pipes stay clean.
 */
#ifndef KT_PROGRESS_H
#define KT_PROGRESS_H

#include <stdint.h>

typedef struct {
    const char *label;
    const char *unit;   /* counted things ("tokens"), or NULL for bytes */
    uint64_t total, done;
    double start, last_draw;
    int enabled;
} kt_progress;

/* ENABLED: the caller's wish (0 for --json/--quiet); the bar also needs a TTY. */
void kt_progress_start(kt_progress *p, const char *label, uint64_t total, int enabled);
void kt_progress_add(kt_progress *p, uint64_t bytes);
/* The same bar over UNIT ("tokens"): counts and rate in that unit. */
void kt_progress_start_units(kt_progress *p, const char *label, const char *unit, uint64_t total, int enabled);
/* Clear the line. */
void kt_progress_end(kt_progress *p);

/* Seconds from a monotonic clock. */
double kt_now(void);

#endif
