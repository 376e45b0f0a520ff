/* kintsugi-quantize - MLX affine quantization of the tensors of one
 * .safetensors file (and the reverse with --dequantize).
 *
 * Reads IN through the strict reader, decides per tensor what to do (plan.c),
 * writes OUT through the atomic writer one tensor at a time, and reports.
 * Exit codes: 0 done, 1 a tensor or the input file is unusable (NaN, shape,
 * format), 2 usage or I/O error.
 */
#include "affine.h"
#include "fit.h"
#include "cli.h"
#include "error.h"
#include "output_path.h"
#include "json.h"
#include "plan.h"
#include "progress.h"
#include "safetensors.h"
#include "strbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *PROG = "kintsugi-quantize";

typedef struct {
    const char *in, *out;
    plan_options plan;
    const char *only_text;
    int error, json, quiet, verbose, force, threads, fit;
} options;

static void usage(FILE *out) {
    fprintf(out,
            "usage: %s IN.safetensors [OUT.safetensors] [options]\n"
            "\n"
            "Quantize the tensors of IN with MLX affine group quantization and write OUT:\n"
            "NAME.weight becomes NAME.weight (packed uint32), NAME.scales and NAME.biases,\n"
            "exactly as mx.quantize computes them; other tensors are copied unchanged.\n"
            "By default every bf16/f16/f32 tensor named *.weight with 2 or more dimensions\n"
            "and a last dimension divisible by the group size is quantized.\n"
            "\n"
            "  --bits N          2, 3, 4, 5, 6 or 8 (default 4)\n"
            "  --group-size N    32, 64 or 128 (default 64)\n"
            "  --mode M          metal (default): the arithmetic of MLX's GPU kernel, what\n"
            "                    mlx_lm.convert writes on a Mac; cpu: MLX's CPU backend\n"
            "  --fit F           rtn (default): MLX's round to nearest, bit for bit; mse: per\n"
            "                    group the scale and bias of least squared error, never\n"
            "                    worse than rtn (docs/QUANTIZATION.md)\n"
            "  --only REGEX      quantize exactly the tensors whose name matches REGEX\n"
            "  --skip REGEX      never quantize tensors whose name matches REGEX\n"
            "  --dequantize      the reverse: NAME.weight + NAME.scales + NAME.biases become\n"
            "                    NAME.weight in the dtype of the scales (bits inferred from the\n"
            "                    shapes and --group-size unless --bits is given)\n"
            "  --error           print RMSE, max abs error and RMSE relative to the tensor's\n"
            "                    RMS of the dequantized result vs IN, per tensor; OUT optional\n"
            "  --threads N       worker threads (default: all cores; at most their number)\n"
            "  --force           replace an existing OUT (a .safetensors file; never IN)\n"
            "  --json            a JSON report on stdout\n"
            "  -q, --quiet       print nothing but errors\n"
            "  -v, --verbose     also list each tensor\n"
            "  -h, --help        this text\n"
            "  --version         the version\n"
            "\n"
            "exit status: 0 done, 1 an input tensor or file is unusable, 2 usage or I/O error\n",
            PROG);
}

enum { O_BITS = 1, O_GROUP, O_MODE, O_ONLY, O_SKIP, O_THREADS, O_DEQUANTIZE, O_ERROR, O_JSON, O_QUIET, O_VERBOSE, O_FORCE, O_FIT };
static const kt_opt OPTIONS[] = {
    {"--bits", 0, 1, O_BITS}, {"--group-size", 0, 1, O_GROUP}, {"--mode", 0, 1, O_MODE}, {"--only", 0, 1, O_ONLY},
    {"--skip", 0, 1, O_SKIP}, {"--threads", 0, 1, O_THREADS}, {"--dequantize", 0, 0, O_DEQUANTIZE},
    {"--error", 0, 0, O_ERROR}, {"--json", 0, 0, O_JSON}, {"--quiet", 'q', 0, O_QUIET},
    {"--verbose", 'v', 0, O_VERBOSE}, {"--force", 0, 0, O_FORCE}, {"--fit", 0, 1, O_FIT}, {NULL, 0, 0, 0}};

/* Returns -1 to continue, else the exit code. */
static int parse_args(int argc, char **argv, options *o) {
    static const char *const modes[] = {"metal", "cpu", NULL}, *const fits[] = {"rtn", "mse", NULL};
    memset(o, 0, sizeof *o);
    o->plan.bits = 4;
    o->plan.group_size = 64;
    o->plan.mode = KT_QUANT_METAL;
    const char *only = NULL, *skip = NULL;
    kt_args a;
    kt_args_init(&a, PROG, argc, argv, OPTIONS);
    int id, k, rc = 0;
    while (rc == 0 && (id = kt_args_next(&a)) != KT_ARG_END) {
        switch (id) {
        case KT_ARG_HELP: usage(stdout); return 0;
        case KT_ARG_VERSION: kt_print_version(PROG); return 0;
        case KT_ARG_ERROR: return KT_EXIT_USAGE;
        case O_BITS: rc = kt_arg_int(&a, 1, 64, &o->plan.bits), o->plan.bits_given = 1; break;
        case O_GROUP: rc = kt_arg_int(&a, 1, 1 << 20, &o->plan.group_size), o->plan.group_size_given = 1; break;
        case O_FIT:
            if (!(rc = kt_arg_choice(&a, fits, &k))) o->fit = k ? KT_FIT_MSE : KT_FIT_RTN;
            break;
        case O_MODE:
            if (!(rc = kt_arg_choice(&a, modes, &k))) o->plan.mode = k ? KT_QUANT_CPU : KT_QUANT_METAL;
            break;
        case O_ONLY: only = a.value; break;
        case O_SKIP: skip = a.value; break;
        case O_THREADS: rc = kt_arg_int(&a, 1, 4096, &o->threads); break;
        case O_DEQUANTIZE: o->plan.dequantize = 1; break;
        case O_ERROR: o->error = 1; break;
        case O_JSON: o->json = 1; break;
        case O_QUIET: o->quiet = 1; break;
        case O_VERBOSE: o->verbose = 1; break;
        case O_FORCE: o->force = 1; break;
        case KT_ARG_POSITIONAL:
            if (!o->in) o->in = a.value;
            else if (!o->out) o->out = a.value;
            else rc = kt_usage_error(PROG, "unexpected argument '%s'", a.value);
            break;
        }
    }
    if (rc) return rc;
    if (o->quiet && o->verbose) return kt_usage_conflict(PROG, "--quiet", "--verbose");
    if (!o->in) return kt_usage_error(PROG, "%s", "no input file given");
    if (!o->out && !o->error) return kt_usage_error(PROG, "%s", "no output file given (or use --error to only measure)");
    if (o->error && o->plan.dequantize) return kt_usage_conflict(PROG, "--error", "--dequantize");
    if (o->fit && o->plan.dequantize) return kt_usage_conflict(PROG, "--fit", "--dequantize");
    kt_quant_params p = {o->plan.bits, o->plan.group_size, o->plan.mode};
    if (!o->plan.dequantize && kt_quant_params_check(&p)) return kt_usage_error(PROG, "%s", kt_errmsg());
    if (only && !(o->plan.only = plan_regex(only, "--only"))) return kt_usage_error(PROG, "%s", kt_errmsg());
    if (skip && !(o->plan.skip = plan_regex(skip, "--skip"))) return kt_usage_error(PROG, "%s", kt_errmsg());
    o->only_text = only;
    o->threads = kt_cap_threads(o->threads);
    return -1;
}

/* Work that does nothing is a mistake, not a success: quantizing a file
 * that is already quantized, --only matching nothing, dequantizing a file
 * with no quantized tensor. */
static int check_work(const options *o, const st_file *f, const plan *pl) {
    size_t n_work = 0;
    for (size_t i = 0; i < pl->n; i++)
        n_work += pl->items[i].act == (o->plan.dequantize ? ACT_DEQUANTIZE : ACT_QUANTIZE);
    if (n_work) return 0;
    const char *scales = NULL;
    for (size_t i = 0; i < f->n_tensors && !scales; i++)
        if (kt_ends_with(f->tensors[i].name, ".scales")) scales = f->tensors[i].name;
    if (o->plan.dequantize)
        return kt_fail("%s: no quantized tensor (no NAME.scales and NAME.biases beside a NAME.weight); nothing to "
                       "dequantize", o->in);
    if (scales)
        return kt_fail("%s: already quantized (it has %s); quantize the original, or --dequantize first", o->in,
                       scales);
    if (o->only_text) return kt_fail("%s: --only '%s' matches no tensor that can be quantized", o->in, o->only_text);
    return kt_fail("%s: no tensor can be quantized (no float *.weight of 2 or more dimensions whose last dimension "
                   "divides by the group size %d)", o->in, o->plan.group_size);
}

/* lib/output_path.h: OUT is not IN (also through links), and --force
 * replaces only a .safetensors file. */
static int check_output(const options *o) {
    const char *inputs[] = {o->in};
    return kt_output_file_ok(o->out, inputs, 1, o->force, ".safetensors");
}

/* RMSE, max |error| and RMSE / RMS(input) of DEQ (dtype T) against IN. */
static void measure_error(plan_item *it, const void *deq) {
    kt_dtype t = it->src->dtype;
    uint64_t n = it->src->nelem;
    double se = 0, ss = 0, mx = 0;
    size_t chunk = 1 << 16;
#pragma omp parallel
    {
        float *a = kt_xmalloc(chunk * sizeof *a), *b = kt_xmalloc(chunk * sizeof *b);
        double lse = 0, lss = 0, lmx = 0;
#pragma omp for schedule(static)
        for (int64_t c = 0; c < (int64_t)((n + chunk - 1) / chunk); c++) {
            size_t off = (size_t)c * chunk, len = n - off < chunk ? (size_t)(n - off) : chunk;
            size_t es = kt_dtype_bits(t) / 8;
            kt_row_to_f32(t, it->src->data + off * es, a, len);
            kt_row_to_f32(t, (const uint8_t *)deq + off * es, b, len);
            for (size_t j = 0; j < len; j++) {
                double e = (double)b[j] - (double)a[j];
                lse += e * e;
                lss += (double)a[j] * (double)a[j];
                if (fabs(e) > lmx) lmx = fabs(e);
            }
        }
#pragma omp critical(kt_measure)
        {
            se += lse;
            ss += lss;
            if (lmx > mx) mx = lmx;
        }
        free(a);
        free(b);
    }
    it->rmse = n ? sqrt(se / (double)n) : 0;
    it->max_abs = mx;
    it->rel_rmse = ss > 0 ? sqrt(se / ss) : (se > 0 ? INFINITY : 0);
}

static const char *kind_of_value(kt_dtype t, const uint8_t *data, uint64_t index) {
    float v;
    kt_row_to_f32(t, data + index * (kt_dtype_bits(t) / 8), &v, 1);
    return isnan(v) ? "NaN" : (v > 0 ? "+Infinity" : "-Infinity");
}

/* Quantize (or dequantize) one tensor; write its outputs when W is not NULL. */
static int process(plan_item *it, st_writer *w, const options *o) {
    const st_tensor *t = it->src;
    if (it->act == ACT_COPY) return w ? st_writer_write(w, t->data, t->nbytes) : 0;
    if (it->act == ACT_DEQUANTIZE) {
        size_t es = kt_dtype_bits(it->out_dtype[0]) / 8;
        void *out = kt_xmalloc((size_t)(it->rows * it->k) * es + 1);
        int rc = kt_dequantize_tensor(it->bits, it->group_size, it->out_dtype[0], t->data, it->scales->data,
                                      it->biases->data, it->rows, it->k, out, o->threads);
        if (rc == 0 && w) rc = st_writer_write(w, out, (size_t)(it->rows * it->k) * es);
        free(out);
        return rc ? kt_fail_context("tensor '%s'", t->name) : 0;
    }
    kt_quant_params p = {it->bits, it->group_size, o->plan.mode};
    size_t es = kt_dtype_bits(t->dtype) / 8;
    size_t packed_n = (size_t)it->rows * kt_quant_row_bytes(&p, (size_t)it->k);
    size_t sb_n = (size_t)(it->rows * (it->k / (uint64_t)it->group_size)) * es;
    uint8_t *packed = kt_xmalloc(packed_n), *scales = kt_xmalloc(sb_n), *biases = kt_xmalloc(sb_n);
    uint64_t bad;
    int rc = o->fit == KT_FIT_MSE
                 ? kt_fit_tensor(&p, t->dtype, t->data, it->rows, it->k, packed, scales, biases, o->threads, &bad)
                 : kt_quantize_tensor(&p, t->dtype, t->data, it->rows, it->k, packed, scales, biases, o->threads, &bad);
    if (rc && bad != UINT64_MAX) {
        kt_fail("tensor '%s': %s at flat index %llu (row %llu, column %llu); MLX would write garbage, refusing",
                t->name, kind_of_value(t->dtype, t->data, bad), (unsigned long long)bad,
                (unsigned long long)(bad / it->k), (unsigned long long)(bad % it->k));
    } else if (rc) {
        kt_fail_context("tensor '%s'", t->name);
    }
    if (rc == 0 && o->error) {
        void *deq = kt_xmalloc((size_t)t->nbytes + 1);
        rc = kt_dequantize_tensor(it->bits, it->group_size, t->dtype, packed, scales, biases, it->rows, it->k,
                                  deq, o->threads);
        if (rc == 0) measure_error(it, deq);
        free(deq);
    }
    if (rc == 0 && w)
        rc = st_writer_write(w, packed, packed_n) || st_writer_write(w, scales, sb_n) ||
             st_writer_write(w, biases, sb_n) ? -1 : 0;
    free(packed);
    free(scales);
    free(biases);
    return rc;
}

static const char *action_name(plan_action a) {
    return a == ACT_QUANTIZE ? "quantized" : a == ACT_DEQUANTIZE ? "dequantized" : "copied";
}

static cJSON *shape_json(const uint64_t *shape, int ndim) {
    cJSON *a = cJSON_CreateArray();
    for (int d = 0; d < ndim; d++) cJSON_AddItemToArray(a, kt_json_new_int((long long)shape[d]));
    return a;
}

typedef struct {
    size_t n_quantized, n_dequantized, n_copied;
    uint64_t in_bytes, out_bytes, weights, weight_bits;
    double seconds;
} totals;

static void report_json(const options *o, const plan *pl, const totals *s) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "input", o->in);
    if (o->out) cJSON_AddStringToObject(root, "output", o->out);
    else cJSON_AddNullToObject(root, "output");
    cJSON_AddStringToObject(root, "operation", o->plan.dequantize ? "dequantize" : "quantize");
    if (!o->plan.dequantize) {
        cJSON_AddStringToObject(root, "mode", kt_quant_mode_name(o->plan.mode));
        cJSON_AddStringToObject(root, "fit", o->fit == KT_FIT_MSE ? "mse" : "rtn");
        cJSON_AddItemToObject(root, "bits", kt_json_new_int(o->plan.bits));
        cJSON_AddItemToObject(root, "group_size", kt_json_new_int(o->plan.group_size));
        cJSON_AddStringToObject(root, "kernel", kt_quant_kernel_name());
    }
    cJSON *arr = cJSON_AddArrayToObject(root, "tensors");
    for (size_t i = 0; i < pl->n; i++) {
        const plan_item *it = &pl->items[i];
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "name", it->src->name);
        cJSON_AddStringToObject(t, "action", action_name(it->act));
        cJSON_AddStringToObject(t, "dtype", kt_dtype_name(it->src->dtype));
        cJSON_AddItemToObject(t, "shape", shape_json(it->src->shape, it->src->ndim));
        if (it->act == ACT_COPY) cJSON_AddStringToObject(t, "reason", it->reason);
        else {
            cJSON_AddItemToObject(t, "bits", kt_json_new_int(it->bits));
            cJSON_AddItemToObject(t, "group_size", kt_json_new_int(it->group_size));
        }
        cJSON *outs = cJSON_AddArrayToObject(t, "outputs");
        for (int j = 0; j < it->n_out; j++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "name", it->out_name[j]);
            cJSON_AddStringToObject(x, "dtype", kt_dtype_name(it->out_dtype[j]));
            cJSON_AddItemToObject(x, "shape", shape_json(it->out_shape[j], it->src->ndim));
            cJSON_AddItemToArray(outs, x);
        }
        if (o->error && it->act == ACT_QUANTIZE) {
            cJSON_AddItemToObject(t, "rmse", kt_json_new_float(it->rmse));
            cJSON_AddItemToObject(t, "max_abs_error", kt_json_new_float(it->max_abs));
            cJSON_AddItemToObject(t, "relative_rmse", kt_json_new_float(it->rel_rmse));
        }
        cJSON_AddItemToArray(arr, t);
    }
    cJSON_AddItemToObject(root, "quantized", kt_json_new_int((long long)s->n_quantized));
    cJSON_AddItemToObject(root, "dequantized", kt_json_new_int((long long)s->n_dequantized));
    cJSON_AddItemToObject(root, "copied", kt_json_new_int((long long)s->n_copied));
    cJSON_AddItemToObject(root, "input_bytes", kt_json_new_int((long long)s->in_bytes));
    cJSON_AddItemToObject(root, "output_bytes", kt_json_new_int((long long)s->out_bytes));
    cJSON_AddItemToObject(root, "seconds", kt_json_new_float(s->seconds));
    char *text = kt_json_print_report(root, &KT_JSON_PYTHON_INDENT4);
    printf("%s\n", text);
    free(text);
    cJSON_Delete(root);
}

static void report_text(const options *o, const plan *pl, const totals *s) {
    if (o->error) {
        printf("%-56s %12s %12s %10s\n", "tensor", "rmse", "max_abs", "rel_rmse");
        for (size_t i = 0; i < pl->n; i++) {
            const plan_item *it = &pl->items[i];
            if (it->act != ACT_QUANTIZE) continue;
            printf("%-56s %12.4e %12.4e %10.5f\n", it->src->name, it->rmse, it->max_abs, it->rel_rmse);
        }
    }
    if (o->plan.dequantize) {
        printf("%zu %s dequantized, %zu copied", s->n_dequantized, s->n_dequantized == 1 ? "tensor" : "tensors",
               s->n_copied);
    } else {
        printf("%zu %s quantized (%d bits, group %d, %s), %zu copied", s->n_quantized,
               s->n_quantized == 1 ? "tensor" : "tensors", o->plan.bits,
               o->plan.group_size, kt_quant_mode_name(o->plan.mode), s->n_copied);
        if (s->weights) printf("; %.2f bits per weight", (double)s->weight_bits / (double)s->weights);
    }
    if (o->out)
        printf("; %.1f MB -> %.1f MB in %.2f s (%.2f GB/s of input)\n", (double)s->in_bytes / 1e6,
               (double)s->out_bytes / 1e6, s->seconds, s->seconds > 0 ? (double)s->in_bytes / s->seconds / 1e9 : 0);
    else
        printf("; measured in %.2f s\n", s->seconds);
}

static int run(options *o) {
    st_file f;
    if (st_open(&f, o->in)) {
        kt_print_error(PROG);
        return kt_errkind() == KT_ERR_IO ? 2 : 1;
    }
    plan pl = {0};
    int status = 0;
    st_writer *w = NULL;
    if (plan_make(&pl, &f, &o->plan)) {
        kt_fail_context("%s", o->in);
        status = 1;
        goto done;
    }
    if (check_work(o, &f, &pl)) {
        status = 1;
        goto done;
    }
    if (o->out && check_output(o)) {
        status = 2;
        goto done;
    }
    totals s = {0};
    size_t n_specs = 0;
    st_spec *specs = kt_xcalloc(3 * pl.n + 1, sizeof *specs);
    for (size_t i = 0; i < pl.n; i++) {
        plan_item *it = &pl.items[i];
        for (int j = 0; j < it->n_out; j++)
            specs[n_specs++] = (st_spec){it->out_name[j], it->out_dtype[j], it->src->ndim, it->out_shape[j]};
        s.in_bytes += it->src->nbytes + (it->scales ? it->scales->nbytes + it->biases->nbytes : 0);
        if (it->act == ACT_QUANTIZE) {
            s.n_quantized++;
            s.weights += it->src->nelem;
            s.weight_bits += it->src->nelem * (uint64_t)it->bits +
                             2 * (it->src->nelem / (uint64_t)it->group_size) * kt_dtype_bits(it->src->dtype);
        } else if (it->act == ACT_DEQUANTIZE) s.n_dequantized++;
        else s.n_copied++;
    }
    if (o->out) {
        w = st_writer_create(o->out, specs, n_specs, NULL);
        if (!w) {
            free(specs);
            status = 2;
            goto done;
        }
        s.out_bytes = st_writer_file_size(w);
    }
    free(specs);
    kt_progress bar;
    kt_progress_start(&bar, o->plan.dequantize ? "dequantize" : "quantize", s.in_bytes, !o->json && !o->quiet);
    for (size_t i = 0; i < pl.n && status == 0; i++) {
        if (process(&pl.items[i], w, o)) status = kt_errkind() == KT_ERR_IO ? 2 : 1;
        if (o->verbose && status == 0)
            fprintf(stderr, "%s: %s %s\n", PROG, pl.items[i].act == ACT_QUANTIZE ? "quantized" :
                    pl.items[i].act == ACT_DEQUANTIZE ? "dequantized" : "copied", pl.items[i].src->name);
        kt_progress_add(&bar, pl.items[i].src->nbytes);
    }
    kt_progress_end(&bar);
    if (status == 0 && w) {
        if (st_writer_finish(w)) status = 2;
        w = NULL;
    }
    s.seconds = kt_now() - bar.start;
    if (status == 0 && o->json) report_json(o, &pl, &s);
    else if (status == 0 && !o->quiet) report_text(o, &pl, &s);
done:
    if (w) st_writer_abort(w);
    if (status) kt_print_error(PROG);
    plan_free(&pl);
    st_close(&f);
    return status;
}

int main(int argc, char **argv) {
    kt_check_stdout_at_exit(PROG);
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc < 0) rc = run(&o);
    if (o.plan.only) pcre2_code_free(o.plan.only);
    if (o.plan.skip) pcre2_code_free(o.plan.skip);
    return rc;
}
