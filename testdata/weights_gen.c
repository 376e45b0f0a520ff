/* weights_gen.c - the tensors of a synthetic Nemotron-H checkpoint, in the
 * Hugging Face layout and parameter order, with values from a counter-based
 * generator: element i of a tensor depends only on (seed, tensor name, i), so
 * the bytes are the same whatever the thread count or chunking.
 *
 * Scales follow a trained model's: linear weights and embeddings ~N(0, 0.02)
 * (or, with heavy tails, Student's t with 4 degrees of freedom at the same
 * standard deviation: trained weights have outliers a Gaussian lacks, and
 * they are what a group's extremes, hence quantization, depend on),
 * norm weights ~1, A_log = log(U[1, 16]), D ~1, dt_bias = softplus^-1 of a dt
 * log-uniform in [0.001, 0.1], conv1d ~U(-0.5, 0.5).
 */
#include "error.h"
#include "model_dir.h"
#include "safetensors.h"
#include "strbuf.h"
#include "testdata.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef enum { INIT_NORMAL, INIT_ONES, INIT_UNIFORM, INIT_A_LOG, INIT_DT_BIAS, INIT_ZERO_ISH } init_kind;

typedef struct {
    char *name;
    kt_dtype dtype;
    int ndim;
    uint64_t shape[3];
    init_kind init;
    float scale;
} gen_tensor;

typedef struct {
    gen_tensor *t;
    size_t n;
} gen_list;

static void add(gen_list *l, kt_dtype dt, init_kind init, float scale, int ndim, uint64_t d0, uint64_t d1,
                uint64_t d2, const char *fmt, ...) KT_PRINTF(9, 10);

static void add(gen_list *l, kt_dtype dt, init_kind init, float scale, int ndim, uint64_t d0, uint64_t d1,
                uint64_t d2, const char *fmt, ...) {
    l->t = kt_xrealloc(l->t, (l->n + 1) * sizeof *l->t);
    gen_tensor *t = &l->t[l->n++];
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    t->name = kt_xstrdup(name);
    t->dtype = dt;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->shape[2] = d2;
    t->init = init;
    t->scale = scale;
}

#define LINEAR(l, out, in, ...) add(l, KT_BF16, INIT_NORMAL, 0.02f, 2, out, in, 0, __VA_ARGS__)
#define VECTOR(l, dt, init, sc, n, ...) add(l, dt, init, sc, 1, n, 0, 0, __VA_ARGS__)

static gen_list tensor_list(const gen_options *o) {
    gen_list l = {0};
    uint64_t H = (uint64_t)o->hidden, V = (uint64_t)o->vocab;
    uint64_t nh = (uint64_t)o->mamba_heads, P = (uint64_t)o->mamba_head_dim;
    uint64_t N = (uint64_t)o->ssm_state, G = (uint64_t)o->n_groups, K = (uint64_t)o->conv_kernel;
    uint64_t d_inner = nh * P, conv_dim = d_inner + 2 * G * N;
    uint64_t in_proj = 2 * d_inner + 2 * G * N + nh;
    kt_dtype ssm = o->ssm_f32 ? KT_F32 : KT_BF16;
    LINEAR(&l, V, H, "backbone.embeddings.weight");
    for (size_t i = 0; o->pattern[i]; i++) {
        const char *p = "backbone.layers";
        VECTOR(&l, KT_BF16, INIT_ONES, 0.05f, H, "%s.%zu.norm.weight", p, i);
        switch (o->pattern[i]) {
        case 'M':
            LINEAR(&l, in_proj, H, "%s.%zu.mixer.in_proj.weight", p, i);
            add(&l, KT_BF16, INIT_UNIFORM, 0.5f, 3, conv_dim, 1, K, "%s.%zu.mixer.conv1d.weight", p, i);
            VECTOR(&l, KT_BF16, INIT_NORMAL, 0.02f, conv_dim, "%s.%zu.mixer.conv1d.bias", p, i);
            VECTOR(&l, ssm, INIT_DT_BIAS, 0, nh, "%s.%zu.mixer.dt_bias", p, i);
            VECTOR(&l, ssm, INIT_A_LOG, 0, nh, "%s.%zu.mixer.A_log", p, i);
            VECTOR(&l, ssm, INIT_ONES, 0.1f, nh, "%s.%zu.mixer.D", p, i);
            VECTOR(&l, KT_BF16, INIT_ONES, 0.05f, d_inner, "%s.%zu.mixer.norm.weight", p, i);
            LINEAR(&l, H, d_inner, "%s.%zu.mixer.out_proj.weight", p, i);
            break;
        case '*':
            LINEAR(&l, (uint64_t)o->attn_heads * (uint64_t)o->head_dim, H, "%s.%zu.mixer.q_proj.weight", p, i);
            LINEAR(&l, (uint64_t)o->kv_heads * (uint64_t)o->head_dim, H, "%s.%zu.mixer.k_proj.weight", p, i);
            LINEAR(&l, (uint64_t)o->kv_heads * (uint64_t)o->head_dim, H, "%s.%zu.mixer.v_proj.weight", p, i);
            LINEAR(&l, H, (uint64_t)o->attn_heads * (uint64_t)o->head_dim, "%s.%zu.mixer.o_proj.weight", p, i);
            break;
        case '-':
            LINEAR(&l, (uint64_t)o->intermediate, H, "%s.%zu.mixer.up_proj.weight", p, i);
            LINEAR(&l, H, (uint64_t)o->intermediate, "%s.%zu.mixer.down_proj.weight", p, i);
            break;
        case 'E':
            LINEAR(&l, (uint64_t)o->experts, H, "%s.%zu.mixer.gate.weight", p, i);
            VECTOR(&l, KT_F32, INIT_ZERO_ISH, 0.01f, (uint64_t)o->experts,
                   "%s.%zu.mixer.gate.e_score_correction_bias", p, i);
            for (int e = 0; e < o->experts; e++) {
                LINEAR(&l, (uint64_t)o->moe_intermediate, H, "%s.%zu.mixer.experts.%d.up_proj.weight", p, i, e);
                LINEAR(&l, H, (uint64_t)o->moe_intermediate, "%s.%zu.mixer.experts.%d.down_proj.weight", p, i, e);
            }
            LINEAR(&l, (uint64_t)o->shared_intermediate, H, "%s.%zu.mixer.shared_experts.up_proj.weight", p, i);
            LINEAR(&l, H, (uint64_t)o->shared_intermediate, "%s.%zu.mixer.shared_experts.down_proj.weight", p, i);
            break;
        }
    }
    VECTOR(&l, KT_BF16, INIT_ONES, 0.05f, H, "backbone.norm_f.weight");
    LINEAR(&l, V, H, "lm_head.weight");
    if (o->mtp) {
        VECTOR(&l, KT_BF16, INIT_ONES, 0.05f, H, "mtp.layers.0.enorm.weight");
        VECTOR(&l, KT_BF16, INIT_ONES, 0.05f, H, "mtp.layers.0.hnorm.weight");
        LINEAR(&l, H, 2 * H, "mtp.layers.0.eh_proj.weight");
    }
    return l;
}

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Uniform in [0, 1) from 24 bits. */
static float unit(uint64_t r, int which) { return (float)((r >> (which * 24)) & 0xffffff) / 16777216.0f; }

/* Student's t with 4 degrees of freedom from a uniform P in (0, 1), by its
 * closed-form quantile (Shaw 2006: with a = 4p(1-p),
 * t = sign(p - 1/2) * 2 sqrt(cos(acos(sqrt a) / 3) / sqrt a - 1)), divided by
 * sqrt(2) for unit variance. */
static float student_t4(double p) {
    const double a = 4 * p * (1 - p), sa = sqrt(a);
    const double t = 2 * sqrt(cos(acos(sa) / 3) / sa - 1);
    return (float)((p < 0.5 ? -t : t) / sqrt(2.0));
}

static float value(const gen_tensor *t, uint64_t key, uint64_t i, int heavy) {
    uint64_t r = splitmix64(key + i);
    switch (t->init) {
    case INIT_NORMAL: {
        if (heavy) return student_t4(((double)(r >> 11) + 0.5) / 9007199254740992.0) * t->scale;
        /* Irwin-Hall of four 16-bit uniforms, scaled to unit variance. */
        float s = 0;
        for (int k = 0; k < 4; k++) s += (float)((r >> (16 * k)) & 0xffff) / 65536.0f;
        return (s - 2.0f) * 1.7320508f * t->scale;
    }
    case INIT_ONES: return 1.0f + (unit(r, 0) - 0.5f) * 2.0f * t->scale;
    case INIT_UNIFORM: return (unit(r, 0) - 0.5f) * 2.0f * t->scale;
    case INIT_A_LOG: return logf(1.0f + 15.0f * unit(r, 0));
    case INIT_DT_BIAS: {
        float dt = expf(logf(0.001f) + unit(r, 0) * (logf(0.1f) - logf(0.001f)));
        return dt + logf(-expm1f(-dt)); /* inverse of softplus */
    }
    case INIT_ZERO_ISH: return (unit(r, 0) - 0.5f) * 2.0f * t->scale;
    }
    return 0;
}

/* Stream one tensor's bytes into W, a chunk at a time. */
static int write_tensor(st_writer *w, const gen_tensor *t, uint64_t seed, int heavy) {
    uint64_t nelem = 1, nbytes;
    for (int d = 0; d < t->ndim; d++) nelem *= t->shape[d];
    uint64_t key = seed ^ kt_hash_bytes(t->name, strlen(t->name));
    enum { CHUNK = 1 << 20 };
    float *f = kt_xmalloc(CHUNK * sizeof *f);
    uint8_t *bytes = kt_xmalloc(CHUNK * 4);
    int rc = 0;
    for (uint64_t start = 0; start < nelem && rc == 0; start += CHUNK) {
        int64_t n = (int64_t)(nelem - start < CHUNK ? nelem - start : CHUNK);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) f[i] = value(t, key, start + (uint64_t)i, heavy && t->ndim >= 2);
        kt_row_from_f32(t->dtype, f, bytes, (size_t)n);
        nbytes = (uint64_t)n * kt_dtype_bits(t->dtype) / 8;
        rc = st_writer_write(w, bytes, (size_t)nbytes);
    }
    free(f);
    free(bytes);
    return rc;
}

static uint64_t tensor_bytes(const gen_tensor *t) {
    uint64_t n = kt_dtype_bits(t->dtype) / 8;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

/* Write tensors [first, last) into FILE_NAME. */
static int write_shard(const char *dir, const char *file_name, const gen_list *l, size_t first, size_t last,
                       uint64_t seed, int heavy) {
    size_t n = last - first;
    st_spec *specs = kt_xcalloc(n ? n : 1, sizeof *specs);
    for (size_t i = 0; i < n; i++) {
        const gen_tensor *t = &l->t[first + i];
        specs[i] = (st_spec){t->name, t->dtype, t->ndim, t->shape};
    }
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "format", "pt");
    char *path = kt_path_join(dir, file_name);
    st_writer *w = st_writer_create(path, specs, n, meta);
    int rc = w ? 0 : -1;
    for (size_t i = first; i < last && rc == 0; i++) rc = write_tensor(w, &l->t[i], seed, heavy);
    if (w) rc = rc ? (st_writer_abort(w), -1) : st_writer_finish(w);
    free(path);
    free(specs);
    cJSON_Delete(meta);
    return rc;
}

int gen_write_weights(const char *dir, const gen_options *o) {
    gen_list l = tensor_list(o);
    uint64_t total = 0;
    for (size_t i = 0; i < l.n; i++) total += tensor_bytes(&l.t[i]);
    int shards = o->shards < 1 ? 1 : o->shards;
    if ((size_t)shards > l.n) shards = (int)l.n;
    int rc = 0;
    if (shards == 1) {
        rc = write_shard(dir, "model.safetensors", &l, 0, l.n, o->seed, o->heavy_tails);
    } else {
        /* Split into SHARDS runs of about equal bytes, in parameter order. */
        cJSON *index = cJSON_CreateObject();
        cJSON_AddItemToObject(cJSON_AddObjectToObject(index, "metadata"), "total_size",
                              kt_json_new_int((long long)total));
        cJSON *map = cJSON_AddObjectToObject(index, "weight_map");
        size_t first = 0;
        uint64_t acc = 0;
        for (int s = 0; s < shards && rc == 0; s++) {
            size_t last = first;
            uint64_t goal = total * (uint64_t)(s + 1) / (uint64_t)shards;
            while (last < l.n && (last == first || acc + tensor_bytes(&l.t[last]) <= goal ||
                                  s == shards - 1)) {
                if ((size_t)(shards - s - 1) >= l.n - last && last > first) break;
                acc += tensor_bytes(&l.t[last]);
                last++;
            }
            char name[64];
            snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, shards);
            rc = write_shard(dir, name, &l, first, last, o->seed, o->heavy_tails);
            for (size_t i = first; i < last; i++) cJSON_AddStringToObject(map, l.t[i].name, name);
            first = last;
        }
        /* transformers writes the index with indent 2 and sorted keys */
        if (rc == 0) rc = gen_save_json(dir, "model.safetensors.index.json", index, 2, 1);
        cJSON_Delete(index);
    }
    for (size_t i = 0; i < l.n; i++) free(l.t[i].name);
    free(l.t);
    return rc;
}
