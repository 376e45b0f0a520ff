/* documents.c - see documents.h. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "documents.h"
#include "error.h"
#include "file.h"
#include "json.h"
#include "strbuf.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

/* Python's str patterns are Unicode-aware: \s is Unicode whitespace, which
 * PCRE2 matches the same way with UTF and UCP. */
static pcre2_code *compile(const char *pattern) {
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
    if (!re) kt_fail("cannot compile the regular expression %s (PCRE2 error %d)", pattern, err);
    return re; /* a constant of this file: only a PCRE2 built without Unicode fails */
}

long kt_count_words(const char *s, size_t len) {
    static pcre2_code *ws;
#pragma omp critical(kt_documents_regex)
    if (!ws) ws = compile("\\s+");
    if (!ws) return -1;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(ws, NULL);
    long pieces = 1;
    for (PCRE2_SIZE at = 0; at < len;) {
        /* no UTF check: the text was validated when it was read */
        if (pcre2_match(ws, (PCRE2_SPTR)s, len, at, PCRE2_NO_UTF_CHECK, md, NULL) < 0) break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        pieces++;
        at = ov[1];
    }
    pcre2_match_data_free(md);
    return pieces;
}

/* S with every FROM replaced by TO (str.replace). */
static void replace(strbuf *s, const char *from, const char *to) {
    const size_t fn = strlen(from), tn = strlen(to);
    strbuf out = {0};
    size_t i = 0, n = s->len;
    const char *p = s->data ? s->data : "";
    for (const char *hit; (hit = kt_find_bytes(p + i, n - i, from, fn));) {
        sb_append(&out, p + i, (size_t)(hit - (p + i)));
        sb_append(&out, to, tn);
        i = (size_t)(hit - p) + fn;
    }
    sb_append(&out, p + i, n - i);
    sb_free(s);
    *s = out;
}

/* re.sub(PATTERN, REPLACEMENT, s), the replacement in PCRE2's $1 syntax;
 * -1 only when PCRE2 cannot run the pattern. */
static int substitute(strbuf *s, const char *pattern, const char *replacement) {
    pcre2_code *re = compile(pattern);
    if (!re) return -1;
    int ok = 0;
    PCRE2_SIZE cap = s->len * 2 + 64;
    for (;;) {
        PCRE2_UCHAR *out = kt_xmalloc(cap);
        PCRE2_SIZE got = cap;
        int rc = pcre2_substitute(re, (PCRE2_SPTR)(s->data ? s->data : ""), s->len, 0,
                                  PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH | PCRE2_NO_UTF_CHECK, NULL,
                                  NULL, (PCRE2_SPTR)replacement, PCRE2_ZERO_TERMINATED, out, &got);
        if (rc == PCRE2_ERROR_NOMEMORY) {
            free(out);
            cap = got + 1;
            continue;
        }
        if (rc >= 0) {
            s->len = 0;
            sb_append(s, (const char *)out, got);
        } else {
            ok = kt_fail("the substitution %s failed (PCRE2 error %d)", pattern, rc);
        }
        free(out);
        break;
    }
    pcre2_code_free(re);
    return ok;
}

char *kt_wikitext_detokenize(const char *page, size_t len, size_t *out_len) {
    strbuf s = {0};
    sb_append(&s, page, len);
    /* contractions */
    replace(&s, "s '", "s'");
    int bad = substitute(&s, "/' [0-9]/", "/'[0-9]/");
    /* number separators */
    replace(&s, " @-@ ", "-");
    replace(&s, " @,@ ", ",");
    replace(&s, " @.@ ", ".");
    /* punctuation */
    static const char *const punct[][2] = {{" : ", ": "}, {" ; ", "; "}, {" . ", ". "},
                                           {" ! ", "! "}, {" ? ", "? "}, {" , ", ", "}};
    for (size_t i = 0; i < sizeof punct / sizeof *punct; i++) replace(&s, punct[i][0], punct[i][1]);
    /* brackets and quotes: the spaces just inside them go */
    bad |= substitute(&s, "\\(\\s*([^\\)]*?)\\s*\\)", "($1)");
    bad |= substitute(&s, "\\[\\s*([^\\]]*?)\\s*\\]", "[$1]");
    bad |= substitute(&s, "{\\s*([^}]*?)\\s*}", "{$1}");
    bad |= substitute(&s, "\\\"\\s*([^\\\"]*?)\\s*\\\"", "\"$1\"");
    bad |= substitute(&s, "'\\s*([^']*?)\\s*'", "'$1'");
    /* miscellaneous */
    replace(&s, "= = = =", "====");
    replace(&s, "= = =", "===");
    replace(&s, "= =", "==");
    replace(&s, " \xC2\xB0 ", "\xC2\xB0"); /* chr(176), the degree sign */
    replace(&s, " \n", "\n");
    replace(&s, "\n ", "\n");
    replace(&s, " N ", " 1 ");
    replace(&s, " 's", "'s");
    if (bad) {
        sb_free(&s);
        return NULL;
    }
    *out_len = s.len;
    sb_putc(&s, 0);
    return sb_take(&s);
}

static int add(kt_documents *d, char *text, size_t len, const char *raw, size_t raw_len) {
    const long words = text ? kt_count_words(raw, raw_len) : -1;
    if (words < 0) {
        free(text);
        return -1;
    }
    d->doc = kt_xrealloc(d->doc, (d->n + 1) * sizeof *d->doc);
    d->doc[d->n++] = (kt_document){text, len, words, (long)raw_len};
    return 0;
}

static int valid_utf8(const char *path, long line, const char *s, size_t n) {
    size_t bad = kt_utf8_check((const unsigned char *)s, n);
    if (bad == n) return 0;
    if (line) return kt_fail("%s:%ld: the document is not valid UTF-8 (byte %zu)", path, line, bad);
    return kt_fail("%s: not valid UTF-8 (byte %zu)", path, bad);
}

static int parse_lines(kt_documents *d, const char *path, const char *data, size_t len) {
    long line = 0;
    size_t pos = 0, n;
    const char *s;
    while (kt_next_line(data, len, &pos, &line, &s, &n)) {
        cJSON *o = kt_json_parse(s, n, KT_JSON_DUP_LAST_WINS, "line");
        if (!o) return kt_fail("%s:%ld: not JSON: %s", path, line, kt_errmsg());
        const cJSON *page = cJSON_GetObjectItemCaseSensitive(o, "page"), *text = cJSON_GetObjectItemCaseSensitive(o, "text");
        const cJSON *v = page ? page : text;
        if (!cJSON_IsObject(o) || !cJSON_IsString(v) || (page && text)) {
            cJSON_Delete(o);
            return kt_fail("%s:%ld: expected an object with a string \"page\" (a WikiText document) or \"text\"", path, line);
        }
        const size_t vn = strlen(v->valuestring);
        int rc = valid_utf8(path, line, v->valuestring, vn);
        if (rc == 0 && page) {
            size_t tn = 0;
            char *t = kt_wikitext_detokenize(v->valuestring, vn, &tn);
            rc = add(d, t, tn, v->valuestring, vn);
            d->detokenized = 1;
        } else if (rc == 0) {
            rc = add(d, kt_xstrdup(v->valuestring), vn, v->valuestring, vn);
        }
        cJSON_Delete(o);
        if (rc) return -1;
    }
    return d->n ? 0 : kt_fail("%s: no documents", path);
}

int kt_documents_parse(kt_documents *d, const char *path, const char *data, size_t len) {
    memset(d, 0, sizeof *d);
    int rc;
    if (kt_ends_with(path, ".jsonl")) {
        rc = parse_lines(d, path, data, len);
    } else if ((rc = valid_utf8(path, 0, data, len)) == 0) {
        char *t = kt_xmalloc(len + 1);
        memcpy(t, data, len);
        t[len] = 0;
        rc = add(d, t, len, data, len);
    }
    if (rc) kt_documents_free(d);
    return rc;
}

void kt_documents_free(kt_documents *d) {
    for (size_t i = 0; i < d->n; i++) free(d->doc[i].text);
    free(d->doc);
    memset(d, 0, sizeof *d);
}
