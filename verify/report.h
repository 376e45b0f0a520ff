/* report.h - the checks kintsugi-verify made, and the three ways of printing
 * them: a table for people, JSON (docs/verify-report.schema.json) and JUnit
 * XML for CI systems.
 *
 * A check has a group ("structure", "fidelity", "behaviour"), a name, a
 * status and a one-line message; a failing structure check names the
 * kintsugi-fixup rule that repairs it. Figures (errors, tok/s, KL divergence)
 * ride along as a JSON object.
 */
#ifndef KT_VERIFY_REPORT_H
#define KT_VERIFY_REPORT_H

#include <stddef.h>

#include "json.h"

typedef enum { VR_PASS, VR_WARN, VR_FAIL, VR_SKIP } vr_status;

typedef struct {
    const char *group;
    char *name, *message, *fix;
    vr_status status;
    cJSON *figures; /* object or NULL */
} vr_check;

typedef struct {
    const char *dir, *original;
    vr_check *checks;
    size_t n;
    cJSON *summary; /* figures about the whole model (rounding semantics, sizes) */
    int original_checkpoint; /* DIR is unquantized: checked as a source, not a conversion */
    int rtn_identical;       /* fidelity found every tensor as RTN from the original makes it */
    cJSON *quality;          /* the card's quality rows (quality_card.c), or NULL */
} vr_report;

/* Append a check; FIX may be NULL; FIGURES (owned by the report) may be NULL. */
vr_check *vr_add(vr_report *r, const char *group, const char *name, vr_status st, const char *fix, cJSON *figures,
                 const char *fmt, ...) __attribute__((format(printf, 7, 8)));
size_t vr_count(const vr_report *r, vr_status st);
const char *vr_status_name(vr_status st);

void vr_print_table(const vr_report *r, int color, int verbose);
cJSON *vr_to_json(const vr_report *r);
/* The JUnit XML / JSON report (caller frees). */
char *vr_render_junit(const vr_report *r);
char *vr_render_json(const vr_report *r);
void vr_free(vr_report *r);

#endif
