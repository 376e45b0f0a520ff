/* diff.c - see diff.h. Longest common subsequence of lines, then hunks. */
#include "diff.h"
#include "strbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *s;
    size_t len; /* without the newline */
} line;

static line *split_lines(const char *t, size_t n, size_t *count) {
    size_t cap = 16, k = 0;
    line *v = kt_xmalloc(cap * sizeof *v);
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && t[j] != '\n') j++;
        if (k == cap) v = kt_xrealloc(v, (cap *= 2) * sizeof *v);
        v[k++] = (line){t + i, j - i};
        i = j + 1;
    }
    *count = k;
    return v;
}

static int same(const line *a, const line *b) { return a->len == b->len && memcmp(a->s, b->s, a->len) == 0; }

enum { KEEP, DEL, ADD };

char *fx_unified_diff(const char *old_name, const char *a, size_t a_len, const char *new_name, const char *b,
                      size_t b_len) {
    if (a_len == b_len && memcmp(a, b, a_len) == 0) return kt_xstrdup("");
    size_t n, m;
    line *x = split_lines(a, a_len, &n), *y = split_lines(b, b_len, &m);
    /* lcs[i][j]: common lines of x[i..] and y[j..] */
    uint32_t *lcs = kt_xcalloc((n + 1) * (m + 1), sizeof *lcs);
#define L(i, j) lcs[(size_t)(i) * (m + 1) + (j)]
    for (size_t i = n; i-- > 0;)
        for (size_t j = m; j-- > 0;)
            L(i, j) = same(&x[i], &y[j]) ? L(i + 1, j + 1) + 1 : (L(i + 1, j) > L(i, j + 1) ? L(i + 1, j) : L(i, j + 1));
    /* the edit script */
    size_t cap = n + m + 1, k = 0;
    int *op = kt_xmalloc(cap * sizeof *op);
    size_t *ai = kt_xmalloc(cap * sizeof *ai), *bi = kt_xmalloc(cap * sizeof *bi);
    size_t i = 0, j = 0;
    while (i < n || j < m) {
        if (i < n && j < m && same(&x[i], &y[j])) op[k] = KEEP, ai[k] = i++, bi[k++] = j++;
        else if (j < m && (i == n || L(i, j + 1) > L(i + 1, j))) op[k] = ADD, ai[k] = i, bi[k++] = j++;
        else op[k] = DEL, ai[k] = i++, bi[k++] = j;
    }
#undef L
    strbuf out = {0};
    sb_printf(&out, "--- %s\n+++ %s\n", old_name, new_name);
    const size_t ctx = 3;
    size_t e = 0;
    while (e < k) {
        while (e < k && op[e] == KEEP) e++;
        if (e == k) break;
        size_t start = e > ctx ? e - ctx : 0, end = e;
        /* extend while changes are within 2*ctx of each other */
        for (;;) {
            while (end < k && op[end] != KEEP) end++;
            size_t next = end;
            while (next < k && op[next] == KEEP && next - end < 2 * ctx) next++;
            if (next < k && op[next] != KEEP) {
                end = next;
                continue;
            }
            end = end + ctx < k ? end + ctx : k;
            break;
        }
        size_t a0 = ai[start], b0 = bi[start], ac = 0, bc = 0;
        for (size_t t = start; t < end; t++) {
            ac += op[t] != ADD;
            bc += op[t] != DEL;
        }
        sb_printf(&out, "@@ -%zu,%zu +%zu,%zu @@\n", ac ? a0 + 1 : a0, ac, bc ? b0 + 1 : b0, bc);
        for (size_t t = start; t < end; t++) {
            const line *l = op[t] == ADD ? &y[bi[t]] : &x[ai[t]];
            sb_putc(&out, op[t] == KEEP ? ' ' : op[t] == DEL ? '-' : '+');
            sb_append(&out, l->s, l->len);
            sb_putc(&out, '\n');
        }
        e = end;
    }
    free(lcs);
    free(op);
    free(ai);
    free(bi);
    free(x);
    free(y);
    return sb_take(&out);
}
