/* fit.h - error-minimising scales and biases in the MLX affine format.
 *
 * MLX's round-to-nearest (affine.h) takes each group's step from its extremes.
 * Any (scale, bias) pair is legal in the format and costs the same at run
 * time, so a better pair can be searched for without calibration data:
 *
 *   1. trials: for 21 steps around (max - min) / (2^bits - 1) (the inverse
 *      step nmax/range scaled by (nmax + d) / nmax, d = -1.0, -0.9, ..., +1.0)
 *      take the codes each gives, solve the least-squares scale and bias for
 *      those codes in closed form, round the pair to the stored dtype, and
 *      estimate the squared error from the group's sums;
 *   2. the best trial's pair gets the nearest codes, then two rounds of
 *      "refit the pair to the codes, round it, take the nearest codes again"
 *      keep whatever lowers the measured error;
 *   3. MLX's own pair with the nearest codes for it (MLX takes its codes from
 *      the float32 step, before the pair is rounded to the stored dtype, so
 *      a few are not the nearest for what is stored) is the baseline, never
 *      worse than MLX's result; the fit replaces it only when its measured
 *      squared error is strictly lower. So a fitted group is never worse
 *      than RTN.
 * Every code is the nearest code for the stored pair (kintsugi-verify checks
 * that), and the whole search is deterministic.
 *
 * Sums over a group are taken in 16 lanes (element j into lane j mod 16, in
 * order of j) and the lanes added in a fixed tree, so the vector kernels
 * (fit_simd.c) and the scalar reference (fit_ref.c) give the same bytes;
 * tests/unit/test_fit.c checks that.
 */
#ifndef KT_FIT_H
#define KT_FIT_H

#include <stddef.h>
#include <stdint.h>

#include "affine.h"

enum { KT_FIT_RTN = 0, KT_FIT_MSE = 1 };

#define KT_FIT_LANES 16
#define KT_FIT_TRIALS 21

/* One group of GS (32, 64 or 128) finite values X, scale and bias stored as
 * T. On entry CODES (one per byte), *SCALE and *BIAS hold MLX's result with
 * the pair already rounded to T; on return the fitted result, or the same
 * when nothing better was found. Returns 1 when the fit replaced it. */
int kt_fit_group_ref(int bits, int gs, kt_dtype t, const float *x, uint8_t *codes, float *scale, float *bias);
int kt_fit_group(int bits, int gs, kt_dtype t, const float *x, uint8_t *codes, float *scale, float *bias);

/* Use KERNEL (affine.h's kinds) for kt_fit_group(); -1 when this CPU cannot. */
int kt_fit_use_kernel(kt_quant_kernel kernel);
const char *kt_fit_kernel_name(void);

/* A whole tensor, as kt_quantize_tensor() (same arguments and errors): MLX's
 * RTN in P's mode first, then every group fitted. */
int kt_fit_tensor(const kt_quant_params *p, kt_dtype t, const void *in, uint64_t rows, uint64_t k,
                  uint8_t *packed, void *scales, void *biases, int threads, uint64_t *bad_index);

/* ---- shared by the kernels: the scalar steps between the vector passes ---- */

/* The inverse step of trial I for a group of range RANGE (> 0). */
float kt_fit_trial_iscale(int bits, int i, float range);
/* The least-squares (scale, bias) for codes with sums SQ, SQQ (of code and
 * code^2), SQX (code * x) and SX (x) over N values, rounded to T. Returns 0,
 * or -1 when the codes are all equal or the pair is not usable. */
int kt_fit_solve(kt_dtype t, int n, double sq, double sqq, double sqx, double sx, float *scale, float *bias);
/* The squared error of the pair for codes with those sums (and SXX, x^2). */
double kt_fit_error(int n, double sq, double sqq, double sqx, double sx, double sxx, double scale, double bias);
/* The lanes of A added in the fixed tree. */
float kt_fit_lanes_sum(float a[KT_FIT_LANES]);
/* The value of T nearest to V, as a float. */
float kt_fit_round_to(kt_dtype t, float v);

#endif
