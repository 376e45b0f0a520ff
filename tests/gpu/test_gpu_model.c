/* test_gpu_model.c - whole models on a GPU backend against the CPU
 * backend: a 64-token prompt and 32 greedy tokens, token by token and again
 * with the prompt as one batch (the device's matrix-matrix path), the logits
 * of every position compared with the CPU's token by token and the greedy
 * tokens equal.
 *
 * usage: gpu-model-tests vulkan|metal [--max-binding BYTES] [--copy] MODEL_DIR...
 * (the device: the host's variable, KINTSUGI_VULKAN_DEVICE or
 * KINTSUGI_METAL_DEVICE). --max-binding makes the host report a smaller
 * binding limit, so that every weight matrix is split into row chunks as a
 * 9B model's largest are on lavapipe; --copy makes it report no import, so
 * that the weights are copied rather than imported. Each model's line says
 * how many weight bytes were imported and copied; with import on a device
 * that has it, a model whose weights were all copied fails.
 * Prints one line per model and "N passed, N failed". The CPU runs the exact
 * path (float32 activations), the reference the oracle tests hold to mlx-lm.
 */
#include "backend_gpu.h"
#include "error.h"
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PROMPT = 64, GEN = 32, N = PROMPT + GEN };

static int argmax(const float *v, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

/* The logits of every position of TOKENS on M's current backend: token
 * by token, or (BATCHED) the prompt as one batch of matrix-matrix work
 * (kt_forward_every) and then token by token. */
static int run(kt_model *m, const int32_t *tokens, float *logits, int batched) {
    kt_state s;
    if (kt_state_init(&s, m, N + 1)) return -1;
    int rc = batched ? kt_forward_every(m, &s, tokens, PROMPT, logits) : 0;
    for (int t = batched ? PROMPT : 0; t < N && rc == 0; t++) rc = kt_forward(m, &s, tokens[t], logits + (size_t)t * m->cfg.vocab);
    kt_state_free(&s, m);
    return rc;
}

/* The largest difference of DEV's logits from CPU's over the N positions,
 * relative to each position's largest logit; *SAME: DEV's greedy choices
 * are the tokens that followed. */
static double worst_of(const float *cpu, const float *dev, const int32_t *tokens, int V, int *same) {
    double worst = 0;
    *same = 1;
    for (int t = 0; t < N; t++) {
        const float *a = cpu + (size_t)t * V, *b = dev + (size_t)t * V;
        double scale = 0, d = 0;
        for (int i = 0; i < V; i++) {
            scale = fmax(scale, fabs(a[i]));
            d = fmax(d, fabs((double)a[i] - b[i]));
        }
        worst = fmax(worst, d / (scale > 0 ? scale : 1));
        if (t + 1 < N && t + 1 >= PROMPT) *same &= argmax(b, V) == tokens[t + 1];
    }
    return worst;
}

static size_t max_binding_limit; /* --max-binding, 0: the host's own */
static size_t seen_alignment; /* what the device said of importing (0: it cannot, or --copy) */

static int check_model(const char *dir, const kt_backend *gpu) {
    const kt_gpu_weight_stats before = kt_gpu_weights();
    kt_model m;
    if (kt_model_load(&m, dir)) {
        printf("FAIL %s: %s\n", dir, kt_errmsg());
        return 0;
    }
    m.activations = KT_ACT_F32;
    const int V = m.cfg.vocab;
    int32_t tokens[N];
    for (int t = 0; t < PROMPT; t++) tokens[t] = (int32_t)((t * 7919 + 11) % V);
    float *cpu = malloc((size_t)N * V * sizeof *cpu), *dev = malloc((size_t)N * V * sizeof *dev);
    float *bat = malloc((size_t)N * V * sizeof *bat);
    /* the CPU's greedy continuation, one token at a time */
    kt_state s;
    int ok = kt_state_init(&s, &m, N + 1) == 0;
    for (int t = 0; t < N && ok; t++) {
        ok = kt_forward(&m, &s, tokens[t], cpu + (size_t)t * V) == 0;
        if (t + 1 < N && t + 1 >= PROMPT) tokens[t + 1] = argmax(cpu + (size_t)t * V, V);
    }
    kt_state_free(&s, &m);
    m.backend = gpu;
    ok = ok && run(&m, tokens, dev, 0) == 0 && run(&m, tokens, bat, 1) == 0;
    int same = 0, same_b = 0;
    const double worst = ok ? worst_of(cpu, dev, tokens, V, &same) : 1, worst_b = ok ? worst_of(cpu, bat, tokens, V, &same_b) : 1;
    /* float32 sums in another order through every layer: a few 1e-6 of the
     * largest logit (measured: see docs/GPU.md) */
    const kt_gpu_weight_stats after = kt_gpu_weights();
    const size_t imported = after.imported - before.imported, copied = after.copied - before.copied;
    const size_t matrices = after.matrices - before.matrices, chunks = after.chunks - before.chunks;
    const int pass = ok && same && same_b && worst <= 1e-4 && worst_b <= 1e-4 &&
                     (seen_alignment ? imported > 0 : imported == 0) &&
                     (max_binding_limit ? chunks > matrices : chunks == matrices);
    printf("%s %s: %d positions, largest logit difference %.2e of the largest logit token by token, %.2e with the "
           "prompt as one batch, greedy tokens %s; weights: %zu bytes imported, %zu copied, %zu matrices in %zu chunks "
           "(%s)\n",
           pass ? "ok  " : "FAIL", dir, N, worst, worst_b, same && same_b ? "equal" : "differ", imported, copied,
           matrices, chunks, ok ? gpu->name : kt_errmsg());
    free(cpu), free(dev), free(bat);
    kt_model_free(&m);
    return pass;
}

/* the host as built, but for what the options change */
static const kt_gpu_host *real;
static size_t small_binding(const kt_gpu *g) {
    const size_t r = real->max_binding(g);
    return r < max_binding_limit ? r : max_binding_limit;
}
static size_t no_import(const kt_gpu *g) {
    (void)g;
    return seen_alignment = 0;
}
static size_t import_alignment(const kt_gpu *g) { return seen_alignment = real->import_alignment(g); }

int main(int argc, char **argv) {
    const char *api = argc > 1 ? argv[1] : "vulkan";
    int first = 2, copy = 0;
    for (; first < argc && !strncmp(argv[first], "--", 2); first++) {
        if (!strcmp(argv[first], "--max-binding") && first + 1 < argc) max_binding_limit = strtoull(argv[++first], NULL, 10);
        else if (!strcmp(argv[first], "--copy")) copy = 1;
        else {
            printf("FAIL unknown option %s\n0 passed, 1 failed\n", argv[first]);
            return 1;
        }
    }
    real = kt_gpu_host_named(api);
    static kt_gpu_host variant;
    if (real) {
        variant = *real;
        if (max_binding_limit) variant.max_binding = small_binding;
        variant.import_alignment = copy ? no_import : import_alignment;
    }
    const kt_backend *gpu = real ? kt_gpu_backend(&variant, getenv(real->device_env)) : NULL;
    if (!gpu) {
        printf("FAIL opening the %s device: %s\n0 passed, 1 failed\n", api, kt_errmsg());
        return 1;
    }
    int passed = 0, failed = 0;
    for (int i = first; i < argc; i++) check_model(argv[i], gpu) ? passed++ : failed++;
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
