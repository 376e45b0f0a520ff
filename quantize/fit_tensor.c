/* fit_tensor.c - kt_fit_tensor(): MLX's RTN for the whole tensor, then every
 * group fitted from it (fit.h), in chunks of groups across threads. Starting
 * from the stored RTN result means the baseline of the fit is exactly what
 * RTN would have written, pair rounded to the dtype included. The groups of a
 * row-major tensor follow each other in memory whatever the row length, so a
 * chunk may span rows. */
#include "fit.h"
#include "error.h"
#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

enum { CHUNK = 1024 }; /* groups */

/* The bit stream of kt_unpack_codes_ref()/kt_pack_codes_ref() for the
 * widths whose codes do not straddle bytes (2, 4, 8), with loops the compiler
 * vectorizes; the others take the reference. Here they cost as much as the
 * fit itself otherwise. */
static void unpack_codes(int bits, const uint8_t *p, size_t n, uint8_t *c) {
    if (bits == 4)
        for (size_t i = 0; i < n / 2; i++) c[2 * i] = p[i] & 15, c[2 * i + 1] = p[i] >> 4;
    else if (bits == 2)
        for (size_t i = 0; i < n / 4; i++)
            for (int k = 0; k < 4; k++) c[4 * i + k] = (p[i] >> (2 * k)) & 3;
    else if (bits == 8)
        memcpy(c, p, n);
    else
        kt_unpack_codes_ref(bits, p, n, c);
}

static void pack_codes(int bits, const uint8_t *c, size_t n, uint8_t *p) {
    if (bits == 4)
        for (size_t i = 0; i < n / 2; i++) p[i] = (uint8_t)(c[2 * i] | c[2 * i + 1] << 4);
    else if (bits == 2)
        for (size_t i = 0; i < n / 4; i++)
            p[i] = (uint8_t)(c[4 * i] | c[4 * i + 1] << 2 | c[4 * i + 2] << 4 | c[4 * i + 3] << 6);
    else if (bits == 8)
        memcpy(p, c, n);
    else
        kt_pack_codes_ref(bits, c, n, p);
}


int kt_fit_tensor(const kt_quant_params *p, kt_dtype t, const void *in, uint64_t rows, uint64_t k,
                  uint8_t *packed, void *scales, void *biases, int threads, uint64_t *bad_index) {
    if (kt_quantize_tensor(p, t, in, rows, k, packed, scales, biases, threads, bad_index)) return -1;
    kt_fit_kernel_name(); /* choose the kernel before the threads start */
    const size_t gs = (size_t)p->group_size, es = kt_dtype_bits(t) / 8;
    const size_t groups = (size_t)(rows * k) / gs, group_bytes = gs * (size_t)p->bits / 8;
    const int64_t chunks = (int64_t)((groups + CHUNK - 1) / CHUNK);
#pragma omp parallel num_threads(kt_quant_threads(threads))
    {
        float *x = kt_xmalloc(CHUNK * gs * sizeof *x), *s = kt_xmalloc(CHUNK * sizeof *s), *b = kt_xmalloc(CHUNK * sizeof *b);
        uint8_t *codes = kt_xmalloc(CHUNK * gs);
#pragma omp for schedule(dynamic, 1)
        for (int64_t c = 0; c < chunks; c++) {
            const size_t g0 = (size_t)c * CHUNK, n = groups - g0 < CHUNK ? groups - g0 : CHUNK;
            kt_row_to_f32(t, (const uint8_t *)in + g0 * gs * es, x, n * gs);
            kt_row_to_f32(t, (const uint8_t *)scales + g0 * es, s, n);
            kt_row_to_f32(t, (const uint8_t *)biases + g0 * es, b, n);
            unpack_codes(p->bits, packed + g0 * group_bytes, n * gs, codes);
            kt_fit_groups(p->bits, p->group_size, t, n, x, codes, s, b);
            pack_codes(p->bits, codes, n * gs, packed + g0 * group_bytes);
            kt_row_from_f32(t, s, (uint8_t *)scales + g0 * es, n);
            kt_row_from_f32(t, b, (uint8_t *)biases + g0 * es, n);
        }
        free(x), free(s), free(b), free(codes);
    }
    return 0;
}
