#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets into tests/fuzz/corpus/ (committed;
run again only to change them). Standard library only. The tokenizer seed is
cut down from the generated checkpoint's tokenizer.json (256 byte symbols, a
few merges and added tokens) so each execution stays fast.

    python3 tests/fuzz/make_corpus.py GENERATED_TOKENIZER_JSON
"""
import gzip
import io
import json
import os
import struct
import sys
import tarfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "oracle"))
import stfile  # noqa: E402  (the tests' standard-library safetensors writer)


def st_file(tensors, meta=None):
    return stfile.write(None, tensors, meta)


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


TINY_CONFIG = {"model_type": "nemotron_h", "hidden_size": 8, "num_hidden_layers": 1, "hybrid_override_pattern": "-",
               "vocab_size": 4, "intermediate_size": 8, "time_step_limit": [0.0, float("inf")],
               "torch_dtype": "bfloat16"}
TINY_MODEL = {
    "backbone.embeddings.weight": ("BF16", [4, 8], bytes(64)),
    "backbone.layers.0.norm.weight": ("F32", [8], struct.pack("<8f", *[1.0] * 8)),
    "backbone.layers.0.mixer.up_proj.weight": ("BF16", [8, 8], bytes(128)),
    "backbone.layers.0.mixer.down_proj.weight": ("BF16", [8, 8], bytes(128)),
}


def safetensors_seeds():
    put("safetensors", "f32", st_file({"a": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4))}, {"format": "pt"}))
    put("safetensors", "mixed", st_file({"w": ("U32", [2, 1], bytes(8)), "s": ("BF16", [2, 1], bytes(4)),
                                          "e": ("F16", [0], b""), "x": ("I64", [], bytes(8))}))
    put("safetensors", "null_meta", st_file({"b": ("BOOL", [3], b"\x00\x01\x00")}, None).replace(b"{", b'{"__metadata__":null,', 1))
    put("safetensors", "model", st_file(TINY_MODEL))


def json_seeds():
    put("json", "config", json.dumps(TINY_CONFIG, indent=4).replace("Infinity", "Infinity"))
    put("json", "python", '{"a": [NaN, -Infinity, 1e400, 0.1, 12345678901234567890], "b": {"c": null, "c": true}}')
    put("json", "nested", "[" * 40 + "]" * 40)
    put("json", "strings", '["\\u00e9\\ud83d\\ude00", "\\n\\t", "日本語", ""]')


def tokenizer_seeds(generated):
    t = json.load(open(generated))
    byte_syms = [s for s, i in sorted(t["model"]["vocab"].items(), key=lambda kv: kv[1]) if len(s) == 1]
    vocab = {a["content"]: a["id"] for a in t["added_tokens"] if a["id"] < 16}
    for s in byte_syms:
        vocab.setdefault(s, len(vocab))
    merges = []
    for m in t["model"]["merges"]:  # the first merges whose parts are already there
        a, b = m if isinstance(m, list) else m.split(" ")
        if a in vocab and b in vocab and len(merges) < 40:
            merges.append(m)
            vocab.setdefault(a + b, len(vocab))
    t["model"]["vocab"], t["model"]["merges"] = vocab, merges
    t["added_tokens"] = [a for a in t["added_tokens"] if a["id"] < 16]
    text = json.dumps(t, ensure_ascii=False)
    put("tokenizer", "mini", text + "\0Hello, 世界! 123 <s>こんにちは\n\tcode();")
    put("tokenizer", "mini_empty_text", text + "\0")


def chat_seeds():
    put("chat", "think", "\x01What is 2+2? /think")
    put("chat", "no_think", "\x00Be brief. /no_think\0\x01Hello\0\x02<think>hm</think>Hi\0\x01Again")
    put("chat", "tags", "\x01/think /no_think /think\0\x02</think></think>\0\x03tool")


def archive_seeds():
    files = {"m/config.json": json.dumps(TINY_CONFIG).encode(), "m/model.safetensors": st_file(TINY_MODEL),
             "m/tokenizer_config.json": b'{"tokenizer_class": "PreTrainedTokenizerFast"}'}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tf.addfile(info, io.BytesIO(data))
    put("archive", "model.tar", buf.getvalue())
    put("archive", "model.tar.gz", gzip.compress(buf.getvalue(), mtime=0))
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data)
    put("archive", "model.zip", zbuf.getvalue())


if __name__ == "__main__":
    safetensors_seeds()
    json_seeds()
    tokenizer_seeds(sys.argv[1])
    chat_seeds()
    archive_seeds()
