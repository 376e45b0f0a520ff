/* documents.h - the texts a perplexity is measured on, as lm-evaluation-harness
 * sees them.
 *
 * lm-eval's perplexity tasks score each document on its own (wikitext:
 * EleutherAI/wikitext_document_level, one page per document) and weight the
 * aggregate by the words and UTF-8 bytes of the document as stored, before any
 * clean-up. A FILE given to --perplexity or --kld is read as:
 *
 *   NAME.jsonl   JSON Lines, one document per line (blank lines skipped):
 *                {"page": "..."}  a WikiText document: the text scored is
 *                                 lm-eval's wikitext_detokenizer(page); words
 *                                 and bytes are counted on the page itself
 *                {"text": "..."}  scored as it is
 *   anything     one document, the whole file, scored as it is
 */
#ifndef KT_DOCUMENTS_H
#define KT_DOCUMENTS_H

#include <stddef.h>

typedef struct {
    char *text;     /* what the model reads */
    size_t len;
    long words;     /* len(re.split(r"\s+", raw)) */
    long bytes;     /* len(raw.encode("utf-8")) */
} kt_document;

typedef struct {
    kt_document *doc;
    size_t n;
    int detokenized; /* some documents were WikiText pages */
} kt_documents;

/* DATA (LEN bytes, the contents of PATH; PATH decides the form and names the
 * file in errors). Returns -1 with kt_errmsg() "PATH:LINE: ...". */
int kt_documents_parse(kt_documents *d, const char *path, const char *data, size_t len);
void kt_documents_free(kt_documents *d);

/* lm-eval's word count: the pieces of re.split(r"\s+", s) (Python's Unicode
 * whitespace). */
long kt_count_words(const char *s, size_t len);

/* lm-eval 0.4.11's wikitext_detokenizer (tasks/wikitext/preprocess_wikitext.py),
 * the same replacements in the same order; a new string. */
char *kt_wikitext_detokenize(const char *page, size_t len, size_t *out_len);

#endif
