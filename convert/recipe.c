/* recipe.c - see recipe.h.
 *
 * mlx-lm 0.32's mixed predicate (convert.py, mixed_quant_predicate_builder),
 * restated: with L blocks and i the block index of the module (0 for a module
 * outside the blocks: embeddings, lm_head), a block "uses more bits" when
 *     i < L/8  or  i >= 7L/8  or  (i - L/8) mod 3 == 2     (integer division)
 * and then its v_proj and down_proj get the high bits; lm_head always does;
 * every other quantizable module gets the low bits. The group size is
 * --group-size for all of them.
 */
#include "recipe.h"
#include "error.h"
#include "file.h"
#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

static const struct { const char *name; int low, high; } MIXED[] = {
    {"mixed_2_6", 2, 6}, {"mixed_3_4", 3, 4}, {"mixed_3_6", 3, 6}, {"mixed_4_6", 4, 6}};

int cv_recipe_set_mixed(cv_recipe *r, const char *name) {
    for (size_t i = 0; i < sizeof MIXED / sizeof *MIXED; i++)
        if (!strcmp(name, MIXED[i].name)) {
            r->mixed = MIXED[i].name, r->low_bits = MIXED[i].low, r->high_bits = MIXED[i].high;
            return 0;
        }
    return kt_fail("'%s' is not a recipe (mixed_2_6, mixed_3_4, mixed_3_6, mixed_4_6) or a readable file", name);
}

static int parse_params(const char *s, cv_rule *rule) {
    if (!strcmp(s, "none")) {
        rule->dense = 1;
        return 0;
    }
    char *end;
    long bits = strtol(s, &end, 10), group = 0;
    if (end == s) return -1;
    if (*end == ':') {
        const char *g = end + 1;
        group = strtol(g, &end, 10);
        if (end == g) return -1;
    }
    if (*end) return -1;
    kt_quant_params p = {(int)bits, group ? (int)group : 64, KT_QUANT_METAL};
    if (bits < 2 || bits > 8 || group < 0 || group > 4096 || kt_quant_params_check(&p)) return -1;
    rule->bits = (int)bits, rule->group_size = (int)group; /* 0: --group-size */
    return 0;
}

int cv_recipe_add_rule(cv_recipe *r, const char *text, const char *where) {
    const char *eq = strrchr(text, '=');
    if (!eq || eq == text)
        return kt_fail("%s: '%s' is not REGEX=BITS[:GROUP] or REGEX=none", where, text);
    cv_rule rule = {0};
    if (parse_params(eq + 1, &rule))
        return kt_fail("%s: '%s': '%s' is not BITS[:GROUP] (bits 2, 3, 4, 5, 6 or 8; group 32, 64 or 128) or none",
                       where, text, eq + 1);
    strbuf pat = {0};
    sb_append(&pat, text, (size_t)(eq - text));
    int rc = regcomp(&rule.re, sb_cstr(&pat), REG_EXTENDED | REG_NOSUB);
    sb_free(&pat);
    if (rc) {
        char msg[128];
        regerror(rc, &rule.re, msg, sizeof msg);
        return kt_fail("%s: '%s': the regular expression is invalid (%s)", where, text, msg);
    }
    rule.text = kt_xstrdup(text);
    r->rules = kt_xrealloc(r->rules, (r->n_rules + 1) * sizeof *r->rules);
    r->rules[r->n_rules++] = rule;
    return 0;
}

int cv_recipe_load(cv_recipe *r, const char *arg) {
    for (size_t i = 0; i < sizeof MIXED / sizeof *MIXED; i++) /* a name first: a file must be named otherwise */
        if (!strcmp(arg, MIXED[i].name)) return cv_recipe_set_mixed(r, arg);
    size_t n;
    char *text = NULL;
    int got = kt_read_file(arg, &text, &n);
    if (got < 0) return kt_fail_context("--recipe");
    if (got == 0)
        return kt_fail("--recipe %s: no such file, and not a recipe name (mixed_2_6, mixed_3_4, mixed_3_6, mixed_4_6)", arg);
    if (memchr(text, 0, n)) {
        free(text);
        return kt_fail("--recipe %s: a binary file, not rules of the form REGEX=BITS[:GROUP]", arg);
    }
    r->file = kt_xstrdup(arg);
    int line = 0, rc = 0;
    for (char *p = text, *next; p && *p && rc == 0; p = next) {
        next = strchr(p, '\n');
        if (next) *next++ = 0;
        line++;
        char *hash = strchr(p, '#');
        if (hash) *hash = 0;
        while (*p == ' ' || *p == '\t') p++;
        size_t len = strlen(p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '\r')) p[--len] = 0;
        if (!len) continue;
        strbuf where = {0};
        sb_printf(&where, "%s:%d", arg, line);
        if (!strchr(p, '=') && !strncmp(p, "mixed_", 6)) rc = cv_recipe_set_mixed(r, p);
        else rc = cv_recipe_add_rule(r, p, sb_cstr(&where));
        if (rc && !strchr(p, '=')) kt_fail_context("%s", sb_cstr(&where));
        sb_free(&where);
    }
    free(text);
    return rc;
}

void cv_recipe_free(cv_recipe *r) {
    for (size_t i = 0; i < r->n_rules; i++) {
        regfree(&r->rules[i].re);
        free(r->rules[i].text);
    }
    free(r->rules);
    free(r->file);
    memset(r, 0, sizeof *r);
}

/* The block index mlx-lm reads from a module path: the number after
 * "backbone.layers.", or 0 for a module outside the blocks. */
static long block_index(const char *path) {
    if (strncmp(path, "backbone.layers.", 16)) return 0;
    return strtol(path + 16, NULL, 10);
}

static int uses_more_bits(long i, long n_layers) {
    return i < n_layers / 8 || i >= 7 * n_layers / 8 || (i - n_layers / 8) % 3 == 2;
}

int cv_recipe_apply(const cv_recipe *r, const char *path, long n_layers, const kt_quant_params *def,
                    kt_quant_params *q) {
    *q = *def;
    for (size_t i = 0; i < r->n_rules; i++)
        if (regexec(&r->rules[i].re, path, 0, NULL, 0) == 0) {
            if (r->rules[i].dense) return 0;
            q->bits = r->rules[i].bits;
            if (r->rules[i].group_size) q->group_size = r->rules[i].group_size;
            return 1;
        }
    if (r->mixed) {
        const int more = uses_more_bits(block_index(path), n_layers);
        const int high = strstr(path, "lm_head") ||
                         ((strstr(path, "v_proj") || strstr(path, "down_proj")) && more);
        q->bits = high ? r->high_bits : r->low_bits;
    }
    return 1;
}

char *cv_recipe_describe(const cv_recipe *r) {
    strbuf sb = {0};
    for (size_t i = 0; i < r->n_rules; i++) sb_printf(&sb, "%s%s", i ? ", " : "", r->rules[i].text);
    if (r->mixed)
        sb_printf(&sb, "%s%s (mlx-lm's recipe: %d bits, %d for lm_head and some v_proj/down_proj)",
                  r->n_rules ? ", then " : "", r->mixed, r->low_bits, r->high_bits);
    return sb_take(&sb);
}
