/* kintsugi-verify - check a safetensors file or a model directory.
 *
 * This first form validates the structure (every rule of the safetensors
 * format, the shard index against the shards) and lists the tensors.
 * Exit codes: 0 valid, 1 a check failed, 2 usage or I/O error.
 */
#include "error.h"
#include "json.h"
#include "model_dir.h"
#include "safetensors.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *PROG = "kintsugi-verify";

static void usage(FILE *out) {
    fprintf(out,
            "usage: %s [--json] [--quiet] PATH\n"
            "\n"
            "Check a .safetensors file or a model directory (model.safetensors, or shards\n"
            "with model.safetensors.index.json) and list its tensors.\n"
            "\n"
            "  --json    print a JSON report on stdout instead of the table\n"
            "  --quiet   print nothing but errors\n"
            "  -h, --help  this text\n"
            "\n"
            "exit status: 0 valid, 1 a check failed, 2 usage or I/O error\n",
            PROG);
}

static void shape_text(const st_tensor *t, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < t->ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, "%s%llu", d ? ", " : "", (unsigned long long)t->shape[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

static cJSON *tensor_json(const st_tensor *t, const char *file) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", t->name);
    cJSON_AddStringToObject(o, "dtype", kt_dtype_name(t->dtype));
    cJSON *shape = cJSON_AddArrayToObject(o, "shape");
    for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(shape, kt_json_new_int((long long)t->shape[d]));
    cJSON_AddItemToObject(o, "bytes", kt_json_new_int((long long)t->nbytes));
    cJSON_AddStringToObject(o, "file", file);
    return o;
}

static void print_table_row(const st_tensor *t) {
    char shape[256];
    shape_text(t, shape, sizeof shape);
    printf("%-60s %-8s %-24s %14llu\n", t->name, kt_dtype_name(t->dtype), shape,
           (unsigned long long)t->nbytes);
}

static int report(const kt_model_files *m, const char *path, int json, int quiet) {
    int status = m->n_unlisted ? 1 : 0;
    uint64_t total = 0;
    for (size_t i = 0; i < m->n_tensors; i++) total += kt_model_tensor(m, i)->nbytes;
    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "path", path);
        cJSON_AddBoolToObject(root, "ok", status == 0);
        cJSON *files = cJSON_AddArrayToObject(root, "files");
        for (size_t s = 0; s < m->n_shards; s++) cJSON_AddItemToArray(files, cJSON_CreateString(m->shard_names[s]));
        cJSON *unl = cJSON_AddArrayToObject(root, "unlisted_shards");
        for (size_t s = 0; s < m->n_unlisted; s++) cJSON_AddItemToArray(unl, cJSON_CreateString(m->unlisted[s]));
        cJSON_AddItemToObject(root, "total_bytes", kt_json_new_int((long long)total));
        cJSON *ts = cJSON_AddArrayToObject(root, "tensors");
        for (size_t i = 0; i < m->n_tensors; i++)
            cJSON_AddItemToArray(ts, tensor_json(kt_model_tensor(m, i), m->shard_names[m->refs[i].shard]));
        char *text = kt_json_print(root, &KT_JSON_PYTHON_INDENT4);
        puts(text);
        free(text);
        cJSON_Delete(root);
    } else if (!quiet) {
        printf("%-60s %-8s %-24s %14s\n", "tensor", "dtype", "shape", "bytes");
        for (size_t i = 0; i < m->n_tensors; i++) print_table_row(kt_model_tensor(m, i));
        printf("%zu tensors in %zu file(s), %llu bytes\n", m->n_tensors, m->n_shards,
               (unsigned long long)total);
    }
    for (size_t s = 0; s < m->n_unlisted; s++)
        fprintf(stderr, "%s: %s/%s: shard not listed in model.safetensors.index.json "
                        "(mlx-lm loads it anyway; move it aside: kintsugi-fixup --fix-shards)\n",
                PROG, m->dir, m->unlisted[s]);
    return status;
}

int main(int argc, char **argv) {
    int json = 0, quiet = 0;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) quiet = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "%s: unknown option %s (see --help)\n", PROG, argv[i]);
            return 2;
        } else if (path) {
            fprintf(stderr, "%s: more than one PATH given (see --help)\n", PROG);
            return 2;
        } else path = argv[i];
    }
    if (!path) { usage(stderr); return 2; }
    kt_model_files m;
    int rc = kt_is_dir(path) ? kt_model_open(&m, path) : kt_model_open_file(&m, path);
    if (rc) {
        kt_print_error(PROG);
        if (json) {
            cJSON *root = cJSON_CreateObject();
            cJSON_AddStringToObject(root, "path", path);
            cJSON_AddBoolToObject(root, "ok", 0);
            cJSON_AddStringToObject(root, "error", kt_errmsg());
            char *text = kt_json_print(root, &KT_JSON_PYTHON_INDENT4);
            puts(text);
            free(text);
            cJSON_Delete(root);
        }
        return kt_errkind() == KT_ERR_IO ? 2 : 1;
    }
    int status = report(&m, path, json, quiet);
    kt_model_close(&m);
    return status;
}
