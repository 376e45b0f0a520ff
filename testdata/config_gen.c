/* config_gen.c - config.json, generation_config.json and the remote-code
 * stubs of a synthetic Nemotron-H checkpoint, with the key set of
 * NVIDIA-Nemotron-Nano-9B-v2 (shared docs, nemotron-h.md section 1). */
#include "atomic_file.h"
#include "error.h"
#include "model_dir.h"
#include "strbuf.h"
#include "testdata.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int gen_save_json(const char *dir, const char *name, const cJSON *root, int indent, int sort_keys) {
    kt_json_style st = {indent, ",", ": ", 1, sort_keys};
    char *text = kt_json_print(root, &st);
    strbuf sb = {0};
    sb_puts(&sb, text);
    sb_putc(&sb, '\n');
    char *path = kt_path_join(dir, name);
    int rc = kt_write_file_atomic(path, sb.data, sb.len);
    free(path);
    free(text);
    sb_free(&sb);
    return rc;
}

static void add_int(cJSON *o, const char *k, long long v) { cJSON_AddItemToObject(o, k, kt_json_new_int(v)); }
static void add_float(cJSON *o, const char *k, double v) { cJSON_AddItemToObject(o, k, kt_json_new_float(v)); }

int gen_write_config(const char *dir, const gen_options *o) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(c, "architectures"), cJSON_CreateString("NemotronHForCausalLM"));
    cJSON_AddBoolToObject(c, "attention_bias", 0);
    add_float(c, "attention_dropout", 0.0);
    cJSON *am = cJSON_AddObjectToObject(c, "auto_map");
    cJSON_AddStringToObject(am, "AutoConfig", "configuration_nemotron_h.NemotronHConfig");
    cJSON_AddStringToObject(am, "AutoModelForCausalLM", "modeling_nemotron_h.NemotronHForCausalLM");
    add_int(c, "bos_token_id", 1);
    add_int(c, "chunk_size", 128);
    add_int(c, "conv_kernel", o->conv_kernel);
    add_int(c, "eos_token_id", 12);
    add_int(c, "expand", 2);
    add_int(c, "head_dim", o->head_dim);
    add_float(c, "hidden_dropout", 0.0);
    add_int(c, "hidden_size", o->hidden);
    cJSON_AddStringToObject(c, "hybrid_override_pattern", o->pattern);
    add_float(c, "initializer_range", 0.02);
    add_int(c, "intermediate_size", o->intermediate);
    add_float(c, "layer_norm_epsilon", 1e-05);
    add_int(c, "mamba_head_dim", o->mamba_head_dim);
    cJSON_AddStringToObject(c, "mamba_hidden_act", "silu");
    add_int(c, "mamba_num_heads", o->mamba_heads);
    cJSON_AddBoolToObject(c, "mamba_proj_bias", 0);
    add_int(c, "max_position_embeddings", 131072);
    cJSON_AddBoolToObject(c, "mlp_bias", 0);
    cJSON_AddStringToObject(c, "mlp_hidden_act", "relu2");
    cJSON_AddStringToObject(c, "model_type", "nemotron_h");
    add_int(c, "n_groups", o->n_groups);
    add_int(c, "num_attention_heads", o->attn_heads);
    add_int(c, "num_hidden_layers", (long long)strlen(o->pattern));
    add_int(c, "num_key_value_heads", o->kv_heads);
    add_int(c, "num_logits_to_keep", 1);
    add_int(c, "pad_token_id", 0);
    cJSON_AddBoolToObject(c, "rescale_prenorm_residual", 1);
    cJSON_AddBoolToObject(c, "residual_in_fp32", 0);
    add_float(c, "rms_norm_eps", 1e-05);
    cJSON_AddNullToObject(c, "sliding_window");
    add_int(c, "ssm_state_size", o->ssm_state);
    cJSON_AddBoolToObject(c, "tie_word_embeddings", 0);
    add_float(c, "time_step_floor", 0.0001);
    cJSON *tsl = cJSON_AddArrayToObject(c, "time_step_limit");
    cJSON_AddItemToArray(tsl, kt_json_new_float(0.0));
    cJSON_AddItemToArray(tsl, kt_json_new_float(INFINITY));
    add_float(c, "time_step_max", 0.1);
    add_float(c, "time_step_min", 0.001);
    cJSON_AddStringToObject(c, o->dtype_key ? "dtype" : "torch_dtype", "bfloat16");
    cJSON_AddStringToObject(c, "transformers_version", "4.55.4");
    cJSON_AddBoolToObject(c, "use_bias", 0);
    cJSON_AddBoolToObject(c, "use_cache", 1);
    cJSON_AddBoolToObject(c, "use_conv_bias", 1);
    cJSON_AddBoolToObject(c, "use_mamba_kernels", 1);
    add_int(c, "vocab_size", o->vocab);
    if (o->experts) {
        add_int(c, "moe_intermediate_size", o->moe_intermediate);
        add_int(c, "moe_shared_expert_intermediate_size", o->shared_intermediate);
        add_int(c, "n_group", 1);
        add_int(c, "n_routed_experts", o->experts);
        add_int(c, "n_shared_experts", 1);
        cJSON_AddBoolToObject(c, "norm_topk_prob", 1);
        add_int(c, "num_experts_per_tok", o->experts_per_tok);
        add_float(c, "routed_scaling_factor", 2.5);
        add_int(c, "topk_group", 1);
    }
    if (o->mtp) add_int(c, "num_nextn_predict_layers", 1);
    int rc = gen_save_json(dir, "config.json", c, 2, 1);
    cJSON_Delete(c);
    return rc;
}

int gen_write_extras(const char *dir) {
    cJSON *g = cJSON_CreateObject();
    cJSON_AddBoolToObject(g, "_from_model_config", 1);
    add_int(g, "bos_token_id", 1);
    cJSON *eos = cJSON_AddArrayToObject(g, "eos_token_id");
    cJSON_AddItemToArray(eos, kt_json_new_int(2));
    cJSON_AddItemToArray(eos, kt_json_new_int(12));
    add_int(g, "pad_token_id", 0);
    cJSON_AddStringToObject(g, "transformers_version", "4.55.4");
    int rc = gen_save_json(dir, "generation_config.json", g, 2, 1);
    cJSON_Delete(g);
    static const char *const stubs[] = {"configuration_nemotron_h.py", "modeling_nemotron_h.py"};
    static const char stub[] = "# Synthetic checkpoint generated by kintsugi-testdata: no remote code.\n";
    for (int i = 0; i < 2 && rc == 0; i++) {
        char *path = kt_path_join(dir, stubs[i]);
        rc = kt_write_file_atomic(path, stub, sizeof stub - 1);
        free(path);
    }
    return rc;
}
