"""kintsugi-run against mlx-lm and transformers: greedy generation gives
mlx-lm's tokens (float32), the chat prompt is transformers' rendering of the
model's own template, reasoning is split from the answer and has its own
budget, sampling is repeatable."""
import json
import os

import mlx.core as mx
import pytest

from conftest import generate_and_convert, run, tool

RUN = tool("kintsugi-run")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return generate_and_convert(tmp_path_factory.mktemp("run"))


def ours(path, *args):
    return json.loads(run([RUN, path, "--json", *args]).stdout)


def mlx_greedy(path, prompt_ids, n):
    from mlx_lm import load
    from mlx_lm.generate import generate_step
    model, _ = load(path)
    model.set_dtype(mx.float32)
    out = []
    for tok, _ in generate_step(mx.array(prompt_ids), model, max_tokens=n, sampler=lambda lg: mx.argmax(lg, axis=-1)):
        out.append(int(tok))
    return out


@pytest.mark.parametrize("which", [0, 1])
def test_greedy_equals_mlx_lm(models, which):
    path = models[which]
    r = ours(path, "--raw", "--prompt", "日本の首都は東京です。", "--max-tokens", "24", "--temperature", "0")
    ref = mlx_greedy(path, r["prompt_ids"], len(r["generated_ids"]))
    assert r["generated_ids"] == ref and len(ref) > 0


@pytest.mark.parametrize("system,user", [(None, "Hello"), ("You are kind. /no_think", "質問です"),
                                         ("", "/no_think what? /think again"), (None, "  spaced /no_think  ")])
def test_chat_prompt_equals_the_template(models, system, user):
    from transformers import AutoTokenizer
    path = models[1]
    tok = AutoTokenizer.from_pretrained(path)
    msgs = ([{"role": "system", "content": system}] if system is not None else []) + [{"role": "user", "content": user}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    r = ours(path, "--prompt", user, *(["--system", system] if system is not None else []), "--max-tokens", "1")
    # as transformers' apply_chat_template(tokenize=True) and mlx_lm.generate encode it: the template's own
    # special tokens and no <s> added in front
    ids = tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True)
    ids = ids["input_ids"] if not isinstance(ids, list) else ids
    assert r["prompt_ids"] == list(ids) == tok(text, add_special_tokens=False)["input_ids"]
    assert r["prompt_ids"][0] != tok.bos_token_id
    # --bos is the documented override
    r = ours(path, "--prompt", user, *(["--system", system] if system is not None else []), "--max-tokens", "1",
             "--bos")
    assert r["prompt_ids"] == [tok.bos_token_id] + list(ids)
    assert r["thinking"] == text.endswith("<think>\n")


def test_reasoning_budget_and_split(models):
    path = models[1]
    r = ours(path, "--prompt", "Hello", "--max-tokens", "6", "--max-reasoning-tokens", "5")
    assert r["thinking"] and "</think>" not in r["reasoning"]
    # the budget forced </think>: the text holds reasoning, the marker, then the answer
    assert "</think>" in r["text"] and len(r["answer"]) > 0
    r = ours(path, "--prompt", "Hello /no_think", "--max-tokens", "6")
    assert not r["thinking"] and r["reasoning"] == ""


def test_sampling_is_repeatable(models):
    path = models[1]
    args = ["--raw", "--prompt", "Hello", "--max-tokens", "12", "--temperature", "0.8", "--top-k", "50", "--top-p", "0.9"]
    a = ours(path, *args, "--seed", "7")
    b = ours(path, *args, "--seed", "7")
    c = ours(path, *args, "--seed", "8")
    assert a["generated_ids"] == b["generated_ids"]
    assert a["generated_ids"] != c["generated_ids"] or len(a["generated_ids"]) < 3


def test_tokenize_and_errors(models):
    path = models[1]
    r = run([RUN, path, "--tokenize", "--bos"], input="日本語\nHello\n")
    lines = r.stdout.strip().split("\n")
    assert len(lines) == 2 and lines[0].split()[0] == "1"
    r = run([RUN, path], check=False)
    assert r.returncode == 2 and "--prompt" in r.stderr
    r = run([RUN, "/nonexistent", "--prompt", "x"], check=False)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


PPL_TEXT = ("日本の首都は東京です。今日はいい天気ですね！\nThe quick brown fox jumps over the lazy dog.  "
            "def f(x):\n    return x ** 2\n\n明日も晴れるでしょうか？ Yes, I think so.\n") * 3


def mlx_token_logprobs(path, ids, window, bos=1):
    """Each token's log-probability from mlx-lm in float32, over
    lm-evaluation-harness's rolling windows (its own window functions)."""
    from lm_eval import utils
    from mlx_lm import load
    model, _ = load(path)
    model.set_dtype(mx.float32)
    out = []
    for a, b in map(utils.make_disjoint_window, utils.get_rolling_token_windows(ids, bos, window, 1)):
        inp = (a + b)[-(window + 1):][:-1]
        logits = model(mx.array([inp]))[0][-len(b):]
        lp = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        out.extend(lp[mx.arange(len(b)), mx.array(b)].tolist())
    return out


def mlx_nll(path, ids, window, bos=1):
    return -sum(mlx_token_logprobs(path, ids, window, bos))


@pytest.mark.parametrize("window", [100, 64, 7])
def test_each_token_log_likelihood_equals_mlx_lm(models, tmp_path, window):
    """The batched pass (64 positions per chunk, the state carried between
    chunks) scores every token as mlx-lm does."""
    from tokenizers import Tokenizer
    f = tmp_path / "text.txt"
    f.write_text(PPL_TEXT)
    for path in models:
        r = ours(path, "--perplexity", str(f), "--window", str(window))
        ids = Tokenizer.from_file(os.path.join(path, "tokenizer.json")).encode(PPL_TEXT, add_special_tokens=False).ids
        ref = mlx_token_logprobs(path, ids, window)
        assert len(r["token_logprobs"]) == len(ref) == len(ids) > 130
        assert max(abs(a - b) for a, b in zip(r["token_logprobs"], ref)) < 1e-3


def test_perplexity_equals_mlx_lm(models, tmp_path):
    import math
    import re
    from tokenizers import Tokenizer
    src, mlx = models
    f = tmp_path / "text.txt"
    f.write_text(PPL_TEXT)
    r = ours(mlx, "--perplexity", str(f), "--window", "32")
    ids = Tokenizer.from_file(os.path.join(mlx, "tokenizer.json")).encode(PPL_TEXT, add_special_tokens=False).ids
    nll = mlx_nll(mlx, ids, 32)
    assert r["tokens"] == len(ids) and r["windows"] == math.ceil(len(ids) / 32)
    assert r["nll"] == pytest.approx(nll, rel=1e-4)
    assert r["token_perplexity"] == pytest.approx(math.exp(nll / len(ids)), rel=1e-4)
    assert r["words"] == len(re.split(r"\s+", PPL_TEXT))
    assert r["word_perplexity"] == pytest.approx(math.exp(nll / r["words"]), rel=1e-4)
    # against itself: no divergence; the 4-bit model against its original: some
    same = ours(mlx, "--perplexity", str(f), "--window", "32", "--kld-against", mlx)
    assert same["kld_mean"] == pytest.approx(0, abs=1e-9) and same["top1_agreement"] == 1 and same["perplexity_ratio"] == pytest.approx(1)
    q = ours(mlx, "--perplexity", str(f), "--window", "32", "--kld-against", src)
    ref_nll = mlx_nll(src, ids, 32)
    assert q["reference_token_perplexity"] == pytest.approx(math.exp(ref_nll / len(ids)), rel=1e-4)
    assert q["kld_mean"] > 0 and 0 < q["top1_agreement"] <= 1
    assert q["perplexity_ratio"] == pytest.approx(q["token_perplexity"] / q["reference_token_perplexity"])


def test_chat_turns_follow_the_template(models):
    """Turn 2 is rendered from turn 1's answer only (its reasoning dropped)."""
    from transformers import AutoTokenizer
    path = models[1]
    r = run([RUN, path, "--chat", "--json", "--max-tokens", "4", "--max-reasoning-tokens", "3"],
            input="最初の質問\n次の質問 /no_think\n")
    turns = [json.loads(line) for line in r.stdout.splitlines()]  # JSON Lines: one object per turn
    assert len(turns) == 2 and turns[0]["thinking"] and not turns[1]["thinking"]
    tok = AutoTokenizer.from_pretrained(path)
    msgs = [{"role": "user", "content": "最初の質問"}, {"role": "assistant", "content": turns[0]["text"]},
            {"role": "user", "content": "次の質問 /no_think"}]
    expect = tok(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
    assert turns[1]["prompt_ids"] == expect
