/* kernels.h - one instruction set's matrix kernels, as a table.
 *
 * matvec.c picks the best table this CPU supports at run time (each file
 * compiles everywhere and returns NULL where its instructions do not exist)
 * and falls back to the scalar references for any format a table does not
 * cover. The tests run every available table against the references.
 */
#ifndef KT_KERNELS_H
#define KT_KERNELS_H

#include "model.h"
#include "qact.h"

#include <string.h>

typedef struct {
    const char *name;
    /* Rows [R0, R1) of y = W x for 4-bit W with group_size % 16 == 0. XE and
     * XO are x's even and odd elements (byte k of a group holds element 2k in
     * its low nibble, 2k+1 in its high), XSUM x's sum per group. */
    void (*q4_rows)(const kt_linear *l, int r0, int r1, const float *xe, const float *xo, const float *xsum, float *y);
    /* Rows [R0, R1) of y = W x for dense bf16 W. */
    void (*bf16_rows)(const kt_linear *l, int r0, int r1, const float *x, float *y);
    /* Row R of 4-bit W dequantized, s * code + b rounded as the reference. */
    void (*q4_row)(const kt_linear *l, int r, float *out);
    /* OUT[k] = W . X[k] for K < T vectors X[k] = X + k * LDX of N floats. */
    void (*dots)(const float *w, const float *x, size_t ldx, int t, int n, float *out);
    /* Rows [R0, R1) of y = W x with x quantized (qact.h), W 4-bit or 8-bit
     * with group_size % 32 == 0; NULL where the table has none. */
    void (*q4_i8_rows)(const kt_linear *l, int r0, int r1, const kt_qact *a, float *y);
    void (*q8_i8_rows)(const kt_linear *l, int r0, int r1, const kt_qact *a, float *y);
    /* The prompt: Y[t * LDY + r] for rows [R0, R1) and the T <= 4 vectors of
     * A (one after another, l->in values each), 4-bit W; each weight block
     * loaded once serves every vector. NULL where the table has none. */
    void (*q4_i8_gemm)(const kt_linear *l, int r0, int r1, const kt_qact *a, int t, float *y, size_t ldy);
    /* The same for any T and R1 - R0 <= KT_PACK_ROWS, the rows repacked
     * first into SCRATCH (kt_packed_scratch_bytes(L, T) bytes) so that each
     * register lane is one row (see matvec_avx512.c). NULL where the table
     * has none; returns 0 for matrices it declines. */
    int (*q4_i8_packed)(const kt_linear *l, int r0, int r1, const kt_qact *a, int t, float *y, size_t ldy, void *scratch);
    /* The float prompt's register tile: OUT[k * LDO + r] = W_r . X_k over
     * N floats for the 2 rows W_r = W + r * LDW and the 4 vectors
     * X_k = X + k * LDX; each loaded value serves 4 (row) or 2 (vector)
     * products, where dots' loads serve at most 4 of 1 row. */
    void (*dots_2x4)(const float *w, size_t ldw, const float *x, size_t ldx, int n, float *out, size_t ldo);
    /* Rows [8 B0, 8 B1) of y = W x from the copy interleaved by 8 rows
     * (L->rows8, interleave.c), x quantized: the decode kernel where the
     * file's layout costs more instructions than memory reads. NULL where
     * the table has none (then no copy is made). */
    void (*q4_i8_rows8)(const kt_linear *l, int b0, int b1, const kt_qact *a, float *y);
} kt_matvec_kernels_t;

/* The repacked prompt kernels' rows per call and their scratch for T
 * tokens: the packed codes (one byte per element), the rows' scales and
 * biases as floats, the row sums and the group sums of x of every token
 * (T rounded up to 4), and room to align to 64 bytes. */
enum { KT_PACK_ROWS = 32 };
static inline size_t kt_packed_scratch_bytes(const kt_linear *l, int t) {
    const size_t groups = (size_t)(l->in / l->group_size), tokens = ((size_t)t + 3) / 4 * 4;
    return (size_t)l->in * KT_PACK_ROWS + ((groups * 2 + tokens) * KT_PACK_ROWS + tokens * groups) * sizeof(float) + 64;
}

/* What every repacked prompt kernel takes: what the four-row kernels take
 * (kt_rows4_ok below: rows of whole 4-byte steps) and 1 to KT_PACK_ROWS
 * rows. */
static inline int kt_rows4_ok(const kt_linear *l);
static inline int kt_packed_ok(const kt_linear *l, int r0, int r1) {
    return kt_rows4_ok(l) && r1 > r0 && r1 - r0 <= KT_PACK_ROWS;
}

/* One block of 8 rows in the interleaved copy (interleave.c) is one group
 * after another, each the group's codes (4 bytes per row per 8 elements,
 * gs / 8 steps of 32 bytes), then its 8 scales in their own dtype, then its
 * 8 biases: kt_rows8_group_bytes bytes a group. Offsets within a block: */
static inline size_t kt_rows8_group_bytes(const kt_linear *l) {
    return (size_t)l->group_size * 4 + 16 * (size_t)(kt_dtype_bits(l->dtype) / 8);
}
static inline size_t kt_rows8_block_bytes(const kt_linear *l) {
    return (size_t)(l->in / l->group_size) * kt_rows8_group_bytes(l);
}
static inline size_t kt_rows8_step_at(const kt_linear *l, int s) { /* step s: elements 8s..8s+7 */
    const int per = l->group_size / 8;
    return (size_t)(s / per) * kt_rows8_group_bytes(l) + (size_t)(s % per) * 32;
}
static inline size_t kt_rows8_scales_at(const kt_linear *l, int g) {
    return (size_t)g * kt_rows8_group_bytes(l) + (size_t)l->group_size * 4;
}
static inline size_t kt_rows8_biases_at(const kt_linear *l, int g) {
    return kt_rows8_scales_at(l, g) + 8 * (size_t)(kt_dtype_bits(l->dtype) / 8);
}

/* Scale or bias I of a 4-bit matrix as float. Inlined with D a constant,
 * the bf16 case (MLX stores them in the model's dtype, usually bf16) is two
 * instructions. */
static inline float kt_scale_at(kt_dtype d, const uint8_t *base, size_t i) {
    if (d == KT_BF16) {
        uint16_t h;
        memcpy(&h, base + i * 2, 2);
        return kt_bf16_to_f32(h);
    }
    float f;
    kt_row_to_f32(d, base + i * (kt_dtype_bits(d) / 8), &f, 1);
    return f;
}

/* The four-row integer kernels (AVX2, AVX-512) keep a row's group sums on
 * the stack: at most KT_GSUM_MAX groups (in = 131072 at groups of 32). They
 * take groups of 32, 64 or 128, whole blocks, scales in a float format. */
enum { KT_GSUM_MAX = 4096 };
static inline int kt_rows4_ok(const kt_linear *l) {
    return (l->group_size == 32 || l->group_size == 64 || l->group_size == 128) && l->in % KT_QBLOCK == 0 &&
           l->in / l->group_size <= KT_GSUM_MAX && (l->dtype == KT_BF16 || l->dtype == KT_F16 || l->dtype == KT_F32);
}

/* OUT[g] = the float sum of x over group g (GROUPS groups of GS values),
 * from the activation blocks' sums SUM: the bias term's factor. */
static inline void kt_group_sums(const float *sum, int gs, int groups, float *out) {
    const int per = gs / KT_QBLOCK;
    for (int g = 0; g < groups; g++) {
        float t = 0;
        for (int k = g * per; k < (g + 1) * per; k++) t += sum[k];
        out[g] = t;
    }
}

/* SUM plus the bf16 row W times X over [I, N): the tail the vector loop left. */
static inline float kt_bf16_dot_tail(float sum, const uint16_t *w, const float *x, int i, int n) {
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, w + i, 2);
        sum += kt_bf16_to_f32(h) * x[i];
    }
    return sum;
}

/* Each instruction set's best table for this CPU (NULL where it cannot run);
 * the _base tables are the same without the dot-product extensions (VNNI,
 * dotprod), kept for CPUs that lack them and tested wherever they run. */
const kt_matvec_kernels_t *kt_kernels_avx512(void);
const kt_matvec_kernels_t *kt_kernels_avx512_base(void);
const kt_matvec_kernels_t *kt_kernels_avx2(void);
const kt_matvec_kernels_t *kt_kernels_avx2_base(void);
const kt_matvec_kernels_t *kt_kernels_neon(void);
const kt_matvec_kernels_t *kt_kernels_neon_base(void);
/* Which build of the plain-C functions compiled several ways (the SSM head
 * step, the attention head, the activation quantizer) runs: 0 the build's
 * baseline (also when kt_matvec_force_scalar is on), 1 AVX2, 2 AVX-512F+BW.
 * Every build gives the same bits; only the vector width differs. */
int kt_clone_level(void);
/* The table in use (NULL: scalar only). */
const kt_matvec_kernels_t *kt_kernels_active(void);

/* The scalar references the tables are tested against. */
void kt_linear_rows_ref(const kt_linear *l, int r0, int r1, const float *x, float *y);
void kt_dots_ref(const float *w, const float *x, size_t ldx, int t, int n, float *out);
void kt_linear_rows_qref(const kt_linear *l, int r0, int r1, const kt_qact *a, float *y);
void kt_linear_gemm_qref(const kt_linear *l, int r0, int r1, const kt_qact *a, int t, float *y, size_t ldy);

#endif
