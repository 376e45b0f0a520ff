/* recipe.h - which bits and group size each module gets.
 *
 * By default every quantizable module gets --bits and --group-size. A recipe
 * changes that per module:
 *   - mlx-lm's mixed recipes (mlx_lm.convert --quant-predicate mixed_2_6,
 *     mixed_3_4, mixed_3_6, mixed_4_6), reproduced exactly: the high bits for
 *     lm_head and for v_proj and down_proj of the blocks mlx-lm's rule picks,
 *     the low bits for everything else (docs/QUANTIZATION.md);
 *   - rules "REGEX=BITS[:GROUP]" or "REGEX=none" (none: stays in floating
 *     point), from repeated --bits-for or a --recipe FILE with one rule per
 *     line (# starts a comment). REGEX is a POSIX extended regular expression
 *     searched for anywhere in the module path ("backbone.layers.12.mixer.
 *     down_proj"), as llama.cpp's --tensor-type searches tensor names. The
 *     first matching rule wins; --bits-for rules come before the file's and
 *     both before a mixed recipe.
 * With a recipe, config.json gets a per-layer entry for every quantized
 * module, as mlx-lm writes them.
 */
#ifndef KT_CONVERT_RECIPE_H
#define KT_CONVERT_RECIPE_H

#include <regex.h>
#include <stddef.h>

#include "affine.h"

typedef struct {
    char *text;       /* the rule as written, for messages */
    regex_t re;
    int dense;        /* "none": not quantized */
    int bits, group_size;
} cv_rule;

typedef struct {
    const char *mixed;     /* "mixed_4_6" or NULL */
    int low_bits, high_bits;
    cv_rule *rules;
    size_t n_rules;
    char *file;            /* --recipe FILE, for the card */
} cv_recipe;

/* 1 when R changes anything (then config.json gets per-layer entries). */
static inline int cv_recipe_active(const cv_recipe *r) { return r->mixed || r->n_rules; }

/* NAME is one of mlx-lm's mixed recipes: 0, else -1 with kt_errmsg(). */
int cv_recipe_set_mixed(cv_recipe *r, const char *name);
/* Add the rule TEXT ("REGEX=BITS[:GROUP]" or "REGEX=none"); WHERE names its
 * origin in messages ("--bits-for", "FILE:3"). 0 or -1 with kt_errmsg(). */
int cv_recipe_add_rule(cv_recipe *r, const char *text, const char *where);
/* --recipe ARG: a mixed recipe's name, or a file of rules. */
int cv_recipe_load(cv_recipe *r, const char *arg);
void cv_recipe_free(cv_recipe *r);

/* The quantization of module PATH in a model of N_LAYERS blocks, starting
 * from DEF (--bits, --group-size, --mode): 1 quantized with *Q, 0 dense. */
int cv_recipe_apply(const cv_recipe *r, const char *path, long n_layers, const kt_quant_params *def,
                    kt_quant_params *q);

/* One line for the card and the report: "mixed_4_6 (mlx-lm)", the rules. */
char *cv_recipe_describe(const cv_recipe *r);

#endif
