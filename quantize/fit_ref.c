/* fit_ref.c - the fit of one group (fit.h), the scalar reference, and the
 * scalar steps the vector kernels share with it.
 *
 * Written to be read beside fit.h's description: every sum runs over the
 * group in order, in float32; the closed-form solve and the error estimate
 * run in double. fit_lanes.h does exactly these operations for 16 groups at
 * once, one group per lane.
 */
#include "fit.h"

#include <math.h>
#include <string.h>

float kt_fit_trial_numerator(int bits, int i) {
    const float nmax = (float)((1 << bits) - 1);
    const float d = KT_FIT_STEP * (float)(i - KT_FIT_TRIALS / 2);
    return nmax + d;
}

/* Minimise sum (s q + b - x)^2 over s, b: the normal equations
 *   s sqq + b sq = sqx,   s sq + b n = sx. */
int kt_fit_solve(kt_dtype t, int n, float sq, float sqq, float sqx, float sx, float *scale, float *bias) {
    const double det = (double)n * sqq - (double)sq * sq;
    if (!(det > 0)) return -1;
    const double s = ((double)n * sqx - (double)sq * sx) / det;
    const double b = (sx - s * sq) / (double)n;
    if (!isfinite(s) || !isfinite(b)) return -1;
    *scale = kt_fit_round_to(t, (float)s);
    *bias = kt_fit_round_to(t, (float)b);
    return *scale != 0.0f && isfinite(*scale) && isfinite(*bias) ? 0 : -1;
}

/* sum (s q + b - x)^2 expanded in the group's sums */
double kt_fit_error(int n, float sq, float sqq, float sqx, float sx, float sxx, float scale, float bias) {
    const double s = scale, b = bias;
    return s * s * sqq + 2 * s * b * sq + (double)n * b * b - 2 * s * sqx - 2 * b * sx + sxx;
}

/* The nearest codes for the pair (S, B) into CODES; their squared error.
 * (x - b) times 1/s, not divided by s: one division per group instead of one
 * per value; the product may fall a rounding error across the midpoint of
 * two codes, which kintsugi-verify's test of nearest codes allows for. */
static float nearest(int gs, float nmax, const float *x, float s, float b, uint8_t *codes) {
    const float inv = 1.0f / (s != 0 ? s : 1.0f);
    float e = 0;
    for (int j = 0; j < gs; j++) {
        const float q = s != 0 ? kt_fit_code((x[j] - b) * inv, nmax) : 0.0f;
        const float d = (s * q + b) - x[j];
        e += d * d;
        codes[j] = (uint8_t)q;
    }
    return e;
}

/* Steps 1 and 2: the best pair found into *S, *B and its nearest codes into
 * CAND; their squared error, or infinity when no trial gives a pair. */
static float search(int bits, int gs, kt_dtype t, const float *x, uint8_t *cand, float *s_out, float *b_out) {
    const float nmax = (float)((1 << bits) - 1);
    float lo = x[0], hi = x[0];
    for (int j = 1; j < gs; j++) {
        lo = x[j] < lo ? x[j] : lo;
        hi = x[j] > hi ? x[j] : hi;
    }
    float sx = 0, sxx = 0, dx[128];
    for (int j = 0; j < gs; j++) {
        sx += x[j];
        sxx += x[j] * x[j];
        dx[j] = x[j] - lo;
    }
    /* 1. each trial's codes, their least-squares pair rounded to T, ranked
     * by the error that pair gives those codes */
    float best_s = 0, best_b = 0;
    double best_e = INFINITY;
    for (int i = 0; i < KT_FIT_TRIALS; i++) {
        const float iscale = kt_fit_trial_numerator(bits, i) / (hi - lo);
        float sq = 0, sqq = 0, sqx = 0, s, b;
        for (int j = 0; j < gs; j++) {
            const float q = kt_fit_code(dx[j] * iscale, nmax);
            sq += q;
            sqq += q * q;
            sqx += q * x[j];
        }
        if (kt_fit_solve(t, gs, sq, sqq, sqx, sx, &s, &b)) continue;
        const double e = kt_fit_error(gs, sq, sqq, sqx, sx, sxx, s, b);
        if (e < best_e) best_e = e, best_s = s, best_b = b;
    }
    if (best_s == 0) return INFINITY; /* a constant group: no trial has two codes */

    /* 2. the nearest codes for the best pair; refit the pair to them while
     * that lowers the error */
    uint8_t next[128];
    float err = nearest(gs, nmax, x, best_s, best_b, cand);
    for (int round = 0; round < KT_FIT_REFITS; round++) {
        float sq = 0, sqq = 0, sqx = 0, s, b;
        for (int j = 0; j < gs; j++) {
            const float q = (float)cand[j];
            sq += q;
            sqq += q * q;
            sqx += q * x[j];
        }
        if (kt_fit_solve(t, gs, sq, sqq, sqx, sx, &s, &b)) break;
        const float e = nearest(gs, nmax, x, s, b, next);
        if (!(e < err)) break;
        err = e, best_s = s, best_b = b;
        memcpy(cand, next, (size_t)gs);
    }
    *s_out = best_s, *b_out = best_b;
    return err;
}

int kt_fit_group_ref(int bits, int gs, kt_dtype t, const float *x, uint8_t *codes, float *scale, float *bias) {
    const float nmax = (float)((1 << bits) - 1);
    uint8_t cand[128], near[128];
    float s = 0, b = 0;
    const float err = search(bits, gs, t, x, cand, &s, &b);
    /* 3. the baseline: MLX's pair with the nearest codes for it */
    const float err_mlx = nearest(gs, nmax, x, *scale, *bias, near);
    if (err < err_mlx) {
        memcpy(codes, cand, (size_t)gs);
        *scale = s, *bias = b;
        return 1;
    }
    const int changed = memcmp(codes, near, (size_t)gs) != 0;
    memcpy(codes, near, (size_t)gs);
    return changed;
}
