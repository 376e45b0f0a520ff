/* reference.c - the conversion mlx_lm.convert would have made, to judge a
 * conversion's behaviour against.
 *
 * A behavioural figure alone (KL 0.03, perplexity +7%) says little: it depends
 * on the text, the model and the bit width. What a user needs to know is
 * whether a conversion behaves as well as the plain conversion of the same
 * original at the same bits would. So the reference is derived here from the
 * original through the conversion's own plan (fidelity.c: each module at the
 * bits and group size DIR's config.json declares), every quantized tensor by
 * MLX's round-to-nearest in metal rounding, every other tensor cast as
 * mlx_lm.convert casts it. It is written as one safetensors file beside a copy
 * of DIR's config.json in a fresh temporary directory, mapped, and the files
 * removed at once: the mapping keeps the data, nothing stays on disk, and
 * nothing is ever written in DIR.
 */
#include "checks.h"
#include "affine.h"
#include "atomic_file.h"
#include "error.h"
#include "file.h"
#include "progress.h"
#include "strbuf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Item IT's outputs (weight, scales, biases; or the cast tensor) into BUF[j]. */
static int derive_item(const cv_item *it, uint8_t **buf) {
    const uint64_t k = it->shape[it->ndim - 1] ? it->shape[it->ndim - 1] : 1, rows = it->nelem / k;
    const size_t es = kt_dtype_bits(it->dtype) / 8;
    for (int j = 0; j < it->n_out; j++) buf[j] = kt_xmalloc(it->out[j].nbytes ? it->out[j].nbytes : 1);
    long bad = 0;
    kt_quant_params q = it->q;
    q.mode = KT_QUANT_METAL;
    const uint64_t groups = it->quantized ? k / (uint64_t)q.group_size : 0;
    const size_t rb = it->quantized ? kt_quant_row_bytes(&q, (size_t)k) : 0;
#pragma omp parallel reduction(+ : bad)
    {
        float *row = kt_xmalloc((size_t)k * sizeof *row);
        float *sc = kt_xmalloc((groups + 1) * sizeof *sc), *bi = kt_xmalloc((groups + 1) * sizeof *bi);
        uint8_t *tmp = kt_xmalloc((size_t)k * 4);
#pragma omp for schedule(static)
        for (uint64_t r = 0; r < rows; r++) {
            vr_source_row(it, r, k, row, tmp);
            if (!it->quantized) {
                kt_row_from_f32(it->dtype, row, buf[0] + r * k * es, (size_t)k);
                continue;
            }
            if (kt_quantize_row(&q, row, (size_t)k, buf[0] + r * rb, sc, bi)) {
                bad++;
                continue;
            }
            kt_row_from_f32(it->dtype, sc, buf[1] + r * groups * es, (size_t)groups);
            kt_row_from_f32(it->dtype, bi, buf[2] + r * groups * es, (size_t)groups);
        }
        free(row), free(sc), free(bi), free(tmp);
    }
    return bad ? kt_fail("%s: the original holds NaN or infinite values", it->name) : 0;
}

static int write_reference(const char *path, const cv_plan *plan, int progress) {
    size_t n = 0;
    for (size_t i = 0; i < plan->n_items; i++) n += (size_t)plan->items[i].n_out;
    st_spec *specs = kt_xmalloc(n * sizeof *specs);
    n = 0;
    for (size_t i = 0; i < plan->n_items; i++)
        for (int j = 0; j < plan->items[i].n_out; j++) {
            const cv_output *o = &plan->items[i].out[j];
            specs[n++] = (st_spec){o->name, o->dtype, o->ndim, o->shape};
        }
    st_writer *w = st_writer_create(path, specs, n, NULL);
    free(specs);
    if (!w) return -1;
    kt_progress bar;
    kt_progress_start(&bar, "reference", plan->total_size, progress);
    int rc = 0;
    for (size_t i = 0; i < plan->n_items && rc == 0; i++) {
        const cv_item *it = &plan->items[i];
        uint8_t *buf[3] = {0};
        rc = derive_item(it, buf);
        for (int j = 0; j < it->n_out && rc == 0; j++) {
            rc = st_writer_write(w, buf[j], it->out[j].nbytes);
            kt_progress_add(&bar, it->out[j].nbytes);
        }
        for (int j = 0; j < 3; j++) free(buf[j]);
    }
    kt_progress_end(&bar);
    if (rc == 0) return st_writer_finish(w);
    st_writer_abort(w);
    return -1;
}

int vr_reference_load(kt_model *ref, const char *dir, const char *original, int progress) {
    int exists;
    cJSON *scfg = vr_load_config(original, &exists), *ccfg = vr_load_config(dir, &exists);
    kt_model_files src, conv;
    int have_src = 0, have_conv = 0, rc = -1;
    cv_plan plan = {0};
    char *tmp = NULL, *weights = NULL, *config = NULL;
    if (!scfg || !ccfg) goto done;
    if (kt_model_open(&src, original)) goto done;
    have_src = 1;
    if (kt_model_open(&conv, dir)) goto done;
    have_conv = 1;
    if (vr_plan_conversion(&plan, &src, scfg, &conv, ccfg)) goto done;
    const char *base = getenv("TMPDIR");
    strbuf sb = {0};
    sb_printf(&sb, "%s/kintsugi-reference-XXXXXX", base && *base ? base : "/tmp");
    tmp = sb_take(&sb);
    if (!mkdtemp(tmp)) {
        rc = kt_fail_io("cannot make a temporary directory %s: %s", tmp, kt_errno_text(errno));
        free(tmp), tmp = NULL;
        goto done;
    }
    weights = kt_path_join(tmp, "model.safetensors");
    config = kt_path_join(tmp, "config.json");
    char *cfg_text = NULL, *cfg_path = kt_path_join(dir, "config.json");
    size_t cfg_len = 0;
    rc = kt_read_file(cfg_path, &cfg_text, &cfg_len) == 1 ? 0 : -1;
    free(cfg_path);
    /* the files are removed once mapped: nothing to wait for the disk for */
    const int durable = kt_atomic_durable();
    kt_atomic_set_durable(0);
    if (rc == 0) rc = kt_write_file_atomic(config, cfg_text, cfg_len);
    free(cfg_text);
    if (rc == 0) rc = write_reference(weights, &plan, progress);
    kt_atomic_set_durable(durable);
    if (rc == 0) rc = kt_model_load(ref, tmp);
done:
    if (tmp) { /* the mapping holds the data: the files go now */
        if (weights) unlink(weights);
        if (config) unlink(config);
        rmdir(tmp);
    }
    if (rc && !kt_errmsg()[0]) kt_fail("the reference conversion could not be made");
    cv_plan_free(&plan);
    if (have_src) kt_model_close(&src);
    if (have_conv) kt_model_close(&conv);
    cJSON_Delete(scfg), cJSON_Delete(ccfg);
    free(tmp), free(weights), free(config);
    return rc;
}
