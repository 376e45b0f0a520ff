/* test_dtype.c - conversions: exhaustive over 16-bit inputs, SIMD == scalar. */
#include "dtype.h"
#include "harness.h"
#include "tests.h"

#include <math.h>
#include <stdlib.h>

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* Random f32 bit patterns plus the edges that matter. */
static float *test_floats(size_t n) {
    static const uint32_t edges[] = {0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000,
                                     0x7f800001, 0xffc12345, 0x3f808000, 0x3f818000, 0x7f7fffff,
                                     0x00000001, 0x477ff000, 0x477fefff, 0x33000000, 0x33000001,
                                     0x38800000, 0x387fffff, 0x3f7fffff, 0x7f7f8000};
    float *f = malloc(n * sizeof *f);
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        f[i] = i < sizeof edges / sizeof edges[0] ? u2f(edges[i]) : u2f((uint32_t)s);
    }
    return f;
}

void test_bf16_from_f32_every_pattern(void) {
    /* widening then narrowing gives back every non-NaN bf16 pattern */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = kt_bf16_to_f32((uint16_t)h);
        uint16_t back = kt_f32_to_bf16(f);
        if (isnan(f)) CHECK(back == 0x7fc0);
        else CHECK_MSG(back == h, "0x%04x -> 0x%04x", h, back);
    }
    /* ties to even, overflow to infinity, NaN canonical (values checked against MLX) */
    CHECK(kt_f32_to_bf16(u2f(0x3f808000)) == 0x3f80);
    CHECK(kt_f32_to_bf16(u2f(0x3f818000)) == 0x3f82);
    CHECK(kt_f32_to_bf16(u2f(0x7f7fffff)) == 0x7f80);
    CHECK(kt_f32_to_bf16(u2f(0xffc12345)) == 0x7fc0);
    CHECK(kt_f32_to_bf16(u2f(0x00000001)) == 0x0000);
}

void test_bf16_simd_matches_scalar(void) {
    size_t n = 1 << 20;
    float *f = test_floats(n);
    uint16_t *a = malloc(n * 2), *b = malloc(n * 2);
    float *wa = malloc(n * 4), *wb = malloc(n * 4);
    kt_f32_to_bf16_row_ref(f, a, n);
    kt_f32_to_bf16_row(f, b, n);
    CHECK(memcmp(a, b, n * 2) == 0);
    /* odd lengths exercise the tails */
    kt_f32_to_bf16_row(f + 3, b, 1001);
    kt_f32_to_bf16_row_ref(f + 3, a, 1001);
    CHECK(memcmp(a, b, 1001 * 2) == 0);
    kt_bf16_to_f32_row_ref(a, wa, 1001);
    kt_bf16_to_f32_row(a, wb, 1001);
    CHECK(memcmp(wa, wb, 1001 * 4) == 0);
    free(f); free(a); free(b); free(wa); free(wb);
}

void test_f16_roundtrip_every_pattern(void) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = kt_f16_to_f32((uint16_t)h);
        uint16_t back = kt_f32_to_f16(f);
        if (isnan(f)) CHECK((back & 0x7e00) == 0x7e00);
        else CHECK_MSG(back == h, "0x%04x -> %g -> 0x%04x", h, f, back);
    }
}

void test_f16_simd_matches_scalar(void) {
    size_t n = 1 << 20;
    float *f = test_floats(n);
    uint16_t *a = malloc(n * 2), *b = malloc(n * 2);
    kt_f32_to_f16_row_ref(f, a, n);
    kt_f32_to_f16_row(f, b, n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += a[i] != b[i];
    CHECK_MSG(bad == 0, "%zu of %zu differ (%s)", bad, n, kt_dtype_simd_name());
    uint16_t all[65536];
    float wa[65536], wb[65536];
    for (uint32_t h = 0; h < 65536; h++) all[h] = (uint16_t)h;
    kt_f16_to_f32_row_ref(all, wa, 65536);
    kt_f16_to_f32_row(all, wb, 65536);
    CHECK(memcmp(wa, wb, sizeof wa) == 0);
    free(f); free(a); free(b);
}

void test_f16_rounding_known_values(void) {
    CHECK(kt_f32_to_f16(1.0f) == 0x3c00);
    CHECK(kt_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(kt_f32_to_f16(65520.0f) == 0x7c00);       /* tie above the max rounds to infinity */
    CHECK(kt_f32_to_f16(65519.996f) == 0x7bff);
    CHECK(kt_f32_to_f16(5.9604645e-08f) == 0x0001); /* 2^-24, smallest subnormal */
    CHECK(kt_f32_to_f16(2.9802322e-08f) == 0x0000); /* 2^-25: tie to even, zero */
    CHECK(kt_f32_to_f16(-0.0f) == 0x8000);
    CHECK(kt_f32_to_f16(u2f(f2u(1.0f) + 0x1000)) == 0x3c00); /* exact tie: even */
    CHECK(kt_f32_to_f16(u2f(f2u(1.0f) + 0x3000)) == 0x3c02); /* tie: round up to even */
}
