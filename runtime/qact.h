/* qact.h - activation vectors quantized to 8-bit integers, for the integer
 * matrix-vector kernels.
 *
 * An affine-quantized row times x is, per weight group g,
 *     s_g * (codes_g . x_g) + b_g * sum(x_g).
 * With x in blocks of 32 stored as d_k * q_k (q_k int8, one float scale d_k
 * per block), codes_g . x_g becomes sum over the group's blocks of
 * d_k * (codes_k . q_k): an integer dot product of unsigned codes and signed
 * bytes, the operand pair of x86's vpmaddubsw/vpdpbusd and arm64's sdot.
 * The bias term keeps the exact float sums of x. The codes are quantized
 * once per vector and shared by every matrix that reads it.
 *
 * Per block d = max|x| / 127 and q = round(x * (127 / max|x|)), ties away
 * from zero; a block of zeros has d = 0. A NaN or infinity in a block makes its d NaN, so
 * every output it reaches is NaN, as it would be in float.
 */
#ifndef KT_QACT_H
#define KT_QACT_H

#include <stdint.h>

enum { KT_QBLOCK = 32 };

typedef struct {
    int n, cap;       /* n values (a multiple of KT_QBLOCK), room for cap */
    int8_t *q;        /* the codes in x's order (8-bit weights) */
    int8_t *qp;       /* per block: its even elements, then its odd ones
                       * (4-bit weights: byte k holds elements 2k, 2k+1) */
    float *d;         /* per block: scale */
    float *sum;       /* per block: sum of the float x */
    int32_t *qsum;    /* per block: sum of q (for kernels that offset codes) */
} kt_qact;

/* Quantize X (N values, N % KT_QBLOCK == 0) into A, growing it as needed.
 * The same bytes on every CPU: this is plain C. */
void kt_qact_quantize(kt_qact *a, const float *x, int n);
void kt_qact_free(kt_qact *a);

#endif
