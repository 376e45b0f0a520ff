/* diff.h - a unified diff of two texts, for showing a repair before it is
 * made (--dry-run). Line based, three lines of context, the format of
 * `diff -u`. Meant for configuration files: quadratic in the line count. */
#ifndef KT_FIXUP_DIFF_H
#define KT_FIXUP_DIFF_H

#include <stddef.h>

/* The diff of A (named OLD_NAME) and B (NEW_NAME); "" when they are equal.
 * The caller frees the result. */
char *fx_unified_diff(const char *old_name, const char *a, size_t a_len, const char *new_name, const char *b,
                      size_t b_len);

#endif
