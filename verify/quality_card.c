/* quality_card.c - the model card's quality table, as the seed's card has it
 * (benchmark, original, converted, degradation, verdict), made from the
 * figures verify measured.
 *
 * Rows come from the kld and choices checks (vr_quality_row); --json carries
 * them as "quality", --card writes them into DIR's README.md between two
 * marker comments. Only that section is ever rewritten: the rest of the card,
 * whoever wrote it, stays byte for byte, and the file is replaced atomically
 * (a reader sees the old card or the new one, never half of one).
 */
#include "checks.h"
#include "atomic_file.h"
#include "cli.h"
#include "error.h"
#include "file.h"
#include "strbuf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BEGIN "<!-- kintsugi-verify quality: begin (rewritten by kintsugi-verify --card) -->"
#define END "<!-- kintsugi-verify quality: end -->"

/* The seed's verdicts, as a rule: its table marks a word perplexity 7.0%
 * above the original "Pass" and an accuracy 4.2 points below it "Warn". */
#define PASS_PPL_RISE 10.0  /* percent */
#define PASS_ACC_DROP 2.0   /* points */

void vr_quality_row(vr_report *r, const char *benchmark, const char *unit, double original, double converted,
                    double reference, const char *source, const char *detail) {
    if (!r->quality) r->quality = cJSON_CreateArray();
    cJSON *row = cJSON_CreateObject();
    const int ppl = !strcmp(unit, "perplexity");
    /* degradation: percent rise of a perplexity, points lost of an accuracy */
    const double deg = ppl ? 100 * (converted / original - 1) : 100 * (original - converted);
    const double ref_deg = ppl ? 100 * (reference / original - 1) : 100 * (original - reference);
    const int pass = ppl ? deg <= PASS_PPL_RISE : deg <= PASS_ACC_DROP;
    cJSON_AddStringToObject(row, "benchmark", benchmark);
    cJSON_AddStringToObject(row, "unit", unit);
    cJSON_AddItemToObject(row, "original", kt_json_new_float(original));
    cJSON_AddItemToObject(row, "converted", kt_json_new_float(converted));
    cJSON_AddItemToObject(row, "degradation", kt_json_new_float(deg));
    cJSON_AddStringToObject(row, "degradation_unit", ppl ? "percent" : "points");
    cJSON_AddItemToObject(row, "reference_rtn", kt_json_new_float(reference));
    cJSON_AddItemToObject(row, "reference_rtn_degradation", kt_json_new_float(ref_deg));
    cJSON_AddStringToObject(row, "verdict", pass ? "Pass" : "Warn");
    cJSON_AddStringToObject(row, "source", source);
    cJSON_AddStringToObject(row, "detail", detail);
    cJSON_AddItemToArray(r->quality, row);
}

static double num(const cJSON *row, const char *key) {
    double v = NAN;
    kt_json_number(kt_json_get(row, key), &v);
    return v;
}

static void figure(strbuf *sb, const char *unit, double v) {
    if (!strcmp(unit, "perplexity")) sb_printf(sb, fabs(v) < 1e6 ? "%.2f" : "%.3g", v);
    else sb_printf(sb, "%.1f%%", 100 * v);
}

static void degradation(strbuf *sb, const char *unit, double d) {
    if (!strcmp(unit, "perplexity")) sb_printf(sb, "%+.1f%%", d);
    else sb_printf(sb, "%+.1f points", -d);
}

/* The section, markers included, ending with a newline. */
static char *section(const vr_report *r, const char *activations) {
    strbuf sb = {0};
    sb_puts(&sb, BEGIN "\n## Quality\n\n"
                 "| Benchmark | Original | Converted | Degradation | RTN reference | Verdict |\n"
                 "|---|---|---|---|---|---|\n");
    for (const cJSON *row = r->quality->child; row; row = row->next) {
        const char *unit = kt_json_get(row, "unit")->valuestring;
        sb_printf(&sb, "| %s (`%s`: %s) | ", kt_json_get(row, "benchmark")->valuestring,
                  kt_json_get(row, "source")->valuestring, kt_json_get(row, "detail")->valuestring);
        figure(&sb, unit, num(row, "original"));
        sb_puts(&sb, " | ");
        figure(&sb, unit, num(row, "converted"));
        sb_puts(&sb, " | ");
        degradation(&sb, unit, num(row, "degradation"));
        sb_puts(&sb, " | ");
        figure(&sb, unit, num(row, "reference_rtn"));
        sb_puts(&sb, " (");
        degradation(&sb, unit, num(row, "reference_rtn_degradation"));
        sb_printf(&sb, ") | %s |\n", kt_json_get(row, "verdict")->valuestring);
    }
    sb_printf(&sb,
              "\nVerdict: Pass when the word perplexity is at most %.0f%% above the original's and the accuracy at "
              "most %.0f points below it, Warn otherwise (the rule of the original card's table). The RTN reference "
              "is the conversion mlx_lm.convert makes from the same original at the same bits and group sizes, "
              "derived by kintsugi-verify; kintsugi-verify's own gate judges the conversion against it (docs/VERIFY.md). "
              "Perplexity as lm-evaluation-harness 0.4.11 computes it (rolling windows, words of each document); "
              "accuracy as its ja_leaderboard_jcommonsenseqa task scores items. Measured with kintsugi-verify %s, %s.\n",
              PASS_PPL_RISE, PASS_ACC_DROP, KINTSUGI_VERSION, activations);
    sb_puts(&sb, END "\n");
    return sb_take(&sb);
}

int vr_write_quality_card(const vr_report *r, const char *dir, const char *activations) {
    char *path = kt_path_join(dir, "README.md"), *old = NULL;
    size_t len = 0;
    int got = kt_read_file(path, &old, &len);
    if (got < 0) {
        free(path);
        return -1;
    }
    char *sec = section(r, activations);
    strbuf out = {0};
    const char *b = got ? kt_find_bytes(old, len, BEGIN, strlen(BEGIN)) : NULL;
    const char *e = b ? kt_find_bytes(b, len - (size_t)(b - old), END, strlen(END)) : NULL;
    if (b && e) { /* the section replaced where it stands */
        e += strlen(END);
        if (e < old + len && *e == '\n') e++;
        sb_append(&out, old, (size_t)(b - old));
        sb_puts(&out, sec);
        sb_append(&out, e, len - (size_t)(e - old));
    } else { /* appended after the card */
        if (got) {
            sb_append(&out, old, len);
            if (len && old[len - 1] != '\n') sb_putc(&out, '\n');
            sb_putc(&out, '\n');
        }
        sb_puts(&out, sec);
    }
    int rc = kt_write_file_atomic(path, out.data, out.len);
    if (rc) kt_fail_context("%s", path);
    sb_free(&out);
    free(sec), free(old), free(path);
    return rc;
}
