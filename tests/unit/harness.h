/* harness.h - a minimal test harness: TEST(name) functions registered in
 * main's table, CHECK() assertions that record the failing line and go on.
 * The binary prints one line per test and ends with "N passed, N failed". */
#ifndef KT_HARNESS_H
#define KT_HARNESS_H

#include <stdint.h>
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

/* A seeded stream of random numbers (splitmix64) for the tests, and a float
 * uniform in [-1, 1) from it. */
static inline uint64_t harness_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline float harness_uniform(uint64_t *s) {
    return (float)((harness_next(s) >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

typedef void (*test_fn)(void);
typedef struct {
    const char *name;
    test_fn fn;
} test_case;

#endif
