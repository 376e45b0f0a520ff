/* tests.h - the list of unit tests; each file defines its own. */
#ifndef KT_TESTS_H
#define KT_TESTS_H

#define ALL_TESTS                                 \
    X(test_bf16_from_f32_every_pattern)           \
    X(test_bf16_simd_matches_scalar)              \
    X(test_f16_roundtrip_every_pattern)           \
    X(test_f16_simd_matches_scalar)               \
    X(test_f16_rounding_known_values)             \
    X(test_json_python_float_repr)                \
    X(test_json_numbers_keep_value)               \
    X(test_json_duplicate_keys)                   \
    X(test_json_rejects_what_python_rejects)      \
    X(test_json_print_indent4)                    \
    X(test_json_marker_string_not_a_number)       \
    X(test_json_key_three_times)                  \
    X(test_json_print_cut_utf8)                   \
    X(test_json_report_is_strict)                 \
    X(test_safetensors_roundtrip)                 \
    X(test_safetensors_header_is_mlx_style)       \
    X(test_safetensors_writer_counts_bytes)       \
    X(test_model_dir_index_checks)                \
    X(test_strmap_many_keys)                      \
    X(test_quantize_simd_matches_scalar)          \
    X(test_quantize_error_within_half_step)       \
    X(test_quantize_codes_roundtrip_through_packing) \
    X(test_quantize_rejects_nonfinite)            \
    X(test_quantize_metal_and_cpu_differ_as_documented) \
    X(test_dequantize_rounds_like_mlx)            \
    X(test_quantize_unaligned_input)              \
    X(test_fit_simd_matches_scalar)               \
    X(test_fit_properties)                        \
    X(test_fit_lowers_error_on_realistic_weights) \
    X(test_fit_tensor_matches_groups)             \
    X(test_matvec_kernels_match_reference)        \
    X(test_kernel_tables_named)                   \
    X(test_matvec_dispatch_matches_reference)     \
    X(test_dot_and_batch_match_reference)         \
    X(test_qact_quantize)                         \
    X(test_int8_kernels_match_reference)          \
    X(test_int8_packed_gemm_matches_reference)    \
    X(test_int8_rows8_matches_reference)          \
    X(test_mamba_steps_equal_token_steps)         \
    X(test_attend_tokens_equal_token_attend)      \
    X(test_relu2_is_its_definition)               \
    X(test_cli_grammar)                           \
    X(test_cli_value_readers)                     \
    X(test_output_path_rules)                     \
    X(test_config_validator)                      \
    X(test_config_quantization_entries)           \
    X(test_errno_wording_and_context)

#define X(name) void name(void);
ALL_TESTS
#undef X

#endif
