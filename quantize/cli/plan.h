/* plan.h - what kintsugi-quantize does with each tensor of its input.
 *
 * The plan is made before any byte is written: it decides, per input tensor,
 * whether it is quantized, dequantized or copied (and why), and the names,
 * dtypes and shapes of the outputs, so that the output header can be written
 * first and every problem is found before the work starts.
 */
#ifndef KT_QUANTIZE_PLAN_H
#define KT_QUANTIZE_PLAN_H

#include "affine.h"
#include "safetensors.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

typedef enum { ACT_COPY, ACT_QUANTIZE, ACT_DEQUANTIZE } plan_action;

typedef struct {
    plan_action act;
    const st_tensor *src;              /* the input (the packed weight when dequantizing) */
    const st_tensor *scales, *biases;  /* dequantize only */
    const char *reason;                /* why a tensor is copied */
    char *out_name[3];                 /* weight, scales, biases (copy/dequantize: [0] only) */
    uint64_t out_shape[3][8];
    kt_dtype out_dtype[3];
    int n_out;
    uint64_t rows, k;                  /* the element matrix: rows x k */
    int bits, group_size;
    /* filled by --error */
    double rmse, max_abs, rel_rmse;
} plan_item;

typedef struct {
    int bits, group_size;              /* from the command line */
    int bits_given, group_size_given;
    kt_quant_mode mode;
    int dequantize;
    pcre2_code *only, *skip;           /* NULL when not given */
} plan_options;

typedef struct {
    plan_item *items;
    size_t n;
} plan;

/* Build the plan for F. Returns -1 with kt_errmsg() naming the tensor. */
int plan_make(plan *pl, const st_file *f, const plan_options *o);
void plan_free(plan *pl);

/* Compile a PCRE2 regular expression (matched anywhere in the name, like
 * Python's re.search, unless anchored with ^ or $). */
pcre2_code *plan_regex(const char *pattern, const char *option);

#endif
