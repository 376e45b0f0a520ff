/* test_safetensors.c - writer output read back by the reader, header bytes,
 * model directory index checks. Malformed files are covered by
 * tests/malformed (one file per rule) and the oracle tests. */
#include "error.h"
#include "harness.h"
#include "model_dir.h"
#include "safetensors.h"
#include "strmap.h"
#include "tests.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[64];

static const char *scratch(void) {
    if (!tmpdir[0]) {
        strcpy(tmpdir, "/tmp/kt-unit-XXXXXX");
        if (!mkdtemp(tmpdir)) abort();
    }
    return tmpdir;
}

static char *scratch_path(const char *name) { return kt_path_join(scratch(), name); }

static int write_two(const char *path) {
    uint64_t s1[2] = {2, 3}, s2[1] = {4};
    st_spec specs[2] = {{"w.weight", KT_F32, 2, s1}, {"a.bias", KT_BF16, 1, s2}};
    st_writer *w = st_writer_create(path, specs, 2, NULL);
    if (!w) return -1;
    float f[6] = {1, 2, 3, 4, 5, 6};
    uint16_t h[4] = {0x3f80, 0x4000, 0x4040, 0x4080};
    if (st_writer_write(w, f, sizeof f) || st_writer_write(w, h, sizeof h)) { st_writer_abort(w); return -1; }
    return st_writer_finish(w);
}

void test_safetensors_roundtrip(void) {
    char *path = scratch_path("two.safetensors");
    CHECK(write_two(path) == 0);
    st_file f;
    CHECK(st_open(&f, path) == 0);
    if (f.path) {
        CHECK(f.n_tensors == 2);
        const st_tensor *t = st_find(&f, "w.weight");
        CHECK(t && t->dtype == KT_F32 && t->ndim == 2 && t->shape[1] == 3 && t->nbytes == 24);
        float v;
        memcpy(&v, t->data + 20, 4);
        CHECK(v == 6.0f);
        const st_tensor *b = st_find(&f, "a.bias");
        CHECK(b && b->begin == 24 && b->end == 32);
        CHECK(st_metadata(&f, "format") && strcmp(st_metadata(&f, "format"), "mlx") == 0);
        st_close(&f);
    }
    unlink(path);
    free(path);
}

void test_safetensors_header_is_mlx_style(void) {
    char *path = scratch_path("hdr.safetensors");
    CHECK(write_two(path) == 0);
    FILE *fp = fopen(path, "rb");
    unsigned char len8[8];
    char hdr[512] = {0};
    CHECK(fp && fread(len8, 1, 8, fp) == 8);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | len8[i];
    CHECK(n < sizeof hdr && fread(hdr, 1, n, fp) == n);
    if (fp) fclose(fp);
    /* sorted keys, compact, data_offsets/dtype/shape, no padding */
    const char *want = "{\"__metadata__\":{\"format\":\"mlx\"},"
                       "\"a.bias\":{\"data_offsets\":[24,32],\"dtype\":\"BF16\",\"shape\":[4]},"
                       "\"w.weight\":{\"data_offsets\":[0,24],\"dtype\":\"F32\",\"shape\":[2,3]}}";
    CHECK_MSG(strcmp(hdr, want) == 0, "got %s", hdr);
    CHECK(n == strlen(want));
    unlink(path);
    free(path);
}

void test_safetensors_writer_counts_bytes(void) {
    char *path = scratch_path("short.safetensors");
    uint64_t s1[1] = {4};
    st_spec spec = {"x", KT_F32, 1, s1};
    st_writer *w = st_writer_create(path, &spec, 1, NULL);
    CHECK(w != NULL);
    float f[5] = {0};
    CHECK(st_writer_write(w, f, 8) == 0);
    CHECK(st_writer_write(w, f, 20) == -1);  /* more than announced */
    CHECK(st_writer_finish(w) == -1);        /* 8 of 16 bytes: refused */
    CHECK(access(path, F_OK) != 0);          /* and nothing left behind */
    st_spec dup[2] = {spec, spec};
    CHECK(st_writer_create(path, dup, 2, NULL) == NULL);
    free(path);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

void test_model_dir_index_checks(void) {
    char dir[80];
    snprintf(dir, sizeof dir, "%s/model", scratch());
    mkdir(dir, 0755);
    char *shard = kt_path_join(dir, "model-00001-of-00001.safetensors");
    char *index = kt_path_join(dir, "model.safetensors.index.json");
    CHECK(write_two(shard) == 0);
    kt_model_files m;
    write_text(index, "{\"metadata\": {}, \"weight_map\": {\"w.weight\": \"model-00001-of-00001.safetensors\","
                      " \"a.bias\": \"model-00001-of-00001.safetensors\"}}");
    CHECK(kt_model_open(&m, dir) == 0);
    if (m.dir) { CHECK(m.n_tensors == 2 && m.n_unlisted == 0); kt_model_close(&m); }
    /* a tensor missing from the map */
    write_text(index, "{\"weight_map\": {\"w.weight\": \"model-00001-of-00001.safetensors\"}}");
    CHECK(kt_model_open(&m, dir) == -1);
    CHECK(strstr(kt_errmsg(), "\"a.bias\"") && strstr(kt_errmsg(), "missing from"));
    /* a listed shard that does not exist */
    write_text(index, "{\"weight_map\": {\"w.weight\": \"model-00002-of-00002.safetensors\"}}");
    CHECK(kt_model_open(&m, dir) == -1);
    CHECK(strstr(kt_errmsg(), "does not exist") != NULL);
    /* an unlisted model*.safetensors is reported */
    write_text(index, "{\"weight_map\": {\"w.weight\": \"model-00001-of-00001.safetensors\","
                      " \"a.bias\": \"model-00001-of-00001.safetensors\"}}");
    char *stale = kt_path_join(dir, "model-old.safetensors");
    CHECK(write_two(stale) == 0);
    CHECK(kt_model_open(&m, dir) == 0);
    if (m.dir) { CHECK(m.n_unlisted == 1 && strcmp(m.unlisted[0], "model-old.safetensors") == 0); kt_model_close(&m); }
    unlink(stale); unlink(shard); unlink(index); rmdir(dir);
    free(stale); free(shard); free(index);
}

void test_strmap_many_keys(void) {
    strmap m;
    strmap_init(&m, 4);
    enum { N = 20000 };
    char (*keys)[16] = malloc(N * sizeof *keys);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        CHECK(strmap_put(&m, keys[i], strlen(keys[i]), (size_t)i, NULL) == 0);
    }
    size_t v = 0, misses = 0;
    for (int i = 0; i < N; i++) misses += !(strmap_get(&m, keys[i], strlen(keys[i]), &v) && v == (size_t)i);
    CHECK(misses == 0);
    CHECK(!strmap_get(&m, "nope", 4, &v));
    CHECK(strmap_put(&m, "k7", 2, 99, &v) == 1 && v == 7);
    strmap_free(&m);
    free(keys);
    rmdir(scratch());
}
