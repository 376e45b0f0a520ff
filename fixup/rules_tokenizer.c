/* rules_tokenizer.c - tokenizer_config.json rules.
 *
 *   tokenizer-class          "TokenizersBackend" (transformers 5 regenerated the file;
 *                            older transformers, LM Studio and mlx-swift cannot load it)
 *                            or no tokenizer_class: the original's file byte for byte
 *                            with --original, else "PreTrainedTokenizerFast"; with the
 *                            original, any difference from its file (the seed's fix is
 *                            that file byte for byte)
 *   tokenizer-chat-template  no chat template at all (neither in tokenizer_config.json
 *                            nor chat_template.jinja): restored from --original
 */
#include "repair.h"
#include "backup.h"
#include "error.h"
#include "file.h"

#include <stdlib.h>
#include <string.h>

static int read_in(const char *dir, const char *name, char **text, size_t *len) {
    char *p = kt_path_join(dir, name);
    int rc = kt_read_file(p, text, len);
    free(p);
    return rc;
}

static int has_template(const char *dir, const cJSON *tok_config) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(tok_config, "chat_template");
    if (t && !cJSON_IsNull(t)) return 1;
    char *jinja = kt_path_join(dir, "chat_template.jinja");
    int yes = kt_is_file(jinja);
    free(jinja);
    return yes;
}

int fx_rules_tokenizer(fx_session *s) {
    char *text = NULL, *orig_text = NULL;
    size_t len = 0, orig_len = 0;
    int found = read_in(s->dir, "tokenizer_config.json", &text, &len);
    if (found < 0) return -1;
    if (found == 0) {
        fx_find(s, "tokenizer-class", "tokenizer_config.json", 0, "tokenizer_config.json is missing%s",
                s->original ? "" : " (give --original to restore it)");
        if (s->original && read_in(s->original, "tokenizer_config.json", &orig_text, &orig_len) == 1) {
            s->findings[s->n_findings - 1].fixable = 1;
            fx_op *op = fx_add_op(s, FX_WRITE, "tokenizer_config.json");
            op->new_text = orig_text;
            op->new_len = orig_len;
        }
        return 0;
    }
    cJSON *tc = kt_json_parse(text, len, KT_JSON_DUP_LAST_WINS, "tokenizer_config.json");
    if (!tc) {
        free(text);
        return kt_fail_context("%s", s->dir);
    }
    int have_orig = s->original && read_in(s->original, "tokenizer_config.json", &orig_text, &orig_len) == 1;
    cJSON *cls = cJSON_GetObjectItemCaseSensitive(tc, "tokenizer_class");
    int bad_class = !cJSON_IsString(cls) || !strcmp(cls->valuestring, "TokenizersBackend");
    char *new_text = NULL;
    size_t new_len = 0;
    if (bad_class && have_orig) {
        fx_find(s, "tokenizer-class", "tokenizer_config.json", 1, "tokenizer_class is %s%s%s; the original "
                "tokenizer_config.json restored byte for byte", cJSON_IsString(cls) ? "\"" : "",
                cJSON_IsString(cls) ? cls->valuestring : "missing", cJSON_IsString(cls) ? "\"" : "");
        new_text = orig_text, new_len = orig_len, orig_text = NULL;
    } else if (have_orig && (len != orig_len || memcmp(text, orig_text, len))) {
        /* the seed's fix is the original file byte for byte: a file an earlier
         * run without the original patched (or transformers rewrote) is not it */
        fx_find(s, "tokenizer-class", "tokenizer_config.json", 1, "tokenizer_config.json differs from the "
                "original's (%zu bytes against %zu); the original tokenizer_config.json restored byte for byte",
                len, orig_len);
        new_text = orig_text, new_len = orig_len, orig_text = NULL;
    } else if (bad_class) {
        cJSON *v = cJSON_CreateString("PreTrainedTokenizerFast");
        if (cls) cJSON_ReplaceItemInObjectCaseSensitive(tc, "tokenizer_class", v);
        else cJSON_AddItemToObject(tc, "tokenizer_class", v);
        fx_find(s, "tokenizer-class", "tokenizer_config.json", 1, "tokenizer_class set to "
                "\"PreTrainedTokenizerFast\" (warning: without --original the rest of the file is kept as "
                "transformers 5 wrote it)");
        s->warnings++;
        new_text = kt_json_print(tc, &KT_JSON_PYTHON_INDENT4);
        new_len = strlen(new_text);
    }
    /* the chat template: in the file we end up with, or beside it */
    cJSON *final = new_text ? kt_json_parse(new_text, new_len, KT_JSON_DUP_LAST_WINS, "tokenizer_config.json") : NULL;
    if (!has_template(s->dir, final ? final : tc)) {
        char *jinja = NULL;
        size_t jlen = 0;
        if (s->original && read_in(s->original, "chat_template.jinja", &jinja, &jlen) == 1) {
            fx_find(s, "tokenizer-chat-template", "chat_template.jinja", 1, "no chat template; "
                    "chat_template.jinja restored from the original");
            fx_op *op = fx_add_op(s, FX_WRITE, "chat_template.jinja");
            op->new_text = jinja, op->new_len = jlen;
        } else {
            free(jinja);
            cJSON *o = NULL;
            char *ot = NULL;
            size_t ol = 0;
            if (s->original && read_in(s->original, "tokenizer_config.json", &ot, &ol) == 1)
                o = kt_json_parse(ot, ol, KT_JSON_DUP_LAST_WINS, "tokenizer_config.json");
            const cJSON *t = o ? cJSON_GetObjectItemCaseSensitive(o, "chat_template") : NULL;
            if (t && !cJSON_IsNull(t)) {
                cJSON *target = final ? final : tc;
                cJSON_AddItemToObject(target, "chat_template", cJSON_Duplicate(t, 1));
                free(new_text);
                new_text = kt_json_print(target, &KT_JSON_PYTHON_INDENT4);
                new_len = strlen(new_text);
                fx_find(s, "tokenizer-chat-template", "tokenizer_config.json", 1, "no chat template; restored "
                        "from the original tokenizer_config.json");
            } else {
                fx_find(s, "tokenizer-chat-template", "tokenizer_config.json", 0, "no chat template%s",
                        s->original ? " here or in the original" : " (give --original to restore it)");
            }
            cJSON_Delete(o);
            free(ot);
        }
    }
    if (new_text) {
        fx_op *op = fx_add_op(s, FX_WRITE, "tokenizer_config.json");
        op->old_text = text, op->old_len = len;
        op->new_text = new_text, op->new_len = new_len;
        text = NULL;
    }
    cJSON_Delete(final);
    cJSON_Delete(tc);
    free(text);
    free(orig_text);
    return 0;
}
