"""The embedded trained model (testdata/trained/model, made by
`make trained-model`): it answers in words, /think and /no_think behave, its
4-bit conversion answers as it does, the behavioural gate judges conversions
against the RTN reference (passes RTN and fitted 4 bits, fails 2 bits and
noisy scales), verify --card writes its table. JCommonsenseQA items against
lm-eval itself: test_lm_eval_oracle.py."""
import json
import os

import mlx.core as mx
import numpy as np
import pytest

from conftest import INT8, ROOT, SANITIZED, TESTTOOL, one_line_error, run, tool
from damage import noisy_copy

MODEL = os.path.join(ROOT, "testdata", "trained", "model")
DATA = os.path.join(ROOT, "testdata", "trained", "data")
RUN, VERIFY = tool("kintsugi-run"), tool("kintsugi-verify")

# integer activations against float32 on the same weights (docs/PERFORMANCE.md)
INT8_MAX_KLD, INT8_MIN_TOP1 = 0.01, 0.97


def jsonl(name):
    with open(os.path.join(DATA, name), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def heldout():
    """Every held-out prompt (a sample of them under the sanitizers)."""
    return jsonl("heldout.jsonl")[::8 if SANITIZED else 1]


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    """The trained model converted at 8, 4, 3 and 2 bits (group 64)."""
    base = tmp_path_factory.mktemp("trained")
    out = {}
    for bits in (8, 4, 3, 2):
        out[bits] = str(base / f"mlx-{bits}bit")
        run([tool("kintsugi-convert"), MODEL, out[bits], "--quiet", "--bits", str(bits), "--group-size", "64"])
    return out


def generate(path, prompts, tmp_path, *args, env=None):
    """kintsugi-run --prompts: one greedy generation per prompt, the model loaded once."""
    f = tmp_path / "prompts.txt"
    assert all("\n" not in p for p in prompts)
    f.write_text("".join(p + "\n" for p in prompts), encoding="utf-8")
    r = run([RUN, path, "--prompts", str(f), "--json", "-q", *args], env=env)
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(out) == len(prompts)
    return out


def with_mode(text, think):
    return text.replace(" /no_think", "").replace(" /think", "") + (" /think" if think else " /no_think")


def test_the_model_is_a_small_hugging_face_original_mlx_lm_loads():
    from mlx_lm import load
    size = sum(os.path.getsize(os.path.join(MODEL, f)) for f in os.listdir(MODEL))
    assert size <= 16 << 20
    cfg = json.load(open(os.path.join(MODEL, "config.json")))
    assert cfg["hybrid_override_pattern"] == "M-M*M-" and "time_step_limit" in cfg
    assert os.path.exists(os.path.join(MODEL, "model.safetensors.index.json"))
    load(MODEL)  # strict: every tensor the architecture has, nothing else
    r = run([VERIFY, MODEL, "--quiet"])
    assert r.returncode == 0


def test_the_training_prompts_are_answered_exactly(tmp_path):
    train = [t for t in jsonl("train.jsonl") if "messages" in t and len(t["messages"]) == 2]
    sample = train[::32 if SANITIZED else 4]
    got = generate(MODEL, [t["messages"][0]["content"] for t in sample], tmp_path)
    exact = sum(g["answer"].strip() == t["messages"][1]["content"].split("</think>")[-1].strip()
                for g, t in zip(got, sample))
    assert len(sample) >= (30 if SANITIZED else 250) and exact / len(sample) >= 0.90, exact / len(sample)


def test_held_out_prompts_exact_match(heldout, tmp_path):
    """Facts seen in training asked in words that were not: measured, and
    documented in docs/TRAINED-MODEL.md."""
    got = generate(MODEL, [h["messages"][0]["content"] for h in heldout], tmp_path)
    exact = sum(g["answer"].strip() == h["answer"] for g, h in zip(got, heldout)) / len(heldout)
    assert exact >= 0.85, exact


@pytest.mark.parametrize("think", [False, True])
@pytest.mark.parametrize("activations", ["f32", "int8"])
def test_four_bits_answer_as_the_original(heldout, quantized, tmp_path, think, activations):
    """The 4-bit conversion, with exact and with integer activations (what
    generation uses by default), gives the original's greedy answers."""
    prompts = [with_mode(h["messages"][0]["content"], think) for h in heldout]
    orig = generate(MODEL, prompts, tmp_path)
    q4 = generate(quantized[4], prompts, tmp_path, env=INT8 if activations == "int8" else None)
    same = sum(a["answer"].strip() == b["answer"].strip() for a, b in zip(orig, q4)) / len(prompts)
    # Measured on all 290 prompts: 97.9% (f32) and 96.2% (int8). Near-ties
    # fall differently with another CPU's kernels (summation order), hence
    # 3 points of room; the sanitizer run's sample of 37 prompts may hold a
    # few more of the misses by chance (5 of 37 still pass).
    assert same >= (0.86 if SANITIZED else 0.93), same


@pytest.mark.figures
@pytest.mark.parametrize("bits", [8, 4])
def test_integer_activations_stay_close_to_float(quantized, bits):
    """The integer path against the exact one on the same model, held-out
    prose: the bound docs/PERFORMANCE.md states."""
    prose = os.path.join(DATA, "prose-heldout.txt")
    r = json.loads(run([RUN, quantized[bits], "--perplexity", prose, "--kld-against", quantized[bits], "--json", "-q"],
                       env=INT8).stdout)
    assert r["kld_mean"] <= INT8_MAX_KLD and r["top1_agreement"] >= INT8_MIN_TOP1, r


def test_interleaved_copy_gives_the_file_layouts_logits(quantized):
    """Integer activations decode the 4-bit model from the copy interleaved
    by 8 rows (runtime/cpu/interleave.c) where the CPU has a kernel for it;
    the first position's logits must equal those from the file's layout
    to rounding (the same integer sums, float sums in another order).
    Later positions carry state, where a last-bit difference can move an
    activation across an 8-bit rounding step of the next layer: measured
    0.5% of the largest logit at most, the same top token everywhere. A
    bad KT_INTERLEAVE is one line and exit 2."""
    ids = ["1", "300", "17", "2048", "5", "99", "1200", "7"]
    def logits(flag):
        return np.array(json.loads(run([TESTTOOL, "logits", quantized[4], *ids], env=dict(INT8, KT_INTERLEAVE=flag)).stdout))
    copy, file = logits("1"), logits("0")
    assert copy.shape == file.shape and np.isfinite(copy).all()
    scale = np.abs(file).max(axis=1)
    assert np.abs(copy[0] - file[0]).max() <= 1e-5 * scale[0], np.abs(copy[0] - file[0]).max()
    assert (np.abs(copy - file).max(axis=1) <= 0.02 * scale).all(), np.abs(copy - file).max(axis=1) / scale
    assert (copy.argmax(axis=1) == file.argmax(axis=1)).all()
    r = run([RUN, quantized[4], "--prompt", "hi", "--max-tokens", "1"], check=False, env=dict(INT8, KT_INTERLEAVE="yes"))
    assert "KT_INTERLEAVE" in one_line_error(r, "kintsugi-run", 2)


@pytest.mark.parametrize("which", ["bf16", 4])
def test_no_think_answers_without_reasoning(heldout, quantized, tmp_path, which):
    path = MODEL if which == "bf16" else quantized[which]
    got = generate(path, [with_mode(h["messages"][0]["content"], False) for h in heldout], tmp_path,
                   env=None if which == "bf16" else INT8)
    for g in got:
        assert not g["thinking"] and g["stats"]["reasoning_tokens"] == 0 and g["reasoning"] == ""
        assert g["answer"].strip() and g["stop_reason"] == "eos"


@pytest.mark.parametrize("which", ["bf16", 4])
def test_think_reasons_then_answers(heldout, quantized, tmp_path, which):
    path = MODEL if which == "bf16" else quantized[which]
    got = generate(path, [with_mode(h["messages"][0]["content"], True) for h in heldout], tmp_path,
                   env=None if which == "bf16" else INT8)
    closed = sum(g["thinking"] and not g["reasoning_forced_closed"] and g["reasoning"].strip() != ""
                 and g["answer"].strip() != "" and g["stop_reason"] == "eos" for g in got)
    assert closed / len(got) >= 0.95, closed / len(got)


def kld_check(path, text, *extra):
    r = run([VERIFY, path, "--original", MODEL, "--kld", text, "--json", *extra], check=False)
    return r.returncode, next(c for c in json.loads(r.stdout)["checks"] if c["name"] == "kld")


PROSE = [os.path.join(DATA, "prose-heldout.txt"), os.path.join(DATA, "prose-unseen-en.txt"),
         os.path.join(DATA, "prose-unseen-ja.txt")]


@pytest.mark.figures
@pytest.mark.parametrize("text", PROSE, ids=["heldout", "unseen-en", "unseen-ja"])
def test_kld_gate_judges_against_the_rtn_reference(quantized, tmp_path, text):
    """The gate of docs/VERIFY.md on prose the model learned from and prose it
    never saw: plain RTN 4 bits (bit for bit the reference: its pass skips
    the second model) and its --fit mse conversion pass; 2 bits fail the
    floor; 4 bits with +-5% noise on every scale fail against the reference."""
    rc, k = kld_check(quantized[4], text)
    assert rc == 0 and k["status"] == "pass" and k["figures"]["identical_to_reference"] is True, k
    assert k["figures"]["kld_ratio"] == 1 and "identical to the RTN reference" in k["message"]
    fit = tmp_path / "fit"
    run([tool("kintsugi-convert"), MODEL, str(fit), "-q", "--fit", "mse"])
    rc, k = kld_check(str(fit), text)
    assert rc == 0 and k["status"] == "pass" and k["figures"]["identical_to_reference"] is False, k
    assert k["figures"]["reference_rtn_kld_mean"] > 0 and k["figures"]["kld_ratio"] < 1.3, k
    rc, k = kld_check(quantized[2], text, "--allow-differs")
    assert rc == 1 and k["status"] == "fail" and "broken on this text" in k["message"], k
    noisy = noisy_copy(quantized[4], tmp_path / "noisy", 0.05, False, 1)
    rc, k = kld_check(noisy, text, "--allow-differs")
    assert rc == 1 and k["status"] == "fail" and k["figures"]["kld_ratio"] > 1.3, k
    assert k["figures"]["kld_ratio_z"] >= 3 and "the reference's (max 1.30x)" in k["message"], k


def test_a_short_text_warns_where_it_cannot_tell(quantized, tmp_path):
    """Worse than the reference beyond the bound, on a text too short for the
    difference to be sure: a warning naming that, not a verdict."""
    noisy = noisy_copy(quantized[4], tmp_path / "noisy", 0.02, False, 1)
    text = tmp_path / "short.txt"
    text.write_text(open(PROSE[0], encoding="utf-8").read().split("\n\n")[0], encoding="utf-8")
    rc, k = kld_check(noisy, str(text), "--allow-differs", "--max-kld-ratio", "1.0001")
    fig = k["figures"]
    if fig["kld_ratio"] > 1.0001 and fig["kld_ratio_z"] < 3:
        assert rc == 0 and k["status"] == "warn" and "not surely worse" in k["message"], k
    else:
        assert k["status"] == ("fail" if fig["kld_ratio"] > 1.0001 else "pass"), k


def lm_eval_loglikelihood(model, tok, context, continuation):
    """lm-eval's HFLM: _encode_pair (trailing whitespace of the context moved to
    the continuation; the continuation = the whole's tokens past the context's
    encoding), no special tokens, the model fed context + continuation minus
    its last token."""
    n = len(context) - len(context.rstrip())
    if n:
        context, continuation = context[:-n], context[-n:] + continuation
    whole = tok.encode(context + continuation, add_special_tokens=False).ids
    ctx = tok.encode(context, add_special_tokens=False).ids
    cont = whole[len(ctx):]
    logits = model(mx.array([(ctx + cont)[:-1]]))[0]
    lp = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
    return float(mx.sum(lp[mx.arange(len(ctx) - 1, len(ctx) + len(cont) - 1), mx.array(cont)]).item())


def test_generic_choices_are_context_plus_choice(tmp_path):
    """The generic form: exactly context + choice, nothing between (the
    context's trailing space moves into the continuation, as lm-eval does)."""
    from mlx_lm import load
    from tokenizers import Tokenizer
    items = [{"context": "The capital of France is", "choices": [" Paris.", " Rome.", " Tokyo."], "answer": 0},
             {"context": "日本の首都は", "choices": ["東京です。", "パリです。"], "answer": 0},
             {"context": "3 + 4 = ", "choices": ["7.", "8.", "12."], "answer": 0}]
    f = tmp_path / "items.jsonl"
    f.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
    ours = json.loads(run([RUN, MODEL, "--choices", str(f), "--json", "-q"]).stdout)
    model, _ = load(MODEL)
    model.set_dtype(mx.float32)
    tok = Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json"))
    for item, res in zip(items, ours["results"]):
        ll = [lm_eval_loglikelihood(model, tok, item["context"], c) for c in item["choices"]]
        assert np.abs(np.array(ll) - res["loglikelihoods"]).max() < 1e-3
        # acc_norm as lm-eval's multiple_choice computes it: divided by the choice's length in characters
        assert res["choice_norm"] == int(np.argmax(np.array(ll) / np.array([len(c) for c in item["choices"]])))
    assert ours["format"] == "generic" and ours["items"] == 3


def accuracy(path, extra=()):
    return json.loads(run([RUN, path, "--choices", os.path.join(DATA, "choices.jsonl"), "--json", "-q", *extra]).stdout)


@pytest.mark.figures
def test_accuracy_table(quantized):
    """The figures of docs/TRAINED-MODEL.md's table: above chance (0.20) for
    the original, 8 bits equal to it, 3 bits clearly below it. (The model
    learned the multiple-choice drills only weakly: see that page.)"""
    acc = {"bf16": accuracy(MODEL)["acc"], **{b: accuracy(p)["acc"] for b, p in quantized.items()}}
    assert acc["bf16"] >= 0.30, acc
    assert abs(acc[8] - acc["bf16"]) <= 0.02, acc
    assert acc[3] <= acc["bf16"] - 0.05, acc


@pytest.mark.figures
def test_verify_choices_gate(quantized, tmp_path):
    f = os.path.join(DATA, "choices.jsonl")
    r4 = run([VERIFY, quantized[4], "--original", MODEL, "--choices", f, "--json"], check=False)
    c4 = next(c for c in json.loads(r4.stdout)["checks"] if c["name"] == "choices")
    assert r4.returncode == 0 and c4["status"] == "pass" and c4["figures"]["original_acc"] >= 0.3, c4
    assert c4["figures"]["reference_rtn_acc"] == c4["figures"]["acc"]  # bit for bit the reference
    # 3 bits lose points against the original, as the RTN reference at 3 bits does: not the conversion's fault
    r = run([VERIFY, quantized[3], "--original", MODEL, "--choices", f, "--json"], check=False)
    c3 = next(c for c in json.loads(r.stdout)["checks"] if c["name"] == "choices")
    assert c3["figures"]["accuracy_drop"] > 5 and c3["figures"]["accuracy_drop_vs_reference"] == 0, c3
    assert c3["status"] == "pass" and r.returncode == 0, c3
    # scales and biases with +-30% noise: surely below the reference, the gate fails
    noisy = noisy_copy(quantized[4], tmp_path / "noisy", 0.3, True, 3)
    r = run([VERIFY, noisy, "--original", MODEL, "--choices", f, "--json", "--allow-differs", "--max-rel-rmse", "10"],
            check=False)
    c = next(c for c in json.loads(r.stdout)["checks"] if c["name"] == "choices")
    assert c["figures"]["accuracy_drop_vs_reference"] > 5 and c["figures"]["accuracy_drop_vs_reference_z"] >= 3, c
    assert c["status"] == "fail" and r.returncode == 1, c


def test_verify_choices_figures_are_kintsugi_runs(quantized, tmp_path):
    """verify --choices scores both models as kintsugi-run --choices does (a
    sample: the gate's figures on the whole set are test_verify_choices_gate)."""
    f = tmp_path / "items.jsonl"
    f.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in jsonl("choices.jsonl")[:12]),
                 encoding="utf-8")
    r = run([VERIFY, quantized[4], "--original", MODEL, "--choices", str(f), "--json"], check=False)
    assert r.returncode in (0, 1), r.stderr
    fig = next(c for c in json.loads(r.stdout)["checks"] if c["name"] == "choices")["figures"]
    mine = json.loads(run([RUN, quantized[4], "--choices", str(f), "--json", "-q"]).stdout)
    orig = json.loads(run([RUN, MODEL, "--choices", str(f), "--json", "-q"]).stdout)
    assert fig["items"] == 12 and fig["activations"] == "f32"
    assert (fig["acc"], fig["acc_norm"]) == pytest.approx((mine["acc"], mine["acc_norm"]), abs=1e-9)
    assert (fig["original_acc"], fig["original_acc_norm"]) == pytest.approx((orig["acc"], orig["acc_norm"]), abs=1e-9)
    assert fig["accuracy_drop"] == pytest.approx(100 * (orig["acc"] - mine["acc"]), abs=1e-6)


@pytest.mark.parametrize("line,problem", [
    ('{"question": "q", "choice0": "a"', "invalid JSON"),
    ('{"question": "q", "choice0": "a", "choice1": "b", "choice2": "c", "choice3": "d", "choice4": "e", "label": 5}',
     '"label" is 5, not a choice (0 to 4)'),
    ('{"question": "q", "choice0": "a", "choice1": "", "choice2": "c", "choice3": "d", "choice4": "e", "label": 1}',
     "choice 1 is empty"),
    ('[1, 2]', "not a JSON object"),
    ('{"context": "x", "choices": ["a", "b"], "answer": 0}', "a generic item in a file of JCommonsenseQA items"),
])
def test_a_bad_item_is_one_line_naming_file_and_line(tmp_path, line, problem):
    good = json.dumps(jsonl("choices.jsonl")[0], ensure_ascii=False)
    f = tmp_path / "bad.jsonl"
    f.write_text(good + "\n\n" + line + "\n", encoding="utf-8")
    msg = one_line_error(run([RUN, MODEL, "--choices", str(f)], check=False), "kintsugi-run", 1)
    assert f"{f}:3: " in msg and problem in msg, msg
    msg = one_line_error(run([VERIFY, MODEL, "--original", MODEL, "--choices", str(f)], check=False),
                         "kintsugi-verify", 2)
    assert f"{f}:3: " in msg and problem in msg, msg


def test_a_context_longer_than_the_window_is_named(tmp_path):
    f = tmp_path / "long.jsonl"
    f.write_text(json.dumps({"context": "word " * 300, "choices": ["a", "b"], "answer": 0}) + "\n")
    msg = one_line_error(run([RUN, MODEL, "--choices", str(f), "--context", "64"], check=False), "kintsugi-run", 1)
    assert f"{f}:1: " in msg and "more than the context window of 64" in msg, msg


def test_card_writes_its_section_and_nothing_else(quantized, tmp_path):
    """verify --card: the quality table between its markers in the user's
    README.md, the rest byte for byte; a second run replaces the section in
    place; the JSON report's quality rows are the card's figures."""
    import shutil
    import jsonschema
    conv = tmp_path / "conv"
    shutil.copytree(quantized[4], conv)
    head, tail = "# My conversion\n\nNotes I wrote.\n\n", "\n## License\n\nMine.\n"
    readme = conv / "README.md"
    readme.write_text(head + tail, encoding="utf-8")
    text = tmp_path / "prose.txt"
    text.write_text(open(PROSE[0], encoding="utf-8").read().split("\n\n")[0], encoding="utf-8")
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in jsonl("choices.jsonl")[:6]),
                     encoding="utf-8")
    args = [VERIFY, str(conv), "--original", MODEL, "--kld", str(text), "--choices", str(items), "--card", "--json"]
    r = run(args, check=False)
    report = json.loads(r.stdout)
    jsonschema.validate(report, json.load(open(os.path.join(ROOT, "docs", "verify-report.schema.json"))))
    rows = {q["unit"]: q for q in report["quality"]}
    card = readme.read_text(encoding="utf-8")
    begin, end = "<!-- kintsugi-verify quality: begin", "<!-- kintsugi-verify quality: end -->\n"
    assert card.startswith(head) and card.index(begin) > 0 and card.count(begin) == 1
    # appended after the whole card the user wrote, which is unchanged
    assert card[:card.index(begin)] == head + tail + "\n" and card.endswith(end)
    ppl, acc = rows["perplexity"], rows["accuracy"]
    kld = next(c for c in report["checks"] if c["name"] == "kld")["figures"]
    assert ppl["converted"] == kld["word_perplexity"] and ppl["original"] == kld["reference_word_perplexity"]
    assert ppl["reference_rtn"] == ppl["converted"]  # bit for bit the reference
    assert f"| {ppl['original']:.2f} | {ppl['converted']:.2f} | {ppl['degradation']:+.1f}% |" in card
    assert f"| {100 * acc['original']:.1f}% | {100 * acc['converted']:.1f}% | {-acc['degradation']:+.1f} points |" in card
    assert acc["verdict"] == ("Pass" if acc["degradation"] <= 2 else "Warn") and "Verdict: Pass when" in card
    assert str(text) in card and str(items) in card and "6 items, 0-shot" in card
    # a second run: the section replaced where it stands, the file otherwise the same
    edited = card.replace(head, head + "More notes.\n")
    readme.write_text(edited, encoding="utf-8")
    run(args, check=False)
    again = readme.read_text(encoding="utf-8")
    assert again == edited and again.count(begin) == 1


def test_card_needs_figures_and_a_readable_file(quantized, tmp_path):
    r = run([VERIFY, quantized[4], "--card"], check=False)
    assert r.returncode == 2 and "--card changes nothing without --kld or --choices" in r.stderr


@pytest.mark.parametrize("content,problem", [
    ('{"page": "a"}\n{"text": 3}\n', "pages.jsonl:2: expected an object with a string \"page\""),
    ('{"page": "a"}\nnot json\n', "pages.jsonl:2: not JSON"),
    ('\n\n', "pages.jsonl: no documents"),
])
def test_a_bad_documents_file_is_one_line(tmp_path, content, problem):
    f = tmp_path / "pages.jsonl"
    f.write_text(content, encoding="utf-8")
    r = run([RUN, MODEL, "--perplexity", str(f)], check=False)
    assert r.returncode == 1 and problem in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_card_is_left_alone_when_nothing_was_measured(quantized, tmp_path):
    import shutil
    conv = tmp_path / "conv"
    shutil.copytree(quantized[4], conv)
    (conv / "README.md").write_text("# mine\n", encoding="utf-8")
    r = run([VERIFY, str(conv), "--original", MODEL, "--kld", str(tmp_path / "missing.txt"), "--card"], check=False)
    assert r.returncode == 1 and "nothing was measured" in r.stderr
    assert (conv / "README.md").read_text(encoding="utf-8") == "# mine\n"
