/* strmap.h - an open-addressing hash map from byte strings to size_t.
 * Keys are not copied: they must outlive the map. Used for duplicate
 * detection in JSON objects and for name lookups of tensors. */
#ifndef KT_STRMAP_H
#define KT_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char **keys;
    size_t *klens;
    size_t *values;
    size_t cap;   /* power of two */
    size_t count;
} strmap;

void strmap_init(strmap *m, size_t expected);
void strmap_free(strmap *m);
/* Insert or find. Returns 1 and sets *value_out to the existing value when
 * the key is present; otherwise inserts value and returns 0. */
int strmap_put(strmap *m, const char *key, size_t klen, size_t value, size_t *value_out);
/* Returns 1 and sets *value when found, 0 otherwise. */
int strmap_get(const strmap *m, const char *key, size_t klen, size_t *value);
uint64_t kt_hash_bytes(const void *p, size_t n);

#endif
