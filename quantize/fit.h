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
 * The vector kernels (fit_simd.c) fit 16 groups at once, one per lane, so
 * that every group's sums are taken in the same order as in the scalar
 * reference (fit_ref.c): the bytes are the same; tests/unit/test_fit.c checks
 * that. (Vectorising inside a group would reorder its sums, and groups of 64
 * leave too little work per trial to hide the scalar steps.)
 */
#ifndef KT_FIT_H
#define KT_FIT_H

#include <stddef.h>
#include <stdint.h>

#include "affine.h"
#include "dtype.h"

enum { KT_FIT_RTN = 0, KT_FIT_MSE = 1 };

#ifndef KT_FIT_TRIALS
#define KT_FIT_TRIALS 11
#define KT_FIT_STEP 0.2f
#endif
#ifndef KT_FIT_REFITS
#define KT_FIT_REFITS 2
#endif

/* One group of GS (32, 64 or 128) finite values X, scale and bias stored as
 * T. On entry CODES (one per byte), *SCALE and *BIAS hold MLX's result with
 * the pair already rounded to T; on return the fitted result (or MLX's pair
 * with the nearest codes). Returns 1 when anything changed. */
int kt_fit_group_ref(int bits, int gs, kt_dtype t, const float *x, uint8_t *codes, float *scale, float *bias);

/* N consecutive groups at once (X: N * GS values, CODES: N * GS, SCALE and
 * BIAS: N), each as kt_fit_group_ref(), with the kernel chosen below. */
void kt_fit_groups(int bits, int gs, kt_dtype t, size_t n, const float *x, uint8_t *codes, float *scale,
                   float *bias);

/* Use KERNEL (affine.h's kinds) for kt_fit_groups(); -1 when this CPU cannot. */
int kt_fit_use_kernel(kt_quant_kernel kernel);
const char *kt_fit_kernel_name(void);

/* A whole tensor, as kt_quantize_tensor() (same arguments and errors): MLX's
 * RTN in P's mode first, then every group fitted. */
int kt_fit_tensor(const kt_quant_params *p, kt_dtype t, const void *in, uint64_t rows, uint64_t k,
                  uint8_t *packed, void *scales, void *biases, int threads, uint64_t *bad_index);

/* ---- the scalar steps, shared by the reference and the kernels ---- */

/* Trial I's inverse step times the group's range: 2^bits - 1 + d. */
float kt_fit_trial_numerator(int bits, int i);
/* The least-squares (scale, bias) for codes with sums SQ, SQQ (of code and
 * code^2), SQX (code * x) and SX (x) over N values, rounded to T. Returns 0,
 * or -1 when the codes are all equal or the pair is not usable. */
int kt_fit_solve(kt_dtype t, int n, float sq, float sqq, float sqx, float sx, float *scale, float *bias);
/* The squared error of the pair for codes with those sums (and SXX, x^2). */
double kt_fit_error(int n, float sq, float sqq, float sqx, float sx, float sxx, float scale, float bias);

/* The value of T nearest to V (round to nearest even), as a float. */
static inline float kt_fit_round_to(kt_dtype t, float v) {
    if (t == KT_BF16) return kt_bf16_to_f32(kt_f32_to_bf16(v));
    if (t == KT_F16) return kt_f16_to_f32(kt_f32_to_f16(v));
    return v;
}

/* rne(clamp(V, 0, NMAX)): adding 2^23 to a value in [0, 2^23) leaves no
 * fraction bits, so the addition rounds to nearest even (the build forbids
 * fast-math, which would fold the pair away). */
static inline float kt_fit_code(float v, float nmax) {
    v = v < 0.0f ? 0.0f : v;
    v = v > nmax ? nmax : v;
    return (v + 0x1p23f) - 0x1p23f;
}

#endif
