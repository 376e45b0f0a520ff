/* testtool.c - small entry points into the library for the oracle tests.
 *
 *   testtool json-print FILE [INDENT [SORT]]   parse FILE, print it back (Python json.dumps style)
 *   testtool st-rewrite IN OUT                 read IN with the reader, write OUT with the writer
 */
#include "error.h"
#include "json.h"
#include "safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int json_print(int argc, char **argv) {
    cJSON *j = kt_json_load_file(argv[2], KT_JSON_DUP_LAST_WINS);
    if (!j) { kt_print_error("testtool"); return 1; }
    kt_json_style st = KT_JSON_PYTHON_INDENT4;
    if (argc > 3) st.indent = atoi(argv[3]);
    if (argc > 4) st.sort_keys = atoi(argv[4]);
    char *s = kt_json_print(j, &st);
    fputs(s, stdout);
    free(s);
    cJSON_Delete(j);
    return 0;
}

static int st_rewrite(char **argv) {
    st_file in;
    if (st_open(&in, argv[2])) { kt_print_error("testtool"); return 1; }
    st_spec *specs = calloc(in.n_tensors + 1, sizeof *specs);
    for (size_t i = 0; i < in.n_tensors; i++)
        specs[i] = (st_spec){in.tensors[i].name, in.tensors[i].dtype, in.tensors[i].ndim, in.tensors[i].shape};
    st_writer *w = st_writer_create(argv[3], specs, in.n_tensors, in.metadata);
    int rc = w ? 0 : -1;
    for (size_t i = 0; i < in.n_tensors && rc == 0; i++)
        rc = st_writer_write(w, in.tensors[i].data, (size_t)in.tensors[i].nbytes);
    if (w) rc = rc ? (st_writer_abort(w), -1) : st_writer_finish(w);
    if (rc) kt_print_error("testtool");
    free(specs);
    st_close(&in);
    return rc ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "json-print")) return json_print(argc, argv);
    if (argc == 4 && !strcmp(argv[1], "st-rewrite")) return st_rewrite(argv);
    fprintf(stderr, "usage: testtool json-print FILE [INDENT [SORT]] | st-rewrite IN OUT\n");
    return 2;
}
