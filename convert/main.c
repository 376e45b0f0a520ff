/* kintsugi-convert - a Hugging Face Nemotron-H checkpoint to an MLX model
 * directory: the tensors mlx_lm.convert -q would write, bit for bit, a
 * config.json that needs no hand edits, the tokenizer files as they were.
 *
 * Flow: open the source (lib/model_dir.c), read config.json, plan every
 * output tensor (plan.c), then stream: one tensor at a time is cast and
 * quantized (rows in parallel) and appended to its shard, while the kernel
 * reads the next one ahead. config.json, the index, the tokenizer files and
 * the model card follow; the directory is renamed into place at the end
 * (lib/output_dir.c: with --force, only what convert makes is replaced).
 * Exit codes: 0 done, 1 the source cannot be converted, 2 usage or I/O
 * error, 130 interrupted.
 */
#include "affine.h"
#include "atomic_file.h"
#include "card.h"
#include "config_out.h"
#include "cli.h"
#include "error.h"
#include "file.h"
#include "hub.h"
#include "json.h"
#include "model.h"
#include "model_dir.h"
#include "output_dir.h"
#include "plan.h"
#include "progress.h"
#include "recipe.h"
#include "fit.h"
#include "safetensors.h"
#include "source.h"
#include "strbuf.h"
#include "write_queue.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *PROG = "kintsugi-convert";
static volatile sig_atomic_t interrupted;

typedef struct {
    const char *src, *dst, *dtype, *revision;
    kt_quant_params q;
    cv_recipe recipe;
    int fit;                      /* KT_FIT_RTN or KT_FIT_MSE */
    uint64_t shard_size;
    int force, json, quiet, verbose, threads;
} options;

static void usage(FILE *out) {
    fprintf(out,
            "usage: %s SRC DST [options]\n"
            "\n"
            "Convert a Hugging Face Nemotron-H checkpoint into an MLX model directory: the\n"
            "tensors mlx_lm.convert -q writes, config.json with the usual hand repairs done\n"
            "(torch_dtype, no \"mode\", time_step_limit), the tokenizer files copied.\n"
            "\n"
            "SRC is a directory (model.safetensors or shards + index), a Hugging Face cache\n"
            "snapshot, a hub name ORG/NAME found in the local Hugging Face cache, or an\n"
            "archive read as a stream: .tar, .tar.gz/.tgz, .tar.zst, .tar.xz, .tar.bz2, .zip.\n"
            "DST is created with its missing parents; it may not be SRC, inside SRC or\n"
            "around it.\n"
            "\n"
            "  --bits N          2, 3, 4, 5, 6 or 8 (default 4)\n"
            "  --group-size N    32, 64 or 128 (default 64)\n"
            "  --mode M          metal (default): bytes as mlx_lm.convert writes them on a\n"
            "                    Mac; cpu: as MLX's CPU backend (mlx_lm.convert on Linux)\n"
            "  --recipe R        mixed_2_6, mixed_3_4, mixed_3_6 or mixed_4_6: mlx_lm.convert's\n"
            "                    --quant-predicate recipes, bit for bit; or a FILE of rules,\n"
            "                    one REGEX=BITS[:GROUP] or REGEX=none per line\n"
            "  --bits-for RULE   REGEX=BITS[:GROUP] or REGEX=none (stay in floating point) for\n"
            "                    the modules whose path (backbone.layers.3.mixer.in_proj) the\n"
            "                    regular expression matches; repeatable, first match wins,\n"
            "                    before the recipe\n"
            "  --fit F           rtn (default): MLX's round-to-nearest, bit for bit; mse: per\n"
            "                    group the scale and bias of least squared error (a search of\n"
            "                    scales, each refitted; never worse than rtn), same format\n"
            "  --dtype T         bfloat16, float16 or float32 for the unquantized tensors and\n"
            "                    the scales (default: the config's torch_dtype or dtype)\n"
            "  --shard-size S    largest output file, e.g. 5GiB (default), 500MB, 1000000\n"
            "  --revision REV    with a hub name: the snapshot of REV (default: refs/main)\n"
            "  --threads N       worker threads (default: all cores; at most their number)\n"
            "  --no-fsync        do not wait for the disk: faster, still never a partial DST\n"
            "                    after a crash of the program, but not safe against power loss\n"
            "  --force           replace an existing DST that is a model directory, once the new\n"
            "                    one is complete: only the files convert writes are replaced\n"
            "                    (and an earlier run's extra shards removed); everything else\n"
            "                    in DST (.git, notes, a README.md of yours) is kept as it is\n"
            "  --json            a JSON report on stdout\n"
            "  -q, --quiet       print nothing but errors\n"
            "  -v, --verbose     also the places where config.json differs from mlx_lm.convert's\n"
            "  -h, --help        this text\n"
            "  --version         the version\n"
            "\n"
            "exit status: 0 done, 1 the source cannot be converted, 2 usage or I/O error,\n"
            "130 interrupted (DST untouched)\n",
            PROG);
}

/* "5GiB", "500MB", "64KiB", "1000" -> bytes. */
static int parse_size(const char *s, uint64_t *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || v <= 0) return -1;
    struct { const char *suffix; double mul; } units[] = {
        {"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
        {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0}};
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (!strcmp(end, units[i].suffix)) {
            *out = (uint64_t)(v * units[i].mul);
            return *out ? 0 : -1;
        }
    return -1;
}

enum { O_BITS = 1, O_GROUP, O_MODE, O_DTYPE, O_SHARD_SIZE, O_THREADS, O_FORCE, O_JSON, O_NO_FSYNC, O_QUIET, O_VERBOSE,
       O_REVISION, O_RECIPE, O_BITS_FOR, O_FIT };
static const kt_opt OPTIONS[] = {
    {"--bits", 0, 1, O_BITS}, {"--group-size", 0, 1, O_GROUP}, {"--mode", 0, 1, O_MODE},
    {"--dtype", 0, 1, O_DTYPE}, {"--shard-size", 0, 1, O_SHARD_SIZE}, {"--threads", 0, 1, O_THREADS},
    {"--force", 0, 0, O_FORCE}, {"--json", 0, 0, O_JSON}, {"--no-fsync", 0, 0, O_NO_FSYNC},
    {"--quiet", 'q', 0, O_QUIET}, {"--verbose", 'v', 0, O_VERBOSE}, {"--revision", 0, 1, O_REVISION},
    {"--recipe", 0, 1, O_RECIPE}, {"--bits-for", 0, 1, O_BITS_FOR}, {"--fit", 0, 1, O_FIT},
    {NULL, 0, 0, 0}};

static int parse_args(int argc, char **argv, options *o) {
    static const char *const dtypes[] = {"bfloat16", "float16", "float32", NULL}, *const modes[] = {"metal", "cpu", NULL},
                             *const fits[] = {"rtn", "mse", NULL};
    const char *recipe = NULL;
    memset(o, 0, sizeof *o);
    o->q = KT_QUANT_DEFAULT;
    o->shard_size = 5ull << 30;
    kt_args a;
    kt_args_init(&a, PROG, argc, argv, OPTIONS);
    int id, k, rc = 0;
    while (rc == 0 && (id = kt_args_next(&a)) != KT_ARG_END) {
        switch (id) {
        case KT_ARG_HELP: usage(stdout); return 0;
        case KT_ARG_VERSION: kt_print_version(PROG); return 0;
        case KT_ARG_ERROR: return KT_EXIT_USAGE;
        case O_BITS: rc = kt_arg_int(&a, 1, 64, &o->q.bits); break;
        case O_GROUP: rc = kt_arg_int(&a, 1, 1 << 20, &o->q.group_size); break;
        case O_MODE:
            if (!(rc = kt_arg_choice(&a, modes, &k))) o->q.mode = k ? KT_QUANT_CPU : KT_QUANT_METAL;
            break;
        case O_DTYPE:
            if (!(rc = kt_arg_choice(&a, dtypes, &k))) o->dtype = dtypes[k];
            break;
        case O_SHARD_SIZE:
            if (parse_size(a.value, &o->shard_size)) rc = kt_usage_error(PROG, "--shard-size: '%s' is not a size like 5GiB", a.value);
            break;
        case O_THREADS: rc = kt_arg_int(&a, 1, 4096, &o->threads); break;
        case O_FORCE: o->force = 1; break;
        case O_JSON: o->json = 1; break;
        case O_NO_FSYNC: kt_atomic_set_durable(0); break;
        case O_QUIET: o->quiet = 1; break;
        case O_VERBOSE: o->verbose = 1; break;
        case O_REVISION: o->revision = a.value; break;
        case O_RECIPE:
            if (recipe) rc = kt_usage_error(PROG, "--recipe: given twice ('%s')", a.value);
            recipe = a.value;
            break;
        case O_BITS_FOR:
            if (cv_recipe_add_rule(&o->recipe, a.value, "--bits-for")) rc = kt_usage_error(PROG, "%s", kt_errmsg());
            break;
        case O_FIT:
            if (!(rc = kt_arg_choice(&a, fits, &k))) o->fit = k ? KT_FIT_MSE : KT_FIT_RTN;
            break;
        case KT_ARG_POSITIONAL:
            if (!o->src) o->src = a.value;
            else if (!o->dst) o->dst = a.value;
            else rc = kt_usage_error(PROG, "unexpected argument '%s'", a.value);
            break;
        }
    }
    if (rc) return rc;
    if (o->quiet && o->verbose) return kt_usage_conflict(PROG, "--quiet", "--verbose");
    if (!o->src || !o->dst) return kt_usage_error(PROG, "%s", "SRC and DST are required");
    if (kt_quant_params_check(&o->q)) return kt_usage_error(PROG, "%s", kt_errmsg());
    if (recipe && cv_recipe_load(&o->recipe, recipe)) return kt_usage_error(PROG, "%s", kt_errmsg());
    o->threads = kt_cap_threads(o->threads);
    return -1;
}

static void on_signal(int sig) {
    (void)sig;
    interrupted = 1;
}

/* A mapped source file that shrinks under us (another process truncates it,
 * a network file system fails) turns a read into SIGBUS. Nothing can be
 * trusted after that: say so and leave. DST is untouched (the output is
 * only ever a temporary directory until the final rename), and the next run
 * removes the temporary directory this one leaves. */
static char bus_message[1536];
static size_t bus_message_len;

static void on_sigbus(int sig) {
    (void)sig;
    if (write(2, bus_message, bus_message_len) < 0) _exit(2);
    _exit(2);
}

static kt_dtype dtype_of_name(const char *s) {
    if (!s) return KT_DTYPE_COUNT;
    return !strcmp(s, "bfloat16") ? KT_BF16 : !strcmp(s, "float16") ? KT_F16 : KT_F32;
}

/* ---- streaming the tensors ---- */

/* N values of type FROM at IN, cast to TO in BUF (in parallel). */
static void cast_values(kt_dtype from, kt_dtype to, const uint8_t *in, size_t n, void *buf) {
    const size_t chunk = 1 << 16, in_es = kt_dtype_bits(from) / 8, out_es = kt_dtype_bits(to) / 8;
#pragma omp parallel
    {
        float *tmp = kt_xmalloc(chunk * sizeof *tmp);
#pragma omp for schedule(static)
        for (int64_t c = 0; c < (int64_t)((n + chunk - 1) / chunk); c++) {
            size_t off = (size_t)c * chunk, len = n - off < chunk ? n - off : chunk;
            kt_row_to_f32(from, in + off * in_es, tmp, len);
            kt_row_from_f32(to, tmp, (uint8_t *)buf + off * out_es, len);
        }
        free(tmp);
    }
}

/* An unquantized tensor: its parts, cast if needed, appended to its shard. */
static int copy_item(cv_queue *q, const cv_item *it, st_writer **writers) {
    st_writer *w = writers[it->out[0].shard];
    const size_t es = kt_dtype_bits(it->dtype) / 8;
    for (size_t i = 0; i < it->n_parts; i++) {
        const st_tensor *part = it->parts[i];
        size_t len = (size_t)part->nelem * es;
        if (it->dtype == part->dtype) {
            if (cv_queue_push(q, w, (void *)part->data, len, 0)) return -1;
        } else {
            void *buf = kt_xmalloc(len + 1);
            cast_values(part->dtype, it->dtype, part->data, (size_t)part->nelem, buf);
            if (cv_queue_push(q, w, buf, len, 1)) return -1;
        }
    }
    return cv_queue_flush(q); /* the source bytes were lent to the writer */
}

/* Rows of a quantized tensor go through in windows of about this many input
 * bytes: the packed codes of each window are handed to the writer thread at
 * once, and the window's source pages are dropped, so memory stays small
 * however large the tensor. */
#define WINDOW_BYTES (64u << 20)

static int quantize_item(cv_source *src, cv_queue *q, const cv_item *it, st_writer **writers, const options *o) {
    const uint64_t k = it->shape[it->ndim - 1], groups = k / (uint64_t)it->q.group_size;
    const size_t es = kt_dtype_bits(it->dtype) / 8;
    uint8_t *scales = kt_xmalloc((size_t)it->out[1].nbytes), *biases = kt_xmalloc((size_t)it->out[2].nbytes);
    void *cast_buf = NULL;
    uint64_t row = 0;
    int rc = 0;
    for (size_t i = 0; i < it->n_parts && rc == 0; i++) {
        const st_tensor *part = it->parts[i];
        const size_t src_es = kt_dtype_bits(part->dtype) / 8, row_bytes = (size_t)k * src_es;
        const uint64_t rows = part->nelem / k, window = WINDOW_BYTES / row_bytes ? WINDOW_BYTES / row_bytes : 1;
        for (uint64_t r0 = 0; r0 < rows && rc == 0; r0 += window) {
            uint64_t n = rows - r0 < window ? rows - r0 : window, bad;
            cv_source_advise(src, part, (r0 + n) * row_bytes, window * row_bytes, 1);
            cv_source_map(src, part, r0 * row_bytes, n * row_bytes);
            const uint8_t *in = part->data + r0 * row_bytes;
            if (it->dtype != part->dtype) {
                if (!cast_buf) cast_buf = kt_xmalloc((size_t)(window * k) * es + 1);
                cast_values(part->dtype, it->dtype, in, (size_t)(n * k), cast_buf);
                in = cast_buf;
            }
            size_t packed_len = (size_t)(n * k * (uint64_t)it->q.bits / 8);
            uint8_t *packed = kt_xmalloc(packed_len + 1);
            uint8_t *s_out = scales + (row + r0) * groups * es, *b_out = biases + (row + r0) * groups * es;
            rc = o->fit == KT_FIT_MSE
                     ? kt_fit_tensor(&it->q, it->dtype, in, n, k, packed, s_out, b_out, o->threads, &bad)
                     : kt_quantize_tensor(&it->q, it->dtype, in, n, k, packed, s_out, b_out, o->threads, &bad);
            if (rc && bad != UINT64_MAX)
                kt_fail("%s: tensor '%s': a NaN or infinity at flat index %llu (row %llu, column %llu); refusing to "
                        "quantize it", src->path, part->name, (unsigned long long)((r0 * k) + bad),
                        (unsigned long long)(r0 + bad / k), (unsigned long long)(bad % k));
            else if (rc)
                kt_fail_context("%s: tensor '%s'", src->path, part->name);
            if (rc) free(packed);
            else rc = cv_queue_push(q, writers[it->out[0].shard], packed, packed_len, 1);
            cv_source_advise(src, part, r0 * row_bytes, n * row_bytes, 0);
        }
        row += rows;
    }
    free(cast_buf);
    if (rc == 0) rc = cv_queue_push(q, writers[it->out[1].shard], scales, (size_t)it->out[1].nbytes, 1);
    else free(scales);
    if (rc == 0) rc = cv_queue_push(q, writers[it->out[2].shard], biases, (size_t)it->out[2].nbytes, 1);
    else free(biases);
    return rc;
}

static int write_item(cv_source *src, cv_queue *q, const cv_item *it, st_writer **writers, const options *o) {
    for (size_t i = 0; i < it->n_parts; i++)
        if (cv_source_fetch(src, it->parts[i])) return -1;
    return it->quantized ? quantize_item(src, q, it, writers, o) : copy_item(q, it, writers);
}

/* The order in which items are written: the order in which each item's last
 * part arrives from the source (cv_source_arrival). The data order inside a
 * safetensors file is free (only the header is sorted; MLX itself writes in
 * hash-map order), and following the source means reading it sequentially
 * and, for an archive, keeping nothing in memory longer than it must. */
static size_t *execution_order(const cv_source *src, const cv_plan *p) {
    size_t *order = kt_xcalloc(p->n_items + 1, sizeof *order);
    uint64_t *done = kt_xcalloc(p->n_items + 1, sizeof *done);
    for (size_t i = 0; i < p->n_items; i++) {
        order[i] = i;
        for (size_t j = 0; j < p->items[i].n_parts; j++) {
            uint64_t a = cv_source_arrival(src, p->items[i].parts[j]);
            if (a > done[i]) done[i] = a;
        }
    }
    /* insertion sort by arrival, stable: plan order among equals */
    for (size_t i = 1; i < p->n_items; i++)
        for (size_t j = i; j > 0 && done[order[j]] < done[order[j - 1]]; j--) {
            size_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    free(done);
    return order;
}

static int write_tensors(cv_source *src, const cv_plan *p, const kt_outdir *od, const options *o) {
    st_writer **writers = kt_xcalloc(p->n_shards, sizeof *writers);
    size_t *order = execution_order(src, p);
    int rc = 0;
    for (size_t s = 0; s < p->n_shards && rc == 0; s++) {
        size_t n = 0;
        st_spec *specs = kt_xcalloc(3 * p->n_items + 1, sizeof *specs);
        for (size_t x = 0; x < p->n_items; x++)
            for (int j = 0; j < p->items[order[x]].n_out; j++) {
                const cv_output *out = &p->items[order[x]].out[j];
                if (out->shard == s) specs[n++] = (st_spec){out->name, out->dtype, out->ndim, out->shape};
            }
        char *path = kt_outdir_path(od, p->shard_names[s]);
        writers[s] = st_writer_create(path, specs, n, NULL);
        if (!writers[s]) rc = -1;
        free(path);
        free(specs);
    }
    kt_progress bar;
    kt_progress_start(&bar, "convert", p->source_bytes, !o->json && !o->quiet);
    cv_queue *q = rc == 0 ? cv_queue_start(4) : NULL;
    if (rc == 0 && !q) rc = kt_fail("cannot start the writer thread");
    for (size_t x = 0; x < p->n_items && rc == 0; x++) {
        const cv_item *it = &p->items[order[x]];
        if (interrupted) {
            rc = kt_fail("interrupted; %s is untouched", o->dst);
            break;
        }
        if (x + 1 < p->n_items) /* the start of the next item: read ahead */
            cv_source_advise(src, p->items[order[x + 1]].parts[0], 0, WINDOW_BYTES, 1);
        rc = write_item(src, q, it, writers, o);
        for (size_t j = 0; j < it->n_parts; j++) {
            cv_source_release(src, it->parts[j]);
            kt_progress_add(&bar, it->parts[j]->nbytes);
        }
    }
    if (q && cv_queue_stop(q) && rc == 0) rc = -1;
    kt_progress_end(&bar);
    free(order);
    for (size_t s = 0; s < p->n_shards; s++) {
        if (!writers[s]) continue;
        if (rc == 0) rc = st_writer_finish(writers[s]);
        else st_writer_abort(writers[s]);
    }
    free(writers);
    return rc;
}

/* ---- the other files ---- */

typedef struct {
    const char *name, *file;
} index_entry;

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const index_entry *)a)->name, ((const index_entry *)b)->name);
}

static int write_index(const cv_plan *p, const kt_outdir *od) {
    size_t n = 0;
    for (size_t i = 0; i < p->n_items; i++) n += (size_t)p->items[i].n_out;
    index_entry *e = kt_xcalloc(n + 1, sizeof *e);
    n = 0;
    for (size_t i = 0; i < p->n_items; i++)
        for (int j = 0; j < p->items[i].n_out; j++)
            e[n++] = (index_entry){p->items[i].out[j].name, p->shard_names[p->items[i].out[j].shard]};
    qsort(e, n, sizeof *e, cmp_entry); /* Python's sorted(): code point order is byte order in UTF-8 */
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(root, "metadata");
    cJSON_AddItemToObject(meta, "total_size", kt_json_new_int((long long)p->total_size));
    cJSON_AddItemToObject(meta, "total_parameters", kt_json_new_int((long long)p->total_parameters));
    cJSON *map = cJSON_AddObjectToObject(root, "weight_map");
    for (size_t k = 0; k < n; k++) cJSON_AddStringToObject(map, e[k].name, e[k].file);
    char *text = kt_json_print(root, &KT_JSON_PYTHON_INDENT4);
    char *path = kt_outdir_path(od, "model.safetensors.index.json");
    int rc = kt_write_file_atomic(path, text, strlen(text));
    free(path);
    free(text);
    free(e);
    cJSON_Delete(root);
    return rc;
}

/* Tokenizer files, generation_config.json and *.py: byte for byte. */
static int copy_side_files(cv_source *src, const kt_outdir *od, int *n_copied) {
    const char **names = cv_source_list_files(src);
    int rc = 0;
    for (size_t i = 0; names[i] && rc == 0; i++) {
        char *data = NULL, *to = kt_outdir_path(od, names[i]);
        size_t n = 0;
        int found = cv_source_read_file(src, names[i], &data, &n);
        if (found < 0) rc = -1;
        else if (found) rc = kt_write_file_atomic(to, data, n);
        if (found > 0 && rc == 0) (*n_copied)++;
        free(data);
        free(to);
    }
    return rc;
}

/* A side file parsed as JSON: NULL when absent (*missing set) or broken. */
static cJSON *load_json(cv_source *src, const char *name, int *missing) {
    char *data = NULL;
    size_t len = 0;
    int found = cv_source_read_file(src, name, &data, &len);
    *missing = found == 0;
    cJSON *j = found > 0 ? kt_json_parse(data, len, KT_JSON_DUP_LAST_WINS, name) : NULL;
    free(data);
    return j;
}

static int write_text(const kt_outdir *od, const char *name, const char *text) {
    char *path = kt_outdir_path(od, name);
    int rc = kt_write_file_atomic(path, text, strlen(text));
    free(path);
    return rc;
}

/* The files convert writes that this run may not: the shards and index of
 * an earlier run, and the card it put beside a README.md of the user's. */
static int stale_output(const char *name) {
    return kt_outdir_stale_model_file(name) || !strcmp(name, CV_CARD_BESIDE);
}

/* README.md, or CV_CARD_BESIDE where DST holds a README.md of the user's. */
static const char *card_file(const kt_outdir *od) {
    char *path = kt_outdir_existing(od, "README.md");
    if (!path) return "README.md";
    char *data = NULL;
    size_t len = 0;
    int ours = kt_read_file(path, &data, &len) == 1 && cv_card_is_ours(data, len);
    free(data);
    free(path);
    return ours ? "README.md" : CV_CARD_BESIDE;
}

/* A name for the model card: "ORG/NAME" for a Hugging Face cache snapshot
 * (".../models--ORG--NAME/snapshots/REV"), else the directory's name. */
static char *model_name(const char *path) {
    char *real = realpath(path, NULL);
    const char *p = real ? real : path;
    const char *m = strstr(p, "/models--");
    strbuf sb = {0};
    if (m && strstr(m, "/snapshots/")) {
        m += 9;
        for (const char *c = m; *c && *c != '/'; c++) {
            if (c[0] == '-' && c[1] == '-') {
                sb_putc(&sb, '/');
                c++;
            } else {
                sb_putc(&sb, *c);
            }
        }
    } else {
        size_t n = strlen(p);
        while (n > 1 && p[n - 1] == '/') n--;
        size_t s = n;
        while (s > 0 && p[s - 1] != '/') s--;
        sb_append(&sb, p + s, n - s);
    }
    free(real);
    return sb_take(&sb);
}

static cJSON *names_json(const kt_names *n) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n->n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(n->names[i]));
    return a;
}

static void report(const options *o, const cv_plan *p, const cv_repairs *r, double bpw, double secs, int n_files,
                   const kt_outdir *od, const char *card) {
    if (o->json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "source", o->src);
        cJSON_AddStringToObject(root, "output", o->dst);
        cJSON_AddItemToObject(root, "bits", kt_json_new_int(o->q.bits));
        cJSON_AddItemToObject(root, "group_size", kt_json_new_int(o->q.group_size));
        cJSON_AddStringToObject(root, "mode", kt_quant_mode_name(o->q.mode));
        cJSON_AddStringToObject(root, "fit", o->fit == KT_FIT_MSE ? "mse" : "rtn");
        if (cv_recipe_active(&o->recipe)) {
            char *d = cv_recipe_describe(&o->recipe);
            cJSON_AddStringToObject(root, "recipe", d);
            free(d);
            cJSON *per = cJSON_AddObjectToObject(root, "modules_by_bits");
            for (int b = 2; b <= 8; b++) {
                long long n = 0;
                for (size_t i = 0; i < p->n_items; i++) n += p->items[i].quantized && p->items[i].q.bits == b;
                if (n) {
                    char key[16];
                    snprintf(key, sizeof key, "%d", b);
                    cJSON_AddItemToObject(per, key, kt_json_new_int(n));
                }
            }
        }
        cJSON_AddItemToObject(root, "tensors", kt_json_new_int((long long)p->n_items));
        cJSON_AddItemToObject(root, "dropped_mtp_tensors", kt_json_new_int((long long)p->n_dropped));
        cJSON *shards = cJSON_AddArrayToObject(root, "shards");
        for (size_t s = 0; s < p->n_shards; s++) cJSON_AddItemToArray(shards, cJSON_CreateString(p->shard_names[s]));
        cJSON_AddItemToObject(root, "source_bytes", kt_json_new_int((long long)p->source_bytes));
        cJSON_AddItemToObject(root, "output_bytes", kt_json_new_int((long long)p->total_size));
        cJSON_AddItemToObject(root, "total_parameters", kt_json_new_int((long long)p->total_parameters));
        cJSON_AddItemToObject(root, "bits_per_weight", kt_json_new_float(bpw));
        cJSON_AddItemToObject(root, "files_copied", kt_json_new_int(n_files));
        cJSON *rep = cJSON_AddArrayToObject(root, "repairs");
        cJSON *diff = cJSON_AddArrayToObject(root, "differences_from_mlx_lm");
        for (int i = 0; i < r->n; i++) cJSON_AddItemToArray(r->needed[i] ? rep : diff, cJSON_CreateString(r->text[i]));
        cJSON_AddStringToObject(root, "card", card);
        cJSON *existing = cJSON_AddObjectToObject(root, "existing_output");
        cJSON_AddItemToObject(existing, "replaced", names_json(&od->replaced));
        cJSON_AddItemToObject(existing, "removed", names_json(&od->removed));
        cJSON_AddItemToObject(existing, "kept", names_json(&od->kept));
        cJSON_AddItemToObject(root, "seconds", kt_json_new_float(secs));
        char *text = kt_json_print_report(root, &KT_JSON_PYTHON_INDENT4);
        printf("%s\n", text);
        free(text);
        cJSON_Delete(root);
    } else if (!o->quiet) {
        printf("%s: %zu tensors (%zu mtp.* dropped) -> %zu file%s, %d-bit%s group %d %s%s, %.3f bits per weight; "
               "%.2f GB -> %.2f GB in %.1f s (%.2f GB/s)\n",
               o->dst, p->n_items, p->n_dropped, p->n_shards, p->n_shards == 1 ? "" : "s", o->q.bits,
               cv_recipe_active(&o->recipe) ? " (recipe)" : "", o->q.group_size, kt_quant_mode_name(o->q.mode),
               o->fit == KT_FIT_MSE ? " fit mse" : "", bpw, (double)p->source_bytes / 1e9,
               (double)p->total_size / 1e9, secs, secs > 0 ? (double)p->source_bytes / secs / 1e9 : 0);
        /* what --force did to an existing DST: the summary's second line */
        kt_outdir_summary(od, strcmp(card, "README.md") ? "README.md is not a kintsugi card: kept, the card is "
                                                          CV_CARD_BESIDE : NULL, stdout);
    }
}

/* The conversion must load: CONFIG (the output's config.json, repairs
 * made) passes the checks every tool shares (lib/nemotron_config.h), and the
 * source has every tensor the layers need, with the shapes the config
 * implies, and nothing else but mtp.* (mlx-lm's sanitize drops those).
 * Checked before anything is written, so a source that would give a model
 * verify rejects is refused. */
static int check_source(const char *label, const cJSON *config, const kt_model_files *m) {
    char *unused = NULL;
    if (kt_model_check_files(config, m, "mtp.", &unused)) return kt_fail_context("%s", label);
    if (unused) {
        kt_fail("%s: tensor %s belongs to no layer of the config's pattern (mlx-lm's strict load would reject the "
                "conversion); fix config.json or remove the tensor", label, unused);
        free(unused);
        return -1;
    }
    return 0;
}

/* The recipe as plan.h's callback. */
typedef struct {
    const cv_recipe *recipe;
    long n_layers;
} recipe_ctx;

static int recipe_quant_of(const void *ctx, const char *path, const kt_quant_params *q, kt_quant_params *out) {
    const recipe_ctx *c = ctx;
    return cv_recipe_apply(c->recipe, path, c->n_layers, q, out);
}

/* mlx-lm's mixed recipes count the blocks (len(model.layers)) and refuse a
 * model without a down_proj module. */
static int recipe_layers(const options *o, const cJSON *config, const kt_model_files *m, long *n_layers) {
    const cJSON *pattern = kt_json_get(config, "hybrid_override_pattern");
    int64_t n = 0;
    if (cJSON_IsString(pattern)) n = (int64_t)strlen(pattern->valuestring);
    else if (kt_json_i64(kt_json_get(config, "num_hidden_layers"), &n)) n = 0;
    *n_layers = (long)n;
    if (!o->recipe.mixed) return 0;
    for (size_t i = 0; i < m->n_tensors; i++) {
        const char *name = kt_model_tensor(m, i)->name;
        if (strstr(name, "down_proj") && !kt_starts_with(name, "mtp.")) return 0;
    }
    return kt_fail("%s: --recipe %s needs down_proj modules (MLP or MoE layers) and this model has none "
                   "(mlx_lm.convert refuses it too)", o->src, o->recipe.mixed);
}

static int convert(const options *o) {
    const char *inputs[] = {o->src};
    kt_outdir od;
    /* DST first: nothing is read or printed for a run that cannot write */
    if (kt_outdir_check(&od, PROG, o->dst, inputs, 1, o->force)) {
        kt_outdir_abort(&od);
        return -1;
    }
    od.stale = stale_output;
    cv_source src;
    if (cv_source_open(&src, o->src)) {
        cv_source_close(&src);
        kt_outdir_abort(&od);
        return -1;
    }
    int rc = 0, missing;
    cJSON *config = NULL, *generation = NULL, *out_config = NULL;
    cv_plan plan = {0};
    cv_repairs repairs = {0};
    const kt_model_files m = src.m;
    config = load_json(&src, "config.json", &missing);
    if (!config) {
        rc = missing ? kt_fail("%s: no config.json", o->src) : kt_fail_context("%s", o->src);
        goto done;
    }
    generation = load_json(&src, "generation_config.json", &missing); /* unreadable: ignored, as mlx-lm */
    if (m.n_unlisted) {
        rc = kt_fail("%s: %s is not listed in the index (mlx-lm would load it too); remove it or fix the index",
                     o->src, m.unlisted[0]);
        goto done;
    }
    out_config = cv_config_make(config, generation, &o->q, &repairs);
    if (!out_config) {
        rc = kt_fail_context("%s", o->src);
        goto done;
    }
    if ((rc = check_source(o->src, out_config, &m))) goto done;
    const char *dtype = o->dtype ? o->dtype : cv_config_cast_dtype(config);
    recipe_ctx rctx = {&o->recipe, 0};
    if ((rc = recipe_layers(o, config, &m, &rctx.n_layers))) goto done;
    cv_options po = {o->q, dtype_of_name(dtype), o->shard_size, cv_recipe_active(&o->recipe) ? recipe_quant_of : NULL,
                     &rctx};
    if (cv_plan_make(&plan, &m, config, &po)) {
        rc = kt_fail_context("%s", o->src);
        goto done;
    }
    if (cv_recipe_active(&o->recipe))
        for (size_t i = 0; i < plan.n_items; i++)
            if (plan.items[i].quantized) {
                strbuf path = {0};
                sb_append(&path, plan.items[i].name, strlen(plan.items[i].name) - 7);
                cv_config_add_layer(out_config, sb_cstr(&path), &plan.items[i].q, &repairs);
                sb_free(&path);
            }
    if (!o->quiet && !o->json)
        for (int i = 0; i < repairs.n; i++)
            if (repairs.needed[i] || o->verbose)
                fprintf(stderr, "%s: %s: %s\n", PROG, repairs.needed[i] ? "repair" : "note", repairs.text[i]);
    if ((rc = kt_outdir_begin(&od))) goto done;
    double t0 = kt_now();
    if ((rc = write_tensors(&src, &plan, &od, o))) goto done;
    if ((rc = write_index(&plan, &od))) goto done;
    char *text = cv_config_text(out_config);
    rc = write_text(&od, "config.json", text);
    free(text);
    int n_files = 0;
    if (rc == 0) rc = copy_side_files(&src, &od, &n_files);
    double bpw = plan.quantized_elems ? (double)plan.quantized_bytes * 8 / (double)plan.quantized_elems : 0;
    char *title = model_name(o->src);
    if (src.archive) { /* "model.tar.gz" -> "model" */
        char *dot = strstr(title, ".tar");
        if (!dot) dot = strstr(title, ".zip");
        if (!dot) dot = strstr(title, ".tgz");
        if (dot) *dot = 0;
    }
    const cJSON *name_or_path = kt_json_get(config, "_name_or_path");
    cv_card card = {title, cJSON_IsString(name_or_path) ? name_or_path->valuestring : title, KINTSUGI_VERSION,
                    dtype, o->q, bpw, 0, plan.n_shards, &repairs, NULL, o->fit == KT_FIT_MSE, {0}};
    card.recipe = cv_recipe_active(&o->recipe) ? cv_recipe_describe(&o->recipe) : NULL;
    for (size_t i = 0; i < plan.n_items; i++)
        if (plan.items[i].quantized) card.modules_by_bits[plan.items[i].q.bits]++;
    for (size_t i = 0; i < plan.n_items; i++) card.n_tensors += (size_t)plan.items[i].n_out;
    text = cv_card_text(&card);
    free(card.recipe);
    const char *card_name = card_file(&od);
    if (rc == 0) rc = write_text(&od, card_name, text);
    free(text);
    free(title);
    if (rc == 0 && interrupted) rc = kt_fail("interrupted; %s is untouched", o->dst);
    if (rc == 0) rc = kt_outdir_commit(&od);
    if (rc == 0) report(o, &plan, &repairs, bpw, kt_now() - t0, n_files, &od, card_name);
done:
    if (rc && od.tmp) kt_errmsg_replace(od.tmp, od.dst); /* name DST, not our temporary directory */
    kt_outdir_abort(&od);
    cv_plan_free(&plan);
    cv_repairs_free(&repairs);
    cJSON_Delete(config);
    cJSON_Delete(generation);
    cJSON_Delete(out_config);
    cv_source_close(&src);
    return rc;
}

/* OpenMP's idle workers spin between parallel regions by default; here a
 * writer thread and the kernel's page-cache work need those cycles (measured
 * on the 9B shape, 2 cores: 12-13 s with passive waiting against 16-18 s).
 * libgomp reads OMP_WAIT_POLICY before main runs, so when the user has not
 * chosen one, set it and start again once. */
static void prefer_passive_openmp(char **argv) {
#if defined(__linux__) && defined(_OPENMP)
    if (getenv("OMP_WAIT_POLICY")) return;
    setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
    execv("/proc/self/exe", argv); /* returns only on failure: then go on as we are */
#else
    (void)argv;
#endif
}

int main(int argc, char **argv) {
    prefer_passive_openmp(argv);
    kt_check_stdout_at_exit(PROG);
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0) {
        cv_recipe_free(&o.recipe);
        return rc;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    snprintf(bus_message, sizeof bus_message,
             "%s: a source file under %s changed size or could not be read during the conversion (SIGBUS); "
             "%s is untouched\n", PROG, o.src, o.dst);
    bus_message_len = strlen(bus_message);
    sa.sa_handler = on_sigbus;
    sigaction(SIGBUS, &sa, NULL);
    char *hub_path;
    o.src = kt_resolve_model_arg(o.src, o.revision, &hub_path);
    if (!o.src) {
        kt_print_error(PROG);
        cv_recipe_free(&o.recipe);
        return KT_EXIT_FAILED;
    }
    rc = convert(&o);
    free(hub_path);
    cv_recipe_free(&o.recipe);
    if (rc == 0) return 0;
    kt_print_error(PROG);
    if (interrupted) return 130;
    return kt_errkind() == KT_ERR_IO ? 2 : 1;
}
