/* main.c - run every unit test (or those whose name contains argv[1]). */
#include "harness.h"
#include "tests.h"

#include <string.h>

int harness_failures;

static const test_case TESTS[] = {
#define X(name) {#name, name},
    ALL_TESTS
#undef X
};

int main(int argc, char **argv) {
    int passed = 0, failed = 0;
    for (size_t i = 0; i < sizeof TESTS / sizeof TESTS[0]; i++) {
        if (argc > 1 && !strstr(TESTS[i].name, argv[1])) continue;
        int before = harness_failures;
        TESTS[i].fn();
        int ok = harness_failures == before;
        printf("%s %s\n", ok ? "ok  " : "FAIL", TESTS[i].name);
        if (ok) passed++; else failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
