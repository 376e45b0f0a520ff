/* test_matvec.c - the runtime's matrix-vector product: the vector kernels
 * against the scalar reference (same sums in another order: equal to
 * rounding), and the reference against the dequantized matrix. */
#include "affine.h"
#include "harness.h"
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float frand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

void test_matvec_simd_matches_scalar(void) {
    const int bits_list[] = {2, 3, 4, 5, 6, 8}, gs_list[] = {32, 64, 128};
    const int out = 96, in = 512;
    uint64_t st = 5;
    float *w = malloc((size_t)out * in * sizeof *w), *x = malloc((size_t)in * sizeof *x);
    float *y1 = malloc(out * sizeof *y1), *y2 = malloc(out * sizeof *y2), *row = malloc(in * sizeof *row);
    uint16_t *wb = malloc((size_t)out * in * 2);
    for (int i = 0; i < out * in; i++) w[i] = frand(&st) * 0.05f;
    for (int i = 0; i < in; i++) x[i] = frand(&st);
    kt_f32_to_bf16_row_ref(w, wb, (size_t)out * in);
    for (int b = 0; b < 6; b++)
        for (int g = 0; g < 3; g++) {
            kt_quant_params p = {bits_list[b], gs_list[g], KT_QUANT_CPU};
            uint8_t *packed = malloc((size_t)out * in);
            uint16_t *sc = malloc((size_t)out * in / gs_list[g] * 2), *bi = malloc((size_t)out * in / gs_list[g] * 2);
            uint64_t bad;
            CHECK(kt_quantize_tensor(&p, KT_BF16, wb, out, in, packed, sc, bi, 1, &bad) == 0);
            kt_linear l = {out, in, 1, packed, KT_BF16, (const uint8_t *)sc, (const uint8_t *)bi, p.bits, p.group_size};
            kt_matvec_force_scalar(1);
            kt_linear_apply(&l, x, y1);
            kt_matvec_force_scalar(0);
            kt_linear_apply(&l, x, y2);
            for (int o = 0; o < out; o++) {
                kt_linear_row(&l, o, row);
                double exact = 0, mag = 0;
                for (int i = 0; i < in; i++) exact += (double)row[i] * x[i], mag += fabs((double)row[i] * x[i]);
                CHECK_MSG(fabs(y1[o] - exact) <= 1e-5 * mag + 1e-7, "ref bits %d gs %d row %d: %g vs %g", p.bits, p.group_size, o, y1[o], exact);
                CHECK_MSG(fabs(y2[o] - y1[o]) <= 1e-5 * mag + 1e-7, "simd bits %d gs %d row %d: %g vs %g", p.bits, p.group_size, o, y2[o], y1[o]);
            }
            free(packed);
            free(sc);
            free(bi);
        }
    kt_linear d = {out, in, 0, (const uint8_t *)wb, KT_BF16, NULL, NULL, 0, 0};
    kt_matvec_force_scalar(1);
    kt_linear_apply(&d, x, y1);
    kt_matvec_force_scalar(0);
    kt_linear_apply(&d, x, y2);
    for (int o = 0; o < out; o++) {
        double mag = 0;
        for (int i = 0; i < in; i++) mag += fabs(kt_bf16_to_f32(wb[o * in + i]) * x[i]);
        CHECK(fabs(y2[o] - y1[o]) <= 1e-5 * mag + 1e-7);
    }
    free(w), free(x), free(y1), free(y2), free(row), free(wb);
}

void test_dot_and_batch_match_reference(void) {
    uint64_t st = 9;
    enum { N = 1000, T = 5, OUT = 40, IN = 256 };
    float a[N], b[N];
    double mag = 0;
    for (int i = 0; i < N; i++) a[i] = frand(&st), b[i] = frand(&st), mag += fabs((double)a[i] * b[i]);
    for (int n = 0; n <= N; n += 37) {
        float r = kt_dot_ref(a, b, n), f = kt_dot(a, b, n);
        CHECK_MSG(fabs(r - f) <= 1e-5 * mag + 1e-7, "n %d: %g vs %g", n, f, r);
    }
    /* batched products equal one-at-a-time ones */
    float *w = malloc((size_t)OUT * IN * sizeof *w), *x = malloc((size_t)T * IN * sizeof *x);
    float *y1 = malloc((size_t)T * OUT * sizeof *y1), *y2 = malloc((size_t)OUT * sizeof *y2);
    for (int i = 0; i < OUT * IN; i++) w[i] = frand(&st);
    for (int i = 0; i < T * IN; i++) x[i] = frand(&st);
    kt_linear l = {OUT, IN, 0, (const uint8_t *)w, KT_F32, NULL, NULL, 0, 0};
    kt_linear_apply_batch(&l, x, T, y1);
    for (int t = 0; t < T; t++) {
        kt_linear_apply(&l, x + t * IN, y2);
        for (int o = 0; o < OUT; o++) CHECK(fabs(y1[t * OUT + o] - y2[o]) <= 1e-4);
    }
    free(w), free(x), free(y1), free(y2);
}
