/* fidelity.c - every tensor of the conversion re-derived from the original.
 *
 * convert's plan (convert/plan.h) says how each output comes from the
 * Hugging Face tensors (drop mtp.*, conv1d relabelled, experts stacked, cast,
 * quantized or not). For a quantized tensor each row is quantized again from
 * the original in both MLX semantics and compared byte for byte with the
 * packed codes, scales and biases: "identical (metal)", "identical (cpu)",
 * "identical (metal, cpu)" when the row has no rounding tie, or "differs",
 * for which the dequantized error against the original is given (RMSE
 * relative to the tensor's RMS). A tensor kept in floating point must equal
 * the original after the cast. One pair of tensors at a time, rows in
 * parallel; pages are dropped from our memory once a tensor is done.
 */
#include "checks.h"
#include "affine.h"
#include "error.h"
#include "model_dir.h"
#include "nemotron_config.h"
#include "plan.h"
#include "strbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *G = "fidelity";

/* Forget the whole pages inside [P, P+N) (they stay in the page cache). */
static void drop_pages(const void *p, size_t n) {
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + page - 1) & ~(page - 1), b = ((uintptr_t)p + n) & ~(page - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

/* Row R (of the stacked tensor) of item IT in float32, after the cast. */
void vr_source_row(const cv_item *it, uint64_t r, uint64_t k, float *out, void *tmp) {
    const uint64_t part_rows = it->parts[0]->nelem / k;
    const st_tensor *t = it->parts[r / part_rows];
    const size_t es = kt_dtype_bits(t->dtype) / 8;
    kt_row_to_f32(t->dtype, t->data + (r % part_rows) * k * es, out, (size_t)k);
    if (it->dtype != t->dtype) { /* the cast: round to the target dtype */
        kt_row_from_f32(it->dtype, out, tmp, (size_t)k);
        kt_row_to_f32(it->dtype, tmp, out, (size_t)k);
    }
}

typedef struct {
    uint64_t rows, metal_rows, cpu_rows;
    double err2, ref2;
    double rtn_err2[2];       /* what RTN would give, metal and cpu */
    uint64_t far_codes;       /* codes that are not a nearest code for their group's pair */
} quant_result;

/* How many codes of a row are not a nearest code for their stored pair: the
 * test that a tensor is a fit and not damage. A code passes when its error
 * is within a thousandth of a step of the nearest code's (float arithmetic
 * may put a value a hair across the midpoint between two codes). */
static uint64_t far_codes_of_row(const float *x, const uint8_t *packed, const float *sc, const float *bi,
                                 kt_quant_params q, uint64_t k, uint8_t *codes) {
    const double nmax = (double)((1 << q.bits) - 1);
    uint64_t far = 0;
    kt_unpack_codes_ref(q.bits, packed, (size_t)k, codes);
    for (uint64_t j = 0; j < k; j++) {
        const double s = sc[j / (uint64_t)q.group_size], b = bi[j / (uint64_t)q.group_size];
        if (s == 0) continue;
        double n = nearbyint(((double)x[j] - b) / s);
        n = n < 0 ? 0 : (n > nmax ? nmax : n);
        const double e = fabs(s * codes[j] + b - x[j]), en = fabs(s * n + b - x[j]);
        far += e > en + 1e-3 * fabs(s);
    }
    return far;
}

/* Row R of the stored quantization, dequantized as MLX does, in float32. */
static void stored_row(const st_tensor *w, const st_tensor *s, const st_tensor *b, kt_quant_params q, kt_dtype dt,
                       uint64_t r, uint64_t k, uint8_t *tmp, float *out) {
    const uint64_t groups = k / (uint64_t)q.group_size;
    const size_t es = kt_dtype_bits(dt) / 8, rb = kt_quant_row_bytes(&q, (size_t)k);
    kt_dequantize_row_ref(q.bits, q.group_size, dt, w->data + r * rb, s->data + r * groups * es,
                          b->data + r * groups * es, (size_t)k, tmp);
    kt_row_to_f32(dt, tmp, out, (size_t)k);
}

/* Pass 1 (every tensor): each row quantized again in both semantics and
 * compared byte for byte. Pass 2 (only a tensor that differs): the error of
 * what is stored against the original. */
static int compare_quantized(const cv_item *it, const st_tensor *w, const st_tensor *s, const st_tensor *b,
                             kt_quant_params q, quant_result *res) {
    const uint64_t k = it->shape[it->ndim - 1], rows = it->nelem / k, groups = k / (uint64_t)q.group_size;
    const size_t es = kt_dtype_bits(s->dtype) / 8, rb = kt_quant_row_bytes(&q, (size_t)k);
    if (w->nbytes != rows * rb || s->nelem != rows * groups || b->nelem != s->nelem || s->dtype != b->dtype ||
        s->dtype != it->dtype)
        return kt_fail("shapes or dtypes do not fit %llu rows of %llu at %d bits, group %d, %s scales",
                       (unsigned long long)rows, (unsigned long long)k, q.bits, q.group_size, kt_dtype_name(it->dtype));
    uint64_t metal = 0, cpu = 0, bad = 0;
#pragma omp parallel reduction(+ : metal, cpu, bad)
    {
        float *row = kt_xmalloc((size_t)k * sizeof *row);
        float *sc = kt_xmalloc((size_t)groups * sizeof *sc), *bi = kt_xmalloc((size_t)groups * sizeof *bi);
        uint8_t *tmp = kt_xmalloc((size_t)k * 4), *packed = kt_xmalloc(rb + 1), *sb = kt_xmalloc((size_t)groups * es * 2);
#pragma omp for schedule(static)
        for (uint64_t r = 0; r < rows; r++) {
            vr_source_row(it, r, k, row, tmp);
            const uint8_t *cw = w->data + r * rb, *cs = s->data + r * groups * es, *cb = b->data + r * groups * es;
            for (int mode = 0; mode < 2; mode++) {
                kt_quant_params p = q;
                p.mode = mode == 0 ? KT_QUANT_METAL : KT_QUANT_CPU;
                if (kt_quantize_row(&p, row, (size_t)k, packed, sc, bi)) { bad++; break; } /* NaN/Inf in the original */
                kt_row_from_f32(it->dtype, sc, sb, (size_t)groups);
                kt_row_from_f32(it->dtype, bi, sb + groups * es, (size_t)groups);
                const int same = !memcmp(packed, cw, rb) && !memcmp(sb, cs, groups * es) &&
                                 !memcmp(sb + groups * es, cb, groups * es);
                if (mode == 0) metal += (uint64_t)same;
                else cpu += (uint64_t)same;
            }
        }
        free(row), free(sc), free(bi), free(tmp), free(packed), free(sb);
    }
    if (bad) return kt_fail("the original holds NaN or infinite values (%llu rows)", (unsigned long long)bad);
    double err2 = 0, ref2 = 0, rtn_m = 0, rtn_c = 0;
    uint64_t far = 0;
    if (metal != rows && cpu != rows) {
#pragma omp parallel reduction(+ : err2, ref2, rtn_m, rtn_c, far)
        {
            float *row = kt_xmalloc((size_t)k * sizeof *row), *deq = kt_xmalloc((size_t)k * sizeof *deq);
            float *sc = kt_xmalloc((size_t)groups * sizeof *sc), *bi = kt_xmalloc((size_t)groups * sizeof *bi);
            uint8_t *tmp = kt_xmalloc((size_t)k * 4), *packed = kt_xmalloc(rb + 1), *sb = kt_xmalloc((size_t)groups * es * 2);
#pragma omp for schedule(static)
            for (uint64_t r = 0; r < rows; r++) {
                vr_source_row(it, r, k, row, tmp);
                stored_row(w, s, b, q, it->dtype, r, k, tmp, deq);
                for (uint64_t j = 0; j < k; j++) {
                    double d = (double)deq[j] - row[j];
                    err2 += d * d, ref2 += (double)row[j] * row[j];
                }
                kt_row_to_f32(it->dtype, s->data + r * groups * es, sc, (size_t)groups);
                kt_row_to_f32(it->dtype, b->data + r * groups * es, bi, (size_t)groups);
                far += far_codes_of_row(row, w->data + r * rb, sc, bi, q, k, tmp);
                for (int mode = 0; mode < 2; mode++) { /* RTN's error, as it would be stored */
                    kt_quant_params p = q;
                    p.mode = mode == 0 ? KT_QUANT_METAL : KT_QUANT_CPU;
                    kt_quantize_row(&p, row, (size_t)k, packed, sc, bi);
                    kt_row_from_f32(it->dtype, sc, sb, (size_t)groups);
                    kt_row_from_f32(it->dtype, bi, sb + groups * es, (size_t)groups);
                    kt_dequantize_row_ref(q.bits, q.group_size, it->dtype, packed, sb, sb + groups * es, (size_t)k, tmp);
                    kt_row_to_f32(it->dtype, tmp, deq, (size_t)k);
                    double e = 0;
                    for (uint64_t j = 0; j < k; j++) e += ((double)deq[j] - row[j]) * ((double)deq[j] - row[j]);
                    if (mode == 0) rtn_m += e;
                    else rtn_c += e;
                }
            }
            free(row), free(deq), free(sc), free(bi), free(tmp), free(packed), free(sb);
        }
    }
    *res = (quant_result){rows, metal, cpu, err2, ref2, {rtn_m, rtn_c}, far};
    return 0;
}

/* A tensor kept in floating point: equal to the original after the cast? */
static int compare_plain(const cv_item *it, const st_tensor *t, uint64_t *differing, double *rel) {
    if (t->dtype != it->dtype || t->nelem != it->nelem)
        return kt_fail("%s with %llu elements, expected %s with %llu", kt_dtype_name(t->dtype),
                       (unsigned long long)t->nelem, kt_dtype_name(it->dtype), (unsigned long long)it->nelem);
    const uint64_t k = it->shape[it->ndim - 1] ? it->shape[it->ndim - 1] : 1, rows = it->nelem / k;
    const size_t es = kt_dtype_bits(t->dtype) / 8;
    uint64_t diff = 0;
    double err2 = 0, ref2 = 0;
#pragma omp parallel reduction(+ : diff, err2, ref2)
    {
        float *row = kt_xmalloc((size_t)k * sizeof *row), *got = kt_xmalloc((size_t)k * sizeof *got);
        uint8_t *tmp = kt_xmalloc((size_t)k * 4);
#pragma omp for schedule(static)
        for (uint64_t r = 0; r < rows; r++) {
            vr_source_row(it, r, k, row, tmp);
            kt_row_from_f32(it->dtype, row, tmp, (size_t)k);
            if (!memcmp(tmp, t->data + r * k * es, (size_t)k * es)) {
                for (uint64_t j = 0; j < k; j++) ref2 += (double)row[j] * row[j];
                continue;
            }
            kt_row_to_f32(t->dtype, t->data + r * k * es, got, (size_t)k);
            for (uint64_t j = 0; j < k; j++) {
                double d = (double)got[j] - row[j];
                diff += d != 0, err2 += d * d, ref2 += (double)row[j] * row[j];
            }
        }
        free(row), free(got), free(tmp);
    }
    *differing = diff;
    *rel = ref2 > 0 ? sqrt(err2 / ref2) : (err2 > 0 ? INFINITY : 0);
    return 0;
}

static const st_tensor *output(const kt_model_files *conv, const cv_item *it, const char *suffix) {
    for (int j = 0; j < it->n_out; j++)
        if (kt_ends_with(it->out[j].name, suffix)) return kt_model_find(conv, it->out[j].name);
    return NULL;
}

static void release(const cv_item *it, const kt_model_files *conv) {
    for (size_t p = 0; p < it->n_parts; p++) drop_pages(it->parts[p]->data, it->parts[p]->nbytes);
    for (int j = 0; j < it->n_out; j++) {
        const st_tensor *t = kt_model_find(conv, it->out[j].name);
        if (t) drop_pages(t->data, t->nbytes);
    }
}

/* The quantization the converted config declares (per-layer entries aside). */
static kt_quant_params declared(const cJSON *cfg) {
    kt_quant_params q = {4, 64, KT_QUANT_METAL};
    const cJSON *qc = vr_quantization(cfg);
    int64_t v;
    if (kt_json_i64(cJSON_GetObjectItemCaseSensitive(qc, "bits"), &v) == 0) q.bits = (int)v;
    if (kt_json_i64(cJSON_GetObjectItemCaseSensitive(qc, "group_size"), &v) == 0) q.group_size = (int)v;
    return q;
}

/* Each module's quantization as the conversion's config.json declares it,
 * read as mlx-lm reads it: a per-layer entry, else the top-level one; where a
 * config has per-layer entries, a module without one is quantized only when
 * the conversion has its scales (mlx-lm's own rule for such a module). */
typedef struct {
    const cJSON *cfg;
    const kt_model_files *conv;
    int per_layer;
} conv_quant;

static int has_layer_entries(const cJSON *cfg) {
    const cJSON *qc = vr_quantization(cfg);
    for (const cJSON *e = qc ? qc->child : NULL; e; e = e->next)
        if (cJSON_IsObject(e) || cJSON_IsBool(e)) return 1;
    return 0;
}

static int quant_from_config(const void *ctx, const char *path, const kt_quant_params *def, kt_quant_params *out) {
    const conv_quant *c = ctx;
    const cJSON *qc = vr_quantization(c->cfg);
    *out = *def;
    if (c->per_layer && !cJSON_GetObjectItemCaseSensitive(qc, path)) {
        strbuf sb = {0};
        sb_printf(&sb, "%s.scales", path);
        const int has = kt_model_find(c->conv, sb_cstr(&sb)) != NULL;
        sb_free(&sb);
        if (!has) return 0;
    }
    kt_quant_entry e = kt_config_quant_of(c->cfg, path);
    if (!e.quantized) return 0;
    out->bits = e.bits, out->group_size = e.group_size;
    return 1;
}

/* The cast dtype: what the converted model stores its scales (or, unquantized, its norms) in. */
static kt_dtype cast_dtype(const kt_model_files *conv) {
    const st_tensor *t = kt_model_find(conv, "backbone.embeddings.scales");
    if (!t) t = kt_model_find(conv, "backbone.norm_f.weight");
    return t ? t->dtype : KT_BF16;
}

int vr_plan_conversion(cv_plan *plan, const kt_model_files *src, const cJSON *scfg, const kt_model_files *conv,
                       const cJSON *ccfg) {
    conv_quant cq = {ccfg, conv, has_layer_entries(ccfg)};
    cv_options po = {declared(ccfg), cast_dtype(conv), UINT64_MAX, quant_from_config, &cq};
    return cv_plan_make(plan, src, scfg, &po);
}

typedef struct {
    size_t metal_only, cpu_only, both, fitted, differs, failed, tensors;
} tally;

/* The error bound of a differing tensor: --max-rel-rmse, else 0.15 at 4 bits
 * (4-bit group-64 Gaussian weights measure 0.086-0.088), halved per extra
 * bit as the step is. */
static double rmse_bound(const vr_options *o, int bits) {
    return o->max_rel_rmse >= 0 ? o->max_rel_rmse : 0.15 * ldexp(1.0, 4 - bits);
}

static void check_item(vr_report *r, const vr_options *o, const cv_item *it, const kt_model_files *conv, kt_quant_params q,
                       tally *t) {
    t->tensors++;
    cJSON *fig = cJSON_CreateObject();
    if (it->quantized) {
        const st_tensor *w = output(conv, it, ".weight"), *s = output(conv, it, ".scales"), *b = output(conv, it, ".biases");
        quant_result res = {0};
        if (!w || !s || !b) {
            vr_add(r, G, it->out[0].name, VR_FAIL, "reconvert with kintsugi-convert", fig,
                   "missing from the conversion (weight, scales and biases expected)");
            t->differs++, t->failed++;
            return;
        }
        if (compare_quantized(it, w, s, b, q, &res)) {
            vr_add(r, G, it->out[0].name, VR_FAIL, "reconvert with kintsugi-convert", fig, "%s", kt_errmsg());
            t->differs++, t->failed++;
            return;
        }
        cJSON_AddItemToObject(fig, "rows", kt_json_new_int((long long)res.rows));
        cJSON_AddItemToObject(fig, "rows_identical_metal", kt_json_new_int((long long)res.metal_rows));
        cJSON_AddItemToObject(fig, "rows_identical_cpu", kt_json_new_int((long long)res.cpu_rows));
        const int m_all = res.metal_rows == res.rows, c_all = res.cpu_rows == res.rows;
        if (m_all || c_all) {
            const char *how = m_all && c_all ? "metal, cpu" : m_all ? "metal" : "cpu";
            cJSON_AddStringToObject(fig, "identical", how);
            t->both += m_all && c_all, t->metal_only += m_all && !c_all, t->cpu_only += c_all && !m_all;
            vr_add(r, G, it->out[0].name, VR_PASS, NULL, fig, "identical (%s)", how);
            return;
        }
        const double rel = res.ref2 > 0 ? sqrt(res.err2 / res.ref2) : 0;
        if (isfinite(rel)) cJSON_AddItemToObject(fig, "rel_rmse", kt_json_new_float(rel)); /* JSON has no NaN */
        const double rtn2 = res.rtn_err2[0] < res.rtn_err2[1] ? res.rtn_err2[0] : res.rtn_err2[1];
        const double rtn_rel = res.ref2 > 0 ? sqrt(rtn2 / res.ref2) : 0;
        if (isfinite(rtn_rel)) cJSON_AddItemToObject(fig, "rtn_rel_rmse", kt_json_new_float(rtn_rel));
        cJSON_AddItemToObject(fig, "codes_not_nearest", kt_json_new_int((long long)res.far_codes));
        /* a fit (kintsugi-convert --fit mse, or any other tool's): every code
         * the nearest for its stored pair, and no more error than RTN's (a
         * thousandth of slack: the fit minimises the error in float32, MLX
         * dequantizes in the dtype of the scales) */
        if (res.far_codes == 0 && res.err2 <= rtn2 * (1 + 1e-3)) {
            cJSON_AddStringToObject(fig, "identical", "fitted");
            t->fitted++;
            vr_add(r, G, it->out[0].name, VR_PASS, NULL, fig,
                   "fitted (error %.4f of its RMS, RTN %.4f): every code the nearest for its group's scale and bias",
                   rel, rtn_rel);
            return;
        }
        t->differs++;
        const double bound = rmse_bound(o, q.bits);
        const int ok = o->allow_differs && rel <= bound;
        t->failed += !ok;
        char why[160];
        if (res.far_codes)
            snprintf(why, sizeof why, "%llu codes are not the nearest for their group's scale and bias",
                     (unsigned long long)res.far_codes);
        else
            snprintf(why, sizeof why, "more error than RTN's %.4f, so not a fit", rtn_rel);
        vr_add(r, G, it->out[0].name, ok ? VR_WARN : VR_FAIL, "reconvert with kintsugi-convert", fig,
               "differs: %llu of %llu rows match neither rounding, %s; error vs original %.4f of its RMS (bound %.4f%s)",
               (unsigned long long)(res.rows - (res.metal_rows > res.cpu_rows ? res.metal_rows : res.cpu_rows)),
               (unsigned long long)res.rows, why, rel, bound,
               o->allow_differs ? "" : "; differences fail without --allow-differs");
        return;
    }
    const st_tensor *c = kt_model_find(conv, it->out[0].name);
    uint64_t diff = 0;
    double rel = 0;
    if (!c) {
        vr_add(r, G, it->out[0].name, VR_FAIL, "reconvert with kintsugi-convert", fig, "missing from the conversion");
        t->differs++, t->failed++;
        return;
    }
    if (compare_plain(it, c, &diff, &rel)) {
        vr_add(r, G, it->out[0].name, VR_FAIL, "reconvert with kintsugi-convert", fig, "%s", kt_errmsg());
        t->differs++, t->failed++;
        return;
    }
    cJSON_AddItemToObject(fig, "differing_values", kt_json_new_int((long long)diff));
    if (isfinite(rel)) cJSON_AddItemToObject(fig, "rel_rmse", kt_json_new_float(rel));
    if (!diff) {
        t->both++;
        vr_add(r, G, it->out[0].name, VR_PASS, NULL, fig, "identical (%s, as cast from the original)", kt_dtype_name(it->dtype));
        return;
    }
    t->differs++, t->failed++;
    vr_add(r, G, it->out[0].name, VR_FAIL, "reconvert with kintsugi-convert", fig,
           "differs: %llu values differ from the original after the cast to %s; error %.4g of its RMS",
           (unsigned long long)diff, kt_dtype_name(it->dtype), rel);
}

int vr_check_fidelity(vr_report *r, const vr_options *o) {
    kt_model_files src, conv;
    int exists;
    cJSON *scfg = vr_load_config(o->original, &exists), *ccfg = NULL;
    if (!scfg && !exists) kt_fail("%s: no config.json", o->original);
    if (!scfg || kt_model_open(&src, o->original)) {
        cJSON_Delete(scfg);
        vr_add(r, G, "original", VR_FAIL, NULL, NULL, "--original %s: %s", o->original, kt_errmsg());
        return kt_errkind() == KT_ERR_IO ? -1 : 0;
    }
    ccfg = vr_load_config(o->dir, &exists);
    if (!ccfg || kt_model_open(&conv, o->dir)) {
        vr_add(r, G, "conversion", VR_SKIP, NULL, NULL, "the conversion cannot be opened: %s", kt_errmsg());
        cJSON_Delete(scfg), cJSON_Delete(ccfg), kt_model_close(&src);
        return 0;
    }
    cv_plan plan;
    if (vr_plan_conversion(&plan, &src, scfg, &conv, ccfg)) {
        vr_add(r, G, "original", VR_FAIL, NULL, NULL, "--original %s: %s", o->original, kt_errmsg());
    } else {
        tally t = {0};
        for (size_t i = 0; i < plan.n_items; i++) {
            if (o->progress) fprintf(stderr, "\rfidelity: %zu/%zu tensors", i + 1, plan.n_items);
            check_item(r, o, &plan.items[i], &conv, plan.items[i].q, &t);
            release(&plan.items[i], &conv);
        }
        if (o->progress) fputc('\n', stderr);
        /* which semantics produced the conversion */
        const char *rounding = t.differs ? "neither (some tensors differ)"
                               : t.fitted ? "fitted (tensors not rounded to nearest: codes and error checked)"
                               : t.metal_only && t.cpu_only ? "mixed (metal and cpu tensors)"
                               : t.metal_only ? "metal" : t.cpu_only ? "cpu" : "metal or cpu (no rounding ties)";
        if (!r->summary) r->summary = cJSON_CreateObject();
        cJSON_AddStringToObject(r->summary, "rounding", rounding);
        cJSON_AddItemToObject(r->summary, "tensors_compared", kt_json_new_int((long long)t.tensors));
        cJSON_AddItemToObject(r->summary, "tensors_differing", kt_json_new_int((long long)t.differs));
        cJSON_AddItemToObject(r->summary, "tensors_fitted", kt_json_new_int((long long)t.fitted));
        r->rtn_identical = !t.differs && !t.fitted;
        cJSON *fig = cJSON_CreateObject();
        cJSON_AddStringToObject(fig, "rounding", rounding);
        /* with --allow-differs, tensors within the bound make this a warning */
        vr_add(r, G, "rounding", t.failed ? VR_FAIL : t.differs ? VR_WARN : VR_PASS, NULL, fig,
               "%zu tensors compared with the original: %s", t.tensors, rounding);
    }
    cv_plan_free(&plan);
    cJSON_Delete(scfg), cJSON_Delete(ccfg);
    kt_model_close(&src), kt_model_close(&conv);
    return 0;
}
