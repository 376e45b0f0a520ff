"""kintsugi-quantize against mx.quantize / mx.dequantize (MLX on the CPU).

--mode cpu must be bit-identical to mx.quantize on the CPU stream; --mode metal
must reproduce the vectors of tests/vectors/affine-examples.json and an
independent numpy model of the Metal kernel, whose CPU variant is itself first
checked against mx.quantize on the same data (so the model is trusted only as
far as MLX confirms it).
"""
import json
import os
import struct

import mlx.core as mx
import numpy as np
import pytest

from conftest import ROOT, run, tool

mx.set_default_device(mx.cpu)
QUANT = tool("kintsugi-quantize")
DTYPES = {"bfloat16": mx.bfloat16, "float16": mx.float16, "float32": mx.float32}
BITS = [2, 3, 4, 5, 6, 8]
GROUPS = [32, 64, 128]


def adversarial_rows(rng, rows, k, dtype):
    """Random rows plus the groups where semantics or kernels could differ."""
    big = {"float16": 6.0e4, "bfloat16": 3.0e38, "float32": 3.0e38}[dtype]
    tiny = {"float16": 3.0e-6, "bfloat16": 1.0e-39, "float32": 1.0e-39}[dtype]
    out = np.empty((rows, k), np.float32)
    for r in range(rows):
        kind = r % 10
        u = rng.uniform(-1, 1, k).astype(np.float32)
        scale = np.float32(10.0 ** rng.uniform(-3, 2))
        if kind == 0:
            row = u * scale
        elif kind == 1:
            row = np.where(rng.random(k) < 0.5, -0.0, 0.0).astype(np.float32)
        elif kind == 2:
            row = np.full(k, scale)
        elif kind == 3:
            row = np.full(k, -scale)
        elif kind == 4:
            row = -np.abs(u) * scale
        elif kind == 5:
            row = (rng.integers(-8, 9, k) * 0.5 * scale).astype(np.float32)
        elif kind == 6:
            row = u * tiny
        elif kind == 7:
            row = np.where(rng.random(k) < 0.5, u * big, u)
        elif kind == 8:
            row = np.where(rng.random(k) < 0.5, np.where(rng.random(k) < 0.5, -0.0, 0.0), u * scale)
        else:
            row = rng.integers(0, 16, k).astype(np.float32) * scale
        out[r] = row
    return out


@pytest.fixture(scope="module")
def tensors(tmp_path_factory):
    """One input file: every dtype, rows of 32 to 16384 elements."""
    rng = np.random.default_rng(1234)
    arrays = {}
    for dname, dt in DTYPES.items():
        for k in (32, 64, 128, 384, 1024, 16384):
            rows = 40 if k < 16384 else 10
            arrays[f"{dname}.k{k}.weight"] = mx.array(adversarial_rows(rng, rows, k, dname)).astype(dt)
    path = str(tmp_path_factory.mktemp("q") / "in.safetensors")
    mx.save_safetensors(path, arrays)
    return path, arrays


def as_bits(a):
    if a.dtype in (mx.bfloat16, mx.float16):
        return np.array(a.view(mx.uint16))
    if a.dtype == mx.float32:
        return np.array(a.view(mx.uint32))
    return np.array(a)


def quantize_file(src, dst, *opts):
    run([QUANT, src, dst, "--force", "--quiet", *opts])
    return mx.load(dst)


@pytest.mark.parametrize("bits", BITS)
def test_cpu_mode_equals_mx_quantize(tensors, tmp_path, bits):
    path, arrays = tensors
    for gs in GROUPS:
        out = quantize_file(path, str(tmp_path / f"o{gs}.safetensors"), "--bits", str(bits),
                            "--group-size", str(gs), "--mode", "cpu")
        for name, w in arrays.items():
            if w.shape[-1] % gs:
                assert out[name].dtype == w.dtype and np.array_equal(as_bits(out[name]), as_bits(w))
                continue
            q, s, b = mx.quantize(w, group_size=gs, bits=bits)
            base = name[: -len(".weight")]
            assert out[name].dtype == mx.uint32 and out[name].shape == q.shape
            assert np.array_equal(np.array(out[name]), np.array(q)), (name, gs)
            assert out[base + ".scales"].dtype == s.dtype
            assert np.array_equal(as_bits(out[base + ".scales"]), as_bits(s)), (name, gs)
            assert np.array_equal(as_bits(out[base + ".biases"]), as_bits(b)), (name, gs)


@pytest.mark.parametrize("bits", BITS)
def test_dequantize_equals_mx_dequantize(tensors, tmp_path, bits):
    path, arrays = tensors
    for gs in GROUPS:
        qpath = str(tmp_path / f"q{gs}.safetensors")
        qd = quantize_file(path, qpath, "--bits", str(bits), "--group-size", str(gs), "--mode", "cpu")
        # bits are inferred from the shapes and the group size
        back = quantize_file(qpath, str(tmp_path / f"d{gs}.safetensors"), "--dequantize", "--group-size", str(gs))
        for name, w in arrays.items():
            if w.shape[-1] % gs:
                continue
            base = name[: -len(".weight")]
            d = mx.dequantize(qd[name], qd[base + ".scales"], qd[base + ".biases"], group_size=gs, bits=bits)
            assert back[name].dtype == d.dtype and back[name].shape == d.shape
            assert np.array_equal(as_bits(back[name]), as_bits(d)), (name, gs)
            assert base + ".scales" not in back


def round_away(x):
    t = np.trunc(x)
    return (t + np.where(np.abs(x - t) >= np.float32(0.5), np.sign(x), np.float32(0))).astype(np.float32)


def model_quantize(w, bits, gs, mode, dtype):
    """numpy model of the two MLX kernels, from their source, in float32."""
    f32 = np.float32
    g = w.reshape(w.shape[0], -1, gs).astype(f32)
    n_bins = f32(2 ** bits - 1)
    rnd = np.rint if mode == "cpu" else round_away
    if mode == "cpu":
        w_min, w_max = g.min(-1), g.max(-1)
    else:  # minimum starts at the dtype's largest finite value, maximum at 0
        w_min = np.minimum(g.min(-1), f32(np.finfo(np.float16).max if dtype == "float16" else
                                          (3.3895313892515355e38 if dtype == "bfloat16" else np.finfo(f32).max)))
        w_max = np.maximum(g.max(-1), f32(0))
    with np.errstate(all="ignore"):
        s = np.maximum((w_max - w_min) / n_bins, f32(1e-7)).astype(f32)
        side = np.abs(w_min) > np.abs(w_max)
        s = np.where(side, s, -s).astype(f32)
        edge = np.where(side, w_min, w_max).astype(f32)
        q0 = rnd((edge / s).astype(f32))
        scale = np.where(q0 != 0, edge / q0, s).astype(f32)
        bias = np.where(q0 != 0, edge, f32(0)).astype(f32)
        codes = np.clip(rnd(((g - bias[..., None]) / scale[..., None]).astype(f32)), 0, n_bins).astype(np.uint8)
    bitplanes = (codes.reshape(w.shape[0], -1)[..., None] >> np.arange(bits, dtype=np.uint8)) & 1
    packed = np.packbits(bitplanes.reshape(w.shape[0], -1), axis=-1, bitorder="little")
    return packed, scale, bias


def to_dtype_bits(x, dt):
    return as_bits(mx.array(x).astype(dt))


@pytest.mark.parametrize("bits", BITS)
def test_metal_mode_equals_kernel_model(tensors, tmp_path, bits):
    path, arrays = tensors
    for gs in GROUPS:
        out = quantize_file(path, str(tmp_path / f"m{gs}.safetensors"), "--bits", str(bits),
                            "--group-size", str(gs), "--mode", "metal")
        for name, w in arrays.items():
            if w.shape[-1] % gs:
                continue
            dname = name.split(".")[0]
            w32 = np.array(w.astype(mx.float32))
            # the model's CPU variant must be MLX itself ...
            p, s, b = model_quantize(w32, bits, gs, "cpu", dname)
            q, qs, qb = mx.quantize(w, group_size=gs, bits=bits)
            assert np.array_equal(p, np.array(q).view(np.uint8).reshape(p.shape)), (name, gs)
            assert np.array_equal(to_dtype_bits(s, w.dtype), as_bits(qs)), (name, gs)
            assert np.array_equal(to_dtype_bits(b, w.dtype), as_bits(qb)), (name, gs)
            # ... and its Metal variant is what --mode metal writes
            p, s, b = model_quantize(w32, bits, gs, "metal", dname)
            base = name[: -len(".weight")]
            assert np.array_equal(p, np.array(out[name]).view(np.uint8).reshape(p.shape)), (name, gs)
            assert np.array_equal(to_dtype_bits(s, w.dtype), as_bits(out[base + ".scales"])), (name, gs)
            assert np.array_equal(to_dtype_bits(b, w.dtype), as_bits(out[base + ".biases"])), (name, gs)


def write_raw_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def test_vectors_both_modes(tmp_path):
    cases = json.load(open(os.path.join(ROOT, "tests", "vectors", "affine-examples.json")))["cases"]
    checked = 0
    for c in cases:
        hexs = c["input_bf16"]
        data = b"".join(struct.pack("<H", int(hexs[i:i + 4], 16)) for i in range(0, len(hexs), 4))
        src = str(tmp_path / "v.safetensors")
        write_raw_safetensors(src, {"t.weight": ("BF16", [1, c["n"]], data)})
        for mode in ("metal", "cpu"):
            out = quantize_file(src, str(tmp_path / "vo.safetensors"), "--bits", str(c["bits"]),
                                "--group-size", str(c["group_size"]), "--mode", mode)
            exp = c[mode]
            assert np.array(out["t.weight"]).tobytes().hex() == exp["packed_bytes"], (c["name"], mode)
            assert "".join("%04x" % v for v in as_bits(out["t.scales"]).ravel()) == exp["scales_bf16"], c["name"]
            assert "".join("%04x" % v for v in as_bits(out["t.biases"]).ravel()) == exp["biases_bf16"], c["name"]
            checked += 1
    assert checked == 2 * len(cases) and checked >= 54


@pytest.mark.parametrize("bad,label", [(float("nan"), "NaN"), (float("inf"), "+Infinity"), (float("-inf"), "-Infinity")])
def test_nonfinite_is_refused(tmp_path, bad, label):
    w = np.ones((4, 64), np.float32)
    w[2, 17] = bad
    src, dst = str(tmp_path / "in.safetensors"), str(tmp_path / "out.safetensors")
    mx.save_safetensors(src, {"layer.weight": mx.array(w).astype(mx.bfloat16)})
    r = run([QUANT, src, dst], check=False)
    assert r.returncode == 1
    assert "layer.weight" in r.stderr and label in r.stderr and "index 145" in r.stderr and "row 2, column 17" in r.stderr
    assert not os.path.exists(dst) and not [p for p in os.listdir(tmp_path) if p.startswith("out")]


def test_selection_rules(tmp_path):
    src, dst = str(tmp_path / "in.safetensors"), str(tmp_path / "out.safetensors")
    arrays = {
        "a.weight": mx.ones((8, 64)), "b.weight": mx.ones((8, 48)), "norm.weight": mx.ones((64,)),
        "c.bias": mx.ones((8, 64)), "ids": mx.zeros((8, 64), dtype=mx.int32),
    }
    mx.save_safetensors(src, arrays)
    r = run([QUANT, src, dst, "--json"])
    rep = {t["name"]: t for t in json.loads(r.stdout)["tensors"]}
    assert rep["a.weight"]["action"] == "quantized"
    assert rep["b.weight"]["action"] == "copied" and "group size" in rep["b.weight"]["reason"]
    assert rep["norm.weight"]["action"] == "copied" and rep["c.bias"]["action"] == "copied"
    out = mx.load(dst)
    assert set(out) == {"a.weight", "a.scales", "a.biases", "b.weight", "norm.weight", "c.bias", "ids"}
    # --only picks by name; a selected tensor that cannot be quantized is an error
    r = run([QUANT, src, dst, "--force", "--only", r"^c\.", "--json"])
    assert {t["name"] for t in json.loads(r.stdout)["tensors"] if t["action"] == "quantized"} == {"c.bias"}
    assert set(mx.load(dst)) >= {"c.bias", "c.bias.scales", "c.bias.biases"}
    r = run([QUANT, src, dst, "--force", "--only", "b"], check=False)
    assert r.returncode == 1 and "b.weight" in r.stderr and "group size" in r.stderr
    # work that does nothing is an error, not "0 tensors", exit 0
    r = run([QUANT, src, dst, "--force", "--skip", "^a", "--json"], check=False)
    assert r.returncode == 1 and "no tensor can be quantized" in r.stderr and r.stdout == ""
    r = run([QUANT, src, dst, "--force", "--only", "^nothing$"], check=False)
    assert r.returncode == 1 and "--only '^nothing$' matches no tensor" in r.stderr
    r = run([QUANT, src, dst, "--force", "--dequantize"], check=False)
    assert r.returncode == 1 and "nothing to dequantize" in r.stderr
    quantized = str(tmp_path / "q.safetensors")
    run([QUANT, src, quantized])
    r = run([QUANT, quantized, dst, "--force"], check=False)
    assert r.returncode == 1 and "already quantized (it has a.scales)" in r.stderr
    # an existing output is kept without --force; the input is never the output
    r = run([QUANT, src, dst], check=False)
    assert r.returncode == 2 and "--force" in r.stderr
    r = run([QUANT, src, src, "--force"], check=False)
    assert r.returncode == 2 and "input" in r.stderr


def test_error_report_matches_mlx(tmp_path):
    rng = np.random.default_rng(5)
    w = mx.array(rng.standard_normal((64, 256)).astype(np.float32)).astype(mx.bfloat16)
    src = str(tmp_path / "in.safetensors")
    mx.save_safetensors(src, {"x.weight": w})
    r = run([QUANT, src, "--error", "--json", "--mode", "cpu"])
    t = json.loads(r.stdout)["tensors"][0]
    q, s, b = mx.quantize(w, group_size=64, bits=4)
    d = np.array(mx.dequantize(q, s, b, group_size=64, bits=4).astype(mx.float32)).astype(np.float64)
    x = np.array(w.astype(mx.float32)).astype(np.float64)
    rmse = np.sqrt(np.mean((d - x) ** 2))
    assert t["rmse"] == pytest.approx(rmse, rel=1e-9)
    assert t["max_abs_error"] == pytest.approx(np.max(np.abs(d - x)), rel=1e-12)
    assert t["relative_rmse"] == pytest.approx(rmse / np.sqrt(np.mean(x ** 2)), rel=1e-9)
    assert 0.05 < t["relative_rmse"] < 0.15  # 4-bit, group 64, Gaussian weights


def test_usage_errors(tmp_path):
    for args in ([], ["x.safetensors"], ["a", "b", "--bits", "7"], ["a", "b", "--group-size", "48"],
                 ["a", "b", "--mode", "gpu"], ["a", "b", "--only", "("], ["a", "--dequantize", "--error"]):
        r = run([QUANT, *args], check=False)
        assert r.returncode == 2 and r.stderr.startswith("kintsugi-quantize: "), args
        assert len(r.stderr.strip().splitlines()) == 1, args
    r = run([QUANT, str(tmp_path / "missing.safetensors"), str(tmp_path / "o.safetensors")], check=False)
    assert r.returncode == 2 and "missing.safetensors" in r.stderr
