/* fuzz_model.c - the model loader on a config.json and a safetensors
 * header with no data, as kintsugi-convert checks an archive's source
 * (kt_model_check_files): whatever the two say, the loader answers with a
 * verdict, never a crash, undefined behaviour or a leak.
 *
 * Input: a 2-byte little-endian length N, N bytes of config.json, then a
 * safetensors header (8-byte length and JSON), the file size being what the
 * header declares. */
#include "json.h"
#include "model.h"
#include "model_dir.h"
#include "safetensors.h"

#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t n = (size_t)data[0] | (size_t)data[1] << 8;
    if (n > size - 2) return 0;
    cJSON *cfg = kt_json_parse((const char *)data + 2, n, KT_JSON_DUP_LAST_WINS, "config.json");
    if (!cfg) return 0;
    const uint8_t *head = data + 2 + n;
    size_t head_len = size - 2 - n;
    uint64_t declared = 0;
    for (int i = 7; i >= 0 && head_len >= 8; i--) declared = declared << 8 | head[i];
    if (head_len < 8 || declared > head_len - 8) {
        cJSON_Delete(cfg);
        return 0;
    }
    /* the data area ends at the largest end offset the header names */
    uint64_t end = 0;
    cJSON *h = kt_json_parse((const char *)head + 8, (size_t)declared, 0, "header");
    for (cJSON *t = h ? h->child : NULL; t; t = t->next) {
        cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
        uint64_t v;
        if (cJSON_GetArraySize(off) == 2 && kt_json_u64(cJSON_GetArrayItem(off, 1), &v) == 0 && v > end) end = v;
    }
    cJSON_Delete(h);
    st_file *shard = calloc(1, sizeof *shard);
    if (end > (uint64_t)1 << 50 || st_open_header(shard, "model.safetensors", head, head_len, 8 + declared + end)) {
        free(shard);
        cJSON_Delete(cfg);
        return 0;
    }
    char **names = calloc(1, sizeof *names);
    names[0] = strdup("model.safetensors");
    kt_model_files files;
    if (kt_model_from_shards(&files, "fuzz", shard, names, 1, NULL) == 0) {
        char *unused = NULL;
        int rc = kt_model_check_files(cfg, &files, "mtp.", &unused);
        if (getenv("KT_FUZZ_VERBOSE")) /* to see what a seed reaches */
            fprintf(stderr, "verdict: %s%s\n", rc ? kt_errmsg() : "loads", unused ? " (with an unused tensor)" : "");
        free(unused);
        kt_model_close(&files);
    }
    cJSON_Delete(cfg);
    return 0;
}
