/* interleave.c - the CPU's own copy of 4-bit matrices, rows interleaved by
 * eight, made once when a model is prepared for integer activations.
 *
 * Why: a decoded token reads every weight once, and with the file's layout
 * (one row after another) a vector kernel must gather eight rows into one
 * register's lanes itself, or reduce each row across lanes at the end; on
 * AVX2 that bookkeeping is more instructions than the multiply-adds (the
 * four-row kernel of matvec_avx2.c measured bound by its instructions, not
 * by memory). In this layout one 32-byte load holds 8 elements of each of 8
 * rows, lane i being row i, and the nibbles stay packed: the bytes read per
 * token do not change.
 *
 * Layout (kernels.h, kt_rows8_*): block b holds rows 8b..8b+7 of W in
 * kt_rows8_block_bytes(l) bytes, one group of gs elements after another,
 * kt_rows8_group_bytes(l) = 4 gs + 16 es bytes each (es: the bytes of the
 * file's scale dtype):
 *   codes:  step s of the group (elements 8s..8s+7 of it in a row, the
 *           row's bytes 4s..4s+3 of the group) at 32 * s, row i's 4
 *           bytes at 32 * s + 4 * i;
 *   scales: at 4 * gs, row i's at 4 * gs + i * es;
 *   biases: at 4 * gs + 8 * es, likewise.
 * A group's scales and biases sit right after its codes, so a block is one
 * stream read front to back. (They were once at the end of the block, in
 * streams of their own that the hardware prefetcher did not follow: the
 * kernel then waited on their loads every few groups.)
 * Rows past the last whole block (out % 8) stay in the file only.
 */
#include "cpu.h"
#include "error.h"
#include "kernels.h"
#include "strbuf.h"

#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

int kt_rows8_ok(const kt_linear *l) {
    return l->quantized && l->bits == 4 && l->out >= 8 && kt_rows4_ok(l);
}

size_t kt_rows8_bytes(const kt_linear *l) { return (size_t)(l->out / 8) * kt_rows8_block_bytes(l); }

void kt_rows8_pack(const kt_linear *l, uint8_t *dst) {
    const size_t stride = (size_t)l->in / 2, gs = (size_t)l->group_size, groups = (size_t)l->in / gs;
    const size_t es = kt_dtype_bits(l->dtype) / 8, bb = kt_rows8_block_bytes(l), gb = kt_rows8_group_bytes(l);
    const int blocks = l->out / 8;
#pragma omp parallel for schedule(static) if (blocks >= 64)
    for (int b = 0; b < blocks; b++)
        for (size_t g = 0; g < groups; g++) {
            uint8_t *o = dst + (size_t)b * bb + g * gb;
            for (size_t i = 0; i < 8; i++) {
                const size_t r = (size_t)(8 * b) + i;
                const uint8_t *codes = l->w + r * stride + g * gs / 2;
                for (size_t s = 0; s < gs / 8; s++) memcpy(o + s * 32 + i * 4, codes + s * 4, 4);
                memcpy(o + kt_rows8_scales_at(l, 0) + i * es, l->scales + (r * groups + g) * es, es);
                memcpy(o + kt_rows8_biases_at(l, 0) + i * es, l->biases + (r * groups + g) * es, es);
            }
        }
}

/* The scalar reference on this layout: rows [8 B0, 8 B1) of y = W x for
 * the quantized vector A, read from L->rows8 the way the reference of
 * matvec_int8.c reads the file (exact integer dot products, the rest in
 * double). Agreeing with that reference proves the layout; agreeing with
 * this one, the kernels. */
void kt_rows8_ref(const kt_linear *l, int b0, int b1, const kt_qact *a, float *y) {
    const int gs = l->group_size, groups = l->in / gs, per = gs / KT_QBLOCK;
    const size_t es = kt_dtype_bits(l->dtype) / 8, bb = kt_rows8_block_bytes(l);
    for (int b = b0; b < b1; b++) {
        const uint8_t *blk = l->rows8 + (size_t)b * bb;
        for (int i = 0; i < 8; i++) {
            double acc = 0;
            for (int g = 0; g < groups; g++) {
                float s, bias;
                kt_row_to_f32(l->dtype, blk + kt_rows8_scales_at(l, g) + (size_t)i * es, &s, 1);
                kt_row_to_f32(l->dtype, blk + kt_rows8_biases_at(l, g) + (size_t)i * es, &bias, 1);
                double dot = 0, xsum = 0;
                for (int k = g * per; k < (g + 1) * per; k++) {
                    int32_t isum = 0;
                    for (int j = 0; j < KT_QBLOCK / 2; j++) { /* byte j: elements 2j (low), 2j+1 (high) */
                        const int step = k * 4 + j / 4;
                        const uint8_t byte = blk[kt_rows8_step_at(l, step) + (size_t)i * 4 + j % 4];
                        isum += (byte & 15) * a->q[(size_t)k * KT_QBLOCK + 2 * j] + (byte >> 4) * a->q[(size_t)k * KT_QBLOCK + 2 * j + 1];
                    }
                    dot += (double)a->d[k] * isum;
                    xsum += a->sum[k];
                }
                acc += s * dot + (double)bias * xsum;
            }
            y[8 * b + i] = (float)acc;
        }
    }
}

static void take(kt_linear *l, kt_linear **out, size_t *n) {
    if (kt_rows8_ok(l) && l->w) out[(*n)++] = l;
}

/* Every matrix of M the interleaved kernel takes, into OUT (room for all
 * of M's matrices: kt_cpu_prepare); returns their count. */
static size_t takers(kt_model *m, kt_linear **out) {
    const kt_config *c = &m->cfg;
    size_t n = 0;
    take(&m->lm_head, out, &n);
    for (int i = 0; i < c->n_layers; i++) {
        kt_layer *L = &m->layers[i];
        kt_linear *own[] = {&L->in_proj, &L->out_proj, &L->q, &L->k, &L->v, &L->o, &L->up, &L->down,
                            &L->gate, &L->sh_up, &L->sh_down};
        for (size_t j = 0; j < sizeof own / sizeof *own; j++) take(own[j], out, &n);
        for (int e = 0; L->kind == 'E' && L->fc1 && e < c->n_experts; e++) {
            take(&L->fc1[e], out, &n);
            take(&L->fc2[e], out, &n);
        }
    }
    return n;
}

/* The file's pages that hold only L's codes are dropped from this process
 * once copied: they are clean pages of a private read-only mapping, so a
 * later read (the float path, if ever) maps them in from the file again.
 * Without this the model would be resident twice. */
static void drop_codes(const kt_model *m, const kt_linear *l) {
#if defined(__linux__)
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), start = (uintptr_t)l->w;
    const uintptr_t end = start + (uintptr_t)l->out / 8 * 8 * (uintptr_t)l->in / 2;
    const uintptr_t a = (start + page - 1) & ~(page - 1), z = end & ~(page - 1);
    /* only inside a shard's file mapping: on memory of any other kind
     * (anonymous, written) the same call would discard the data itself */
    for (size_t i = 0; z > a && i < m->files.n_shards; i++) {
        const uintptr_t map = (uintptr_t)m->files.shards[i].map, len = m->files.shards[i].map_len;
        if (map && a >= map && z <= map + len) (void)madvise((void *)a, z - a, MADV_DONTNEED);
    }
#else
    (void)m, (void)l;
#endif
}

/* The copy in huge pages where the kernel gives them on request: 2 MiB
 * pages take a 512th of the faults of 4 KiB ones, and the copy is
 * gigabytes. */
static uint8_t *copy_alloc(size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    void *p = NULL;
    if (posix_memalign(&p, (size_t)2 << 20, bytes)) return NULL;
    (void)madvise(p, bytes, MADV_HUGEPAGE);
    return p;
#else
    return malloc(bytes);
#endif
}

int kt_cpu_prepare(kt_model *m) {
    const kt_matvec_kernels_t *k = kt_kernels_active();
    const char *env = getenv("KT_INTERLEAVE");
    if (env && *env && strcmp(env, "0") && strcmp(env, "1")) return kt_fail("KT_INTERLEAVE is '%s', not 0 or 1", env);
    if (!k || !k->q4_i8_rows8 || m->activations != KT_ACT_INT8 || m->headers_only || m->backend_weights ||
        (env && !strcmp(env, "0")))
        return 0; /* backend_weights: the copy exists already */
    const size_t most = 1 + (size_t)m->cfg.n_layers * (11 + 2 * (size_t)(m->cfg.n_experts > 0 ? m->cfg.n_experts : 0));
    kt_linear **all = kt_xmalloc(most * sizeof *all);
    const size_t n = takers(m, all);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += (kt_rows8_bytes(all[i]) + 63) / 64 * 64;
    uint8_t *copy = total ? copy_alloc(total) : NULL;
    if (total && !copy) { /* not fatal: the file's layout serves, only slower */
        free(all);
        return 0;
    }
    for (size_t i = 0, at = 0; i < n; at += (kt_rows8_bytes(all[i]) + 63) / 64 * 64, i++) {
        kt_rows8_pack(all[i], copy + at);
        all[i]->rows8 = copy + at;
        drop_codes(m, all[i]);
    }
    free(all);
    m->backend_weights = copy;
    return 0;
}
