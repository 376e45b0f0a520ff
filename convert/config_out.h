/* config_out.h - config.json of the converted model: what mlx-lm writes, plus
 * the repairs that users otherwise make by hand (docs/CONVERSION.md). */
#ifndef KT_CONVERT_CONFIG_OUT_H
#define KT_CONVERT_CONFIG_OUT_H

#include "affine.h"
#include "json.h"

#define CV_MAX_REPAIRS 16

/* What the converter changed in config.json, one line each with the reason:
 * repairs the source needed (needed[i] = 1), and the places where the
 * output is written differently from mlx_lm.convert's on purpose (0). Only
 * the first kind is reported as a repair. */
typedef struct {
    char *text[CV_MAX_REPAIRS];
    int needed[CV_MAX_REPAIRS];
    int n;
} cv_repairs;

/* How many lines of R are of the kind NEEDED. */
int cv_repairs_count(const cv_repairs *r, int needed);

/* The dtype mlx-lm would cast to ("bfloat16", "float16", "float32"), read
 * from torch_dtype, else (a repair) from a transformers-5 "dtype", else from
 * text_config.dtype; NULL when none applies. */
const char *cv_config_cast_dtype(const cJSON *config);

/* A new config: SRC with the eos_token_id of GENERATION (may be NULL),
 * without _name_or_path and vision_config, with quantization and
 * quantization_config, and the repairs recorded in R. NULL and kt_errmsg()
 * when SRC cannot be converted (not nemotron_h, already quantized). */
cJSON *cv_config_make(const cJSON *src, const cJSON *generation, const kt_quant_params *q, cv_repairs *r);

/* The per-layer entry {"group_size": G, "bits": B} of module PATH, added to
 * quantization and quantization_config of CFG (made by cv_config_make) in
 * the order of the calls, as mlx-lm adds one for every module its predicate
 * quantizes. The first call records in R that the group size is written as
 * a number. */
void cv_config_add_layer(cJSON *cfg, const char *path, const kt_quant_params *q, cv_repairs *r);

/* json.dump(config, indent=4) with the top-level keys sorted, as mlx-lm. */
char *cv_config_text(const cJSON *config);

void cv_repairs_free(cv_repairs *r);

#endif
