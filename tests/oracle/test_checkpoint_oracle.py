"""The generated checkpoints: deterministic, and loaded by the real peers."""
import hashlib
import json
import os

import pytest

from conftest import generate, run, tool


def digest(d):
    h = hashlib.sha256()
    for name in sorted(os.listdir(d)):
        h.update(name.encode())
        h.update(open(os.path.join(d, name), "rb").read())
    return h.hexdigest()


def test_same_seed_same_bytes(tmp_path, tiny):
    again = generate(tmp_path / "again")
    assert digest(again) == digest(tiny)
    other = generate(tmp_path / "other", "--seed", "1")
    assert digest(other) != digest(tiny)


def test_tokenizers_loads_and_roundtrips(tiny):
    from tokenizers import Tokenizer
    t = Tokenizer.from_file(os.path.join(tiny, "tokenizer.json"))
    text = "こんにちは、世界。Hello world! 東京は日本の首都です。 😀 x=42"
    enc = t.encode(text)
    assert enc.ids[0] == 1  # <s> from the post-processor
    assert t.decode(enc.ids, skip_special_tokens=True) == text
    assert len(enc.ids) < len(text.encode())  # real merges compress the text
    vocab = t.get_vocab()
    for tok, i in [("<unk>", 0), ("<s>", 1), ("</s>", 2), ("<SPECIAL_10>", 10), ("<SPECIAL_11>", 11), ("<SPECIAL_12>", 12)]:
        assert vocab[tok] == i


def test_chat_template_renders_documented_prompts(tiny):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny)
    msgs = [{"role": "system", "content": ""}, {"role": "user", "content": "Hello"}]
    assert tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == \
        "<SPECIAL_10>System\n\n<SPECIAL_11>User\nHello\n<SPECIAL_11>Assistant\n<think>\n"
    msgs = [{"role": "system", "content": "/think"}, {"role": "user", "content": "Hi /no_think"}]
    assert tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True).endswith(
        "<SPECIAL_11>User\nHi\n<SPECIAL_11>Assistant\n<think></think>")
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "<think>r</think>ans"},
            {"role": "user", "content": "b"}]
    out = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert "<SPECIAL_11>Assistant\nans\n<SPECIAL_12>\n" in out and "<think>r" not in out


@pytest.mark.parametrize("options", [[], ["--moe"], ["--ssm-dtype", "bf16"], ["--mtp"], ["--shards", "1"],
                                     ["--shards", "3", "--dtype-key"]])
def test_mlx_lm_loads_and_generates(tmp_path, options):
    import mlx_lm
    d = generate(tmp_path / "m", *options)
    assert run([tool("kintsugi-verify"), "--quiet", d]).returncode == 0
    model, tokenizer = mlx_lm.load(d)  # strict: every weight present, no extra
    if "--moe" in options:
        # MLX's CPU GatherMM (the expert matmul) accepts only float32 (mlx 0.32.4)
        import mlx.core as mx
        model.set_dtype(mx.float32)
    text = mlx_lm.generate(model, tokenizer, prompt="Hello", max_tokens=6, verbose=False)
    assert isinstance(text, str)
    ids = tokenizer.encode("Hello")
    import mlx.core as mx
    logits = model(mx.array([ids]))
    assert logits.shape[-1] == json.load(open(os.path.join(d, "config.json")))["vocab_size"]
    assert mx.all(mx.isfinite(logits)).item()
