/* testtool.c - small entry points into the library for the oracle tests.
 *
 *   testtool json-print FILE [INDENT [SORT]]   parse FILE, print it back (Python json.dumps style)
 *   testtool st-rewrite IN OUT                 read IN with the reader, write OUT with the writer
 *   testtool logits MODEL_DIR ID...            the forward pass token by token; prints the
 *                                              logits of every position as JSON
 *   testtool prefill MODEL_DIR ID...           the whole prompt at once; prints the last logits
 *   testtool ewise OP BITS...                  the CPU backend's element-wise OP (relu2, add: x + x)
 *                                              on float32 values given as hex bits; prints the bits
 *   testtool sample CASES                      CASES: a JSON list of {"logits", "history", "top_k",
 *                                              "top_p", "min_p", "repetition_penalty"}; prints for each
 *                                              {"penalized": logits after the penalty, "keep": 0/1 per id}
 *   testtool tokenize TOKENIZER_JSON TEXTS     TEXTS: a JSON list of strings; prints a JSON list
 *                                              of {"ids": [...], "ids_bos": [...], "decoded": "..."}
 *   testtool detokenize FILE.jsonl             {"text": ...} per line; prints the JSON list of
 *                                              kt_wikitext_detokenize of each
 */
#include "documents.h"
#include "error.h"
#include "file.h"
#include "json.h"
#include "backend.h"
#include "model.h"
#include "tokenizer.h"
#include "safetensors.h"
#include "sample.h"

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

static int ewise(int argc, char **argv) {
    int n = argc - 3;
    float *u = calloc((size_t)n + 1, sizeof *u);
    for (int i = 0; i < n; i++) {
        uint32_t b = (uint32_t)strtoul(argv[3 + i], NULL, 16);
        memcpy(&u[i], &b, 4);
    }
    const kt_backend *be = kt_cpu_backend();
    if (!strcmp(argv[2], "relu2")) be->relu2(u, n);
    else if (!strcmp(argv[2], "add")) be->add(u, u, n);
    else {
        free(u);
        return 2;
    }
    for (int i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &u[i], 4);
        printf("%s%08x", i ? " " : "", (unsigned)b);
    }
    printf("\n");
    free(u);
    return 0;
}

static double num_or(const cJSON *o, const char *key, double dflt) {
    double v;
    return kt_json_number(kt_json_get(o, key), &v) == 0 ? v : dflt;
}

static int sample_cases(char **argv) {
    cJSON *cases = kt_json_load_file(argv[2], KT_JSON_DUP_LAST_WINS);
    if (!cJSON_IsArray(cases)) { kt_print_error("testtool"); return 1; }
    cJSON *out = cJSON_CreateArray();
    for (const cJSON *c = cases->child; c; c = c->next) {
        const cJSON *lg = kt_json_get(c, "logits"), *hist = kt_json_get(c, "history");
        int n = cJSON_GetArraySize(lg), nh = cJSON_GetArraySize(hist), i = 0;
        float *logits = calloc((size_t)n + 1, sizeof *logits);
        int32_t *h = calloc((size_t)nh + 1, sizeof *h);
        unsigned char *keep = calloc((size_t)n + 1, 1);
        for (const cJSON *e = lg ? lg->child : NULL; e; e = e->next) {
            double v;
            kt_json_number(e, &v);
            logits[i++] = (float)v;
        }
        i = 0;
        for (const cJSON *e = hist ? hist->child : NULL; e; e = e->next) {
            int64_t v = -1;
            kt_json_i64(e, &v);
            h[i++] = (int32_t)v;
        }
        kt_sampler s = {1.0f, (int)num_or(c, "top_k", 0), (float)num_or(c, "top_p", 1), (float)num_or(c, "min_p", 0),
                        (float)num_or(c, "repetition_penalty", 1), 0};
        kt_sample_penalize(&s, logits, n, h, (size_t)nh);
        kt_sample_filter(&s, logits, n, keep);
        cJSON *r = cJSON_CreateObject(), *pen = cJSON_AddArrayToObject(r, "penalized"),
              *kp = cJSON_AddArrayToObject(r, "keep");
        for (i = 0; i < n; i++) {
            cJSON_AddItemToArray(pen, kt_json_new_float(logits[i]));
            cJSON_AddItemToArray(kp, kt_json_new_int(keep[i]));
        }
        cJSON_AddItemToArray(out, r);
        free(logits), free(h), free(keep);
    }
    char *txt = kt_json_print(out, &KT_JSON_COMPACT_SORTED);
    puts(txt);
    free(txt);
    cJSON_Delete(out);
    cJSON_Delete(cases);
    return 0;
}

static cJSON *id_array(const int32_t *ids, long n) {
    cJSON *a = cJSON_CreateArray();
    for (long i = 0; i < n; i++) cJSON_AddItemToArray(a, kt_json_new_int(ids[i]));
    return a;
}

static int tokenize(char **argv) {
    kt_tokenizer *t = kt_tokenizer_load(argv[2]);
    cJSON *texts = t ? kt_json_load_file(argv[3], KT_JSON_DUP_LAST_WINS) : NULL;
    if (!t || !cJSON_IsArray(texts)) {
        fprintf(stderr, "testtool: %s\n", kt_errmsg());
        kt_tokenizer_free(t);
        cJSON_Delete(texts);
        return 1;
    }
    cJSON *out = cJSON_CreateArray();
    int rc = 0;
    for (cJSON *x = texts->child; x && rc == 0; x = x->next) {
        int32_t *ids = NULL, *ids_bos = NULL;
        const char *s = cJSON_IsString(x) ? x->valuestring : "";
        long n = kt_tokenizer_encode(t, s, strlen(s), 0, &ids);
        long nb = n < 0 ? -1 : kt_tokenizer_encode(t, s, strlen(s), 1, &ids_bos);
        if (n < 0 || nb < 0) {
            fprintf(stderr, "testtool: %s\n", kt_errmsg());
            rc = 1;
        } else {
            size_t dl;
            char *dec = kt_tokenizer_decode(t, ids, (size_t)n, &dl);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToObject(o, "ids", id_array(ids, n));
            cJSON_AddItemToObject(o, "ids_bos", id_array(ids_bos, nb));
            cJSON_AddStringToObject(o, "decoded", dec);
            cJSON_AddItemToArray(out, o);
            free(dec);
        }
        free(ids);
        free(ids_bos);
    }
    if (rc == 0) {
        char *text = kt_json_print(out, &KT_JSON_COMPACT_SORTED);
        printf("%s\n", text);
        free(text);
    }
    cJSON_Delete(out);
    cJSON_Delete(texts);
    kt_tokenizer_free(t);
    return rc;
}

static void print_logits(const float *lg, int n) {
    printf("[");
    for (int j = 0; j < n; j++) printf("%s%.9g", j ? "," : "", lg[j]);
    printf("]");
}

/* logits: token by token, every position; prefill: all at once, the last;
 * every: the first token alone, its state copied into a fresh one, then the
 * rest in one kt_forward_every pass: every position. */
static int forward(int argc, char **argv, int batch) {
    kt_model m;
    if (kt_model_load(&m, argv[2])) {
        fprintf(stderr, "testtool: %s\n", kt_errmsg());
        return 1;
    }
    const char *act = getenv("KT_ACTIVATIONS"); /* as kintsugi-run reads it */
    if (act && !strcmp(act, "int8")) kt_model_set_activations(&m, KT_ACT_INT8);
    kt_state st;
    kt_state_init(&st, &m, argc);
    int n = argc - 3, rc = 0;
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)atoi(argv[3 + i]);
    float *lg = malloc((size_t)m.cfg.vocab * sizeof *lg);
    if (batch == 2) {
        kt_state fresh;
        kt_state_init(&fresh, &m, argc);
        float *all = malloc((size_t)n * m.cfg.vocab * sizeof *all);
        rc = kt_forward(&m, &st, ids[0], all);
        if (rc == 0) rc = kt_state_copy(&fresh, &st, &m);
        if (rc == 0 && n > 1) rc = kt_forward_every(&m, &fresh, ids + 1, n - 1, all + m.cfg.vocab);
        printf("[");
        for (int i = 0; i < n && rc == 0; i++) {
            if (i) printf(",");
            print_logits(all + (size_t)i * m.cfg.vocab, m.cfg.vocab);
        }
        printf("]");
        free(all);
        kt_state_free(&fresh, &m);
    } else if (batch) {
        rc = kt_forward_batch(&m, &st, ids, n, lg);
        if (rc == 0) print_logits(lg, m.cfg.vocab);
    } else {
        printf("[");
        for (int i = 0; i < n && rc == 0; i++) {
            rc = kt_forward(&m, &st, ids[i], lg);
            if (i) printf(",");
            if (rc == 0) print_logits(lg, m.cfg.vocab);
        }
        printf("]");
    }
    printf("\n");
    if (rc) fprintf(stderr, "testtool: %s\n", kt_errmsg());
    free(ids);
    free(lg);
    kt_state_free(&st, &m);
    kt_model_free(&m);
    return rc ? 1 : 0;
}

static int detokenize(char **argv) {
    char *text;
    size_t len;
    kt_documents d;
    if (kt_read_file(argv[2], &text, &len) != 1 || kt_documents_parse(&d, argv[2], text, len)) {
        kt_print_error("testtool");
        return 1;
    }
    cJSON *out = cJSON_CreateArray();
    for (size_t i = 0; i < d.n; i++) {
        size_t n;
        char *t = kt_wikitext_detokenize(d.doc[i].text, d.doc[i].len, &n);
        cJSON_AddItemToArray(out, kt_json_new_string_n(t, n));
        free(t);
    }
    char *s = kt_json_print(out, &KT_JSON_COMPACT_SORTED);
    puts(s);
    free(s), free(text);
    cJSON_Delete(out);
    kt_documents_free(&d);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "json-print")) return json_print(argc, argv);
    if (argc == 4 && !strcmp(argv[1], "st-rewrite")) return st_rewrite(argv);
    if (argc == 4 && !strcmp(argv[1], "tokenize")) return tokenize(argv);
    if (argc >= 4 && !strcmp(argv[1], "ewise")) return ewise(argc, argv);
    if (argc == 3 && !strcmp(argv[1], "sample")) return sample_cases(argv);
    if (argc == 3 && !strcmp(argv[1], "detokenize")) return detokenize(argv);
    if (argc >= 4 && !strcmp(argv[1], "logits")) return forward(argc, argv, 0);
    if (argc >= 4 && !strcmp(argv[1], "prefill")) return forward(argc, argv, 1);
    if (argc >= 4 && !strcmp(argv[1], "every")) return forward(argc, argv, 2);
    fprintf(stderr, "usage: testtool json-print FILE [INDENT [SORT]] | st-rewrite IN OUT\n");
    return 2;
}
