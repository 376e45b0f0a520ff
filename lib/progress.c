/* progress.c - see progress.h. */
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double kt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void human_bytes(double b, char *out, size_t n) {
    const char *unit[] = {"B", "KB", "MB", "GB", "TB"};
    int u = 0;
    while (b >= 1000.0 && u < 4) {
        b /= 1000.0;
        u++;
    }
    snprintf(out, n, u ? "%.1f %s" : "%.0f %s", b, unit[u]);
}

static void draw(kt_progress *p, double now) {
    const int width = 28;
    double frac = p->total ? (double)p->done / (double)p->total : 1.0;
    if (frac > 1.0) frac = 1.0;
    int fill = (int)(frac * width);
    char bar[64], done[32], total[32], rate[32];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    bar[width] = 0;
    double secs = now - p->start;
    double bps = secs > 0 ? (double)p->done / secs : 0;
    if (p->unit) {
        snprintf(done, sizeof done, "%llu", (unsigned long long)p->done);
        snprintf(total, sizeof total, "%llu %s", (unsigned long long)p->total, p->unit);
        snprintf(rate, sizeof rate, "%.0f %s", bps, p->unit);
    } else {
        human_bytes((double)p->done, done, sizeof done);
        human_bytes((double)p->total, total, sizeof total);
        human_bytes(bps, rate, sizeof rate);
    }
    double eta = bps > 0 ? (double)(p->total - (p->done < p->total ? p->done : p->total)) / bps : 0;
    fprintf(stderr, "\r%s [%s] %s / %s  %s/s  ETA %.0fs \033[K", p->label, bar, done, total, rate, eta);
    fflush(stderr);
    p->last_draw = now;
}

void kt_progress_start(kt_progress *p, const char *label, uint64_t total, int enabled) {
    kt_progress_start_units(p, label, NULL, total, enabled);
}

void kt_progress_start_units(kt_progress *p, const char *label, const char *unit, uint64_t total, int enabled) {
    p->label = label;
    p->unit = unit;
    p->total = total;
    p->done = 0;
    p->start = kt_now();
    p->last_draw = 0;
    p->enabled = enabled && isatty(2);
}

void kt_progress_add(kt_progress *p, uint64_t bytes) {
    p->done += bytes;
    if (!p->enabled) return;
    double now = kt_now();
    if (now - p->last_draw >= 0.1) draw(p, now);
}

void kt_progress_end(kt_progress *p) {
    if (!p->enabled) return;
    fprintf(stderr, "\r\033[K");
    fflush(stderr);
}
