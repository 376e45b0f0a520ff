/* fuzz_chat.c - the chat format renderer: the input is cut at NUL bytes into
 * messages, the first byte of each choosing its role; whatever the texts
 * (/think and /no_think anywhere, <think> tags, invalid UTF-8), rendering
 * must terminate and end with the generation prompt. */
#include "chat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *roles[] = {"system", "user", "assistant", "tool"};
    char *copy = malloc(size + 1);
    memcpy(copy, data, size);
    copy[size] = 0;
    kt_message msgs[16];
    size_t n = 0;
    for (char *p = copy; p <= copy + size && n < 16;) {
        size_t len = strlen(p);
        if (len) msgs[n++] = (kt_message){roles[(unsigned char)p[0] % 4], p + 1};
        p += len + 1;
    }
    int think = -1;
    char *out = kt_chat_render(msgs, n, &think);
    if (!out || (think != 0 && think != 1)) abort();
    size_t olen = strlen(out);
    const char *tail = think ? "<think>\n" : "<think></think>";
    if (olen < strlen(tail) || strcmp(out + olen - strlen(tail), tail)) abort();
    free(out);
    free(copy);
    return 0;
}
