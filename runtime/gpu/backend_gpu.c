/* backend_gpu.c - backend.h's table on a GPU, through a host (gpu_host.h:
 * Vulkan or Metal).
 *
 * forward.c composes a token out of backend calls, as for the CPU. Here each
 * call records a dispatch of one of the kernels (runtime/gpu/kernels/) into
 * the token's command buffer, and sync() at the end of the token submits it
 * once and waits: one submission per token. Every pointer a call gets is
 * found in a table of regions, each backed by a device buffer:
 *   - state and scratch (the KV cache, the SSM and conv state, the pass's
 *     vectors) come from alloc(): host-visible device memory, so the host
 *     sees them too once synced;
 *   - weight matrices are imported from the mapped files without a copy
 *     where the host can (page-rounded spans), else copied, on first use
 *     (their pointers never change), in row chunks that each fit one
 *     binding (a 9B model's lm_head is more than lavapipe binds at once);
 *     the model's float vectors are copied;
 *   - a result the caller owns (the logits) goes to a staging buffer that
 *     sync() copies back (staging lasts one token: the caller may free its
 *     memory and the address come back as something else).
 * A MoE layer stays on the device too: the router writes its choice into a
 * device buffer and the expert kernels read it there (route, expert,
 * weigh), so the host never waits for it. A prompt runs as matrix-matrix
 * work too (matmul: qmm), one submission for all its tokens.
 */
#include "backend_gpu.h"
#include "gpu_selfcheck.h"
#include "error.h"
#include "gpu_abi.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *host;
    size_t size;
    kt_gpu_buffer buf;
    int mirror, live;  /* a staging buffer for a caller's result; live: holds one this token */
    const void *key;   /* a packed copy made for a layer (its Mamba parameters) */
} region;

static const kt_gpu_host *host;
static kt_gpu *dev;
static region **regions; /* each allocated by itself: pointers to them stay valid as the table grows */
static size_t n_regions, cap_regions;
static kt_gpu_buffer scores; /* attention scratch: heads x positions */
static int failed;          /* a call failed: sync() reports it */

static void fail_once(void) {
    if (!failed) kt_fail_context("%s backend", host->api);
    failed = 1;
}

static region *add_region(const void *host, size_t size, const kt_gpu_buffer *b) {
    if (n_regions == cap_regions) {
        cap_regions = cap_regions ? 2 * cap_regions : 64;
        regions = kt_xrealloc(regions, cap_regions * sizeof *regions);
    }
    region *r = kt_xcalloc(1, sizeof *r);
    regions[n_regions++] = r;
    r->host = host, r->size = size, r->buf = *b;
    return r;
}

static region *find(const void *p, size_t n, size_t *off) {
    const uint8_t *q = p;
    for (size_t i = 0; i < n_regions; i++)
        if (!regions[i]->key && (!regions[i]->mirror || regions[i]->live) && q >= regions[i]->host &&
            q + n <= regions[i]->host + regions[i]->size) {
            *off = (size_t)(q - regions[i]->host);
            return regions[i];
        }
    return NULL;
}

/* A buffer holding the N bytes at P: ours, or uploaded now. */
static const kt_gpu_buffer *source(const void *p, size_t n, size_t *off) {
    region *r = find(p, n, off);
    if (r) return &r->buf;
    kt_gpu_buffer b;
    if (host->buffer_new(dev, n, &b)) {
        fail_once();
        return NULL;
    }
    memcpy(b.map, p, n);
    *off = 0;
    return &add_region(p, n, &b)->buf;
}

/* A buffer to write the N bytes at P into: ours, or a staging buffer for
 * the caller's memory, copied there at sync. Staging lasts one token (the
 * caller's memory may be freed and reused afterwards); its buffers are
 * reused. */
static const kt_gpu_buffer *dest(void *p, size_t n, size_t *off) {
    region *r = find(p, n, off);
    if (r) return &r->buf;
    for (size_t i = 0; i < n_regions && !r; i++)
        if (regions[i]->mirror && !regions[i]->live && regions[i]->buf.size >= n) r = regions[i];
    if (!r) {
        kt_gpu_buffer b;
        if (host->buffer_new(dev, n, &b)) {
            fail_once();
            return NULL;
        }
        r = add_region(p, n, &b);
        r->mirror = 1;
    }
    r->host = p, r->size = n, r->live = 1;
    *off = 0;
    return &r->buf;
}

static void record(kt_gpu_kernel k, const kt_gpu_buffer *const *bufs, int n, const void *args, size_t size, uint32_t gx,
                   uint32_t gy) {
    for (int i = 0; i < n; i++)
        if (!bufs[i]) return; /* failed already */
    if (!failed && host->record(dev, k, bufs, n, args, size, gx, gy)) fail_once();
}

static uint32_t dtype_code(kt_dtype t) { return t == KT_F32 ? KT_GPU_F32 : t == KT_F16 ? KT_GPU_F16 : KT_GPU_BF16; }
static uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* The bytes of L's codes (or dense values), and of its scales or its
 * biases (quantized only). */
static size_t weight_bytes(const kt_linear *l) {
    return (size_t)l->out * l->in * (l->quantized ? (size_t)l->bits : kt_dtype_bits(l->dtype)) / 8;
}
static size_t param_bytes(const kt_linear *l) {
    return (size_t)l->out * (size_t)(l->in / l->group_size) * (kt_dtype_bits(l->dtype) / 8);
}

/* ---- weight matrices: row chunks, imported or copied ---- */

/* Rows R0 .. R0+ROWS of a matrix, each part (codes or dense values, scales,
 * biases) in a buffer the kernels bind whole, from a byte offset in it. */
typedef struct {
    int r0, rows;
    kt_gpu_buffer w, s, b;
    uint32_t w_off, s_off, b_off;
} chunk;
typedef struct {
    const void *key; /* the matrix's codes */
    int n;
    chunk *c;
} matrix;
static matrix *matrices;
static size_t n_matrices;
enum { MAX_WEIGHT_BUFFER = 256 << 20 };
static kt_gpu_weight_stats stats;
static int import_refused; /* the device refused once: copy from then on */

/* The most bytes one weight buffer may have: what the device binds at once,
 * and 256 MiB, since the kernels count bits within a buffer in 32 bits. */
static size_t weight_limit(void) {
    return host->max_binding(dev) < MAX_WEIGHT_BUFFER ? host->max_binding(dev) : MAX_WEIGHT_BUFFER;
}

static void free_matrix(matrix *m) {
    for (int i = 0; i < m->n; i++) {
        if (m->c[i].w.handle) host->buffer_free(dev, &m->c[i].w);
        if (m->c[i].s.handle) host->buffer_free(dev, &m->c[i].s);
        if (m->c[i].b.handle) host->buffer_free(dev, &m->c[i].b);
    }
    free(m->c);
}

/* N bytes at P in a buffer of their own: the pages around them imported,
 * or a copy. *OFF: the byte where P is in it. */
static int span(const void *p, size_t n, kt_gpu_buffer *b, uint32_t *off) {
    const size_t A = import_refused ? 0 : host->import_alignment(dev);
    if (A) {
        const uintptr_t base = (uintptr_t)p / A * A, end = ((uintptr_t)p + n + A - 1) / A * A;
        if (end - base <= host->max_binding(dev)) {
            if (host->buffer_import(dev, (const void *)base, end - base, b) == 0) {
                *off = (uint32_t)((uintptr_t)p - base);
                stats.imported += n;
                return 0;
            }
            import_refused = 1;
        }
    }
    if (host->buffer_new(dev, n + 4, b)) return -1; /* a word past the data, as the kernels may read (gpu_abi.h) */
    memcpy(b->map, p, n);
    *off = 0;
    stats.copied += n;
    return 0;
}

/* L on the device, in as few chunks as the binding limit allows: made on
 * first use. */
static const matrix *matrix_of(const kt_linear *l) {
    for (size_t i = 0; i < n_matrices; i++)
        if (matrices[i].key == l->w) return &matrices[i];
    const size_t A = host->import_alignment(dev), rw = weight_bytes(l) / (size_t)l->out;
    const size_t rp = l->quantized ? param_bytes(l) / (size_t)l->out : 0, widest = rw > rp ? rw : rp;
    const size_t limit = weight_limit(), room = limit > 2 * A + 4 ? limit - 2 * A - 4 : 0;
    const int per = (int)(room / widest < (size_t)l->out ? room / widest : (size_t)l->out);
    if (per < 1) {
        kt_fail("a row of %zu bytes is more than %s binds at once (%zu)", widest, host->api, host->max_binding(dev));
        fail_once();
        return NULL;
    }
    matrix m = {l->w, (l->out + per - 1) / per, NULL};
    m.c = kt_xcalloc((size_t)m.n, sizeof *m.c);
    int rc = 0;
    for (int i = 0; i < m.n && rc == 0; i++) {
        chunk *c = &m.c[i];
        c->r0 = i * per;
        c->rows = l->out - c->r0 < per ? l->out - c->r0 : per;
        rc = span(l->w + (size_t)c->r0 * rw, (size_t)c->rows * rw, &c->w, &c->w_off);
        if (rc == 0 && l->quantized)
            rc = span(l->scales + (size_t)c->r0 * rp, (size_t)c->rows * rp, &c->s, &c->s_off) ||
                 span(l->biases + (size_t)c->r0 * rp, (size_t)c->rows * rp, &c->b, &c->b_off);
    }
    if (rc) {
        free_matrix(&m);
        fail_once();
        return NULL;
    }
    stats.matrices++, stats.chunks += (size_t)m.n;
    matrices = kt_xrealloc(matrices, (n_matrices + 1) * sizeof *matrices);
    matrices[n_matrices] = m;
    return &matrices[n_matrices++];
}

kt_gpu_weight_stats kt_gpu_weights(void) { return stats; }

/* rows beyond one dispatch dimension continue in the second */
static uint32_t gx_of(int rows) { return rows < 65535 ? (uint32_t)rows : 65535; }
static uint32_t gy_of(int rows) { return (uint32_t)((rows + 65534) / 65535); }

/* y = W x, one dispatch per chunk of W's rows */
static void matvec(const kt_linear *l, const float *x, float *y) {
    size_t xo, yo;
    const kt_gpu_buffer *X = source(x, (size_t)l->in * 4, &xo), *Y = dest(y, (size_t)l->out * 4, &yo);
    const matrix *m = matrix_of(l);
    for (int i = 0; m && i < m->n; i++) {
        const chunk *c = &m->c[i];
        const uint32_t y_off = (uint32_t)(yo / 4) + (uint32_t)c->r0;
        if (l->quantized) {
            kt_gpu_qmv_args a = {.rows = (uint32_t)c->rows, .cols = (uint32_t)l->in, .bits = (uint32_t)l->bits,
                                 .group_size = (uint32_t)l->group_size, .param_dtype = dtype_code(l->dtype),
                                 .w_offset = c->w_off, .s_offset = c->s_off, .b_offset = c->b_off, .y_offset = y_off,
                                 .x_offset = (uint32_t)(xo / 4)};
            const kt_gpu_buffer *bufs[] = {&c->w, &c->s, &c->b, X, Y};
            record(KT_GPU_QMV, bufs, 5, &a, sizeof a, gx_of(c->rows), gy_of(c->rows));
        } else {
            kt_gpu_mv_dense_args a = {.rows = (uint32_t)c->rows, .cols = (uint32_t)l->in, .w_dtype = dtype_code(l->dtype),
                                      .w_offset = c->w_off, .y_offset = y_off, .x_offset = (uint32_t)(xo / 4)};
            const kt_gpu_buffer *bufs[] = {&c->w, X, Y};
            record(KT_GPU_MV_DENSE, bufs, 3, &a, sizeof a, gx_of(c->rows), gy_of(c->rows));
        }
    }
}

/* Y[t] = W X[t] for the T tokens of a prompt: qmm (quantized W) or
 * mm_dense (the dense original) over blocks of KT_QMM_MAX_TOKENS tokens,
 * each weight read once per block, where W is in one chunk; else (a matrix
 * split into chunks, whose rows those kernels cannot stride) one matvec per
 * token. */
static void matmul(const kt_linear *l, const float *x, int t, float *y) {
    size_t xo, yo;
    const kt_gpu_buffer *X = source(x, (size_t)t * l->in * 4, &xo), *Y = dest(y, (size_t)t * l->out * 4, &yo);
    const matrix *m = matrix_of(l);
    if (!m) return;
    if (m->n > 1) { /* the whole of X and Y are regions now: each row is found in them */
        for (int i = 0; i < t; i++) matvec(l, x + (size_t)i * l->in, y + (size_t)i * l->out);
        return;
    }
    const chunk *c = &m->c[0];
    const kt_gpu_buffer *bufs[] = {&c->w, &c->s, &c->b, X, Y}, *dense[] = {&c->w, X, Y};
    for (int t0 = 0; t0 < t; t0 += KT_QMM_MAX_TOKENS) {
        const int n = t - t0 < KT_QMM_MAX_TOKENS ? t - t0 : KT_QMM_MAX_TOKENS;
        const uint32_t x_off = (uint32_t)(xo / 4 + (size_t)t0 * l->in), y_off = (uint32_t)(yo / 4 + (size_t)t0 * l->out);
        if (!l->quantized) {
            kt_gpu_mm_dense_args a = {.rows = (uint32_t)l->out, .cols = (uint32_t)l->in, .w_dtype = dtype_code(l->dtype),
                                      .w_offset = c->w_off, .tokens = (uint32_t)n, .x_offset = x_off, .y_offset = y_off};
            record(KT_GPU_MM_DENSE, dense, 3, &a, sizeof a, gx_of(l->out), gy_of(l->out));
            continue;
        }
        kt_gpu_qmm_args a = {.rows = (uint32_t)l->out, .cols = (uint32_t)l->in, .bits = (uint32_t)l->bits,
                             .group_size = (uint32_t)l->group_size, .param_dtype = dtype_code(l->dtype),
                             .w_offset = c->w_off, .s_offset = c->s_off, .b_offset = c->b_off, .tokens = (uint32_t)n,
                             .x_offset = x_off, .y_offset = y_off};
        record(KT_GPU_QMM, bufs, 5, &a, sizeof a, gx_of(l->out), gy_of(l->out));
    }
}

/* row R of W (the embedding lookup), from the chunk that holds it */
static void row(const kt_linear *l, int r, float *out) {
    size_t yo;
    const kt_gpu_buffer *Y = dest(out, (size_t)l->in * 4, &yo);
    const matrix *m = matrix_of(l);
    if (!m) return;
    const chunk *c = &m->c[0];
    while (r >= c->r0 + c->rows && c < m->c + m->n - 1) c++;
    const uint32_t groups = (uint32_t)(l->in + KT_QROW_THREADS - 1) / KT_QROW_THREADS, rr = (uint32_t)(r - c->r0);
    if (l->quantized) {
        kt_gpu_qrow_args a = {.row = rr, .cols = (uint32_t)l->in, .bits = (uint32_t)l->bits,
                              .group_size = (uint32_t)l->group_size, .param_dtype = dtype_code(l->dtype),
                              .w_offset = c->w_off, .s_offset = c->s_off, .b_offset = c->b_off,
                              .y_offset = (uint32_t)(yo / 4)};
        const kt_gpu_buffer *bufs[] = {&c->w, &c->s, &c->b, Y};
        record(KT_GPU_QROW, bufs, 4, &a, sizeof a, groups, 1);
    } else {
        kt_gpu_drow_args a = {.row = rr, .cols = (uint32_t)l->in, .w_dtype = dtype_code(l->dtype), .w_offset = c->w_off,
                              .y_offset = (uint32_t)(yo / 4)};
        const kt_gpu_buffer *bufs[] = {&c->w, Y};
        record(KT_GPU_DROW, bufs, 2, &a, sizeof a, groups, 1);
    }
}

static void rmsnorm(float *out, const float *x, const kt_vec *w, int n, float eps) {
    size_t o1, o2, o3;
    const kt_gpu_buffer *X = source(x, (size_t)n * 4, &o1), *Y = dest(out, (size_t)n * 4, &o3);
    const kt_gpu_buffer *W = w && w->f ? source(w->f, (size_t)n * 4, &o2) : NULL;
    if (!W) {
        kt_fail("a norm without float weights");
        fail_once();
        return;
    }
    kt_gpu_rmsnorm_args a = {.n = (uint32_t)n, .eps_bits = fbits(eps), .x_offset = (uint32_t)(o1 / 4),
                             .y_offset = (uint32_t)(o3 / 4)};
    const kt_gpu_buffer *bufs[] = {X, W, Y};
    record(KT_GPU_RMSNORM, bufs, 3, &a, sizeof a, 1, 1);
}

/* A layer's dt_bias, A_log and D side by side, as mamba_ssm reads them. */
static const kt_gpu_buffer *mamba_params(const kt_layer *L, int heads) {
    for (size_t i = 0; i < n_regions; i++)
        if (regions[i]->key == L) return &regions[i]->buf;
    kt_gpu_buffer b;
    if (host->buffer_new(dev, (size_t)3 * heads * 4, &b)) {
        fail_once();
        return NULL;
    }
    float *p = b.map;
    for (int h = 0; h < heads; h++)
        p[h] = kt_vec_at(&L->dt_bias, h), p[heads + h] = kt_vec_at(&L->A_log, h), p[2 * heads + h] = kt_vec_at(&L->D, h);
    region *r = add_region(NULL, 0, &b);
    r->key = L;
    return &r->buf;
}

static void mamba_step(const kt_config *c, const kt_layer *L, float *conv, float *ssm, const float *proj, float *y,
                       float *tmp) {
    const int I = c->m_heads * c->m_head_dim, dim = kt_config_conv_dim(c), K = c->conv;
    size_t o, po, yo;
    const kt_gpu_buffer *P = source(proj, (size_t)(I + dim + c->m_heads) * 4, &po);
    const kt_gpu_buffer *Win = dest(conv, (size_t)(K - 1) * dim * 4, &o);
    const kt_gpu_buffer *Cw = source(L->conv_w.f, (size_t)dim * K * 4, &o), *Cb = source(L->conv_b.f, (size_t)dim * 4, &o);
    const kt_gpu_buffer *Xbc = dest(tmp, (size_t)dim * 4, &o), *St = dest(ssm, (size_t)I * c->state * 4, &o);
    const kt_gpu_buffer *Par = mamba_params(L, c->m_heads), *Y = dest(y, (size_t)I * 4, &yo);
    const kt_gpu_buffer *Gn = source(L->gnorm.f, (size_t)I * 4, &o);
    kt_gpu_mamba_args a = {(uint32_t)c->m_heads, (uint32_t)c->m_head_dim, (uint32_t)c->n_groups, (uint32_t)c->state,
                           (uint32_t)K, fbits(c->dt_min), fbits(c->dt_max), fbits(c->eps), (uint32_t)(po / 4),
                           (uint32_t)(yo / 4)};
    const kt_gpu_buffer *conv_bufs[] = {P, Win, Cw, Cb, Xbc}, *ssm_bufs[] = {P, Xbc, St, Par, Y}, *gate_bufs[] = {P, Gn, Y};
    record(KT_GPU_MAMBA_CONV, conv_bufs, 5, &a, sizeof a, (uint32_t)(dim + KT_MAMBA_THREADS - 1) / KT_MAMBA_THREADS, 1);
    record(KT_GPU_MAMBA_SSM, ssm_bufs, 5, &a, sizeof a, (uint32_t)(I + KT_MAMBA_THREADS - 1) / KT_MAMBA_THREADS, 1);
    record(KT_GPU_MAMBA_GATE, gate_bufs, 3, &a, sizeof a, (uint32_t)c->n_groups, 1);
}

static void attend_one(const kt_config *c, const float *kc, const float *vc, int pos, const float *q, float *o) {
    const size_t kvd = (size_t)c->kv_heads * c->head_dim, need = (size_t)c->heads * (pos + 1) * 4;
    if (scores.size < need) { /* earlier dispatches of this token may hold the old one: run them first */
        if (scores.handle && host->submit(dev)) fail_once();
        if (scores.handle) host->buffer_free(dev, &scores);
        if (host->buffer_new(dev, need < 65536 ? 65536 : 2 * need, &scores)) fail_once();
    }
    size_t off, qo, oo;
    const kt_gpu_buffer *Q = source(q, (size_t)c->heads * c->head_dim * 4, &qo);
    const kt_gpu_buffer *K = source(kc, (size_t)(pos + 1) * kvd * 4, &off), *V = source(vc, (size_t)(pos + 1) * kvd * 4, &off);
    const kt_gpu_buffer *O = dest(o, (size_t)c->heads * c->head_dim * 4, &oo);
    kt_gpu_attend_args a = {(uint32_t)c->heads, (uint32_t)c->kv_heads, (uint32_t)c->head_dim, (uint32_t)pos,
                            (uint32_t)(qo / 4), (uint32_t)(oo / 4)};
    const kt_gpu_buffer *bufs[] = {Q, K, V, scores.handle ? &scores : NULL, O};
    record(KT_GPU_ATTEND, bufs, 5, &a, sizeof a, (uint32_t)c->heads, 1);
}

/* A prompt's tokens are recorded one after another into the submission:
 * the device runs them in order, each step's kernels over all heads. */
static void mamba_steps(const kt_config *c, const kt_layer *L, float *conv, float *ssm, const float *proj, int n,
                        float *y, float *tmp) {
    const size_t I = (size_t)c->m_heads * c->m_head_dim, row = I + kt_config_conv_dim(c) + c->m_heads;
    for (int t = 0; t < n; t++) mamba_step(c, L, conv, ssm, proj + t * row, y + t * I, tmp);
}

static void attend(const kt_config *c, const float *kc, const float *vc, int pos, int n, const float *q, float *o,
                   float *tmp) {
    (void)tmp;
    const size_t Q = (size_t)c->heads * c->head_dim;
    for (int t = 0; t < n; t++) attend_one(c, kc, vc, pos + t, q + t * Q, o + t * Q);
}

static void ewise(uint32_t op, float *y, const float *a, int n) {
    size_t yo, ao = 0;
    const kt_gpu_buffer *Y = dest(y, (size_t)n * 4, &yo), *A = a ? source(a, (size_t)n * 4, &ao) : Y;
    kt_gpu_ewise_args args = {(uint32_t)n, op, (uint32_t)(yo / 4), (uint32_t)(ao / 4)};
    const kt_gpu_buffer *bufs[] = {Y, A};
    record(KT_GPU_EWISE, bufs, 2, &args, sizeof args, (uint32_t)(n + KT_EWISE_THREADS - 1) / KT_EWISE_THREADS, 1);
}

static void relu2(float *u, int n) { ewise(KT_EWISE_RELU2, u, NULL, n); }
static void add(float *x, const float *y, int n) { ewise(KT_EWISE_ADD, x, y, n); }
/* ---- MoE: the router and the experts on the device ---- */

/* A layer's experts packed one after another in one buffer each for codes
 * (or dense values), scales and biases, so that a kernel can pick the one
 * the router chose: made on first use, keyed by the layer's array. */
typedef struct {
    const kt_linear *key;
    kt_gpu_buffer w, s, b;
} packed_experts;
static packed_experts *packed;
static size_t n_packed;

static int pack(kt_gpu_buffer *out, const uint8_t *const *parts, int n, size_t each) {
    if ((size_t)n * each > weight_limit())
        return kt_fail("a MoE layer's %d experts take %zu bytes, more than %s binds at once (%zu)", n, (size_t)n * each,
                       host->api, weight_limit());
    if (host->buffer_new(dev, (size_t)n * each + 4, out)) return -1;
    for (int e = 0; e < n; e++) memcpy((uint8_t *)out->map + (size_t)e * each, parts[e], each);
    stats.copied += (size_t)n * each;
    return 0;
}

static const packed_experts *experts_of(const kt_linear *ex, int n) {
    for (size_t i = 0; i < n_packed; i++)
        if (packed[i].key == ex) return &packed[i];
    const uint8_t **parts = kt_xmalloc((size_t)n * sizeof *parts);
    packed_experts p = {ex, {0}, {0}, {0}};
    int rc = 0;
    for (int e = 0; e < n; e++) parts[e] = ex[e].w;
    rc |= pack(&p.w, parts, n, weight_bytes(ex));
    if (ex->quantized) {
        for (int e = 0; e < n; e++) parts[e] = ex[e].scales;
        rc |= pack(&p.s, parts, n, param_bytes(ex));
        for (int e = 0; e < n; e++) parts[e] = ex[e].biases;
        rc |= pack(&p.b, parts, n, param_bytes(ex));
    }
    free(parts);
    if (rc) {
        fail_once();
        return NULL;
    }
    packed = kt_xrealloc(packed, (n_packed + 1) * sizeof *packed);
    packed[n_packed] = p;
    return &packed[n_packed++];
}

static void route(const kt_config *c, const kt_vec *bias, float *score, int *chosen, float *weight, float *scratch) {
    size_t o;
    const int E = c->n_experts, K = c->top_k, G = c->n_group > 0 ? c->n_group : 1;
    const kt_gpu_buffer *S = dest(score, (size_t)E * 4, &o), *B = bias->f ? source(bias->f, (size_t)E * 4, &o) : NULL;
    const kt_gpu_buffer *C = dest(chosen, (size_t)K * 4, &o), *W = dest(weight, (size_t)K * 4, &o);
    const kt_gpu_buffer *X = dest(scratch, (size_t)(E + G + K) * 4, &o);
    if (!B) {
        kt_fail("a MoE gate without float correction biases");
        fail_once();
        return;
    }
    kt_gpu_moe_route_args a = {(uint32_t)E, (uint32_t)K, (uint32_t)c->n_group, (uint32_t)c->topk_group,
                               (uint32_t)c->norm_topk, fbits(c->routed_scale)};
    const kt_gpu_buffer *bufs[] = {S, B, C, W, X};
    record(KT_GPU_MOE_ROUTE, bufs, 5, &a, sizeof a, 1, 1);
}

static void expert(const kt_linear *ex, int n, const int *chosen, int k, const float *x, float *y) {
    size_t xo, yo, co;
    const packed_experts *p = experts_of(ex, n);
    const kt_gpu_buffer *X = source(x, (size_t)ex->in * 4, &xo), *Y = dest(y, (size_t)ex->out * 4, &yo);
    const kt_gpu_buffer *C = source(chosen, (size_t)(k + 1) * 4, &co);
    if (!p) return;
    if (ex->quantized) {
        kt_gpu_qmv_expert_args a = {.rows = (uint32_t)ex->out, .cols = (uint32_t)ex->in, .bits = (uint32_t)ex->bits,
                                    .group_size = (uint32_t)ex->group_size, .param_dtype = dtype_code(ex->dtype),
                                    .y_offset = (uint32_t)(yo / 4), .slot = (uint32_t)k,
                                    .expert_bytes = (uint32_t)weight_bytes(ex), .expert_param_bytes = (uint32_t)param_bytes(ex),
                                    .x_offset = (uint32_t)(xo / 4)};
        const kt_gpu_buffer *bufs[] = {&p->w, &p->s, &p->b, X, Y, C};
        record(KT_GPU_QMV_EXPERT, bufs, 6, &a, sizeof a, gx_of(ex->out), gy_of(ex->out));
    } else {
        kt_gpu_mv_dense_expert_args a = {.rows = (uint32_t)ex->out, .cols = (uint32_t)ex->in,
                                         .w_dtype = dtype_code(ex->dtype), .y_offset = (uint32_t)(yo / 4),
                                         .slot = (uint32_t)k, .expert_bytes = (uint32_t)weight_bytes(ex),
                                         .x_offset = (uint32_t)(xo / 4)};
        const kt_gpu_buffer *bufs[] = {&p->w, X, Y, C};
        record(KT_GPU_MV_DENSE_EXPERT, bufs, 4, &a, sizeof a, gx_of(ex->out), gy_of(ex->out));
    }
}

static void weigh(float *x, const float *weight, int k, const float *y, int n, int first) {
    size_t o, xo, yo;
    const kt_gpu_buffer *X = dest(x, (size_t)n * 4, &xo), *Y = source(y, (size_t)n * 4, &yo);
    const kt_gpu_buffer *W = source(weight, (size_t)(k + 1) * 4, &o);
    kt_gpu_weigh_args a = {(uint32_t)n, (uint32_t)k, (uint32_t)first, (uint32_t)(xo / 4), (uint32_t)(yo / 4)};
    const kt_gpu_buffer *bufs[] = {X, Y, W};
    record(KT_GPU_WEIGH, bufs, 3, &a, sizeof a, (uint32_t)(n + KT_EWISE_THREADS - 1) / KT_EWISE_THREADS, 1);
}

static int int8_ok(const kt_linear *l) {
    (void)l;
    return 0;
}

static int sync_token(void) {
    if (failed) {
        failed = 0;
        host->submit(dev); /* run or drop what is recorded, so the next token starts clean */
        for (size_t i = 0; i < n_regions; i++) regions[i]->live = 0;
        return -1;
    }
    if (host->submit(dev)) return kt_fail_context("%s backend", host->api);
    for (size_t i = 0; i < n_regions; i++)
        if (regions[i]->mirror && regions[i]->live) {
            memcpy((void *)regions[i]->host, regions[i]->buf.map, regions[i]->size);
            regions[i]->live = 0;
        }
    return 0;
}

static void *alloc(size_t bytes) {
    kt_gpu_buffer b;
    if (bytes > host->max_binding(dev)) {
        kt_fail("a state buffer of %zu bytes is more than %s binds at once (%zu): a shorter --context needs less",
                bytes, host->api, host->max_binding(dev));
        kt_fail_context("%s backend", host->api);
        return NULL;
    }
    if (host->buffer_new(dev, bytes ? bytes : 4, &b)) {
        kt_fail_context("%s backend", host->api);
        return NULL;
    }
    memset(b.map, 0, bytes);
    return (void *)add_region(b.map, bytes, &b)->host;
}

static void release(void *p) {
    for (size_t i = 0; i < n_regions; i++)
        if (regions[i]->host == p && !regions[i]->mirror && !regions[i]->key) {
            host->submit(dev);
            host->buffer_free(dev, &regions[i]->buf);
            free(regions[i]);
            regions[i] = regions[--n_regions];
            return;
        }
}

/* Weights, vectors, packed parameters and mirrors are keyed by the host's
 * pointers, which mean nothing once the model is unmapped (the next model
 * may be mapped at the same addresses): they all go; alloc()'d buffers
 * stay, their owners release them. */
static void unload(void) {
    host->submit(dev);
    size_t kept = 0;
    for (size_t i = 0; i < n_regions; i++) {
        region *r = regions[i];
        if (!r->mirror && !r->key && r->host == r->buf.map) {
            regions[kept++] = r;
            continue;
        }
        host->buffer_free(dev, &r->buf);
        free(r);
    }
    n_regions = kept;
    for (size_t i = 0; i < n_matrices; i++) free_matrix(&matrices[i]);
    free(matrices);
    matrices = NULL, n_matrices = 0;
    for (size_t i = 0; i < n_packed; i++) {
        host->buffer_free(dev, &packed[i].w);
        if (packed[i].s.handle) host->buffer_free(dev, &packed[i].s), host->buffer_free(dev, &packed[i].b);
    }
    free(packed);
    packed = NULL, n_packed = 0;
}

static kt_backend table = {
    .name = "gpu", .matvec = matvec, .matmul = matmul, .row = row, .rmsnorm = rmsnorm, .mamba_steps = mamba_steps, .attend = attend,
    .int8_ok = int8_ok, .relu2 = relu2, .add = add, .route = route, .expert = expert, .weigh = weigh,
    .sync = sync_token, .alloc = alloc, .release = release, .unload = unload,
    /* no integer activations */
};
static char name[320];

const kt_backend *kt_gpu_backend(const kt_gpu_host *h, const char *want) {
    if (dev) {
        if (h == host) return &table;
        kt_fail("the %s backend is open already: one GPU backend per process", host->api);
        return NULL;
    }
    if (!(dev = h->open(want))) return NULL;
    host = h;
    snprintf(name, sizeof name, "%s (%s)", h->api, h->device_name(dev));
    table.name = name;
    table.max_buffer = h->max_binding(dev);
    return &table;
}

/* The hosts this build has, NULL-terminated, in --backend auto's order:
 * Metal first (macOS), then Vulkan. */
static const kt_gpu_host *const *built_hosts(void) {
    static const kt_gpu_host *hosts[3];
    int n = 0;
#ifdef KT_HAVE_METAL
    hosts[n++] = kt_gpu_metal();
#endif
#ifdef KT_HAVE_VULKAN
    hosts[n++] = kt_gpu_vulkan();
#endif
    hosts[n] = NULL;
    return hosts;
}

const kt_gpu_host *kt_gpu_host_named(const char *api) {
    for (const kt_gpu_host *const *h = built_hosts(); *h; h++)
        if (!strcmp((*h)->api, api)) return *h;
    kt_fail("this build has no %s host (%s)", api,
            !strcmp(api, "metal") ? "Metal is built on macOS only"
                                  : "glslangValidator and the Vulkan headers were missing at build time: "
                                    "scripts/bootstrap.sh --tests installs them");
    return NULL;
}

const kt_backend *kt_gpu_open(const char *api) {
    const kt_gpu_host *h = kt_gpu_host_named(api);
    return h ? kt_gpu_backend(h, getenv(h->device_env)) : NULL;
}

/* lavapipe is a CPU device, which open(NULL) never picks. A device that
 * fails the self-check is closed again: auto never runs a model on kernels
 * that computed differently from the CPU's. */
const kt_backend *kt_gpu_auto(char **note) {
    *note = NULL;
    for (const kt_gpu_host *const *h = built_hosts(); *h; h++) {
        const kt_backend *be = (*h)->present() ? kt_gpu_backend(*h, NULL) : NULL;
        if (!be) continue;
        if (kt_gpu_self_check(host, dev) == 0) return be;
        free(*note);
        *note = kt_xstrdup(kt_errmsg());
        host->close(dev);
        dev = NULL, host = NULL;
    }
    return NULL;
}
