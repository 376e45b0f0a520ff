/* safetensors_read.c - map a .safetensors file and enforce the format rules.
 *
 * Rules (those of the reference implementation, each with its own message):
 *   1. at least 8 bytes; header length N little-endian u64, N <= 100,000,000,
 *      8 + N <= file size;
 *   2. header is valid UTF-8, starts with '{', is one JSON object (trailing
 *      spaces allowed), no key twice;
 *   3. "__metadata__", if present and not null, maps strings to strings;
 *   4. every other entry is an object with a known "dtype" string, a "shape"
 *      of non-negative integers and "data_offsets" [begin, end] of
 *      non-negative integers with begin <= end;
 *   5. element count and byte size fit in 64 bits; end - begin equals the
 *      byte size;
 *   6. sorted by begin, the tensors tile the data area exactly: the first
 *      starts at 0, each starts where the previous ended, the last ends at the
 *      end of the file.
 */
#include "safetensors.h"
#include "error.h"
#include "strbuf.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int st_sizes(kt_dtype t, int ndim, const uint64_t *shape, uint64_t *nelem, uint64_t *nbytes) {
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] != 0 && n > UINT64_MAX / shape[i]) return -1;
        n *= shape[i];
    }
    uint64_t bits = kt_dtype_bits(t);
    if (n > UINT64_MAX / bits) return -1;
    if ((n * bits) % 8 != 0) return -1;
    *nelem = n;
    *nbytes = n * bits / 8;
    return 0;
}

static void free_tensors(st_file *f) {
    for (size_t i = 0; i < f->n_tensors; i++) {
        free(f->tensors[i].name);
        free(f->tensors[i].shape);
    }
    free(f->tensors);
    f->tensors = NULL;
    f->n_tensors = 0;
}

void st_close(st_file *f) {
    free_tensors(f);
    if (f->by_name.cap) strmap_free(&f->by_name);
    if (f->metadata) cJSON_Delete(f->metadata);
    if (f->map && f->map_len) munmap(f->map, f->map_len);
    free(f->heap);
    free(f->path);
    memset(f, 0, sizeof *f);
}

static int parse_metadata(st_file *f, cJSON *item) {
    /* mx.save_safetensors without metadata writes null; the reference
     * reader treats the field as optional, so null means "none". */
    if (cJSON_IsNull(item)) return 0;
    if (!cJSON_IsObject(item))
        return kt_fail("%s: __metadata__ is not an object of strings", f->path);
    for (cJSON *c = item->child; c; c = c->next)
        if (!cJSON_IsString(c))
            return kt_fail("%s: __metadata__ value of \"%s\" is not a string", f->path, c->string);
    f->metadata = cJSON_Duplicate(item, 1);
    return 0;
}

/* Fill T from the header entry ITEM (rules 4 and 5). */
static int parse_tensor(st_file *f, st_tensor *t, cJSON *item) {
    const char *name = item->string;
    t->name = kt_xstrdup(name);
    if (!cJSON_IsObject(item))
        return kt_fail("%s: tensor \"%s\": entry is not an object", f->path, name);
    cJSON *dtype = kt_json_get(item, "dtype");
    cJSON *shape = kt_json_get(item, "shape");
    cJSON *offsets = kt_json_get(item, "data_offsets");
    if (!dtype || !shape || !offsets)
        return kt_fail("%s: tensor \"%s\": missing \"%s\"", f->path, name,
                       !dtype ? "dtype" : !shape ? "shape" : "data_offsets");
    int dt = cJSON_IsString(dtype) ? kt_dtype_from_name(dtype->valuestring) : -1;
    if (dt < 0)
        return kt_fail("%s: tensor \"%s\": unknown dtype %s", f->path, name,
                       cJSON_IsString(dtype) ? dtype->valuestring : "(not a string)");
    t->dtype = (kt_dtype)dt;
    if (!cJSON_IsArray(shape))
        return kt_fail("%s: tensor \"%s\": shape is not an array", f->path, name);
    int ndim = cJSON_GetArraySize(shape);
    t->shape = kt_xcalloc((size_t)(ndim ? ndim : 1), sizeof *t->shape);
    t->ndim = ndim;
    int d = 0;
    for (cJSON *c = shape->child; c; c = c->next, d++)
        if (kt_json_u64(c, &t->shape[d]))
            return kt_fail("%s: tensor \"%s\": shape[%d] is not a non-negative integer", f->path, name, d);
    if (st_sizes(t->dtype, ndim, t->shape, &t->nelem, &t->nbytes))
        return kt_fail("%s: tensor \"%s\": shape overflows 64 bits (or does not fill whole bytes)",
                       f->path, name);
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 ||
        kt_json_u64(offsets->child, &t->begin) || kt_json_u64(offsets->child->next, &t->end))
        return kt_fail("%s: tensor \"%s\": data_offsets is not [begin, end] of non-negative integers",
                       f->path, name);
    if (t->begin > t->end)
        return kt_fail("%s: tensor \"%s\": data_offsets begin %llu is after end %llu", f->path, name,
                       (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->end - t->begin != t->nbytes)
        return kt_fail("%s: tensor \"%s\": data_offsets span %llu bytes but %s%s needs %llu",
                       f->path, name, (unsigned long long)(t->end - t->begin),
                       kt_dtype_name(t->dtype), ndim ? " of that shape" : " scalar",
                       (unsigned long long)t->nbytes);
    return 0;
}

static int by_begin(const void *a, const void *b) {
    const st_tensor *x = *(st_tensor *const *)a, *y = *(st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Rule 6: the tensors tile the data area. */
static int check_tiling(st_file *f) {
    st_tensor **order = kt_xmalloc((f->n_tensors ? f->n_tensors : 1) * sizeof *order);
    for (size_t i = 0; i < f->n_tensors; i++) order[i] = &f->tensors[i];
    qsort(order, f->n_tensors, sizeof *order, by_begin);
    uint64_t pos = 0;
    const char *prev = NULL;
    int rc = 0;
    for (size_t i = 0; i < f->n_tensors && rc == 0; i++) {
        st_tensor *t = order[i];
        if (t->begin < pos)
            rc = kt_fail("%s: tensor \"%s\": data_offsets [%llu, %llu] overlap tensor \"%s\" ending at %llu",
                         f->path, t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                         prev, (unsigned long long)pos);
        else if (t->begin > pos)
            rc = kt_fail("%s: tensor \"%s\": gap of %llu bytes before data_offsets begin %llu",
                         f->path, t->name, (unsigned long long)(t->begin - pos),
                         (unsigned long long)t->begin);
        pos = t->end;
        prev = t->name;
    }
    if (rc == 0 && pos != f->data_len)
        rc = pos > f->data_len
            ? kt_fail("%s: tensor \"%s\": data ends at %llu, past the end of the file (data area is %llu bytes)",
                      f->path, prev, (unsigned long long)pos, (unsigned long long)f->data_len)
            : kt_fail("%s: %llu trailing bytes after the last tensor's data", f->path,
                      (unsigned long long)(f->data_len - pos));
    for (size_t i = 0; i < f->n_tensors && rc == 0 && f->data; i++)
        f->tensors[i].data = f->data + f->tensors[i].begin;
    free(order);
    return rc;
}

static int parse_header(st_file *f) {
    const char *hdr = (const char *)f->map + 8;
    size_t n = (size_t)f->header_len;
    size_t bad = kt_utf8_check((const unsigned char *)hdr, n);
    if (bad != n) return kt_fail("%s: header is not valid UTF-8 (byte %zu)", f->path, bad);
    if (n == 0 || hdr[0] != '{') return kt_fail("%s: header does not start with '{'", f->path);
    cJSON *root = kt_json_parse(hdr, n, KT_JSON_DUP_ERROR, f->path);
    if (!root) {
        const char *dup = strstr(kt_errmsg(), "duplicate key \"");
        if (dup) {
            char name[512];
            snprintf(name, sizeof name, "%s", dup + strlen("duplicate key "));
            kt_fail("%s: duplicate tensor name %s in the header", f->path, name);
        }
        return -1;
    }
    int rc = 0;
    if (!cJSON_IsObject(root)) rc = kt_fail("%s: header is not a JSON object", f->path);
    size_t count = 0;
    for (cJSON *c = root->child; c; c = c->next) count++;
    f->tensors = kt_xcalloc(count ? count : 1, sizeof *f->tensors);
    strmap_init(&f->by_name, count);
    for (cJSON *c = root->child; c && rc == 0; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0) {
            rc = parse_metadata(f, c);
            continue;
        }
        st_tensor *t = &f->tensors[f->n_tensors++];
        rc = parse_tensor(f, t, c);
        if (rc == 0) strmap_put(&f->by_name, t->name, strlen(t->name), f->n_tensors - 1, NULL);
    }
    cJSON_Delete(root);
    return rc ? rc : check_tiling(f);
}

int st_open(st_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    f->path = kt_xstrdup(path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        kt_fail_io("%s: cannot open: %s", path, kt_errno_text(errno));
        st_close(f);
        return -1;
    }
    struct stat sb;
    int rc = 0;
    if (fstat(fd, &sb) != 0) rc = kt_fail_io("%s: cannot stat: %s", path, kt_errno_text(errno));
    else if (!S_ISREG(sb.st_mode)) rc = kt_fail_io("%s: not a regular file", path);
    else if (sb.st_size < 8)
        rc = kt_fail("%s: file is %lld bytes, too short for the 8-byte header length", path,
                     (long long)sb.st_size);
    if (rc == 0) {
        f->map_len = (size_t)sb.st_size;
        void *m = mmap(NULL, f->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            f->map_len = 0;
            rc = kt_fail_io("%s: cannot map: %s", path, kt_errno_text(errno));
        } else {
            f->map = m;
        }
    }
    close(fd);
    if (rc == 0) {
        const uint8_t *p = f->map;
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--) n = (n << 8) | p[i];
        f->header_len = n;
        if (n > ST_MAX_HEADER)
            rc = kt_fail("%s: header length %llu is over the limit of %llu bytes", path,
                         (unsigned long long)n, ST_MAX_HEADER);
        else if (n > f->map_len - 8)
            rc = kt_fail("%s: header length %llu runs past the end of the file (%zu bytes)", path,
                         (unsigned long long)n, f->map_len);
    }
    if (rc == 0) {
        f->data = f->map + 8 + f->header_len;
        f->data_len = f->map_len - 8 - f->header_len;
        rc = parse_header(f);
    }
    if (rc != 0) st_close(f);
    return rc;
}

int st_open_header(st_file *f, const char *label, const uint8_t *head, size_t head_len, uint64_t file_size) {
    memset(f, 0, sizeof *f);
    f->path = kt_xstrdup(label);
    int rc = 0;
    uint64_t n = 0;
    if (head_len < 8 || file_size < 8) {
        rc = kt_fail("%s: file is too short for the 8-byte header length", label);
    } else {
        for (int i = 7; i >= 0; i--) n = (n << 8) | head[i];
        if (n > ST_MAX_HEADER)
            rc = kt_fail("%s: header length %llu is over the limit of %llu bytes", label, (unsigned long long)n,
                         ST_MAX_HEADER);
        else if (n > file_size - 8)
            rc = kt_fail("%s: header length %llu runs past the end of the file (%llu bytes)", label,
                         (unsigned long long)n, (unsigned long long)file_size);
        else if (head_len < 8 + n)
            rc = kt_fail("%s: only %zu bytes of the header given", label, head_len);
    }
    if (rc == 0) {
        /* a private copy of the header; the tensors have no data yet */
        f->heap = kt_xmalloc((size_t)(8 + n));
        memcpy(f->heap, head, (size_t)(8 + n));
        f->map = f->heap;
        f->header_len = n;
        f->data = NULL;
        f->data_len = file_size - 8 - n;
        rc = parse_header(f);
    }
    if (rc != 0) st_close(f);
    return rc;
}

const st_tensor *st_find(const st_file *f, const char *name) {
    size_t i;
    if (!strmap_get(&f->by_name, name, strlen(name), &i)) return NULL;
    return &f->tensors[i];
}

const char *st_metadata(const st_file *f, const char *key) {
    cJSON *v = f->metadata ? kt_json_get(f->metadata, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
