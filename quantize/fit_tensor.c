/* fit_tensor.c - kt_fit_tensor(): MLX's RTN for the whole tensor, then every
 * group fitted from it (fit.h), rows in parallel. Starting from the stored
 * RTN result means the comparison in the fit is with exactly what RTN would
 * have written, pair rounded to the dtype included. */
#include "fit.h"
#include "error.h"
#include "strbuf.h"

#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static int thread_count(int threads) {
#ifdef _OPENMP
    return threads > 0 ? threads : omp_get_max_threads();
#else
    (void)threads;
    return 1;
#endif
}

int kt_fit_tensor(const kt_quant_params *p, kt_dtype t, const void *in, uint64_t rows, uint64_t k,
                  uint8_t *packed, void *scales, void *biases, int threads, uint64_t *bad_index) {
    if (kt_quantize_tensor(p, t, in, rows, k, packed, scales, biases, threads, bad_index)) return -1;
    kt_fit_kernel_name(); /* choose the kernel before the threads start */
    const int gs = p->group_size;
    const size_t es = kt_dtype_bits(t) / 8, groups = (size_t)(k / (uint64_t)gs);
    const size_t row_bytes = kt_quant_row_bytes(p, (size_t)k), group_bytes = (size_t)gs * (size_t)p->bits / 8;
#pragma omp parallel num_threads(thread_count(threads))
    {
        float *x = kt_xmalloc((size_t)k * sizeof *x), *s = kt_xmalloc(groups * sizeof *s), *b = kt_xmalloc(groups * sizeof *b);
        uint8_t codes[128];
#pragma omp for schedule(dynamic, 16)
        for (int64_t r = 0; r < (int64_t)rows; r++) {
            uint8_t *row = packed + (size_t)r * row_bytes;
            uint8_t *sr = (uint8_t *)scales + (size_t)r * groups * es, *br = (uint8_t *)biases + (size_t)r * groups * es;
            kt_row_to_f32(t, (const uint8_t *)in + (size_t)r * (size_t)k * es, x, (size_t)k);
            kt_row_to_f32(t, sr, s, groups);
            kt_row_to_f32(t, br, b, groups);
            int changed = 0;
            for (size_t g = 0; g < groups; g++) {
                kt_unpack_codes_ref(p->bits, row + g * group_bytes, (size_t)gs, codes);
                if (kt_fit_group(p->bits, gs, t, x + g * (size_t)gs, codes, &s[g], &b[g])) {
                    kt_pack_codes_ref(p->bits, codes, (size_t)gs, row + g * group_bytes);
                    changed = 1;
                }
            }
            if (changed) {
                kt_row_from_f32(t, s, sr, groups);
                kt_row_from_f32(t, b, br, groups);
            }
        }
        free(x), free(s), free(b);
    }
    return 0;
}
