/* nemotron_config.h - config.json of a Nemotron-H model, read and validated
 * in one place for every tool (convert, verify, fixup and run).
 *
 * mlx-lm builds its model from config.json with no checks of its own: a
 * missing key is a TypeError, a string where a size belongs fails somewhere
 * inside MLX, a huge size tries to allocate it, a negative epsilon gives NaN
 * logits. Here every value the model needs is checked once: its type (a
 * JSON integer is written without '.' or exponent), its range, and how the
 * values fit together (heads divisible by key-value heads, groups dividing
 * the Mamba heads, the layer pattern's letters, the MoE routing numbers).
 * A bad value is one line naming the key and the value.
 *
 * The bounds on sizes (kt_config_limits in nemotron_config.c) are far above
 * any released checkpoint and keep every product the runtime forms, such as
 * rows x columns of a projection, well inside 64 bits and every dimension
 * inside an int. Keys mlx-lm requires (its ModelArgs has no default for
 * them) are required here too, so nothing passes here that mlx-lm cannot
 * construct. Where kintsugi is stricter than mlx-lm (projection biases, a
 * conv1d without bias, MoE latent projections, which no released Nemotron-H
 * checkpoint uses and the runtime does not compute) the message says so.
 */
#ifndef KT_NEMOTRON_CONFIG_H
#define KT_NEMOTRON_CONFIG_H

#include <cjson/cJSON.h>
#include <stdint.h>

typedef struct {
    int hidden, vocab, n_layers, max_positions;
    int heads, kv_heads, head_dim;                   /* attention */
    int m_heads, m_head_dim, n_groups, state, conv;  /* Mamba-2 */
    int intermediate;                                /* MLP */
    int n_experts, top_k, moe_inter, moe_shared_inter, n_group, topk_group, norm_topk; /* MoE */
    int has_shared;                                  /* n_shared_experts is not null */
    float routed_scale;
    float eps, dt_min, dt_max;                       /* layer_norm_epsilon, time_step_limit */
    char *pattern;                                   /* one of M * - E per layer */
    int quantized;                                   /* a valid "quantization" entry is present */
} kt_config;

/* Read and validate CFG (the parsed config.json), its quantization entries
 * included (kt_config_check_quantization). 0, or -1 with kt_errmsg
 * "config.json: KEY ...". C->pattern is malloc'd (kt_config_free). */
int kt_config_read(kt_config *c, const cJSON *cfg);
void kt_config_free(kt_config *c);

/* The Mamba-2 sizes derived from the config. */
static inline int kt_config_mamba_inner(const kt_config *c) { return c->m_heads * c->m_head_dim; }
static inline int kt_config_conv_dim(const kt_config *c) {
    return c->m_heads * c->m_head_dim + 2 * c->n_groups * c->state;
}

/* The quantization of one module as mlx-lm applies it. */
typedef struct {
    int quantized; /* 0: the module stays dense (no entry, or a per-layer false) */
    int bits, group_size;
} kt_quant_entry;

/* Validate the quantization entries of CFG: "quantization" (bits 2-8 except
 * 7, group size 32, 64 or 128, mode absent or "affine") and each per-layer
 * entry in it (such an object, or true/false). Also refuses a
 * "quantization_config" with no "quantization" beside it: mlx-lm would read
 * it as a Hugging Face quantization and fail on its missing quant_method.
 * *QUANTIZED says whether the model is quantized at all. 0 or -1. */
int kt_config_check_quantization(const cJSON *cfg, int *quantized);

/* The entry for module PATH ("backbone.layers.3.mixer.in_proj"): its
 * per-layer entry, else the default. Call after the check above. */
kt_quant_entry kt_config_quant_of(const cJSON *cfg, const char *path);

#endif
