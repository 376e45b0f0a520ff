/* strbuf.h - a growable byte buffer for building text. Allocation failure
 * aborts: the tools cannot do anything useful without memory for a header. */
#ifndef KT_STRBUF_H
#define KT_STRBUF_H

#include <stdarg.h>
#include <stddef.h>
#include "error.h"

typedef struct {
    char *data; /* always NUL-terminated when len > 0 or after sb_cstr */
    size_t len;
    size_t cap;
} strbuf;

void sb_reserve(strbuf *sb, size_t extra);
void sb_append(strbuf *sb, const char *s, size_t n);
void sb_puts(strbuf *sb, const char *s);
void sb_putc(strbuf *sb, char c);
void sb_printf(strbuf *sb, const char *fmt, ...) KT_PRINTF(2, 3);
void sb_vprintf(strbuf *sb, const char *fmt, va_list ap) KT_PRINTF(2, 0);
/* The text so far, NUL-terminated (never NULL). */
const char *sb_cstr(strbuf *sb);
/* Hand the buffer to the caller (free() it); the strbuf is emptied. */
char *sb_take(strbuf *sb);
void sb_free(strbuf *sb);

/* Allocation helpers that abort with a message on out-of-memory. */
/* 1 when S begins / ends with the given text. */
int kt_starts_with(const char *s, const char *prefix);
/* The first NEEDLE (M bytes) in S (N bytes, NUL bytes included), or NULL:
 * memmem, which C11 lacks. */
const char *kt_find_bytes(const char *s, size_t n, const char *needle, size_t m);
int kt_ends_with(const char *s, const char *suffix);

void *kt_xmalloc(size_t n);
void *kt_xcalloc(size_t n, size_t size);
void *kt_xrealloc(void *p, size_t n);
char *kt_xstrdup(const char *s);

#endif
