/* matvec_int8.c - y = W x with x quantized to 8-bit integers (qact.h): the
 * activation quantizer, the scalar reference for every bit width, and the
 * dispatch to the integer kernels of kernels.h (4 and 8 bits).
 *
 * The reference computes, per row, the sum over groups of
 *     s_g * sum over the group's blocks k of d_k * (codes_k . q_k)  +  b_g * sum(x_g)
 * with the integer dot products exact in int32 and the rest in double. The
 * kernels compute the same integer dot products exactly and the float part
 * in float lanes in another order: they agree with the reference to
 * rounding (tests/unit/test_matvec.c). How far all of this is from the float
 * path is the activations' rounding; tests/oracle measures it on models.
 */
#include "affine.h"
#include "cpu.h"
#include "kernels.h"
#include "qact.h"
#include "strbuf.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* One block of KT_QBLOCK values into Q (x's order) and QP (even elements,
 * then odd); returns d, sets *SUM and *QSUM. Written so that every loop
 * vectorizes: max|x| is exact in any order, the float sum of x runs in 16
 * fixed partial sums, and q = roundf(x * inv) (ties away from zero) is
 * computed without a call as trunc(y) plus a step where |y - trunc(y)| >=
 * 1/2, both exact for |y| < 2^31. */
static inline __attribute__((always_inline)) float quantize_block_body(const float *v, int8_t *q, int8_t *qp, float *sum,
                                                                       int32_t *qsum) {
    enum { P = 16 };
    float mx[P], part[P];
    uint32_t bad = 0;
    for (int j = 0; j < P; j++) mx[j] = 0, part[j] = 0;
    for (int j0 = 0; j0 < KT_QBLOCK; j0 += P)
        for (int j = 0; j < P; j++) {
            const float m = fabsf(v[j0 + j]);
            uint32_t bits;
            memcpy(&bits, &m, 4);
            bad |= bits >= 0x7f800000u; /* infinity or NaN */
            mx[j] = m > mx[j] ? m : mx[j];
            part[j] += v[j0 + j];
        }
    float amax = 0, s = 0;
    for (int j = 0; j < P; j++) amax = mx[j] > amax ? mx[j] : amax, s += part[j];
    *sum = s;
    int32_t r[KT_QBLOCK], qs = 0;
    if (bad) { /* NaN reaches every output this block meets */
        memset(q, 0, KT_QBLOCK), memset(qp, 0, KT_QBLOCK);
        *qsum = 0;
        return NAN;
    }
    const float d = amax / 127.0f, inv = d > 0 ? 127.0f / amax : 0.0f;
    for (int j = 0; j < KT_QBLOCK; j++) {
        /* |f| >= 1/2 read off f's bits: integer compares, which vectorize
         * where float ones (which may trap) would not */
        const float y = v[j] * inv, f = y - (float)(int32_t)y;
        uint32_t fb;
        memcpy(&fb, &f, 4);
        const int32_t up = (fb & 0x7fffffffu) >= 0x3f000000u, neg = (int32_t)(fb >> 31);
        int32_t z = (int32_t)y + up * (1 - 2 * neg);
        z = z > 127 ? 127 : z;
        r[j] = z < -127 ? -127 : z;
    }
    for (int j = 0; j < KT_QBLOCK; j++) q[j] = (int8_t)r[j], qs += r[j];
    for (int j = 0; j < KT_QBLOCK / 2; j++) qp[j] = (int8_t)r[2 * j], qp[KT_QBLOCK / 2 + j] = (int8_t)r[2 * j + 1];
    *qsum = qs;
    return d;
}

/* The same C for wider vectors, chosen at run time (as mamba2.c does): the
 * same bytes from every clone; kt_matvec_force_scalar selects the baseline. */
typedef void quantize_fn(kt_qact *a, const float *x, int k0, int k1);
#define QUANTIZE(NAME, ATTR)                                                                                       \
    ATTR static void NAME(kt_qact *a, const float *x, int k0, int k1) {                                            \
        for (int k = k0; k < k1; k++)                                                                              \
            a->d[k] = quantize_block_body(x + (size_t)k * KT_QBLOCK, a->q + (size_t)k * KT_QBLOCK,                 \
                                          a->qp + (size_t)k * KT_QBLOCK, &a->sum[k], &a->qsum[k]);                 \
    }
QUANTIZE(quantize_ref, )
#if defined(__x86_64__) && defined(__GNUC__)
QUANTIZE(quantize_avx2, __attribute__((target("avx2"))))
QUANTIZE(quantize_avx512, __attribute__((target("avx512f,avx512bw"))))
#endif

static quantize_fn *quantize_kernel(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    quantize_fn *const by_level[] = {quantize_ref, quantize_avx2, quantize_avx512};
    return by_level[kt_clone_level()];
#else
    return quantize_ref;
#endif
}

void kt_qact_quantize(kt_qact *a, const float *x, int n) {
    if (n > a->cap) {
        const int blocks = n / KT_QBLOCK;
        free(a->q), free(a->qp), free(a->d), free(a->sum), free(a->qsum);
        a->q = kt_xmalloc((size_t)n);
        a->qp = kt_xmalloc((size_t)n);
        a->d = kt_xmalloc((size_t)blocks * sizeof *a->d);
        a->sum = kt_xmalloc((size_t)blocks * sizeof *a->sum);
        a->qsum = kt_xmalloc((size_t)blocks * sizeof *a->qsum);
        a->cap = n;
    }
    a->n = n;
    quantize_fn *run = quantize_kernel();
    const int blocks = n / KT_QBLOCK;
    if (n < 65536) {
        run(a, x, 0, blocks);
        return;
    }
    /* blocks are independent: a prompt's inputs (millions of values) are
     * shared among the threads, with the same bytes as one thread */
#pragma omp parallel
    {
        int id = 0, nt = 1;
#ifdef _OPENMP
        id = omp_get_thread_num(), nt = omp_get_num_threads();
#endif
        run(a, x, (int)((long)blocks * id / nt), (int)((long)blocks * (id + 1) / nt));
    }
}

void kt_qact_free(kt_qact *a) {
    free(a->q), free(a->qp), free(a->d), free(a->sum), free(a->qsum);
    memset(a, 0, sizeof *a);
}

/* One output of the reference: row R of W times the quantized vector of A
 * that starts at block K0. */
static float row_qref_at(const kt_linear *l, int r, const kt_qact *a, int k0) {
    const int gs = l->group_size, groups = l->in / gs, per = gs / KT_QBLOCK, es = (int)kt_dtype_bits(l->dtype) / 8;
    uint8_t codes[KT_QBLOCK];
    double acc = 0;
    for (int g = 0; g < groups; g++) {
        float s, b;
        kt_row_to_f32(l->dtype, l->scales + ((size_t)r * groups + g) * es, &s, 1);
        kt_row_to_f32(l->dtype, l->biases + ((size_t)r * groups + g) * es, &b, 1);
        double dot = 0, xsum = 0;
        for (int k = g * per; k < (g + 1) * per; k++) {
            const size_t first = (size_t)r * l->in + (size_t)k * KT_QBLOCK;
            kt_unpack_codes_ref(l->bits, l->w + first * l->bits / 8, KT_QBLOCK, codes);
            int32_t isum = 0;
            for (int j = 0; j < KT_QBLOCK; j++) isum += (int32_t)codes[j] * a->q[(size_t)(k0 + k) * KT_QBLOCK + j];
            dot += (double)a->d[k0 + k] * isum;
            xsum += a->sum[k0 + k];
        }
        acc += s * dot + (double)b * xsum;
    }
    return (float)acc;
}

void kt_linear_rows_qref(const kt_linear *l, int r0, int r1, const kt_qact *a, float *y) {
    for (int o = r0; o < r1; o++) y[o] = row_qref_at(l, o, a, 0);
}

void kt_linear_gemm_qref(const kt_linear *l, int r0, int r1, const kt_qact *a, int t, float *y, size_t ldy) {
    for (int k = 0; k < t; k++)
        for (int o = r0; o < r1; o++) y[(size_t)k * ldy + o] = row_qref_at(l, o, a, k * (l->in / KT_QBLOCK));
}

typedef void (*int8_rows_fn)(const kt_linear *, int, int, const kt_qact *, float *);

/* The table's integer kernel for L's bit width, else the reference. */
static int8_rows_fn int8_rows(const kt_matvec_kernels_t *k, const kt_linear *l) {
    int8_rows_fn rows = !k ? NULL : l->bits == 4 ? k->q4_i8_rows : l->bits == 8 ? k->q8_i8_rows : NULL;
    return rows ? rows : kt_linear_rows_qref;
}

int kt_linear_int8_ok(const kt_linear *l) {
    return l->quantized && l->group_size % KT_QBLOCK == 0 && l->in % KT_QBLOCK == 0 && (l->bits * KT_QBLOCK) % 8 == 0;
}

enum { ROW_BLOCK = 16, PACKED_FROM = 8, PACKED_FROM_ROWS8 = 2, RUN8_MIN = 2 };

/* The prompt with integer activations: A holds T vectors. From PACKED_FROM
 * tokens on (repacking a block of rows costs about what 4 tokens' products
 * do), 4-bit rows go to the table's repacked kernel in blocks of
 * KT_PACK_ROWS, each thread with its own scratch for the packed rows.
 * Otherwise rows go in blocks of 16 and tokens in fours, so a weight block
 * read from memory serves four tokens (4-bit: the gemm kernel; other
 * widths: one vector at a time). */
void kt_linear_apply_batch_q(const kt_linear *l, const kt_qact *a, int t, float *y) {
    const kt_matvec_kernels_t *k = kt_kernels_active();
    const int per = l->in / KT_QBLOCK;
    if (t == 1) {
        kt_linear_apply_q(l, a, y);
        return;
    }
    /* with the interleaved copy, repacking is two instructions per 32
     * bytes: worth it from 2 tokens on */
    const int packed_from = l->rows8 ? PACKED_FROM_ROWS8 : PACKED_FROM;
    if (k && l->bits == 4 && k->q4_i8_packed && t >= packed_from && kt_rows4_ok(l)) {
        const int blocks = (l->out + KT_PACK_ROWS - 1) / KT_PACK_ROWS;
#pragma omp parallel if (l->out >= 64)
        {
            void *scratch = kt_xmalloc(kt_packed_scratch_bytes(l, t));
#pragma omp for schedule(static)
            for (int b = 0; b < blocks; b++) {
                const int r0 = b * KT_PACK_ROWS, r1 = r0 + KT_PACK_ROWS < l->out ? r0 + KT_PACK_ROWS : l->out;
                k->q4_i8_packed(l, r0, r1, a, t, y, (size_t)l->out, scratch);
            }
            free(scratch);
        }
        return;
    }
    const int blocks = (l->out + ROW_BLOCK - 1) / ROW_BLOCK;
#pragma omp parallel for schedule(static) if (l->out >= 64)
    for (int b = 0; b < blocks; b++) {
        const int r0 = b * ROW_BLOCK, r1 = r0 + ROW_BLOCK < l->out ? r0 + ROW_BLOCK : l->out;
        for (int t0 = 0; t0 < t; t0 += 4) {
            const int nt = t - t0 < 4 ? t - t0 : 4;
            kt_qact view = {l->in * nt, 0, a->q + (size_t)t0 * l->in, a->qp + (size_t)t0 * l->in, a->d + (size_t)t0 * per,
                            a->sum + (size_t)t0 * per, a->qsum + (size_t)t0 * per};
            float *yt = y + (size_t)t0 * l->out;
            if (k && l->bits == 4 && k->q4_i8_gemm) {
                k->q4_i8_gemm(l, r0, r1, &view, nt, yt, (size_t)l->out);
            } else {
                for (int j = 0; j < nt; j++) {
                    kt_qact one = view;
                    one.q += (size_t)j * l->in, one.qp += (size_t)j * l->in, one.d += j * per, one.sum += j * per;
                    one.qsum += j * per;
                    int8_rows(k, l)(l, r0, r1, &one, yt + (size_t)j * l->out);
                }
            }
        }
    }
}

/* Decode from the interleaved copy: runs of blocks of 8 rows handed out
 * as threads come free, each run a quarter of what is left per thread (at
 * least RUN8_MIN blocks, an even count so the kernel's pairs stay whole):
 * long runs first, so each thread streams through long stretches of
 * memory, and short ones last, so the threads finish a matrix together.
 * Fixed halves waited on the slower core: on a shared 2-core machine, 8
 * alternating rounds of 48 tokens gave medians of 4.3 tok/s for halves
 * and 4.7 for runs of 8 blocks. The rows past the last whole block come
 * from the file. */
static int next_run8(_Atomic int *next, int blocks, int threads, int *b0) {
    int first = atomic_load_explicit(next, memory_order_relaxed), n;
    do {
        if (first >= blocks) return 0;
        n = (blocks - first) / (4 * threads) / 2 * 2;
        n = n < RUN8_MIN ? RUN8_MIN : n;
        n = n > blocks - first ? blocks - first : n;
    } while (!atomic_compare_exchange_weak_explicit(next, &first, first + n, memory_order_relaxed,
                                                    memory_order_relaxed));
    *b0 = first;
    return n;
}

static void apply_rows8(const kt_matvec_kernels_t *k, const kt_linear *l, const kt_qact *a, float *y) {
    const int blocks = l->out / 8;
    _Atomic int next = 0;
#pragma omp parallel if (l->out >= 64)
    {
        int threads = 1, b0, n;
#ifdef _OPENMP
        threads = omp_get_num_threads();
#endif
        while ((n = next_run8(&next, blocks, threads, &b0)) > 0) k->q4_i8_rows8(l, b0, b0 + n, a, y);
    }
    if (blocks * 8 < l->out) int8_rows(k, l)(l, blocks * 8, l->out, a, y);
}

void kt_linear_apply_q(const kt_linear *l, const kt_qact *a, float *y) {
    const kt_matvec_kernels_t *k = kt_kernels_active();
    if (l->rows8 && k && k->q4_i8_rows8) {
        apply_rows8(k, l, a, y);
        return;
    }
    const int8_rows_fn rows = int8_rows(k, l);
    const int blocks = (l->out + ROW_BLOCK - 1) / ROW_BLOCK;
#pragma omp parallel for schedule(static) if (l->out >= 64)
    for (int b = 0; b < blocks; b++)
        rows(l, b * ROW_BLOCK, b * ROW_BLOCK + ROW_BLOCK < l->out ? b * ROW_BLOCK + ROW_BLOCK : l->out, a, y);
}
