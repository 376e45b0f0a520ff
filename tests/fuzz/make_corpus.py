#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets into tests/fuzz/corpus/ (committed;
run again only to change them). Standard library only. The tokenizer seed is
cut down from the generated checkpoint's tokenizer.json (256 byte symbols, a
few merges and added tokens) so each execution stays fast.

    python3 tests/fuzz/make_corpus.py [GENERATED_TOKENIZER_JSON]
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


# A whole Nemotron-H config, every key mlx-lm requires, small enough that
# every projection has one quantization group of 64.
FULL_CONFIG = {
    "model_type": "nemotron_h", "hybrid_override_pattern": "M*-", "hidden_size": 64, "vocab_size": 4,
    "intermediate_size": 64, "max_position_embeddings": 4096, "num_attention_heads": 2, "num_key_value_heads": 1,
    "head_dim": 32, "mamba_num_heads": 2, "mamba_head_dim": 32, "ssm_state_size": 4, "conv_kernel": 4, "n_groups": 1,
    "attention_bias": False, "mamba_proj_bias": False, "mlp_bias": False, "use_bias": False, "use_conv_bias": True,
    "layer_norm_epsilon": 1e-5, "time_step_limit": [0.0, float("inf")], "torch_dtype": "bfloat16",
}
MOE_CONFIG = {**FULL_CONFIG, "hybrid_override_pattern": "ME", "n_routed_experts": 4, "num_experts_per_tok": 2,
              "moe_intermediate_size": 64, "moe_shared_expert_intermediate_size": 64, "n_group": 1, "topk_group": 1,
              "n_shared_experts": 1, "norm_topk_prob": True, "routed_scaling_factor": 2.5}


def model_shapes(cfg):
    """The tensors the loader expects: {name: (shape of the dense weight or vector)}."""
    h, conv_dim = cfg["hidden_size"], 64 + 2 * cfg["n_groups"] * cfg["ssm_state_size"]
    t = {"backbone.embeddings.weight": [cfg["vocab_size"], h], "lm_head.weight": [cfg["vocab_size"], h],
         "backbone.norm_f.weight": [h]}
    for i, kind in enumerate(cfg["hybrid_override_pattern"]):
        p = f"backbone.layers.{i}"
        t[f"{p}.norm.weight"] = [h]
        m = f"{p}.mixer"
        if kind == "M":
            t.update({f"{m}.in_proj.weight": [64 + conv_dim + 2, h], f"{m}.out_proj.weight": [h, 64],
                      f"{m}.conv1d.weight": [conv_dim, 4, 1], f"{m}.conv1d.bias": [conv_dim], f"{m}.dt_bias": [2],
                      f"{m}.A_log": [2], f"{m}.D": [2], f"{m}.norm.weight": [64]})
        elif kind == "*":
            t.update({f"{m}.q_proj.weight": [64, h], f"{m}.k_proj.weight": [32, h], f"{m}.v_proj.weight": [32, h],
                      f"{m}.o_proj.weight": [h, 64]})
        elif kind == "-":
            t.update({f"{m}.up_proj.weight": [64, h], f"{m}.down_proj.weight": [h, 64]})
        else:
            t.update({f"{m}.switch_mlp.fc1.weight": [4, 64, h], f"{m}.switch_mlp.fc2.weight": [4, h, 64],
                      f"{m}.gate.weight": [4, h], f"{m}.gate.e_score_correction_bias": [4],
                      f"{m}.shared_experts.up_proj.weight": [64, h], f"{m}.shared_experts.down_proj.weight": [h, 64]})
    return t


def header_only(shapes, quantized):
    """A safetensors header whose data area is declared but not present."""
    header, off = {}, 0

    def add(name, dtype, shape, es):
        nonlocal off
        n = es
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    for name, shape in shapes.items():
        quantize = quantized and name.endswith(".weight") and len(shape) >= 2 and "conv1d" not in name \
            and "gate.weight" not in name
        if quantize:
            base = name[: -len(".weight")]
            add(name, "U32", shape[:-1] + [shape[-1] // 8], 4)
            add(base + ".scales", "BF16", shape[:-1] + [shape[-1] // 64], 2)
            add(base + ".biases", "BF16", shape[:-1] + [shape[-1] // 64], 2)
        else:
            add(name, "BF16", shape, 2)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h


def config_seeds():
    put("config", "dense", json.dumps(FULL_CONFIG, indent=4))
    put("config", "moe", json.dumps(MOE_CONFIG, indent=4))
    q = {**FULL_CONFIG, "quantization": {"group_size": 64, "bits": 4, "lm_head": {"group_size": 64, "bits": 8}}}
    q["quantization_config"] = q["quantization"]
    put("config", "quantized", json.dumps(q, indent=4))
    put("config", "block_types", json.dumps({**FULL_CONFIG, "hybrid_override_pattern": None,
                                             "layers_block_type": ["mamba", "attention", "mlp"]}))


def model_seeds():
    for name, cfg, quantized in (("dense", FULL_CONFIG, False), ("moe", MOE_CONFIG, False),
                                 ("quantized", FULL_CONFIG, True)):
        c = dict(cfg)
        if quantized:
            c["quantization"] = c["quantization_config"] = {"group_size": 64, "bits": 4}
        text = json.dumps(c).encode()
        put("model", name, struct.pack("<H", len(text)) + text + header_only(model_shapes(cfg), quantized))


def choices_seeds():
    jcqa = {"q_id": 0, "question": "日本の首都は？", "choice0": "東京", "choice1": "パリ", "choice2": "ローマ",
            "choice3": "北京", "choice4": "カイロ", "label": 0}
    put("choices", "jcqa", "".join(json.dumps(dict(jcqa, q_id=i, label=i % 5), ensure_ascii=False) + "\n"
                                   for i in range(3)))
    put("choices", "generic", json.dumps({"context": "2 + 2 =", "choices": [" 4", " 5"], "answer": 0}) + "\n\n"
        + json.dumps({"context": "", "choices": ["a", "b", "c"], "answer": 2}) + "\n")


if __name__ == "__main__":
    safetensors_seeds()
    json_seeds()
    if len(sys.argv) > 1:  # the tokenizer seed needs a generated tokenizer.json
        tokenizer_seeds(sys.argv[1])
    chat_seeds()
    archive_seeds()
    config_seeds()
    model_seeds()
    choices_seeds()
