/* forward.c - the Nemotron-H forward pass, layer by layer.
 *
 * Per layer: x += mixer(rmsnorm(x)), the mixer chosen by the layer's letter
 * in hybrid_override_pattern:
 *   M  Mamba-2: in_proj -> one recurrent step (backend mamba_steps, the
 *      equations in runtime/cpu/mamba2.c) -> out_proj;
 *   *  attention: q, k, v projections, k and v appended to the cache,
 *      attention over it (no positional encoding), o_proj;
 *   -  MLP: down(relu(up(x))^2);
 *   E  MoE: the top-k experts by gate score, each an MLP, weighted, plus the
 *      shared expert (see moe()).
 * then rmsnorm(norm_f) and lm_head. The same equations as mlx-lm's
 * nemotron_h.py. All arithmetic goes through the backend (backend.h).
 */
#include "model.h"
#include "backend.h"
#include "affine.h"
#include "error.h"
#include "strbuf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The scratch of one pass, sized for one token; a state owns one, so a
 * token's pass allocates nothing. (The prompt path allocates its N-token
 * buffers once per call.) */
struct kt_work {
    float *x, *h, *o, *ey;         /* hidden-size vectors */
    float *proj, *y;               /* Mamba-2: in_proj output, the step's output */
    float *q, *att;                /* attention: queries, output */
    float *u;                      /* MLP and expert intermediates */
    float *score, *sel, *wk;       /* MoE: gate scores, route scratch, expert factors */
    int *chosen;
    float *tmp;                    /* the backend's: conv window or attention scores */
    float *spare;                  /* logits nobody reads (a prompt token by token), or NULL */
    kt_qact qa;                    /* the current input, quantized (KT_ACT_INT8) */
    kt_qact qb;                    /* the prompt path's: N inputs at once */
};

static int proj_size(const kt_config *c) {
    int I = c->m_heads * c->m_head_dim;
    return I + I + 2 * c->n_groups * c->state + c->m_heads;
}

static int max3(int a, int b, int c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }

/* A zeroed buffer the backend's device can reach (backend.h); NULL when
 * it cannot be had (the callers check: a context too large for the memory
 * is one line, not a crash). */
static void *buffer(const kt_backend *be, size_t bytes) { return be->alloc ? be->alloc(bytes) : calloc(1, bytes); }
static void release(const kt_backend *be, void *p) {
    if (be->release) be->release(p);
    else free(p);
}

static void work_free(const kt_backend *be, kt_work *w);

static kt_work *work_new(const kt_backend *be, const kt_config *c, int max_pos) {
    kt_work *w = kt_xcalloc(1, sizeof *w);
    const int H = c->hidden, E = c->n_experts > 0 ? c->n_experts : 1, K = c->top_k > 0 ? c->top_k : 1;
    w->x = buffer(be, (size_t)H * sizeof(float));
    w->h = buffer(be, (size_t)H * sizeof(float));
    w->o = buffer(be, (size_t)H * sizeof(float));
    w->ey = buffer(be, (size_t)H * sizeof(float));
    w->proj = buffer(be, (size_t)proj_size(c) * sizeof(float));
    w->y = buffer(be, (size_t)c->m_heads * c->m_head_dim * sizeof(float));
    w->q = buffer(be, (size_t)c->heads * c->head_dim * sizeof(float));
    w->att = buffer(be, (size_t)c->heads * c->head_dim * sizeof(float));
    w->u = buffer(be, (size_t)max3(c->intermediate, c->moe_inter, c->moe_shared_inter) * sizeof(float));
    w->score = buffer(be, (size_t)E * sizeof(float));
    w->sel = buffer(be, (size_t)(E + (c->n_group > 0 ? c->n_group : 1) + K) * sizeof(float)); /* route()'s scratch */
    w->wk = buffer(be, (size_t)K * sizeof(float));
    w->chosen = buffer(be, (size_t)K * sizeof(int));
    w->tmp = buffer(be, (size_t)(kt_config_conv_dim(c) > max_pos + 1 ? kt_config_conv_dim(c) : max_pos + 1) * sizeof(float));
    if (!be->matmul) w->spare = buffer(be, (size_t)c->vocab * sizeof(float));
    void *bufs[] = {w->x, w->h, w->o, w->ey, w->proj, w->y, w->q, w->att, w->u, w->score, w->sel, w->wk, w->chosen, w->tmp};
    int ok = be->matmul || w->spare;
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) ok &= bufs[i] != NULL;
    if (!ok) {
        work_free(be, w);
        return NULL;
    }
    return w;
}

static void work_free(const kt_backend *be, kt_work *w) {
    if (!w) return;
    void *bufs[] = {w->x, w->h, w->o, w->ey, w->proj, w->y, w->q, w->att, w->u, w->score, w->sel,
                    w->wk, w->chosen, w->tmp, w->spare};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (bufs[i]) release(be, bufs[i]);
    kt_qact_free(&w->qa);
    kt_qact_free(&w->qb);
    free(w);
}

int kt_state_init(kt_state *s, const kt_model *m, int max_pos) {
    const kt_config *c = &m->cfg;
    memset(s, 0, sizeof *s);
    s->max_pos = max_pos;
    int L = c->n_layers, I = c->m_heads * c->m_head_dim, conv_dim = I + 2 * c->n_groups * c->state;
    s->conv = kt_xcalloc((size_t)L, sizeof *s->conv);
    s->ssm = kt_xcalloc((size_t)L, sizeof *s->ssm);
    s->k = kt_xcalloc((size_t)L, sizeof *s->k);
    s->v = kt_xcalloc((size_t)L, sizeof *s->v);
    int ok = 1;
    const size_t kv_layer = (size_t)max_pos * c->kv_heads * c->head_dim * sizeof(float);
    for (int i = 0; i < L && ok; i++) {
        if (m->layers[i].kind == 'M') {
            s->conv[i] = buffer(m->backend, ((size_t)(c->conv - 1) * conv_dim + 1) * sizeof(float));
            s->ssm[i] = buffer(m->backend, (size_t)c->m_heads * c->m_head_dim * c->state * sizeof(float));
            ok = s->conv[i] && s->ssm[i];
        } else if (m->layers[i].kind == '*') {
            s->k[i] = buffer(m->backend, kv_layer);
            s->v[i] = buffer(m->backend, kv_layer);
            ok = s->k[i] && s->v[i];
        }
    }
    if (ok) ok = (s->work = work_new(m->backend, c, max_pos)) != NULL;
    if (!ok) {
        size_t kv = 0;
        for (int i = 0; i < L; i++) kv += m->layers[i].kind == '*' ? 2 * kv_layer : 0;
        kt_state_free(s, m);
        return kt_fail_io("cannot allocate the state for a context of %d tokens on the %s backend (its attention cache "
                       "alone is %.1f MiB); lower --context", max_pos, m->backend->name, (double)kv / 1048576.0);
    }
    return 0;
}

void kt_state_free(kt_state *s, const kt_model *m) {
    for (int i = 0; s->conv && i < m->cfg.n_layers; i++) {
        if (s->conv[i]) release(m->backend, s->conv[i]);
        if (s->ssm[i]) release(m->backend, s->ssm[i]);
        if (s->k[i]) release(m->backend, s->k[i]);
        if (s->v[i]) release(m->backend, s->v[i]);
    }
    free(s->conv);
    free(s->ssm);
    free(s->k);
    free(s->v);
    work_free(m->backend, s->work);
    memset(s, 0, sizeof *s);
}

/* The input X of the matrices that follow: quantized once when the model
 * runs with integer activations, so every matrix reading X shares it. */
static void input(const kt_model *m, kt_work *w, const float *x, int n) {
    if (m->activations == KT_ACT_INT8 && m->backend->quantize && n % KT_QBLOCK == 0) m->backend->quantize(&w->qa, x, n);
    else w->qa.n = 0;
}

/* Y = W X for the X last given to input(). */
static void apply(const kt_model *m, kt_work *w, const kt_linear *l, const float *x, float *y) {
    const kt_backend *be = m->backend;
    if (w->qa.n == l->in && be->int8_ok(l)) be->matvec_q(l, &w->qa, y);
    else be->matvec(l, x, y);
}

/* The same for the prompt path: N inputs of IN values, quantized together. */
static void binput(const kt_model *m, kt_work *w, const float *x, int n, int in) {
    if (m->activations == KT_ACT_INT8 && m->backend->quantize && in % KT_QBLOCK == 0) m->backend->quantize(&w->qb, x, n * in);
    else w->qb.n = 0;
}

static void bapply(const kt_model *m, kt_work *w, const kt_linear *l, const float *x, int n, float *y) {
    const kt_backend *be = m->backend;
    if (w->qb.n == n * l->in && be->int8_ok(l)) be->matmul_q(l, &w->qb, n, y);
    else be->matmul(l, x, n, y);
}

static void mamba(const kt_model *m, kt_work *w, const kt_layer *L, float *conv_state, float *ssm, const float *x, float *out) {
    const kt_config *c = &m->cfg;
    input(m, w, x, c->hidden);
    apply(m, w, &L->in_proj, x, w->proj);
    m->backend->mamba_steps(c, L, conv_state, ssm, w->proj, 1, w->y, w->tmp);
    input(m, w, w->y, L->out_proj.in);
    apply(m, w, &L->out_proj, w->y, out);
}

static void attention(const kt_model *m, kt_work *w, const kt_layer *L, float *kc, float *vc, int pos, const float *x, float *out) {
    const kt_config *c = &m->cfg;
    const int KVD = c->kv_heads * c->head_dim;
    input(m, w, x, c->hidden);
    apply(m, w, &L->q, x, w->q);
    apply(m, w, &L->k, x, kc + (size_t)pos * KVD);
    apply(m, w, &L->v, x, vc + (size_t)pos * KVD);
    m->backend->attend(c, kc, vc, pos, 1, w->q, w->att, w->tmp);
    input(m, w, w->att, L->o.in);
    apply(m, w, &L->o, w->att, out);
}

static void mlp(const kt_model *m, kt_work *w, const kt_layer *L, const float *x, float *out) {
    const kt_config *c = &m->cfg;
    input(m, w, x, c->hidden);
    apply(m, w, &L->up, x, w->u);
    m->backend->relu2(w->u, c->intermediate);
    input(m, w, w->u, c->intermediate);
    apply(m, w, &L->down, w->u, out);
}

/* Expert CHOSEN[K] of EXPERTS applied to X: on a device that holds the
 * choice itself, or here. */
static void expert(const kt_model *m, kt_work *w, const kt_linear *experts, const int *chosen, int k, const float *x,
                   float *y) {
    if (m->backend->expert) m->backend->expert(experts, m->cfg.n_experts, chosen, k, x, y);
    else apply(m, w, &experts[chosen[k]], x, y);
}

/* MoE: the gate's scores choose top_k experts (the rule is the backend's
 * route(), runtime/cpu/moe_route.c); each chosen expert is an MLP with
 * relu^2, the outputs weighted by the route's factors and summed; the
 * shared expert is added. */
static void moe(const kt_model *m, kt_work *w, const kt_layer *L, const float *x, float *out) {
    const kt_config *c = &m->cfg;
    const kt_backend *be = m->backend;
    input(m, w, x, c->hidden);
    apply(m, w, &L->gate, x, w->score);
    be->route(c, &L->e_bias, w->score, w->chosen, w->wk, w->sel);
    /* every expert's fc1 reads x; each fc2 reads its own intermediate */
    float *u = w->u, *y = w->ey;
    for (int k = 0; k < c->top_k; k++) {
        input(m, w, x, c->hidden);
        expert(m, w, L->fc1, w->chosen, k, x, u);
        be->relu2(u, c->moe_inter);
        input(m, w, u, c->moe_inter);
        expert(m, w, L->fc2, w->chosen, k, u, y);
        be->weigh(out, w->wk, k, y, c->hidden, k == 0);
    }
    if (L->has_shared) {
        input(m, w, x, c->hidden);
        apply(m, w, &L->sh_up, x, u);
        be->relu2(u, c->moe_shared_inter);
        input(m, w, u, c->moe_shared_inter);
        apply(m, w, &L->sh_down, u, y);
        be->add(out, y, c->hidden);
    }
}

/* Logits that are not all finite end every use of the model (generation
 * would pick <unk> forever, perplexity would print NaN): one line naming the
 * first position, rows of V logits from position POS0 on. */
static int check_logits(const float *logits, int V, int rows, int pos0) {
    for (int r = 0; r < rows; r++) {
        const float *l = logits + (size_t)r * V;
        for (int i = 0; i < V; i++)
            if (!isfinite(l[i]))
                return kt_fail("the logits at position %d are not finite (logit %d is %s): a weight or an "
                               "activation of the model is NaN or infinite (kintsugi-verify checks the weights)",
                               pos0 + r, i, isnan(l[i]) ? "NaN" : l[i] > 0 ? "+Infinity" : "-Infinity");
    }
    return 0;
}

int kt_forward(const kt_model *m, kt_state *s, int32_t token, float *logits) {
    const kt_config *c = &m->cfg;
    const kt_backend *be = m->backend;
    kt_work *w = s->work;
    if (token < 0 || token >= c->vocab) return kt_fail("token id %d is outside the vocabulary (%d)", token, c->vocab);
    if (s->pos >= s->max_pos) return kt_fail("context full (%d tokens)", s->max_pos);
    float *x = w->x, *h = w->h, *o = w->o;
    be->row(&m->embed, token, x);
    for (int i = 0; i < c->n_layers; i++) {
        const kt_layer *L = &m->layers[i];
        be->rmsnorm(h, x, &L->norm, c->hidden, c->eps);
        if (L->kind == 'M') mamba(m, w, L, s->conv[i], s->ssm[i], h, o);
        else if (L->kind == '*') attention(m, w, L, s->k[i], s->v[i], s->pos, h, o);
        else if (L->kind == 'E') moe(m, w, L, h, o);
        else mlp(m, w, L, h, o);
        be->add(x, o, c->hidden);
    }
    be->rmsnorm(h, x, &m->norm_f, c->hidden, c->eps);
    input(m, w, h, c->hidden);
    apply(m, w, &m->lm_head, h, logits);
    if (be->sync && be->sync()) return -1;
    s->pos++;
    return check_logits(logits, c->vocab, 1, s->pos - 1);
}

/* The prompt at once: every layer runs its projections as matrix-matrix
 * work over all N tokens (each weight row is read and dequantized once per
 * prompt, not once per token); only the recurrences (conv, SSM, attention
 * over the cache) go token by token. Same results as N calls of kt_forward
 * up to the order of float additions. The prompt's matrices of activations
 * come from the backend (a device backend keeps them on the device), and a
 * call on one token names its row; a device runs the whole prompt as one
 * submission. */
static int forward_tokens(const kt_model *m, kt_state *s, const int32_t *tokens, int n, float *logits, int every) {
    const kt_config *c = &m->cfg;
    const kt_backend *be = m->backend;
    kt_work *w = s->work;
    const int H = c->hidden;
    if (n <= 0) return kt_fail("no tokens");
    if (s->pos + n > s->max_pos) return kt_fail("context full (%d tokens)", s->max_pos);
    const size_t widest = (size_t)max3(max3(H, proj_size(c), c->m_heads * c->m_head_dim),
                                       max3(c->heads * c->head_dim, c->intermediate, every ? c->vocab : 0), 1) * sizeof(float);
    if (be->matmul && be->max_buffer && (size_t)n * widest > be->max_buffer) { /* in blocks that fit the device */
        const int block = be->max_buffer / widest > 0 ? (int)(be->max_buffer / widest) : 1;
        for (int t = 0; t < n; t += block)
            if (forward_tokens(m, s, tokens + t, n - t < block ? n - t : block, every ? logits + (size_t)t * c->vocab : logits, every))
                return -1;
        return 0;
    }
    if (!be->matmul) { /* a backend without the prompt's products: token by token */
        for (int t = 0; t < n; t++)
            if (kt_forward(m, s, tokens[t], every || t == n - 1 ? logits + (every ? (size_t)t * c->vocab : 0) : w->spare))
                return -1;
        return 0;
    }
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= c->vocab) return kt_fail("token id %d is outside the vocabulary (%d)", tokens[t], c->vocab);
    const int P = proj_size(c), I = c->m_heads * c->m_head_dim, Q = c->heads * c->head_dim;
    const size_t N = (size_t)n;
    float *x = buffer(be, N * H * sizeof *x), *h = buffer(be, N * H * sizeof *h), *o = buffer(be, N * H * sizeof *o);
    float *proj = buffer(be, N * P * sizeof *proj), *y = buffer(be, N * I * sizeof *y);
    float *q = buffer(be, N * Q * sizeof *q), *a = buffer(be, N * Q * sizeof *a);
    float *u = buffer(be, N * (c->intermediate > 0 ? c->intermediate : 1) * sizeof *u);
    void *bufs[] = {x, h, o, proj, y, q, a, u};
    const size_t n_bufs = sizeof bufs / sizeof *bufs;
    int rc = 0;
    for (size_t i = 0; i < n_bufs; i++) rc |= !bufs[i];
    if (rc) {
        for (size_t i = 0; i < n_bufs; i++)
            if (bufs[i]) release(be, bufs[i]);
        return -1;
    }
    for (int t = 0; t < n; t++) be->row(&m->embed, tokens[t], x + (size_t)t * H);
    for (int i = 0; i < c->n_layers; i++) {
        const kt_layer *L = &m->layers[i];
        for (int t = 0; t < n; t++) be->rmsnorm(h + (size_t)t * H, x + (size_t)t * H, &L->norm, H, c->eps);
        if (L->kind == 'M') {
            binput(m, w, h, n, H);
            bapply(m, w, &L->in_proj, h, n, proj);
            be->mamba_steps(c, L, s->conv[i], s->ssm[i], proj, n, y, s->work->tmp);
            binput(m, w, y, n, I);
            bapply(m, w, &L->out_proj, y, n, o);
        } else if (L->kind == '*') {
            const int KVD = c->kv_heads * c->head_dim;
            binput(m, w, h, n, H);
            bapply(m, w, &L->q, h, n, q);
            bapply(m, w, &L->k, h, n, s->k[i] + (size_t)s->pos * KVD);
            bapply(m, w, &L->v, h, n, s->v[i] + (size_t)s->pos * KVD);
            be->attend(c, s->k[i], s->v[i], s->pos, n, q, a, s->work->tmp);
            binput(m, w, a, n, Q);
            bapply(m, w, &L->o, a, n, o);
        } else if (L->kind == '-') {
            binput(m, w, h, n, H);
            bapply(m, w, &L->up, h, n, u);
            be->relu2(u, n * c->intermediate);
            binput(m, w, u, n, c->intermediate);
            bapply(m, w, &L->down, u, n, o);
        } else {
            for (int t = 0; t < n; t++) moe(m, s->work, L, h + (size_t)t * H, o + (size_t)t * H);
        }
        be->add(x, o, n * H);
    }
    if (every) { /* the final norm and lm_head of every position, as one matrix product */
        for (int t = 0; t < n; t++) be->rmsnorm(h + (size_t)t * H, x + (size_t)t * H, &m->norm_f, H, c->eps);
        binput(m, w, h, n, H);
        bapply(m, w, &m->lm_head, h, n, logits);
    } else {
        be->rmsnorm(h, x + (size_t)(n - 1) * H, &m->norm_f, H, c->eps);
        input(m, w, h, H);
        apply(m, w, &m->lm_head, h, logits);
    }
    rc = be->sync && be->sync() ? -1 : 0;
    for (size_t i = 0; i < n_bufs; i++) release(be, bufs[i]);
    if (rc == 0) s->pos += n;
    return rc;
}

int kt_forward_batch(const kt_model *m, kt_state *s, const int32_t *tokens, int n, float *logits) {
    if (forward_tokens(m, s, tokens, n, logits, 0)) return -1;
    return check_logits(logits, m->cfg.vocab, 1, s->pos - 1);
}

int kt_forward_every(const kt_model *m, kt_state *s, const int32_t *tokens, int n, float *logits) {
    if (forward_tokens(m, s, tokens, n, logits, 1)) return -1;
    return check_logits(logits, m->cfg.vocab, n, s->pos - n);
}

/* The recurrent state is small (conv window, SSM state); the KV cache is
 * copied only up to POS, the part that holds anything. */
int kt_state_copy(kt_state *dst, const kt_state *src, const kt_model *m) {
    const kt_config *c = &m->cfg;
    if (dst->max_pos < src->pos) return kt_fail("state copy: %d positions do not fit in %d", src->pos, dst->max_pos);
    const int I = c->m_heads * c->m_head_dim, conv_dim = I + 2 * c->n_groups * c->state;
    const size_t kv = (size_t)src->pos * c->kv_heads * c->head_dim;
    for (int i = 0; i < c->n_layers; i++) {
        if (m->layers[i].kind == 'M') {
            memcpy(dst->conv[i], src->conv[i], (size_t)(c->conv - 1) * conv_dim * sizeof(float));
            memcpy(dst->ssm[i], src->ssm[i], (size_t)c->m_heads * c->m_head_dim * c->state * sizeof(float));
        } else if (m->layers[i].kind == '*') {
            memcpy(dst->k[i], src->k[i], kv * sizeof(float));
            memcpy(dst->v[i], src->v[i], kv * sizeof(float));
        }
    }
    dst->pos = src->pos;
    return 0;
}
