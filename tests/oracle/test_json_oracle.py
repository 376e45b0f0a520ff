"""Our JSON parse + print against Python's json module, byte for byte."""
import json
import math
import random
import struct

import pytest

from conftest import TESTTOOL, run

CORPUS = [
    '{"time_step_limit": [0.0, Infinity], "x": -Infinity, "n": NaN}',
    '{"eps": 1e-05, "a": 0.00001, "b": 1E-5, "c": 0.02, "d": 1e30, "e": 1.0e+30, "f": 10000.0, "g": 100000000000000000.0}',
    '{"big": 123456789012345678901234567890, "neg": -9223372036854775809, "zero": -0, "fz": -0.0, "max": 18446744073709551615}',
    '{"ja": "日本語のテキスト", "emoji": "😀🍣", "esc": "a\\u00e9\\ud83d\\ude00\\n\\t\\"\\\\\\/", "ctl": "\\u001f\\u007f"}',
    '{"nest": {"a": [[[]], {}, [{"b": [1, [2, [3, {"c": null}]]]}]], "t": true, "f": false}}',
    '{"a": 1, "b": 2, "a": 3}',
    '[]', '{}', '[1]', '"just a string"', '12', '-1.5e-300', '1e400', '-1e400', '5e-324',
    '{"vocab": {"<s>": 1, "\\u0120the": 1000, "\\u00e3\\u0123": 2}}',
    '  {  "spaces"  :  [ 1 , 2 ]  }  ',
    '{"floats": [0.1, 0.2, 0.30000000000000004, 1.7976931348623157e308, 2.2250738585072014e-308, 4.9e-324, 123.456, 1.5, 1e16, 1e15, 0.0001, 0.001]}',
]


def python_form(text, indent=4, sort_keys=False):
    return json.dumps(json.loads(text), indent=indent, sort_keys=sort_keys)


@pytest.mark.parametrize("i", range(len(CORPUS)))
def test_corpus_roundtrip_matches_python(tmp_path, i):
    p = tmp_path / "in.json"
    p.write_text(CORPUS[i], encoding="utf-8")
    ours = run([TESTTOOL, "json-print", str(p)]).stdout
    assert ours == python_form(CORPUS[i])


def test_random_doubles_print_like_python_repr(tmp_path):
    rng = random.Random(1234)
    values = []
    for _ in range(20000):
        bits = rng.getrandbits(64)
        v = struct.unpack("<d", struct.pack("<Q", bits))[0]
        if math.isnan(v):
            continue
        values.append(v)
    values += [rng.uniform(-1e6, 1e6) for _ in range(5000)] + [rng.random() * 10 ** rng.randint(-30, 30) for _ in range(5000)]
    text = json.dumps(values)
    p = tmp_path / "floats.json"
    p.write_text(text)
    ours = run([TESTTOOL, "json-print", str(p)]).stdout
    assert ours == python_form(text)


def test_generated_config_matches_transformers_style(tiny, tmp_path):
    """config.json as transformers writes it: indent 2, sorted keys, trailing newline."""
    path = f"{tiny}/config.json"
    text = open(path, encoding="utf-8").read()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    ours = run([TESTTOOL, "json-print", path, "2", "1"]).stdout
    assert ours + "\n" == text


def test_large_tokenizer_json_roundtrip(tiny):
    path = f"{tiny}/tokenizer.json"
    ours = run([TESTTOOL, "json-print", path]).stdout
    assert ours == python_form(open(path, encoding="utf-8").read())


@pytest.mark.parametrize("bad", ['{"a": 1,}', "[01]", "{'a': 1}", '{"a": .5}', "nan", '"\x01"', "[1] 2"])
def test_rejects_what_python_rejects(tmp_path, bad):
    with pytest.raises(ValueError):
        json.loads(bad)
    p = tmp_path / "bad.json"
    p.write_text(bad)
    r = run([TESTTOOL, "json-print", str(p)], check=False)
    assert r.returncode != 0 and "invalid JSON" in r.stderr
