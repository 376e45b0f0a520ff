/* card.c - README.md of the converted model: where it came from, how it was
 * quantized, which repairs were applied, and how to run it. */
#include "card.h"
#include "strbuf.h"

#include <stdio.h>
#include <string.h>

char *cv_card_text(const cv_card *c) {
    strbuf sb = {0};
    sb_printf(&sb, "---\nlibrary_name: mlx\npipeline_tag: text-generation\ntags:\n- mlx\n- kintsugi\n");
    if (c->base_model) sb_printf(&sb, "base_model: %s\n", c->base_model);
    sb_printf(&sb, "---\n\n# %s (MLX, %d-bit)\n\n", c->title, c->q.bits);
    sb_printf(&sb, "Converted from %s by kintsugi-convert %s.\n\n", c->base_model ? c->base_model : "a local checkpoint",
              c->tool_version);
    sb_printf(&sb, "| | |\n|---|---|\n");
    sb_printf(&sb, "| quantization | MLX affine, %d bits, group size %d |\n", c->q.bits, c->q.group_size);
    if (c->recipe) {
        sb_printf(&sb, "| recipe | %s; modules:", c->recipe);
        for (int b = 2; b <= 8; b++)
            if (c->modules_by_bits[b]) sb_printf(&sb, " %zu at %d bits", c->modules_by_bits[b], b);
        sb_printf(&sb, " (per-layer entries in config.json) |\n");
    }
    sb_printf(&sb, "| fit | %s |\n", c->fitted ? "mse: per group the scale and bias of least squared error, codes "
                                                 "the nearest for the stored pair (kintsugi-verify checks both)"
                                              : "rtn: MLX's round to nearest from the group's extremes");
    sb_printf(&sb, "| rounding | %s (%s) |\n", kt_quant_mode_name(c->q.mode),
              c->q.mode == KT_QUANT_METAL ? "the arithmetic of MLX's GPU kernel, as mlx_lm.convert on a Mac"
                                          : "the arithmetic of MLX's CPU backend");
    sb_printf(&sb, "| bits per weight | %.3f (quantized layers, scales and biases included) |\n", c->bits_per_weight);
    sb_printf(&sb, "| dtype of the rest | %s |\n", c->dtype ? c->dtype : "as in the source");
    sb_printf(&sb, "| tensors | %zu, in %zu file%s |\n\n", c->n_tensors, c->n_shards, c->n_shards == 1 ? "" : "s");
    sb_printf(&sb, "## Repairs applied\n\n");
    if (cv_repairs_count(c->repairs, 1) == 0) sb_printf(&sb, "None were needed.\n");
    for (int i = 0; i < c->repairs->n; i++)
        if (c->repairs->needed[i]) sb_printf(&sb, "- %s\n", c->repairs->text[i]);
    if (cv_repairs_count(c->repairs, 0)) {
        sb_printf(&sb, "\n## Written differently from mlx_lm.convert, on purpose\n\n");
        for (int i = 0; i < c->repairs->n; i++)
            if (!c->repairs->needed[i]) sb_printf(&sb, "- %s\n", c->repairs->text[i]);
    }
    sb_printf(&sb, "\nThe tokenizer files are the source's, byte for byte.\n\n");
    sb_printf(&sb, "## Use\n\nWith mlx-lm:\n\n```python\nfrom mlx_lm import load, generate\n\n"
                   "model, tokenizer = load(\"PATH\")\n"
                   "messages = [{\"role\": \"user\", \"content\": \"/no_think Hello\"}]\n"
                   "prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True)\n"
                   "print(generate(model, tokenizer, prompt=prompt, max_tokens=200))\n```\n\n");
    sb_printf(&sb, "With kintsugi:\n\n```sh\nkintsugi-verify PATH\nkintsugi-run PATH --prompt \"Hello\"\n```\n");
    return sb_take(&sb);
}

/* The card's own lines: its front matter's tags and the line naming the
 * tool. Cards of every earlier version have both. */
int cv_card_is_ours(const char *text, size_t len) {
    static const char tags[] = "---\nlibrary_name: mlx\npipeline_tag: text-generation\ntags:\n- mlx\n- kintsugi\n";
    static const char by[] = " by kintsugi-convert ";
    if (len < sizeof tags - 1 || memcmp(text, tags, sizeof tags - 1)) return 0;
    for (size_t i = 0; i + sizeof by - 1 <= len; i++)
        if (!memcmp(text + i, by, sizeof by - 1)) return 1;
    return 0;
}
