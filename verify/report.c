/* report.c - collect the checks and print them (report.h). */
#include "report.h"
#include "atomic_file.h"
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

vr_check *vr_add(vr_report *r, const char *group, const char *name, vr_status st, const char *fix, cJSON *figures,
                 const char *fmt, ...) {
    r->checks = kt_xrealloc(r->checks, (r->n + 1) * sizeof *r->checks);
    vr_check *c = &r->checks[r->n++];
    va_list ap;
    va_start(ap, fmt);
    strbuf sb = {0};
    sb_vprintf(&sb, fmt, ap);
    va_end(ap);
    *c = (vr_check){group, kt_xstrdup(name), sb_take(&sb), fix ? kt_xstrdup(fix) : NULL, st, figures};
    return c;
}

size_t vr_count(const vr_report *r, vr_status st) {
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) n += r->checks[i].status == st;
    return n;
}

const char *vr_status_name(vr_status st) {
    static const char *names[] = {"pass", "warn", "fail", "skip"};
    return names[st];
}

/* Per-tensor fidelity checks that pass are many (hundreds for a 9B model):
 * without VERBOSE the table counts them instead of listing them. */
void vr_print_table(const vr_report *r, int color, int verbose) {
    static const char *col[] = {"\033[32m", "\033[33m", "\033[31m", "\033[2m"};
    size_t hidden = 0;
    printf("%-10s %-6s %-44s %s\n", "group", "status", "check", "detail");
    for (size_t i = 0; i < r->n; i++) {
        const vr_check *c = &r->checks[i];
        if (!verbose && c->status == VR_PASS && !strcmp(c->group, "fidelity") && strcmp(c->name, "rounding")) {
            hidden++;
            continue;
        }
        printf("%-10s %s%-6s%s %-44s %s", c->group, color ? col[c->status] : "", vr_status_name(c->status),
               color ? "\033[0m" : "", c->name, c->message);
        if (c->fix && c->status == VR_FAIL) printf(" (fix: %s)", c->fix);
        putchar('\n');
    }
    if (hidden) printf("(%zu identical tensors not listed; --verbose lists them)\n", hidden);
    printf("%zu passed, %zu warnings, %zu failed, %zu skipped\n", vr_count(r, VR_PASS), vr_count(r, VR_WARN),
           vr_count(r, VR_FAIL), vr_count(r, VR_SKIP));
}

cJSON *vr_to_json(const vr_report *r) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "schema", "kintsugi-verify-report/1");
    cJSON_AddStringToObject(root, "model", r->dir);
    cJSON_AddStringToObject(root, "kind", r->original_checkpoint ? "original" : "conversion");
    if (r->original) cJSON_AddStringToObject(root, "original", r->original);
    else cJSON_AddNullToObject(root, "original");
    cJSON_AddBoolToObject(root, "ok", vr_count(r, VR_FAIL) == 0);
    cJSON *counts = cJSON_AddObjectToObject(root, "counts");
    for (int s = VR_PASS; s <= VR_SKIP; s++)
        cJSON_AddItemToObject(counts, vr_status_name((vr_status)s), kt_json_new_int((long long)vr_count(r, (vr_status)s)));
    cJSON_AddItemToObject(root, "summary", r->summary ? cJSON_Duplicate(r->summary, 1) : cJSON_CreateObject());
    if (r->quality) cJSON_AddItemToObject(root, "quality", cJSON_Duplicate(r->quality, 1));
    cJSON *arr = cJSON_AddArrayToObject(root, "checks");
    for (size_t i = 0; i < r->n; i++) {
        const vr_check *c = &r->checks[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "group", c->group);
        cJSON_AddStringToObject(o, "name", c->name);
        cJSON_AddStringToObject(o, "status", vr_status_name(c->status));
        cJSON_AddStringToObject(o, "message", c->message);
        if (c->fix) cJSON_AddStringToObject(o, "fix", c->fix);
        else cJSON_AddNullToObject(o, "fix");
        cJSON_AddItemToObject(o, "figures", c->figures ? cJSON_Duplicate(c->figures, 1) : cJSON_CreateObject());
        cJSON_AddItemToArray(arr, o);
    }
    return root;
}

char *vr_render_json(const vr_report *r) {
    cJSON *root = vr_to_json(r);
    char *text = kt_json_print_report(root, &KT_JSON_PYTHON_INDENT4);
    cJSON_Delete(root);
    strbuf sb = {0};
    sb_puts(&sb, text);
    sb_putc(&sb, '\n');
    free(text);
    return sb_take(&sb);
}

static void xml_escaped(strbuf *sb, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<': sb_puts(sb, "&lt;"); break;
        case '>': sb_puts(sb, "&gt;"); break;
        case '&': sb_puts(sb, "&amp;"); break;
        case '"': sb_puts(sb, "&quot;"); break;
        default:
            /* XML 1.0 forbids most control characters even escaped */
            if ((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t') sb_putc(sb, '?');
            else sb_putc(sb, *s);
        }
    }
}

/* One <testsuite> per group, one <testcase> per check. */
char *vr_render_junit(const vr_report *r) {
    static const char *groups[] = {"structure", "fidelity", "behaviour"};
    strbuf sb = {0};
    sb_puts(&sb, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"kintsugi-verify\">\n");
    for (int g = 0; g < 3; g++) {
        size_t tests = 0, fails = 0, skips = 0;
        for (size_t i = 0; i < r->n; i++)
            if (!strcmp(r->checks[i].group, groups[g]))
                tests++, fails += r->checks[i].status == VR_FAIL, skips += r->checks[i].status == VR_SKIP;
        if (!tests) continue;
        sb_printf(&sb, "  <testsuite name=\"%s\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" skipped=\"%zu\">\n",
                  groups[g], tests, fails, skips);
        for (size_t i = 0; i < r->n; i++) {
            const vr_check *c = &r->checks[i];
            if (strcmp(c->group, groups[g])) continue;
            sb_puts(&sb, "    <testcase classname=\"");
            xml_escaped(&sb, c->group);
            sb_puts(&sb, "\" name=\"");
            xml_escaped(&sb, c->name);
            sb_puts(&sb, "\">");
            if (c->status == VR_FAIL || c->status == VR_SKIP) {
                sb_puts(&sb, c->status == VR_FAIL ? "<failure message=\"" : "<skipped message=\"");
                xml_escaped(&sb, c->message);
                if (c->fix) {
                    sb_puts(&sb, " (fix: ");
                    xml_escaped(&sb, c->fix);
                    sb_puts(&sb, ")");
                }
                sb_puts(&sb, "\"/>");
            } else {
                sb_puts(&sb, "<system-out>");
                xml_escaped(&sb, c->message);
                sb_puts(&sb, "</system-out>");
            }
            sb_puts(&sb, "</testcase>\n");
        }
        sb_puts(&sb, "  </testsuite>\n");
    }
    sb_puts(&sb, "</testsuites>\n");
    return sb_take(&sb);
}

void vr_free(vr_report *r) {
    for (size_t i = 0; i < r->n; i++) {
        free(r->checks[i].name);
        free(r->checks[i].message);
        free(r->checks[i].fix);
        cJSON_Delete(r->checks[i].figures);
    }
    free(r->checks);
    cJSON_Delete(r->summary);
    cJSON_Delete(r->quality);
    memset(r, 0, sizeof *r);
}
