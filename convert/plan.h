/* plan.h - what kintsugi-convert writes, tensor by tensor, decided up front.
 *
 * The plan reproduces mlx-lm's conversion of a Nemotron-H checkpoint
 * (docs/CONVERSION.md): sanitize (drop mtp.*, conv1d [C,1,K] -> [C,K,1],
 * stack the MoE experts), cast, quantize the Linear/Embedding weights, put the
 * outputs in mlx-lm's parameter order and cut them into shards. Knowing every
 * name, dtype and shape before any byte is written lets each shard's header
 * be written first and every problem be reported before work starts.
 */
#ifndef KT_CONVERT_PLAN_H
#define KT_CONVERT_PLAN_H

#include "affine.h"
#include "json.h"
#include "model_dir.h"

#define CV_MAX_DIMS 8

typedef struct {
    char *name;
    kt_dtype dtype;
    int ndim;
    uint64_t shape[CV_MAX_DIMS];
    uint64_t nbytes;
    size_t shard;                 /* output file */
} cv_output;

typedef struct {
    char *name;                   /* the tensor after sanitize ("...switch_mlp.fc1.weight") */
    const st_tensor **parts;      /* source tensors, concatenated (experts stacked) */
    size_t n_parts;
    kt_dtype src_dtype, dtype;    /* dtype after the cast */
    int ndim;
    uint64_t shape[CV_MAX_DIMS];
    uint64_t nelem;
    int quantized;                /* 1: outputs weight, scales, biases */
    kt_quant_params q;            /* its bits and group size, when quantized */
    cv_output out[3];
    int n_out;
    long order[4];                /* mlx-lm's parameter order, compared lexicographically */
} cv_item;

/* The quantization of one module (PATH without ".weight") that mlx-lm would
 * quantize with the default Q: 1 and *OUT set, 0 to keep it dense, -1 with
 * kt_errmsg() to refuse. */
typedef int (*cv_quant_fn)(const void *ctx, const char *path, const kt_quant_params *q, kt_quant_params *out);

typedef struct {
    kt_quant_params q;
    kt_dtype cast_to;             /* KT_DTYPE_COUNT: no cast */
    uint64_t shard_size;          /* bytes */
    cv_quant_fn quant_of;         /* NULL: Q for every quantizable module */
    const void *quant_ctx;
} cv_options;

typedef struct {
    cv_item *items;
    size_t n_items;
    char **shard_names;
    size_t n_shards;
    uint64_t total_size;          /* bytes of all output tensors */
    uint64_t total_parameters;    /* as mlx-lm counts them */
    uint64_t source_bytes;
    uint64_t quantized_elems, quantized_bytes; /* for bits per weight */
    size_t n_dropped;             /* mtp.* tensors */
} cv_plan;

/* Build the plan for the source M with configuration CONFIG. Returns -1 with
 * kt_errmsg() naming the tensor. */
int cv_plan_make(cv_plan *p, const kt_model_files *m, const cJSON *config, const cv_options *o);
void cv_plan_free(cv_plan *p);

#endif
