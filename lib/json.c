/* json.c - Python-compatible JSON reading and printing over cJSON.
 *
 * cJSON cannot read NaN/Infinity and loses number text, so parsing is two
 * passes. A small lexer first checks every token the way Python's json module
 * does (UTF-8, control characters in strings, number grammar) and rewrites each
 * bare number or NaN/Infinity token into a string that starts with the byte
 * 0x01. cJSON then builds the tree, and a walk turns those marked strings into
 * cJSON_Raw items holding the original text. A real string whose first
 * character is U+0001 is protected by doubling the marker, so the two cannot
 * be confused.
 */
#include "json.h"
#include "file.h"
#include "error.h"
#include "strbuf.h"
#include "strmap.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NUMBER_MARK '\x01'

const kt_json_style KT_JSON_PYTHON_INDENT4 = {4, ",", ": ", 1, 0};
const kt_json_style KT_JSON_COMPACT_SORTED = {-1, ",", ":", 0, 1};

/* ------------------------------------------------------------------ UTF-8 */

size_t kt_utf8_check(const unsigned char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t n;
        unsigned cp, min;
        if ((c & 0xe0) == 0xc0) { n = 2; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { n = 3; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { n = 4; cp = c & 0x07; min = 0x10000; }
        else return i;
        if (i + n > len) return i;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += n;
    }
    return len;
}

/* ------------------------------------------------------------------ lexer */

typedef struct {
    const char *text;
    size_t len;
    size_t pos;
    const char *what;
    strbuf out;
} lexer;

static int lex_error(const lexer *lx, size_t at, const char *msg) {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < at && i < lx->len; i++) {
        if (lx->text[i] == '\n') { line++; col = 1; } else col++;
    }
    return kt_fail("%s: invalid JSON at line %zu column %zu: %s", lx->what, line, col, msg);
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_hex(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Copy one string literal, checking it as Python's strict decoder does. */
static int lex_string(lexer *lx) {
    size_t start = lx->pos++;
    strbuf *o = &lx->out;
    sb_putc(o, '"');
    /* A real string starting with U+0001 gets a second marker (see top). */
    if (lx->pos + 6 <= lx->len && memcmp(lx->text + lx->pos, "\\u0001", 6) == 0)
        sb_puts(o, "\\u0001");
    while (lx->pos < lx->len) {
        char c = lx->text[lx->pos];
        if (c == '"') { sb_putc(o, '"'); lx->pos++; return 0; }
        if ((unsigned char)c < 0x20)
            return lex_error(lx, lx->pos, "control character in a string");
        if (c == '\\') {
            if (lx->pos + 1 >= lx->len) break;
            char e = lx->text[lx->pos + 1];
            if (e == 'u') {
                if (lx->pos + 6 > lx->len) break;
                for (int k = 2; k < 6; k++)
                    if (!is_hex(lx->text[lx->pos + k]))
                        return lex_error(lx, lx->pos, "bad \\u escape");
                if (memcmp(lx->text + lx->pos + 2, "0000", 4) == 0)
                    return lex_error(lx, lx->pos, "\\u0000 in a string is not supported");
                sb_append(o, lx->text + lx->pos, 6);
                lx->pos += 6;
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == '\0')
                return lex_error(lx, lx->pos, "bad escape in a string");
            sb_append(o, lx->text + lx->pos, 2);
            lx->pos += 2;
            continue;
        }
        sb_putc(o, c);
        lx->pos++;
    }
    return lex_error(lx, start, "unterminated string");
}

/* Length of a JSON number at P (0 when there is none): -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)? */
static size_t number_length(const char *p, size_t avail) {
    size_t i = 0;
    if (i < avail && p[i] == '-') i++;
    if (i >= avail || !is_digit(p[i])) return 0;
    if (p[i] == '0') i++;
    else while (i < avail && is_digit(p[i])) i++;
    if (i < avail && p[i] == '.') {
        if (i + 1 >= avail || !is_digit(p[i + 1])) return 0;
        i++;
        while (i < avail && is_digit(p[i])) i++;
    }
    if (i < avail && (p[i] == 'e' || p[i] == 'E')) {
        size_t j = i + 1;
        if (j < avail && (p[j] == '+' || p[j] == '-')) j++;
        if (j >= avail || !is_digit(p[j])) return 0;
        while (j < avail && is_digit(p[j])) j++;
        i = j;
    }
    return i;
}

static int starts_with(const lexer *lx, const char *word) {
    size_t n = strlen(word);
    return lx->pos + n <= lx->len && memcmp(lx->text + lx->pos, word, n) == 0;
}

static int lex_all(lexer *lx) {
    size_t bad = kt_utf8_check((const unsigned char *)lx->text, lx->len);
    if (bad != lx->len) return lex_error(lx, bad, "not valid UTF-8");
    while (lx->pos < lx->len) {
        char c = lx->text[lx->pos];
        const char *p = lx->text + lx->pos;
        size_t avail = lx->len - lx->pos;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || strchr("{}[],:", c)) {
            if (c == '\0') return lex_error(lx, lx->pos, "NUL byte");
            sb_putc(&lx->out, c);
            lx->pos++;
        } else if (c == '"') {
            if (lex_string(lx)) return -1;
        } else if (starts_with(lx, "true") || starts_with(lx, "null")) {
            sb_append(&lx->out, p, 4);
            lx->pos += 4;
        } else if (starts_with(lx, "false")) {
            sb_append(&lx->out, p, 5);
            lx->pos += 5;
        } else {
            size_t n = 0;
            if (starts_with(lx, "NaN")) n = 3;
            else if (starts_with(lx, "Infinity")) n = 8;
            else if (starts_with(lx, "-Infinity")) n = 9;
            else n = number_length(p, avail);
            if (n == 0) return lex_error(lx, lx->pos, "unexpected character");
            sb_putc(&lx->out, '"');
            sb_putc(&lx->out, NUMBER_MARK);
            sb_append(&lx->out, p, n);
            sb_putc(&lx->out, '"');
            lx->pos += n;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ tree fix-up */

static void turn_into_raw(cJSON *item) {
    char *s = item->valuestring;
    if (s[0] == NUMBER_MARK && s[1] == NUMBER_MARK) {
        memmove(s, s + 1, strlen(s)); /* protected real string: drop one marker */
    } else if (s[0] == NUMBER_MARK) {
        memmove(s, s + 1, strlen(s));
        item->type = cJSON_Raw;
    }
}

static int fix_tree(cJSON *item, int flags, const char *what) {
    if (cJSON_IsString(item)) { turn_into_raw(item); return 0; }
    if (!cJSON_IsArray(item) && !cJSON_IsObject(item)) return 0;
    size_t n = 0;
    for (cJSON *c = item->child; c; c = c->next) n++;
    cJSON **kids = kt_xmalloc((n ? n : 1) * sizeof *kids);
    n = 0;
    for (cJSON *c = item->child; c; c = c->next) kids[n++] = c;
    int rc = 0;
    strmap seen = {0};
    /* the map keeps pointers to its keys: copies, because replacing a
     * duplicate below frees the first item together with its key */
    char **keys = kt_xcalloc(n + 1, sizeof *keys);
    if (cJSON_IsObject(item)) strmap_init(&seen, n);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = fix_tree(kids[i], flags, what);
        if (rc || !cJSON_IsObject(item)) continue;
        char *key = kids[i]->string;
        if (key[0] == NUMBER_MARK && key[1] == NUMBER_MARK) memmove(key, key + 1, strlen(key));
        keys[i] = kt_xstrdup(key);
        size_t first;
        if (!strmap_put(&seen, keys[i], strlen(key), i, &first)) continue;
        if (flags & KT_JSON_DUP_ERROR) {
            rc = kt_fail("%s: duplicate key \"%s\"", what, key);
            break;
        }
        /* Python keeps the first position and the last value. */
        cJSON_DetachItemViaPointer(item, kids[i]);
        cJSON_ReplaceItemViaPointer(item, kids[first], kids[i]);
        kids[first] = kids[i];
    }
    if (cJSON_IsObject(item)) strmap_free(&seen);
    for (size_t i = 0; i < n; i++) free(keys[i]);
    free(keys);
    free(kids);
    return rc;
}

cJSON *kt_json_parse(const char *text, size_t len, int flags, const char *what) {
    lexer lx = {text, len, 0, what, {0}};
    if (lex_all(&lx)) { sb_free(&lx.out); return NULL; }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(sb_cstr(&lx.out), &end, 1);
    if (!root) {
        const char *buf = sb_cstr(&lx.out);
        const char *at = end ? end : cJSON_GetErrorPtr();
        char snippet[24] = "";
        if (at && at >= buf && at <= buf + lx.out.len) {
            size_t k = 0;
            for (const char *p = at; *p && k < sizeof snippet - 1; p++)
                if (*p != NUMBER_MARK && *p != '\n') snippet[k++] = *p;
            snippet[k] = '\0';
        }
        kt_fail("%s: invalid JSON (structure) near \"%s\"", what, snippet);
        sb_free(&lx.out);
        return NULL;
    }
    sb_free(&lx.out);
    if (fix_tree(root, flags, what)) { cJSON_Delete(root); return NULL; }
    return root;
}

cJSON *kt_json_load_file(const char *path, int flags) {
    char *text;
    size_t len;
    int got = kt_read_file(path, &text, &len);
    if (got == 0) kt_fail_io("%s: cannot open: %s", path, kt_errno_text(ENOENT));
    if (got <= 0) return NULL;
    cJSON *root = kt_json_parse(text, len, flags, path);
    free(text);
    return root;
}

/* ---------------------------------------------------------------- numbers */

int kt_json_is_number(const cJSON *item) {
    return item && (cJSON_IsRaw(item) || cJSON_IsNumber(item));
}

int kt_json_is_integer(const cJSON *item) {
    if (!item || !cJSON_IsRaw(item)) return 0;
    const char *s = item->valuestring;
    return strpbrk(s, ".eEIN") == NULL;
}

int kt_json_number(const cJSON *item, double *out) {
    if (!item) return -1;
    if (cJSON_IsNumber(item)) { *out = item->valuedouble; return 0; }
    if (!cJSON_IsRaw(item)) return -1;
    const char *s = item->valuestring;
    if (strcmp(s, "NaN") == 0) *out = NAN;
    else if (strcmp(s, "Infinity") == 0) *out = INFINITY;
    else if (strcmp(s, "-Infinity") == 0) *out = -INFINITY;
    else *out = strtod(s, NULL);
    return 0;
}

int kt_json_u64(const cJSON *item, uint64_t *out) {
    if (!kt_json_is_integer(item) || item->valuestring[0] == '-') return -1;
    errno = 0;
    unsigned long long v = strtoull(item->valuestring, NULL, 10);
    if (errno == ERANGE) return -1;
    *out = v;
    return 0;
}

int kt_json_i64(const cJSON *item, int64_t *out) {
    if (!kt_json_is_integer(item)) return -1;
    errno = 0;
    long long v = strtoll(item->valuestring, NULL, 10);
    if (errno == ERANGE) return -1;
    *out = v;
    return 0;
}

void kt_format_double_py(double v, char out[32]) {
    if (isnan(v)) { strcpy(out, "NaN"); return; }
    if (isinf(v)) { strcpy(out, v > 0 ? "Infinity" : "-Infinity"); return; }
    if (v == 0) { strcpy(out, signbit(v) ? "-0.0" : "0.0"); return; }
    /* Shortest digit string that reads back as the same double. */
    char sci[40];
    for (int prec = 0; prec < 17; prec++) {
        snprintf(sci, sizeof sci, "%.*e", prec, v);
        if (strtod(sci, NULL) == v) break;
    }
    /* sci is "-d.ddde[+-]XX": collect sign, digits and exponent. */
    char digits[24];
    int nd = 0, neg = 0;
    const char *p = sci;
    if (*p == '-') { neg = 1; p++; }
    for (; *p && *p != 'e'; p++)
        if (*p != '.') digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = '\0';
    int exp10 = atoi(p + 1);
    int decpt = exp10 + 1; /* value = 0.DIGITS x 10^decpt */
    char *o = out;
    if (neg) *o++ = '-';
    if (decpt <= -4 || decpt > 16) {
        *o++ = digits[0];
        if (nd > 1) { *o++ = '.'; memcpy(o, digits + 1, (size_t)nd - 1); o += nd - 1; }
        sprintf(o, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    } else if (decpt <= 0) {
        *o++ = '0'; *o++ = '.';
        for (int i = 0; i < -decpt; i++) *o++ = '0';
        memcpy(o, digits, (size_t)nd); o += nd;
        *o = '\0';
    } else if (decpt >= nd) {
        memcpy(o, digits, (size_t)nd); o += nd;
        for (int i = nd; i < decpt; i++) *o++ = '0';
        strcpy(o, ".0");
    } else {
        memcpy(o, digits, (size_t)decpt); o += decpt;
        *o++ = '.';
        memcpy(o, digits + decpt, (size_t)(nd - decpt)); o += nd - decpt;
        *o = '\0';
    }
}

cJSON *kt_json_new_float(double v) {
    char buf[32];
    kt_format_double_py(v, buf);
    return cJSON_CreateRaw(buf);
}

cJSON *kt_json_new_int(long long v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    return cJSON_CreateRaw(buf);
}

cJSON *kt_json_get(const cJSON *object, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(object, key);
}

/* --------------------------------------------------------------- printing */

static void print_number(strbuf *sb, const cJSON *item) {
    char buf[32];
    if (cJSON_IsNumber(item)) {
        kt_format_double_py(item->valuedouble, buf);
        sb_puts(sb, buf);
        return;
    }
    const char *s = item->valuestring;
    if (s[0] == '"') { /* a string printed already (kt_json_new_string_n) */
        sb_puts(sb, s);
        return;
    }
    if (kt_json_is_integer(item)) {
        /* Python reads an int and prints it back: only "-0" changes. */
        sb_puts(sb, strcmp(s, "-0") == 0 ? "0" : s);
        return;
    }
    double v;
    kt_json_number(item, &v);
    kt_format_double_py(v, buf);
    sb_puts(sb, buf);
}

static void put_unit(strbuf *sb, unsigned u) {
    static const char hex[] = "0123456789abcdef";
    char e[7] = {'\\', 'u', hex[(u >> 12) & 15], hex[(u >> 8) & 15], hex[(u >> 4) & 15], hex[u & 15], 0};
    sb_puts(sb, e);
}

/* N bytes of S as a JSON string. Text that is not UTF-8 (a file name, a
 * token's bytes) is kept losslessly: each byte that does not start a valid
 * sequence becomes the lone surrogate \udcXX, as Python's surrogateescape
 * (os.fsdecode) and json.dumps spell it, so that os.fsencode(json.loads(...))
 * gives the bytes back; a NUL byte is \u0000. */
static void print_string_n(strbuf *sb, const char *s, size_t n, int ensure_ascii) {
    sb_putc(sb, '"');
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p;
        char esc = 0;
        switch (c) {
        case '"': esc = '"'; break;
        case '\\': esc = '\\'; break;
        case '\n': esc = 'n'; break;
        case '\r': esc = 'r'; break;
        case '\t': esc = 't'; break;
        case '\b': esc = 'b'; break;
        case '\f': esc = 'f'; break;
        }
        if (esc) { sb_putc(sb, '\\'); sb_putc(sb, esc); p++; continue; }
        if (c < 0x20 || (ensure_ascii && c == 0x7f)) {
            put_unit(sb, c);
            p++;
            continue;
        }
        if (c < 0x80) { sb_putc(sb, (char)c); p++; continue; }
        size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        if (len > (size_t)(end - p) || kt_utf8_check(p, len) != len) {
            put_unit(sb, 0xdc00 | c); /* not UTF-8: the byte itself, surrogate-escaped */
            p++;
            continue;
        }
        if (!ensure_ascii) {
            sb_append(sb, (const char *)p, len);
            p += len;
            continue;
        }
        unsigned cp = c & (0xff >> (len + 1));
        for (size_t k = 1; k < len; k++) cp = (cp << 6) | (p[k] & 0x3f);
        p += len;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            put_unit(sb, 0xd800 | (cp >> 10));
            put_unit(sb, 0xdc00 | (cp & 0x3ff));
        } else {
            put_unit(sb, cp);
        }
    }
    sb_putc(sb, '"');
}

static void print_string(strbuf *sb, const char *s, int ensure_ascii) { print_string_n(sb, s, strlen(s), ensure_ascii); }

cJSON *kt_json_new_string_n(const char *s, size_t n) {
    strbuf sb = {0};
    print_string_n(&sb, s, n, 0);
    cJSON *item = cJSON_CreateRaw(sb_cstr(&sb));
    sb_free(&sb);
    return item;
}

static void newline_indent(strbuf *sb, const kt_json_style *st, int level) {
    if (st->indent < 0) return;
    sb_putc(sb, '\n');
    for (int i = 0; i < level * st->indent; i++) sb_putc(sb, ' ');
}

static int compare_keys(const void *a, const void *b) {
    return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

static void print_item(strbuf *sb, const cJSON *item, const kt_json_style *st, int level);

static void print_container(strbuf *sb, const cJSON *item, const kt_json_style *st, int level) {
    int is_obj = cJSON_IsObject(item);
    size_t n = 0;
    for (const cJSON *c = item->child; c; c = c->next) n++;
    if (n == 0) { sb_puts(sb, is_obj ? "{}" : "[]"); return; }
    const cJSON **kids = kt_xmalloc(n * sizeof *kids);
    n = 0;
    for (const cJSON *c = item->child; c; c = c->next) kids[n++] = c;
    if (is_obj && st->sort_keys) qsort(kids, n, sizeof *kids, compare_keys);
    sb_putc(sb, is_obj ? '{' : '[');
    for (size_t i = 0; i < n; i++) {
        if (i) sb_puts(sb, st->item_sep);
        newline_indent(sb, st, level + 1);
        if (is_obj) {
            print_string(sb, kids[i]->string, st->ensure_ascii);
            sb_puts(sb, st->key_sep);
        }
        print_item(sb, kids[i], st, level + 1);
    }
    newline_indent(sb, st, level);
    sb_putc(sb, is_obj ? '}' : ']');
    free(kids);
}

static void print_item(strbuf *sb, const cJSON *item, const kt_json_style *st, int level) {
    if (cJSON_IsNull(item)) sb_puts(sb, "null");
    else if (cJSON_IsTrue(item)) sb_puts(sb, "true");
    else if (cJSON_IsFalse(item)) sb_puts(sb, "false");
    else if (kt_json_is_number(item)) print_number(sb, item);
    else if (cJSON_IsString(item)) print_string(sb, item->valuestring, st->ensure_ascii);
    else print_container(sb, item, st, level);
}

char *kt_json_print(const cJSON *item, const kt_json_style *style) {
    strbuf sb = {0};
    print_item(&sb, item, style, 0);
    return sb_take(&sb);
}

/* ----------------------------------------------------------- strict JSON */

static void strict_walk(cJSON *item, strbuf *path, cJSON *flags) {
    int index = 0;
    for (cJSON *c = item->child; c; c = c->next, index++) {
        size_t mark = path->len;
        if (cJSON_IsArray(item)) {
            sb_printf(path, "[%d]", index);
        } else {
            sb_printf(path, "%s%s", mark ? "." : "", c->string ? c->string : "");
        }
        double v;
        if ((cJSON_IsNumber(c) || (cJSON_IsRaw(c) && c->valuestring[0] != '"')) && kt_json_number(c, &v) == 0 &&
            !isfinite(v)) {
            cJSON_AddStringToObject(flags, sb_cstr(path), isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
            if (cJSON_IsRaw(c)) cJSON_free(c->valuestring); /* the item becomes null in place, its key kept */
            c->valuestring = NULL;
            c->type = cJSON_NULL | (c->type & cJSON_StringIsConst);
        } else if (cJSON_IsObject(c) || cJSON_IsArray(c)) {
            strict_walk(c, path, flags);
        }
        path->len = mark;
        if (path->data) path->data[mark] = 0;
    }
}

char *kt_json_print_report(cJSON *root, const kt_json_style *style) {
    cJSON *flags = cJSON_CreateObject();
    strbuf path = {0};
    strict_walk(root, &path, flags);
    sb_free(&path);
    if (flags->child && cJSON_IsObject(root) && !kt_json_get(root, "non_finite")) cJSON_AddItemToObject(root, "non_finite", flags);
    else cJSON_Delete(flags);
    return kt_json_print(root, style);
}
