/* json.h - JSON with Python's semantics, on top of cJSON.
 *
 * Hugging Face and MLX files are written by Python's json module, which
 * differs from strict JSON and from cJSON in ways that matter here:
 *   - bare NaN, Infinity and -Infinity are read and written;
 *   - numbers keep their exact value (integers of any size, floats printed
 *     with repr(): 1e-05, 0.02, 1e+30, 10000.0);
 *   - a repeated key keeps its first position and its last value;
 *   - printing with indent=4 uses ",\n" and ": " and escapes non-ASCII.
 * Numbers therefore live in the tree as cJSON_Raw items holding the number's
 * source text; read them with kt_json_number()/kt_json_u64() and create them
 * with kt_json_new_float()/kt_json_new_int(). Everything else is plain cJSON,
 * so callers use cJSON's own functions to walk and edit the tree.
 */
#ifndef KT_JSON_H
#define KT_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <cJSON.h>

enum {
    KT_JSON_DUP_LAST_WINS = 0,  /* Python: first position, last value */
    KT_JSON_DUP_ERROR = 1,      /* a repeated key is an error (safetensors headers) */
};

/* Parse LEN bytes of TEXT (need not be NUL-terminated). WHAT names the source
 * in error messages ("config.json"). Returns NULL with kt_errmsg() set. */
cJSON *kt_json_parse(const char *text, size_t len, int flags, const char *what);
/* Read and parse a whole file. */
cJSON *kt_json_load_file(const char *path, int flags);

typedef struct {
    int indent;        /* spaces per level; < 0 for everything on one line */
    const char *item_sep;
    const char *key_sep;
    int ensure_ascii;  /* escape every non-ASCII character as \uXXXX */
    int sort_keys;     /* sort object keys by code point at every level */
} kt_json_style;

/* json.dumps(obj, indent=4) */
extern const kt_json_style KT_JSON_PYTHON_INDENT4;
/* json.dumps(obj, separators=(",", ":"), sort_keys=True): a safetensors header */
extern const kt_json_style KT_JSON_COMPACT_SORTED;

/* Print ITEM; the caller frees the result. */
char *kt_json_print(const cJSON *item, const kt_json_style *style);

/* A report for machines (every --json): strict JSON, which parsers in
 * Swift, Go, Rust and JavaScript accept. Python's bare NaN/Infinity are not
 * JSON, so every non-finite number in ROOT becomes null, and a root object
 * gets "non_finite": {"PATH": "NaN" | "Infinity" | "-Infinity", ...} saying
 * which values were not numbers and why they are null (PATH as
 * "checks[3].figures.kld_mean"). Then printed as kt_json_print. */
char *kt_json_print_report(cJSON *root, const kt_json_style *style);

/* Numbers. */
int kt_json_is_number(const cJSON *item);
/* 1 when the number was written as an integer (no '.', no exponent). */
int kt_json_is_integer(const cJSON *item);
/* Value as a double (NaN/Infinity included). Returns -1 when not a number. */
int kt_json_number(const cJSON *item, double *out);
/* A non-negative integer that fits in 64 bits, written without '.' or exponent. */
int kt_json_u64(const cJSON *item, uint64_t *out);
/* A (possibly negative) integer that fits in 64 bits. */
int kt_json_i64(const cJSON *item, int64_t *out);
cJSON *kt_json_new_float(double v);
cJSON *kt_json_new_int(long long v);
/* A string of N bytes that may hold NUL or bytes that are not UTF-8 (a
 * token's text, a file name): printed losslessly, NUL as \u0000 and each
 * byte that is not UTF-8 as \udcXX (Python's surrogateescape). */
cJSON *kt_json_new_string_n(const char *s, size_t n);

/* Python's repr() of a float, e.g. "1e-05", "0.02", "10000.0", "Infinity". */
void kt_format_double_py(double v, char out[32]);

/* Object lookup by exact key (cJSON's own lookup ignores case). */
cJSON *kt_json_get(const cJSON *object, const char *key);

/* Check UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
 * Returns the offset of the first bad byte, or LEN when all is valid. */
size_t kt_utf8_check(const unsigned char *s, size_t len);

#endif
