"""The seed's fix is the original tokenizer_config.json byte for byte:
kintsugi-fixup restores it whenever it can find the original (--original as
a path or a hub name, or the card's base_model in the local cache), also
after an earlier run without the original patched the file, and verify
--original reports a file that differs. And the transformers-5 source that
mlx_lm.convert leaves with D and dt_bias in float32: repaired into what
kintsugi-convert writes, tensor for tensor."""
import glob
import json
import os

import mlx.core as mx
import numpy as np

from conftest import generate, hub_cache, run, tool

FIXUP, VERIFY, CONVERT = tool("kintsugi-fixup"), tool("kintsugi-verify"), tool("kintsugi-convert")


def transformers5_tokenizer_config(d):
    """What transformers 5 writes back: another class, the file regenerated."""
    p = os.path.join(d, "tokenizer_config.json")
    t = json.load(open(p))
    t["tokenizer_class"] = "TokenizersBackend"
    json.dump(t, open(p, "w"), indent=2)


def test_the_original_tokenizer_config_is_restored_whenever_it_is_found(tmp_path):
    src = generate(tmp_path / "hf")
    original = open(os.path.join(src, "tokenizer_config.json"), "rb").read()
    env, _ = hub_cache(tmp_path, src)
    mlx = str(tmp_path / "mlx")
    run([CONVERT, "nvidia/Tiny-Nemotron", mlx, "--quiet"], env=env)
    transformers5_tokenizer_config(mlx)
    # a first run without the original (and no cache): the class is patched, the rest is not the original
    r = run([FIXUP, mlx], env={k: v for k, v in os.environ.items() if k != "HF_HUB_CACHE"} | {"HF_HOME": str(tmp_path)})
    assert "PreTrainedTokenizerFast" in r.stdout
    assert open(os.path.join(mlx, "tokenizer_config.json"), "rb").read() != original
    # verify --original says so, and names the fix with the original
    r = run([VERIFY, mlx, "--original", src, "--json"], check=False)
    report = json.loads(r.stdout)
    bad = [c for c in report["checks"] if c["name"] == "fixup:tokenizer-class"]
    assert r.returncode == 1 and bad[0]["status"] == "fail" and "differs from the original" in bad[0]["message"]
    assert "--original" in bad[0]["fix"]
    # the second run with --original as a hub name restores it byte for byte, where it said "nothing to repair"
    r = run([FIXUP, mlx, "--original", "nvidia/Tiny-Nemotron"], env=env)
    assert "nothing to repair" not in r.stdout and "byte for byte" in r.stdout
    assert open(os.path.join(mlx, "tokenizer_config.json"), "rb").read() == original
    run([VERIFY, mlx, "--original", src, "--quiet"])
    # without --original: the card's base_model, found in the cache
    transformers5_tokenizer_config(mlx)
    r = run([FIXUP, mlx], env=env)
    assert "the card's base_model" in r.stderr and "byte for byte" in r.stdout
    assert open(os.path.join(mlx, "tokenizer_config.json"), "rb").read() == original
    assert "nothing to repair" in run([FIXUP, mlx, "--check"], env=env).stdout


def tensors(d):
    out = {}
    for f in glob.glob(os.path.join(d, "model*.safetensors")):
        for k, v in mx.load(f).items():
            raw = v.view(mx.uint16) if v.dtype in (mx.bfloat16, mx.float16) else v
            out[k] = (str(v.dtype), np.array(raw).tobytes())
    return out


def test_a_transformers5_source_through_mlx_lm_convert_is_repaired_to_kintsugis_tensors(tmp_path):
    from mlx_lm import convert, load
    mx.set_default_device(mx.cpu)
    src = generate(tmp_path / "hf", "--dtype-key")  # "dtype", no "torch_dtype": transformers 5
    theirs = str(tmp_path / "theirs")
    convert(src, theirs, quantize=True)
    before = tensors(theirs)
    assert before["backbone.layers.0.mixer.D"][0] == "mlx.core.float32"  # the cast was skipped
    r = run([FIXUP, theirs, "--original", src])  # transformers 5 rewrote tokenizer_config.json too
    assert "tensors-cast" in r.stdout and "dt_bias" in r.stdout
    ours = str(tmp_path / "ours")
    run([CONVERT, src, ours, "--mode", "cpu", "--quiet"])
    a, b = tensors(theirs), tensors(ours)
    assert a.keys() == b.keys() and [k for k in b if a[k] != b[k]] == []
    assert "A_log" in "".join(k for k in a if a[k][0] == "mlx.core.float32")  # cast_predicate keeps A_log
    load(theirs)  # strict
    run([VERIFY, theirs, "--original", src, "--quiet"])
    assert "nothing to repair" in run([FIXUP, theirs, "--check"]).stdout
