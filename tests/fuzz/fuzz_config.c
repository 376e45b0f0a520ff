/* fuzz_config.c - config.json through the one validator every tool uses
 * (lib/nemotron_config.c). Whatever it accepts must keep the promises the
 * runtime relies on: every size positive and within its bound, the products
 * the loader and the forward pass form inside an int, the divisibilities
 * true, the pattern made of M * - E; and every module's quantization entry
 * one the kernels have. */
#include "json.h"
#include "nemotron_config.h"

#include "error.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check(const kt_config *c) {
    const int sizes[] = {c->hidden, c->vocab, c->n_layers, c->heads, c->kv_heads, c->head_dim, c->m_heads,
                         c->m_head_dim, c->n_groups, c->state, c->conv, c->intermediate};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        if (sizes[i] < 1) abort();
    if (c->heads % c->kv_heads || c->m_heads % c->n_groups || (int)strlen(c->pattern) != c->n_layers) abort();
    for (const char *p = c->pattern; *p; p++)
        if (!strchr("M*-E", *p)) abort();
    /* the largest projection: rows x columns in 64 bits, rows in an int */
    int64_t in_rows = 2 * (int64_t)c->m_heads * c->m_head_dim + 2 * (int64_t)c->n_groups * c->state + c->m_heads;
    if (in_rows > INT32_MAX || (int64_t)c->heads * c->head_dim > INT32_MAX) abort();
    if ((int64_t)kt_config_conv_dim(c) * c->conv > INT32_MAX) abort();
    if ((double)in_rows * c->hidden > 9e18 || (double)c->vocab * c->hidden > 9e18) abort();
    if (!(c->eps > 0) || !(c->dt_min >= 0) || !(c->dt_max >= c->dt_min)) abort();
    if (strchr(c->pattern, 'E') &&
        (c->top_k < 1 || c->top_k > c->n_experts || c->n_group < 1 || c->n_experts % c->n_group ||
         c->topk_group < 1 || c->topk_group > c->n_group || !(c->routed_scale > 0)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *cfg = kt_json_parse((const char *)data, size, KT_JSON_DUP_LAST_WINS, "config.json");
    if (!cfg) return 0;
    kt_config c;
    if (kt_config_read(&c, cfg) == 0) {
        check(&c);
        kt_config_free(&c);
        if (getenv("KT_FUZZ_VERBOSE")) fprintf(stderr, "verdict: valid\n");
    } else if (getenv("KT_FUZZ_VERBOSE")) {
        fprintf(stderr, "verdict: %s\n", kt_errmsg());
    }
    int quantized;
    if (kt_config_check_quantization(cfg, &quantized) == 0 && quantized) {
        static const char *const paths[] = {"lm_head", "backbone.embeddings", "backbone.layers.0.mixer.in_proj", ""};
        for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
            kt_quant_entry q = kt_config_quant_of(cfg, paths[i]);
            if (q.quantized && ((q.bits < 2 || q.bits > 8 || q.bits == 7) ||
                                (q.group_size != 32 && q.group_size != 64 && q.group_size != 128)))
                abort();
        }
    }
    cJSON_Delete(cfg);
    return 0;
}
