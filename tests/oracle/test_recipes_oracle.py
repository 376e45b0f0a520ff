"""Mixed precision and fitted scales (kintsugi-convert --recipe, --bits-for,
--fit mse) against mlx_lm.convert --quant-predicate, mlx_lm.load and
kintsugi-verify.

A recipe must give mlx-lm's tensors bit for bit and its config.json (per-layer
entries in mlx-lm's order, without "mode"); a fitted model must load in
mlx-lm unchanged, pass verify as "fitted", and fail it when damaged.
"""
import json
import os
import shutil
import struct
import sys

import mlx.core as mx
import numpy as np
import pytest

import stfile
from conftest import generate, one_line_error, run, tool
from test_convert_oracle import decode_tags, load_all, raw
from test_verify_oracle import failing, verify  # the report, checked against its schema

CONVERT, RUN = tool("kintsugi-convert"), tool("kintsugi-run")
RECIPES = ["mixed_2_6", "mixed_3_4", "mixed_3_6", "mixed_4_6"]
# 16 blocks, so that mlx-lm's rule (first and last eighth, every third in
# between) picks some blocks and not others; and a MoE model, whose shared
# experts have a down_proj
PATTERN = "M-M*M-M-*-M-M*M-"
MOE_PATTERN = "M-E*M-ME*-ME-M*E"


def strip_mode(q):
    q = dict(q)
    assert q.pop("mode") == "affine"
    return {k: ({kk: vv for kk, vv in v.items() if kk != "mode"} if isinstance(v, dict) else v) for k, v in q.items()}


def assert_same_tensors(ours, theirs):
    a, b = load_all(ours), load_all(theirs)
    fa = {k: v for f in a.values() for k, v in f.items()}
    fb = {k: v for f in b.values() for k, v in f.items()}
    assert sorted(fa) == sorted(fb)
    for k in fa:
        assert (fa[k].dtype, fa[k].shape) == (fb[k].dtype, fb[k].shape), k
        assert np.array_equal(raw(fa[k]), raw(fb[k])), k


def greedy(path, moe):
    from mlx_lm import generate as mlx_generate, load
    model, tokenizer = load(path)  # strict
    if moe:
        model.set_dtype(mx.float32)
    out = []
    mlx_generate(model, tokenizer, prompt="日本の首都は", max_tokens=10, verbose=False,
                 sampler=lambda lg: (out.append(int(mx.argmax(lg, axis=-1).item())) or mx.argmax(lg, axis=-1)))
    return out


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    d = tmp_path_factory.mktemp("recipes")
    return {"dense": generate(d / "dense", "--pattern", PATTERN, "--shards", "1"),
            "moe": generate(d / "moe", "--pattern", MOE_PATTERN, "--seed", "3")}


# under the sanitizers one recipe per kind of model: the recipes differ in
# their rules (Python-side in mlx-lm), not in convert's C path
@pytest.mark.parametrize("kind,group,recipe", [
    pytest.param(kind, group, recipe, marks=() if recipe == RECIPES[k] else pytest.mark.release_only)
    for k, (kind, group) in enumerate([("dense", 64), ("moe", 32)]) for recipe in RECIPES])
def test_recipe_is_mlx_lm_bit_for_bit(sources, tmp_path, recipe, kind, group):
    src = sources[kind]
    ours, theirs = str(tmp_path / "ours"), str(tmp_path / "theirs")
    run([CONVERT, src, ours, "--mode", "cpu", "--recipe", recipe, "--group-size", str(group), "--quiet"])
    run([sys.executable, "-m", "mlx_lm", "convert", "--hf-path", src, "--mlx-path", theirs, "-q",
         "--quant-predicate", recipe, "--q-group-size", str(group)])
    assert_same_tensors(ours, theirs)
    mine = json.load(open(os.path.join(ours, "config.json")))
    expected = decode_tags(json.load(open(os.path.join(theirs, "config.json"))))
    for key in ("quantization", "quantization_config"):
        expected[key] = strip_mode(expected[key])
        assert list(mine[key]) == list(expected[key]), key  # the same entries in the same order
    assert mine == expected
    low, high = int(recipe[6]), int(recipe[8])
    bits = {v["bits"] for k, v in mine["quantization"].items() if isinstance(v, dict)}
    assert bits == {low, high} and mine["quantization"]["lm_head"]["bits"] == high
    # mlx-lm's strict load takes it and generates what it generates from its own
    assert greedy(ours, kind == "moe") == greedy(theirs, kind == "moe")
    # verify re-derives every tensor at its own bits from the per-layer entries
    rc, report = verify(ours, "--original", src)
    assert rc == 0, failing(report)
    assert report["summary"]["tensors_differing"] == 0 and report["summary"]["rounding"] == "cpu"
    # and so does the runtime: its greedy tokens are mlx-lm's
    if kind == "dense":
        r = json.loads(run([RUN, ours, "--json", "--raw", "--prompt", "日本の首都は", "--max-tokens", "8",
                            "--temperature", "0"]).stdout)
        from test_run_oracle import mlx_greedy
        assert r["generated_ids"] == mlx_greedy(ours, r["prompt_ids"], len(r["generated_ids"]))


def test_mlx_lm_null_group_size_is_read_as_64(sources, tmp_path):
    """mlx_lm.convert --quant-predicate without --q-group-size writes
    "group_size": null in every per-layer entry; MLX reads that as 64, and so
    must every tool here."""
    theirs = str(tmp_path / "theirs")
    run([sys.executable, "-m", "mlx_lm", "convert", "--hf-path", sources["dense"], "--mlx-path", theirs, "-q",
         "--quant-predicate", "mixed_3_6"])
    q = json.load(open(os.path.join(theirs, "config.json")))["quantization"]
    assert q["lm_head"] == {"group_size": None, "bits": 6, "mode": "affine"}
    rc, report = verify(theirs, "--original", sources["dense"])
    assert report["summary"]["tensors_differing"] == 0, failing(report)
    ours = str(tmp_path / "ours")
    run([CONVERT, sources["dense"], ours, "--mode", "cpu", "--recipe", "mixed_3_6", "--quiet"])
    assert_same_tensors(ours, theirs)
    assert json.load(open(os.path.join(ours, "config.json")))["quantization"]["lm_head"] == {"group_size": 64, "bits": 6}
    r = json.loads(run([RUN, theirs, "--json", "--raw", "--prompt", "日本", "--max-tokens", "4", "--temperature", "0"]).stdout)
    assert len(r["generated_ids"]) == 4
    # verify asks for the portable form, and kintsugi-fixup makes it: then the
    # config is ours (the repairs kintsugi-convert makes, made)
    rc, report = verify(theirs, "--original", sources["dense"])
    assert {"fixup:config-null-quant-params", "fixup:config-mode"} <= failing(report)
    # with the original: transformers 5 rewrote tokenizer_config.json, and the fix is the original file
    fixed = json.loads(run([tool("kintsugi-fixup"), theirs, "--original", sources["dense"], "--json"]).stdout)
    assert "config-null-quant-params" in json.dumps(fixed)
    rc, report = verify(theirs, "--original", sources["dense"])
    assert rc == 0, failing(report)
    a, b = (json.load(open(os.path.join(d, "config.json"))) for d in (ours, theirs))
    assert a["quantization"] == b["quantization"] == b["quantization_config"]
    assert run([tool("kintsugi-fixup"), theirs, "--check"], check=False).returncode == 0


def test_rules_choose_bits_per_module(sources, tmp_path):
    rules = tmp_path / "rules.txt"
    rules.write_text("# attention in 8 bits, group 32\n\\.(q|k|v|o)_proj$=8:32\n\nlm_head=none   # stays bf16\n")
    out = str(tmp_path / "out")
    r = run([CONVERT, sources["dense"], out, "--mode", "cpu", "--json", "--bits-for", r"layers\.1\.mixer\.down_proj=2",
             "--recipe", str(rules), "--bits-for", "down_proj=6"])
    assert json.loads(r.stdout)["modules_by_bits"] == {"2": 1, "4": 21, "6": 5, "8": 12}
    q = json.load(open(os.path.join(out, "config.json")))["quantization"]
    assert q["backbone.layers.1.mixer.down_proj"] == {"group_size": 64, "bits": 2}  # first match wins
    assert q["backbone.layers.3.mixer.v_proj"] == {"group_size": 32, "bits": 8}
    assert q["backbone.layers.5.mixer.down_proj"]["bits"] == 6
    assert "lm_head" not in q
    t = mx.load(os.path.join(out, "model.safetensors"))
    assert t["lm_head.weight"].dtype == mx.bfloat16 and "lm_head.scales" not in t
    assert t["backbone.layers.3.mixer.q_proj.scales"].shape == (256, 256 // 32)
    rc, report = verify(out, "--original", sources["dense"])
    assert rc == 0, failing(report)
    assert greedy(out, False)  # mlx-lm's strict load


@pytest.mark.parametrize("args,words", [
    (["--bits-for", "lm_head"], "REGEX=BITS"),
    (["--bits-for", "lm_head=7"], "BITS[:GROUP]"),
    (["--bits-for", "lm_head=4:48"], "BITS[:GROUP]"),
    (["--bits-for", "(=4"], "regular expression"),
    (["--recipe", "mixed_5_9"], "not a recipe name"),
    (["--recipe", "no/such/file"], "no such file"),
    (["--fit", "awq"], "--fit"),
])
def test_bad_rules_are_usage_errors(sources, tmp_path, args, words):
    r = run([CONVERT, sources["dense"], str(tmp_path / "out"), *args], check=False)
    assert words in one_line_error(r, "kintsugi-convert")
    assert not os.path.exists(tmp_path / "out")


def test_rule_group_must_divide(tmp_path):
    src = generate(tmp_path / "hf")  # hidden 256
    r = run([CONVERT, src, str(tmp_path / "out"), "--bits-for", "embeddings=4:128", "--bits-for", "in_proj=4:128"],
            check=False)
    assert r.returncode == 0, r.stderr  # 256 is a multiple of 128
    src2 = generate(tmp_path / "hf2", "--pattern", "M*M*")
    r = run([CONVERT, src2, str(tmp_path / "out2"), "--recipe", "mixed_4_6"], check=False)
    assert "down_proj" in one_line_error(r, "kintsugi-convert", 1)


# ---- fitted scales ----

@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    d = tmp_path_factory.mktemp("fit")
    src = generate(d / "hf", "--shards", "1", "--weights", "heavy")
    out = {}
    for name, args in {"rtn": [], "fit": ["--fit", "mse"], "fit3": ["--fit", "mse", "--bits", "3"],
                       "mix": ["--fit", "mse", "--recipe", "mixed_4_6", "--mode", "cpu"]}.items():
        out[name] = str(d / name)
        run([CONVERT, src, out[name], "--quiet", *args])
    return src, out


def test_fitted_model_loads_and_passes_verify(fitted):
    src, out = fitted
    for name in ("fit", "fit3", "mix"):
        rc, report = verify(out[name], "--original", src)
        assert rc == 0, (name, failing(report))
        assert report["summary"]["tensors_fitted"] > 0 and report["summary"]["tensors_differing"] == 0
        checks = [c for c in report["checks"] if c["figures"] and c["figures"].get("identical") == "fitted"]
        assert checks and all(c["figures"]["rel_rmse"] < c["figures"]["rtn_rel_rmse"] for c in checks)
        assert all(c["figures"]["codes_not_nearest"] == 0 for c in checks)
        assert "fitted (error" in checks[0]["message"]
    # the 4-bit fit lowers every tensor's squared error clearly (heavy tails)
    _, report = verify(out["fit"], "--original", src)
    ratios = [(c["figures"]["rel_rmse"] / c["figures"]["rtn_rel_rmse"]) ** 2
              for c in report["checks"] if c["figures"] and c["figures"].get("identical") == "fitted"]
    assert max(ratios) < 0.9 and np.median(ratios) < 0.85, ratios
    # the same format: mlx-lm loads it unchanged, and our runtime generates mlx-lm's tokens
    r = json.loads(run([RUN, out["fit"], "--json", "--raw", "--prompt", "東京は", "--max-tokens", "8",
                        "--temperature", "0"]).stdout)
    from test_run_oracle import mlx_greedy
    assert r["generated_ids"] == mlx_greedy(out["fit"], r["prompt_ids"], len(r["generated_ids"]))
    card = open(os.path.join(out["mix"], "README.md")).read()
    assert "| fit | mse" in card and "mixed_4_6" in card


def test_fit_is_deterministic(fitted, tmp_path):
    src, out = fitted
    again = str(tmp_path / "again")
    run([CONVERT, src, again, "--quiet", "--fit", "mse", "--threads", "1"])
    assert open(os.path.join(again, "model.safetensors"), "rb").read() == \
        open(os.path.join(out["fit"], "model.safetensors"), "rb").read()


def edit(d, fn):
    path = os.path.join(d, "model.safetensors")
    tensors, meta = stfile.read(path)
    fn(tensors)
    stfile.write(path, tensors, meta)


def flipped_code(t):
    k = "backbone.layers.0.mixer.in_proj.weight"
    b = bytearray(t[k][2])
    b[200] ^= 0x88  # two 4-bit codes move by 8 steps: far from the nearest
    t[k][2] = bytes(b)


def changed_scale(t):
    k = "backbone.layers.2.mixer.in_proj.scales"
    b = bytearray(t[k][2])
    v = struct.unpack("<H", b[10:12])[0]
    b[10:12] = struct.pack("<H", v + 0x40)  # the bf16 scale up by half an octave
    t[k][2] = bytes(b)


def swapped_tensor(t):
    for leaf in ("weight", "scales", "biases"):  # a whole consistent module in the wrong place
        a, b = f"backbone.layers.0.mixer.out_proj.{leaf}", f"backbone.layers.4.mixer.out_proj.{leaf}"
        t[a][2], t[b][2] = t[b][2], t[a][2]


@pytest.mark.parametrize("damage,names", [
    (flipped_code, {"backbone.layers.0.mixer.in_proj.weight"}),
    (changed_scale, {"backbone.layers.2.mixer.in_proj.weight"}),
    (swapped_tensor, {"backbone.layers.0.mixer.out_proj.weight", "backbone.layers.4.mixer.out_proj.weight"}),
], ids=lambda x: getattr(x, "__name__", ""))
def test_damaged_fit_fails(fitted, tmp_path, damage, names):
    src, out = fitted
    bad = str(tmp_path / "bad")
    shutil.copytree(out["fit"], bad)
    edit(bad, damage)
    rc, report = verify(bad, "--original", src)
    assert rc == 1 and names <= failing(report), failing(report)
    msgs = [c["message"] for c in report["checks"] if c["name"] in names]
    assert all("differs" in m for m in msgs), msgs


def test_quantize_tool_fits_too(fitted, tmp_path):
    """kintsugi-quantize --fit mse: the same fit, read back by mx.dequantize
    with less error than its RTN output."""
    src, _ = fitted
    err = {}
    for fit in ("rtn", "mse"):
        out = str(tmp_path / f"{fit}.safetensors")
        r = run([tool("kintsugi-quantize"), os.path.join(src, "model.safetensors"), out, "--fit", fit, "--json"])
        assert json.loads(r.stdout)["fit"] == fit
        orig, q = mx.load(os.path.join(src, "model.safetensors")), mx.load(out)
        k = "backbone.layers.0.mixer.in_proj"
        deq = mx.dequantize(q[k + ".weight"], q[k + ".scales"], q[k + ".biases"], group_size=64, bits=4)
        err[fit] = float(mx.mean((deq.astype(mx.float32) - orig[k + ".weight"].astype(mx.float32)) ** 2))
    assert err["mse"] < 0.88 * err["rtn"], err
    r = run([tool("kintsugi-quantize"), os.path.join(src, "model.safetensors"), str(tmp_path / "x"), "--fit", "mse",
             "--dequantize"], check=False)
    assert "--fit" in one_line_error(r, "kintsugi-quantize")
