/* affine_tensor.c - quantize and dequantize whole tensors, rows in parallel.
 *
 * Each thread widens its rows to float32 in a private buffer, runs the row
 * kernel and narrows the scales and biases back to the input dtype (round to
 * nearest even, as MLX stores them). Rows are independent, so the result
 * does not depend on the number of threads.
 */
#include "affine.h"
#include "error.h"
#include "strbuf.h"

#include <math.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static int check_shape(const kt_quant_params *p, kt_dtype t, uint64_t k) {
    if (t != KT_BF16 && t != KT_F16 && t != KT_F32)
        return kt_fail("cannot quantize %s values (bf16, f16 or f32 expected)", kt_dtype_name(t));
    if (k == 0 || k % (uint64_t)p->group_size != 0)
        return kt_fail("last dimension %llu is not a multiple of the group size %d",
                       (unsigned long long)k, p->group_size);
    return 0;
}

int kt_quant_threads(int threads) {
#ifdef _OPENMP
    return threads > 0 ? threads : omp_get_max_threads();
#else
    (void)threads;
    return 1;
#endif
}

int kt_quantize_tensor(const kt_quant_params *p, kt_dtype t, const void *in, uint64_t rows, uint64_t k,
                       uint8_t *packed, void *scales, void *biases, int threads, uint64_t *bad_index) {
    *bad_index = UINT64_MAX;
    if (kt_quant_params_check(p) || check_shape(p, t, k)) return -1;
    kt_quant_kernel_name(); /* choose the kernel before the threads start */
    const size_t in_row = (size_t)k * kt_dtype_bits(t) / 8;
    const size_t n_groups = (size_t)(k / (uint64_t)p->group_size);
    const size_t sb_row = n_groups * kt_dtype_bits(t) / 8;
    const size_t out_row = kt_quant_row_bytes(p, (size_t)k);
    uint64_t first_bad = UINT64_MAX;

#pragma omp parallel num_threads(kt_quant_threads(threads))
    {
        float *w = kt_xmalloc((size_t)k * sizeof *w);
        float *s = kt_xmalloc(n_groups * sizeof *s);
        float *b = kt_xmalloc(n_groups * sizeof *b);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < (int64_t)rows; r++) {
            const uint8_t *row = (const uint8_t *)in + (size_t)r * in_row;
            uint8_t *out = packed + (size_t)r * out_row;
            int rc;
            if (t == KT_BF16) {
                rc = kt_quantize_row_bf16(p, (const uint16_t *)row, w, (size_t)k, out, s, b);
            } else {
                kt_row_to_f32(t, row, w, (size_t)k);
                rc = kt_quantize_row(p, w, (size_t)k, out, s, b);
            }
            if (rc != 0) {
                kt_row_to_f32(t, row, w, (size_t)k);
                uint64_t j = 0;
                while (j < k && isfinite(w[j])) j++;
#pragma omp critical(kt_quant_bad)
                if ((uint64_t)r * k + j < first_bad) first_bad = (uint64_t)r * k + j;
                continue;
            }
            kt_row_from_f32(t, s, (uint8_t *)scales + (size_t)r * sb_row, n_groups);
            kt_row_from_f32(t, b, (uint8_t *)biases + (size_t)r * sb_row, n_groups);
        }
        free(w);
        free(s);
        free(b);
    }
    if (first_bad != UINT64_MAX) {
        *bad_index = first_bad;
        return kt_fail("%s value at flat index %llu (row %llu, column %llu): cannot quantize",
                       "non-finite", (unsigned long long)first_bad, (unsigned long long)(first_bad / k),
                       (unsigned long long)(first_bad % k));
    }
    return 0;
}

int kt_dequantize_tensor(int bits, int group_size, kt_dtype t, const uint8_t *packed, const void *scales,
                         const void *biases, uint64_t rows, uint64_t k, void *out, int threads) {
    kt_quant_params p = {bits, group_size, KT_QUANT_CPU};
    if (kt_quant_params_check(&p) || check_shape(&p, t, k)) return -1;
    const size_t esize = kt_dtype_bits(t) / 8;
    const size_t n_groups = (size_t)(k / (uint64_t)group_size);
    const size_t in_row = kt_quant_row_bytes(&p, (size_t)k);
#pragma omp parallel for schedule(static) num_threads(kt_quant_threads(threads))
    for (int64_t r = 0; r < (int64_t)rows; r++)
        kt_dequantize_row_ref(bits, group_size, t, packed + (size_t)r * in_row,
                              (const uint8_t *)scales + (size_t)r * n_groups * esize,
                              (const uint8_t *)biases + (size_t)r * n_groups * esize, (size_t)k,
                              (uint8_t *)out + (size_t)r * (size_t)k * esize);
    return 0;
}
