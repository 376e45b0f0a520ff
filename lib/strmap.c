/* strmap.c - linear probing, FNV-1a hash, grown at 50% load. */
#include "strmap.h"
#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

uint64_t kt_hash_bytes(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

void strmap_init(strmap *m, size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2) cap *= 2;
    m->keys = kt_xcalloc(cap, sizeof *m->keys);
    m->klens = kt_xcalloc(cap, sizeof *m->klens);
    m->values = kt_xcalloc(cap, sizeof *m->values);
    m->cap = cap;
    m->count = 0;
}

void strmap_free(strmap *m) {
    free(m->keys);
    free(m->klens);
    free(m->values);
    memset(m, 0, sizeof *m);
}

static size_t find_slot(const strmap *m, const char *key, size_t klen) {
    size_t i = kt_hash_bytes(key, klen) & (m->cap - 1);
    while (m->keys[i] && !(m->klens[i] == klen && memcmp(m->keys[i], key, klen) == 0))
        i = (i + 1) & (m->cap - 1);
    return i;
}

static void grow(strmap *m) {
    strmap bigger;
    strmap_init(&bigger, m->cap);
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) strmap_put(&bigger, m->keys[i], m->klens[i], m->values[i], NULL);
    strmap_free(m);
    *m = bigger;
}

int strmap_put(strmap *m, const char *key, size_t klen, size_t value, size_t *value_out) {
    if ((m->count + 1) * 2 > m->cap) grow(m);
    size_t i = find_slot(m, key, klen);
    if (m->keys[i]) {
        if (value_out) *value_out = m->values[i];
        return 1;
    }
    m->keys[i] = key;
    m->klens[i] = klen;
    m->values[i] = value;
    m->count++;
    return 0;
}

int strmap_get(const strmap *m, const char *key, size_t klen, size_t *value) {
    if (!m->cap) return 0;
    size_t i = find_slot(m, key, klen);
    if (!m->keys[i]) return 0;
    if (value) *value = m->values[i];
    return 1;
}
