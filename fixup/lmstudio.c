/* lmstudio.c - see lmstudio.h.
 *
 * The bundled transformers 5.x (configuration_nemotron_h.py) turns the
 * pattern into layer types with {"M": "mamba", "E": "moe", "*": "attention"}
 * and checks them against valid_types = {"mamba", "attention", "moe"};
 * configuration_utils.py checks layer types against ALLOWED_LAYER_TYPES.
 * A '-' raises KeyError. The patch: the mapping gains "-": "mlp" and skips
 * characters it does not know, the reverse mapping gains "mlp": "-", every
 * valid_types set and ALLOWED_LAYER_TYPES gain "mlp". Lines are matched by
 * their content, never by number, and nothing is written when the expected
 * lines are not found.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "lmstudio.h"
#include "backup.h"
#include "diff.h"
#include "error.h"
#include "file.h"
#include "json.h"
#include "model_dir.h"
#include "strbuf.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_TAIL "/transformers/models/nemotron_h/configuration_nemotron_h.py"

/* Insert INS before the last '}' of the line [S, E). */
static void add_before_brace(strbuf *out, const char *s, const char *e, const char *ins) {
    const char *brace = NULL;
    for (const char *p = s; p < e; p++)
        if (*p == '}') brace = p;
    if (!brace) {
        sb_append(out, s, (size_t)(e - s));
        return;
    }
    sb_append(out, s, (size_t)(brace - s));
    sb_puts(out, ins);
    sb_append(out, brace, (size_t)(e - brace));
}

static int line_has(const char *s, const char *e, const char *needle) {
    size_t n = strlen(needle);
    for (const char *p = s; p + n <= e; p++)
        if (!memcmp(p, needle, n)) return 1;
    return 0;
}

char *fx_patch_nemotron_config(const char *text, int *missing) {
    strbuf out = {0};
    int mapping = 0, changed = 0;
    char map_name[64] = "";
    const char *s = text;
    while (*s) {
        const char *e = strchr(s, '\n');
        e = e ? e + 1 : s + strlen(s);
        int is_map = line_has(s, e, "\"M\": \"mamba\"") && line_has(s, e, "{");
        int is_rev = line_has(s, e, "\"mamba\": \"M\"") && line_has(s, e, "{");
        int is_valid = line_has(s, e, "valid_types = {") && line_has(s, e, "\"mamba\"");
        const char *comp = NULL;
        for (const char *p = s; p + 25 < e && !comp; p++)
            if (!memcmp(p, "[char] for char in pattern", 26)) comp = p;
        if (is_map) {
            mapping = 1;
            const char *eq = NULL;
            for (const char *p = s; p < e && !eq; p++) if (*p == '=') eq = p;
            if (eq) { /* the mapping's name, for the comprehension */
                const char *n0 = s;
                while (n0 < eq && (*n0 == ' ' || *n0 == '\t')) n0++;
                const char *n1 = eq;
                while (n1 > n0 && n1[-1] == ' ') n1--;
                snprintf(map_name, sizeof map_name, "%.*s", (int)(n1 - n0), n0);
            }
            if (!line_has(s, e, "\"-\"")) {
                add_before_brace(&out, s, e, ", \"-\": \"mlp\"");
                changed = 1;
            } else sb_append(&out, s, (size_t)(e - s));
        } else if ((is_rev || is_valid) && !line_has(s, e, "\"mlp\"")) {
            add_before_brace(&out, s, e, is_rev ? ", \"mlp\": \"-\"" : ", \"mlp\"");
            changed = 1;
        } else if (comp && !line_has(s, e, " if char in ") && line_has(s, e, "for char in pattern]")) {
            const char *close = strstr(comp, "pattern]");
            sb_append(&out, s, (size_t)(close + 7 - s));
            sb_printf(&out, " if char in %s", map_name[0] ? map_name : "pattern_mapping");
            sb_append(&out, close + 7, (size_t)(e - (close + 7)));
            changed = 1;
        } else {
            sb_append(&out, s, (size_t)(e - s));
        }
        s = e;
    }
    *missing = !mapping;
    if (!changed || !mapping) {
        sb_free(&out);
        return NULL;
    }
    return sb_take(&out);
}

char *fx_patch_config_utils(const char *text) {
    const char *def = NULL;
    if (!strncmp(text, "ALLOWED_LAYER_TYPES = (", 23) || !strncmp(text, "ALLOWED_LAYER_TYPES = [", 23)) def = text;
    if (!def && (def = strstr(text, "\nALLOWED_LAYER_TYPES = (")) == NULL) def = strstr(text, "\nALLOWED_LAYER_TYPES = [");
    if (!def) return NULL; /* no such check in this version, or a form without a literal list */
    if (*def == '\n') def++;
    const char *open = strchr(def, '\n');
    const char *close = open ? strstr(open, "\n)") : NULL;
    if (!close) close = open ? strstr(open, "\n]") : NULL;
    if (!close) return NULL;
    for (const char *p = def; p + 5 <= close; p++)
        if (!memcmp(p, "\"mlp\"", 5)) return NULL;
    strbuf out = {0};
    sb_append(&out, text, (size_t)(close + 1 - text));
    sb_puts(&out, "    \"mlp\",\n");
    sb_puts(&out, close + 1);
    return sb_take(&out);
}

/* ---- finding the bundled copies ---- */
static char **found;
static size_t n_found;

static int visit(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st, (void)ftw;
    size_t n = strlen(path), t = strlen(CONFIG_TAIL);
    if (type == FTW_F && n > t && !strcmp(path + n - t, CONFIG_TAIL)) {
        found = kt_xrealloc(found, (n_found + 1) * sizeof *found);
        found[n_found++] = kt_xstrdup(path);
    }
    return 0;
}

typedef struct {
    char *path, *old_text, *new_text;
} patch;

int fx_lmstudio(const char *root, int dry_run, int check, int json) {
    char *def = NULL;
    if (!root) {
        const char *home = getenv("HOME");
        strbuf sb = {0};
        sb_printf(&sb, "%s/.cache/lm-studio/extensions/backends", home ? home : "");
        root = def = sb_take(&sb);
    }
    if (!kt_is_dir(root)) {
        kt_fail_io("%s: no LM Studio backends directory here", root);
        free(def);
        return -1;
    }
    found = NULL, n_found = 0;
    nftw(root, visit, 32, FTW_PHYS);
    if (n_found == 0) {
        kt_fail("%s: no bundled transformers with Nemotron-H (models/nemotron_h/configuration_nemotron_h.py) found", root);
        free(def);
        return -1;
    }
    patch *patches = NULL;
    size_t n = 0;
    int rc = 0, missing_any = 0;
    for (size_t i = 0; i < n_found && rc == 0; i++) {
        char *files[2] = {kt_xstrdup(found[i]), NULL};
        strbuf sb = {0};
        sb_append(&sb, found[i], strlen(found[i]) - strlen(CONFIG_TAIL));
        sb_puts(&sb, "/transformers/configuration_utils.py");
        files[1] = sb_take(&sb);
        int skip = 0; /* an installation we do not recognise is left alone entirely */
        for (int f = 0; f < 2 && rc == 0; f++) {
            if (skip) {
                free(files[f]);
                continue;
            }
            char *text = NULL;
            size_t len;
            int got = kt_read_file(files[f], &text, &len);
            if (got < 0) rc = -1;
            if (got <= 0) {
                free(files[f]);
                continue;
            }
            int missing = 0;
            char *patched = f == 0 ? fx_patch_nemotron_config(text, &missing) : fx_patch_config_utils(text);
            if (missing) {
                fprintf(stderr, "kintsugi-fixup: %s: the expected pattern mapping ({\"M\": \"mamba\", ...}) is not "
                        "there; this transformers is not one we know how to patch, left unchanged\n", files[f]);
                missing_any = 1;
                skip = 1;
            }
            if (patched) {
                patches = kt_xrealloc(patches, (n + 1) * sizeof *patches);
                patches[n++] = (patch){files[f], text, patched};
            } else {
                free(text);
                free(files[f]);
            }
        }
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (dry_run) {
            char *d = fx_unified_diff(patches[i].path, patches[i].old_text, strlen(patches[i].old_text),
                                      patches[i].path, patches[i].new_text, strlen(patches[i].new_text));
            fputs(d, stdout);
            free(d);
        } else if (!check) {
            rc = fx_replace_file(patches[i].path, patches[i].new_text, strlen(patches[i].new_text));
        }
    }
    if (rc == 0) {
        if (json) {
            cJSON *root_j = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root_j, "files");
            for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateString(patches[i].path));
            cJSON_AddItemToObject(root_j, "installations", kt_json_new_int((long long)n_found));
            cJSON_AddBoolToObject(root_j, "patched", !dry_run && !check && n > 0);
            char *t = kt_json_print(root_j, &KT_JSON_PYTHON_INDENT4);
            printf("%s\n", t);
            free(t);
            cJSON_Delete(root_j);
        } else if (n == 0 && !missing_any) {
            printf("%zu bundled transformers found; all already handle '-' (nothing to do)\n", n_found);
        } else {
            for (size_t i = 0; i < n; i++)
                printf("%s %s\n", dry_run || check ? "needs patch:" : "patched (original kept as .orig):", patches[i].path);
        }
    }
    int status = rc ? -1 : (check && n) || missing_any ? 1 : 0;
    for (size_t i = 0; i < n; i++) {
        free(patches[i].path);
        free(patches[i].old_text);
        free(patches[i].new_text);
    }
    free(patches);
    for (size_t i = 0; i < n_found; i++) free(found[i]);
    free(found);
    free(def);
    return status;
}
