/* safetensors_write.c - stream tensors into a .safetensors file.
 *
 * The header is what MLX writes: compact JSON, keys sorted bytewise,
 * "__metadata__" among them, per-tensor keys in the order data_offsets,
 * dtype, shape, and no padding. Data follows in the caller's order.
 */
#include "safetensors.h"
#include "atomic_file.h"
#include "error.h"
#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

struct st_writer {
    kt_atomic out;
    uint64_t *ends;       /* cumulative end offset per tensor */
    uint64_t written;     /* data bytes written so far */
    uint64_t total;       /* data bytes expected */
    uint64_t file_size;
    char *path;
};

static char *build_header(const st_spec *specs, size_t n, const cJSON *metadata, uint64_t *ends) {
    cJSON *root = cJSON_CreateObject();
    if (!metadata) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        cJSON_AddStringToObject(m, "format", "mlx");
    } else if (metadata->child) {
        cJSON_AddItemToObject(root, "__metadata__", cJSON_Duplicate(metadata, 1));
    }
    uint64_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t nelem, nbytes;
        if (st_sizes(specs[i].dtype, specs[i].ndim, specs[i].shape, &nelem, &nbytes)) {
            kt_fail("tensor \"%s\": shape overflows", specs[i].name);
            cJSON_Delete(root);
            return NULL;
        }
        cJSON *t = cJSON_CreateObject();
        cJSON *offs = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(offs, kt_json_new_int((long long)pos));
        cJSON_AddItemToArray(offs, kt_json_new_int((long long)(pos + nbytes)));
        cJSON_AddStringToObject(t, "dtype", kt_dtype_name(specs[i].dtype));
        cJSON *shape = cJSON_AddArrayToObject(t, "shape");
        for (int d = 0; d < specs[i].ndim; d++)
            cJSON_AddItemToArray(shape, kt_json_new_int((long long)specs[i].shape[d]));
        cJSON_AddItemToObject(root, specs[i].name, t);
        pos += nbytes;
        ends[i] = pos;
    }
    char *text = kt_json_print(root, &KT_JSON_COMPACT_SORTED);
    cJSON_Delete(root);
    return text;
}

st_writer *st_writer_create(const char *path, const st_spec *specs, size_t n, const cJSON *metadata) {
    strmap names;
    strmap_init(&names, n);
    for (size_t i = 0; i < n; i++) {
        if (strmap_put(&names, specs[i].name, strlen(specs[i].name), i, NULL)) {
            kt_fail("%s: tensor \"%s\" given twice", path, specs[i].name);
            strmap_free(&names);
            return NULL;
        }
    }
    strmap_free(&names);
    st_writer *w = kt_xcalloc(1, sizeof *w);
    w->ends = kt_xcalloc(n ? n : 1, sizeof *w->ends);
    w->path = kt_xstrdup(path);
    char *header = build_header(specs, n, metadata, w->ends);
    if (!header) { kt_fail_context("%s", path); st_writer_abort(w); return NULL; }
    size_t hlen = strlen(header);
    w->total = n ? w->ends[n - 1] : 0;
    w->file_size = 8 + hlen + w->total;
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    int rc = kt_atomic_open(&w->out, path);
    if (rc == 0) rc = kt_atomic_write(&w->out, len8, 8);
    if (rc == 0) rc = kt_atomic_write(&w->out, header, hlen);
    free(header);
    if (rc) { st_writer_abort(w); return NULL; }
    return w;
}

int st_writer_write(st_writer *w, const void *data, size_t n) {
    if (w->written + n > w->total)
        return kt_fail("%s: %zu more bytes than the header announced", w->path,
                       (size_t)(w->written + n - w->total));
    if (kt_atomic_write(&w->out, data, n)) return -1;
    w->written += n;
    return 0;
}

uint64_t st_writer_file_size(const st_writer *w) { return w->file_size; }

int st_writer_finish(st_writer *w) {
    int rc = 0;
    if (w->written != w->total) {
        rc = kt_fail("%s: only %llu of %llu data bytes were written", w->path,
                     (unsigned long long)w->written, (unsigned long long)w->total);
        kt_atomic_abort(&w->out);
    } else {
        rc = kt_atomic_commit(&w->out);
    }
    free(w->ends);
    free(w->path);
    free(w);
    return rc;
}

void st_writer_abort(st_writer *w) {
    if (!w) return;
    kt_atomic_abort(&w->out);
    free(w->ends);
    free(w->path);
    free(w);
}
