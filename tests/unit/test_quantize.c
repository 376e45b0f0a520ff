/* test_quantize.c - properties of the affine quantizer and agreement of
 * every vector kernel with the scalar reference.
 *
 * The oracle tests (tests/oracle/test_quantize_oracle.py) compare the
 * reference with mx.quantize itself; here we check that the fast kernels
 * are the reference, on many random and adversarial groups.
 * KT_AGREE_GROUPS sets the number of groups per bits x group size
 * (tests/run.sh asks for 10^7 in the release build).
 */
#include "affine.h"
#include "harness.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const int BITS[] = {2, 3, 4, 5, 6, 8};
static const int GROUPS[] = {32, 64, 128};


static float bf16_round(float x) { return kt_bf16_to_f32(kt_f32_to_bf16(x)); }

/* One group of GS values of a randomly chosen kind; the adversarial kinds are
 * the ones where the two MLX semantics or a careless kernel would differ. */
static void fill_group(uint64_t *s, float *x, int gs) {
    int kind = (int)(harness_next(s) % 12);
    float scale = ldexpf(1.0f, (int)(harness_next(s) % 41) - 20);
    float c = harness_uniform(s) * scale;
    for (int j = 0; j < gs; j++) {
        float u = harness_uniform(s);
        switch (kind) {
        case 0: x[j] = u * scale; break;                                   /* plain */
        case 1: x[j] = bf16_round(u * scale); break;                       /* bf16 input */
        case 2: x[j] = (harness_next(s) & 1) ? -0.0f : 0.0f; break;                /* zeros, both signs */
        case 3: x[j] = c; break;                                           /* constant */
        case 4: x[j] = -fabsf(u) * scale; break;                           /* all negative */
        case 5: x[j] = fabsf(u) * scale; break;                            /* all positive */
        case 6: x[j] = (float)((int)(harness_next(s) % 17) - 8) * 0.5f * scale; break; /* exact .5 ties */
        case 7: x[j] = u * 1e-39f; break;                                  /* subnormals */
        case 8: x[j] = (harness_next(s) & 1) ? u * FLT_MAX : u; break;             /* huge range */
        case 9: x[j] = (harness_next(s) % 8 == 0) ? u * scale * 1000.0f : u * scale; break; /* outliers */
        case 10: x[j] = (harness_next(s) & 1) ? ((harness_next(s) & 1) ? -0.0f : 0.0f) : u * scale; break; /* +-0 mix */
        default: x[j] = (float)(int)(harness_next(s) % 16) * scale; break;         /* on a grid from 0 */
        }
    }
}

static long agree_groups(void) {
    const char *e = getenv("KT_AGREE_GROUPS");
    long n = e ? atol(e) : 200000;
    return n > 0 ? n : 200000;
}

/* Quantize the same rows with KERNEL and with the reference; count groups
 * whose bytes, scales or biases differ. */
static long compare_kernel(kt_quant_kernel kernel, int bits, int gs, long n_groups, uint64_t seed) {
    enum { ROW_GROUPS = 64 }; /* groups per row */
    const size_t k = (size_t)gs * ROW_GROUPS;
    const long n_rows = (n_groups + ROW_GROUPS - 1) / ROW_GROUPS;
    long diff = 0;
    kt_quant_use_kernel(kernel);
#pragma omp parallel reduction(+ : diff)
    {
        float *w = malloc(k * sizeof *w);
        uint8_t *p1 = malloc(k), *p2 = malloc(k);
        float s1[ROW_GROUPS], b1[ROW_GROUPS], s2[ROW_GROUPS], b2[ROW_GROUPS];
#pragma omp for schedule(static)
        for (long r = 0; r < n_rows; r++) {
            uint64_t st = seed * 0x100000001b3ull + (uint64_t)r * 0x9e3779b97f4a7c15ull;
            for (int g = 0; g < ROW_GROUPS; g++) fill_group(&st, w + (size_t)g * gs, gs);
            kt_quant_params p = {bits, gs, r % 2 ? KT_QUANT_CPU : KT_QUANT_METAL};
            int r1 = kt_quantize_row_ref(&p, w, k, p1, s1, b1);
            int r2 = kt_quantize_row(&p, w, k, p2, s2, b2);
            if (r1 || r2) {
                diff++;
                continue;
            }
            size_t gb = (size_t)gs * bits / 8;
            for (int g = 0; g < ROW_GROUPS; g++)
                if (memcmp(p1 + g * gb, p2 + g * gb, gb) || memcmp(&s1[g], &s2[g], 4) ||
                    memcmp(&b1[g], &b2[g], 4))
                    diff++;
        }
        free(w);
        free(p1);
        free(p2);
    }
    kt_quant_use_kernel(KT_QK_AUTO);
    return diff;
}

void test_quantize_simd_matches_scalar(void) {
    const kt_quant_kernel kernels[] = {KT_QK_AVX2, KT_QK_AVX512, KT_QK_NEON};
    const char *names[] = {"avx2", "avx512", "neon"};
    long n = agree_groups();
    int ran = 0;
    for (int ki = 0; ki < 3; ki++) {
        if (!kt_quant_kernel_available(kernels[ki])) continue;
        ran++;
        long total = 0;
        for (int b = 0; b < 6; b++)
            for (int g = 0; g < 3; g++) {
                long d = compare_kernel(kernels[ki], BITS[b], GROUPS[g], n, 1000u * (unsigned)b + (unsigned)g);
                CHECK_MSG(d == 0, "%s, bits %d, group %d: %ld of %ld groups differ", names[ki], BITS[b], GROUPS[g], d, n);
                total += n;
            }
        fprintf(stderr, "  %s == scalar on %ld groups per bits x group size (%ld in all)\n", names[ki], n, total);
    }
    if (!ran) fprintf(stderr, "  no vector kernel on this CPU: the scalar reference is the only path\n");
}

/* Dequantized in float32 (no storage rounding), every element whose ideal
 * code lies on the grid is within half a step of its input; the rest lie
 * beyond the far end of the grid and get the last code. (MLX anchors the
 * grid at the edge with code 0 and rescales it so that 0.0 is a grid point;
 * when edge/step rounds down, the far end of the range falls off the grid
 * and is clipped, by up to half the range for 2 bits.) The edge itself is
 * reproduced exactly. */
void test_quantize_error_within_half_step(void) {
    uint64_t st = 42;
    float w[128], scales[1], biases[1];
    uint8_t packed[128], codes[128];
    long reported = 0, clipped = 0;
    for (int iter = 0; iter < 20000 && reported < 5; iter++) {
        int bits = BITS[iter % 6], gs = GROUPS[(iter / 6) % 3];
        const int n_bins = (1 << bits) - 1;
        kt_quant_params p = {bits, gs, iter % 2 ? KT_QUANT_CPU : KT_QUANT_METAL};
        float scale = ldexpf(1.0f, (int)(harness_next(&st) % 21) - 10);
        for (int j = 0; j < gs; j++) w[j] = harness_uniform(&st) * scale;
        CHECK(kt_quantize_row_ref(&p, w, (size_t)gs, packed, scales, biases) == 0);
        kt_unpack_codes_ref(bits, packed, (size_t)gs, codes);
        const float s = scales[0], b = biases[0];
        for (int j = 0; j < gs; j++) {
            double ideal = ((double)w[j] - b) / s;
            double err = fabs((double)s * codes[j] + b - w[j]);
            int ok;
            if (ideal <= n_bins + 0.5) {
                ok = err <= fabs(s) * 0.5 * (1 + 1e-4) + 1e-6 * fabs(w[j]);
            } else {
                ok = codes[j] == n_bins;
                clipped++;
            }
            if (!ok && reported++ < 5)
                CHECK_MSG(ok, "bits %d gs %d: %g -> code %d, ideal %.3f, scale %g, bias %g", bits, gs, w[j],
                          codes[j], ideal, s, b);
        }
        float w_min = w[0], w_max = w[0];
        for (int j = 0; j < gs; j++) {
            w_min = fminf(w_min, w[j]);
            w_max = fmaxf(w_max, w[j]);
        }
        float edge = fabsf(w_min) > fabsf(w_max) ? w_min : w_max;
        if (b != 0.0f) CHECK(b == edge);
    }
    CHECK(clipped > 0); /* the clipping is real and must be covered */
}

void test_quantize_codes_roundtrip_through_packing(void) {
    uint64_t st = 7;
    float w[128], scales[1], biases[1];
    uint8_t packed[128], codes[128], again[128];
    for (int iter = 0; iter < 6000; iter++) {
        int bits = BITS[iter % 6], gs = GROUPS[(iter / 6) % 3];
        kt_quant_params p = {bits, gs, KT_QUANT_CPU};
        fill_group(&st, w, gs);
        kt_quant_use_kernel(KT_QK_AUTO);
        CHECK(kt_quantize_row(&p, w, (size_t)gs, packed, scales, biases) == 0);
        kt_unpack_codes_ref(bits, packed, (size_t)gs, codes);
        for (int j = 0; j < gs; j++) CHECK(codes[j] <= (1 << bits) - 1);
        /* dequantize -> quantize with the same scale and bias gives the same codes */
        for (int j = 0; j < gs; j++) {
            float q = rintf((w[j] - biases[0]) / scales[0]);
            q = fminf(fmaxf(q, 0.0f), (float)((1 << bits) - 1));
            again[j] = (uint8_t)q;
        }
        CHECK(memcmp(codes, again, (size_t)gs) == 0);
    }
}

void test_quantize_rejects_nonfinite(void) {
    float w[256];
    uint8_t packed[256];
    float s[8], b[8];
    const float bad[] = {NAN, INFINITY, -INFINITY};
    kt_quant_params p = {4, 64, KT_QUANT_METAL};
    for (int kind = 0; kind < 3; kind++)
        for (int where = 0; where < 256; where += 37) {
            for (int j = 0; j < 256; j++) w[j] = (float)j * 0.01f;
            w[where] = bad[kind];
            kt_quant_use_kernel(KT_QK_SCALAR);
            CHECK(kt_quantize_row(&p, w, 256, packed, s, b) == -1);
            kt_quant_use_kernel(KT_QK_AUTO);
            CHECK(kt_quantize_row(&p, w, 256, packed, s, b) == -1);
            /* the tensor driver names the first bad element */
            uint16_t in[256];
            kt_f32_to_bf16_row_ref(w, in, 256);
            uint8_t pk[128];
            uint16_t sc[4], bi[4];
            uint64_t idx = 0;
            CHECK(kt_quantize_tensor(&p, KT_BF16, in, 1, 256, pk, sc, bi, 0, &idx) == -1);
            CHECK(idx == (uint64_t)where);
        }
}

/* The two semantics differ exactly where the documentation says. */
void test_quantize_metal_and_cpu_differ_as_documented(void) {
    float w[32], s1, b1, s2, b2;
    uint8_t p1[32], p2[32];
    kt_quant_params metal = {4, 32, KT_QUANT_METAL}, cpu = {4, 32, KT_QUANT_CPU};
    /* all negative: Metal's maximum is clamped to 0 */
    for (int j = 0; j < 32; j++) w[j] = -1.0f - (float)j * 0.1f;
    kt_quantize_row_ref(&metal, w, 32, p1, &s1, &b1);
    kt_quantize_row_ref(&cpu, w, 32, p2, &s2, &b2);
    CHECK(b1 == b2);            /* both anchor at the minimum */
    CHECK(s1 != s2);            /* over different ranges */
    CHECK(fabsf(s1 - 4.1f / 15.0f) < 1e-6f);
    /* all positive: identical */
    for (int j = 0; j < 32; j++) w[j] = 1.0f + (float)j * 0.1f;
    kt_quantize_row_ref(&metal, w, 32, p1, &s1, &b1);
    kt_quantize_row_ref(&cpu, w, 32, p2, &s2, &b2);
    CHECK(s1 == s2 && b1 == b2 && memcmp(p1, p2, 16) == 0);
    /* a code exactly halfway: 0 .. 15 with one value at 2.5 -> round 3, rint 2 */
    for (int j = 0; j < 32; j++) w[j] = (float)(j % 16);
    w[5] = 2.5f;
    kt_quantize_row_ref(&metal, w, 32, p1, &s1, &b1);
    kt_quantize_row_ref(&cpu, w, 32, p2, &s2, &b2);
    uint8_t c1[32], c2[32];
    kt_unpack_codes_ref(4, p1, 32, c1);
    kt_unpack_codes_ref(4, p2, 32, c2);
    CHECK(s1 == -1.0f && b1 == 15.0f);  /* max has the larger magnitude: negative scale */
    CHECK(c1[5] == 13 && c2[5] == 12);  /* (2.5 - 15) / -1 = 12.5 */
}

void test_dequantize_rounds_like_mlx(void) {
    /* bf16: the product is rounded to bf16 before the bias is added */
    uint8_t packed[16] = {0};
    packed[0] = 0x0f; /* code 15 for element 0, 0 for element 1 */
    uint16_t scale = kt_f32_to_bf16(1.0f + 1.0f / 128.0f), bias = kt_f32_to_bf16(1000.0f);
    uint16_t out[32];
    CHECK(kt_dequantize_row_ref(4, 32, KT_BF16, packed, &scale, &bias, 32, out) == 0);
    float expect = kt_bf16_to_f32(kt_f32_to_bf16(kt_bf16_to_f32(kt_f32_to_bf16(15.0f * (1.0f + 1.0f / 128.0f))) + 1000.0f));
    CHECK(kt_bf16_to_f32(out[0]) == expect);
    CHECK(kt_bf16_to_f32(out[1]) == 1000.0f);
}

/* Tensors in safetensors files need not be aligned (MLX pads nothing): an
 * input at an odd address gives the same bytes as an aligned one. */
void test_quantize_unaligned_input(void) {
    enum { K = 256, ROWS = 3 };
    uint64_t st = 99;
    static uint16_t aligned[ROWS * K];
    static unsigned char shifted[ROWS * K * 2 + 1];
    for (int i = 0; i < ROWS * K; i++) aligned[i] = kt_f32_to_bf16(harness_uniform(&st));
    memcpy(shifted + 1, aligned, sizeof aligned);
    kt_quant_params p = {4, 64, KT_QUANT_METAL};
    uint8_t pa[ROWS * K / 2], pb[ROWS * K / 2];
    uint16_t sa[ROWS * 4], sb[ROWS * 4], ba[ROWS * 4], bb[ROWS * 4];
    uint64_t bad;
    CHECK(kt_quantize_tensor(&p, KT_BF16, aligned, ROWS, K, pa, sa, ba, 1, &bad) == 0);
    CHECK(kt_quantize_tensor(&p, KT_BF16, shifted + 1, ROWS, K, pb, sb, bb, 1, &bad) == 0);
    CHECK(memcmp(pa, pb, sizeof pa) == 0 && memcmp(sa, sb, sizeof sa) == 0 && memcmp(ba, bb, sizeof ba) == 0);
    float f[K];
    kt_row_to_f32(KT_BF16, shifted + 1, f, K);
    CHECK(f[5] == kt_bf16_to_f32(aligned[5]));
}
