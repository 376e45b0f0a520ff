/* safetensors.h - strict reader (mmap) and streaming writer.
 *
 * File layout: 8 bytes little-endian header length N, N bytes of UTF-8 JSON
 * (an object: tensor name -> {dtype, shape, data_offsets}, plus an optional
 * "__metadata__" string map), then the tensor bytes. The reader enforces every
 * rule of the format before handing out a single pointer, so a tensor's
 * `data` can be read for exactly `nbytes` without further checks.
 */
#ifndef KT_SAFETENSORS_H
#define KT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "dtype.h"
#include "json.h"
#include "strmap.h"

#define ST_MAX_HEADER 100000000ull /* the reference implementation's limit */

typedef struct {
    char *name;
    kt_dtype dtype;
    int ndim;
    uint64_t *shape;        /* [ndim] */
    uint64_t nelem;
    uint64_t nbytes;
    uint64_t begin, end;    /* data_offsets, relative to the data area */
    const uint8_t *data;    /* begin of the bytes inside the mapping */
} st_tensor;

typedef struct {
    char *path;
    uint8_t *map;           /* whole file, read-only */
    size_t map_len;
    uint64_t header_len;
    const uint8_t *data;    /* data area */
    uint64_t data_len;
    cJSON *metadata;        /* the "__metadata__" object, or NULL */
    st_tensor *tensors;     /* in header order */
    size_t n_tensors;
    strmap by_name;
    uint8_t *heap;          /* st_open_header: the header copy (no mapping) */
} st_file;

/* Open and validate PATH. On failure returns -1, kt_errmsg() names the file,
 * the tensor and the rule, and *f needs no st_close(). */
int st_open(st_file *f, const char *path);
void st_close(st_file *f);
/* Validate a file seen only through its beginning: HEAD holds the 8-byte
 * length and the whole header, FILE_SIZE is the size of the whole file (an
 * archive entry read as a stream). Every rule is checked; the tensors' data
 * pointers stay NULL until the caller reads the bytes. LABEL names the file
 * in messages. */
int st_open_header(st_file *f, const char *label, const uint8_t *head, size_t head_len, uint64_t file_size);
/* Tensor by name, or NULL. */
const st_tensor *st_find(const st_file *f, const char *name);
/* Value of a __metadata__ key, or NULL. */
const char *st_metadata(const st_file *f, const char *key);

/* ---- writer ---- */

typedef struct {
    const char *name;
    kt_dtype dtype;
    int ndim;
    const uint64_t *shape;
} st_spec;

typedef struct st_writer st_writer;

/* Create PATH (through a temporary sibling, renamed by st_writer_finish).
 * The header is written at once from SPECS, so every tensor's dtype and shape
 * must be known up front; the data then follows in the order of SPECS.
 * METADATA: a JSON object of strings for "__metadata__"; NULL means
 * {"format":"mlx"}; an empty object writes no "__metadata__". */
st_writer *st_writer_create(const char *path, const st_spec *specs, size_t n, const cJSON *metadata);
/* Append bytes of the current tensor (and the following ones). */
int st_writer_write(st_writer *w, const void *data, size_t n);
/* Check that every byte was written, flush, fsync and rename into place. */
int st_writer_finish(st_writer *w);
/* Remove the temporary file and free the writer (after an error). */
void st_writer_abort(st_writer *w);
/* Bytes the finished file will have. */
uint64_t st_writer_file_size(const st_writer *w);

/* Element count and byte size with overflow checks. Returns -1 on overflow. */
int st_sizes(kt_dtype t, int ndim, const uint64_t *shape, uint64_t *nelem, uint64_t *nbytes);

#endif
