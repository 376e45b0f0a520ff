/* backend.h - the math of a Nemotron-H forward pass behind one table of
 * functions.
 *
 * forward.c composes layers out of these operations and never looks at how
 * they are computed; a backend supplies them. The CPU backend (runtime/cpu/)
 * is the one that exists: scalar references plus AVX2/AVX-512/NEON kernels
 * chosen at run time. A GPU backend fills in the same table; the weights
 * (kt_linear: mapped file bytes) and the state (kt_state) stay as they are.
 */
#ifndef KT_BACKEND_H
#define KT_BACKEND_H

#include "model.h"
#include "qact.h"

struct kt_backend {
    const char *name;
    /* y = W x (x: in floats, y: out floats) */
    void (*matvec)(const kt_linear *w, const float *x, float *y);
    /* Y[t] = W X[t] for T vectors stored one after another (the prompt) */
    void (*matmul)(const kt_linear *w, const float *x, int t, float *y);
    /* row R of W as floats (the embedding lookup) */
    void (*row)(const kt_linear *w, int r, float *out);
    /* out = x / rms(x) * w; w NULL means no weight */
    void (*rmsnorm)(float *out, const float *x, const kt_vec *w, int n, float eps);
    /* N Mamba-2 steps, one per token, from PROJ = in_proj(x) (N rows of
     * [z | xBC | dt]): the conv window and the SSM state advance; row t of
     * Y receives token t's gated, group-normalised output that goes into
     * out_proj. TMP: conv_dim floats of scratch. One call for a prompt's N
     * tokens lets a backend keep each head's state in cache through all of
     * them. */
    void (*mamba_steps)(const kt_config *c, const kt_layer *L, float *conv, float *ssm, const float *proj, int n,
                        float *y, float *tmp);
    /* Row t of O = attention of query row t of Q (all heads) over cached K,
     * V at 0..POS + t, for N tokens whose keys and values the cache already
     * holds; TMP: POS + N floats of scratch. */
    void (*attend)(const kt_config *c, const float *k, const float *v, int pos, int n, const float *q, float *o,
                   float *tmp);
    /* Integer activations (model.h, KT_ACT_INT8): X quantized once, then
     * y = W X from it for every W with int8_ok(W) (the others take X as
     * floats through matvec). */
    void (*quantize)(kt_qact *a, const float *x, int n);
    void (*matvec_q)(const kt_linear *w, const kt_qact *a, float *y);
    void (*matmul_q)(const kt_linear *w, const kt_qact *a, int t, float *y); /* A: T inputs */
    int (*int8_ok)(const kt_linear *w);
    /* The element-wise steps between the matrices: u = max(u, 0)^2 (the MLP)
     * and x += y (the residual), so that a device backend has every step of
     * a token. */
    void (*relu2)(float *u, int n);
    void (*add)(float *x, const float *y, int n);
    /* A MoE layer (forward.c's moe()), so that the choice of experts never
     * has to come back to the host: route() turns the gate's logits SCORE
     * into the chosen experts CHOSEN[top_k] and their factors WEIGHT[top_k]
     * (runtime/cpu/moe_route.c; SCRATCH: E + n_group + top_k floats); expert()
     * applies expert CHOSEN[K] of the N in EXPERTS to X (NULL: forward.c
     * reads CHOSEN itself and applies that expert); weigh() sets X =
     * WEIGHT[K] * Y when FIRST, else X += WEIGHT[K] * Y. */
    void (*route)(const kt_config *c, const kt_vec *bias, float *score, int *chosen, float *weight, float *scratch);
    void (*expert)(const kt_linear *experts, int n, const int *chosen, int k, const float *x, float *y);
    void (*weigh)(float *x, const float *weight, int k, const float *y, int n, int first);
    /* A device backend (runtime/gpu/) records the calls of a token and runs
     * them as one submission: sync() runs what is recorded and makes every
     * result visible to the host (NULL: every call is done when it returns).
     * alloc()/release() give the state and scratch buffers the device can
     * reach, zeroed (NULL: calloc/free). matmul NULL: the prompt goes token
     * by token. max_buffer: the largest buffer the device binds whole, in
     * bytes (0: no limit); a prompt runs in blocks of tokens whose matrices
     * of activations fit it. */
    int (*sync)(void);
    void *(*alloc)(size_t bytes);
    void (*release)(void *p);
    size_t max_buffer;
    /* The model is freed: drop every copy made of its weights (NULL: none). */
    void (*unload)(void);
    /* The model's activations are chosen (kt_model_set_activations): make
     * the backend's own layout of the weights for them, owned by
     * M->backend_weights (NULL: the file's layout serves). */
    int (*prepare)(kt_model *m);
};

const kt_backend *kt_cpu_backend(void);

#endif
