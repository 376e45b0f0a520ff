/* tokenizer_gen.c - a real byte-level BPE trained on the embedded corpus,
 * written in the Hugging Face tokenizer.json format, plus the tokenizer
 * config with the Nemotron chat template.
 *
 * Training (the classic algorithm, deterministic): split the corpus with the
 * pre-tokenizer regex, map each piece's bytes to the GPT-2 byte alphabet,
 * then repeatedly merge the most frequent adjacent pair of symbols (ties: the
 * pair whose concatenated string sorts first) until the vocabulary is full or
 * no pair occurs twice.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "error.h"
#include "model_dir.h"
#include "strbuf.h"
#include "strmap.h"
#include "testdata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const KT_PRETOKENIZER_REGEX =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|"
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

enum { N_SPECIAL = 1000, BYTE_BASE = 1000 };

/* GPT-2's reversible map from bytes to printable code points. */
static unsigned byte_to_codepoint(unsigned b) {
    if ((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff)) return b;
    unsigned n = 0;
    for (unsigned x = 0; x < b; x++)
        if (!((x >= '!' && x <= '~') || (x >= 0xa1 && x <= 0xac) || (x >= 0xae && x <= 0xff))) n++;
    return 256 + n;
}

static void put_utf8(strbuf *sb, unsigned cp) {
    char b[4];
    if (cp < 0x80) { b[0] = (char)cp; sb_append(sb, b, 1); }
    else if (cp < 0x800) {
        b[0] = (char)(0xc0 | (cp >> 6)); b[1] = (char)(0x80 | (cp & 0x3f));
        sb_append(sb, b, 2);
    } else {
        b[0] = (char)(0xe0 | (cp >> 12)); b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f));
        sb_append(sb, b, 3);
    }
}

typedef struct {
    char **tok;       /* token strings (byte-level alphabet), by id */
    int n_tok;
    int (*merges)[2]; /* merged pair, by merge rank */
    int n_merges;
} bpe_vocab;

typedef struct {
    int *sym;
    int len;
    long count;
} bpe_word;

/* Split the corpus into pieces and count each distinct piece. */
static int collect_words(const char *text, bpe_word **out, int *n_out) {
    int err;
    PCRE2_SIZE erroff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)KT_PRETOKENIZER_REGEX, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &err, &erroff, NULL);
    if (!re) return kt_fail("pre-tokenizer regex does not compile (offset %zu)", (size_t)erroff);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    size_t len = strlen(text), pos = 0;
    strmap seen;
    strmap_init(&seen, 1024);
    bpe_word *words = NULL;
    char **keys = NULL;
    int n = 0;
    uint32_t opts = 0;
    while (pos < len) {
        int rc = pcre2_match(re, (PCRE2_SPTR)text, len, pos, opts, md, NULL);
        opts = PCRE2_NO_UTF_CHECK; /* validated once: avoids re-checking the whole text */
        if (rc < 0) break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t s = ov[0], e = ov[1];
        if (e == s) { pos++; continue; }
        size_t idx;
        if (strmap_get(&seen, text + s, e - s, &idx)) {
            words[idx].count++;
        } else {
            words = kt_xrealloc(words, (size_t)(n + 1) * sizeof *words);
            keys = kt_xrealloc(keys, (size_t)(n + 1) * sizeof *keys);
            keys[n] = kt_xmalloc(e - s + 1);
            memcpy(keys[n], text + s, e - s);
            keys[n][e - s] = '\0';
            bpe_word *w = &words[n];
            w->len = (int)(e - s);
            w->sym = kt_xmalloc((size_t)w->len * sizeof *w->sym);
            for (int k = 0; k < w->len; k++) w->sym[k] = BYTE_BASE + (unsigned char)text[s + k];
            w->count = 1;
            strmap_put(&seen, keys[n], e - s, (size_t)n, NULL);
            n++;
        }
        pos = e;
    }
    strmap_free(&seen);
    for (int i = 0; i < n; i++) free(keys[i]);
    free(keys);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    *out = words;
    *n_out = n;
    return 0;
}

/* Characters of a token in the byte-level alphabet that are not ASCII text:
 * every byte >= 0x80 of the original is one symbol here, so count the lead
 * bytes of UTF-8 sequences (0xC0..0xFF), which map to U+00C0..U+00FF. */
static int non_ascii_chars(const char *tok) {
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)tok; *p;) {
        unsigned cp = *p < 0x80 ? *p++ : 0;
        if (!cp) { /* decode one code point of the alphabet (UTF-8, at most 3 bytes here) */
            if ((*p & 0xE0) == 0xC0) cp = (unsigned)(p[0] & 0x1F) << 6 | (p[1] & 0x3F), p += 2;
            else cp = (unsigned)(p[0] & 0x0F) << 12 | (unsigned)(p[1] & 0x3F) << 6 | (p[2] & 0x3F), p += 3;
        }
        n += cp >= 0xC0 && cp <= 0xFF; /* the lead byte of a non-ASCII character */
    }
    return n;
}

static void train(bpe_vocab *v, const char *text, int vocab_size, int max_chars) {
    bpe_word *words = NULL;
    int n_words = 0;
    if (collect_words(text, &words, &n_words)) return;
    v->tok = kt_xcalloc((size_t)vocab_size, sizeof *v->tok);
    for (int i = 0; i < N_SPECIAL; i++) {
        char name[32];
        if (i == 0) strcpy(name, "<unk>");
        else if (i == 1) strcpy(name, "<s>");
        else if (i == 2) strcpy(name, "</s>");
        else snprintf(name, sizeof name, "<SPECIAL_%d>", i);
        v->tok[i] = kt_xstrdup(name);
    }
    for (unsigned b = 0; b < 256; b++) {
        strbuf sb = {0};
        put_utf8(&sb, byte_to_codepoint(b));
        v->tok[BYTE_BASE + b] = sb_take(&sb);
    }
    v->n_tok = BYTE_BASE + 256;
    v->merges = kt_xcalloc((size_t)vocab_size, sizeof *v->merges);
    /* pair counts in an open-addressing table keyed by (a << 32 | b) */
    size_t cap = 1 << 16;
    uint64_t *keys = kt_xmalloc(cap * sizeof *keys);
    long *counts = kt_xmalloc(cap * sizeof *counts);
    while (v->n_tok < vocab_size) {
        long best = 1;
        int ba = -1, bb = -1;
        memset(keys, 0xff, cap * sizeof *keys);
        memset(counts, 0, cap * sizeof *counts);
        for (int i = 0; i < n_words; i++) {
            for (int k = 0; k + 1 < words[i].len; k++) {
                uint64_t key = (uint64_t)words[i].sym[k] << 32 | (uint32_t)words[i].sym[k + 1];
                size_t h = (size_t)(key * 0x9e3779b97f4a7c15ull >> 40) & (cap - 1);
                while (keys[h] != UINT64_MAX && keys[h] != key) h = (h + 1) & (cap - 1);
                keys[h] = key;
                counts[h] += words[i].count;
            }
        }
        for (size_t h = 0; h < cap; h++) {
            if (keys[h] == UINT64_MAX || counts[h] < best) continue;
            int a = (int)(keys[h] >> 32), b = (int)(keys[h] & 0xffffffffu);
            if (max_chars && non_ascii_chars(v->tok[a]) + non_ascii_chars(v->tok[b]) > max_chars) continue;
            if (counts[h] == best && ba >= 0) {
                int cmp = strcmp(v->tok[a], v->tok[ba]);
                if (cmp > 0 || (cmp == 0 && strcmp(v->tok[b], v->tok[bb]) >= 0)) continue;
            }
            best = counts[h]; ba = a; bb = b;
        }
        if (ba < 0 || best < 2) break;
        strbuf sb = {0};
        sb_puts(&sb, v->tok[ba]);
        sb_puts(&sb, v->tok[bb]);
        int id = v->n_tok++;
        v->tok[id] = sb_take(&sb);
        v->merges[v->n_merges][0] = ba;
        v->merges[v->n_merges][1] = bb;
        v->n_merges++;
        for (int i = 0; i < n_words; i++) {
            bpe_word *w = &words[i];
            int o = 0;
            for (int k = 0; k < w->len; k++) {
                if (k + 1 < w->len && w->sym[k] == ba && w->sym[k + 1] == bb) { w->sym[o++] = id; k++; }
                else w->sym[o++] = w->sym[k];
            }
            w->len = o;
        }
    }
    free(keys);
    free(counts);
    for (int i = 0; i < n_words; i++) free(words[i].sym);
    free(words);
}

static cJSON *added_token(int id, const char *content) {
    cJSON *t = cJSON_CreateObject();
    cJSON_AddItemToObject(t, "id", kt_json_new_int(id));
    cJSON_AddStringToObject(t, "content", content);
    cJSON_AddBoolToObject(t, "single_word", 0);
    cJSON_AddBoolToObject(t, "lstrip", 0);
    cJSON_AddBoolToObject(t, "rstrip", 0);
    cJSON_AddBoolToObject(t, "normalized", 0);
    cJSON_AddBoolToObject(t, "special", 1);
    return t;
}

static cJSON *bos_template(int pair) {
    cJSON *a = cJSON_CreateArray();
    for (int k = 0; k < (pair ? 2 : 1); k++) {
        cJSON *sp = cJSON_CreateObject(), *inner = cJSON_AddObjectToObject(sp, "SpecialToken");
        cJSON_AddStringToObject(inner, "id", "<s>");
        cJSON_AddItemToObject(inner, "type_id", kt_json_new_int(k));
        cJSON_AddItemToArray(a, sp);
        cJSON *seq = cJSON_CreateObject(), *si = cJSON_AddObjectToObject(seq, "Sequence");
        cJSON_AddStringToObject(si, "id", k ? "B" : "A");
        cJSON_AddItemToObject(si, "type_id", kt_json_new_int(k));
        cJSON_AddItemToArray(a, seq);
    }
    return a;
}

static cJSON *tokenizer_json(const bpe_vocab *v) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (int i = 0; i < N_SPECIAL; i++) cJSON_AddItemToArray(added, added_token(i, v->tok[i]));
    cJSON_AddNullToObject(root, "normalizer");
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "Sequence");
    cJSON *list = cJSON_AddArrayToObject(pre, "pretokenizers");
    cJSON *split = cJSON_CreateObject();
    cJSON_AddStringToObject(split, "type", "Split");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(split, "pattern"), "Regex", KT_PRETOKENIZER_REGEX);
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddBoolToObject(split, "invert", 0);
    cJSON_AddItemToArray(list, split);
    cJSON *bl = cJSON_CreateObject();
    cJSON_AddStringToObject(bl, "type", "ByteLevel");
    cJSON_AddBoolToObject(bl, "add_prefix_space", 0);
    cJSON_AddBoolToObject(bl, "trim_offsets", 1);
    cJSON_AddBoolToObject(bl, "use_regex", 0);
    cJSON_AddItemToArray(list, bl);
    cJSON *post = cJSON_AddObjectToObject(root, "post_processor");
    cJSON_AddStringToObject(post, "type", "TemplateProcessing");
    cJSON_AddItemToObject(post, "single", bos_template(0));
    cJSON_AddItemToObject(post, "pair", bos_template(1));
    cJSON *st = cJSON_AddObjectToObject(cJSON_AddObjectToObject(post, "special_tokens"), "<s>");
    cJSON_AddStringToObject(st, "id", "<s>");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(st, "ids"), kt_json_new_int(1));
    cJSON_AddItemToArray(cJSON_AddArrayToObject(st, "tokens"), cJSON_CreateString("<s>"));
    cJSON *dec = cJSON_AddObjectToObject(root, "decoder");
    cJSON_AddStringToObject(dec, "type", "ByteLevel");
    cJSON_AddBoolToObject(dec, "add_prefix_space", 1);
    cJSON_AddBoolToObject(dec, "trim_offsets", 1);
    cJSON_AddBoolToObject(dec, "use_regex", 1);
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddBoolToObject(model, "fuse_unk", 0);
    cJSON_AddBoolToObject(model, "byte_fallback", 0);
    cJSON_AddBoolToObject(model, "ignore_merges", 0);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (int i = 0; i < v->n_tok; i++) cJSON_AddItemToObject(vocab, v->tok[i], kt_json_new_int(i));
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    for (int i = 0; i < v->n_merges; i++) {
        cJSON *pair = cJSON_CreateArray();
        cJSON_AddItemToArray(pair, cJSON_CreateString(v->tok[v->merges[i][0]]));
        cJSON_AddItemToArray(pair, cJSON_CreateString(v->tok[v->merges[i][1]]));
        cJSON_AddItemToArray(merges, pair);
    }
    return root;
}

/* The chat format of the shared docs: System/User/Assistant turns opened by
 * <SPECIAL_10>/<SPECIAL_11>, closed by <SPECIAL_12>; /think and /no_think in
 * system or user text switch reasoning (the last one wins) and are removed;
 * earlier assistant turns keep only what follows </think>. */
static const char CHAT_TEMPLATE[] =
    "{%- set ns = namespace(think=true, system='') -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' or message['role'] == 'user' -%}"
    "{%- set i_no = message['content'].rfind('/no_think') -%}"
    "{%- set i_th = message['content'].rfind('/think') -%}"
    "{%- if i_no > i_th -%}{%- set ns.think = false -%}"
    "{%- elif i_th > i_no -%}{%- set ns.think = true -%}{%- endif -%}"
    "{%- endif -%}"
    "{%- if message['role'] == 'system' -%}"
    "{%- set ns.system = message['content'].replace('/no_think', '').replace('/think', '').strip() -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{{- '<SPECIAL_10>System\\n' + ns.system + '\\n' -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{- '<SPECIAL_11>User\\n' + message['content'].replace('/no_think', '').replace('/think', '').strip() + '\\n' -}}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- '<SPECIAL_11>Assistant\\n' + message['content'].split('</think>')[-1].strip() + '\\n<SPECIAL_12>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<SPECIAL_11>Assistant\\n' -}}"
    "{%- if ns.think -%}{{- '<think>\\n' -}}{%- else -%}{{- '<think></think>' -}}{%- endif -%}"
    "{%- endif -%}";

static cJSON *tokenizer_config(const bpe_vocab *v) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddBoolToObject(root, "add_bos_token", 1);
    cJSON_AddBoolToObject(root, "add_eos_token", 0);
    cJSON *dec = cJSON_AddObjectToObject(root, "added_tokens_decoder");
    for (int i = 0; i < N_SPECIAL; i++) {
        char key[16];
        snprintf(key, sizeof key, "%d", i);
        cJSON *t = added_token(i, v->tok[i]);
        cJSON_DeleteItemFromObjectCaseSensitive(t, "id");
        cJSON_AddItemToObject(dec, key, t);
    }
    cJSON_AddStringToObject(root, "bos_token", "<s>");
    cJSON_AddStringToObject(root, "chat_template", CHAT_TEMPLATE);
    cJSON_AddBoolToObject(root, "clean_up_tokenization_spaces", 0);
    cJSON_AddStringToObject(root, "eos_token", "<SPECIAL_12>");
    cJSON_AddItemToObject(root, "model_max_length", kt_json_new_int(131072));
    cJSON_AddStringToObject(root, "tokenizer_class", "PreTrainedTokenizerFast");
    cJSON_AddStringToObject(root, "unk_token", "<unk>");
    return root;
}

int gen_write_tokenizer(const char *dir, const gen_options *o) {
    bpe_vocab v = {0};
    train(&v, o->corpus ? o->corpus : kt_corpus, o->vocab, o->bpe_max_chars);
    if (!v.tok) return -1;
    /* The embedding has o->vocab rows; tokens past the trained ones stay unused. */
    cJSON *tj = tokenizer_json(&v);
    cJSON *tc = tokenizer_config(&v);
    cJSON *sm = cJSON_CreateObject();
    cJSON_AddStringToObject(sm, "bos_token", "<s>");
    cJSON_AddStringToObject(sm, "eos_token", "<SPECIAL_12>");
    cJSON_AddStringToObject(sm, "unk_token", "<unk>");
    int rc = gen_save_json(dir, "tokenizer.json", tj, 2, 0);
    if (rc == 0) rc = gen_save_json(dir, "tokenizer_config.json", tc, 2, 0);
    if (rc == 0) rc = gen_save_json(dir, "special_tokens_map.json", sm, 2, 0);
    cJSON_Delete(tj);
    cJSON_Delete(tc);
    cJSON_Delete(sm);
    for (int i = 0; i < v.n_tok; i++) free(v.tok[i]);
    free(v.tok);
    free(v.merges);
    return rc;
}
