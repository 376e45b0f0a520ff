/* affine.h - MLX affine group quantization, bit for bit.
 *
 * A row of K values is cut into groups of `group_size` consecutive elements.
 * Each group gets a float32 scale and bias and every element a code of `bits`
 * bits such that  value ~= scale * code + bias.  MLX computes these in two
 * slightly different ways (docs/QUANTIZATION.md):
 *
 *   metal  the GPU kernel, what mlx_lm.convert writes on a Mac: round half
 *          away from zero, the group maximum starts at 0;
 *   cpu    the CPU backend (mlx[cpu] on Linux): round half to even, the
 *          maximum starts at -infinity.
 *
 * Codes are packed as one little-endian bit stream per row: element j of a
 * row occupies bits [j*bits, (j+1)*bits) of the row's bytes, which is what
 * MLX's uint32 words (bits 2, 4, 8) and 3- or 5-byte packs (bits 3, 5, 6) are.
 *
 * Every kernel here has a scalar reference (affine_ref.c) and vector versions
 * (affine_simd.c) that must give the same bytes; tests check that they do.
 */
#ifndef KT_AFFINE_H
#define KT_AFFINE_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"

typedef enum { KT_QUANT_METAL = 0, KT_QUANT_CPU = 1 } kt_quant_mode;

typedef struct {
    int bits;           /* 2, 3, 4, 5, 6 or 8 */
    int group_size;     /* 32, 64 or 128 */
    kt_quant_mode mode;
} kt_quant_params;

/* mlx-lm's default: 4 bits, groups of 64, the Metal arithmetic. */
#define KT_QUANT_DEFAULT ((kt_quant_params){4, 64, KT_QUANT_METAL})

/* 0 when BITS, GROUP_SIZE and MODE are supported, else -1 with kt_errmsg(). */
int kt_quant_params_check(const kt_quant_params *p);
const char *kt_quant_mode_name(kt_quant_mode m);
/* "metal" or "cpu". Returns -1 for anything else. */
int kt_quant_mode_parse(const char *s, kt_quant_mode *m);

/* Packed bytes of a row of K elements (K a multiple of 32). */
static inline size_t kt_quant_row_bytes(const kt_quant_params *p, size_t k) {
    return k * (size_t)p->bits / 8;
}

/* The float32 scale and bias of one group from its minimum and maximum, as
 * both MLX kernels compute them. Shared by every kernel so that they cannot
 * drift apart. */
void kt_quant_group_params(const kt_quant_params *p, float w_min, float w_max, float *scale, float *bias);

/* ---- one row, float32 in, float32 scales and biases out ----
 * W holds K finite values, K a multiple of group_size. Writes
 * kt_quant_row_bytes() bytes to PACKED and K/group_size values to SCALES and
 * BIASES. Returns 0, or -1 (outputs undefined) when a value is NaN or
 * infinite: the caller reports which one. */
int kt_quantize_row_ref(const kt_quant_params *p, const float *w, size_t k,
                        uint8_t *packed, float *scales, float *biases);
int kt_quantize_row(const kt_quant_params *p, const float *w, size_t k,
                    uint8_t *packed, float *scales, float *biases);

/* The same for a row of bf16 values (SCRATCH: K floats, used by kernels
 * that need the row widened first). Same result as widening and calling
 * kt_quantize_row(). */
int kt_quantize_row_bf16(const kt_quant_params *p, const uint16_t *w, float *scratch, size_t k,
                         uint8_t *packed, float *scales, float *biases);

/* Pack N codes (one per byte) into the bit stream (reference writer). */
void kt_pack_codes_ref(int bits, const uint8_t *codes, size_t n, uint8_t *out);

/* Unpack the codes of a row (reference bit-stream reader). */
void kt_unpack_codes_ref(int bits, const uint8_t *packed, size_t k, uint8_t *codes);

/* Dequantize a row: out = scale * code + bias, evaluated as MLX does in the
 * storage dtype T (bf16, f16 or f32): the product is rounded to T, then the
 * sum is rounded to T. SCALES, BIASES and OUT are raw T values. */
int kt_dequantize_row_ref(int bits, int group_size, kt_dtype t, const uint8_t *packed,
                          const void *scales, const void *biases, size_t k, void *out);

/* ---- whole tensors, OpenMP across rows ----
 * IN: ROWS x K raw values of T (bf16, f16 or f32), K a multiple of the group
 * size. PACKED receives ROWS * K * bits / 8 bytes, SCALES and BIASES
 * ROWS * K / group_size values of T. THREADS 0 means OpenMP's default.
 * Returns 0, or -1 with kt_errmsg() set; for a NaN or infinity *BAD_INDEX
 * is the flat index of the first one (UINT64_MAX otherwise). */
int kt_quantize_tensor(const kt_quant_params *p, kt_dtype t, const void *in, uint64_t rows, uint64_t k,
                       uint8_t *packed, void *scales, void *biases, int threads, uint64_t *bad_index);

/* The threads a tensor kernel uses for THREADS (0: OpenMP's default). */
int kt_quant_threads(int threads);

/* The inverse: OUT receives ROWS x K values of T (the dtype of the scales). */
int kt_dequantize_tensor(int bits, int group_size, kt_dtype t, const uint8_t *packed, const void *scales,
                         const void *biases, uint64_t rows, uint64_t k, void *out, int threads);

/* ---- kernel selection (tests, benchmarks) ---- */
typedef enum { KT_QK_AUTO = 0, KT_QK_SCALAR, KT_QK_AVX2, KT_QK_AVX512, KT_QK_NEON } kt_quant_kernel;
/* Use KERNEL for kt_quantize_row(). Returns -1 when this CPU cannot run it. */
int kt_quant_use_kernel(kt_quant_kernel kernel);
/* The kernel kt_quantize_row() runs now: "scalar", "avx2", "avx512", "neon". */
const char *kt_quant_kernel_name(void);
/* 1 when this CPU (and build) can run KERNEL. */
int kt_quant_kernel_available(kt_quant_kernel kernel);

#endif
