/* fuzz_tokenizer.c - tokenizer.json loading plus encoding and decoding. The
 * input is a tokenizer.json, a NUL byte, then a text: the file is loaded
 * (most inputs are refused with an error) and, when it loads, the text is
 * encoded and the ids decoded. A well-formed tokenizer.json seeds the corpus
 * so the fuzzer reaches the BPE code. */
#include "error.h"
#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t jlen = nul ? (size_t)(nul - data) : size;
    kt_tokenizer *t = kt_tokenizer_parse((const char *)data, jlen, "fuzz");
    if (!t) return 0;
    const char *text = nul ? (const char *)nul + 1 : "";
    size_t tlen = nul ? size - jlen - 1 : 0;
    int32_t *ids = NULL;
    long n = kt_tokenizer_encode(t, text, tlen, 1, &ids);
    if (n >= 0) {
        size_t len;
        char *back = kt_tokenizer_decode(t, ids, (size_t)n, &len);
        free(back);
    }
    free(ids);
    kt_tokenizer_free(t);
    return 0;
}
