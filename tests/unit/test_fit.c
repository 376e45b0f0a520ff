/* test_fit.c - the fitted quantization (quantize/fit.h): every vector kernel
 * gives the scalar reference's bytes, and the properties the format and
 * kintsugi-verify rely on hold for every group: each code is the nearest for
 * the stored pair, the pair is a value of the stored dtype, and the error is
 * never above MLX's round-to-nearest.
 */
#include "fit.h"
#include "harness.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const int BITS[] = {2, 3, 4, 5, 6, 8};
static const int GROUPS[] = {32, 64, 128};
static const kt_dtype DTYPES[] = {KT_BF16, KT_F16, KT_F32};


/* A group of one of several kinds, rounded to T as a converted tensor is. */
static void fill(uint64_t *s, float *x, int gs, kt_dtype t) {
    const int kind = (int)(harness_next(s) % 9);
    const float scale = ldexpf(1.0f, (int)(harness_next(s) % 21) - 14), c = harness_uniform(s) * scale;
    for (int j = 0; j < gs; j++) {
        const float u = harness_uniform(s), v = harness_uniform(s);
        switch (kind) {
        case 0: x[j] = (u + v + harness_uniform(s)) * scale; break;                     /* near-Gaussian */
        case 1: x[j] = u / (fabsf(v) + 0.05f) * scale; break;                  /* heavy tails */
        case 2: x[j] = (harness_next(s) % 16 == 0) ? u * 50 * scale : u * scale; break; /* outliers */
        case 3: x[j] = c; break;                                               /* constant */
        case 4: x[j] = (float)((int)(harness_next(s) % 9) - 4) * 0.5f * scale; break;  /* ties */
        case 5: x[j] = fabsf(u) * scale + 3 * scale; break;                   /* all positive, offset */
        case 6: x[j] = u * 1e-39f; break;                                      /* subnormal */
        case 7: x[j] = (harness_next(s) & 1) ? u * FLT_MAX * 0.5f : u; break;          /* huge range */
        default: x[j] = (harness_next(s) & 1) ? 0.0f : u * scale; break;               /* half zeros */
        }
    }
    uint8_t raw[512];
    kt_row_from_f32(t, x, raw, (size_t)gs);
    kt_row_to_f32(t, raw, x, (size_t)gs);
}

/* MLX's result for one group as it is stored: codes, pair rounded to T. */
static void rtn(int bits, int gs, kt_dtype t, kt_quant_mode mode, const float *x, uint8_t *codes, float *s, float *b) {
    kt_quant_params p = {bits, gs, mode};
    uint8_t packed[128];
    kt_quantize_row_ref(&p, x, (size_t)gs, packed, s, b);
    kt_unpack_codes_ref(bits, packed, (size_t)gs, codes);
    *s = kt_fit_round_to(t, *s), *b = kt_fit_round_to(t, *b);
}

static double sq_error(int gs, const float *x, const uint8_t *codes, float s, float b) {
    double e = 0;
    for (int j = 0; j < gs; j++) {
        const double d = (double)s * codes[j] + b - x[j];
        e += d * d;
    }
    return e;
}

static long agree_groups(void) {
    const char *e = getenv("KT_AGREE_GROUPS");
    long n = e ? atol(e) / 100 : 4000; /* per bits x group size x dtype: 54 cases */
    return n > 0 ? n : 4000;
}

/* Chunks of 37 groups (two full blocks of 16 and a padded one) through the
 * kernel and group by group through the reference. */
void test_fit_simd_matches_scalar(void) {
    const kt_quant_kernel kernels[] = {KT_QK_AVX2, KT_QK_AVX512, KT_QK_NEON};
    enum { CH = 37 };
    const long n = agree_groups() / CH + 1;
    int ran = 0;
    for (int ki = 0; ki < 3; ki++) {
        if (kt_fit_use_kernel(kernels[ki])) continue;
        ran++;
        long diff = 0, fitted = 0;
        for (int c = 0; c < 6 * 3 * 3; c++) {
            const int bits = BITS[c % 6], gs = GROUPS[(c / 6) % 3];
            const kt_dtype t = DTYPES[c / 18];
#pragma omp parallel for reduction(+ : diff, fitted) schedule(static)
            for (long i = 0; i < n; i++) {
                uint64_t st = (uint64_t)c * 0x100000001b3ull + (uint64_t)i * 0x9e3779b97f4a7c15ull;
                float x[CH * 128], s1[CH], b1[CH], s2[CH], b2[CH];
                uint8_t c1[CH * 128], c2[CH * 128];
                for (int g = 0; g < CH; g++) {
                    fill(&st, x + g * gs, gs, t);
                    rtn(bits, gs, t, (i + g) % 2 ? KT_QUANT_CPU : KT_QUANT_METAL, x + g * gs, c1 + g * gs, &s1[g], &b1[g]);
                }
                memcpy(c2, c1, sizeof c1), memcpy(s2, s1, sizeof s1), memcpy(b2, b1, sizeof b1);
                for (int g = 0; g < CH; g++) fitted += kt_fit_group_ref(bits, gs, t, x + g * gs, c1 + g * gs, &s1[g], &b1[g]);
                kt_fit_groups(bits, gs, t, CH, x, c2, s2, b2);
                for (int g = 0; g < CH; g++)
                    diff += memcmp(c1 + g * gs, c2 + g * gs, (size_t)gs) || memcmp(&s1[g], &s2[g], 4) || memcmp(&b1[g], &b2[g], 4);
            }
        }
        CHECK_MSG(diff == 0, "%s: %ld of %ld groups differ from the scalar reference", kt_fit_kernel_name(), diff, n * CH * 54);
        CHECK(fitted > 0);
        fprintf(stderr, "  fit %s == scalar on %ld groups (%ld changed by the fit)\n", kt_fit_kernel_name(), n * CH * 54, fitted);
    }
    kt_fit_use_kernel(KT_QK_AUTO);
    if (!ran) fprintf(stderr, "  no vector kernel on this CPU: the scalar reference is the only path\n");
}

/* The properties, on the reference: nearest codes (within a thousandth of a
 * step, the slack kintsugi-verify allows), a pair of values of T, an error
 * no larger than MLX's, and, over near-Gaussian and heavy-tailed groups, a
 * clearly lower one (about 18-20% lower squared error at 4 bits). */
void test_fit_properties(void) {
    long far = 0, worse = 0, not_t = 0;
    double e_fit[6] = {0}, e_rtn[6] = {0};
    for (long i = 0; i < 30000; i++) {
        const int bits = BITS[i % 6], gs = GROUPS[(i / 6) % 3];
        const kt_dtype t = DTYPES[(i / 18) % 3];
        uint64_t st = (uint64_t)i * 7919u + 1;
        float x[128], s, b, s0, b0;
        uint8_t codes[128], c0[128];
        fill(&st, x, gs, t);
        rtn(bits, gs, t, KT_QUANT_METAL, x, c0, &s0, &b0);
        memcpy(codes, c0, sizeof codes), s = s0, b = b0;
        kt_fit_group_ref(bits, gs, t, x, codes, &s, &b);
        not_t += kt_fit_round_to(t, s) != s || kt_fit_round_to(t, b) != b;
        const double e = sq_error(gs, x, codes, s, b), e0 = sq_error(gs, x, c0, s0, b0);
        if (isfinite(e0)) worse += e > e0 * (1 + 1e-5) + 1e-30;
        const double nmax = (1 << bits) - 1;
        for (int j = 0; j < gs && s != 0 && isfinite(e0); j++) {
            double n = nearbyint(((double)x[j] - b) / s);
            n = n < 0 ? 0 : (n > nmax ? nmax : n);
            far += fabs((double)s * codes[j] + b - x[j]) > fabs((double)s * n + b - x[j]) + 1e-3 * fabs(s);
        }
        if (isfinite(e0) && t == KT_BF16) e_fit[i % 6] += e / (e0 + 1e-300), e_rtn[i % 6] += 1;
    }
    CHECK_MSG(far == 0, "%ld codes are not the nearest for their pair", far);
    CHECK_MSG(worse == 0, "%ld groups have more error than MLX's", worse);
    CHECK_MSG(not_t == 0, "%ld pairs are not values of their dtype", not_t);
    /* the mean ratio over all kinds (constant and tie groups included, where
     * nothing can be gained) is below 1 at every bit width */
    for (int k = 0; k < 6; k++) CHECK_MSG(e_fit[k] / e_rtn[k] < 0.95, "bits %d: mean error ratio %.3f", BITS[k], e_fit[k] / e_rtn[k]);
}

/* On near-Gaussian and heavy-tailed rows at 4 bits, group 64, bf16: the
 * tensor's squared error falls by 15-25% (the research probe: 18-20%). */
void test_fit_lowers_error_on_realistic_weights(void) {
    const int gs = 64, n_groups = 4000;
    for (int heavy = 0; heavy < 2; heavy++) {
        double e_fit = 0, e_rtn = 0;
        uint64_t st = 99 + (uint64_t)heavy;
        for (int g = 0; g < n_groups; g++) {
            float x[64], s, b;
            uint8_t codes[64];
            for (int j = 0; j < gs; j++) {
                const float u = harness_uniform(&st), v = harness_uniform(&st), w = harness_uniform(&st);
                x[j] = heavy ? 0.02f * u / (fabsf(v) + 0.3f) : 0.02f * (u + v + w);
                x[j] = kt_fit_round_to(KT_BF16, x[j]);
            }
            rtn(4, gs, KT_BF16, KT_QUANT_METAL, x, codes, &s, &b);
            e_rtn += sq_error(gs, x, codes, s, b);
            kt_fit_groups(4, gs, KT_BF16, 1, x, codes, &s, &b);
            e_fit += sq_error(gs, x, codes, s, b);
        }
        const double ratio = e_fit / e_rtn;
        fprintf(stderr, "  4-bit g64 %s: fitted / RTN squared error %.3f\n", heavy ? "heavy-tailed" : "near-Gaussian", ratio);
        CHECK_MSG(ratio > 0.70 && ratio < 0.88, "ratio %.3f", ratio);
    }
}

/* kt_fit_tensor = RTN then each group fitted, whatever the thread count. */
static void tensor_matches_groups(int bits) {
    const int rows = 37, k = 256, gs = 64;
    uint16_t in[37 * 256];
    float x[256];
    uint64_t st = 5;
    for (int i = 0; i < rows * k; i++) in[i] = kt_f32_to_bf16(0.02f * harness_uniform(&st) / (fabsf(harness_uniform(&st)) + 0.2f));
    kt_quant_params p = {bits, gs, KT_QUANT_METAL};
    const size_t rb = (size_t)k * bits / 8, ng = (size_t)k / gs;
    uint8_t *packed1 = calloc((size_t)rows, rb), *packed2 = calloc((size_t)rows, rb);
    uint16_t *s1 = calloc((size_t)rows * ng, 2), *b1 = calloc((size_t)rows * ng, 2);
    uint16_t *s2 = calloc((size_t)rows * ng, 2), *b2 = calloc((size_t)rows * ng, 2);
    uint64_t bad;
    CHECK(kt_fit_tensor(&p, KT_BF16, in, rows, k, packed1, s1, b1, 1, &bad) == 0);
    CHECK(kt_fit_tensor(&p, KT_BF16, in, rows, k, packed2, s2, b2, 3, &bad) == 0);
    CHECK(!memcmp(packed1, packed2, rows * rb) && !memcmp(s1, s2, rows * ng * 2) && !memcmp(b1, b2, rows * ng * 2));
    long mismatch = 0;
    for (int r = 0; r < rows; r++) {
        kt_row_to_f32(KT_BF16, in + (size_t)r * k, x, (size_t)k);
        for (size_t g = 0; g < ng; g++) {
            uint8_t codes[64], got[64];
            float s, b;
            rtn(bits, gs, KT_BF16, KT_QUANT_METAL, x + g * gs, codes, &s, &b);
            kt_fit_group_ref(bits, gs, KT_BF16, x + g * gs, codes, &s, &b);
            kt_unpack_codes_ref(bits, packed1 + r * rb + g * gs * bits / 8, gs, got);
            mismatch += memcmp(codes, got, gs) || kt_f32_to_bf16(s) != s1[r * ng + g] || kt_f32_to_bf16(b) != b1[r * ng + g];
        }
    }
    CHECK_MSG(mismatch == 0, "%d bits: %ld groups differ from kt_fit_group_ref", bits, mismatch);
    in[1000] = 0x7fc0; /* NaN */
    CHECK(kt_fit_tensor(&p, KT_BF16, in, rows, k, packed1, s1, b1, 2, &bad) == -1 && bad == 1000);
    free(packed1), free(packed2), free(s1), free(b1), free(s2), free(b2);
}

void test_fit_tensor_matches_groups(void) {
    for (int b = 0; b < 6; b++) tensor_matches_groups(BITS[b]);
}
