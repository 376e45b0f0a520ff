"""kintsugi-verify: passes on correct conversions (ours in both roundings, and
mlx-lm's own once its known breakages are repaired), names the rounding that
produced them, and reports every corruption of a good conversion by name with
exit status 1. Reports validate against docs/verify-report.schema.json."""
import json
import os
import shutil
import struct
import sys

import jsonschema
import pytest

import stfile

from conftest import ROOT, generate, generate_and_convert, run, tool

VERIFY = tool("kintsugi-verify")
SCHEMA = json.load(open(os.path.join(ROOT, "docs", "verify-report.schema.json")))


def verify(d, *args):
    r = run([VERIFY, d, "--json", *args], check=False)
    assert r.returncode in (0, 1), r.stderr
    report = json.loads(r.stdout)
    jsonschema.validate(report, SCHEMA)
    assert report["ok"] == (r.returncode == 0)
    return r.returncode, report


def failing(report):
    return {c["name"] for c in report["checks"] if c["status"] == "fail"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("verify")
    src = generate(d / "hf", "--moe", "--mtp")
    out = {}
    for mode in ("metal", "cpu"):
        out[mode] = str(d / mode)
        run([tool("kintsugi-convert"), src, out[mode], "--mode", mode, "--quiet"])
    out["mlx_lm"] = str(d / "mlx_lm")
    run([sys.executable, "-m", "mlx_lm", "convert", "--hf-path", src, "--mlx-path", out["mlx_lm"], "-q"])
    return src, out


@pytest.mark.parametrize("mode", ["metal", "cpu"])
def test_our_conversions_pass_and_name_their_rounding(models, mode):
    src, out = models
    rc, report = verify(out[mode], "--original", src, "--generate", "--max-tokens", "6")
    assert rc == 0, failing(report)
    assert report["summary"]["rounding"] == mode
    tensors = [c for c in report["checks"] if c["group"] == "fidelity" and c["name"] != "rounding"]
    assert len(tensors) == report["summary"]["tensors_compared"] > 30
    assert all(c["status"] == "pass" for c in tensors)
    names = {c["name"] for c in report["checks"]}
    assert {"generate:think", "generate:no_think", "tensors-expected", "tensors-extra", "scales-biases"} <= names


def test_mlx_lm_conversion(models, tmp_path):
    """mlx-lm 0.32.2 writes "mode", a tagged Infinity and TokenizersBackend:
    exactly those fixup rules fail, every tensor is identical (cpu); after
    kintsugi-fixup everything passes."""
    src, out = models
    rc, report = verify(out["mlx_lm"], "--original", src)
    assert rc == 1
    assert failing(report) <= {"fixup:config-mode", "fixup:config-time-step-limit", "fixup:tokenizer-class"}
    assert "fixup:config-mode" in failing(report)
    for c in report["checks"]:
        if c["status"] == "fail":
            assert c["fix"].startswith("kintsugi-fixup ") and out["mlx_lm"] in c["fix"]  # a command to run as it is
    assert report["summary"]["rounding"] == "cpu"
    fixed = str(tmp_path / "fixed")
    shutil.copytree(out["mlx_lm"], fixed)
    run([tool("kintsugi-fixup"), fixed, "--original", src])
    rc, report = verify(fixed, "--original", src)
    assert rc == 0, failing(report)
    assert report["summary"]["rounding"] == "cpu"


def test_kld_against_the_original(models, tmp_path):
    src, out = models
    text = tmp_path / "text.txt"
    text.write_text("The quick brown fox jumps over the lazy dog. 日本の首都は東京です。\n" * 20)
    # random weights: flat distributions, whose top-1 agreement is low for any
    # conversion; the default bounds are the trained model's (test_trained_model.py)
    rc, report = verify(out["metal"], "--original", src, "--kld", str(text), "--min-top1", "0.2")
    kld = next(c for c in report["checks"] if c["name"] == "kld")
    assert kld["status"] == "pass" and 0 < kld["figures"]["kld_mean"] < 0.05
    # a bound the model cannot meet fails the check and the run
    rc, report = verify(out["metal"], "--original", src, "--kld", str(text), "--min-top1", "0.2", "--max-kld", "0")
    assert rc == 1 and "kld" in failing(report)


def test_junit_report(models, tmp_path):
    import xml.etree.ElementTree as ET
    src, out = models
    junit = tmp_path / "r.xml"
    run([VERIFY, out["cpu"], "--original", src, "--junit", str(junit), "--quiet"])
    suites = ET.parse(junit).getroot()
    assert {s.get("name") for s in suites} == {"structure", "fidelity"}
    assert all(s.get("failures") == "0" for s in suites)


# ---- a corpus of corruptions of a good conversion ----

def edit_tensors(d, fn):
    """Apply FN to the tensors of the shard holding them (a single-file model)."""
    path = os.path.join(d, "model.safetensors")
    tensors, meta = stfile.read(path)
    fn(tensors)
    stfile.write(path, tensors, meta)


def edit_json(path, fn):
    data = json.load(open(path))
    fn(data)
    json.dump(data, open(path, "w"), indent=4)


def first(tensors, suffix):
    return next(k for k in sorted(tensors) if k.endswith(suffix))


def missing_tensor(d):
    edit_tensors(d, lambda t: t.pop("backbone.layers.0.mixer.out_proj.biases"))


def wrong_shape(d):
    def f(t):
        k = "backbone.layers.0.norm.weight"
        t[k][1] = [t[k][1][0] // 2, 2]
    edit_tensors(d, f)


def flipped_bit(d):
    def f(t):
        k = "backbone.layers.0.mixer.in_proj.weight"
        b = bytearray(t[k][2])
        b[100] ^= 0x10
        t[k][2] = bytes(b)
    edit_tensors(d, f)


def scale_nan(d):
    def f(t):
        k = "backbone.layers.1.mixer.up_proj.scales"
        b = bytearray(t[k][2])
        b[6:8] = struct.pack("<H", 0x7FC0)  # bf16 NaN
        t[k][2] = bytes(b)
    edit_tensors(d, f)


def zeroed_scale_row(d):
    def f(t):
        k = "backbone.layers.0.mixer.in_proj.scales"
        row = t[k][1][1] * 2
        t[k][2] = t[k][2][:row] + bytes(row) + t[k][2][2 * row:]
    edit_tensors(d, f)


def stale_shard(d):
    shutil.copy(os.path.join(d, "model.safetensors"), os.path.join(d, "model-00001-of-00002.safetensors"))


def truncated_shard(d):
    p = os.path.join(d, "model.safetensors")
    os.truncate(p, os.path.getsize(p) - 1000)


def missing_time_step_limit(d):
    edit_json(os.path.join(d, "config.json"), lambda c: c.pop("time_step_limit"))


def mode_left_in(d):
    edit_json(os.path.join(d, "config.json"), lambda c: c["quantization"].update(mode="affine"))


def tokenizers_backend(d):
    edit_json(os.path.join(d, "tokenizer_config.json"), lambda c: c.update(tokenizer_class="TokenizersBackend"))


def conv1d_hf_layout(d):
    def f(t):
        k = first(t, "conv1d.weight")
        c, kk, one = t[k][1]
        t[k][1] = [c, one, kk]
    edit_tensors(d, f)


def swapped_pair(d):
    def f(t):
        a, b = "backbone.layers.0.mixer.out_proj.weight", "backbone.layers.4.mixer.out_proj.weight"
        assert t[a][1] == t[b][1]
        t[a][2], t[b][2] = t[b][2], t[a][2]
    edit_tensors(d, f)


CORRUPTIONS = {
    missing_tensor: {"tensors-expected", "fixup:index-rebuild"},
    wrong_shape: {"tensors-expected"},
    flipped_bit: {"backbone.layers.0.mixer.in_proj.weight"},
    scale_nan: {"scales-biases", "backbone.layers.1.mixer.up_proj.weight"},
    zeroed_scale_row: {"scales-biases", "backbone.layers.0.mixer.in_proj.weight"},
    stale_shard: {"fixup:shards-unlisted"},
    truncated_shard: {"shards"},
    missing_time_step_limit: {"fixup:config-time-step-limit"},
    mode_left_in: {"fixup:config-mode"},
    tokenizers_backend: {"fixup:tokenizer-class"},
    conv1d_hf_layout: {"fixup:tensors-conv1d-layout"},
    swapped_pair: {"backbone.layers.0.mixer.out_proj.weight", "backbone.layers.4.mixer.out_proj.weight"},
}


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """A good single-file conversion of the default (M-M*M-) checkpoint."""
    src, good = generate_and_convert(tmp_path_factory.mktemp("corrupt"))
    assert os.listdir(good).count("model.safetensors") == 1
    return src, good


@pytest.mark.parametrize("corrupt", list(CORRUPTIONS), ids=lambda f: f.__name__)
def test_corruption_is_reported_by_name(single, corrupt, tmp_path):
    src, good = single
    rc, report = verify(good, "--original", src)
    assert rc == 0, failing(report)
    bad = str(tmp_path / "bad")
    shutil.copytree(good, bad)
    corrupt(bad)
    rc, report = verify(bad, "--original", src)
    assert rc == 1
    assert CORRUPTIONS[corrupt] <= failing(report), failing(report)
    # and the exit status alone, without the original where the structure suffices
    if not corrupt.__name__ in ("flipped_bit", "swapped_pair"):
        assert run([VERIFY, bad, "--quiet"], check=False).returncode == 1


def test_allow_differs_weighs_the_error(single, tmp_path):
    """A flipped bit changes one weight: with --allow-differs the tensor is a
    warning within the error bound, and fails again under a tighter bound."""
    src, good = single
    bad = str(tmp_path / "bad")
    shutil.copytree(good, bad)
    flipped_bit(bad)
    rc, report = verify(bad, "--original", src, "--allow-differs")
    name = "backbone.layers.0.mixer.in_proj.weight"
    check = next(c for c in report["checks"] if c["name"] == name)
    assert check["status"] == "warn" and 0.05 < check["figures"]["rel_rmse"] < 0.15
    assert rc == 0 and next(c for c in report["checks"] if c["name"] == "rounding")["status"] == "warn"
    rc, report = verify(bad, "--original", src, "--allow-differs", "--max-rel-rmse", "0.01")
    assert rc == 1 and {name, "rounding"} <= failing(report)
