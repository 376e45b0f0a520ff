/* testdata.h - pieces of the synthetic Nemotron-H checkpoint generator. */
#ifndef KT_TESTDATA_H
#define KT_TESTDATA_H

#include <stddef.h>
#include <stdint.h>
#include "json.h"

extern const char kt_corpus[];

/* The pre-tokenizer regex of the Nemotron tokenizer (shared docs). */
extern const char *const KT_PRETOKENIZER_REGEX;

/* Shape and options of a generated checkpoint. */
typedef struct {
    const char *pattern;       /* hybrid_override_pattern: M, -, *, E */
    int hidden;                /* H */
    int vocab;                 /* V: 1000 special + 256 bytes + merges */
    int mamba_heads, mamba_head_dim, ssm_state, n_groups, conv_kernel;
    int attn_heads, kv_heads, head_dim;
    int intermediate;
    int experts, experts_per_tok, moe_intermediate, shared_intermediate;
    int ssm_f32;               /* A_log, D, dt_bias in float32 (else bf16) */
    int mtp;                   /* add mtp.* tensors */
    int shards;                /* number of safetensors files (1: model.safetensors) */
    int dtype_key;             /* write transformers-5 "dtype" instead of "torch_dtype" */
    uint64_t seed;
    const char *corpus;        /* the BPE's training text (NULL: the embedded kt_corpus) */
    int bpe_max_chars;         /* a merge may not make a token of more non-ASCII characters (0: no limit) */
    int heavy_tails;           /* linear weights from Student's t (4 degrees of freedom), not near-Gaussian */
} gen_options;

/* Write config.json (transformers' layout: indent 2, sorted keys). */
int gen_write_config(const char *dir, const gen_options *o);
/* Write the weights: shards, index, all streamed. */
int gen_write_weights(const char *dir, const gen_options *o);
/* Train the BPE and write tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json. */
int gen_write_tokenizer(const char *dir, const gen_options *o);
/* generation_config.json and the two remote-code .py files. */
int gen_write_extras(const char *dir);

/* Print JSON with transformers' save_pretrained style (indent 2, sorted). */
int gen_save_json(const char *dir, const char *name, const cJSON *root, int indent, int sort_keys);

#endif
