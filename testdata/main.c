/* kintsugi-testdata - write a synthetic Nemotron-H checkpoint in the real
 * Hugging Face layout: config.json, sharded bf16 safetensors with an index,
 * a trained byte-level BPE tokenizer with the chat template, and the
 * generation config. Same options and seed, same bytes.
 */
#include "cli.h"
#include "error.h"
#include "output_path.h"
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
        "  --force                  replace OUT_DIR if it exists\n"
        "  -h, --help               this text\n",
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

int main(int argc, char **argv) {
    gen_options o;
    preset_tiny(&o);
    const char *out = NULL, *pattern = NULL;
    int moe = 0, force = 0, vocab = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--shape") && v) {
            if (!strcmp(v, "tiny")) preset_tiny(&o);
            else if (!strcmp(v, "nano-9b-v2")) preset_nano9b(&o);
            else bad = 1;
            i++;
        } else if (!strcmp(a, "--pattern") && v) { pattern = v; i++; }
        else if (!strcmp(a, "--moe")) moe = 1;
        else if (!strcmp(a, "--ssm-dtype") && v) {
            if (!strcmp(v, "f32")) o.ssm_f32 = 1;
            else if (!strcmp(v, "bf16")) o.ssm_f32 = 0;
            else bad = 1;
            i++;
        } else if (!strcmp(a, "--mtp")) o.mtp = 1;
        else if (!strcmp(a, "--shards") && v) { bad = kt_parse_int(v, 1, 99999, &o.shards); i++; }
        else if (!strcmp(a, "--dtype-key")) o.dtype_key = 1;
        else if (!strcmp(a, "--vocab") && v) { bad = kt_parse_int(v, 1256, 1 << 20, &vocab); i++; }
        else if (!strcmp(a, "--seed") && v) { o.seed = strtoull(v, NULL, 10); i++; }
        else if (!strcmp(a, "--force")) force = 1;
        else if (a[0] == '-' || out) {
            fprintf(stderr, "%s: unexpected argument %s (see --help)\n", PROG, a);
            return 2;
        } else out = a;
        if (bad) {
            fprintf(stderr, "%s: bad value for %s: %s\n", PROG, a, v);
            return 2;
        }
    }
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
    if (kt_output_dir_ok(out, NULL, 0, force)) {
        kt_print_error(PROG);
        return 2;
    }
    struct stat sb;
    /* Build in a temporary sibling and rename: never a half-written checkpoint. */
    strbuf tmp = {0};
    sb_printf(&tmp, "%s.tmp-XXXXXX", out);
    char *tmpdir = sb_take(&tmp);
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "%s: cannot create %s: %s\n", PROG, tmpdir, kt_errno_text(errno));
        return 2;
    }
    chmod(tmpdir, 0755);
    int rc = gen_write_config(tmpdir, &o);
    if (rc == 0) rc = gen_write_extras(tmpdir);
    if (rc == 0) rc = gen_write_tokenizer(tmpdir, &o);
    if (rc == 0) rc = gen_write_weights(tmpdir, &o);
    if (rc == 0 && stat(out, &sb) == 0) rc = kt_remove_tree(out) ? kt_fail_io("%s: cannot remove: %s", out, kt_errno_text(errno)) : 0;
    if (rc == 0 && rename(tmpdir, out) != 0) rc = kt_fail_io("%s: cannot rename into place: %s", out, kt_errno_text(errno));
    if (rc != 0) {
        kt_print_error(PROG);
        kt_remove_tree(tmpdir);
        free(tmpdir);
        return 1;
    }
    free(tmpdir);
    return 0;
}
