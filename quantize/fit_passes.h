/* fit_passes.h - the per-value passes of the fit (fit.h), which the scalar
 * reference (fit_ref.c) and the vector kernels (fit_simd.c) each provide. All
 * sums are taken in 16 lanes, element j into lane j mod 16 in order of j,
 * and reduced with kt_fit_lanes_sum(). */
#ifndef KT_FIT_PASSES_H
#define KT_FIT_PASSES_H

#include "fit.h"

typedef struct {
    /* DX[j] = X[j] - LO; SUMS: x, x^2 */
    void (*prep)(int gs, const float *x, float lo, float *dx, float sums[2]);
    /* the codes rne(clamp(DX[j] * ISCALE, 0, NMAX)); SUMS: q, q^2, q*x */
    void (*trial)(int gs, float nmax, const float *x, const float *dx, float iscale, float sums[3]);
    /* the nearest codes rne(clamp((X[j] - B) / S, 0, NMAX)) into CODES; returns
     * the squared error of (S q + B) - X */
    float (*nearest)(int gs, float nmax, const float *x, float s, float b, uint8_t *codes);
    /* SUMS of CODES: q, q^2, q*x */
    void (*code_sums)(int gs, const float *x, const uint8_t *codes, float sums[3]);
} kt_fit_passes;

extern const kt_fit_passes kt_fit_passes_ref;

/* The method of fit.h with the passes P (the arguments of kt_fit_group). */
int kt_fit_search(const kt_fit_passes *p, int bits, int gs, kt_dtype t, const float *x, uint8_t *codes, float *scale,
                  float *bias);

#endif
