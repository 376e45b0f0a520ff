/* tokenizer.h - the Hugging Face byte-level BPE tokenizer of Nemotron-H, read
 * from tokenizer.json (nothing is hard-coded: the regex, merges, vocabulary
 * and added tokens all come from the file).
 *
 * Encoding, as the `tokenizers` library does it:
 *   1. the text is cut at added tokens (<s>, <SPECIAL_11>, ...), leftmost and
 *      longest first; those become their ids directly;
 *   2. every other segment is split by the pre-tokenizer's regex (matches and
 *      the gaps between them are all pieces: "Isolated");
 *   3. each piece's bytes are spelled in the GPT-2 byte alphabet (ByteLevel);
 *   4. BPE: the adjacent pair with the best (lowest) merge rank is merged,
 *      leftmost first, until no pair has a rank; the symbols are looked up in
 *      the vocabulary;
 *   5. the post-processor's template adds <s> in front (when asked).
 * Decoding maps the symbols back to bytes; added tokens decode to their text.
 */
#ifndef KT_TOKENIZER_H
#define KT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct kt_tokenizer kt_tokenizer;

/* Load PATH (tokenizer.json). NULL with kt_errmsg() naming what is wrong. */
kt_tokenizer *kt_tokenizer_load(const char *path);
/* A model directory's tokenizer, as mlx_lm.load reads it through
 * transformers: tokenizer_config.json, when present, a JSON object (else
 * transformers refuses it), and DIR/tokenizer.json loaded. With VOCAB > 0
 * (config.json's vocab_size), a tokenizer that can produce an id past the
 * embedding is refused too (stricter than mlx-lm: the model has no row for
 * it). NULL with kt_errmsg() naming the file and the problem. */
kt_tokenizer *kt_tokenizer_load_dir(const char *dir, int vocab);
/* 0 when T's ids all have a row in an embedding of VOCAB rows; else -1
 * with the message naming DIR/tokenizer.json. */
int kt_tokenizer_check_vocab(const kt_tokenizer *t, const char *dir, int vocab);
/* The same from LEN bytes of JSON TEXT (LABEL names it in errors). */
kt_tokenizer *kt_tokenizer_parse(const char *text, size_t len, const char *label);
void kt_tokenizer_free(kt_tokenizer *t);

/* Encode LEN bytes of UTF-8 TEXT. *IDS is malloc'd. ADD_BOS: the
 * post-processor's special tokens (the template's <s>). Returns the count,
 * or -1 (invalid UTF-8, a piece with no vocabulary entry). */
long kt_tokenizer_encode(const kt_tokenizer *t, const char *text, size_t len, int add_bos, int32_t **ids);

/* The bytes of token ID (added tokens: their text). NULL for an unknown id. */
const char *kt_tokenizer_token_bytes(const kt_tokenizer *t, int32_t id, size_t *len);
/* Decode N ids into a malloc'd NUL-terminated string (may be invalid UTF-8 if
 * the ids cut a character; streaming callers hold the tail back). */
char *kt_tokenizer_decode(const kt_tokenizer *t, const int32_t *ids, size_t n, size_t *len);

int32_t kt_tokenizer_id(const kt_tokenizer *t, const char *token);   /* -1 when absent */
size_t kt_tokenizer_vocab_size(const kt_tokenizer *t);
int32_t kt_tokenizer_bos(const kt_tokenizer *t);                      /* the template's special token, or -1 */
int kt_tokenizer_is_special(const kt_tokenizer *t, int32_t id);

/* A copy of S[0..N) that is valid UTF-8: every invalid or cut sequence
 * becomes U+FFFD, as Python's decode(errors="replace") does. NUL bytes stay:
 * *OUT_LEN (may be NULL) is the copy's length. */
char *kt_utf8_sanitize(const char *s, size_t n, size_t *out_len);

/* Bytes at the end of S[0..N) that are the start of an unfinished UTF-8
 * character (0..3): what a streaming decoder must hold back. */
size_t kt_utf8_incomplete_tail(const char *s, size_t n);

#endif
