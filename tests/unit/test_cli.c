/* test_cli.c - the shared option parser, the path rules that keep inputs
 * safe, and the config validator (lib/cli.c, lib/output_path.c,
 * lib/nemotron_config.c). */
#include "cli.h"
#include "error.h"
#include "harness.h"
#include "json.h"
#include "nemotron_config.h"
#include "output_path.h"
#include "tests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* The usage lines the readers print are not the test's output: fd 2 goes to
 * /dev/null around the calls (the CHECK messages go to stderr after). */
static int mute(void) {
    fflush(stderr);
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    dup2(null, 2);
    close(null);
    return saved;
}

static void unmute(int saved) {
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
}

enum { A_COUNT = 1, A_FLAG };
static const kt_opt OPTS[] = {{"--count", 0, 1, A_COUNT}, {"--flag", 'f', 0, A_FLAG}, {NULL, 0, 0, 0}};

/* The ids kt_args_next returns for ARGV (NULL-ended), with each value. */
static int parse(const char *const *words, int *ids, const char **values, int max) {
    char *argv[16];
    int argc = 1;
    argv[0] = "prog";
    for (const char *const *w = words; *w; w++) argv[argc++] = (char *)*w;
    kt_args a;
    kt_args_init(&a, "prog", argc, argv, OPTS);
    int n = 0, id;
    int saved = mute();
    while (n < max && (id = kt_args_next(&a)) != KT_ARG_END) {
        ids[n] = id;
        values[n++] = a.value;
        if (id == KT_ARG_ERROR) break;
    }
    unmute(saved);
    return n;
}

void test_cli_grammar(void) {
    int ids[8];
    const char *v[8];
    const char *w1[] = {"--count", "3", "--count=4", "-f", "pos", "-", NULL};
    CHECK(parse(w1, ids, v, 8) == 5);
    CHECK(ids[0] == A_COUNT && !strcmp(v[0], "3") && ids[1] == A_COUNT && !strcmp(v[1], "4"));
    CHECK(ids[2] == A_FLAG && ids[3] == KT_ARG_POSITIONAL && !strcmp(v[3], "pos"));
    CHECK(ids[4] == KT_ARG_POSITIONAL && !strcmp(v[4], "-"));
    const char *w2[] = {"--", "--count", "-f", NULL};
    CHECK(parse(w2, ids, v, 8) == 2 && ids[0] == KT_ARG_POSITIONAL && !strcmp(v[0], "--count") &&
          ids[1] == KT_ARG_POSITIONAL);
    const char *w3[] = {"--flag=1", NULL}, *w4[] = {"--count", NULL}, *w5[] = {"--counter", "2", NULL},
               *w6[] = {"--cou", NULL}, *w7[] = {"-x", NULL}, *w8[] = {"--version", NULL}, *w9[] = {"-h", NULL};
    CHECK(parse(w3, ids, v, 8) == 1 && ids[0] == KT_ARG_ERROR);
    CHECK(parse(w4, ids, v, 8) == 1 && ids[0] == KT_ARG_ERROR);
    CHECK(parse(w5, ids, v, 8) == 1 && ids[0] == KT_ARG_ERROR); /* no prefix matching */
    CHECK(parse(w6, ids, v, 8) == 1 && ids[0] == KT_ARG_ERROR);
    CHECK(parse(w7, ids, v, 8) == 1 && ids[0] == KT_ARG_ERROR);
    CHECK(parse(w8, ids, v, 8) == 1 && ids[0] == KT_ARG_VERSION);
    CHECK(parse(w9, ids, v, 8) == 1 && ids[0] == KT_ARG_HELP);
    const char *w10[] = {"--count=", NULL}; /* an empty value is a value */
    CHECK(parse(w10, ids, v, 8) == 1 && ids[0] == A_COUNT && !strcmp(v[0], ""));
}

void test_cli_value_readers(void) {
    kt_args a = {.prog = "prog", .name = "--n"};
    int n;
    double d;
    int saved = mute();
    int rc_ok = 0, bad_ok = 1;
    a.value = "12";
    rc_ok = kt_arg_int(&a, 0, 100, &n) == 0 && n == 12;
    const char *bad_ints[] = {"", "-1", "101", "1e2", "0x10", "12 ", " 12", "99999999999999999999", NULL};
    const char *first_bad = NULL;
    for (int i = 0; bad_ints[i]; i++) {
        a.value = bad_ints[i];
        if (kt_arg_int(&a, 0, 100, &n) != 2 && !first_bad) first_bad = bad_ints[i];
    }
    const char *bad_doubles[] = {"nan", "inf", "-inf", "", "0", "1.5", "x", NULL};
    for (int i = 0; bad_doubles[i]; i++) {
        a.value = bad_doubles[i];
        if (kt_arg_double(&a, 0, 1, 1, 0, &d) != 2 && !first_bad) first_bad = bad_doubles[i];
    }
    a.value = "1";
    int one = kt_arg_double(&a, 0, 1, 1, 0, &d) == 0 && d == 1;
    a.value = "-0";
    unsigned long long u;
    int neg = kt_arg_u64(&a, &u) == 2;
    static const char *const choices[] = {"a", "b", NULL};
    a.value = "b";
    int choice = kt_arg_choice(&a, choices, &n) == 0 && n == 1;
    a.value = "c";
    int no_choice = kt_arg_choice(&a, choices, &n) == 2;
    unmute(saved);
    (void)bad_ok;
    CHECK(rc_ok && one && neg && choice && no_choice);
    CHECK_MSG(first_bad == NULL, "'%s' was accepted", first_bad);
}

/* A scratch directory tree: ROOT/src (a model directory), ROOT/link -> src. */
static char *scratch(void) {
    char tmpl[] = "/tmp/kt-unit-XXXXXX";
    char *root = mkdtemp(tmpl) ? strdup(tmpl) : NULL;
    char path[512];
    snprintf(path, sizeof path, "%s/src", root);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/src/config.json", root);
    fclose(fopen(path, "w"));
    snprintf(path, sizeof path, "%s/src/model.safetensors", root);
    fclose(fopen(path, "w"));
    char target[512];
    snprintf(target, sizeof target, "%s/src", root);
    snprintf(path, sizeof path, "%s/link", root);
    if (symlink(target, path) != 0) perror("symlink");
    snprintf(path, sizeof path, "%s/other", root);
    mkdir(path, 0755);
    return root;
}

void test_output_path_rules(void) {
    char *root = scratch();
    char src[512], p[512];
    snprintf(src, sizeof src, "%s/src", root);
    const char *in[] = {src};
    /* resolution: links, dots, missing tails */
    snprintf(p, sizeof p, "%s/link/../src/./x/../y", root);
    char *r = kt_resolve_path(p), *real_src = realpath(src, NULL);
    char want[600];
    snprintf(want, sizeof want, "%s/y", real_src);
    CHECK_MSG(r && !strcmp(r, want), "%s", r ? r : "(null)");
    free(r);
    /* refused whatever --force says */
    const char *refused[] = {"src", "link", "src/out", "src/a/b", ".", "..", "link/../src", "other/../src", NULL};
    for (int i = 0; refused[i]; i++)
        for (int force = 0; force < 2; force++) {
            snprintf(p, sizeof p, "%s/%s", root, refused[i]);
            CHECK_MSG(kt_output_dir_ok(p, in, 1, force) != 0, "%s force=%d", refused[i], force);
        }
    /* allowed: a new sibling; an existing non-model directory only refused */
    snprintf(p, sizeof p, "%s/new/out", root);
    CHECK(kt_output_dir_ok(p, in, 1, 0) == 0);
    snprintf(p, sizeof p, "%s/other", root);
    CHECK(kt_output_dir_ok(p, in, 1, 1) != 0 && strstr(kt_errmsg(), "not a model directory"));
    /* a file output: never the input, never inside an input directory */
    snprintf(p, sizeof p, "%s/src/config.json", root);
    const char *files[] = {p};
    CHECK(kt_output_file_ok(p, files, 1, 1, NULL) != 0);
    CHECK(kt_output_file_ok(p, in, 1, 1, NULL) != 0);
    snprintf(p, sizeof p, "%s/report.json", root);
    CHECK(kt_output_file_ok(p, in, 1, 0, NULL) == 0);
    /* mkdir -p of a parent */
    snprintf(p, sizeof p, "%s/d1/d2/d3/out", root);
    CHECK(kt_make_parents(p) == 0);
    snprintf(p, sizeof p, "%s/d1/d2/d3", root);
    struct stat st;
    CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode));
    snprintf(p, sizeof p, "%s/d1/d2/d3/out", root);
    CHECK(stat(p, &st) != 0);
    CHECK(kt_remove_tree(root) == 0 && stat(root, &st) != 0);
    free(real_src);
    free(root);
}

static const char *BASE_CONFIG =
    "{\"model_type\": \"nemotron_h\", \"hybrid_override_pattern\": \"M*-\", \"hidden_size\": 64, "
    "\"vocab_size\": 4, \"intermediate_size\": 64, \"max_position_embeddings\": 4096, "
    "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"head_dim\": 32, \"mamba_num_heads\": 2, "
    "\"mamba_head_dim\": 32, \"ssm_state_size\": 4, \"conv_kernel\": 4, \"n_groups\": 1, "
    "\"attention_bias\": false, \"mamba_proj_bias\": false, \"mlp_bias\": false, \"use_bias\": false, "
    "\"use_conv_bias\": true, \"layer_norm_epsilon\": 1e-05, \"time_step_limit\": [0.0, Infinity]}";

/* BASE_CONFIG with KEY set to the JSON VALUE (NULL: removed); 0 valid. */
static int config_with(const char *key, const char *value) {
    cJSON *cfg = kt_json_parse(BASE_CONFIG, strlen(BASE_CONFIG), 0, "base");
    if (key) {
        cJSON_DeleteItemFromObjectCaseSensitive(cfg, key);
        if (value) cJSON_AddItemToObject(cfg, key, kt_json_parse(value, strlen(value), 0, "value"));
    }
    kt_config c;
    int rc = kt_config_read(&c, cfg);
    if (rc == 0) kt_config_free(&c);
    cJSON_Delete(cfg);
    return rc;
}

void test_config_validator(void) {
    CHECK(config_with(NULL, NULL) == 0);
    struct { const char *key, *value; int ok; } cases[] = {
        {"hidden_size", "\"64\"", 0}, {"hidden_size", "-64", 0}, {"hidden_size", "64.0", 0},
        {"hidden_size", "1e12", 0}, {"hidden_size", "null", 0}, {"hidden_size", NULL, 0},
        {"num_attention_heads", "0", 0}, {"num_key_value_heads", "3", 0}, {"n_groups", "3", 0},
        {"conv_kernel", "33554436", 0}, {"mamba_head_dim", "536870944", 0}, {"head_dim", "536870928", 0},
        {"head_dim", NULL, 1}, {"head_dim", "null", 0}, {"layer_norm_epsilon", "-1", 0},
        {"layer_norm_epsilon", "0", 0}, {"layer_norm_epsilon", "NaN", 0},
        {"layer_norm_epsilon", "1e-85", 0}, /* 0 in float32: found by fuzz_config */ {"time_step_limit", NULL, 1},
        {"time_step_limit", "null", 0} /* mlx-lm 0.32 refuses null */, {"time_step_limit", "[1.0, 0.0]", 0},
        {"time_step_limit", "[0.0, {\"__float__\": \"Infinity\"}]", 1}, {"hybrid_override_pattern", "\"XXX\"", 0},
        {"hybrid_override_pattern", "[\"M\", \"*\", \"-\"]", 1}, {"hybrid_override_pattern", "\"\"", 0},
        {"model_type", "\"llama\"", 0}, {"attention_bias", "true", 0}, {"use_conv_bias", "false", 0},
        {"mlp_bias", NULL, 0}, {"max_position_embeddings", "0", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = config_with(cases[i].key, cases[i].value);
        CHECK_MSG((rc == 0) == cases[i].ok, "%s = %s: %s", cases[i].key, cases[i].value ? cases[i].value : "(removed)",
                  rc ? kt_errmsg() : "accepted");
        /* a refusal names the key (the pattern: hybrid_override_pattern) */
        if (rc && cases[i].key && strcmp(cases[i].key, "time_step_limit"))
            CHECK_MSG(strstr(kt_errmsg(), cases[i].key) || strstr(kt_errmsg(), "head"), "%s", kt_errmsg());
    }
}

void test_config_quantization_entries(void) {
    struct { const char *q; int ok, quantized; } cases[] = {
        {"", 1, 0}, {"\"quantization\": {\"bits\": 4, \"group_size\": 64}", 1, 1},
        {"\"quantization\": {\"bits\": \"4\", \"group_size\": 64}", 0, 0},
        {"\"quantization\": {\"bits\": 4}", 0, 0}, {"\"quantization\": {\"bits\": 7, \"group_size\": 64}", 0, 0},
        {"\"quantization\": {\"bits\": 4, \"group_size\": 1000000000000}", 0, 0},
        {"\"quantization\": {\"bits\": 4, \"group_size\": 64, \"mode\": \"mxfp4\"}", 0, 0},
        {"\"quantization\": {\"bits\": 4, \"group_size\": 64, \"mode\": \"affine\"}", 1, 1},
        {"\"quantization\": {\"bits\": 4, \"group_size\": 64, \"lm_head\": {\"bits\": 8, \"group_size\": 32}}", 1, 1},
        {"\"quantization\": {\"bits\": 4, \"group_size\": 64, \"lm_head\": \"x\"}", 0, 0},
        {"\"quantization_config\": {\"bits\": 4, \"group_size\": 64}", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char text[512];
        snprintf(text, sizeof text, "{%s}", cases[i].q);
        cJSON *cfg = kt_json_parse(text, strlen(text), 0, "cfg");
        int quantized = -1;
        int rc = kt_config_check_quantization(cfg, &quantized);
        CHECK_MSG((rc == 0) == cases[i].ok && (!cases[i].ok || quantized == cases[i].quantized), "%s: %s",
                  cases[i].q, rc ? kt_errmsg() : "accepted");
        if (rc == 0 && strstr(cases[i].q, "lm_head")) {
            kt_quant_entry e = kt_config_quant_of(cfg, "lm_head"), d = kt_config_quant_of(cfg, "backbone.x");
            CHECK(e.quantized && e.bits == 8 && e.group_size == 32 && d.bits == 4 && d.group_size == 64);
        }
        cJSON_Delete(cfg);
    }
}

void test_errno_wording_and_context(void) {
    CHECK(!strcmp(kt_errno_text(2), "no such file or directory"));
    kt_fail("vi/model.safetensors: bad");
    kt_fail_context("%s", "vi");
    CHECK(!strcmp(kt_errmsg(), "vi/model.safetensors: bad"));
    kt_fail_context("%s", "v");
    CHECK(!strcmp(kt_errmsg(), "v: vi/model.safetensors: bad"));
    kt_fail("DST.kintsugi-tmp-7/model.safetensors: write failed");
    kt_errmsg_replace("DST.kintsugi-tmp-7", "DST");
    CHECK(!strcmp(kt_errmsg(), "DST/model.safetensors: write failed"));
}
