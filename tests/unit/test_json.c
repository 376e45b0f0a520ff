/* test_json.c - Python json semantics. The oracle test compares with Python
 * itself over a corpus; these pin the rules with hand-checked values. */
#include "error.h"
#include "harness.h"
#include "json.h"
#include "tests.h"
#include "tokenizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static cJSON *parse(const char *s) { return kt_json_parse(s, strlen(s), 0, "test"); }

static int repr_is(double v, const char *want) {
    char buf[32];
    kt_format_double_py(v, buf);
    if (strcmp(buf, want) != 0) fprintf(stderr, "  repr(%.17g) = %s, want %s\n", v, buf, want);
    return strcmp(buf, want) == 0;
}

void test_json_python_float_repr(void) {
    /* expected strings are what CPython's repr() prints */
    CHECK(repr_is(1e-05, "1e-05"));
    CHECK(repr_is(0.0001, "0.0001"));
    CHECK(repr_is(0.02, "0.02"));
    CHECK(repr_is(1e+30, "1e+30"));
    CHECK(repr_is(10000.0, "10000.0"));
    CHECK(repr_is(1e16, "1e+16"));
    CHECK(repr_is(1e15, "1000000000000000.0"));
    CHECK(repr_is(123456789012345678.0, "1.2345678901234568e+17"));
    CHECK(repr_is(0.1 + 0.2, "0.30000000000000004"));
    CHECK(repr_is(-0.0, "-0.0"));
    CHECK(repr_is(2.5, "2.5"));
    CHECK(repr_is(5e-324, "5e-324"));
    CHECK(repr_is(1.7976931348623157e308, "1.7976931348623157e+308"));
    CHECK(repr_is(INFINITY, "Infinity"));
    CHECK(repr_is(-INFINITY, "-Infinity"));
    CHECK(repr_is(NAN, "NaN"));
    CHECK(repr_is(0.001, "0.001"));
    CHECK(repr_is(123.456, "123.456"));
}

void test_json_numbers_keep_value(void) {
    cJSON *j = parse("{\"big\": 123456789012345678901234567890, \"eps\": 0.00001, \"lim\": [0.0, Infinity],"
                     " \"n\": NaN, \"m\": -Infinity, \"i\": 18446744073709551615}");
    CHECK(j != NULL);
    if (!j) return;
    double v;
    uint64_t u;
    CHECK(kt_json_is_integer(kt_json_get(j, "big")));
    CHECK(kt_json_u64(kt_json_get(j, "big"), &u) == -1); /* does not fit: reported, not wrapped */
    CHECK(kt_json_u64(kt_json_get(j, "i"), &u) == 0 && u == UINT64_MAX);
    CHECK(kt_json_number(kt_json_get(j, "eps"), &v) == 0 && v == 1e-05);
    cJSON *lim = kt_json_get(j, "lim");
    CHECK(kt_json_number(cJSON_GetArrayItem(lim, 1), &v) == 0 && isinf(v) && v > 0);
    CHECK(kt_json_number(kt_json_get(j, "n"), &v) == 0 && isnan(v));
    char *s = kt_json_print(j, &KT_JSON_COMPACT_SORTED);
    CHECK(strcmp(s, "{\"big\":123456789012345678901234567890,\"eps\":1e-05,\"i\":18446744073709551615,"
                    "\"lim\":[0.0,Infinity],\"m\":-Infinity,\"n\":NaN}") == 0);
    free(s);
    cJSON_Delete(j);
}

void test_json_duplicate_keys(void) {
    cJSON *j = parse("{\"a\": 1, \"b\": 2, \"a\": 3}");
    CHECK(j != NULL);
    if (!j) return;
    char *s = kt_json_print(j, &KT_JSON_COMPACT_SORTED);
    CHECK(strcmp(s, "{\"a\":3,\"b\":2}") == 0);
    free(s);
    kt_json_style unsorted = KT_JSON_COMPACT_SORTED;
    unsorted.sort_keys = 0;
    s = kt_json_print(j, &unsorted);
    CHECK(strcmp(s, "{\"a\":3,\"b\":2}") == 0); /* first position, last value */
    free(s);
    cJSON_Delete(j);
    CHECK(kt_json_parse("{\"a\":1,\"a\":2}", 13, KT_JSON_DUP_ERROR, "t") == NULL);
    CHECK(strstr(kt_errmsg(), "duplicate key \"a\"") != NULL);
}

/* Found by tests/fuzz/fuzz_tokenizer: a key three times read the first
 * item's key after the second occurrence had freed it (ASan: use after free). */
void test_json_key_three_times(void) {
    cJSON *j = parse("{\"a\": 1, \"b\": 2, \"a\": 3, \"a\": 4, \"b\": 5}");
    CHECK(j != NULL);
    if (!j) return;
    kt_json_style unsorted = KT_JSON_COMPACT_SORTED;
    unsorted.sort_keys = 0;
    char *s = kt_json_print(j, &unsorted);
    CHECK(strcmp(s, "{\"a\":4,\"b\":5}") == 0);
    free(s);
    cJSON_Delete(j);
}

void test_json_rejects_what_python_rejects(void) {
    static const char *bad[] = {"", "   ", "{", "[1,]", "{\"a\" 1}", "01", "1.", ".5", "+1", "-",
                                "1e", "\"\x01\"", "\"abc", "nan", "inf", "-NaN", "[1] x",
                                "\"\\x\"", "\"\\u12\"", "\xff", "{\"a\":1}}", "tru", "\"\xc3\x28\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *j = parse(bad[i]);
        CHECK_MSG(j == NULL, "accepted: %s", bad[i]);
        if (j) cJSON_Delete(j);
        else CHECK_MSG(strncmp(kt_errmsg(), "test: invalid JSON", 18) == 0, "message: %s", kt_errmsg());
    }
}

void test_json_print_indent4(void) {
    cJSON *j = parse("{\"z\": [], \"a\": {\"x\": [1, 2.50, \"\xe6\x97\xa5\xf0\x9f\x98\x80\"]}, \"e\": {},"
                     " \"c\": \"tab\\tq\\\"\\u007f\"}");
    CHECK(j != NULL);
    if (!j) return;
    char *s = kt_json_print(j, &KT_JSON_PYTHON_INDENT4);
    const char *want = "{\n    \"z\": [],\n    \"a\": {\n        \"x\": [\n            1,\n            2.5,\n"
                       "            \"\\u65e5\\ud83d\\ude00\"\n        ]\n    },\n    \"e\": {},\n"
                       "    \"c\": \"tab\\tq\\\"\\u007f\"\n}";
    CHECK_MSG(strcmp(s, want) == 0, "got:\n%s", s);
    free(s);
    cJSON_Delete(j);
}

void test_json_marker_string_not_a_number(void) {
    /* a real string starting with U+0001 must stay a string */
    cJSON *j = parse("[\"\\u00011\", 1]");
    CHECK(j != NULL);
    if (!j) return;
    CHECK(cJSON_IsString(cJSON_GetArrayItem(j, 0)));
    CHECK(strcmp(cJSON_GetArrayItem(j, 0)->valuestring, "\x01" "1") == 0);
    CHECK(kt_json_is_number(cJSON_GetArrayItem(j, 1)));
    cJSON_Delete(j);
}

/* A string cut inside a UTF-8 sequence must print without reading past its
 * end (ASan checks), and kt_utf8_sanitize must make it valid. */
void test_json_print_cut_utf8(void) {
    const char cut[] = {'a', (char)0xE6, (char)0x97, 0}; /* the first two bytes of U+65E5 */
    cJSON *s = cJSON_CreateString(cut);
    char *text = kt_json_print(s, &KT_JSON_PYTHON_INDENT4);
    CHECK(text != NULL && text[0] == '"' && text[1] == 'a');
    free(text);
    cJSON_Delete(s);
    char *clean = kt_utf8_sanitize(cut, 3, NULL);
    CHECK(strcmp(clean, "a\xef\xbf\xbd") == 0);
    free(clean);
    clean = kt_utf8_sanitize("ok\xff\xe6\x97\xa5", 6, NULL);
    CHECK(strcmp(clean, "ok\xef\xbf\xbd\xe6\x97\xa5") == 0);
    free(clean);
}

/* A report is strict JSON: NaN and infinities (1e999 too, which Python
 * reads as one) become null, and the root says where and why. */
void test_json_report_is_strict(void) {
    cJSON *root = parse("{\"a\": NaN, \"b\": {\"c\": [1.5, Infinity, -Infinity]}, \"d\": 1e999, \"e\": \"NaN\"}");
    char *s = kt_json_print_report(root, &KT_JSON_PYTHON_INDENT4);
    const char *want = "{\n    \"a\": null,\n    \"b\": {\n        \"c\": [\n            1.5,\n            null,\n"
                       "            null\n        ]\n    },\n    \"d\": null,\n    \"e\": \"NaN\",\n"
                       "    \"non_finite\": {\n        \"a\": \"NaN\",\n        \"b.c[1]\": \"Infinity\",\n"
                       "        \"b.c[2]\": \"-Infinity\",\n        \"d\": \"Infinity\"\n    }\n}";
    CHECK_MSG(!strcmp(s, want), "got %s", s);
    free(s);
    cJSON_Delete(root);
    root = parse("{\"x\": 1.0}");
    s = kt_json_print_report(root, &KT_JSON_PYTHON_INDENT4);
    CHECK(!strcmp(s, "{\n    \"x\": 1.0\n}")); /* nothing to flag: no key added */
    free(s);
    cJSON_Delete(root);
}
