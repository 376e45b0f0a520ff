/* chat.h - the Nemotron-H chat format, as its chat template defines it
 * (docs: nemotron-h.md section 4; checked against transformers'
 * apply_chat_template on the generated template):
 *   <SPECIAL_10>System\n{system}\n
 *   <SPECIAL_11>User\n{user}\n
 *   <SPECIAL_11>Assistant\n{answer after </think>}\n<SPECIAL_12>\n   (earlier turns)
 *   <SPECIAL_11>Assistant\n<think>\n          (reasoning on: the default)
 *   <SPECIAL_11>Assistant\n<think></think>    (reasoning off)
 * "/think" and "/no_think" in the system or user texts switch reasoning (the
 * last one wins) and are removed from the text, which is then stripped. */
#ifndef KT_CHAT_H
#define KT_CHAT_H

#include <stddef.h>

typedef struct {
    const char *role;     /* "system", "user", "assistant" */
    const char *content;
} kt_message;

/* The prompt for MESSAGES, ending with the generation prompt. *THINK tells
 * whether reasoning is on. The caller frees the result. */
char *kt_chat_render(const kt_message *messages, size_t n, int *think);

/* Is TEMPLATE (a model's Jinja chat template) one that renders the format
 * above? Recognised by content: it names every marker of the format
 * (<SPECIAL_10>System, <SPECIAL_11>User, <SPECIAL_11>Assistant, <SPECIAL_12>,
 * <think></think>, /no_think), as the released Nemotron-H templates do. */
int kt_chat_template_is_nemotron(const char *template_text);

#endif
