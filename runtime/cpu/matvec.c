/* matvec.c - y = W x for the runtime's weights: affine-quantized (any bits,
 * any group size) or dense bf16/f16/f32; the scalar references and the
 * dispatch to the vector kernels (kernels.h).
 *
 * A quantized row is a sum over groups of  s * (codes . x_g) + b * sum(x_g):
 * the scale and bias factor out of each group, so the codes are never
 * expanded to floats one by one. The reference computes that sum plainly in
 * double; the kernels compute the same sum in float lanes in another order,
 * so the two agree to rounding (tests/unit/test_matvec.c), not bit for bit.
 */
#include "affine.h"
#include "cpu.h"
#include "kernels.h"
#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

void kt_linear_row_ref(const kt_linear *l, int r, float *out) {
    if (!l->quantized) {
        kt_row_to_f32(l->dtype, l->w + (size_t)r * (size_t)l->in * (kt_dtype_bits(l->dtype) / 8), out, (size_t)l->in);
        return;
    }
    const int groups = l->in / l->group_size, es = (int)kt_dtype_bits(l->dtype) / 8;
    uint8_t codes[128];
    for (int g = 0; g < groups; g++) {
        float s, b;
        kt_row_to_f32(l->dtype, l->scales + ((size_t)r * groups + g) * es, &s, 1);
        kt_row_to_f32(l->dtype, l->biases + ((size_t)r * groups + g) * es, &b, 1);
        kt_unpack_codes_ref(l->bits, l->w + ((size_t)r * l->in + (size_t)g * l->group_size) * l->bits / 8,
                            (size_t)l->group_size, codes);
        for (int j = 0; j < l->group_size; j++) out[g * l->group_size + j] = s * codes[j] + b;
    }
}

/* One output of the reference: row R of W times X (XSUM: sums of x per group). */
static float row_ref(const kt_linear *l, int r, const float *x, const float *xsum) {
    if (!l->quantized) {
        float w[256];
        double acc = 0;
        const size_t es = kt_dtype_bits(l->dtype) / 8;
        for (int i0 = 0; i0 < l->in; i0 += 256) {
            int n = l->in - i0 < 256 ? l->in - i0 : 256;
            kt_row_to_f32(l->dtype, l->w + ((size_t)r * l->in + i0) * es, w, (size_t)n);
            for (int i = 0; i < n; i++) acc += (double)w[i] * x[i0 + i];
        }
        return (float)acc;
    }
    const int gs = l->group_size, groups = l->in / gs, es = (int)kt_dtype_bits(l->dtype) / 8;
    uint8_t codes[128];
    double acc = 0;
    for (int g = 0; g < groups; g++) {
        float s, b;
        kt_row_to_f32(l->dtype, l->scales + ((size_t)r * groups + g) * es, &s, 1);
        kt_row_to_f32(l->dtype, l->biases + ((size_t)r * groups + g) * es, &b, 1);
        kt_unpack_codes_ref(l->bits, l->w + ((size_t)r * l->in + (size_t)g * gs) * l->bits / 8, (size_t)gs, codes);
        double dot = 0;
        for (int j = 0; j < gs; j++) dot += (double)codes[j] * x[g * gs + j];
        acc += s * dot + (double)b * xsum[g];
    }
    return (float)acc;
}

static float *group_sums(const kt_linear *l, const float *x) {
    const int gs = l->quantized ? l->group_size : 1, groups = l->quantized ? l->in / gs : 0;
    float *xsum = kt_xcalloc((size_t)groups + 1, sizeof *xsum);
    for (int g = 0; g < groups; g++)
        for (int j = 0; j < gs; j++) xsum[g] += x[g * gs + j];
    return xsum;
}

void kt_linear_rows_ref(const kt_linear *l, int r0, int r1, const float *x, float *y) {
    float *xsum = group_sums(l, x);
    for (int o = r0; o < r1; o++) y[o] = row_ref(l, o, x, xsum);
    free(xsum);
}

float kt_dot_ref(const float *a, const float *b, int n) {
    double acc = 0;
    for (int i = 0; i < n; i++) acc += (double)a[i] * b[i];
    return (float)acc;
}

void kt_dots_ref(const float *w, const float *x, size_t ldx, int t, int n, float *out) {
    for (int k = 0; k < t; k++) out[k] = kt_dot_ref(w, x + (size_t)k * ldx, n);
}

/* ---- dispatch ---- */

static int force_ref;
void kt_matvec_force_scalar(int on) { force_ref = on; }

const kt_matvec_kernels_t *kt_kernels_active(void) {
    static const kt_matvec_kernels_t *best;
    static int chosen;
    if (force_ref) return NULL;
    if (!chosen) {
        const char *want = getenv("KT_KERNELS"); /* "scalar" or a table's name, for comparisons */
        const kt_matvec_kernels_t *all[] = {kt_kernels_avx512(), kt_kernels_avx512_base(), kt_kernels_avx2(),
                                            kt_kernels_avx2_base(), kt_kernels_neon(), kt_kernels_neon_base()};
        for (size_t i = 0; i < sizeof all / sizeof all[0] && !best; i++)
            if (all[i] && (!want || !strcmp(want, all[i]->name))) best = all[i];
        chosen = 1;
    }
    return best;
}

int kt_clone_level(void) {
    if (!kt_kernels_active()) return 0;
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) return 2;
    if (__builtin_cpu_supports("avx2")) return 1;
#endif
    return 0;
}

const char *kt_matvec_kernels(void) {
    const kt_matvec_kernels_t *k = kt_kernels_active();
    return k ? k->name : "scalar";
}

static int q4_fast(const kt_linear *l) { return l->quantized && l->bits == 4 && l->group_size % 16 == 0; }
static int bf16_fast(const kt_linear *l) { return !l->quantized && l->dtype == KT_BF16; }

/* Rows are handed to the kernels in blocks of 16 (an even count: the 4-bit
 * kernels work on row pairs), one block at a time per thread. */
enum { ROW_BLOCK = 16 };

void kt_linear_apply(const kt_linear *l, const float *x, float *y) {
    const kt_matvec_kernels_t *k = kt_kernels_active();
    const int blocks = (l->out + ROW_BLOCK - 1) / ROW_BLOCK;
    float *xsum = group_sums(l, x);
    if (k && q4_fast(l)) {
        float *xe = kt_xmalloc((size_t)l->in / 2 * sizeof *xe), *xo = kt_xmalloc((size_t)l->in / 2 * sizeof *xo);
        for (int i = 0; i < l->in / 2; i++) xe[i] = x[2 * i], xo[i] = x[2 * i + 1];
#pragma omp parallel for schedule(static) if (l->out >= 64)
        for (int b = 0; b < blocks; b++)
            k->q4_rows(l, b * ROW_BLOCK, b * ROW_BLOCK + ROW_BLOCK < l->out ? b * ROW_BLOCK + ROW_BLOCK : l->out, xe, xo,
                       xsum, y);
        free(xe);
        free(xo);
    } else if (k && bf16_fast(l)) {
#pragma omp parallel for schedule(static) if (l->out >= 64)
        for (int b = 0; b < blocks; b++)
            k->bf16_rows(l, b * ROW_BLOCK, b * ROW_BLOCK + ROW_BLOCK < l->out ? b * ROW_BLOCK + ROW_BLOCK : l->out, x, y);
    } else {
#pragma omp parallel for schedule(static) if (l->out >= 64)
        for (int o = 0; o < l->out; o++) y[o] = row_ref(l, o, x, xsum);
    }
    free(xsum);
}

void kt_linear_row(const kt_linear *l, int r, float *out) {
    const kt_matvec_kernels_t *k = kt_kernels_active();
    if (k && q4_fast(l)) k->q4_row(l, r, out);
    else kt_linear_row_ref(l, r, out);
}

float kt_dot(const float *a, const float *b, int n) {
    const kt_matvec_kernels_t *k = kt_kernels_active();
    float r;
    if (!k) return kt_dot_ref(a, b, n);
    k->dots(a, b, 0, 1, n, &r);
    return r;
}

/* The prompt: each row of W is expanded to floats once (kt_linear_row) and
 * multiplied with every token's vector. Rows go in blocks of BATCH_ROWS,
 * columns in chunks of BATCH_COLS and tokens in blocks of BATCH_TOKENS: a
 * chunk of the expanded rows (16 KiB) and of four tokens' vectors (8 KiB)
 * stay in L1 while the register tile (dots_2x4, two rows by four tokens)
 * passes over them, where whole rows of the 9B shape (140 KiB for 8) would
 * stream from L2 for every four tokens. Each output sums its chunks'
 * partial dot products in order. */
enum { BATCH_ROWS = 8, BATCH_TOKENS = 4, BATCH_COLS = 512 };

/* Y[T0 + j][R0 + r] += the block's rows R times the tokens' vectors over
 * the columns [C0, C0 + NC). */
static void batch_chunk(const kt_matvec_kernels_t *k, const float *rows, int nr, const kt_linear *l, const float *x,
                        int t0, int nt, int c0, int nc, int r0, float *y) {
    const float *xt = x + (size_t)t0 * l->in + c0;
    float dot[BATCH_TOKENS * 2];
    int r = 0;
    if (k && k->dots_2x4 && nt == BATCH_TOKENS)
        for (; r + 2 <= nr; r += 2) {
            k->dots_2x4(rows + (size_t)r * l->in + c0, (size_t)l->in, xt, (size_t)l->in, nc, dot, 2);
            for (int j = 0; j < BATCH_TOKENS; j++)
                for (int i = 0; i < 2; i++) y[(size_t)(t0 + j) * l->out + r0 + r + i] += dot[j * 2 + i];
        }
    for (; r < nr; r++) {
        if (k) k->dots(rows + (size_t)r * l->in + c0, xt, (size_t)l->in, nt, nc, dot);
        else kt_dots_ref(rows + (size_t)r * l->in + c0, xt, (size_t)l->in, nt, nc, dot);
        for (int j = 0; j < nt; j++) y[(size_t)(t0 + j) * l->out + r0 + r] += dot[j];
    }
}

void kt_linear_apply_batch(const kt_linear *l, const float *x, int t, float *y) {
    if (t == 1) {
        kt_linear_apply(l, x, y);
        return;
    }
    const kt_matvec_kernels_t *k = kt_kernels_active();
    const int blocks = (l->out + BATCH_ROWS - 1) / BATCH_ROWS;
#pragma omp parallel
    {
        float *rows = kt_xmalloc((size_t)BATCH_ROWS * l->in * sizeof *rows);
#pragma omp for schedule(static)
        for (int b = 0; b < blocks; b++) {
            const int r0 = b * BATCH_ROWS, nr = l->out - r0 < BATCH_ROWS ? l->out - r0 : BATCH_ROWS;
            for (int r = 0; r < nr; r++) kt_linear_row(l, r0 + r, rows + (size_t)r * l->in);
            for (int j = 0; j < t; j++) memset(y + (size_t)j * l->out + r0, 0, (size_t)nr * sizeof *y);
            for (int c0 = 0; c0 < l->in; c0 += BATCH_COLS) {
                const int nc = l->in - c0 < BATCH_COLS ? l->in - c0 : BATCH_COLS;
                for (int t0 = 0; t0 < t; t0 += BATCH_TOKENS)
                    batch_chunk(k, rows, nr, l, x, t0, t - t0 < BATCH_TOKENS ? t - t0 : BATCH_TOKENS, c0, nc, r0, y);
            }
        }
        free(rows);
    }
}
