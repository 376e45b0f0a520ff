/* test_matvec.c - the runtime's matrix kernels: every kernel table this CPU
 * can run (AVX-512, AVX2, NEON) against the scalar references (same sums in
 * another order: equal to rounding; row dequantization: bit for bit), and
 * the references against the dequantized matrix. */
#include "affine.h"
#include "cpu.h"
#include "harness.h"
#include "kernels.h"
#include "strbuf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static float frand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* The kernel tables available here (each instruction set's, with and
 * without its dot-product extension); on x86-64 and arm64 at least one. */
static int tables(const kt_matvec_kernels_t **out) {
    const kt_matvec_kernels_t *all[] = {kt_kernels_avx512(), kt_kernels_avx512_base(), kt_kernels_avx2(),
                                        kt_kernels_avx2_base(), kt_kernels_neon(), kt_kernels_neon_base()};
    int n = 0;
    for (int i = 0; i < 6; i++) {
        int seen = 0;
        for (int j = 0; j < n; j++) seen |= out[j] == all[i];
        if (all[i] && !seen) out[n++] = all[i];
    }
#if defined(__x86_64__) || defined(__aarch64__)
    CHECK_MSG(n >= 1, "no vector kernel table on this CPU");
#endif
    return n;
}

/* A quantized test matrix OUT x IN with scales of dtype SD. */
typedef struct {
    kt_linear l;
    uint8_t *packed;
    void *sc, *bi, *src;
} qmatrix;

static qmatrix make_q(int out, int in, int bits, int gs, kt_dtype sd, uint64_t *st) {
    qmatrix q;
    const size_t n = (size_t)out * in, es = kt_dtype_bits(sd) / 8;
    float *w = malloc(n * sizeof *w);
    for (size_t i = 0; i < n; i++) w[i] = frand(st) * 0.05f;
    q.src = malloc(n * es);
    if (sd == KT_F32) memcpy(q.src, w, n * 4);
    else if (sd == KT_BF16) kt_f32_to_bf16_row_ref(w, q.src, n);
    else for (size_t i = 0; i < n; i++) ((uint16_t *)q.src)[i] = kt_f32_to_f16(w[i]);
    kt_quant_params p = {bits, gs, KT_QUANT_CPU};
    q.packed = malloc(n);
    q.sc = malloc(n / gs * es), q.bi = malloc(n / gs * es);
    uint64_t bad;
    CHECK(kt_quantize_tensor(&p, sd, q.src, out, in, q.packed, q.sc, q.bi, 1, &bad) == 0);
    q.l = (kt_linear){out, in, 1, q.packed, sd, q.sc, q.bi, bits, gs, NULL};
    free(w);
    return q;
}

static void free_q(qmatrix *q) { free(q->packed), free(q->sc), free(q->bi), free(q->src); }

static double row_magnitude(const kt_linear *l, int o, const float *x) {
    float *row = malloc((size_t)l->in * sizeof *row);
    double mag = 0;
    kt_linear_row_ref(l, o, row);
    for (int i = 0; i < l->in; i++) mag += fabs((double)row[i] * x[i]);
    free(row);
    return mag;
}

void test_matvec_kernels_match_reference(void) {
    const kt_matvec_kernels_t *tab[6];
    const int nt = tables(tab);
    const int gs_list[] = {32, 64, 128};
    const kt_dtype sd_list[] = {KT_BF16, KT_F16, KT_F32};
    const int out = 37, in = 512; /* an odd row count: the pair kernels' last single row */
    uint64_t st = 5;
    float *x = malloc(in * sizeof *x), *xe = malloc(in / 2 * sizeof *xe), *xo = malloc(in / 2 * sizeof *xo);
    float *y1 = malloc(out * sizeof *y1), *y2 = malloc(out * sizeof *y2), *xsum = malloc(in * sizeof *xsum);
    float *r1 = malloc(in * sizeof *r1), *r2 = malloc(in * sizeof *r2);
    for (int i = 0; i < in; i++) x[i] = frand(&st);
    for (int i = 0; i < in / 2; i++) xe[i] = x[2 * i], xo[i] = x[2 * i + 1];
    for (int g = 0; g < 3; g++)
        for (int d = 0; d < 3; d++) {
            const int gs = gs_list[g];
            qmatrix q = make_q(out, in, 4, gs, sd_list[d], &st);
            for (int j = 0; j < in / gs; j++) {
                xsum[j] = 0;
                for (int i = 0; i < gs; i++) xsum[j] += x[j * gs + i];
            }
            kt_linear_rows_ref(&q.l, 0, out, x, y1);
            for (int t = 0; t < nt; t++) {
                memset(y2, 0, out * sizeof *y2);
                tab[t]->q4_rows(&q.l, 0, out, xe, xo, xsum, y2);
                for (int o = 0; o < out; o++) {
                    double mag = row_magnitude(&q.l, o, x);
                    CHECK_MSG(fabs(y2[o] - y1[o]) <= 1e-5 * mag + 1e-7, "%s q4 gs %d %s row %d: %g vs %g",
                              tab[t]->name, gs, kt_dtype_name(sd_list[d]), o, y2[o], y1[o]);
                    kt_linear_row_ref(&q.l, o, r1);
                    tab[t]->q4_row(&q.l, o, r2);
                    CHECK_MSG(!memcmp(r1, r2, in * sizeof *r1), "%s dequantized row %d gs %d %s differs", tab[t]->name,
                              o, gs, kt_dtype_name(sd_list[d]));
                }
            }
            free_q(&q);
        }
    /* dense bf16 rows, with a length that leaves a tail */
    const int din = 509;
    uint16_t *wb = malloc((size_t)out * din * 2);
    for (int i = 0; i < out * din; i++) wb[i] = kt_f32_to_bf16(frand(&st) * 0.05f);
    kt_linear dl = {out, din, 0, (const uint8_t *)wb, KT_BF16, NULL, NULL, 0, 0, NULL};
    kt_linear_rows_ref(&dl, 0, out, x, y1);
    for (int t = 0; t < nt; t++) {
        tab[t]->bf16_rows(&dl, 0, out, x, y2);
        for (int o = 0; o < out; o++)
            CHECK_MSG(fabs(y2[o] - y1[o]) <= 1e-5 * row_magnitude(&dl, o, x) + 1e-7, "%s bf16 row %d", tab[t]->name, o);
    }
    free(wb), free(x), free(xe), free(xo), free(y1), free(y2), free(xsum), free(r1), free(r2);
}

void test_matvec_dispatch_matches_reference(void) {
    const int bits_list[] = {2, 3, 4, 5, 6, 8}, gs_list[] = {32, 64, 128};
    const int out = 97, in = 512;
    uint64_t st = 7;
    float *x = malloc(in * sizeof *x), *y1 = malloc(out * sizeof *y1), *y2 = malloc(out * sizeof *y2);
    float *row = malloc(in * sizeof *row);
    for (int i = 0; i < in; i++) x[i] = frand(&st);
    for (int b = 0; b < 6; b++)
        for (int g = 0; g < 3; g++) {
            qmatrix q = make_q(out, in, bits_list[b], gs_list[g], KT_BF16, &st);
            kt_matvec_force_scalar(1);
            kt_linear_apply(&q.l, x, y1);
            kt_matvec_force_scalar(0);
            kt_linear_apply(&q.l, x, y2);
            for (int o = 0; o < out; o++) {
                kt_linear_row(&q.l, o, row);
                double exact = 0, mag = 0;
                for (int i = 0; i < in; i++) exact += (double)row[i] * x[i], mag += fabs((double)row[i] * x[i]);
                CHECK_MSG(fabs(y1[o] - exact) <= 1e-5 * mag + 1e-7, "ref bits %d gs %d row %d: %g vs %g", bits_list[b],
                          gs_list[g], o, y1[o], exact);
                CHECK_MSG(fabs(y2[o] - y1[o]) <= 1e-5 * mag + 1e-7, "%s bits %d gs %d row %d: %g vs %g",
                          kt_matvec_kernels(), bits_list[b], gs_list[g], o, y2[o], y1[o]);
            }
            free_q(&q);
        }
    free(x), free(y1), free(y2), free(row);
}

void test_dot_and_batch_match_reference(void) {
    const kt_matvec_kernels_t *tab[6];
    const int nt = tables(tab);
    uint64_t st = 9;
    enum { N = 1000, T = 9, OUT = 41, IN = 1088 }; /* IN: two column chunks of the batch and a part */
    float *a = malloc(T * N * sizeof *a), *b = malloc(N * sizeof *b), r[T], f[T];
    for (int i = 0; i < T * N; i++) a[i] = frand(&st);
    for (int i = 0; i < N; i++) b[i] = frand(&st);
    for (int n = 0; n <= N; n += 37)
        for (int t = 1; t <= T; t++) {
            kt_dots_ref(b, a, N, t, n, r);
            for (int k = 0; k < nt; k++) {
                tab[k]->dots(b, a, N, t, n, f);
                for (int j = 0; j < t; j++) {
                    double mag = 0;
                    for (int i = 0; i < n; i++) mag += fabs((double)a[j * N + i] * b[i]);
                    CHECK_MSG(fabs(r[j] - f[j]) <= 1e-5 * mag + 1e-7, "%s n %d t %d: %g vs %g", tab[k]->name, n, t, f[j], r[j]);
                }
            }
        }
    /* the 2 x 4 tile: rows b and b + 1 (stride 1), vectors a + k * N */
    for (int n = 0; n <= N - 1; n += 37) {
        float r2[8], f2[8];
        kt_dots_ref(b, a, N, 4, n, r2);
        kt_dots_ref(b + 1, a, N, 4, n, r2 + 4);
        for (int k = 0; k < nt; k++) {
            if (!tab[k]->dots_2x4) continue;
            tab[k]->dots_2x4(b, 1, a, N, n, f2, 2);
            for (int j = 0; j < 4; j++)
                for (int i = 0; i < 2; i++) {
                    double mag = 0;
                    for (int e = 0; e < n; e++) mag += fabs((double)a[j * N + e] * b[i + e]);
                    CHECK_MSG(fabs(r2[i * 4 + j] - f2[j * 2 + i]) <= 1e-5 * mag + 1e-7, "%s 2x4 n %d row %d vec %d: %g vs %g",
                              tab[k]->name, n, i, j, f2[j * 2 + i], r2[i * 4 + j]);
                }
        }
    }
    free(a), free(b);
    /* batched products equal one-at-a-time ones, dense and 4-bit */
    float *x = malloc((size_t)T * IN * sizeof *x), *w = malloc((size_t)OUT * IN * sizeof *w);
    float *y1 = malloc((size_t)T * OUT * sizeof *y1), *y2 = malloc((size_t)OUT * sizeof *y2);
    for (int i = 0; i < OUT * IN; i++) w[i] = frand(&st);
    for (int i = 0; i < T * IN; i++) x[i] = frand(&st);
    kt_linear dense = {OUT, IN, 0, (const uint8_t *)w, KT_F32, NULL, NULL, 0, 0, NULL};
    qmatrix q = make_q(OUT, IN, 4, 64, KT_BF16, &st);
    const kt_linear *ls[] = {&dense, &q.l};
    for (int m = 0; m < 2; m++) {
        kt_linear_apply_batch(ls[m], x, T, y1);
        for (int t = 0; t < T; t++) {
            kt_linear_apply(ls[m], x + t * IN, y2);
            for (int o = 0; o < OUT; o++) CHECK_MSG(fabs(y1[t * OUT + o] - y2[o]) <= 1e-4, "batch %d t %d o %d", m, t, o);
        }
    }
    free_q(&q);
    free(w), free(x), free(y1), free(y2);
}

/* The activation quantizer: d = max|x| / 127 per block, |q| <= 127, the
 * paired order a permutation of the natural one, x within d / 2 of d * q,
 * zeros and non-finite blocks as documented. */
void test_qact_quantize(void) {
    uint64_t st = 11;
    enum { N = 256 };
    float x[N];
    for (int i = 0; i < N; i++) x[i] = frand(&st) * (i < 64 ? 100.0f : 0.01f);
    for (int i = 64; i < 96; i++) x[i] = 0;
    x[130] = NAN;
    kt_qact a = {0};
    kt_qact_quantize(&a, x, N);
    for (int k = 0; k < N / KT_QBLOCK; k++) {
        float amax = 0;
        for (int j = 0; j < KT_QBLOCK; j++) amax = fmaxf(amax, fabsf(x[k * KT_QBLOCK + j]));
        if (k == 130 / KT_QBLOCK) {
            CHECK_MSG(isnan(a.d[k]), "a non-finite block's d is NaN");
            continue;
        }
        CHECK(a.d[k] == amax / 127.0f);
        int32_t qs = 0;
        for (int j = 0; j < KT_QBLOCK; j++) {
            const int8_t q = a.q[k * KT_QBLOCK + j];
            CHECK(q != -128);
            CHECK_MSG(fabsf(x[k * KT_QBLOCK + j] - a.d[k] * q) <= a.d[k] * 0.5001f, "block %d element %d", k, j);
            CHECK(a.qp[k * KT_QBLOCK + (j % 2 ? KT_QBLOCK / 2 : 0) + j / 2] == q);
            qs += q;
        }
        CHECK(a.qsum[k] == qs);
    }
    CHECK(a.d[2] == 0 && a.q[70] == 0);
    /* q is exactly roundf(x * 127 / max|x|), ties away from zero: a block
     * whose max is 127 (the factor is 1) holds ties, values next to them
     * and random ones */
    float t[2 * KT_QBLOCK];
    const float ties[] = {0.5f, -0.5f, 2.5f, -3.5f, 126.5f, -126.5f, 0.49999997f, -0.49999997f, 0.50000006f, 1.4999999f};
    for (int k = 0; k < 2; k++) {
        t[k * KT_QBLOCK] = k ? -127.0f : 127.0f;
        for (int j = 1; j < KT_QBLOCK; j++)
            t[k * KT_QBLOCK + j] = j <= 10 ? ties[j - 1] : frand(&st) * (k ? 90.0f : 127.0f);
    }
    kt_qact_quantize(&a, t, 2 * KT_QBLOCK);
    for (int i = 0; i < 2 * KT_QBLOCK; i++) {
        const float amax = 127.0f;
        CHECK_MSG(a.q[i] == (int8_t)roundf(t[i] * (127.0f / amax)), "element %d (%.9g): q %d, roundf %g", i, t[i], a.q[i],
                  roundf(t[i]));
    }
    kt_qact_free(&a);
    /* the vector clones and the threads give the baseline code's bytes */
    enum { BIG = 1 << 17 };
    float *big = malloc(BIG * sizeof *big);
    for (int i = 0; i < BIG; i++) big[i] = frand(&st) * (i % 97 == 0 ? 300.0f : 3.0f);
    big[BIG / 2] = INFINITY;
    kt_qact r = {0}, v = {0};
    kt_matvec_force_scalar(1);
    kt_qact_quantize(&r, big, BIG);
    kt_matvec_force_scalar(0);
    kt_qact_quantize(&v, big, BIG);
    const size_t nb = BIG / KT_QBLOCK;
    CHECK(memcmp(r.q, v.q, BIG) == 0 && memcmp(r.qp, v.qp, BIG) == 0 && memcmp(r.qsum, v.qsum, nb * 4) == 0);
    CHECK(memcmp(r.d, v.d, nb * 4) == 0 && memcmp(r.sum, v.sum, nb * 4) == 0);
    CHECK(isnan(v.d[BIG / 2 / KT_QBLOCK]));
    kt_qact_free(&r), kt_qact_free(&v);
    free(big);
}

/* Every table's integer kernels against the integer reference (the same
 * exact integer sums, the float part in another order: equal to rounding),
 * and the reference against the float product: the error of the
 * activations' rounding, at most sum over blocks of |w| * d / 2. */
void test_int8_kernels_match_reference(void) {
    const kt_matvec_kernels_t *tab[6];
    const int nt = tables(tab);
    const int bits_list[] = {4, 8, 2, 3, 5, 6}, gs_list[] = {32, 64, 128};
    const kt_dtype sd_list[] = {KT_BF16, KT_F16, KT_F32};
    /* widths: whole chunks of 128, a half chunk at the end, a quarter
     * chunk at the end, more than 16 groups of 64 (the kernels read scales
     * 16 groups at a time) */
    const int in_list[] = {768, 960, 1056, 2240};
    const int out = 37, in_max = 2240;
    uint64_t st = 13;
    float *x = malloc(in_max * sizeof *x), *y1 = malloc(out * sizeof *y1), *y2 = malloc(out * sizeof *y2);
    float *row = malloc(in_max * sizeof *row);
    kt_qact a = {0};
    for (int n = 0; n < 4; n++) {
        const int in = in_list[n];
        for (int i = 0; i < in; i++) x[i] = frand(&st) * (i % 97 == 0 ? 20.0f : 1.0f); /* outliers, as real activations have */
        kt_qact_quantize(&a, x, in);
        for (int b = 0; b < 6; b++)
            for (int g = 0; g < 3; g++)
                for (int d = 0; d < 3; d++) {
                    if (b >= 2 && (d || n)) continue; /* the other widths: reference only, one scale dtype */
                    if (in % gs_list[g]) continue;
                    qmatrix q = make_q(out, in, bits_list[b], gs_list[g], sd_list[d], &st);
                    kt_linear_rows_qref(&q.l, 0, out, &a, y1);
                    for (int o = 0; o < out; o++) {
                        kt_linear_row_ref(&q.l, o, row);
                        double exact = 0, bound = 0, mag = 0;
                        for (int i = 0; i < in; i++) {
                            exact += (double)row[i] * x[i];
                            mag += fabs((double)row[i] * x[i]);
                            bound += fabs((double)row[i]) * a.d[i / KT_QBLOCK] * 0.5;
                        }
                        CHECK_MSG(fabs(y1[o] - exact) <= bound + 1e-5 * mag + 1e-6, "int8 ref bits %d gs %d row %d: %g vs %g (bound %g)",
                                  bits_list[b], gs_list[g], o, y1[o], exact, bound);
                        for (int t = 0; t < nt && b < 2; t++) {
                            void (*rows)(const kt_linear *, int, int, const kt_qact *, float *) =
                                bits_list[b] == 4 ? tab[t]->q4_i8_rows : tab[t]->q8_i8_rows;
                            CHECK_MSG(rows != NULL, "%s has no %d-bit integer kernel", tab[t]->name, bits_list[b]);
                            if (!rows) continue;
                            memset(y2, 0, out * sizeof *y2);
                            rows(&q.l, 0, out, &a, y2);
                            CHECK_MSG(fabs(y2[o] - y1[o]) <= 1e-5 * mag + 1e-6, "%s int8 bits %d gs %d %s in %d row %d: %g vs %g",
                                      tab[t]->name, bits_list[b], gs_list[g], kt_dtype_name(sd_list[d]), in, o, y2[o], y1[o]);
                        }
                    }
                    free_q(&q);
                }
    }
    for (int n = 0; n < 3; n++) {
        const int in = in_list[n == 2 ? 3 : n]; /* 768, 960, 2240 */
        /* the prompt's kernels: up to four vectors per weight block, every
         * table against the reference, and the batched dispatch (five vectors:
         * a group of four and one) against one vector at a time */
        enum { T = 5 };
        float *xs = malloc((size_t)T * in_max * sizeof *xs), *ys = malloc((size_t)T * out * sizeof *ys);
        float *yr = malloc((size_t)T * out * sizeof *yr);
        for (int i = 0; i < T * in; i++) xs[i] = frand(&st);
        kt_qact b5 = {0};
        kt_qact_quantize(&b5, xs, T * in);
        for (int g = 0; g < 3; g++) {
            if (in % gs_list[g]) continue;
            qmatrix q = make_q(out, in, 4, gs_list[g], KT_BF16, &st);
            for (int t = 1; t <= 4; t++) {
                kt_linear_gemm_qref(&q.l, 0, out, &b5, t, yr, out);
                for (int k = 0; k < nt; k++) {
                    CHECK_MSG(tab[k]->q4_i8_gemm != NULL, "%s has no 4-bit integer gemm", tab[k]->name);
                    if (!tab[k]->q4_i8_gemm) continue;
                    memset(ys, 0, (size_t)T * out * sizeof *ys);
                    tab[k]->q4_i8_gemm(&q.l, 0, out, &b5, t, ys, out);
                    for (int i = 0; i < t * out; i++)
                        CHECK_MSG(fabs(ys[i] - yr[i]) <= 1e-5 * (fabs(yr[i]) + 1) , "%s gemm gs %d t %d at %d: %g vs %g",
                                  tab[k]->name, gs_list[g], t, i, ys[i], yr[i]);
                }
            }
            kt_linear_apply_batch_q(&q.l, &b5, T, ys);
            for (int t = 0; t < T; t++) {
                kt_qact one = {0};
                kt_qact_quantize(&one, xs + (size_t)t * in, in);
                kt_linear_apply_q(&q.l, &one, y2);
                for (int o = 0; o < out; o++)
                    CHECK_MSG(fabs(ys[t * out + o] - y2[o]) <= 1e-5 * (fabs(y2[o]) + 1), "batch_q t %d row %d", t, o);
                kt_qact_free(&one);
            }
            free_q(&q);
        }
        kt_qact_free(&b5);
        free(xs), free(ys), free(yr);
    }
    const int in = 768;
    /* the dispatch (threads, row blocks) gives the same as its table */
    kt_qact_quantize(&a, x, in);
    qmatrix q = make_q(out, in, 4, 64, KT_BF16, &st);
    kt_linear_rows_qref(&q.l, 0, out, &a, y1);
    kt_linear_apply_q(&q.l, &a, y2);
    for (int o = 0; o < out; o++) CHECK(fabs(y2[o] - y1[o]) <= 1e-5 * fabs(y1[o]) + 1e-4);
    free_q(&q);
    kt_qact_free(&a);
    free(x), free(y1), free(y2), free(row);
}

/* The repacked prompt kernel (one lane per row) against the integer
 * reference: every table that has it, every group size and scale type,
 * widths with whole and partial 128-element chunks, blocks of 32 and 16 rows and a short
 * last block, token counts odd and even; and the batched dispatch, which
 * takes it from 8 tokens on, against one vector at a time. */
void test_int8_packed_gemm_matches_reference(void) {
    const kt_matvec_kernels_t *tab[6];
    const int nt = tables(tab);
    const int in_list[] = {768, 960, 2240}, gs_list[] = {32, 64, 128}, t_list[] = {1, 2, 3, 9};
    const kt_dtype sd_list[] = {KT_BF16, KT_F16, KT_F32};
    enum { OUT = 53, T = 9 };
    uint64_t st = 29;
    float *xs = malloc((size_t)T * 2240 * sizeof *xs), *ys = malloc((size_t)T * OUT * sizeof *ys);
    float *yr = malloc((size_t)T * OUT * sizeof *yr), *y1 = malloc(OUT * sizeof *y1);
    int ran = 0;
    for (int n = 0; n < 3; n++) {
        const int in = in_list[n];
        for (int i = 0; i < T * in; i++) xs[i] = frand(&st) * (i % 89 == 0 ? 16.0f : 1.0f);
        kt_qact a = {0};
        kt_qact_quantize(&a, xs, T * in);
        for (int g = 0; g < 3; g++)
            for (int d = 0; d < 3; d++) {
                if (in % gs_list[g]) continue;
                qmatrix q = make_q(OUT, in, 4, gs_list[g], sd_list[d], &st);
                void *scratch = malloc(kt_packed_scratch_bytes(&q.l, T));
                for (int ti = 0; ti < 4; ti++) {
                    const int t = t_list[ti];
                    kt_linear_gemm_qref(&q.l, 0, OUT, &a, t, yr, OUT);
                    for (int k = 0; k < nt; k++) {
                        if (!tab[k]->q4_i8_packed) continue;
                        memset(ys, 0, (size_t)T * OUT * sizeof *ys);
                        int took = 1;
                        /* blocks of 32 rows, of 16 and a short one (5) */
                        for (int r0 = 0; r0 < OUT; r0 += r0 == 0 ? KT_PACK_ROWS : 16)
                            took &= tab[k]->q4_i8_packed(&q.l, r0, r0 + (r0 == 0 ? KT_PACK_ROWS : 16) < OUT ? r0 + (r0 == 0 ? KT_PACK_ROWS : 16) : OUT,
                                                         &a, t, ys, OUT, scratch);
                        CHECK_MSG(took, "%s declined gs %d", tab[k]->name, gs_list[g]);
                        for (int i = 0; i < t * OUT; i++)
                            CHECK_MSG(fabs(ys[i] - yr[i]) <= 1e-5 * (fabs(yr[i]) + 1), "%s packed gemm in %d gs %d %s t %d at %d: %g vs %g",
                                      tab[k]->name, in, gs_list[g], kt_dtype_name(sd_list[d]), t, i, ys[i], yr[i]);
                        ran++;
                    }
                }
                if (d == 0) { /* the dispatch with T = 9 against one vector at a time */
                    kt_linear_apply_batch_q(&q.l, &a, T, ys);
                    for (int t = 0; t < T; t++) {
                        kt_qact one = {0};
                        kt_qact_quantize(&one, xs + (size_t)t * in, in);
                        kt_linear_apply_q(&q.l, &one, y1);
                        for (int o = 0; o < OUT; o++)
                            CHECK_MSG(fabs(ys[t * OUT + o] - y1[o]) <= 1e-5 * (fabs(y1[o]) + 1), "batch_q T %d t %d row %d", T, t, o);
                        kt_qact_free(&one);
                    }
                }
                free(scratch);
                free_q(&q);
            }
        kt_qact_free(&a);
    }
    /* where the CPU has AVX-512, the kernel must have run */
    for (int k = 0; k < nt; k++) CHECK(!tab[k]->q4_i8_packed || ran > 0);
    free(xs), free(ys), free(yr), free(y1);
}

/* The copy interleaved by 8 rows (interleave.c): every byte where the
 * layout says; the reference on it equal to the bit to the reference on
 * the file (the same sums in the same order); every table's kernel against
 * that reference, for whole runs of blocks and odd ones; and the dispatch
 * (threads, the rows past the last whole block, the prompt repacked from
 * the copy) against the file's reference. */
void test_int8_rows8_matches_reference(void) {
    const kt_matvec_kernels_t *tab[6];
    const int nt = tables(tab);
    const int in_list[] = {768, 960, 2240}, gs_list[] = {32, 64, 128}, t_list[] = {2, 3, 9};
    const kt_dtype sd_list[] = {KT_BF16, KT_F16, KT_F32};
    enum { OUT = 53, T = 9, BLOCKS = OUT / 8 };
    uint64_t st = 41;
    float *xs = malloc((size_t)T * 2240 * sizeof *xs), *ys = malloc((size_t)T * OUT * sizeof *ys);
    float *yr = malloc((size_t)T * OUT * sizeof *yr), *y1 = malloc(OUT * sizeof *y1), *y2 = malloc(OUT * sizeof *y2);
    int kernels_ran = 0;
    for (int n = 0; n < 3; n++) {
        const int in = in_list[n];
        for (int i = 0; i < T * in; i++) xs[i] = frand(&st) * (i % 83 == 0 ? 16.0f : 1.0f);
        kt_qact one = {0}, all = {0};
        kt_qact_quantize(&one, xs, in);
        kt_qact_quantize(&all, xs, T * in);
        for (int g = 0; g < 3; g++)
            for (int d = 0; d < 3; d++) {
                if (in % gs_list[g]) continue;
                qmatrix q = make_q(OUT, in, 4, gs_list[g], sd_list[d], &st);
                CHECK(kt_rows8_ok(&q.l));
                const size_t es = kt_dtype_bits(sd_list[d]) / 8, groups = (size_t)(in / gs_list[g]);
                const size_t bb = kt_rows8_block_bytes(&q.l);
                CHECK(kt_rows8_bytes(&q.l) == BLOCKS * bb && bb == (size_t)in * 4 + 16 * groups * es);
                uint8_t *copy = malloc(kt_rows8_bytes(&q.l));
                kt_rows8_pack(&q.l, copy);
                int misplaced = 0;
                /* the documented layout (interleave.c), written out here on its own */
                const size_t gsz = (size_t)gs_list[g], gb = gsz * 4 + 16 * es;
                for (int r = 0; r < BLOCKS * 8; r++) {
                    const uint8_t *blk = copy + (size_t)(r / 8) * bb;
                    for (int byte = 0; byte < in / 2; byte++) {
                        const size_t gi = (size_t)byte / (gsz / 2), in_g = (size_t)byte % (gsz / 2);
                        misplaced += blk[gi * gb + in_g / 4 * 32 + (size_t)(r % 8) * 4 + in_g % 4] != q.packed[(size_t)r * in / 2 + byte];
                    }
                    for (size_t gi = 0; gi < groups; gi++) {
                        const size_t at = gi * gb + gsz * 4 + (size_t)(r % 8) * es, from = ((size_t)r * groups + gi) * es;
                        misplaced += memcmp(blk + at, (const uint8_t *)q.sc + from, es) != 0;
                        misplaced += memcmp(blk + at + 8 * es, (const uint8_t *)q.bi + from, es) != 0;
                    }
                }
                CHECK_MSG(misplaced == 0, "rows8 layout in %d gs %d %s: %d values misplaced", in, gs_list[g],
                          kt_dtype_name(sd_list[d]), misplaced);
                kt_linear_rows_qref(&q.l, 0, OUT, &one, y1);
                q.l.rows8 = copy;
                kt_rows8_ref(&q.l, 0, BLOCKS, &one, y2);
                for (int o = 0; o < BLOCKS * 8; o++)
                    CHECK_MSG(y2[o] == y1[o], "rows8 reference in %d gs %d row %d: %.9g vs %.9g", in, gs_list[g], o, y2[o], y1[o]);
                for (int k = 0; k < nt; k++) {
                    if (!tab[k]->q4_i8_rows8) continue;
                    /* all blocks; then 1..3 and 4..5 (odd runs, a pair and a single) */
                    const int runs[3][2] = {{0, BLOCKS}, {1, 4}, {4, 6}};
                    for (int r = 0; r < 3; r++) {
                        for (int o = 0; o < OUT; o++) y2[o] = -7.0f;
                        tab[k]->q4_i8_rows8(&q.l, runs[r][0], runs[r][1], &one, y2);
                        for (int o = 0; o < OUT; o++) {
                            const int inside = o >= 8 * runs[r][0] && o < 8 * runs[r][1];
                            if (!inside) {
                                CHECK_MSG(y2[o] == -7.0f, "%s rows8 wrote row %d outside blocks %d..%d", tab[k]->name, o,
                                          runs[r][0], runs[r][1]);
                                continue;
                            }
                            CHECK_MSG(fabs(y2[o] - y1[o]) <= 1e-5 * (fabs(y1[o]) + 1), "%s rows8 in %d gs %d %s row %d: %g vs %g",
                                      tab[k]->name, in, gs_list[g], kt_dtype_name(sd_list[d]), o, y2[o], y1[o]);
                        }
                    }
                    kernels_ran++;
                }
                /* the dispatch, tail rows included; the prompt from the copy */
                kt_linear_apply_q(&q.l, &one, y2);
                for (int o = 0; o < OUT; o++)
                    CHECK_MSG(fabs(y2[o] - y1[o]) <= 1e-5 * (fabs(y1[o]) + 1), "apply_q with rows8, row %d: %g vs %g", o, y2[o], y1[o]);
                for (int ti = 0; ti < 3; ti++) {
                    const int t = t_list[ti];
                    kt_linear_gemm_qref(&q.l, 0, OUT, &all, t, yr, OUT);
                    kt_qact view = all;
                    view.n = t * in;
                    memset(ys, 0, (size_t)T * OUT * sizeof *ys);
                    kt_linear_apply_batch_q(&q.l, &view, t, ys);
                    for (int i = 0; i < t * OUT; i++)
                        CHECK_MSG(fabs(ys[i] - yr[i]) <= 1e-5 * (fabs(yr[i]) + 1), "apply_batch_q with rows8 in %d gs %d t %d at %d: %g vs %g",
                                  in, gs_list[g], t, i, ys[i], yr[i]);
                }
                free(copy);
                free_q(&q);
            }
        kt_qact_free(&one);
        kt_qact_free(&all);
    }
    { /* enough rows for every thread (25 blocks, an odd count, and 3 rows past them) */
        qmatrix q = make_q(203, 768, 4, 64, KT_BF16, &st);
        uint8_t *copy = malloc(kt_rows8_bytes(&q.l));
        float *z1 = malloc(203 * sizeof *z1), *z2 = malloc(203 * sizeof *z2);
        kt_qact one = {0};
        kt_qact_quantize(&one, xs, 768);
        kt_rows8_pack(&q.l, copy);
        q.l.rows8 = copy;
        kt_linear_rows_qref(&q.l, 0, 203, &one, z1);
        kt_linear_apply_q(&q.l, &one, z2);
        for (int o = 0; o < 203; o++)
            CHECK_MSG(fabs(z2[o] - z1[o]) <= 1e-5 * (fabs(z1[o]) + 1), "apply_q with rows8, 203 rows, row %d: %g vs %g", o, z2[o], z1[o]);
        kt_qact_free(&one);
        free(copy), free(z1), free(z2);
        free_q(&q);
    }
#if defined(__x86_64__)
    /* every x86-64 CPU with AVX2 has the kernel: it must have run */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) CHECK(kernels_ran > 0);
#endif
    free(xs), free(ys), free(yr), free(y1), free(y2);
}

/* Which tables this run tested and which this CPU cannot run, on one line
 * that tests/run.sh repeats beside the final count: a table that did not run
 * here is untested here, and says so (NEON runs under qemu on x86-64 Linux,
 * tests/cross/neon.sh). */
void test_kernel_tables_named(void) {
    const kt_matvec_kernels_t *tab[6];
    const int nt = tables(tab);
#if defined(__x86_64__)
    static const char *const arch[] = {"avx512-vnni", "avx512", "avx2-vnni", "avx2", NULL};
#elif defined(__aarch64__)
    static const char *const arch[] = {"neon-dotprod", "neon", NULL};
#else
    static const char *const arch[] = {NULL};
#endif
    strbuf ran = {0}, not_here = {0};
    sb_puts(&ran, "scalar");
    for (int i = 0; i < nt; i++) sb_printf(&ran, ", %s", tab[i]->name);
    for (int a = 0; arch[a]; a++) {
        int seen = 0;
        for (int i = 0; i < nt; i++) seen |= !strcmp(tab[i]->name, arch[a]);
        if (!seen) sb_printf(&not_here, "%s%s", not_here.len ? ", " : "", arch[a]);
    }
    printf("  kernel tables tested on this CPU: %s; not runnable here (untested on this machine): %s\n", sb_cstr(&ran),
           not_here.len ? sb_cstr(&not_here) : "none");
#if defined(__x86_64__)
    /* every table the CPU's flags allow was among those tested */
    const int want[] = {__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw"),
                        __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"),
                        __builtin_cpu_supports("avxvnni") && __builtin_cpu_supports("avx2"),
                        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")};
    for (int a = 0; arch[a]; a++)
        if (want[a]) CHECK_MSG(strstr(sb_cstr(&ran), arch[a]) != NULL, "this CPU runs %s, which was not tested", arch[a]);
#endif
    sb_free(&ran);
    sb_free(&not_here);
}
