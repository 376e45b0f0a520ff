/* harness.h - a minimal test harness: TEST(name) functions registered in
 * main's table, CHECK() assertions that record the failing line and go on.
 * The binary prints one line per test and ends with "N passed, N failed". */
#ifndef KT_HARNESS_H
#define KT_HARNESS_H

#include <stdio.h>

extern int harness_failures;

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            harness_failures++;                                                  \
            fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

#define CHECK_MSG(cond, ...)                                                     \
    do {                                                                         \
        if (!(cond)) {                                                           \
            harness_failures++;                                                  \
            fprintf(stderr, "  %s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                        \
            fprintf(stderr, "\n");                                               \
        }                                                                        \
    } while (0)

typedef void (*test_fn)(void);
typedef struct {
    const char *name;
    test_fn fn;
} test_case;

#endif
