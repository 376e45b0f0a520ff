/* cross_main.c - the unit tests of the vector kernels alone, for a cross
 * build: the quantizer, the fit and the runtime's matrix kernels.
 *
 * tests/cross/neon.sh compiles this for arm64 and runs it under qemu, so the
 * NEON kernels are checked against the scalar references on an x86-64 CI
 * machine too. */
#include "harness.h"

#include <stdio.h>

int harness_failures;

void test_quantize_simd_matches_scalar(void);
void test_quantize_error_within_half_step(void);
void test_quantize_codes_roundtrip_through_packing(void);
void test_quantize_rejects_nonfinite(void);
void test_quantize_metal_and_cpu_differ_as_documented(void);
void test_dequantize_rounds_like_mlx(void);
void test_quantize_unaligned_input(void);
void test_matvec_kernels_match_reference(void);
void test_matvec_dispatch_matches_reference(void);
void test_dot_and_batch_match_reference(void);
void test_qact_quantize(void);
void test_int8_kernels_match_reference(void);
void test_int8_packed_gemm_matches_reference(void);
void test_int8_rows8_matches_reference(void);
void test_fit_simd_matches_scalar(void);
void test_fit_properties(void);
void test_fit_tensor_matches_groups(void);

static const test_case TESTS[] = {
    {"test_quantize_simd_matches_scalar", test_quantize_simd_matches_scalar},
    {"test_quantize_error_within_half_step", test_quantize_error_within_half_step},
    {"test_quantize_codes_roundtrip_through_packing", test_quantize_codes_roundtrip_through_packing},
    {"test_quantize_rejects_nonfinite", test_quantize_rejects_nonfinite},
    {"test_quantize_metal_and_cpu_differ_as_documented", test_quantize_metal_and_cpu_differ_as_documented},
    {"test_dequantize_rounds_like_mlx", test_dequantize_rounds_like_mlx},
    {"test_quantize_unaligned_input", test_quantize_unaligned_input},
    {"test_matvec_kernels_match_reference", test_matvec_kernels_match_reference},
    {"test_matvec_dispatch_matches_reference", test_matvec_dispatch_matches_reference},
    {"test_dot_and_batch_match_reference", test_dot_and_batch_match_reference},
    {"test_qact_quantize", test_qact_quantize},
    {"test_int8_kernels_match_reference", test_int8_kernels_match_reference},
    {"test_int8_packed_gemm_matches_reference", test_int8_packed_gemm_matches_reference},
    {"test_int8_rows8_matches_reference", test_int8_rows8_matches_reference},
    {"test_fit_simd_matches_scalar", test_fit_simd_matches_scalar},
    {"test_fit_properties", test_fit_properties},
    {"test_fit_tensor_matches_groups", test_fit_tensor_matches_groups},
};

int main(void) {
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof TESTS / sizeof TESTS[0]; i++) {
        int before = harness_failures;
        TESTS[i].fn();
        int ok = harness_failures == before;
        printf("%s %s (arm64)\n", ok ? "ok  " : "FAIL", TESTS[i].name);
        if (ok) passed++; else failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
