/* model.h - Nemotron-H for the CPU: configuration, weights and state as plain
 * structs, and a forward pass one token at a time (docs/ARCHITECTURE.md).
 *
 * Weights stay in the mapped safetensors files: an MLX directory (affine
 * quantized Linear/Embedding weights with their scales and biases) or an
 * original Hugging Face directory (bf16). Activations and the recurrent state
 * are float32.
 */
#ifndef KT_MODEL_H
#define KT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "model_dir.h"
#include "nemotron_config.h"

/* y = W x for one weight matrix of shape [out, in], whatever its storage. */
typedef struct {
    int out, in;
    int quantized;
    const uint8_t *w;              /* packed codes, or the dense values */
    kt_dtype dtype;                /* dense dtype, or the scales' dtype */
    const uint8_t *scales, *biases;
    int bits, group_size;
    const uint8_t *rows8;          /* the CPU's copy interleaved by 8 rows (runtime/cpu/interleave.c),
                                    * made for integer activations; NULL: none */
} kt_linear;

typedef struct {                   /* a vector parameter (norm weight, bias, A_log...) */
    const uint8_t *data;
    kt_dtype dtype;
    int n;
    float *f;                      /* the N values as float, converted once at load: the
                                    * recurrences read them per element per token */
} kt_vec;

typedef struct {
    char kind;                     /* 'M', '*', '-', 'E' */
    kt_vec norm;                   /* the block's pre-norm */
    /* Mamba-2 */
    kt_linear in_proj, out_proj;
    kt_vec conv_w, conv_b, dt_bias, A_log, D, gnorm;
    /* attention */
    kt_linear q, k, v, o;
    /* MLP */
    kt_linear up, down;
    /* MoE: routed experts (fc1 = up, fc2 = down per expert), gate, shared expert */
    kt_linear *fc1, *fc2;
    kt_linear gate, sh_up, sh_down;
    kt_vec e_bias;
    int has_shared;
} kt_layer;

typedef struct kt_backend kt_backend; /* backend.h: the math, CPU or other */

/* How activations meet quantized weights: as float32 (exact: what the
 * oracle tests compare with mlx-lm, and the default for measurements) or
 * quantized to 8-bit integers per block of 32 for integer dot products
 * (faster; the default for generation, docs/PERFORMANCE.md bounds its
 * error). Dense weights always take float32. */
typedef enum { KT_ACT_F32 = 0, KT_ACT_INT8 = 1 } kt_activations;

typedef struct {
    kt_config cfg;
    kt_model_files files;
    const kt_backend *backend;
    kt_activations activations;
    kt_linear embed, lm_head;
    kt_vec norm_f;
    kt_layer *layers;
    unsigned char *used;           /* per tensor of files: read by the loader */
    int headers_only;              /* bound for checking: names, shapes, dtypes; no data read */
    void *backend_weights;         /* the backend's own layout of weights (prepare()), freed with the model */
} kt_model;

typedef struct kt_work kt_work;    /* forward.c: the pass's scratch buffers */

typedef struct {                   /* what one sequence remembers */
    int pos, max_pos;
    float **conv;                  /* per Mamba layer: [conv-1][conv_dim] */
    float **ssm;                   /* per Mamba layer: [m_heads][m_head_dim][state] */
    float **k, **v;                /* per attention layer: [max_pos][kv_heads*head_dim] */
    kt_work *work;                 /* allocated once: a token's pass allocates nothing */
} kt_state;

/* The model in DIR, loaded as mlx_lm.load loads it: every tensor the
 * config's layers need with its shape and dtype, and no other (mtp.* aside,
 * which mlx-lm's sanitize drops): a tensor no layer uses is refused, naming
 * it, as mlx-lm's strict load_weights refuses it ("parameters not in
 * model"). The one loader rule for kintsugi-run, verify and convert. */
int kt_model_load(kt_model *m, const char *dir);
/* The same, keeping unused tensors (m->used says which): for kintsugi-verify,
 * which reports them as a check of their own. */
int kt_model_load_lenient(kt_model *m, const char *dir);
/* The tensors of M no layer uses, but those starting with IGNORE_PREFIX (may
 * be NULL): their number, and in *LIST (malloc'd, when not NULL) the first
 * few names, comma-separated, with ", ..." when there are more. */
size_t kt_model_unused(const kt_model *m, const char *ignore_prefix, char **list);
/* Would CFG and FILES load? The same checks as kt_model_load on tensors
 * already opened (their data is not read: an archive's headers will do).
 * *UNUSED: the first tensor no layer uses and whose name does not start
 * with IGNORE_PREFIX (may be NULL), or NULL; malloc'd. 0 or -1. */
int kt_model_check_files(const cJSON *cfg, const kt_model_files *files, const char *ignore_prefix, char **unused);
void kt_model_free(kt_model *m);
/* Set how activations meet quantized weights, and let the backend prepare
 * its layout of the weights for that (backend.h, prepare). Call it once,
 * after the backend is chosen. */
int kt_model_set_activations(kt_model *m, kt_activations a);
int kt_state_init(kt_state *s, const kt_model *m, int max_pos);
void kt_state_free(kt_state *s, const kt_model *m);

/* Feed TOKEN at the next position; LOGITS receives vocab floats. */
int kt_forward(const kt_model *m, kt_state *s, int32_t token, float *logits);
/* Feed N tokens at once (prefill); LOGITS receives those of the last one. */
int kt_forward_batch(const kt_model *m, kt_state *s, const int32_t *tokens, int n, float *logits);
/* The same pass, LOGITS receiving those of every one of the N positions
 * (N x vocab floats): what perplexity, KL divergence and multiple-choice
 * scoring read. */
int kt_forward_every(const kt_model *m, kt_state *s, const int32_t *tokens, int n, float *logits);
/* DST (initialised for the same model, max_pos >= SRC's pos) becomes SRC:
 * a context evaluated once and continued several ways. */
int kt_state_copy(kt_state *dst, const kt_state *src, const kt_model *m);

/* Element I of a vector parameter as float: inline, since the recurrences
 * read them per element per token (the float copy exists once loaded). */
float kt_vec_at_slow(const kt_vec *v, int i);
static inline float kt_vec_at(const kt_vec *v, int i) { return v->f ? v->f[i] : kt_vec_at_slow(v, i); }

#endif
