/* fit_ref.c - the fit of one group (fit.h), written once, and its scalar
 * passes.
 *
 * kt_fit_search() is the whole method. What touches every value of the group
 * is a "pass" (sums for a trial, nearest codes and their error, ...); the
 * scalar passes here are the reference, fit_simd.c has the same passes in 16
 * vector lanes. The scalar work between passes (solving for the pair,
 * rounding it, choosing) is shared, so the kernels can only differ in a pass,
 * and the test compares the bytes.
 */
#include "fit.h"
#include "fit_passes.h"
#include "dtype.h"

#include <math.h>
#include <string.h>

/* Round to nearest even for 0 <= v < 2^23: adding 2^23 leaves no fraction
 * bits, so the addition rounds (the build forbids fast-math, which would
 * fold the pair away). */
static inline float rne_small(float v) { return (v + 0x1p23f) - 0x1p23f; }

static inline float clamp_codes(float v, float nmax) { return v < 0.0f ? 0.0f : (v > nmax ? nmax : v); }

float kt_fit_lanes_sum(float a[KT_FIT_LANES]) {
    for (int w = KT_FIT_LANES / 2; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) a[l] += a[l + w];
    return a[0];
}

float kt_fit_round_to(kt_dtype t, float v) {
    uint8_t raw[4];
    float out;
    kt_row_from_f32(t, &v, raw, 1);
    kt_row_to_f32(t, raw, &out, 1);
    return out;
}

float kt_fit_trial_iscale(int bits, int i, float range) {
    const float nmax = (float)((1 << bits) - 1);
    const float d = 0.1f * (float)(i - KT_FIT_TRIALS / 2);
    return (nmax + d) / range;
}

int kt_fit_solve(kt_dtype t, int n, double sq, double sqq, double sqx, double sx, float *scale, float *bias) {
    const double det = (double)n * sqq - sq * sq;
    if (!(det > 0)) return -1;
    const double s = ((double)n * sqx - sq * sx) / det;
    const double b = (sx - s * sq) / (double)n;
    if (!isfinite(s) || !isfinite(b)) return -1;
    *scale = kt_fit_round_to(t, (float)s);
    *bias = kt_fit_round_to(t, (float)b);
    return *scale != 0.0f && isfinite(*scale) && isfinite(*bias) ? 0 : -1;
}

/* sum (s q + b - x)^2 expanded in the group's sums */
double kt_fit_error(int n, double sq, double sqq, double sqx, double sx, double sxx, double scale, double bias) {
    return scale * scale * sqq + 2 * scale * bias * sq + (double)n * bias * bias - 2 * scale * sqx - 2 * bias * sx + sxx;
}

/* ---- the scalar passes ---- */

static void prep_ref(int gs, const float *x, float lo, float *dx, float sums[2]) {
    float a[2][KT_FIT_LANES] = {{0}};
    for (int j = 0; j < gs; j++) {
        dx[j] = x[j] - lo;
        a[0][j % KT_FIT_LANES] += x[j];
        a[1][j % KT_FIT_LANES] += x[j] * x[j];
    }
    sums[0] = kt_fit_lanes_sum(a[0]), sums[1] = kt_fit_lanes_sum(a[1]);
}

static void trial_ref(int gs, float nmax, const float *x, const float *dx, float iscale, float sums[3]) {
    float a[3][KT_FIT_LANES] = {{0}};
    for (int j = 0; j < gs; j++) {
        const float q = rne_small(clamp_codes(dx[j] * iscale, nmax));
        a[0][j % KT_FIT_LANES] += q;
        a[1][j % KT_FIT_LANES] += q * q;
        a[2][j % KT_FIT_LANES] += q * x[j];
    }
    for (int i = 0; i < 3; i++) sums[i] = kt_fit_lanes_sum(a[i]);
}

static float nearest_ref(int gs, float nmax, const float *x, float s, float b, uint8_t *codes) {
    float a[KT_FIT_LANES] = {0};
    for (int j = 0; j < gs; j++) {
        const float q = rne_small(clamp_codes((x[j] - b) / s, nmax));
        const float d = (s * q + b) - x[j];
        a[j % KT_FIT_LANES] += d * d;
        codes[j] = (uint8_t)q;
    }
    return kt_fit_lanes_sum(a);
}

static void code_sums_ref(int gs, const float *x, const uint8_t *codes, float sums[3]) {
    float a[3][KT_FIT_LANES] = {{0}};
    for (int j = 0; j < gs; j++) {
        const float q = (float)codes[j];
        a[0][j % KT_FIT_LANES] += q;
        a[1][j % KT_FIT_LANES] += q * q;
        a[2][j % KT_FIT_LANES] += q * x[j];
    }
    for (int i = 0; i < 3; i++) sums[i] = kt_fit_lanes_sum(a[i]);
}

const kt_fit_passes kt_fit_passes_ref = {prep_ref, trial_ref, nearest_ref, code_sums_ref};

/* ---- the method ---- */

/* The fit proper (steps 1 and 2 of fit.h): the best pair found and its
 * nearest codes in CAND; returns their squared error, or infinity. */
static float search_pair(const kt_fit_passes *p, int bits, int gs, kt_dtype t, const float *x, uint8_t *cand,
                         float *scale, float *bias) {
    const float nmax = (float)((1 << bits) - 1);
    float lo = x[0], hi = x[0];
    for (int j = 1; j < gs; j++) {
        lo = x[j] < lo ? x[j] : lo;
        hi = x[j] > hi ? x[j] : hi;
    }
    if (!(hi > lo)) return INFINITY; /* a constant group: RTN is exact */
    float dx[128], xs[2], qs[3];
    p->prep(gs, x, lo, dx, xs);

    /* 1. the trials, ranked by the error their rounded pair would have */
    float best_s = 0, best_b = 0;
    double best_e = INFINITY;
    for (int i = 0; i < KT_FIT_TRIALS; i++) {
        float s, b;
        p->trial(gs, nmax, x, dx, kt_fit_trial_iscale(bits, i, hi - lo), qs);
        if (kt_fit_solve(t, gs, qs[0], qs[1], qs[2], xs[0], &s, &b)) continue;
        const double e = kt_fit_error(gs, qs[0], qs[1], qs[2], xs[0], xs[1], s, b);
        if (e < best_e) best_e = e, best_s = s, best_b = b;
    }
    if (best_s == 0) return INFINITY;

    /* 2. nearest codes for the best pair, then refits while they help */
    uint8_t next[128];
    float err = p->nearest(gs, nmax, x, best_s, best_b, cand);
    for (int round = 0; round < 2; round++) {
        float s, b;
        p->code_sums(gs, x, cand, qs);
        if (kt_fit_solve(t, gs, qs[0], qs[1], qs[2], xs[0], &s, &b)) break;
        const float e = p->nearest(gs, nmax, x, s, b, next);
        if (!(e < err)) break;
        err = e, best_s = s, best_b = b;
        memcpy(cand, next, (size_t)gs);
    }
    *scale = best_s, *bias = best_b;
    return err;
}

int kt_fit_search(const kt_fit_passes *p, int bits, int gs, kt_dtype t, const float *x, uint8_t *codes, float *scale,
                  float *bias) {
    const float nmax = (float)((1 << bits) - 1);
    uint8_t cand[128], near[128];
    float s = 0, b = 0;
    const float err = search_pair(p, bits, gs, t, x, cand, &s, &b);
    /* 3. MLX's codes come from its float32 step, before the pair is rounded
     * to the stored dtype, so a few are not the nearest for the stored pair;
     * the nearest codes for MLX's own pair are never worse. The fit replaces
     * that only when strictly better. */
    const float err_mlx = p->nearest(gs, nmax, x, *scale, *bias, near);
    if (err < err_mlx) {
        memcpy(codes, cand, (size_t)gs);
        *scale = s, *bias = b;
        return 1;
    }
    const int changed = memcmp(codes, near, (size_t)gs) != 0;
    memcpy(codes, near, (size_t)gs);
    return changed;
}

int kt_fit_group_ref(int bits, int gs, kt_dtype t, const float *x, uint8_t *codes, float *scale, float *bias) {
    return kt_fit_search(&kt_fit_passes_ref, bits, gs, t, x, codes, scale, bias);
}
