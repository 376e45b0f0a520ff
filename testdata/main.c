/* kintsugi-testdata - write a synthetic Nemotron-H checkpoint in the real
 * Hugging Face layout: config.json, sharded bf16 safetensors with an index,
 * a trained byte-level BPE tokenizer with the chat template, and the
 * generation config. Same options and seed, same bytes.
 */
#include "cli.h"
#include "error.h"
#include "file.h"
#include "json.h"
#include "output_dir.h"
#include "model_dir.h"
#include "strbuf.h"
#include "testdata.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *PROG = "kintsugi-testdata";

static void usage(FILE *out) {
    fprintf(out,
        "usage: %s [options] OUT_DIR\n"
        "\n"
        "Write a synthetic Nemotron-H checkpoint (Hugging Face layout, bf16) into OUT_DIR.\n"
        "\n"
        "  --shape tiny|nano-9b-v2  preset dimensions (default tiny: H=256, 6 layers, vocab 2048;\n"
        "                           nano-9b-v2: the full 8.9B-parameter shape, about 17.8 GB)\n"
        "  --pattern STR            hybrid_override_pattern of M (Mamba-2), * (attention),\n"
        "                           - (MLP), E (MoE); default M-M*M- (tiny)\n"
        "  --moe                    use a pattern with E layers (tiny: M-E*ME)\n"
        "  --ssm-dtype f32|bf16     dtype of A_log, D and dt_bias (default f32)\n"
        "  --mtp                    add mtp.* tensors (dropped by converters)\n"
        "  --shards N               number of safetensors files (default 2; 1 = model.safetensors)\n"
        "  --dtype-key              write transformers-5 \"dtype\" instead of \"torch_dtype\"\n"
        "  --vocab N                vocabulary size (default 2048 for tiny)\n"
        "  --seed N                 seed of the weights (default 0)\n"
        "  --corpus FILE            train the tokenizer's BPE merges on FILE (UTF-8 text)\n"
        "                           instead of the embedded corpus\n"
        "  --weights normal|heavy   linear weights near-Gaussian (default) or from Student's t\n"
        "                           with 4 degrees of freedom (heavy tails, same std. dev.)\n"
        "  --bpe-max-chars N        no token of more than N non-ASCII characters (default: no\n"
        "                           limit): a small repetitive corpus would otherwise merge\n"
        "                           whole Japanese sentences into single tokens\n"
        "  --force                  replace OUT_DIR if it is a model directory: only the files this\n"
        "                           tool writes; everything else there is kept\n"
        "  -q, --quiet              print nothing but errors (otherwise: what --force replaced and kept)\n"
        "  -h, --help               this text\n"
        "  --version                the version\n",
        PROG);
}

static void preset_tiny(gen_options *o) {
    *o = (gen_options){
        .pattern = "M-M*M-", .hidden = 256, .vocab = 2048,
        .mamba_heads = 8, .mamba_head_dim = 32, .ssm_state = 32, .n_groups = 2, .conv_kernel = 4,
        .attn_heads = 4, .kv_heads = 2, .head_dim = 64, .intermediate = 512,
        .experts = 0, .experts_per_tok = 2, .moe_intermediate = 256, .shared_intermediate = 256,
        .ssm_f32 = 1, .shards = 2,
    };
}

static void preset_nano9b(gen_options *o) {
    *o = (gen_options){
        .pattern = "M-M-M-MM-M-M-M*-M-M-M*-M-M-M-M*-M-M-M-M*-M-MM-M-M-M-M-M-",
        .hidden = 4480, .vocab = 131072,
        .mamba_heads = 128, .mamba_head_dim = 80, .ssm_state = 128, .n_groups = 8, .conv_kernel = 4,
        .attn_heads = 40, .kv_heads = 8, .head_dim = 128, .intermediate = 15680,
        .experts = 0, .experts_per_tok = 2, .moe_intermediate = 1856, .shared_intermediate = 3712,
        .ssm_f32 = 1, .shards = 4,
    };
}

enum { O_SHAPE = 1, O_PATTERN, O_MOE, O_SSM_DTYPE, O_MTP, O_SHARDS, O_DTYPE_KEY, O_VOCAB, O_SEED, O_CORPUS, O_BPE_MAX, O_FORCE, O_QUIET, O_WEIGHTS };
static const kt_opt OPTIONS[] = {
    {"--shape", 0, 1, O_SHAPE}, {"--pattern", 0, 1, O_PATTERN}, {"--moe", 0, 0, O_MOE},
    {"--ssm-dtype", 0, 1, O_SSM_DTYPE}, {"--mtp", 0, 0, O_MTP}, {"--shards", 0, 1, O_SHARDS},
    {"--dtype-key", 0, 0, O_DTYPE_KEY}, {"--vocab", 0, 1, O_VOCAB}, {"--seed", 0, 1, O_SEED},
    {"--corpus", 0, 1, O_CORPUS}, {"--bpe-max-chars", 0, 1, O_BPE_MAX},     {"--force", 0, 0, O_FORCE}, {"--quiet", 'q', 0, O_QUIET}, {"--weights", 0, 1, O_WEIGHTS}, {NULL, 0, 0, 0}};

/* The tokenizer's training text: UTF-8 without NUL bytes (the pre-tokenizer
 * regex runs on it as a C string). */
static char *read_corpus(const char *path) {
    size_t n;
    char *text = NULL;
    int rc = kt_read_file(path, &text, &n);
    if (rc == 0) kt_fail("%s: no such file", path);
    if (rc != 1) return NULL;
    if (n == 0 || memchr(text, 0, n) || kt_utf8_check((const unsigned char *)text, n) != n) {
        free(text);
        kt_fail("%s: not a UTF-8 text (empty, a NUL byte or an invalid sequence)", path);
        return NULL;
    }
    return text;
}

int main(int argc, char **argv) {
    kt_check_stdout_at_exit(PROG);
    static const char *const shapes[] = {"tiny", "nano-9b-v2", NULL}, *const ssm[] = {"f32", "bf16", NULL};
    gen_options o;
    preset_tiny(&o);
    const char *out = NULL, *pattern = NULL, *corpus_path = NULL;
    int moe = 0, force = 0, vocab = 0, k, id, rc = 0, quiet = 0;
    unsigned long long seed;
    kt_args a;
    kt_args_init(&a, PROG, argc, argv, OPTIONS);
    while (rc == 0 && (id = kt_args_next(&a)) != KT_ARG_END) {
        switch (id) {
        case KT_ARG_HELP: usage(stdout); return 0;
        case KT_ARG_VERSION: kt_print_version(PROG); return 0;
        case KT_ARG_ERROR: return KT_EXIT_USAGE;
        case O_SHAPE:
            if (!(rc = kt_arg_choice(&a, shapes, &k))) {
                if (k == 0) preset_tiny(&o);
                else preset_nano9b(&o);
            }
            break;
        case O_PATTERN: pattern = a.value; break;
        case O_MOE: moe = 1; break;
        case O_SSM_DTYPE:
            if (!(rc = kt_arg_choice(&a, ssm, &k))) o.ssm_f32 = k == 0;
            break;
        case O_MTP: o.mtp = 1; break;
        case O_SHARDS: rc = kt_arg_int(&a, 1, 99999, &o.shards); break;
        case O_DTYPE_KEY: o.dtype_key = 1; break;
        case O_VOCAB: rc = kt_arg_int(&a, 1256, 1 << 20, &vocab); break;
        case O_SEED:
            if (!(rc = kt_arg_u64(&a, &seed))) o.seed = seed;
            break;
        case O_CORPUS: corpus_path = a.value; break;
        case O_BPE_MAX: rc = kt_arg_int(&a, 1, 64, &o.bpe_max_chars); break;
        case O_WEIGHTS: {
            static const char *const kinds[] = {"normal", "heavy", NULL};
            if (!(rc = kt_arg_choice(&a, kinds, &k))) o.heavy_tails = k == 1;
            break;
        }
        case O_FORCE: force = 1; break;
        case O_QUIET: quiet = 1; break;
        case KT_ARG_POSITIONAL:
            if (out) rc = kt_usage_error(PROG, "unexpected argument '%s'", a.value);
            else out = a.value;
            break;
        }
    }
    if (rc) return rc;
    if (!out) { usage(stderr); return 2; }
    if (moe && !pattern) pattern = "M-E*ME";
    if (pattern) o.pattern = pattern;
    if (vocab) o.vocab = vocab;
    for (const char *p = o.pattern; *p; p++)
        if (!strchr("M*-E", *p)) {
            fprintf(stderr, "%s: pattern letter '%c' is not one of M * - E\n", PROG, *p);
            return 2;
        }
    if (strchr(o.pattern, 'E') && !o.experts) o.experts = 4;
    char *corpus = NULL;
    if (corpus_path && !(corpus = read_corpus(corpus_path))) {
        kt_print_error(PROG);
        return 1;
    }
    o.corpus = corpus;
    /* Built in a temporary sibling and renamed: never a half-written
     * checkpoint; with --force only what this tool writes is replaced. */
    kt_outdir od;
    if (kt_outdir_check(&od, PROG, out, NULL, 0, force) || kt_outdir_begin(&od)) {
        kt_print_error(PROG);
        kt_outdir_abort(&od);
        free(corpus);
        return 2;
    }
    rc = gen_write_config(od.tmp, &o);
    if (rc == 0) rc = gen_write_extras(od.tmp);
    if (rc == 0) rc = gen_write_tokenizer(od.tmp, &o);
    if (rc == 0) rc = gen_write_weights(od.tmp, &o);
    if (rc == 0) rc = kt_outdir_commit(&od);
    if (rc != 0) {
        if (od.tmp) kt_errmsg_replace(od.tmp, od.dst);
        kt_print_error(PROG);
        kt_outdir_abort(&od);
        free(corpus);
        return kt_errkind() == KT_ERR_IO ? 2 : 1;
    }
    if (!quiet) kt_outdir_summary(&od, NULL, stdout);
    kt_outdir_abort(&od);
    free(corpus);
    return 0;
}
