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

#include "report.h"

typedef struct {
    const char *dir, *original;
    int generate;
    const char *gpu;            /* --backend vulkan|metal: the model under test on that GPU host, or NULL */
    const char *kld_text;
    int max_tokens;             /* --generate */
    double max_rel_rmse;        /* fidelity: a differing tensor's error bound (-1: by bits) */
    int allow_differs;          /* fidelity: differing tensors pass within the bound */
    double max_kld, min_top1, max_ppl_ratio;
    const char *choices;        /* --choices: multiple-choice items (needs --original) */
    const struct kt_mc_set *choice_items; /* its items, read before any check runs */
    double max_accuracy_drop;   /* accuracy points the model may lose against the original */
    int threads;
    int progress;               /* print progress on stderr (a TTY) */
} vr_options;

/* DIR/config.json parsed (NULL: *EXISTS says whether it was missing or
 * could not be read, kt_errmsg() why), and its quantization entry
 * ("quantization", or the "quantization_config" twin; NULL when neither). */
cJSON *vr_load_config(const char *dir, int *exists);
const cJSON *vr_quantization(const cJSON *cfg);

/* Each appends its checks; returns -1 only for an I/O error that stops the run. */
int vr_check_structure(vr_report *r, const vr_options *o);
int vr_check_fidelity(vr_report *r, const vr_options *o);
int vr_check_behaviour(vr_report *r, const vr_options *o);

#endif
