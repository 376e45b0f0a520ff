/* fuzz_choices.c - multiple-choice items files (eval/choices.c's reader).
 * Whatever it accepts must be what the scorer relies on: at least two
 * choices, none empty, the answer one of them, a context and a continuation
 * per choice, lines in increasing order. */
#include "choices.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
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
