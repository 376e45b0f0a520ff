/* fuzz_choices.c - the evaluation's input files: multiple-choice items
 * (eval/choices.c's reader) and perplexity documents (eval/documents.c: JSON
 * Lines of WikiText pages, through the detokenizer, and plain text).
 * Whatever the items reader accepts must be what the scorer relies on: at
 * least two choices, none empty, the answer one of them, a context and a
 * continuation per choice, lines in increasing order. Accepted documents
 * carry a text and word and byte counts that fit what was read. */
#include "choices.h"
#include "documents.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void documents(const uint8_t *data, size_t size, const char *name) {
    kt_documents d;
    if (kt_documents_parse(&d, name, (const char *)data, size)) return;
    for (size_t i = 0; i < d.n; i++) {
        const kt_document *doc = &d.doc[i];
        if (!doc->text || doc->words < 1 || doc->bytes < 0 || (size_t)doc->bytes > size || strlen(doc->text) > doc->len)
            abort();
    }
    kt_documents_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    documents(data, size, "pages.jsonl");
    documents(data, size, "text.txt");
    kt_mc_set set;
    if (kt_mc_parse((const char *)data, size, "items.jsonl", &set)) return 0;
    long line = 0;
    for (int i = 0; i < set.n; i++) {
        const kt_mc_item *it = &set.items[i];
        if (it->n_choices < 2 || it->answer < 0 || it->answer >= it->n_choices || !it->context || it->line <= line)
            abort();
        if (set.jcqa && it->n_choices != 5) abort();
        for (int c = 0; c < it->n_choices; c++)
            if (!it->choice[c] || !it->choice[c][0] || !it->cont[c] || strlen(it->cont[c]) < strlen(it->choice[c]))
                abort();
        line = it->line;
    }
    kt_mc_free(&set);
    return 0;
}
