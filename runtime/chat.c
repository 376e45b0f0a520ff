/* chat.c - see chat.h. */
#include "chat.h"
#include "strbuf.h"

#include <string.h>

/* Python's str.rfind: the last position of NEEDLE, or -1. */
static long rfind(const char *s, const char *needle) {
    long last = -1;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) last = p - s;
    return last;
}

/* Python's str.isspace for the characters str.strip removes (ASCII and the
 * common Unicode spaces). */
static size_t space_at(const char *s, size_t n, size_t i) {
    unsigned char c = (unsigned char)s[i];
    if (c == ' ' || (c >= 9 && c <= 13) || (c >= 28 && c <= 31)) return 1;
    if (i + 1 < n && c == 0xC2 && ((unsigned char)s[i + 1] == 0x85 || (unsigned char)s[i + 1] == 0xA0)) return 2;
    if (i + 2 < n && c == 0xE3 && (unsigned char)s[i + 1] == 0x80 && (unsigned char)s[i + 2] == 0x80) return 3; /* U+3000 */
    if (i + 2 < n && c == 0xE2 && (unsigned char)s[i + 1] == 0x80 &&
        (((unsigned char)s[i + 2] >= 0x80 && (unsigned char)s[i + 2] <= 0x8A) || (unsigned char)s[i + 2] == 0xA8 ||
         (unsigned char)s[i + 2] == 0xA9 || (unsigned char)s[i + 2] == 0xAF))
        return 3;
    if (i + 2 < n && c == 0xE2 && (unsigned char)s[i + 1] == 0x81 && (unsigned char)s[i + 2] == 0x9F) return 3;
    if (i + 2 < n && c == 0xE1 && (unsigned char)s[i + 1] == 0x9A && (unsigned char)s[i + 2] == 0x80) return 3;
    return 0;
}

/* S.strip() appended to OUT */
static void strip_into(strbuf *out, const char *s) {
    size_t n = strlen(s), start = 0, end = n, k;
    while (start < n && (k = space_at(s, n, start))) start += k;
    while (end > start) { /* trailing: step back over whole characters */
        size_t c = end - 1;
        while (c > start && ((unsigned char)s[c] & 0xC0) == 0x80) c--;
        if (!space_at(s, n, c)) break;
        end = c;
    }
    sb_append(out, s + start, end - start);
}

/* S with every NEEDLE removed, in a new buffer. */
static void remove_all(strbuf *out, const char *s, const char *needle) {
    const char *q;
    while ((q = strstr(s, needle))) {
        sb_append(out, s, (size_t)(q - s));
        s = q + strlen(needle);
    }
    sb_puts(out, s);
}

/* content.replace('/no_think', '').replace('/think', '').strip() appended to OUT */
static void clean(strbuf *out, const char *content) {
    strbuf a = {0}, b = {0};
    remove_all(&a, content, "/no_think");
    remove_all(&b, sb_cstr(&a), "/think");
    strip_into(out, sb_cstr(&b));
    sb_free(&a);
    sb_free(&b);
}

char *kt_chat_render(const kt_message *m, size_t n, int *think) {
    int on = 1;
    const char *system = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(m[i].role, "system") && strcmp(m[i].role, "user")) continue;
        long no = rfind(m[i].content, "/no_think"), th = rfind(m[i].content, "/think");
        if (no > th) on = 0;
        else if (th > no) on = 1;
        if (!strcmp(m[i].role, "system")) system = m[i].content;
    }
    strbuf out = {0};
    sb_puts(&out, "<SPECIAL_10>System\n");
    if (system) clean(&out, system);
    sb_puts(&out, "\n");
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(m[i].role, "user")) {
            sb_puts(&out, "<SPECIAL_11>User\n");
            clean(&out, m[i].content);
            sb_puts(&out, "\n");
        } else if (!strcmp(m[i].role, "assistant")) {
            const char *after = m[i].content, *t;
            while ((t = strstr(after, "</think>"))) after = t + 8; /* split('</think>')[-1] */
            sb_puts(&out, "<SPECIAL_11>Assistant\n");
            strip_into(&out, after);
            sb_puts(&out, "\n<SPECIAL_12>\n");
        }
    }
    sb_puts(&out, on ? "<SPECIAL_11>Assistant\n<think>\n" : "<SPECIAL_11>Assistant\n<think></think>");
    *think = on;
    return sb_take(&out);
}

int kt_chat_template_is_nemotron(const char *t) {
    static const char *const markers[] = {"<SPECIAL_10>", "System", "<SPECIAL_11>", "User", "Assistant",
                                          "<SPECIAL_12>", "<think></think>", "/no_think", "/think"};
    for (size_t i = 0; i < sizeof markers / sizeof *markers; i++)
        if (!strstr(t, markers[i])) return 0;
    return 1;
}
