/* card.h - the model card (README.md) written beside a converted model. */
#ifndef KT_CONVERT_CARD_H
#define KT_CONVERT_CARD_H

#include <stddef.h>

#include "affine.h"
#include "config_out.h"

typedef struct {
    const char *title, *base_model, *tool_version, *dtype;
    kt_quant_params q;
    double bits_per_weight;
    size_t n_tensors, n_shards;
    const cv_repairs *repairs;
    char *recipe;              /* cv_recipe_describe(), or NULL */
    int fitted;                /* --fit mse */
    size_t modules_by_bits[9]; /* quantized modules at each bit width */
} cv_card;

char *cv_card_text(const cv_card *c);

/* Where the card goes: README.md, unless DST already holds a README.md that
 * is not a card kintsugi-convert wrote (the user's own: kept, and the card
 * goes to CV_CARD_BESIDE instead). */
#define CV_CARD_BESIDE "README.kintsugi.md"
/* 1 when TEXT (LEN bytes) is a card that kintsugi-convert wrote. */
int cv_card_is_ours(const char *text, size_t len);

#endif
