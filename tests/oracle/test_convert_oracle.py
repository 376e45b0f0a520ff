"""kintsugi-convert against mlx_lm.convert -q (MLX on the CPU), mlx_lm.load
and mlx_lm.generate.

With --mode cpu every tensor must equal mlx-lm's bit for bit, with the same
names, shapes, dtypes, files and index; config.json must equal mlx-lm's but
for the documented repairs, and be printed exactly as Python's json.dump.
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys

import mlx.core as mx
import numpy as np
import pytest

from conftest import generate, run, tool

CONVERT = tool("kintsugi-convert")
VARIANTS = {
    "default": [],                                          # A_log f32, 2 shards
    "moe_mtp_bf16": ["--moe", "--mtp", "--ssm-dtype", "bf16"],
    "single_file": ["--shards", "1", "--mtp"],
    "dtype_key": ["--dtype-key", "--moe"],                   # transformers-5 "dtype"
    "moe_f32_three_shards": ["--moe", "--shards", "3", "--seed", "7"],
}


def mlx_lm_convert(src, dst, *extra):
    run([sys.executable, "-m", "mlx_lm", "convert", "--hf-path", src, "--mlx-path", dst, "-q", *extra])


def raw(a):
    return np.array(a if a.dtype == mx.uint32 else a.view(mx.uint8))


def load_all(d):
    out = {}
    for f in sorted(os.listdir(d)):
        if f.startswith("model") and f.endswith(".safetensors"):
            out[f] = mx.load(os.path.join(d, f))
    return out


def decode_tags(obj):
    if isinstance(obj, dict):
        if set(obj) == {"__float__"}:
            return {"Infinity": float("inf"), "-Infinity": float("-inf"), "NaN": float("nan")}[obj["__float__"]]
        return {k: decode_tags(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode_tags(v) for v in obj]
    return obj


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def converted(request, tmp_path_factory):
    base = tmp_path_factory.mktemp(request.param)
    src = generate(base / "hf", *VARIANTS[request.param])
    ours, theirs = str(base / "ours"), str(base / "theirs")
    r = run([CONVERT, src, ours, "--mode", "cpu"])
    # mlx-lm reads only torch_dtype; the hand repair users make is to give the dtype
    mlx_lm_convert(src, theirs, *(["--dtype", "bfloat16"] if request.param == "dtype_key" else []))
    return request.param, src, ours, theirs, r.stderr


def test_tensors_bit_identical_to_mlx_lm(converted):
    _, _, ours, theirs, _ = converted
    a, b = load_all(ours), load_all(theirs)
    assert sorted(a) == sorted(b)
    for f in a:
        assert sorted(a[f]) == sorted(b[f]), f
        for k in a[f]:
            x, y = a[f][k], b[f][k]
            assert (x.dtype, x.shape) == (y.dtype, y.shape), k
            assert np.array_equal(raw(x), raw(y)), k


def test_index_identical_to_mlx_lm(converted):
    _, _, ours, theirs, _ = converted
    a = open(os.path.join(ours, "model.safetensors.index.json")).read()
    b = open(os.path.join(theirs, "model.safetensors.index.json")).read()
    assert a == b


def test_config_is_mlx_lm_plus_repairs(converted):
    name, src, ours, theirs, stderr = converted
    text = open(os.path.join(ours, "config.json")).read()
    mine = json.loads(text)
    expected = decode_tags(json.load(open(os.path.join(theirs, "config.json"))))
    for key in ("quantization", "quantization_config"):
        assert expected[key].pop("mode") == "affine"
    if name == "dtype_key":
        expected["torch_dtype"] = expected.pop("dtype")
        assert "dtype" not in mine and "torch_dtype" in stderr
    assert mine == expected
    assert mine["time_step_limit"] == [0.0, float("inf")]
    # printed exactly as mlx-lm prints it (sorted top level, indent 4), bare Infinity
    assert text == json.dumps(dict(sorted(mine.items())), indent=4)
    assert "__float__" not in text
    # a clean source needed no repair, and none is reported
    if name == "dtype_key":
        assert "repair: torch_dtype" in stderr
    else:
        assert "repair:" not in stderr
        assert "None were needed." in open(os.path.join(ours, "README.md")).read()


def test_side_files_copied_byte_for_byte(converted):
    _, src, ours, _, _ = converted
    for f in os.listdir(src):
        if f.startswith("tokenizer") or f in ("special_tokens_map.json", "generation_config.json") or f.endswith(".py"):
            assert open(os.path.join(src, f), "rb").read() == open(os.path.join(ours, f), "rb").read(), f
    card = open(os.path.join(ours, "README.md")).read()
    assert "4 bits, group size 64" in card and "time_step_limit" in card and "mlx_lm" in card


def greedy_tokens(path, moe):
    from mlx_lm import generate as mlx_generate, load
    model, tokenizer = load(path)  # strict: every expected tensor, nothing extra
    if moe:  # MLX's CPU GatherMM runs in float32 only
        model.set_dtype(mx.float32)
    out = []
    mlx_generate(model, tokenizer, prompt="日本の首都は", max_tokens=12, verbose=False,
                 sampler=lambda logits: (out.append(int(mx.argmax(logits, axis=-1).item())) or mx.argmax(logits, axis=-1)))
    return out


def test_mlx_lm_loads_and_generates_the_same(converted):
    name, _, ours, theirs, _ = converted
    moe = "moe" in name or name == "dtype_key"
    a, b = greedy_tokens(ours, moe), greedy_tokens(theirs, moe)
    assert len(a) >= 1 and a == b


def test_shard_rule_follows_mlx_lm_parameter_order(tmp_path):
    """Small shards: the greedy cut over mlx-lm's own parameter order."""
    from mlx.utils import tree_flatten
    from mlx_lm import load
    src = generate(tmp_path / "hf", "--moe")
    ours, theirs = str(tmp_path / "ours"), str(tmp_path / "theirs")
    limit = 200_000
    run([CONVERT, src, ours, "--mode", "cpu", "--shard-size", str(limit)])
    mlx_lm_convert(src, theirs)
    model, _ = load(theirs)
    expected, size, n = {}, 0, 0
    for k, v in tree_flatten(model.parameters()):
        if n == 0 or size + v.nbytes > limit:
            n, size = n + 1, 0
        expected[k] = n
        size += v.nbytes
    index = json.load(open(os.path.join(ours, "model.safetensors.index.json")))
    files = {k: int(f.split("-")[1]) for k, f in index["weight_map"].items()}
    assert files == expected and n > 3
    assert all(f == f"model-{files[k]:05d}-of-{n:05d}.safetensors" for k, f in index["weight_map"].items())
    merged = {k: v for d in load_all(ours).values() for k, v in d.items()}
    ref = load_all(theirs)["model.safetensors"]
    assert sorted(merged) == sorted(ref)
    assert all(np.array_equal(raw(merged[k]), raw(ref[k])) for k in ref)


def test_huggingface_cache_snapshot(tmp_path):
    """A hub cache: snapshots/<rev>/* are symlinks into blobs/."""
    src = generate(tmp_path / "hf")
    repo = tmp_path / "models--nvidia--tiny"
    blobs, snap = repo / "blobs", repo / "snapshots" / "0123abcd"
    blobs.mkdir(parents=True)
    snap.mkdir(parents=True)
    for f in os.listdir(src):
        data = open(os.path.join(src, f), "rb").read()
        digest = hashlib.sha256(data).hexdigest()
        open(blobs / digest, "wb").write(data)
        os.symlink(os.path.join("..", "..", "blobs", digest), snap / f)
    a, b = str(tmp_path / "from_dir"), str(tmp_path / "from_cache")
    run([CONVERT, src, a, "--quiet"])
    run([CONVERT, str(snap), b, "--quiet"])
    assert sorted(os.listdir(a)) == sorted(os.listdir(b))
    for f in os.listdir(a):
        if f != "README.md":
            assert open(os.path.join(a, f), "rb").read() == open(os.path.join(b, f), "rb").read(), f
    assert "nvidia/tiny" in open(os.path.join(b, "README.md")).read()


def tree_digest(d):
    h = hashlib.sha256()
    for f in sorted(os.listdir(d)):
        h.update(f.encode() + open(os.path.join(d, f), "rb").read())
    return h.hexdigest()


def test_safety(tmp_path):
    src = generate(tmp_path / "hf")
    before = tree_digest(src)
    dst = str(tmp_path / "out")
    run([CONVERT, src, dst, "--quiet"])
    # an existing destination is kept unless --force
    r = run([CONVERT, src, dst], check=False)
    assert r.returncode == 2 and "--force" in r.stderr
    r = run([CONVERT, src, dst, "--force", "--quiet", "--bits", "8"])
    assert json.load(open(os.path.join(dst, "config.json")))["quantization"]["bits"] == 8
    assert tree_digest(src) == before
    assert sorted(os.listdir(tmp_path)) == ["hf", "out"]  # no temporary or old directory left


def test_failure_leaves_nothing(tmp_path):
    src = generate(tmp_path / "hf", "--shards", "1")
    # poison one weight with a NaN: the conversion must stop and leave no DST
    path = os.path.join(src, "model.safetensors")
    arrays = mx.load(path)
    w = np.array(arrays["backbone.layers.0.mixer.in_proj.weight"].astype(mx.float32))
    w[3, 5] = np.nan
    arrays["backbone.layers.0.mixer.in_proj.weight"] = mx.array(w).astype(mx.bfloat16)
    mx.save_safetensors(path, arrays, metadata={"format": "pt"})
    dst = str(tmp_path / "out")
    r = run([CONVERT, src, dst], check=False)
    assert r.returncode == 1
    assert "backbone.layers.0.mixer.in_proj.weight" in r.stderr and "row 3, column 5" in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["hf"]


def test_refuses_what_it_cannot_convert(tmp_path):
    src = generate(tmp_path / "hf")
    cfg_path = os.path.join(src, "config.json")
    cfg = json.load(open(cfg_path))
    json.dump(dict(cfg, model_type="llama"), open(cfg_path, "w"))
    r = run([CONVERT, src, str(tmp_path / "o")], check=False)
    assert r.returncode == 1 and "nemotron_h" in r.stderr
    json.dump(dict(cfg, quantization={"bits": 4, "group_size": 64}), open(cfg_path, "w"))
    r = run([CONVERT, src, str(tmp_path / "o")], check=False)
    assert r.returncode == 1 and "already quantized" in r.stderr
    r = run([CONVERT, str(tmp_path / "missing"), str(tmp_path / "o")], check=False)
    assert r.returncode == 2 and "missing" in r.stderr
    for args in ([], [src], [src, "o", "--bits", "7"], [src, "o", "--shard-size", "lots"], [src, "o", "--dtype", "int8"]):
        r = run([CONVERT, *args], check=False)
        assert r.returncode == 2 and r.stderr.startswith("kintsugi-convert: ") and len(r.stderr.splitlines()) == 1


def test_time_step_limit_repairs(tmp_path):
    """Missing, tagged, string, null, reversed: all become [0.0, Infinity]."""
    src = generate(tmp_path / "hf")
    cfg_path = os.path.join(src, "config.json")
    cfg = json.load(open(cfg_path))
    for i, value in enumerate([None, {"__float__": "Infinity"}, "inf", [1.0, 0.0], [0.0], "missing"]):
        c = dict(cfg)
        if value == "missing":
            del c["time_step_limit"]
        elif isinstance(value, dict):
            c["time_step_limit"] = [0.0, value]
        else:
            c["time_step_limit"] = value
        json.dump(c, open(cfg_path, "w"))
        dst = str(tmp_path / f"o{i}")
        r = run([CONVERT, src, dst])
        assert json.load(open(os.path.join(dst, "config.json")))["time_step_limit"] == [0.0, float("inf")], value
        # a tagged Infinity is mlx-lm's own spelling: written bare, but no repair
        assert ("repair: time_step_limit" in r.stderr) == (not isinstance(value, dict)), value
        assert "time_step_limit" in open(os.path.join(dst, "README.md")).read()


def make_archive(src, path, kind):
    """An archive of SRC with its files stored by name, under a top directory
    (tar) or at the root (zip)."""
    import tarfile
    import zipfile
    names = sorted(os.listdir(src))
    if kind == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for n in names:
                z.write(os.path.join(src, n), n)
        return path
    mode = {"tar": "w", "tar.gz": "w:gz"}.get(kind, "w")
    tar_path = path if kind != "tar.zst" else path[: -len(".zst")]
    with tarfile.open(tar_path, mode) as t:
        for n in names:
            t.add(os.path.join(src, n), arcname="model/" + n)
    if kind == "tar.zst":
        zstd = shutil.which("zstd")
        assert zstd, "zstd is needed to build the .tar.zst case (scripts/bootstrap.sh --tests installs it)"
        subprocess.run([zstd, "-q", "--rm", tar_path, "-o", path], check=True)
    return path


@pytest.mark.parametrize("kind", ["tar", "tar.gz", "tar.zst", "zip"])
def test_archive_converts_to_the_same_bytes(tmp_path, kind):
    src = generate(tmp_path / "hf", "--moe", "--mtp", "--shards", "3")
    archive = make_archive(src, str(tmp_path / f"model.{kind}"), kind)
    a, b = str(tmp_path / "from_dir"), str(tmp_path / "from_archive")
    run([CONVERT, src, a, "--quiet"])
    run([CONVERT, archive, b, "--quiet"])
    assert sorted(os.listdir(a)) == sorted(os.listdir(b))
    for f in os.listdir(a):
        if f != "README.md":
            assert open(os.path.join(a, f), "rb").read() == open(os.path.join(b, f), "rb").read(), f
    assert not [n for n in os.listdir(tmp_path) if "kintsugi" in n]


def test_broken_archive_is_refused(tmp_path):
    src = generate(tmp_path / "hf", "--shards", "1")
    archive = make_archive(src, str(tmp_path / "model.tar.gz"), "tar.gz")
    data = open(archive, "rb").read()
    cut = str(tmp_path / "cut.tar.gz")
    open(cut, "wb").write(data[: len(data) * 2 // 3])
    r = run([CONVERT, cut, str(tmp_path / "out")], check=False)
    assert r.returncode in (1, 2) and "cut.tar.gz" in r.stderr and len(r.stderr.splitlines()) == 1
    assert not os.path.exists(tmp_path / "out") and not [n for n in os.listdir(tmp_path) if "kintsugi" in n]
