/* checks.h - the three families of checks of kintsugi-verify.
 *
 *   structure.c  what can be checked from the directory alone: config, shards,
 *                the kintsugi-fixup rules, the tensors the layer pattern needs,
 *                scales and biases
 *   fidelity.c   with --original: every tensor re-derived from the original
 *                and compared bit for bit (which rounding produced it)
 *   behaviour.c  --generate and --kld: the runtime on fixed prompts and texts
 */
#ifndef KT_VERIFY_CHECKS_H
#define KT_VERIFY_CHECKS_H

#include "model.h"
#include "model_dir.h"
#include "plan.h"
#include "report.h"

#include <stdint.h>

typedef struct {
    const char *dir, *original;
    int generate;
    const char *gpu;            /* --backend vulkan|metal: the model under test on that GPU host, or NULL */
    const char *kld_text;
    int max_tokens;             /* --generate */
    double max_rel_rmse;        /* fidelity: a differing tensor's error bound (-1: by bits) */
    int allow_differs;          /* fidelity: differing tensors pass within the bound */
    double max_kld_ratio;       /* the conversion's mean KL / the RTN reference's */
    double max_disagreement_ratio; /* its share of tokens whose top-1 differs, / the reference's */
    double max_ppl_ratio;       /* its token perplexity / the reference's */
    double max_relative_kld;    /* the floor: mean KL / the original's mean NLL per token */
    double max_kld, min_top1;   /* absolute bounds, only when given (-1: none) */
    int window;                 /* lm-eval's max_length (0: max_position_embeddings) */
    int num_fewshot;            /* --choices: the first K items are examples */
    const char *choices;        /* --choices: multiple-choice items (needs --original) */
    const struct kt_mc_set *choice_items; /* its items, read before any check runs */
    double max_accuracy_drop;   /* accuracy points the model may lose against the reference */
    int threads;
    int progress;               /* print progress on stderr (a TTY) */
    int card;                   /* --card: the quality table into DIR's README.md */
} vr_options;

/* DIR/config.json parsed (NULL: *EXISTS says whether it was missing or
 * could not be read, kt_errmsg() why), and its quantization entry
 * ("quantization", or the "quantization_config" twin; NULL when neither). */
cJSON *vr_load_config(const char *dir, int *exists);
const cJSON *vr_quantization(const cJSON *cfg);

/* fidelity.c: the conversion's plan as DIR's config.json declares it (each
 * module's bits and group size, the cast dtype of its scales); row R of an
 * item of it from the original, in float32 after the cast (TMP: 4 bytes per
 * element). */
int vr_plan_conversion(cv_plan *plan, const kt_model_files *src, const cJSON *scfg, const kt_model_files *conv,
                       const cJSON *ccfg);
void vr_source_row(const cv_item *it, uint64_t r, uint64_t k, float *out, void *tmp);

/* reference.c: the RTN reference conversion (module by module the bits and
 * group size DIR declares, MLX's round-to-nearest, metal rounding: the
 * conversion mlx_lm.convert makes) derived from ORIGINAL and loaded into REF.
 * Its file lives in a temporary directory (TMPDIR) only until it is mapped,
 * never in DIR. Returns -1 with kt_errmsg(). */
int vr_reference_load(kt_model *ref, const char *dir, const char *original, int progress);

/* quality_card.c: one row of the card's quality table (UNIT "perplexity" or
 * "accuracy"; SOURCE the file, DETAIL what of it was measured), and the table
 * written into DIR/README.md between its markers (ACTIVATIONS: how the figures
 * were computed). */
void vr_quality_row(vr_report *r, const char *benchmark, const char *unit, double original, double converted,
                    double reference, const char *source, const char *detail);
int vr_write_quality_card(const vr_report *r, const char *dir, const char *activations);

/* Each appends its checks; returns -1 only for an I/O error that stops the run. */
int vr_check_structure(vr_report *r, const vr_options *o);
int vr_check_fidelity(vr_report *r, const vr_options *o);
int vr_check_behaviour(vr_report *r, const vr_options *o);

#endif
