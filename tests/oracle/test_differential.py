"""The gate against the real client: directories broken on purpose, judged by
mlx-lm (mlx_lm.load strict plus one forward pass with finite logits) and by
kintsugi-verify. Every directory mlx-lm rejects must fail verify. Cases where
verify is stricter than mlx-lm are allowed only for the reasons listed in
STRICTER (each one a documented choice, docs/VERIFY.md).

Also the converter: a broken source is either refused before anything is
written, or converted into a directory that both mlx-lm and verify accept.

KT_MUTATIONS (default 0: all of them, a few hundred) caps the number of
mutations; KT_MUTATION_PAIRS adds that many random pairs of them (seed
KT_MUTATION_SEED): `make differential` runs 2,000 pairs.
"""
import collections
import json
import math
import os
import random
import shutil
import subprocess
import sys

import pytest

import stfile
from conftest import SANITIZED, run, tool

HERE = os.path.dirname(os.path.abspath(__file__))
VERIFY, CONVERT = tool("kintsugi-verify"), tool("kintsugi-convert")
SEED = int(os.environ.get("KT_MUTATION_SEED", "0"))

# Verify may be stricter than mlx-lm here, and only here (docs/VERIFY.md):
STRICTER = {
    "a tensor twice": "mlx-lm keeps the last copy it loads; which one that is depends on glob order",
    "unlisted shard": "mlx-lm loads it too, and its tensors may silently replace the listed ones",
    "values the runtime bounds": "sizes and counts far beyond any checkpoint, or keys mlx-lm never reads",
    "projection biases": "no released Nemotron-H has them; the runtime does not add them",
    "top-level quantization": "mlx-lm infers each module's bits from its shapes; other loaders read the "
                              "top-level entry, so it must match the tensors",
    "fixup rule": "mlx-lm 0.32 loads it, older mlx-lm, mlx-swift or LM Studio do not (the fixup rule says which)",
    "token ids past the embedding": "the tokenizer can produce an id the model has no row for",
    "tokenizer_config.json": "transformers falls back to defaults; the chat template and eos are lost",
    "index": "mlx-lm ignores the index; a wrong one misleads every other loader",
    "zero scale": "MLX never writes a zero scale (the step has a floor): a zero is corruption",
    "integer where the model computes in float": "mlx-lm casts an integer norm or A_log silently; no converter "
                                                 "writes one",
}


class Judge:
    """mlx_verdict.py in a worker process, restarted when it dies."""

    def __init__(self):
        self.p = None

    def start(self):
        self.p = subprocess.Popen([sys.executable, os.path.join(HERE, "mlx_verdict.py")], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.p.stdout.readline().strip() == "ready", "the mlx-lm worker did not start"

    def __call__(self, path):
        if self.p is None or self.p.poll() is not None:
            self.start()
        self.p.stdin.write(path + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:  # the process died: a crash is a rejection too
            self.p = None
            return "reject: the mlx-lm process died"
        return line.strip()

    def close(self):
        if self.p:
            self.p.stdin.close()
            self.p.wait(timeout=60)


@pytest.fixture(scope="module")
def judge():
    j = Judge()
    yield j
    j.close()


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """A tiny conversion in three shards, and a MoE one, with their sources."""
    root = tmp_path_factory.mktemp("diff")
    out = {}
    for name, opts in (("dense", []), ("moe", ["--moe"])):
        src = str(root / f"{name}-hf")
        run([tool("kintsugi-testdata"), *opts, src])
        mlx = str(root / f"{name}-mlx")
        run([CONVERT, src, mlx, "--quiet", "--shard-size", "300KB"])
        out[name] = (src, mlx)
    return out


# ---- helpers that edit a directory ----

def load_json(d, name):
    with open(os.path.join(d, name)) as f:
        return json.load(f)


def save_json(d, name, obj):
    with open(os.path.join(d, name), "w") as f:
        json.dump(obj, f, indent=4)


def edit_json(name, fn):
    """A mutation: FN edits the parsed file NAME in place."""
    def apply(d):
        obj = load_json(d, name)
        fn(obj)
        save_json(d, name, obj)
    return apply


def edit_config(fn):
    return edit_json("config.json", fn)


def set_key(key, value):
    def fn(cfg):
        if value is DELETE:
            cfg.pop(key, None)
        else:
            cfg[key] = value(cfg.get(key)) if callable(value) else value
    return edit_config(fn)


DELETE = object()


def shards(d):
    return sorted(f for f in os.listdir(d) if f.startswith("model") and f.endswith(".safetensors"))


def edit_tensor(name, fn):
    """FN(entry) edits [dtype, shape, bytes] in place, or returns "delete"."""
    def apply(d):
        for s in shards(d):
            path = os.path.join(d, s)
            tensors, meta = stfile.read(path)
            if name in tensors:
                if fn(tensors[name]) == "delete":
                    del tensors[name]
                    idx = load_json(d, "model.safetensors.index.json")
                    idx["weight_map"].pop(name, None)
                    save_json(d, "model.safetensors.index.json", idx)
                stfile.write(path, {k: tuple(v) for k, v in tensors.items()}, meta)
                return
        raise AssertionError(f"no tensor {name}")
    return apply


def first_tensor(d, suffix):
    for s in shards(d):
        for name in stfile.read(os.path.join(d, s))[0]:
            if name.endswith(suffix):
                return name
    raise AssertionError(suffix)


def poison(value_bytes):
    def fn(e):
        e[2] = value_bytes + e[2][len(value_bytes):]
    return fn


BF16_NAN, BF16_INF, BF16_ZERO = b"\xc0\x7f", b"\x80\x7f", b"\x00\x00"


def add_extra_tensor(d):
    """A tensor no layer uses, in the first shard and the index."""
    s = os.path.join(d, shards(d)[0])
    tensors, meta = stfile.read(s)
    tensors["backbone.layers.0.mixer.extra.weight"] = ["BF16", [2, 2], b"\x00" * 8]
    stfile.write(s, {k: tuple(v) for k, v in tensors.items()}, meta)
    idx = load_json(d, "model.safetensors.index.json")
    idx["weight_map"]["backbone.layers.0.mixer.extra.weight"] = shards(d)[0]
    save_json(d, "model.safetensors.index.json", idx)


# ---- the mutations: (class, description, function of the directory) ----

def config_mutations(base_cfg, moe):
    out = []
    ints = ["hidden_size", "vocab_size", "intermediate_size", "max_position_embeddings", "num_attention_heads",
            "num_key_value_heads", "head_dim", "mamba_num_heads", "mamba_head_dim", "ssm_state_size", "conv_kernel",
            "n_groups", "num_hidden_layers"]
    if moe:
        ints = ["n_routed_experts", "num_experts_per_tok", "moe_intermediate_size",
                "moe_shared_expert_intermediate_size", "n_group", "topk_group", "n_shared_experts"]
    for k in ints:
        v = base_cfg.get(k)
        for desc, val in [("deleted", DELETE), ("null", None), ("a string", str(v)), ("negative", -(v or 1)),
                          ("zero", 0), ("1e12", 10 ** 12), ("plus one", (v or 0) + 1), ("doubled", 2 * (v or 1)),
                          ("a fraction", (v or 0) + 0.5), ("true", True), ("a float", float(v or 0)),
                          ("a list", [v]), ("33554436", 33554436), ("536870944", 536870944)]:
            out.append(("config values", f"{k} {desc}", set_key(k, val)))
    if moe:
        for desc, val in [("deleted", DELETE), ("zero", 0.0), ("a string", "2.5"), ("negative", -1.0)]:
            out.append(("config values", f"routed_scaling_factor {desc}", set_key("routed_scaling_factor", val)))
        for desc, val in [("a string", "yes"), ("deleted", DELETE)]:
            out.append(("config values", f"norm_topk_prob {desc}", set_key("norm_topk_prob", val)))
        out.append(("config values", "moe_latent_size set", set_key("moe_latent_size", 64)))
        return out
    for k in ["attention_bias", "mamba_proj_bias", "mlp_bias", "use_bias", "use_conv_bias"]:
        for desc, val in [("deleted", DELETE), ("flipped", lambda v: not v), ("a string", "false"), ("zero", 0)]:
            out.append(("config values", f"{k} {desc}", set_key(k, val)))
    for desc, val in [("deleted", DELETE), ("-1", -1), ("0", 0), ("a string", "1e-5"), ("null", None), ("1e300", 1e300),
                      ("NaN", float("nan")), ("Infinity", float("inf")), ("2.0", 2.0)]:
        out.append(("config values", f"layer_norm_epsilon {desc}", set_key("layer_norm_epsilon", val)))
    for desc, val in [("deleted", DELETE), ("null", None), ("a string", "inf"), ("reversed", [1.0, 0.0]), ("short", [0.0]),
                      ("tagged", [0.0, {"__float__": "Infinity"}]), ("negative", [-1.0, 1.0]),
                      ("NaN", [float("nan"), 1.0]), ("an object", {"a": 1}), ("strings", ["0", "inf"])]:
        out.append(("config values", f"time_step_limit {desc}", set_key("time_step_limit", val)))
    for desc, val in [("deleted", DELETE), ("llama", "llama"), ("empty", ""), ("a number", 5), ("nemotron-h", "nemotron-h")]:
        out.append(("config values", f"model_type {desc}", set_key("model_type", val)))
    pat = base_cfg["hybrid_override_pattern"]
    for desc, val in [("XXXXXX", "X" * len(pat)), ("empty", ""), ("one short", pat[:-1]), ("one long", pat + "-"),
                      ("a list", list(pat)), ("lower case", pat.lower()), ("a number", 42), ("deleted", DELETE),
                      ("rotated", pat[1:] + pat[0]), ("all Mamba", "M" * len(pat))]:
        out.append(("layer pattern", f"hybrid_override_pattern {desc}", set_key("hybrid_override_pattern", val)))
    names = {"M": "mamba", "*": "attention", "-": "mlp", "E": "moe"}

    def block_types(cfg, wrong=False):
        cfg.pop("hybrid_override_pattern")
        kinds = [names[c] for c in pat]
        if wrong:
            kinds[0] = "transformer"
        cfg["layers_block_type"] = kinds
    out.append(("layer pattern", "layers_block_type instead", edit_config(lambda c: block_types(c))))
    out.append(("layer pattern", "layers_block_type with an unknown kind", edit_config(lambda c: block_types(c, True))))
    return out


def quantization_mutations():
    def q(fn):
        def g(cfg):
            fn(cfg["quantization"])
            cfg["quantization_config"] = dict(cfg["quantization"]) if isinstance(cfg["quantization"], dict) else cfg["quantization"]
        return edit_config(g)
    out = [
        ("quantization", "bits deleted", q(lambda e: e.pop("bits"))),
        ("quantization", "group_size deleted", q(lambda e: e.pop("group_size"))),
        ("quantization", "bits a string", q(lambda e: e.update(bits="4"))),
        ("quantization", "group_size a string", q(lambda e: e.update(group_size="64"))),
        ("quantization", "group_size 1e12", q(lambda e: e.update(group_size=10 ** 12))),
        ("quantization", "group_size 0", q(lambda e: e.update(group_size=0))),
        ("quantization", "group_size 32", q(lambda e: e.update(group_size=32))),
        ("quantization", "bits 7", q(lambda e: e.update(bits=7))),
        ("quantization", "bits 8", q(lambda e: e.update(bits=8))),
        ("quantization", "bits 16", q(lambda e: e.update(bits=16))),
        ("quantization", "bits 4.0", q(lambda e: e.update(bits=4.0))),
        ("quantization", "mode mxfp4", q(lambda e: e.update(mode="mxfp4"))),
        ("quantization", "mode affine", q(lambda e: e.update(mode="affine"))),
        ("quantization", "per-layer lm_head 8-bit", q(lambda e: e.update({"lm_head": {"bits": 8, "group_size": 64}}))),
        ("quantization", "per-layer lm_head false", q(lambda e: e.update({"lm_head": False}))),
        ("quantization", "per-layer garbage", q(lambda e: e.update({"lm_head": "x"}))),
        ("quantization", "per-layer without bits", q(lambda e: e.update({"lm_head": {"group_size": 64}}))),
        ("quantization", "quantization deleted", edit_config(lambda c: c.pop("quantization"))),
        ("quantization", "quantization_config deleted", edit_config(lambda c: c.pop("quantization_config"))),
        ("quantization", "both deleted", edit_config(lambda c: (c.pop("quantization"), c.pop("quantization_config")))),
        ("quantization", "quantization a string", edit_config(lambda c: c.update(quantization="4bit"))),
        ("quantization", "quantization null", edit_config(lambda c: c.update(quantization=None))),
        ("quantization", "twins disagree", edit_config(lambda c: c["quantization_config"].update(bits=8))),
    ]
    return out


def tokenizer_mutations():
    def write(name, data):
        def f(d):
            with open(os.path.join(d, name), "wb") as fh:
                fh.write(data)
        return f

    def remove(name):
        return lambda d: os.remove(os.path.join(d, name))

    def truncate(name):
        def f(d):
            p = os.path.join(d, name)
            data = open(p, "rb").read()
            open(p, "wb").write(data[:len(data) // 2])
        return f

    def edit_tok(fn):
        return edit_json("tokenizer.json", fn)

    def edit_tc(fn):
        return edit_json("tokenizer_config.json", fn)
    return [
        ("tokenizer", "tokenizer.json deleted", remove("tokenizer.json")),
        ("tokenizer", "tokenizer.json empty", write("tokenizer.json", b"")),
        ("tokenizer", "tokenizer.json truncated", truncate("tokenizer.json")),
        ("tokenizer", "tokenizer.json not JSON", write("tokenizer.json", b"not json")),
        ("tokenizer", "tokenizer.json {}", write("tokenizer.json", b"{}")),
        ("tokenizer", "tokenizer.json without model", edit_tok(lambda t: t.pop("model"))),
        ("tokenizer", "tokenizer.json without merges", edit_tok(lambda t: t["model"].pop("merges"))),
        ("tokenizer", "tokenizer.json model type WordPiece", edit_tok(lambda t: t["model"].update(type="WordPiece"))),
        ("tokenizer", "tokenizer_config.json deleted", remove("tokenizer_config.json")),
        ("tokenizer", "tokenizer_config.json truncated", truncate("tokenizer_config.json")),
        ("tokenizer", "tokenizer_config.json a list", write("tokenizer_config.json", b"[]")),
        ("tokenizer", "tokenizer_class TokenizersBackend",
         edit_tc(lambda t: t.update(tokenizer_class="TokenizersBackend"))),
        ("tokenizer", "tokenizer_class unknown", edit_tc(lambda t: t.update(tokenizer_class="NoSuchTokenizer"))),
        ("tokenizer", "chat_template deleted", edit_tc(lambda t: t.pop("chat_template", None))),
    ]


def tensor_mutations(d, moe):
    names = {
        "embedding": "backbone.embeddings.weight",
        "in_proj": first_tensor(d, "mixer.in_proj.weight"),
        "conv1d": first_tensor(d, "conv1d.weight"),
        "A_log": first_tensor(d, "A_log"),
        "norm": first_tensor(d, ".norm.weight"),
        "lm_head scales": "lm_head.scales",
        "biases": first_tensor(d, "q_proj.biases") if not moe else first_tensor(d, "fc1.biases"),
        "norm_f": "backbone.norm_f.weight",
    }
    out = []

    def reshape(fn):
        def f(e):
            e[1] = fn(list(e[1]))
        return f

    def other_dtype(e):
        """bf16 <-> f32 with the same values; packed uint32 relabelled F32."""
        if e[0] == "BF16":
            e[0], e[2] = "F32", b"".join(b"\x00\x00" + e[2][i:i + 2] for i in range(0, len(e[2]), 2))
        elif e[0] == "F32":
            e[0], e[2] = "BF16", b"".join(e[2][i + 2:i + 4] for i in range(0, len(e[2]), 4))
        else:
            e[0] = "F32"

    for label, name in names.items():
        out += [
            ("tensor shapes", f"{label}: a dimension + 1", edit_tensor(name, reshape(lambda s: s[:-1] + [s[-1] + 1]))),
            ("tensor shapes", f"{label}: dimensions swapped", edit_tensor(name, reshape(lambda s: s[::-1]))),
            ("tensor shapes", f"{label}: a dimension added", edit_tensor(name, reshape(lambda s: [1] + s))),
            ("tensor dtypes", f"{label}: another dtype", edit_tensor(name, other_dtype)),
            ("tensor dtypes", f"{label}: labelled I32", edit_tensor(name, lambda e: e.__setitem__(0, "I32")
                                                                   if len(e[2]) % 4 == 0 else None)),
            ("missing and extra tensors", f"{label}: deleted", edit_tensor(name, lambda e: "delete")),
        ]
    for label in ("norm", "A_log", "lm_head scales", "biases", "norm_f", "conv1d"):
        n = names[label]
        out += [("tensor values", f"{label}: a NaN", edit_tensor(n, poison(BF16_NAN))),
                ("tensor values", f"{label}: an infinity", edit_tensor(n, poison(BF16_INF)))]
    out.append(("tensor values", "lm_head scales: a zero", edit_tensor("lm_head.scales", poison(BF16_ZERO))))

    out.append(("missing and extra tensors", "an extra tensor", add_extra_tensor))

    def rm_shard(i):
        return lambda d: os.remove(os.path.join(d, shards(d)[i]))

    def dup_shard(d):
        shutil.copy(os.path.join(d, shards(d)[0]), os.path.join(d, "model-99999-of-99999.safetensors"))

    def rm_index(d):
        os.remove(os.path.join(d, "model.safetensors.index.json"))

    def index_wrong_file(d):
        idx = load_json(d, "model.safetensors.index.json")
        k = sorted(idx["weight_map"])[0]
        others = [s for s in shards(d) if s != idx["weight_map"][k]]
        idx["weight_map"][k] = others[0]
        save_json(d, "model.safetensors.index.json", idx)

    def index_drop(d):
        idx = load_json(d, "model.safetensors.index.json")
        idx["weight_map"].pop(sorted(idx["weight_map"])[0])
        save_json(d, "model.safetensors.index.json", idx)

    def header_garbage(d):
        p = os.path.join(d, shards(d)[-1])
        data = bytearray(open(p, "rb").read())
        data[8:16] = b"{{{{{{{{"
        open(p, "wb").write(bytes(data))

    def truncate_shard(d):
        p = os.path.join(d, shards(d)[-1])
        data = open(p, "rb").read()
        open(p, "wb").write(data[:-100])

    def move_tensor_to_other_shard(d):  # the same tensor in two shards
        a, b = shards(d)[0], shards(d)[1]
        ta, ma = stfile.read(os.path.join(d, a))
        tb, mb = stfile.read(os.path.join(d, b))
        k = sorted(ta)[0]
        tb[k] = ta[k]
        stfile.write(os.path.join(d, b), {n: tuple(v) for n, v in tb.items()}, mb)

    out += [
        ("shards and index", "first shard deleted", rm_shard(0)),
        ("shards and index", "last shard deleted", rm_shard(-1)),
        ("shards and index", "an unlisted shard", dup_shard),
        ("shards and index", "index deleted", rm_index),
        ("shards and index", "index names the wrong file", index_wrong_file),
        ("shards and index", "index misses a tensor", index_drop),
        ("shards and index", "a header overwritten", header_garbage),
        ("shards and index", "a shard truncated", truncate_shard),
        ("shards and index", "a tensor twice", move_tensor_to_other_shard),
        ("shards and index", "config.json deleted", lambda d: os.remove(os.path.join(d, "config.json"))),
        ("shards and index", "config.json not JSON", lambda d: open(os.path.join(d, "config.json"), "w").write("{")),
    ]
    return out


def all_mutations(bases):
    out = []
    for kind in ("dense", "moe"):
        _, mlx = bases[kind]
        cfg = load_json(mlx, "config.json")
        muts = config_mutations(cfg, kind == "moe")
        if kind == "dense":
            muts += quantization_mutations() + tokenizer_mutations()
        muts += tensor_mutations(mlx, kind == "moe")
        out += [(kind, c, desc, fn) for c, desc, fn in muts]
    # the longer run (make differential): pairs of mutations of one base, at random
    rng = random.Random(SEED)
    singles = list(out)
    for _ in range(int(os.environ.get("KT_MUTATION_PAIRS", "0"))):
        (k1, c1, d1, f1), (k2, c2, d2, f2) = rng.sample([m for m in singles if m[0] == "dense"], 2)

        def both(d, f1=f1, f2=f2):
            for f in (f1, f2):
                try:
                    f(d)
                except (KeyError, AssertionError, FileNotFoundError, IndexError, json.JSONDecodeError,
                        UnicodeDecodeError, TypeError, AttributeError, ValueError):
                    pass  # the first mutation removed what the second edits: the first alone stands
        out.append(("dense", "pairs", f"{d1} + {d2}", both))
    limit = int(os.environ.get("KT_MUTATIONS", "0"))
    if limit and limit < len(out):
        out = random.Random(SEED).sample(out, limit)
    return out


def verify_verdict(d):
    r = subprocess.run([VERIFY, d, "--json"], capture_output=True, text=True, timeout=300)
    assert "AddressSanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    if r.returncode not in (0, 1, 2):
        return f"crash {r.returncode}", r.stderr
    if r.returncode == 2 and not r.stdout:
        return "error", r.stderr.strip()
    try:
        report = json.loads(r.stdout)
    except json.JSONDecodeError:
        return "error", r.stderr.strip()
    fails = [f"{c['name']}: {c['message']}" for c in report["checks"] if c["status"] == "fail"]
    return ("pass" if r.returncode == 0 else "fail"), "; ".join(fails)[:300]


def run_verdict(d):
    """kintsugi-run's verdict: a model it runs (exit 0, one token from a raw
    prompt) or refuses (exit 1 or 2, one line)."""
    r = subprocess.run([tool("kintsugi-run"), d, "--raw", "--prompt", "Hello", "--max-tokens", "1", "--quiet"],
                       capture_output=True, text=True, timeout=300)
    assert "AddressSanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    if r.returncode not in (0, 1, 2):
        return f"crash {r.returncode}", r.stderr
    return ("runs" if r.returncode == 0 else "refuses"), r.stderr.strip()[:300]


def stricter_reason(desc, verify_msg):
    """Which documented reason lets verify reject what mlx-lm loads (None:
    no documented reason, a test failure)."""
    rules = [("fixup:", "fixup rule"), ("unlisted", "unlisted shard"), ("is in both", "a tensor twice"),
             ("is not a float type we read", "integer where the model computes in float"),
             ("bias is true", "projection biases"), ("tokenizer_config.json", "tokenizer_config.json"),
             ("more than vocab_size", "token ids past the embedding"), ("scales-biases:", "zero scale"),
             ("index.json", "index"), ("no model.safetensors and no", "index"),
             ("config.json: quantization", "top-level quantization"),
             ("packed weight, scales or biases do not fit", "top-level quantization"),
             ("config.json:", "values the runtime bounds")]
    for needle, reason in rules:
        if needle in verify_msg:
            return reason
    return None


def test_verify_rejects_whatever_mlx_lm_rejects(bases, judge, tmp_path):
    muts = all_mutations(bases)
    assert len(muts) >= 300 or os.environ.get("KT_MUTATIONS"), len(muts)
    if SANITIZED:  # every mutation in the release pass; a third under the sanitizers
        muts = muts[::3]
    # the unbroken bases pass both
    for kind in ("dense", "moe"):
        assert judge(bases[kind][1]) == "ok"
        assert verify_verdict(bases[kind][1])[0] == "pass", verify_verdict(bases[kind][1])
    per_class = collections.defaultdict(collections.Counter)
    missed, stricter, unexplained, run_missed = [], [], [], []
    for i, (kind, cls, desc, fn) in enumerate(muts):
        d = str(tmp_path / f"m{i}")
        shutil.copytree(bases[kind][1], d)
        fn(d)
        theirs = judge(d)
        ours, why = verify_verdict(d)
        assert not ours.startswith("crash"), (desc, why)
        mlx_ok = theirs == "ok"
        verify_ok = ours == "pass"
        per_class[cls]["mutations"] += 1
        per_class[cls]["mlx-lm rejects"] += not mlx_ok
        per_class[cls]["verify fails"] += not verify_ok
        if not mlx_ok and verify_ok:
            missed.append(f"{kind}: {desc}: mlx-lm: {theirs}")
        if not mlx_ok and (not SANITIZED or i % 2 == 0):  # the runtime refuses whatever mlx-lm refuses, too
            runs, run_why = run_verdict(d)
            assert not runs.startswith("crash"), (desc, run_why)
            if runs == "runs":
                run_missed.append(f"{kind}: {desc}: mlx-lm: {theirs}")
        elif mlx_ok and not verify_ok:
            reason = stricter_reason(desc, why)
            (stricter if reason else unexplained).append(f"{kind}: {desc}: [{reason}] {why}")
        shutil.rmtree(d)
    print("\nmutations per class (mlx-lm rejects / verify fails):")
    for cls, c in per_class.items():
        print(f"  {cls}: {c['mutations']} ({c['mlx-lm rejects']} / {c['verify fails']})")
    print(f"verify stricter than mlx-lm in {len(stricter)} cases:")
    for s in stricter:
        print("  " + s)
    assert not missed, "verify passes what mlx-lm rejects:\n" + "\n".join(missed)
    assert not run_missed, "kintsugi-run runs what mlx-lm rejects:\n" + "\n".join(run_missed)
    assert not unexplained, "verify rejects, for no documented reason, what mlx-lm loads:\n" + "\n".join(unexplained)


SOURCE_KEYS = ["hidden_size", "vocab_size", "num_attention_heads", "num_key_value_heads", "head_dim",
               "mamba_num_heads", "n_groups", "conv_kernel", "ssm_state_size", "intermediate_size"]


def source_mutations(src):
    cfg = load_json(src, "config.json")
    out = []
    for k in SOURCE_KEYS:
        v = cfg[k]
        for desc, val in [("a string", str(v)), ("negative", -v), ("null", None), ("1e12", 10 ** 12),
                          ("zero", 0), ("plus one", v + 1)]:
            out.append((f"{k} {desc}", set_key(k, val)))
    out += [("pattern XXXXXX", set_key("hybrid_override_pattern", "XXXXXX")),
            ("pattern one long", set_key("hybrid_override_pattern", cfg["hybrid_override_pattern"] + "-")),
            ("model_type llama", set_key("model_type", "llama")),
            ("layer_norm_epsilon -1", set_key("layer_norm_epsilon", -1)),
            ("time_step_limit a string", set_key("time_step_limit", "inf")),
            ("num_hidden_layers -1", set_key("num_hidden_layers", -1)),
            ("num_hidden_layers one short", set_key("num_hidden_layers", len(cfg["hybrid_override_pattern"]) - 1)),
            ("num_hidden_layers a string", set_key("num_hidden_layers", str(len(cfg["hybrid_override_pattern"])))),
            ("torch_dtype int8", set_key("torch_dtype", "int8")),
            ("torch_dtype float64", set_key("torch_dtype", "float64")),
            ("torch_dtype a number", set_key("torch_dtype", 16)),
            ("an extra tensor", add_extra_tensor),
            ("embedding shape", edit_tensor("backbone.embeddings.weight", lambda e: e.__setitem__(1, [e[1][0] - 1, e[1][1]])
                                            or e.__setitem__(2, e[2][: (e[1][0]) * e[1][1] * 2])))]
    return out


def test_convert_refuses_what_would_not_load(bases, judge, tmp_path):
    """A broken source: refused before DST exists, or converted into a
    directory that mlx-lm and verify both accept."""
    src = bases["dense"][0]
    refused = converted = 0
    for i, (desc, fn) in enumerate(source_mutations(src)):
        s = str(tmp_path / f"s{i}")
        shutil.copytree(src, s)
        fn(s)
        dst = str(tmp_path / f"o{i}")
        r = subprocess.run([CONVERT, s, dst, "--quiet"], capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            refused += 1
            assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, (desc, r.stderr)
            assert not os.path.exists(dst) and not [f for f in os.listdir(tmp_path) if ".kintsugi-tmp" in f], desc
        else:
            converted += 1
            assert judge(dst) == "ok", desc
            assert verify_verdict(dst)[0] == "pass", (desc, verify_verdict(dst))
            shutil.rmtree(dst)
        shutil.rmtree(s)
    print(f"\nsource mutations: {refused} refused, {converted} converted and loadable")
    assert refused > converted
