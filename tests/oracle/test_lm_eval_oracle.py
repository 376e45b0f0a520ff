"""lm-evaluation-harness 0.4.11 run for real, as the oracle of kintsugi's
evaluation: its own wikitext and ja_leaderboard_jcommonsenseqa task
definitions (included from the installed package, only the data made local),
over a small lm-eval model class that runs mlx-lm's nemotron_h in float32 and
makes its requests as lm-eval's Hugging Face class does (TemplateLM's
loglikelihood, utils.get_rolling_token_windows for the rolling windows). No
download: the documents and items are this project's, written as JSON Lines.

kintsugi-run --perplexity must give lm-eval's word perplexity, byte
perplexity and bits per byte to 1e-4 relative, and --choices its acc exactly;
verify's mean KL must equal one computed here from mlx-lm's logits."""
import json
import os

import mlx.core as mx
import numpy as np
import pytest

from conftest import TESTTOOL, run, tool

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "testdata/trained/model")
DATA = os.path.join(ROOT, "testdata/trained/data")
RUN, VERIFY, CONVERT = tool("kintsugi-run"), tool("kintsugi-verify"), tool("kintsugi-convert")

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def lm_eval_class():
    from lm_eval.api.model import TemplateLM
    from lm_eval import utils

    class MLXFloat32(TemplateLM):
        """mlx-lm's model in float32, its requests built as HFLM builds them
        (tokens without special tokens, <s> as the prefix token)."""

        def __init__(self, path, max_length):
            super().__init__()
            from mlx_lm import load
            self.model, self.tokenizer = load(path)
            self.model.set_dtype(mx.float32)
            self._max_length = max_length

        @property
        def eot_token_id(self):
            return self.tokenizer.eos_token_id

        @property
        def prefix_token_id(self):
            return self.tokenizer.bos_token_id

        @property
        def max_length(self):
            return self._max_length

        def tok_encode(self, string, add_special_tokens=None, **kw):
            return self.tokenizer.encode(string, add_special_tokens=False)

        def logprobs(self, tokens):
            logits = self.model(mx.array([tokens]))[0].astype(mx.float32)
            return np.array(logits - mx.logsumexp(logits, axis=-1, keepdims=True), dtype=np.float64)

        def _loglikelihood_tokens(self, requests, disable_tqdm=False, **kw):
            out = []
            for _, context, continuation in requests:
                whole = (context + continuation)[-(self.max_length + 1):]
                lp = self.logprobs(whole[:-1])[-len(continuation):]
                out.append((float(sum(lp[i, t] for i, t in enumerate(continuation))),
                            bool(all(lp[i].argmax() == t for i, t in enumerate(continuation)))))
            return out

        def loglikelihood_rolling(self, requests, disable_tqdm=False):
            sums = []
            for (text,) in [r.args for r in requests]:
                windows = map(utils.make_disjoint_window,
                              utils.get_rolling_token_windows(token_list=self.tok_encode(text),
                                                              prefix_token=self.prefix_token_id,
                                                              max_seq_len=self.max_length, context_len=1))
                sums.append(sum(ll for ll, _ in self._loglikelihood_tokens([(None, a, b) for a, b in windows])))
            return sums

        def generate_until(self, requests, disable_tqdm=False):
            raise NotImplementedError("not needed by these tasks")

    return MLXFloat32


def lm_eval_tasks_dir():
    import lm_eval
    return os.path.join(os.path.dirname(lm_eval.__file__), "tasks")


def simple_evaluate(model_dir, max_length, task_yaml_dir, task, num_fewshot=None):
    import lm_eval
    from lm_eval.tasks import TaskManager
    lm = lm_eval_class()(model_dir, max_length)
    res = lm_eval.simple_evaluate(model=lm, tasks=[task], task_manager=TaskManager(include_path=str(task_yaml_dir)),
                                  num_fewshot=num_fewshot, log_samples=True, bootstrap_iters=0)
    return res["results"][task], res["samples"][task]


# WikiText-style pages (the raw form lm-eval's detokenizer undoes: " @-@ ",
# " , ", "= = heading = =", spaced brackets and quotes), made from the trained
# model's held-out prose and the prose it never saw.
def wikitext_pages():
    prose = open(os.path.join(DATA, "prose-heldout.txt"), encoding="utf-8").read().split("\n\n")
    unseen = [open(os.path.join(DATA, f"prose-unseen-{lang}.txt"), encoding="utf-8").read() for lang in ("en", "ja")]

    def raw(text):
        for a, b in ((",", " ,"), (".", " ."), (";", " ;"), ("-", " @-@ "), ("'s", " 's")):
            text = text.replace(a, b)
        return text

    pages = [" = Facts = \n \n " + " \n ".join(raw(p) for p in prose[:8]) + " \n",
             " = = Places ( and numbers ) = = \n " + raw(" ".join(prose[8:14])) + ' " quoted " 3 @.@ 5 , 1 @,@ 000 \n',
             raw(unseen[0]), unseen[1]]
    return [{"page": p} for p in pages]


WIKITEXT_YAML = """include: {tasks}/wikitext/wikitext.yaml
task: kt_wikitext
dataset_path: json
dataset_name: null
dataset_kwargs:
  data_files:
    test: {data}
training_split: null
validation_split: null
test_split: test
"""

JCQA_YAML = """include: {tasks}/japanese_leaderboard/ja_leaderboard_jcommonsenseqa.yaml
task: kt_jcqa
dataset_path: json
dataset_name: null
dataset_kwargs:
  data_files:
    train: {train}
    validation: {validation}
"""


@pytest.fixture(scope="module")
def q4(tmp_path_factory):
    out = tmp_path_factory.mktemp("lm-eval") / "q4"
    run([CONVERT, MODEL, str(out), "-q"])
    return str(out)


@pytest.mark.figures
@pytest.mark.parametrize("which,max_length", [("bf16", 131072), ("4-bit", 48)])
def test_wikitext_perplexity_equals_lm_eval(q4, tmp_path, which, max_length):
    """lm-eval's wikitext task (detokenizer, word and byte counts on the raw
    page, rolling windows) on local pages: the original with whole documents
    in one window, its 4-bit conversion in rolling windows of 48."""
    data = tmp_path / "pages.jsonl"
    data.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in wikitext_pages()), encoding="utf-8")
    (tmp_path / "kt_wikitext.yaml").write_text(WIKITEXT_YAML.format(tasks=lm_eval_tasks_dir(), data=data))
    for path in (MODEL if which == "bf16" else q4,):
        theirs, samples = simple_evaluate(path, max_length, tmp_path, "kt_wikitext")
        ours = json.loads(run([RUN, path, "--perplexity", str(data), "--window", str(max_length), "--json", "-q"]).stdout)
        assert ours["documents"] == len(samples) == 4
        for metric in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
            assert ours[metric] == pytest.approx(theirs[metric + ",none"], rel=1e-4), metric
        # the same words and bytes: lm-eval's per-document counts
        assert ours["words"] == sum(s["word_perplexity"][1] for s in samples)
        assert ours["bytes"] == sum(s["byte_perplexity"][1] for s in samples)


def test_wikitext_detokenizer_equals_lm_eval(tmp_path):
    """The C detokenizer against lm-eval's wikitext_detokenizer, on the pages
    and on the cases its regular expressions treat specially."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("pw", os.path.join(lm_eval_tasks_dir(), "wikitext/preprocess_wikitext.py"))
    pw = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pw)
    cases = [p["page"] for p in wikitext_pages()] + [
        "a /' 5/ b", "( x ( y ) z )", "[ a ]  [b ]", "{  c }", '" q "  " r"', "' s ' t '", "= = = = A = = = =",
        "10 ° C", " N  N ", "it 's  the boys ' toys", "\u3000( 全角 \u3000)", "line \n next \n", ""]
    texts = "".join(json.dumps({"text": c}, ensure_ascii=False) + "\n" for c in cases)
    f = tmp_path / "t.jsonl"
    f.write_text(texts, encoding="utf-8")
    got = json.loads(run([TESTTOOL, "detokenize", str(f)]).stdout)
    assert got == [pw.wikitext_detokenizer({"page": c}) for c in cases]


def jcqa_items(n, offset=0):
    items = [json.loads(line) for line in open(os.path.join(DATA, "choices.jsonl"), encoding="utf-8")]
    return items[offset:offset + n]


def their_lls(sample):
    """The log-likelihood of each choice from lm-eval's logged responses."""
    return [float(r[0][0]) if isinstance(r[0], (list, tuple)) else float(r[0]) for r in sample["resps"]]


@pytest.mark.figures
@pytest.mark.parametrize("shots", [0, 3])
def test_jcommonsenseqa_acc_equals_lm_eval(q4, tmp_path, shots):
    """ja_leaderboard_jcommonsenseqa (its prompt, description, target
    delimiter; 3-shot from the train split) on local items: acc exactly, and
    every choice's log-likelihood. lm-eval draws each item's examples from the
    train split in an order of its own; kintsugi takes the first K items of
    its file for every item, so with examples each item is scored from a file
    holding the examples in the order lm-eval logged for it."""
    n = 8 if shots == 0 else 3
    train, val = tmp_path / "train.jsonl", tmp_path / "validation.jsonl"
    shot_pool = jcqa_items(3, offset=90)
    items = jcqa_items(n)
    train.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in shot_pool), encoding="utf-8")
    val.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
    (tmp_path / "kt_jcqa.yaml").write_text(JCQA_YAML.format(tasks=lm_eval_tasks_dir(), train=train, validation=val))
    f = tmp_path / "ours.jsonl"
    for path in (MODEL, q4):
        theirs, samples = simple_evaluate(path, 131072, tmp_path, "kt_jcqa", num_fewshot=shots)
        samples = sorted(samples, key=lambda s: s["doc_id"])
        assert len(samples) == n
        if shots == 0:
            f.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
            results = json.loads(run([RUN, path, "--choices", str(f), "--json", "-q"]).stdout)["results"]
        else:
            results = []
            for s, item in zip(samples, items):
                context = s["arguments"][0][0]
                order = sorted(shot_pool, key=lambda it: context.find("\n" + it["question"] + "\n"))
                assert all(context.find("\n" + it["question"] + "\n") >= 0 for it in order)
                f.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in order + [item]),
                             encoding="utf-8")
                results += json.loads(run([RUN, path, "--choices", str(f), "--num-fewshot", "3", "--json",
                                           "-q"]).stdout)["results"]
        for s, res in zip(samples, results):
            assert res["loglikelihoods"] == pytest.approx(their_lls(s), abs=2e-3)
            assert res["choice"] == int(np.argmax(their_lls(s)))
        acc = sum(res["choice"] == res["answer"] for res in results) / n
        assert acc == theirs["acc,none"]


def mlx_kld(candidate, original, ids, window, prefix=1):
    """Mean KL(P_original || P_candidate) per token over lm-eval's windows,
    from mlx-lm's float32 logits, in float64 here."""
    from lm_eval import utils
    from mlx_lm import load
    models = []
    for path in (candidate, original):
        m, _ = load(path)
        m.set_dtype(mx.float32)
        models.append(m)
    total, n = 0.0, 0
    for a, b in map(utils.make_disjoint_window, utils.get_rolling_token_windows(ids, prefix, window, 1)):
        inp = (a + b)[-(window + 1):][:-1]
        lp = []
        for m in models:
            logits = np.array(m(mx.array([inp]))[0].astype(mx.float32), dtype=np.float64)[-len(b):]
            shifted = logits - logits.max(-1, keepdims=True)
            lp.append(shifted - np.log(np.exp(shifted).sum(-1, keepdims=True)))
        p = np.exp(lp[1])
        total += float((p * (lp[1] - lp[0])).sum())
        n += len(b)
    return total / n


@pytest.mark.parametrize("window", [131072, 64])
def test_verify_kld_equals_an_independent_computation(q4, tmp_path, window):
    from tokenizers import Tokenizer
    text = open(os.path.join(DATA, "prose-unseen-en.txt"), encoding="utf-8").read()
    f = tmp_path / "text.txt"
    f.write_text(text, encoding="utf-8")
    r = run([VERIFY, q4, "--original", MODEL, "--kld", str(f), "--window", str(window), "--json"], check=False)
    fig = next(c for c in json.loads(r.stdout)["checks"] if c["name"] == "kld")["figures"]
    ids = Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json")).encode(text, add_special_tokens=False).ids
    assert fig["tokens"] == len(ids)
    assert fig["kld_mean"] == pytest.approx(mlx_kld(q4, MODEL, ids, window), rel=2e-3)
