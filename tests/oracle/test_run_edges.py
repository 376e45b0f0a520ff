"""kintsugi-run at the edges: text is bytes with a length (a token may decode
to NUL), budgets are exact (0 means none; the tokens fed to close the
reasoning count as neither), output never ends inside a UTF-8 character,
options that the chosen mode ignores are refused, a sampled run names its
seed, and -v shows the template and the prompt's tokens."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import SANITIZED, generate, one_line_error, run, tool

RUN = tool("kintsugi-run")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("edges") / "hf")


def ours(path, *args, **kw):
    return json.loads(run([RUN, path, "--json", "-q", *args], **kw).stdout)


def byte_decoder():
    """GPT-2's byte-level alphabet, reversed: the tokenizer's characters to bytes."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def nul_model(ckpt, tmp_path):
    """The checkpoint with its tokenizer changed so that the second token
    greedy decoding picks decodes to the byte NUL."""
    first = ours(ckpt, "--prompt", "hello there", "--max-tokens", "3", "--max-reasoning-tokens", "6")
    tok = json.load(open(os.path.join(ckpt, "tokenizer.json")))
    vocab = tok["model"]["vocab"]
    inv = {i: s for s, i in vocab.items()}
    special = {a["id"] for a in tok["added_tokens"]}
    target = next(i for i in first["generated_ids"][1:] if i not in special and i in inv)
    dec = byte_decoder()
    nul = next(s for s in vocab if len(s) == 1 and dec.get(s) == 0)
    a, b = vocab[nul], target
    vocab[inv[b]], vocab[nul] = a, b
    d = tmp_path / "nul"
    shutil.copytree(ckpt, d)
    with open(d / "tokenizer.json", "w") as f:
        json.dump(tok, f, ensure_ascii=False)
    return str(d), target


def test_a_token_that_decodes_to_nul_is_text_like_any_other(ckpt, tmp_path):
    d, nul_id = nul_model(ckpt, tmp_path)
    for budget in (3, 40) if SANITIZED else (3, 6, 40):  # the sanitizer pass takes a sample
        r = ours(d, "--prompt", "hello there", "--max-tokens", "4", "--max-reasoning-tokens", str(budget))
        assert nul_id in r["generated_ids"]
        assert "\x00" in r["text"], r["text"]
        assert r["stop_reason"] in ("eos", "max_tokens"), r["stop_reason"]
        assert r["stats"]["reasoning_tokens"] <= budget
        assert r["text"].count("</think>") <= 1
        if r["reasoning_forced_closed"]:
            assert r["stats"]["reasoning_tokens"] == budget
    # on stdout too: the NUL byte is printed, nothing after it is lost
    out = subprocess.run([RUN, d, "--prompt", "hello there", "--max-tokens", "4", "--max-reasoning-tokens", "6", "-q"],
                         capture_output=True, check=True).stdout
    assert b"\x00" in out


def test_budgets_are_exact(ckpt):
    for budget in (0, 5) if SANITIZED else (0, 1, 2, 5):
        r = ours(ckpt, "--prompt", "hello there", "--max-tokens", "3", "--max-reasoning-tokens", str(budget))
        assert r["thinking"]
        assert r["stats"]["reasoning_tokens"] == budget or (r["stop_reason"] == "eos" and
                                                           r["stats"]["reasoning_tokens"] < budget), (budget, r)
        if budget == 0:
            assert r["reasoning"] == "" and r["reasoning_forced_closed"]
        assert r["stats"]["answer_tokens"] <= 3
        if r["stop_reason"] == "max_tokens":
            assert r["stats"]["answer_tokens"] == 3
        # the answer is not the template's layout: no newline first (--reasoning hide would print a blank line)
        assert not r["answer"].startswith("\n")
        hidden = run([RUN, ckpt, "--prompt", "hello there", "--max-tokens", "3", "--max-reasoning-tokens",
                      str(budget), "-q", "--reasoning", "hide"]).stdout
        assert hidden == r["answer"] + "\n"


def test_output_never_ends_inside_a_character():
    """The trained model answers in Japanese: a budget of 1-4 tokens often
    stops inside a character, which must be held back, not printed as U+FFFD."""
    model = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "testdata",
                         "trained", "model")
    dec = byte_decoder()
    tok = json.load(open(os.path.join(model, "tokenizer.json")))
    inv = {i: s for s, i in tok["model"]["vocab"].items()}
    special = {a["id"]: a["content"] for a in tok["added_tokens"]}

    def raw(ids):
        return b"".join(special[i].encode() if i in special else bytes(dec[c] for c in inv[i]) if i in inv else b""
                        for i in ids)  # an id past the tokenizer's last decodes to nothing

    cut = 0
    for prompt in ("日本の首都は", "富士山について", "こんにちは"):
        for n in (1, 2) if SANITIZED else (1, 2, 3, 4):
            args = ["--prompt", prompt + " /no_think", "--max-tokens", str(n)]
            r = ours(model, *args)
            b = raw(r["generated_ids"])
            held = b.decode(errors="ignore") if b[-1:] and b[-1] >= 0x80 else b.decode(errors="replace")
            try:
                b.decode()
            except UnicodeDecodeError as e:
                cut += e.reason == "unexpected end of data"  # the run stopped inside a character
            assert r["text"] == held and not r["text"].endswith("\ufffd"), (prompt, n, r["text"], b)
            printed = subprocess.run([RUN, model, *args, "-q"], capture_output=True, check=True).stdout
            printed.decode()  # strict: complete characters only
            assert printed == r["answer"].encode() + b"\n"
    assert cut > 0, "no run stopped inside a character: the test checks nothing"


@pytest.mark.parametrize("args,names", [
    (["--tokenize", "--max-tokens", "3"], ("--max-tokens", "--tokenize")),
    (["--tokenize", "--temperature", "0.5"], ("--temperature", "--tokenize")),
    (["--perplexity", "x.txt", "--top-k", "3"], ("--top-k", "--perplexity")),
    (["--perplexity", "x.txt", "--repetition-penalty", "1.2"], ("--repetition-penalty", "--perplexity")),
    (["--choices", "x.jsonl", "--max-reasoning-tokens", "3"], ("--max-reasoning-tokens", "--choices")),
    (["--prompt", "x", "--reasoning", "hide", "--json"], ("--reasoning", "--json")),
    (["--prompt", "x", "--raw", "--strict-template"], ("--raw", "--strict-template")),
    (["--prompt", "x", "--seed", "3"], ("--seed", "--temperature 0")),
    (["--prompt", "x", "--top-p", "0.5"], ("--top-p", "--temperature 0")),
    (["--prompt", "x", "--window", "64"], ("--window", "--prompt")),
    (["--chat", "--raw"], ("--raw", "--chat")),
    (["--tokenize", "--json"], ("--json", "--tokenize")),
    (["--tokenize", "-v"], ("--verbose", "--tokenize")),
])
def test_options_the_mode_ignores_are_refused(ckpt, args, names):
    line = one_line_error(run([RUN, ckpt, *args], check=False, input=""), "kintsugi-run", 2)
    for n in names:
        assert n in line, line


def test_a_sampled_run_names_its_seed(ckpt):
    args = ["--raw", "--prompt", "hello", "--max-tokens", "12", "--temperature", "0.9"]
    a, b = ours(ckpt, *args), ours(ckpt, *args)
    assert isinstance(a["seed"], int) and a["seed"] != b["seed"]  # from the clock, as MLX seeds
    again = ours(ckpt, *args, "--seed", str(a["seed"]))
    assert again["generated_ids"] == a["generated_ids"] and again["seed"] == a["seed"]
    assert ours(ckpt, "--raw", "--prompt", "hello", "--max-tokens", "2")["seed"] is None  # greedy draws nothing
    r = run([RUN, ckpt, *args])
    assert "seed " in r.stderr.strip().splitlines()[-1]


def test_verbose_shows_the_template_and_the_prompt_tokens(ckpt):
    r = run([RUN, ckpt, "--prompt", "hello", "--max-tokens", "2", "--max-reasoning-tokens", "2", "-v", "--json"])
    ids = json.loads(r.stdout)["prompt_ids"]
    lines = r.stderr.splitlines()
    assert any(l.startswith("kintsugi-run: template: ") for l in lines), r.stderr
    assert f"kintsugi-run: prompt: {len(ids)} tokens: " + " ".join(map(str, ids)) in lines, r.stderr
    r = run([RUN, ckpt, "--raw", "--prompt", "hello", "--max-tokens", "2", "-v", "-q"], check=False)
    assert r.returncode == 2  # -v and -q do not go together


def test_dash_is_stdin_and_prompts_json_names_each_line(ckpt, tmp_path):
    r = run([RUN, ckpt, "--prompts", "-", "--json", "-q", "--max-tokens", "2", "--max-reasoning-tokens", "2"],
            input="hello\n\nworld /no_think\n")
    objs = [json.loads(l) for l in r.stdout.splitlines()]
    assert [(o["line"], o["prompt"]) for o in objs] == [(1, "hello"), (3, "world /no_think")]
    text = "The quick brown fox jumps over the lazy dog, again and again.\n"
    f = tmp_path / "t.txt"
    f.write_text(text)
    a = json.loads(run([RUN, ckpt, "--perplexity", str(f), "--json", "-q"]).stdout)
    b = json.loads(run([RUN, ckpt, "--perplexity", "-", "--json", "-q"], input=text).stdout)
    assert a["token_perplexity"] == b["token_perplexity"]
    items = json.dumps({"context": "a b", "choices": [" c", " d"], "answer": 0}) + "\n"
    c = tmp_path / "c.jsonl"
    c.write_text(items)
    a = json.loads(run([RUN, ckpt, "--choices", str(c), "--json", "-q"]).stdout)
    b = json.loads(run([RUN, ckpt, "--choices", "-", "--json", "-q"], input=items).stdout)
    assert a["acc"] == b["acc"] and a["items"] == b["items"] if "items" in a else a["acc"] == b["acc"]


def test_a_tokenizer_past_the_embedding_is_refused(ckpt, tmp_path):
    """An id the model has no row for: refused in every mode that runs the
    model (perplexity once read past its log-probabilities), one line."""
    d = tmp_path / "big"
    shutil.copytree(ckpt, d)
    cfg = json.load(open(d / "config.json"))
    tok = json.load(open(d / "tokenizer.json"))
    tok["added_tokens"].append({"id": cfg["vocab_size"] + 5, "content": "<past>", "single_word": False, "lstrip": False,
                                "rstrip": False, "normalized": False, "special": True})
    json.dump(tok, open(d / "tokenizer.json", "w"), ensure_ascii=False)
    text = tmp_path / "t.txt"
    text.write_text("hello <past> world\n")
    for args in (["--prompt", "hi"], ["--perplexity", str(text)]):
        line = one_line_error(run([RUN, str(d), *args], check=False), "kintsugi-run", 1)
        assert "more than vocab_size" in line, line
