/* tokenizer.c - see tokenizer.h. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer.h"
#include "error.h"
#include "json.h"
#include "model_dir.h"
#include "strbuf.h"
#include "strmap.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *text;     /* the token as spelled in the vocabulary (byte alphabet), or an added token's content */
    size_t len;
    char *bytes;    /* what it decodes to */
    size_t bytes_len;
    int special;
} token;

typedef struct {
    int32_t id;
    const char *text;
    size_t len;
} added;

struct kt_tokenizer {
    token *tokens;          /* by id */
    size_t n_tokens;
    strmap vocab;           /* spelled text -> id */
    strmap merges;          /* "left\0right" -> rank */
    char **merge_keys;
    size_t n_merges;
    added *added;           /* by length, longest first */
    size_t n_added;
    unsigned char starts_added[256]; /* 1: some added token begins with this byte */
    pcre2_code *split;      /* the pre-tokenizer's regex */
    int32_t bos;
    char byte_to_text[256][3]; /* GPT-2 byte alphabet: each byte's UTF-8 spelling */
    unsigned char byte_to_len[256];
    strmap text_to_byte;       /* spelling -> byte (decoding) */
    char **byte_keys;
};

/* The GPT-2 byte alphabet: printable bytes stand for themselves, the others
 * (controls, space, 127-160, 173) for code points 256, 257, ... in order. */
static void build_byte_alphabet(kt_tokenizer *t) {
    int next = 256;
    t->byte_keys = kt_xcalloc(256, sizeof *t->byte_keys);
    strmap_init(&t->text_to_byte, 512);
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        int cp = printable ? b : next++;
        char *s = t->byte_to_text[b];
        if (cp < 0x80) {
            s[0] = (char)cp;
            t->byte_to_len[b] = 1;
        } else {
            s[0] = (char)(0xC0 | (cp >> 6));
            s[1] = (char)(0x80 | (cp & 0x3F));
            t->byte_to_len[b] = 2;
        }
        t->byte_keys[b] = kt_xmalloc(3);
        memcpy(t->byte_keys[b], s, t->byte_to_len[b]);
        strmap_put(&t->text_to_byte, t->byte_keys[b], t->byte_to_len[b], (size_t)b, NULL);
    }
}

/* Spelled token text -> bytes (for decoding). Unknown characters are kept. */
static void spelled_to_bytes(const kt_tokenizer *t, const char *s, size_t n, strbuf *out) {
    size_t i = 0;
    while (i < n) {
        size_t l = ((unsigned char)s[i] < 0x80) ? 1 : ((unsigned char)s[i] < 0xE0) ? 2 : ((unsigned char)s[i] < 0xF0) ? 3 : 4;
        if (i + l > n) l = n - i;
        size_t b;
        if (strmap_get(&t->text_to_byte, s + i, l, &b)) sb_putc(out, (char)b);
        else sb_append(out, s + i, l);
        i += l;
    }
}

static int cmp_added(const void *a, const void *b) {
    const added *x = a, *y = b;
    return x->len > y->len ? -1 : x->len < y->len;
}

static int load_merges(kt_tokenizer *t, const cJSON *merges) {
    size_t n = (size_t)cJSON_GetArraySize(merges), r = 0;
    t->merge_keys = kt_xcalloc(n + 1, sizeof *t->merge_keys);
    strmap_init(&t->merges, n);
    for (const cJSON *m = merges->child; m; m = m->next, r++) {
        const char *a, *b;
        size_t la, lb;
        if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) && cJSON_IsString(m->child->next)) {
            a = m->child->valuestring, b = m->child->next->valuestring;
            la = strlen(a), lb = strlen(b);
        } else if (cJSON_IsString(m) && strchr(m->valuestring, ' ')) { /* the older "a b" form */
            a = m->valuestring;
            la = (size_t)(strchr(a, ' ') - a);
            b = a + la + 1;
            lb = strlen(b);
        } else {
            return kt_fail("merge %zu is neither [\"a\", \"b\"] nor \"a b\"", r);
        }
        char *key = kt_xmalloc(la + lb + 1);
        memcpy(key, a, la);
        key[la] = 0;
        memcpy(key + la + 1, b, lb);
        t->merge_keys[t->n_merges++] = key;
        strmap_put(&t->merges, key, la + lb + 1, r, NULL); /* first occurrence wins */
    }
    return 0;
}

static int load_pre_tokenizer(kt_tokenizer *t, const cJSON *pre) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
    const cJSON *split = NULL;
    for (const cJSON *p = list ? list->child : pre; p; p = list ? p->next : NULL) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type");
        if (cJSON_IsString(type) && !strcmp(type->valuestring, "Split")) split = p;
        else if (cJSON_IsString(type) && !strcmp(type->valuestring, "ByteLevel")) {
            const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(p, "add_prefix_space");
            const cJSON *use_regex = cJSON_GetObjectItemCaseSensitive(p, "use_regex");
            if (cJSON_IsTrue(prefix) || cJSON_IsTrue(use_regex))
                return kt_fail("pre_tokenizer: ByteLevel with add_prefix_space or use_regex is not supported");
        } else {
            return kt_fail("pre_tokenizer: %s is not supported (Split and ByteLevel are)",
                           cJSON_IsString(type) ? type->valuestring : "an entry without a type");
        }
        if (!list) break;
    }
    if (!split) return kt_fail("pre_tokenizer: no Split regex");
    const cJSON *pattern = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(split, "pattern"), "Regex");
    const cJSON *behavior = cJSON_GetObjectItemCaseSensitive(split, "behavior");
    if (!cJSON_IsString(pattern)) return kt_fail("pre_tokenizer: the Split has no Regex pattern");
    if (!cJSON_IsString(behavior) || strcmp(behavior->valuestring, "Isolated") ||
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(split, "invert")))
        return kt_fail("pre_tokenizer: only the Isolated, non-inverted Split is supported");
    int err;
    PCRE2_SIZE off;
    t->split = pcre2_compile((PCRE2_SPTR)pattern->valuestring, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
    if (!t->split) return kt_fail("pre_tokenizer: the regex does not compile (error %d at %zu)", err, (size_t)off);
#ifndef KT_NO_JIT /* fuzz builds: compiling the JIT code would dominate each run */
    pcre2_jit_compile(t->split, PCRE2_JIT_COMPLETE); /* a speed-up only; without JIT it still works */
#endif
    return 0;
}

static int load_added_and_bos(kt_tokenizer *t, const cJSON *root) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    t->added = kt_xcalloc((size_t)cJSON_GetArraySize(list) + 1, sizeof *t->added);
    unsigned char *seen = kt_xcalloc(t->n_tokens + 1, 1);
    int rc = 0;
    for (const cJSON *a = list ? list->child : NULL; a && rc == 0; a = a->next) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id"), *content = cJSON_GetObjectItemCaseSensitive(a, "content");
        int64_t v;
        if (!cJSON_IsString(content) || kt_json_i64(id, &v) || v < 0 || (uint64_t)v >= t->n_tokens) {
            rc = kt_fail("added_tokens: an entry without a valid id and content");
            break;
        }
        /* an id listed twice would leave the first entry pointing at freed text */
        if (seen[v]++) {
            rc = kt_fail("added_tokens: id %lld appears twice", (long long)v);
            break;
        }
        token *tk = &t->tokens[v];
        if (!tk->text) {
            tk->text = kt_xstrdup(content->valuestring);
            tk->len = strlen(tk->text);
        }
        free(tk->bytes);
        tk->bytes = kt_xstrdup(content->valuestring);
        tk->bytes_len = strlen(tk->bytes);
        tk->special = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "special"));
        t->added[t->n_added++] = (added){(int32_t)v, tk->bytes, tk->bytes_len};
        if (tk->bytes_len) t->starts_added[(unsigned char)tk->bytes[0]] = 1;
    }
    free(seen);
    if (rc) return rc;
    qsort(t->added, t->n_added, sizeof *t->added, cmp_added);
    t->bos = -1;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "post_processor"), "single");
    for (const cJSON *s = single ? single->child : NULL; s; s = s->next) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(s, "SpecialToken");
        const cJSON *id = sp ? cJSON_GetObjectItemCaseSensitive(sp, "id") : NULL;
        if (cJSON_IsString(id)) {
            t->bos = kt_tokenizer_id(t, id->valuestring);
            break;
        }
    }
    return 0;
}

static int load(kt_tokenizer *t, const cJSON *root) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE"))
        return kt_fail("model: only BPE is supported (found %s)", cJSON_IsString(type) ? type->valuestring : "none");
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (norm && !cJSON_IsNull(norm)) return kt_fail("normalizer: not supported (Nemotron-H has none)");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) return kt_fail("model: no vocab object or merges list");
    build_byte_alphabet(t);
    /* ids may have gaps; added tokens may extend past the vocabulary */
    int64_t max_id = -1, v;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        if (kt_json_i64(e, &v) || v < 0 || v > 100000000) return kt_fail("vocab: \"%s\" has no valid id", e->string);
        if (v > max_id) max_id = v;
    }
    const cJSON *al = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    for (const cJSON *a = al ? al->child : NULL; a; a = a->next)
        if (kt_json_i64(cJSON_GetObjectItemCaseSensitive(a, "id"), &v) == 0 && v > max_id && v <= 100000000) max_id = v;
    /* The token table is indexed by id: a few large ids in a small file
     * would allocate gigabytes (found by fuzz_tokenizer). Real vocabularies
     * are dense; allow gaps, but keep memory proportional to the file. */
    const int64_t entries = cJSON_GetArraySize(vocab) + (al ? cJSON_GetArraySize(al) : 0);
    if (max_id >= 2 * entries + 1024)
        return kt_fail("vocab: id %lld is far beyond the %lld entries (ids must be nearly dense)", (long long)max_id,
                       (long long)entries);
    t->n_tokens = (size_t)(max_id + 1);
    t->tokens = kt_xcalloc(t->n_tokens + 1, sizeof *t->tokens);
    strmap_init(&t->vocab, t->n_tokens);
    for (const cJSON *e = vocab->child; e; e = e->next) {
        kt_json_i64(e, &v);
        token *tk = &t->tokens[v];
        if (tk->text) return kt_fail("vocab: id %lld is used twice", (long long)v);
        tk->text = kt_xstrdup(e->string);
        tk->len = strlen(tk->text);
        strbuf sb = {0};
        spelled_to_bytes(t, tk->text, tk->len, &sb);
        tk->bytes_len = sb.len;
        tk->bytes = sb_take(&sb);
        strmap_put(&t->vocab, tk->text, tk->len, (size_t)v, NULL);
    }
    if (load_merges(t, merges)) return -1;
    if (load_pre_tokenizer(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"))) return -1;
    return load_added_and_bos(t, root);
}

static kt_tokenizer *from_tree(cJSON *root, const char *label) {
    if (!root) return NULL;
    kt_tokenizer *t = kt_xcalloc(1, sizeof *t);
    if (load(t, root)) {
        kt_fail_context("%s", label);
        kt_tokenizer_free(t);
        t = NULL;
    }
    cJSON_Delete(root);
    return t;
}

kt_tokenizer *kt_tokenizer_load(const char *path) {
    return from_tree(kt_json_load_file(path, KT_JSON_DUP_LAST_WINS), path);
}

kt_tokenizer *kt_tokenizer_load_dir(const char *dir, int vocab) {
    char *path = kt_path_join(dir, "tokenizer_config.json");
    if (kt_is_file(path)) {
        cJSON *tc = kt_json_load_file(path, KT_JSON_DUP_LAST_WINS);
        int ok = cJSON_IsObject(tc);
        if (tc && !ok) kt_fail("%s: not a JSON object (transformers and mlx_lm.load refuse it); copy it from the "
                               "original checkpoint", path);
        cJSON_Delete(tc);
        if (!ok) {
            free(path);
            return NULL;
        }
    }
    free(path);
    path = kt_path_join(dir, "tokenizer.json");
    if (!kt_is_file(path)) {
        kt_fail("%s: no such file (mlx-lm cannot load the tokenizer; copy it from the original checkpoint)", path);
        free(path);
        return NULL;
    }
    kt_tokenizer *t = kt_tokenizer_load(path);
    free(path);
    if (t && vocab > 0 && kt_tokenizer_check_vocab(t, dir, vocab)) {
        kt_tokenizer_free(t);
        t = NULL;
    }
    return t;
}

int kt_tokenizer_check_vocab(const kt_tokenizer *t, const char *dir, int vocab) {
    if (kt_tokenizer_vocab_size(t) <= (size_t)vocab) return 0;
    return kt_fail("%s/tokenizer.json has %zu tokens, more than vocab_size %d (ids past the embedding have no row in "
                   "the model)", dir, kt_tokenizer_vocab_size(t), vocab);
}

kt_tokenizer *kt_tokenizer_parse(const char *text, size_t len, const char *label) {
    return from_tree(kt_json_parse(text, len, KT_JSON_DUP_LAST_WINS, label), label);
}

void kt_tokenizer_free(kt_tokenizer *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n_tokens; i++) {
        free(t->tokens[i].text);
        free(t->tokens[i].bytes);
    }
    free(t->tokens);
    if (t->vocab.cap) strmap_free(&t->vocab);
    if (t->merges.cap) strmap_free(&t->merges);
    if (t->text_to_byte.cap) strmap_free(&t->text_to_byte);
    for (size_t i = 0; i < t->n_merges; i++) free(t->merge_keys[i]);
    free(t->merge_keys);
    for (int b = 0; t->byte_keys && b < 256; b++) free(t->byte_keys[b]);
    free(t->byte_keys);
    free(t->added);
    if (t->split) pcre2_code_free(t->split);
    free(t);
}

int32_t kt_tokenizer_id(const kt_tokenizer *t, const char *s) {
    size_t id;
    if (strmap_get(&t->vocab, s, strlen(s), &id)) return (int32_t)id;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == strlen(s) && !memcmp(t->added[i].text, s, t->added[i].len)) return t->added[i].id;
    return -1;
}

size_t kt_tokenizer_vocab_size(const kt_tokenizer *t) { return t->n_tokens; }
int32_t kt_tokenizer_bos(const kt_tokenizer *t) { return t->bos; }
int kt_tokenizer_is_special(const kt_tokenizer *t, int32_t id) {
    return id >= 0 && (size_t)id < t->n_tokens && t->tokens[id].special;
}

const char *kt_tokenizer_token_bytes(const kt_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || (size_t)id >= t->n_tokens || !t->tokens[id].bytes) return NULL;
    *len = t->tokens[id].bytes_len;
    return t->tokens[id].bytes;
}

/* ---- encoding ---- */
typedef struct {
    int32_t *v;
    size_t n, cap;
} id_list;

static void push(id_list *l, int32_t id) {
    if (l->n == l->cap) l->v = kt_xrealloc(l->v, (l->cap = l->cap ? 2 * l->cap : 64) * sizeof *l->v);
    l->v[l->n++] = id;
}

static size_t utf8_len(unsigned char c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

/* BPE over one piece already spelled in the byte alphabet. */
static int bpe(const kt_tokenizer *t, const char *w, size_t n, id_list *out) {
    size_t cap = n + 1, count = 0;
    size_t *start = kt_xmalloc(cap * sizeof *start), *len = kt_xmalloc(cap * sizeof *len);
    for (size_t i = 0; i < n; i += utf8_len((unsigned char)w[i])) {
        start[count] = i;
        len[count++] = utf8_len((unsigned char)w[i]);
    }
    char *key = kt_xmalloc(n + 2);
    for (;;) {
        size_t best = SIZE_MAX, at = 0;
        for (size_t i = 0; i + 1 < count; i++) {
            memcpy(key, w + start[i], len[i]);
            key[len[i]] = 0;
            memcpy(key + len[i] + 1, w + start[i + 1], len[i + 1]);
            size_t rank;
            if (strmap_get(&t->merges, key, len[i] + len[i + 1] + 1, &rank) && rank < best) best = rank, at = i;
        }
        if (best == SIZE_MAX) break;
        len[at] += len[at + 1];
        memmove(start + at + 1, start + at + 2, (count - at - 2) * sizeof *start);
        memmove(len + at + 1, len + at + 2, (count - at - 2) * sizeof *len);
        count--;
    }
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        size_t id;
        if (strmap_get(&t->vocab, w + start[i], len[i], &id)) push(out, (int32_t)id);
        else rc = kt_fail("token \"%.*s\" is not in the vocabulary", (int)len[i], w + start[i]);
    }
    free(key);
    free(start);
    free(len);
    return rc;
}

static int encode_piece(const kt_tokenizer *t, const char *s, size_t n, id_list *out, strbuf *spell) {
    spell->len = 0;
    for (size_t i = 0; i < n; i++) sb_append(spell, t->byte_to_text[(unsigned char)s[i]], t->byte_to_len[(unsigned char)s[i]]);
    return bpe(t, sb_cstr(spell), spell->len, out);
}

/* Split a segment with the regex: matches and the gaps between them. */
static int encode_segment(const kt_tokenizer *t, const char *s, size_t n, id_list *out) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(t->split, NULL);
    strbuf spell = {0};
    size_t pos = 0, gap = 0;
    int rc = 0;
    while (pos < n && rc == 0) {
        int r = pcre2_match(t->split, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md, NULL);
        if (r < 0) break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[0] > gap) rc = encode_piece(t, s + gap, ov[0] - gap, out, &spell);
        if (rc == 0 && ov[1] > ov[0]) rc = encode_piece(t, s + ov[0], ov[1] - ov[0], out, &spell);
        gap = ov[1];
        pos = ov[1] > ov[0] ? ov[1] : ov[0] + utf8_len((unsigned char)s[ov[0]]);
    }
    if (rc == 0 && gap < n) rc = encode_piece(t, s + gap, n - gap, out, &spell);
    sb_free(&spell);
    pcre2_match_data_free(md);
    return rc;
}

long kt_tokenizer_encode(const kt_tokenizer *t, const char *text, size_t len, int add_bos, int32_t **ids) {
    size_t bad = kt_utf8_check((const unsigned char *)text, len);
    if (bad != len) return kt_fail("the text is not valid UTF-8 (byte %zu)", bad);
    id_list out = {0};
    if (add_bos && t->bos >= 0) push(&out, t->bos);
    size_t seg = 0, i = 0;
    int rc = 0;
    while (i < len && rc == 0) {
        const added *hit = NULL;
        for (size_t a = 0; a < t->n_added && !hit && t->starts_added[(unsigned char)text[i]]; a++) /* longest first */
            if (t->added[a].len && t->added[a].len <= len - i && !memcmp(text + i, t->added[a].text, t->added[a].len))
                hit = &t->added[a];
        if (!hit) {
            i++;
            continue;
        }
        if (i > seg) rc = encode_segment(t, text + seg, i - seg, &out);
        push(&out, hit->id);
        i += hit->len;
        seg = i;
    }
    if (rc == 0 && seg < len) rc = encode_segment(t, text + seg, len - seg, &out);
    if (rc) {
        free(out.v);
        return -1;
    }
    *ids = out.v ? out.v : kt_xmalloc(sizeof **ids);
    return (long)out.n;
}

char *kt_tokenizer_decode(const kt_tokenizer *t, const int32_t *ids, size_t n, size_t *len) {
    strbuf sb = {0};
    for (size_t i = 0; i < n; i++) {
        size_t l;
        const char *b = kt_tokenizer_token_bytes(t, ids[i], &l);
        if (b) sb_append(&sb, b, l);
    }
    *len = sb.len;
    sb_cstr(&sb);
    return sb_take(&sb);
}

size_t kt_utf8_incomplete_tail(const char *s, size_t n) {
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = (unsigned char)s[n - back];
        if ((c & 0xC0) == 0x80) continue;         /* a continuation byte: look further back */
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > back ? back : 0;
    }
    return 0;
}

char *kt_utf8_sanitize(const char *s, size_t n, size_t *out_len) {
    strbuf out = {0};
    size_t i = 0;
    while (i < n) {
        size_t ok = kt_utf8_check((const unsigned char *)s + i, n - i);
        sb_append(&out, s + i, ok);
        i += ok;
        if (i < n) { /* skip the bad byte, or the bytes of a cut sequence */
            sb_puts(&out, "\xef\xbf\xbd");
            i++;
            while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
        }
    }
    sb_cstr(&out);
    if (out_len) *out_len = out.len;
    return sb_take(&out);
}
