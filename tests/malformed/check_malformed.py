#!/usr/bin/env python3
"""Malformed safetensors files: each must be refused by kintsugi-verify with a
one-line message naming the file and the broken rule, exit status 1, and no
sanitizer report. Uses only the standard library, so it also runs against the
sanitizer build before any virtual environment exists.

usage: check_malformed.py VERIFY_BINARY
"""
import json
import os
import struct
import subprocess
import sys
import tempfile


def header_file(header, data=b"", raw_len=None):
    h = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    n = len(h) if raw_len is None else raw_len
    return struct.pack("<Q", n) + h + data


def t(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


GOOD = {"a": t("F32", [2], 0, 8), "b": t("BF16", [2, 2], 8, 16)}

# name -> (file bytes, a fragment the error line must contain)
CASES = {
    "empty": (b"", "too short"),
    "seven_bytes": (b"\x01\x00\x00\x00\x00\x00\x00", "too short"),
    "huge_header_len": (struct.pack("<Q", 1 << 62) + b"{}", "over the limit"),
    "header_len_just_over_limit": (struct.pack("<Q", 100000001) + b"{}", "over the limit"),
    "header_past_eof": (header_file({}, raw_len=500), "runs past the end"),
    "not_json": (header_file(b"{not json}"), "invalid JSON"),
    "json_array": (header_file(b"[1,2,3]"), "does not start with '{'"),
    "json_string_root": (header_file(b'"abc"'), "does not start with '{'"),
    "trailing_garbage_in_header": (header_file(b'{"a":1} x'), "invalid JSON"),
    "non_utf8_header": (header_file(b'{"\xff\xfe":1}'), "not valid UTF-8"),
    "overlong_utf8": (header_file(b'{"\xc0\xaf":1}'), "not valid UTF-8"),
    "nul_in_header": (header_file(b'{"a\x00":1}'), "not valid UTF-8|invalid JSON"),
    "entry_not_object": (header_file({"a": 5}), "entry is not an object"),
    "missing_dtype": (header_file({"a": {"shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4), "missing \"dtype\""),
    "missing_shape": (header_file({"a": {"dtype": "F32", "data_offsets": [0, 4]}}, b"\0" * 4), "missing \"shape\""),
    "missing_offsets": (header_file({"a": {"dtype": "F32", "shape": [1]}}, b"\0" * 4), "missing \"data_offsets\""),
    "unknown_dtype": (header_file({"a": t("F31", [1], 0, 4)}, b"\0" * 4), "unknown dtype F31"),
    "dtype_not_string": (header_file({"a": {"dtype": 7, "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4), "unknown dtype"),
    "lowercase_dtype": (header_file({"a": t("f32", [1], 0, 4)}, b"\0" * 4), "unknown dtype f32"),
    "negative_dim": (header_file({"a": t("F32", [-1], 0, 4)}, b"\0" * 4), "shape[0] is not a non-negative integer"),
    "fractional_dim": (header_file(b'{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}', b"\0" * 4), "shape[0]"),
    "float_integral_dim": (header_file(b'{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}', b"\0" * 4), "shape[0]"),
    "string_dim": (header_file({"a": t("F32", ["1"], 0, 4)}, b"\0" * 4), "shape[0]"),
    "dim_too_big_for_u64": (header_file(b'{"a":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,4]}}', b"\0" * 4), "shape[0]"),
    "shape_overflow": (header_file({"a": t("F32", [1 << 32, 1 << 32], 0, 4)}, b"\0" * 4), "overflows"),
    "shape_not_array": (header_file({"a": {"dtype": "F32", "shape": 4, "data_offsets": [0, 16]}}, b"\0" * 16), "shape is not an array"),
    "offsets_three": (header_file({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}}, b"\0" * 8), "data_offsets is not"),
    "offsets_negative": (header_file({"a": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}, b"\0" * 4), "data_offsets is not"),
    "offsets_reversed": (header_file({"a": t("F32", [0], 4, 0)}, b"\0" * 4), "is after end"),
    "size_mismatch": (header_file({"a": t("F32", [2], 0, 4)}, b"\0" * 4), "span 4 bytes but F32"),
    "overlap": (header_file({"a": t("F32", [2], 0, 8), "b": t("F32", [2], 4, 12)}, b"\0" * 12), "overlap"),
    "gap": (header_file({"a": t("F32", [1], 0, 4), "b": t("F32", [1], 8, 12)}, b"\0" * 12), "gap of 4 bytes"),
    "not_from_zero": (header_file({"a": t("F32", [1], 4, 8)}, b"\0" * 8), "gap of 4 bytes"),
    "past_end": (header_file(GOOD, b"\0" * 12), "past the end of the file"),
    "truncated_data": (header_file({"a": t("F32", [1000], 0, 4000)}, b"\0" * 100), "past the end of the file"),
    "trailing_bytes": (header_file(GOOD, b"\0" * 20), "4 trailing bytes"),
    "duplicate_names": (header_file(b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                                    b'"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', b"\0" * 8), "duplicate tensor name \"a\""),
    "metadata_not_object": (header_file({"__metadata__": "x"}), "__metadata__ is not an object"),
    "metadata_non_string_value": (header_file({"__metadata__": {"format": 1}}), "__metadata__ value of \"format\""),
    "nan_offset": (header_file(b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[NaN,4]}}', b"\0" * 4), "data_offsets is not"),
    "deep_nesting": (header_file(b"{\"a\":" + b"[" * 5000 + b"]" * 5000 + b"}"), "invalid JSON"),
    "control_char_in_name": (header_file(b'{"a\x01":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4), "control character"),
}


def main():
    verify = sys.argv[1]
    passed = failed = 0
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = "exitcode=86:detect_leaks=1"
    env["UBSAN_OPTIONS"] = "halt_on_error=1:exitcode=86:print_stacktrace=1"
    with tempfile.TemporaryDirectory() as d:
        for name, (content, want) in sorted(CASES.items()):
            path = os.path.join(d, name + ".safetensors")
            with open(path, "wb") as f:
                f.write(content)
            r = subprocess.run([verify, path], capture_output=True, text=True, env=env, timeout=60)
            err = r.stderr.strip()
            problems = []
            if r.returncode != 1:
                problems.append(f"exit status {r.returncode}, want 1")
            if len(err.splitlines()) != 1:
                problems.append(f"{len(err.splitlines())} lines on stderr, want 1")
            if path not in err:
                problems.append("message does not name the file")
            if not any(w in err for w in want.split("|")):
                problems.append(f"message lacks {want!r}")
            if "Sanitizer" in err or "runtime error" in err:
                problems.append("sanitizer report")
            if problems:
                failed += 1
                print(f"FAIL malformed/{name}: {'; '.join(problems)}\n     stderr: {err[:300]}")
            else:
                passed += 1
                print(f"ok   malformed/{name}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
